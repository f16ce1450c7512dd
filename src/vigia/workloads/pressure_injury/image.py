"""Wound-photo intake: accept JPEG or PNG by content, refuse decompression bombs and
oversized images, turn the photo upright, strip every metadata block, and measure whether
it is good enough to assess (sharpness, exposure, resolution)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from vigia.exceptions import Permanent
from vigia.workloads.decoding import DECODE_BUDGET

#: Largest photo accepted, in pixels (a 40-megapixel camera), and in bytes.
MAX_PIXELS = 40_000_000
MAX_BYTES = 30 * 1024 * 1024
#: Formats accepted, as Pillow names them after reading the content.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
#: Quality is measured on the photo scaled down to this longest side (fast, and comparable
#: across cameras).
ANALYSIS_SIDE = 1024
#: Below these, a photo cannot be assessed reliably.
MIN_SIDE = 320
MIN_SHARPNESS = 15.0  # variance of the Laplacian of the grey image, at ANALYSIS_SIDE
MIN_BRIGHTNESS = 40.0  # mean grey level, 0–255
MAX_BRIGHTNESS = 225.0
MAX_CLIPPED = 0.25  # share of pixels crushed to black or burnt to white


class InvalidImage(Permanent):
    """The file is not a photo this stage can use (a clear reason is given)."""


@dataclass(frozen=True, slots=True)
class Quality:
    width: int
    height: int
    sharpness: float
    brightness: float
    dark_share: float
    bright_share: float
    problems: tuple[str, ...]

    @property
    def assessable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "megapixels": round(self.width * self.height / 1e6, 2),
            "sharpness": round(self.sharpness, 1),
            "brightness": round(self.brightness, 1),
            "dark_share": round(self.dark_share, 3),
            "bright_share": round(self.bright_share, 3),
            "assessable": self.assessable,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class CleanPhoto:
    """The photo upright and without metadata, encoded again, and its pixels."""

    data: bytes
    media_type: str
    image: Image.Image  # RGB, 8 bits

    @property
    def pixels(self) -> NDArray[Any]:
        """height × width × 3, uint8, RGB (a copy: made only where a detector needs it)."""
        return np.asarray(self.image, dtype=np.uint8)


#: A photo that compresses to less than this many bytes per pixel, past SMALL_PHOTO pixels,
#: is mostly one colour: not a wound photo, and the shape of a decompression bomb (a 116 KB
#: PNG of 40 megapixels). Real photos take 0.05–3 bytes a pixel.
MIN_BYTES_PER_PIXEL = 0.005
SMALL_PHOTO = 4_000_000
#: Photos up to this size are re-encoded with optimised tables (12 megapixels: most phones).
OPTIMISE_UP_TO = 12_000_000


def check_header(data: bytes) -> tuple[str, int, int]:
    """The format and size read from the header only (nothing decoded), or `InvalidImage`."""
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"the photo is {len(data):,} bytes; at most {MAX_BYTES:,} are accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as opened:
                kind, (width, height) = opened.format, opened.size
    except Image.DecompressionBombError as error:
        raise InvalidImage(f"the photo is a decompression bomb: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImage(f"the photo cannot be decoded: {' '.join(str(error).split())[:200]}") from None
    if kind not in FORMATS:
        raise InvalidImage(f"the photo is {kind or 'an unknown format'}: send a JPEG or PNG")
    pixels = width * height
    if pixels > MAX_PIXELS:
        raise InvalidImage(
            f"the photo is {width}×{height} ({pixels / 1e6:.0f} megapixels): at most "
            f"{MAX_PIXELS / 1e6:.0f} megapixels are accepted (a decompression bomb is refused here)"
        )
    if pixels > SMALL_PHOTO and len(data) < pixels * MIN_BYTES_PER_PIXEL:
        raise InvalidImage(
            f"the photo is {width}×{height} in {len(data):,} bytes: it is almost all one colour, not a wound "
            f"photo (over {SMALL_PHOTO / 1e6:.0f} megapixels, at least {MIN_BYTES_PER_PIXEL} bytes a pixel)"
        )
    return kind, width, height


def clean(data: bytes) -> CleanPhoto:
    """Decode, check, orient and re-encode a photo so that nothing but its pixels remains
    (no EXIF, GPS, device, dates, ICC profile, XMP or comments). Memory: one decoded copy,
    within the process's `DECODE_BUDGET`."""
    kind, width, height = check_header(data)
    with DECODE_BUDGET.hold(width * height, "the photo"):
        try:
            with warnings.catch_warnings():
                # Pillow's other warnings (a damaged EXIF block, palette transparency) do
                # not stop a photo from being used: the metadata is dropped anyway.
                warnings.simplefilter("ignore", UserWarning)
                # Not closed: closing would free the pixels this keeps (the bytes are in memory).
                opened = Image.open(io.BytesIO(data))
                opened.load()
                ImageOps.exif_transpose(opened, in_place=True)  # no copy when already upright
                eight = _eight_bit(opened)
                rgb = eight if eight.mode == "RGB" else eight.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise InvalidImage(f"the photo cannot be decoded: {' '.join(str(error).split())[:200]}") from None
        # Nothing but the pixels goes with it: no info dict, no EXIF, no profile.
        rgb.info = {}
        output = io.BytesIO()
        # Optimised encoding buffers the whole image once more (libjpeg's coefficients):
        # worth a few per cent of size on ordinary photos, not a second copy of a huge one.
        optimize = width * height <= OPTIMISE_UP_TO
        if kind == "JPEG":
            rgb.save(output, "JPEG", quality=92, optimize=optimize)
        else:
            rgb.save(output, "PNG", optimize=optimize)
    return CleanPhoto(output.getvalue(), FORMATS[kind], rgb)


def for_detection(data: bytes, longest_side: int) -> tuple[NDArray[Any], float]:
    """A cleaned photo's pixels at no more than ``longest_side`` (a detector sees its input
    size only), and the factor that maps them back to the photo's own pixels. A JPEG is
    decoded at the reduced size directly, so a large photo never exists here at full size."""
    kind, width, height = check_header(data)
    with DECODE_BUDGET.hold(width * height, "the photo"):
        try:
            with Image.open(io.BytesIO(data)) as opened:
                if kind == "JPEG":
                    opened.draft("RGB", (longest_side, longest_side))
                opened.load()
                reduced = opened.convert("RGB") if opened.mode != "RGB" else opened.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise InvalidImage(f"the photo cannot be decoded: {' '.join(str(error).split())[:200]}") from None
        reduced.thumbnail((longest_side, longest_side))
        return np.asarray(reduced, dtype=np.uint8), width / reduced.size[0]


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit grey images scaled to 8 bits (Pillow's own conversion clips them)."""
    if not image.mode.startswith("I"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) <= 65535 else values.max()
    return Image.fromarray((values * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")


def quality(photo: Image.Image | NDArray[Any]) -> Quality:
    """Sharpness (variance of the Laplacian), exposure and resolution, with the problems
    that make the photo unfit for assessment. Measured on the photo scaled down first, so
    that no full-size grey copy is made."""
    image = photo if isinstance(photo, Image.Image) else Image.fromarray(np.asarray(photo, dtype=np.uint8))
    width, height = image.size
    scale = ANALYSIS_SIDE / max(width, height)
    if scale < 1:
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    laplacian = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
        if min(grey.shape) >= 3
        else np.zeros((1, 1))
    )
    sharpness = float(laplacian.var())
    brightness = float(grey.mean())
    dark = float((grey < 10).mean())
    bright = float((grey > 245).mean())
    problems = []
    if min(width, height) < MIN_SIDE:
        problems.append(f"resolution too low ({width}×{height}; at least {MIN_SIDE} px on the short side)")
    if sharpness < MIN_SHARPNESS:
        problems.append(f"blurred (sharpness {sharpness:.1f} < {MIN_SHARPNESS:g})")
    if brightness < MIN_BRIGHTNESS or dark > MAX_CLIPPED:
        problems.append(f"too dark (mean {brightness:.0f}/255, {dark:.0%} black)")
    if brightness > MAX_BRIGHTNESS or bright > MAX_CLIPPED:
        problems.append(f"overexposed (mean {brightness:.0f}/255, {bright:.0%} white)")
    return Quality(width, height, sharpness, brightness, dark, bright, tuple(problems))
