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
    pixels: NDArray[Any]  # height × width × 3, uint8, RGB


def clean(data: bytes) -> CleanPhoto:
    """Decode, check, orient and re-encode a photo so that nothing but its pixels remains
    (no EXIF, GPS, device, dates, ICC profile, XMP or comments)."""
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"the photo is {len(data):,} bytes; at most {MAX_BYTES:,} are accepted")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then refuses, past its own bomb limit: we refuse earlier and
            # clearly. Its other warnings (a damaged EXIF block, palette transparency) do
            # not stop a photo from being used: the metadata is dropped anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.format not in FORMATS:
                    raise InvalidImage(f"the photo is {opened.format or 'an unknown format'}: send a JPEG or PNG")
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise InvalidImage(
                        f"the photo is {width}×{height} ({width * height / 1e6:.0f} megapixels): at most "
                        f"{MAX_PIXELS / 1e6:.0f} megapixels are accepted (a decompression bomb is refused here)"
                    )
                media_type = FORMATS[opened.format]
                upright = ImageOps.exif_transpose(opened)
                rgb = _eight_bit(upright).convert("RGB")
                rgb.load()
    except Image.DecompressionBombError as error:
        raise InvalidImage(f"the photo is a decompression bomb: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InvalidImage(f"the photo cannot be decoded: {' '.join(str(error).split())[:200]}") from None
    pixels = np.asarray(rgb, dtype=np.uint8).copy()
    # A new image made of the pixels alone: no info dict, no EXIF, no profile goes with it.
    bare = Image.fromarray(pixels, "RGB")
    output = io.BytesIO()
    if media_type == "image/jpeg":
        bare.save(output, "JPEG", quality=92, optimize=True)
    else:
        bare.save(output, "PNG", optimize=True)
    return CleanPhoto(output.getvalue(), media_type, pixels)


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit grey images scaled to 8 bits (Pillow's own conversion clips them)."""
    if not image.mode.startswith("I"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) <= 65535 else values.max()
    return Image.fromarray((values * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")


def quality(pixels: NDArray[Any]) -> Quality:
    """Sharpness (variance of the Laplacian), exposure and resolution, with the problems
    that make the photo unfit for assessment."""
    height, width = pixels.shape[:2]
    grey_image = Image.fromarray(pixels).convert("L")
    scale = ANALYSIS_SIDE / max(width, height)
    if scale < 1:
        grey_image = grey_image.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    grey = np.asarray(grey_image, dtype=np.float64)
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
