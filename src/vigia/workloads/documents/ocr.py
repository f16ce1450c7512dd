"""Reading a page image with Tesseract: prepared first (`preprocess`), read with the
document's language model, turned upright and read again when the first reading is poor
and the page lies on its side or upside down. Each reading has a hard time limit.

Tesseract runs as a child process per page, the page handed to it on its standard input
(PNG; a prepared page as one bit per pixel, which Tesseract reads 15 % faster than the
same page in grey, word for word alike), so pages read in parallel in threads, one core
each. Its children get ``OMP_THREAD_LIMIT=1``: Tesseract's own threads only fight each
other on a busy machine (measured 4× slower with two pages at once on two cores). Only its
children: in this process the variable would hold PyTorch's OpenMP threads to one, and
embeddings made here would take twice as long (measured).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field

from PIL import Image

from vigia.workloads.documents import preprocess

#: The Tesseract program (found on the PATH).
TESSERACT = "tesseract"
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


def _run(arguments: list[str], image: Image.Image | None, *, timeout: float) -> str:
    """What Tesseract writes to its standard output, run with ``arguments`` on ``image``."""
    data = None
    if image is not None:
        encoded = io.BytesIO()
        image.save(encoded, format="PNG", compress_level=1)  # the least compression: a pipe, not a disk
        data = encoded.getvalue()
    try:
        done = subprocess.run(
            [TESSERACT, *arguments],
            input=data,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:  # the child is killed
        raise OcrTimeout(f"Tesseract did not finish the page within {timeout:g} s") from None
    except OSError as error:  # not installed, or not a program
        raise OcrFailed(f"Tesseract cannot run: {error}") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.decode("utf-8", "replace").split())[:200]
        raise OcrFailed(f"Tesseract failed: {message or f'exit status {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace")


def tesseract(image: Image.Image, model: str, *, timeout: float) -> Reading:
    """One reading of ``image``: its text (lines and paragraphs as Tesseract found them)
    and the mean confidence of its words."""
    table = _run(["stdin", "stdout", "-l", model, "--psm", str(PSM), "--dpi", "300", "tsv"], image, timeout=timeout)
    lines: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    confidences: list[float] = []
    # Tab-separated, a heading line first: level, page, block, paragraph, line, word, left,
    # top, width, height, confidence (-1 for what is not a word), text.
    for row in table.splitlines()[1:]:
        columns = row.split("\t")
        if len(columns) < 12:
            continue
        word, confidence = columns[11].strip(), float(columns[10])
        if not word or confidence < 0:
            continue
        lines[(int(columns[2]), int(columns[3]), int(columns[4]))].append(word)
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


_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)


def orientation(image: Image.Image, *, timeout: float) -> int:
    """Degrees (0, 90, 180, 270) to turn the page clockwise to read it; 0 when Tesseract's
    orientation detection cannot tell."""
    try:
        found = _ROTATE.search(_run(["stdin", "stdout", "--psm", "0", "-l", "osd"], image, timeout=timeout))
    except (OcrTimeout, OcrFailed):
        return 0
    return int(found.group(1)) % 360 if found else 0


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
        listed = _run(["--list-langs"], None, timeout=30)
    except (OcrTimeout, OcrFailed):
        return set()
    # A heading line ("List of available languages in ...:"), then one model a line.
    return {line.strip() for line in listed.splitlines()[1:] if line.strip()}
