"""Reading a page image with Tesseract: prepared first (`preprocess`), read with the
document's language model, turned upright and read again when the first reading is poor
and the page lies on its side or upside down. Each reading has a hard time limit.

Tesseract runs as child processes, so pages read in parallel in threads, one core each.
A document's pages go to `Engines`, Tesseract processes that each read page after page:
starting Tesseract and loading its model costs 0.1–0.2 s of CPU, a fifth of reading a
page, paid once per page read at a time rather than once per page. A page is handed over as
a file in Netpbm (a prepared page as one bit per pixel, which Tesseract reads 15 % faster
than the same page in grey, word for word alike; nothing to compress). Its children get
``OMP_THREAD_LIMIT=1``: Tesseract's own threads only fight each other on a busy machine
(measured 4× slower with two pages at once on two cores). Only its children: in this
process the variable would hold PyTorch's OpenMP threads to one, and embeddings made here
would take twice as long (measured).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vigia.workloads.documents import preprocess

#: The Tesseract program (found on the PATH).
TESSERACT = "tesseract"
#: Page segmentation: one uniform block of text. The default (3, automatic) drops the first
#: word of lines on Spanish administrative pages.
PSM = 6
#: Mean word confidence below which a reading is doubted and the page's orientation checked.
DOUBTFUL_CONFIDENCE = 60.0
#: What every reading of a page passes to Tesseract (before its output format).
PAGE_ARGUMENTS = ("--psm", str(PSM), "--dpi", "300")
#: Where an engine's page files go when this directory exists: memory, not a disk.
SHARED_MEMORY = Path("/dev/shm")
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
        _netpbm(image).save(encoded, format="PPM")
        data = encoded.getvalue()
    try:
        done = subprocess.run(
            [TESSERACT, *arguments],
            input=data,
            capture_output=True,
            timeout=timeout,
            env=_environment(),
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


def tesseract(image: Image.Image, model: str, *, timeout: float, engine: Engine | None = None) -> Reading:
    """One reading of ``image``: its text (lines and paragraphs as Tesseract found them)
    and the mean confidence of its words; by ``engine`` when given (its model is used)."""
    if engine is not None:
        return _reading(engine.rows(image, timeout=timeout), engine.model)
    table = _run(["stdin", "stdout", "-l", model, *PAGE_ARGUMENTS, "tsv"], image, timeout=timeout)
    return _reading(table.splitlines(), model)


def _reading(rows: Iterable[str], model: str) -> Reading:
    lines: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    confidences: list[float] = []
    # Tab-separated (after a heading line, skipped): level, page, block, paragraph, line,
    # word, left, top, width, height, confidence (-1 for what is not a word), text.
    for row in rows:
        columns = row.split("\t")
        if len(columns) < 12 or not columns[0].isdigit():
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


def _netpbm(image: Image.Image) -> Image.Image:
    """``image`` in a mode Netpbm holds (P4, P5 or P6): nothing to compress, nothing for
    Tesseract to decode, the same pixels as a PNG of it."""
    return image if image.mode in ("1", "L", "RGB") else image.convert("RGB")


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


class Engine:
    """One Tesseract process reading page after page with one model, for one caller at a time.

    Tesseract streams a list of image files from its standard input
    (``stream_filelist``) and writes each page's table as soon as the page is read. A page
    has no end mark in that table, so each page is followed by a blank image: the first
    row of the blank's table (every row carries its image's number) says the page's rows
    are all written. A process that fails or overruns a page's time limit is killed; the
    next page starts another.
    """

    def __init__(self, model: str, directory: Path, blank: Path) -> None:
        self.model = model
        self._directory = directory
        self._blank = blank
        self._process: subprocess.Popen[bytes] | None = None
        #: Images handed to the current process (Tesseract numbers them from 1).
        self._images = 0
        self._pages = itertools.count()

    def rows(self, image: Image.Image, *, timeout: float) -> list[str]:
        """The table rows of ``image``, read within ``timeout`` seconds."""
        path = self._directory / f"{id(self):x}-{next(self._pages)}.pnm"
        _netpbm(image).save(path, format="PPM")
        try:
            process = self._started()
            page, blank = self._images + 1, self._images + 2
            self._images += 2
            try:
                assert process.stdin is not None
                process.stdin.write(f"{path}\n{self._blank}\n".encode())
                process.stdin.flush()
            except OSError:  # it has exited: its output says why
                pass
            return self._collect(process, page, blank, timeout)
        finally:
            path.unlink(missing_ok=True)

    def start(self) -> None:
        """Start its process unless it runs (it then loads its model: 0.1–0.2 s)."""
        self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        arguments = ["stdin", "stdout", "-l", self.model, *PAGE_ARGUMENTS, "-c", "stream_filelist=1", "tsv"]
        try:
            self._process = subprocess.Popen(
                [TESSERACT, *arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_environment(),
            )
        except OSError as error:  # not installed, or not a program
            raise OcrFailed(f"Tesseract cannot run: {error}") from None
        self._images = 0
        return self._process

    def _collect(self, process: subprocess.Popen[bytes], page: int, blank: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None and process.stderr is not None
        output, errors = process.stdout.fileno(), process.stderr.fileno()
        pending, stderr = b"", b""
        rows: list[str] = []
        wanted, done = str(page), str(blank)
        while True:
            left = deadline - time.monotonic()
            ready = select.select([output, errors], [], [], left)[0] if left > 0 else []
            if not ready:
                self.close()
                raise OcrTimeout(f"Tesseract did not finish the page within {timeout:g} s")
            if errors in ready:
                # Tesseract names each image it starts there; kept only to say why it failed.
                stderr = (stderr + os.read(errors, 1 << 16))[-4000:]
            if output not in ready:
                continue
            data = os.read(output, 1 << 16)
            if not data:
                self.close()
                message = " ".join(
                    line for line in stderr.decode("utf-8", "replace").splitlines() if not line.startswith("Page ")
                )
                raise OcrFailed(f"Tesseract failed: {message.strip()[:200] or 'it exited'}")
            *complete, pending = (pending + data).split(b"\n")
            for line in complete:
                row = line.decode("utf-8", "replace")
                number = row.split("\t", 2)[1] if "\t" in row else None
                if number == done:
                    return rows
                if number == wanted:
                    rows.append(row)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class Engines:
    """The engines of one document's reading, lent to one reading of a page at a time,
    closed together; their page files in one scratch directory (in shared memory where
    there is one)."""

    def __init__(self) -> None:
        shared = SHARED_MEMORY if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK) else None
        self._directory = Path(tempfile.mkdtemp(prefix="vigia-ocr-", dir=shared))
        self._blank = self._directory / "blank.pnm"
        Image.new("1", (8, 8), 1).save(self._blank, format="PPM")
        self._idle: dict[str, list[Engine]] = defaultdict(list)
        self._all: list[Engine] = []
        self._lock = threading.Lock()

    def start(self, model: str, count: int) -> None:
        """Have ``count`` engines of ``model`` idle and their processes started: Tesseract
        loads its model while the first pages are rendered and prepared."""
        with self._lock:
            missing = count - len(self._idle[model])
        for _ in range(missing):
            engine = self._new(model)
            engine.start()
            with self._lock:
                self._idle[model].append(engine)

    @contextlib.contextmanager
    def engine(self, model: str) -> Iterator[Engine]:
        """An engine of ``model`` for the caller alone until it is done."""
        with self._lock:
            idle = self._idle[model]
            engine = idle.pop() if idle else None
        engine = engine or self._new(model)
        try:
            yield engine
        finally:
            with self._lock:
                self._idle[model].append(engine)

    def _new(self, model: str) -> Engine:
        engine = Engine(model, self._directory, self._blank)
        with self._lock:
            self._all.append(engine)
        return engine

    def close(self) -> None:
        with self._lock:
            engines, self._all = self._all, []
            self._idle.clear()
        for engine in engines:
            engine.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)


def orientation(image: Image.Image, *, timeout: float) -> int:
    """Degrees (0, 90, 180, 270) to turn the page clockwise to read it; 0 when Tesseract's
    orientation detection cannot tell."""
    try:
        found = _ROTATE.search(_run(["stdin", "stdout", "--psm", "0", "-l", "osd"], image, timeout=timeout))
    except (OcrTimeout, OcrFailed):
        return 0
    return int(found.group(1)) % 360 if found else 0


def read(image: Image.Image, model: str, *, timeout: float, engines: Engines | None = None) -> Reading:
    """The page prepared and read; read upright again if it lay turned and read poorly.
    Read by an engine of ``engines`` when given."""
    if engines is None:
        return _read(image, model, timeout=timeout, engine=None)
    with engines.engine(model) as engine:
        engine.start()  # loading its model while the page is prepared
        return _read(image, model, timeout=timeout, engine=engine)


def _read(image: Image.Image, model: str, *, timeout: float, engine: Engine | None) -> Reading:
    prepared = preprocess.prepare(image)
    reading = tesseract(prepared.image, model, timeout=timeout, engine=engine)
    reading.steps = list(prepared.steps)
    if reading.confidence >= DOUBTFUL_CONFIDENCE:
        return reading
    turn = orientation(prepared.image, timeout=timeout)
    if turn == 0:
        return reading
    upright = prepared.image.rotate(-turn, expand=True)
    again = tesseract(upright, model, timeout=timeout, engine=engine)
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
