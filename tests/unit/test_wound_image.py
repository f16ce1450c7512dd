"""Wound-photo intake: metadata stripped, photo turned upright, unusable files refused with
a clear reason, and the quality measures (sharpness, exposure, resolution)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFilter
from PIL.PngImagePlugin import PngInfo

from vigia.exceptions import Permanent
from vigia.workloads.pressure_injury import image
from vigia.workloads.pressure_injury.image import InvalidImage, Quality, clean, quality

MAKE = "AcmeCam Industries"
MODEL = "AcmeCam Pro-9"
TAKEN = "2026:11:02 07:41:13"
COMMENT = "bed 14 Jane Roe"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description creator="Nurse Oakley"/></x:xmpmeta>'


def textured(width: int, height: int, *, low: int = 60, high: int = 200, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (height, width, 3), dtype=np.uint8)


def encode(pixels: np.ndarray, image_format: str, **options: object) -> bytes:
    output = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(output, image_format, **options)
    return output.getvalue()


def phone_jpeg() -> tuple[bytes, np.ndarray]:
    """A JPEG stored 300 wide × 400 high with Orientation 6 (turn 90° clockwise to view),
    carrying GPS, device, date, a comment, XMP and an ICC profile; its top 60 rows are red."""
    stored = np.full((400, 300, 3), (40, 160, 40), dtype=np.uint8)
    stored[:60] = (220, 20, 20)
    exif = Image.Exif()
    exif[0x010F] = MAKE
    exif[0x0110] = MODEL
    exif[0x0132] = TAKEN
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (40.0, 25.0, 3.2), 3: "W", 4: (3.0, 42.0, 9.9)}
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(stored, "JPEG", quality=95, exif=exif, icc_profile=profile, comment=COMMENT, xmp=XMP)
    return data, stored


def png_with_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header is patched to claim ``width`` × ``height`` pixels."""
    data = bytearray(encode(np.zeros((1, 1, 3), dtype=np.uint8), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def refusal(data: bytes) -> str:
    with pytest.raises(InvalidImage) as caught:
        clean(data)
    assert isinstance(caught.value, Permanent)
    return caught.value.reason


# --- metadata and orientation -----------------------------------------------------------------


def test_the_phone_photo_really_carries_the_metadata() -> None:
    data, _ = phone_jpeg()

    with Image.open(io.BytesIO(data)) as opened:
        exif = opened.getexif()
        assert exif[0x010F] == MAKE
        assert exif[0x0112] == 6
        assert exif.get_ifd(0x8825)[1] == "N"
        assert "icc_profile" in opened.info
        assert opened.size == (300, 400)
    for text in (MAKE.encode(), MODEL.encode(), TAKEN.encode(), COMMENT.encode(), b"Nurse Oakley"):
        assert text in data


def test_clean_strips_every_metadata_block_from_a_jpeg() -> None:
    data, _ = phone_jpeg()

    photo = clean(data)

    assert photo.media_type == "image/jpeg"
    with Image.open(io.BytesIO(photo.data)) as opened:
        assert opened.format == "JPEG"
        assert dict(opened.getexif()) == {}
        assert opened.getexif().get_ifd(0x8825) == {}
        assert not {"exif", "icc_profile", "comment", "xmp", "dpi"} & set(opened.info)
        # The JFIF header alone (density 1:1, no unit): no APP1 (EXIF, XMP), APP2 (ICC) or COM.
        assert [marker for marker, _ in opened.applist] == ["APP0"]
        assert opened.info["jfif_unit"] == 0
    for text in (MAKE.encode(), MODEL.encode(), TAKEN.encode(), COMMENT.encode(), b"Nurse Oakley", b"xmpmeta"):
        assert text not in photo.data
    assert b"Exif" not in photo.data


def test_clean_turns_the_photo_upright_as_its_orientation_says() -> None:
    data, stored = phone_jpeg()

    photo = clean(data)

    assert stored.shape[:2] == (400, 300)
    assert photo.pixels.shape == (300, 400, 3)
    with Image.open(io.BytesIO(photo.data)) as opened:
        assert opened.size == (400, 300)
    # Turned 90° clockwise, the stored top rows (red) become the right-hand columns.
    right, left = photo.pixels[:, -50:].mean(axis=(0, 1)), photo.pixels[:, :200].mean(axis=(0, 1))
    assert right[0] > 180 and right[1] < 60
    assert left[0] < 80 and left[1] > 120


def test_clean_of_an_upright_jpeg_keeps_its_size() -> None:
    photo = clean(encode(textured(640, 480), "JPEG"))

    assert photo.pixels.shape == (480, 640, 3)
    assert photo.pixels.dtype == np.uint8
    assert photo.media_type == "image/jpeg"


def test_clean_strips_text_chunks_from_a_png_and_keeps_its_pixels_exactly() -> None:
    pixels = textured(64, 48)
    info = PngInfo()
    info.add_text("Patient", "Jane Roe, born 1931")
    info.add_itxt("Comment", "ward 7 bed 14")
    data = encode(pixels, "PNG", pnginfo=info)
    assert b"Jane Roe" in data

    photo = clean(data)

    assert photo.media_type == "image/png"
    assert b"Jane Roe" not in photo.data
    assert b"ward 7" not in photo.data
    with Image.open(io.BytesIO(photo.data)) as opened:
        assert opened.format == "PNG"
        assert opened.text == {}
        assert not {"Patient", "Comment", "exif", "icc_profile"} & set(opened.info)
        assert (np.asarray(opened) == pixels).all()
    assert (photo.pixels == pixels).all()


def test_clean_drops_the_alpha_channel_of_a_png() -> None:
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 128
    output = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(output, "PNG")

    photo = clean(output.getvalue())

    assert photo.pixels.shape == (10, 20, 3)
    assert (photo.pixels == (10, 20, 30)).all()


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF", "WEBP"])
def test_formats_other_than_jpeg_and_png_are_refused_by_name(image_format: str) -> None:
    data = encode(textured(32, 32), image_format)

    assert refusal(data) == f"the photo is {image_format}: send a JPEG or PNG"


@pytest.mark.parametrize("data", [np.random.default_rng(3).bytes(2048), b"", b"%PDF-1.7\n"])
def test_bytes_that_are_not_an_image_are_refused_as_not_decodable(data: bytes) -> None:
    assert refusal(data).startswith("the photo cannot be decoded: ")


def test_a_truncated_jpeg_is_refused_as_not_decodable() -> None:
    data = encode(textured(640, 480), "JPEG")

    assert refusal(data[: len(data) // 2]).startswith("the photo cannot be decoded: ")


def test_a_decompression_bomb_is_refused_without_being_decoded() -> None:
    # 50 000 × 50 000 claimed by a 1-pixel file: Pillow's own bomb check refuses it on open.
    reason = refusal(png_with_size(50_000, 50_000))

    assert reason.startswith("the photo is a decompression bomb: ")


@pytest.mark.parametrize(
    ("width", "height", "megapixels"),
    [(8_000, 6_000, 48), (10_000, 10_000, 100)],  # under, then over, Pillow's warning limit
)
def test_a_photo_over_40_megapixels_is_refused_before_decoding(width: int, height: int, megapixels: int) -> None:
    # The file holds one pixel of data: decoding it would fail as truncated, not be refused by size.
    reason = refusal(png_with_size(width, height))

    assert reason == (
        f"the photo is {width}×{height} ({megapixels} megapixels): at most 40 megapixels are accepted "
        "(a decompression bomb is refused here)"
    )


def test_a_claimed_size_within_the_limit_is_decoded_and_found_truncated() -> None:
    # The same forged file, small enough to pass the size check: proves the check above ran first.
    assert refusal(png_with_size(2_000, 1_500)).startswith("the photo cannot be decoded: ")


def test_a_large_image_of_almost_one_colour_is_refused_from_its_header() -> None:
    # The probe's file: 6320×6320 in a few bytes (a 116 KB PNG took a worker to 872 MB).
    assert "almost all one colour" in refusal(png_with_size(6_320, 6_320))
    assert "almost all one colour" in refusal(png_with_size(4_000, 3_000))
    # A small one of one colour is an ordinary (if useless) photo: measured, not refused.
    flat = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 120, 110)).save(flat, "PNG")
    assert image.clean(flat.getvalue()).image.size == (800, 600)


def test_data_over_the_byte_limit_is_refused_before_anything_else() -> None:
    assert refusal(b"\0" * (image.MAX_BYTES + 1)) == (
        f"the photo is {image.MAX_BYTES + 1:,} bytes; at most 31,457,280 are accepted"
    )


def test_data_of_exactly_the_byte_limit_is_not_refused_for_its_size() -> None:
    assert refusal(b"\0" * image.MAX_BYTES).startswith("the photo cannot be decoded: ")


# --- quality ----------------------------------------------------------------------------------


def test_a_sharp_well_exposed_photo_is_assessable() -> None:
    measured = quality(textured(640, 480))

    assert measured.problems == ()
    assert measured.assessable is True
    assert measured.sharpness > 1_000
    assert 120 < measured.brightness < 140
    assert measured.dark_share == 0.0
    assert measured.bright_share == 0.0
    assert (measured.width, measured.height) == (640, 480)


def test_a_blurred_photo_is_flagged() -> None:
    pixels = np.asarray(Image.fromarray(textured(640, 480)).filter(ImageFilter.GaussianBlur(14)))

    measured = quality(pixels)

    assert measured.sharpness < image.MIN_SHARPNESS
    assert measured.problems == (f"blurred (sharpness {measured.sharpness:.1f} < 15)",)
    assert measured.assessable is False


def test_a_dark_photo_is_flagged() -> None:
    pixels = (textured(640, 480).astype(np.float64) * 0.12).astype(np.uint8)

    measured = quality(pixels)

    assert measured.brightness < image.MIN_BRIGHTNESS
    assert measured.sharpness > image.MIN_SHARPNESS
    assert len(measured.problems) == 1
    assert measured.problems[0].startswith("too dark (mean ")
    assert measured.problems[0] == (f"too dark (mean {measured.brightness:.0f}/255, {measured.dark_share:.0%} black)")


def test_a_bright_photo_is_flagged_overexposed() -> None:
    measured = quality(textured(640, 480, low=235, high=256))

    assert measured.brightness > image.MAX_BRIGHTNESS
    assert measured.sharpness > image.MIN_SHARPNESS
    assert measured.problems == (
        f"overexposed (mean {measured.brightness:.0f}/255, {measured.bright_share:.0%} white)",
    )


def test_a_white_photo_is_overexposed_and_featureless() -> None:
    measured = quality(np.full((480, 640, 3), 255, dtype=np.uint8))

    assert measured.problems == ("blurred (sharpness 0.0 < 15)", "overexposed (mean 255/255, 100% white)")
    assert measured.bright_share == 1.0


def test_a_small_photo_is_flagged_resolution_too_low() -> None:
    measured = quality(textured(200, 150))

    assert measured.problems == ("resolution too low (200×150; at least 320 px on the short side)",)


def test_a_short_side_of_exactly_320_is_enough() -> None:
    assert quality(textured(480, 320)).problems == ()


def test_a_large_photo_is_measured_scaled_down_but_reported_at_full_size() -> None:
    measured = quality(textured(2048, 1536))

    assert (measured.width, measured.height) == (2048, 1536)
    assert measured.assessable is True


def test_quality_to_dict_exact_fields() -> None:
    # Left half black, right half white: one vertical edge. The Laplacian is ±255 on two of
    # the 398 inner columns and 0 elsewhere, so its variance is 2 × 255² / 398.
    pixels = np.zeros((320, 400, 3), dtype=np.uint8)
    pixels[:, 200:] = 255

    measured = quality(pixels)

    assert measured.sharpness == pytest.approx(2 * 255**2 / 398)
    assert measured.to_dict() == {
        "width": 400,
        "height": 320,
        "megapixels": 0.13,
        "sharpness": 326.8,
        "brightness": 127.5,
        "dark_share": 0.5,
        "bright_share": 0.5,
        "assessable": False,
        "problems": ["too dark (mean 128/255, 50% black)", "overexposed (mean 128/255, 50% white)"],
    }


def test_quality_to_dict_rounds_a_hand_made_quality() -> None:
    measured = Quality(4032, 3024, 123.456, 98.765, 0.01234, 0.0005, ())

    assert measured.to_dict() == {
        "width": 4032,
        "height": 3024,
        "megapixels": 12.19,
        "sharpness": 123.5,
        "brightness": 98.8,
        "dark_share": 0.012,
        "bright_share": 0.001,
        "assessable": True,
        "problems": [],
    }


# --- known defects (strict: these start failing once fixed; drop the mark then) ------------------


def test_a_16_bit_greyscale_png_keeps_its_tones() -> None:
    levels = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    output = io.BytesIO()
    Image.fromarray(levels).save(output, "PNG")

    photo = clean(output.getvalue())

    assert np.abs(photo.pixels[..., 0].astype(int) - (levels >> 8)).max() <= 1
