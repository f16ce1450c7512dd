"""Reading a page image with Tesseract: prepared first (`preprocess`), read with the
document's language model, turned upright and read again when the first reading is poor
and the page lies on its side or upside down. Each reading has a hard time limit.

Tesseract runs as a child process per page (pytesseract), so pages read in parallel in
threads, one core each (``OMP_THREAD_LIMIT=1``: Tesseract's own threads only fight each
other on a busy machine, measured 2–4× slower).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pytesseract
from PIL import Image

from vigia.workloads.documents import preprocess

# Set before any Tesseract child starts: each reads it from the environment it inherits.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

#: Page segmentation: one uniform block of text. The default (3, automatic) drops the first
#: word of lines on Spanish administrative pages.
PSM = 6
#: Mean word confidence below which a reading is doubted and the page's orientation checked.
DOUBTFUL_CONFIDENCE = 60.0
#: Tesseract reads the degree sign of "N°" (número, on every Spanish administrative
#: document) as an asterisk or a small o: put it back where a number follows.
_NUMERO = re.compile(r"\b([Nn])\s?[*°º]\s?(?=\d)")


class OcrTimeout(Exception):
    """Tesseract did not finish the page within its time limit."""


class OcrFailed(Exception):
    """Tesseract could not read the page."""


@dataclass(slots=True)
class Reading:
    text: str
    #: Mean confidence of the words read, 0–100.
    confidence: float
    words: int
    model: str
    steps: list[str] = field(default_factory=list)


def tesseract(image: Image.Image, model: str, *, timeout: float) -> Reading:
    """One reading of ``image``: its text (lines and paragraphs as Tesseract found them)
    and the mean confidence of its words."""
    try:
        data = pytesseract.image_to_data(
            image, lang=model, config=f"--psm {PSM} --dpi 300", output_type=pytesseract.Output.DICT, timeout=timeout
        )
    except RuntimeError as error:  # pytesseract's timeout: the child was killed
        if "timeout" in str(error).lower():
            raise OcrTimeout(f"Tesseract did not finish the page within {timeout:g} s") from None
        raise OcrFailed(f"Tesseract failed: {error}") from None
    except pytesseract.TesseractError as error:
        raise OcrFailed(f"Tesseract failed: {' '.join(str(error.message).split())[:200]}") from None
    lines: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    confidences: list[float] = []
    for index, written in enumerate(data["text"]):
        word = written.strip()
        confidence = float(data["conf"][index])
        if not word or confidence < 0:
            continue
        lines[(data["block_num"][index], data["par_num"][index], data["line_num"][index])].append(word)
        confidences.append(confidence)
    text_parts: list[str] = []
    previous: tuple[int, int] | None = None
    for (block, paragraph, _), words in sorted(lines.items()):
        if previous is not None and previous != (block, paragraph):
            text_parts.append("")
        text_parts.append(" ".join(words))
        previous = (block, paragraph)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    text = _NUMERO.sub(r"\1° ", "\n".join(text_parts))
    return Reading(text, round(mean, 1), len(confidences), model)


def orientation(image: Image.Image, *, timeout: float) -> int:
    """Degrees (0, 90, 180, 270) to turn the page clockwise to read it; 0 when Tesseract's
    orientation detection cannot tell."""
    try:
        found = pytesseract.image_to_osd(image, output_type=pytesseract.Output.DICT, timeout=timeout)
    except (RuntimeError, pytesseract.TesseractError):
        return 0
    return int(found.get("rotate", 0)) % 360


def read(image: Image.Image, model: str, *, timeout: float) -> Reading:
    """The page prepared and read; read upright again if it lay turned and read poorly."""
    prepared = preprocess.prepare(image)
    reading = tesseract(prepared.image, model, timeout=timeout)
    reading.steps = list(prepared.steps)
    if reading.confidence >= DOUBTFUL_CONFIDENCE:
        return reading
    turn = orientation(prepared.image, timeout=timeout)
    if turn == 0:
        return reading
    upright = prepared.image.rotate(-turn, expand=True)
    again = tesseract(upright, model, timeout=timeout)
    if again.confidence > reading.confidence:
        again.steps = [*prepared.steps, f"turned {turn}°"]
        return again
    return reading


def available_models() -> set[str]:
    """Tesseract's installed language models (empty when Tesseract is not installed)."""
    try:
        return set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, OSError, RuntimeError):
        return set()
