"""Sample cases for the demo and the tests: synthetic wound-like photos (drawn here, no
patient ever photographed) with made-up patient contexts.

    python -m vigia.workloads.pressure_injury.samples   # draws the photos again
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SAMPLES = "samples"


@dataclass(frozen=True, slots=True)
class SampleCase:
    name: str
    photo: str
    #: The job input without the photo (the demo uploads it to blob storage first).
    input: dict[str, Any]
    note: str

    def photo_bytes(self) -> bytes:
        return photo(self.photo)


def photo(name: str) -> bytes:
    """A sample photo's bytes, by file name."""
    return resources.files(__package__).joinpath(SAMPLES, name).read_bytes()


def cases() -> list[SampleCase]:
    text = resources.files(__package__).joinpath(SAMPLES, "cases.json").read_text(encoding="utf-8")
    return [SampleCase(**item) for item in json.loads(text)]


# --- drawing (run once; the results are committed) -----------------------------------------


def draw(kind: str, *, seed: int, size: tuple[int, int] = (640, 480)) -> Any:
    """A synthetic skin-and-lesion picture: skin tone with texture and shading, and a lesion
    of the given ``kind`` (erythema, ulcer, slough, eschar), or blurred/dark variants."""
    import numpy as np  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when samples are drawn
    from PIL import Image, ImageFilter  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when samples are drawn

    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    skin = np.array([224, 172, 140], dtype=np.float64) * (0.85 + 0.15 * (1 - y / height))[..., None]
    skin += rng.normal(0, 6, (height, width, 1))
    centre = (width * 0.5 + rng.uniform(-40, 40), height * 0.5 + rng.uniform(-30, 30))
    radius = (rng.uniform(75, 115), rng.uniform(55, 80))
    distance = ((x - centre[0]) / radius[0]) ** 2 + ((y - centre[1]) / radius[1]) ** 2
    wobble = 1 + 0.12 * np.sin(np.arctan2(y - centre[1], x - centre[0]) * 5 + rng.uniform(0, 6))
    distance /= wobble
    picture = skin.copy()
    halo = np.clip(1.6 - distance, 0, 1)[..., None]
    picture = picture * (1 - 0.5 * halo) + np.array([205, 80, 80]) * 0.5 * halo  # erythema around
    core = (distance < 0.55)[..., None]
    colours = {"erythema": [196, 70, 72], "ulcer": [150, 30, 40], "slough": [205, 185, 90], "eschar": [40, 28, 24]}
    if kind in colours:
        texture = rng.normal(0, 14, (height, width, 1))
        picture = np.where(core, np.array(colours[kind]) + texture, picture)
    if kind == "ulcer":
        ring = ((distance > 0.35) & (distance < 0.55))[..., None]
        picture = np.where(ring, np.array([230, 210, 120]) + rng.normal(0, 10, (height, width, 1)), picture)
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    if kind == "blurred":
        image = image.filter(ImageFilter.GaussianBlur(14))
    if kind == "dark":
        image = Image.fromarray((np.asarray(image) * 0.12).astype(np.uint8), "RGB")
    return image


def _with_gps(image: Any) -> bytes:
    """The picture as a JPEG carrying the EXIF a phone would write: GPS, device, date,
    and an orientation (rotated 90°), so that intake's stripping and turning show."""
    from PIL import Image  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when samples are drawn

    exif = Image.Exif()
    exif[0x010F] = "ExamplePhone Inc."  # Make
    exif[0x0110] = "ExamplePhone 12"  # Model
    exif[0x0132] = "2026:11:02 07:41:13"  # DateTime
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    gps = {1: "N", 2: (40.0, 25.0, 3.2), 3: "W", 4: (3.0, 42.0, 9.9)}
    exif[0x8825] = gps
    output = io.BytesIO()
    image.rotate(90, expand=True).save(output, "JPEG", quality=90, exif=exif)
    return output.getvalue()


def write_samples(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, kind, seed in (
        ("erythema.jpg", "erythema", 1),
        ("ulcer.jpg", "ulcer", 2),
        ("eschar.png", "eschar", 3),
        ("blurred.jpg", "blurred", 4),
    ):
        image = draw(kind, seed=seed)
        image.save(directory / name, "PNG" if name.endswith(".png") else "JPEG", quality=90)
    (directory / "phone_photo.jpg").write_bytes(_with_gps(draw("slough", seed=5)))


if __name__ == "__main__":
    write_samples(Path(__file__).parent / SAMPLES)
