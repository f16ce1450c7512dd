"""Text of a document, page by page: a PDF's own text layer where it is good, Tesseract where
it is missing or garbage, images read by Tesseract. Each page records how it was read and,
when OCR'd, the mean confidence of its words.

PDFs are read with pypdfium2 (Google's PDFium; BSD-3 and Apache-2.0): it extracts the text
layer and renders pages for OCR with one library, at about 0.15 ms a page for text and 6–10
ms a page for a 200–300 dpi render, and it tells text objects drawn invisibly (a scan with
someone else's OCR laid over it) from visible ones. pypdf (BSD-3) answers only what PDFium
cannot tell apart: whether a file that does not open has no pages at all.

A born-digital page is never OCR'd: its text layer is exact, and OCR would only add errors
(the complaint Paperless-ngx's users make of re-OCR'd PDFs).
"""

from __future__ import annotations

import io
import itertools
import math
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from vigia.exceptions import InvalidInput, PayloadTooLarge, Permanent
from vigia.workloads import language as languages
from vigia.workloads.decoding import DECODE_BUDGET, DecodeBudget, Hold
from vigia.workloads.documents import ocr

PDF = "application/pdf"
IMAGES = ("image/jpeg", "image/png", "image/tiff")
#: What the pipeline accepts (sniffed from the bytes).
ACCEPTS = (PDF, *IMAGES)
#: Pages are rendered for OCR at this resolution...
OCR_DPI = 300
#: ...but never into more pixels than this (a poster-sized page would take gigabytes).
MAX_RENDER_PIXELS = 40_000_000
#: An image larger than this is refused before it is decoded (a decompression bomb).
MAX_IMAGE_PIXELS = 60_000_000
#: A text layer with fewer letters and digits than this on a page is "missing".
MIN_TEXT_CHARACTERS = 25
#: ...and one where fewer than this share of its visible characters are letters, digits,
#: spaces or common punctuation is garbage (a font without a Unicode map, symbols).
MIN_PLAUSIBLE_SHARE = 0.85
#: An image covering this share of the page makes it a scan.
SCAN_COVERAGE = 0.5

_PLAUSIBLE_PUNCTUATION = set(".,;:!?¿¡()[]{}\"'«»“”‘’-–—/\\%&@#*+=°º ª$€£¢_|<>~…·•")


class DocumentRefused(InvalidInput):
    """The file is not a document this workload can read."""

    code = "document_refused"


@dataclass(slots=True)
class PageText:
    number: int
    text: str
    #: "text_layer", "ocr", "empty" (nothing on it to read) or "failed" (OCR failed).
    method: str
    ocr_confidence: float | None = None
    #: Why the text layer was not used, or why OCR failed.
    reason: str | None = None
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "text": self.text,
            "method": self.method,
            "ocr_confidence": self.ocr_confidence,
            "reason": self.reason,
            "steps": self.steps,
        }


@dataclass(frozen=True, slots=True)
class Layer:
    """What a PDF page's own text layer holds, and whether to trust it."""

    text: str
    usable: bool
    reason: str | None


# --- checking files before anything runs --------------------------------------------------


def check_pdf(data: bytes | Path, *, max_pages: int) -> int:
    """The page count of a PDF this workload can read; `DocumentRefused` (a 422) for a
    corrupt, encrypted or empty one, `PayloadTooLarge` (a 413) beyond ``max_pages``."""
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        # PDFium's error code can be a previous call's: ask pypdf what is wrong instead.
        raise DocumentRefused(_why_unreadable(data)) from None
    try:
        if pdfium_raw.FPDF_GetSecurityHandlerRevision(document.raw) != -1:
            # Opens without a password but is encrypted (an owner password): its text may be
            # locked against extraction, and what is extracted is unreliable.
            raise DocumentRefused("the PDF is encrypted (restricted by an owner password): send it unencrypted")
        pages = len(document)
    finally:
        document.close()
    if pages == 0:
        raise DocumentRefused("the PDF has no pages")
    if pages > max_pages:
        raise PayloadTooLarge(f"the PDF has {pages} pages; at most {max_pages} are accepted", pages=pages)
    return pages


def _why_unreadable(data: bytes | Path) -> str:
    """Why PDFium refused a PDF: it refuses an encrypted one, one without pages and a
    broken one alike; pypdf tells them apart."""
    import pypdf  # noqa: PLC0415 -- only for a file PDFium would not open

    try:
        reader = pypdf.PdfReader(io.BytesIO(data) if isinstance(data, bytes) else data)
        if reader.is_encrypted:
            return "the PDF is encrypted with a password: send it unencrypted"
        if len(reader.pages) == 0:
            return "the PDF has no pages"
    except Exception:  # pypdf raises many kinds for a broken file: it is broken either way
        pass
    return "the PDF is damaged or not a PDF: PDFium cannot open it"


def check_image(data: bytes | Path) -> int:
    """The frame (page) count of an image this workload can read; `DocumentRefused` when
    the bytes are not a readable image, `PayloadTooLarge` when it is too large to decode."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise PayloadTooLarge(
                    f"the image is {width}×{height} pixels; at most {MAX_IMAGE_PIXELS:,} are read",
                    pixels=width * height,
                )
            frames = getattr(image, "n_frames", 1)
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DocumentRefused(f"the image cannot be read: {type(error).__name__}") from None
    return int(frames)


def check_file(path: Path, media_type: str, *, max_pages: int) -> int:
    """Pages of a file, checked as `check_pdf` or `check_image` does."""
    if media_type == PDF:
        return check_pdf(path, max_pages=max_pages)
    if media_type in IMAGES:
        frames = check_image(path)
        if frames > max_pages:
            raise PayloadTooLarge(f"the image has {frames} pages; at most {max_pages} are accepted", pages=frames)
        return frames
    raise DocumentRefused(f"{media_type} is not a PDF or an image (JPEG, PNG, TIFF)")


# --- the text layer -----------------------------------------------------------------------


def plausible_share(text: str) -> float:
    """Share of the visible characters that a real text is made of."""
    return _Characters(text).plausible_share


class _Characters:
    """What a text is made of, counted once per distinct character: a page holds thousands
    of characters but only a hundred or so different ones."""

    def __init__(self, text: str) -> None:
        counts = Counter(text)
        self.visible = self.plausible = self.alphanumeric = self.letters = self.vowels = 0
        for char, count in counts.items():
            if char.isspace():
                continue
            self.visible += count
            if unicodedata.category(char)[0] in "LN" or char in _PLAUSIBLE_PUNCTUATION:
                self.plausible += count
            if char.isalnum():
                self.alphanumeric += count
            if char.isalpha():
                self.letters += count
                self.vowels += count if char.casefold() in "aeiouáéíóúüàèìòùy" else 0
        self.replacements = counts.get("\ufffd", 0)

    @property
    def plausible_share(self) -> float:
        return self.plausible / self.visible if self.visible else 0.0


def judge_layer(text: str, *, scanned: bool, invisible: bool) -> Layer:
    """Whether to use a page's text layer, and if not, why."""
    if scanned and invisible:
        return Layer(text, False, "a scanned image under an invisible text layer (someone else's OCR)")
    characters = _Characters(text)
    if characters.visible == 0:
        return Layer(text, False, "no text layer")
    share = characters.plausible_share
    if characters.visible >= MIN_TEXT_CHARACTERS and (share < MIN_PLAUSIBLE_SHARE or characters.replacements > 3):
        return Layer(text, False, f"the text layer is garbage ({share:.0%} plausible characters)")
    if characters.alphanumeric < MIN_TEXT_CHARACTERS:
        return Layer(text, False, "too little text in the text layer")
    if characters.letters and characters.vowels / characters.letters < 0.2:
        return Layer(text, False, "the text layer is garbage (no words in it)")
    return Layer(text, True, None)


def _page_layer(page: pdfium.PdfPage) -> Layer:
    text = page.get_textpage().get_text_range()
    width, height = page.get_size()
    area = max(width * height, 1.0)
    covered = 0.0
    texts = invisible = 0
    for item in page.get_objects(max_depth=2):
        if item.type == pdfium_raw.FPDF_PAGEOBJ_IMAGE:
            left, bottom, right, top = item.get_bounds()
            covered = max(covered, (right - left) * (top - bottom) / area)
        elif item.type == pdfium_raw.FPDF_PAGEOBJ_TEXT:
            texts += 1
            invisible += pdfium_raw.FPDFTextObj_GetTextRenderMode(item.raw) == pdfium_raw.FPDF_TEXTRENDERMODE_INVISIBLE
    return judge_layer(text, scanned=covered >= SCAN_COVERAGE, invisible=texts > 0 and invisible == texts)


def _render_scale(page: pdfium.PdfPage) -> tuple[float, int]:
    """The scale a page is rendered at for OCR, and the pixels its render holds (PDFium
    rounds each side up), never more than `MAX_RENDER_PIXELS`."""
    width, height = (float(side) for side in page.get_size())
    scale = OCR_DPI / 72

    def pixels() -> int:
        return math.ceil(width * scale) * math.ceil(height * scale)

    if pixels() > MAX_RENDER_PIXELS:
        scale *= math.sqrt(MAX_RENDER_PIXELS / pixels())
        while pixels() > MAX_RENDER_PIXELS:  # the sides rounded up: a hair smaller
            scale *= 0.9995
    return scale, pixels()


def _render(page: pdfium.PdfPage, scale: float) -> Image.Image:
    # PDFium's native BGRx in a buffer it allocates itself, then OpenCV's conversion to
    # grey: the same pixels for a grey scan as PDFium's grey rendering, in a quarter of its
    # time (19 against 77 ms a page at 300 dpi; ctypes' zero-filled buffer doubles it).
    # Its buffer is freed with the last reference to it, when this returns.
    bitmap = page.render(scale=scale, prefer_bgrx=True, bitmap_maker=pdfium.PdfBitmap.new_foreign)
    image: Image.Image = Image.fromarray(cv2.cvtColor(bitmap.to_numpy(), cv2.COLOR_BGRA2GRAY))
    return image


# --- whole documents ----------------------------------------------------------------------


@dataclass(slots=True)
class Extraction:
    pages: list[PageText]
    language: str | None
    language_source: str

    @property
    def methods(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for page in self.pages:
            counts[page.method] = counts.get(page.method, 0) + 1
        return counts


Progress = Callable[[int, int, str], None]


class Decoded(NamedTuple):
    """A page's image to read, and the pixels it holds of the process's decode budget
    (given back once it has been read)."""

    number: int
    image: Image.Image
    hold: Hold


def _releasing(hold: Hold) -> Callable[[Future[ocr.Reading]], None]:
    return lambda _: hold.release()


class Reader:
    """Extracts a document's pages: OCR of several pages at once, up to ``workers``."""

    def __init__(
        self,
        *,
        workers: int,
        timeout: float,
        progress: Progress = lambda done, total, message: None,
        cancelled: Callable[[], bool] = lambda: False,
        budget: DecodeBudget = DECODE_BUDGET,
    ) -> None:
        self.workers = max(1, workers)
        self.timeout = timeout
        self.progress = progress
        self.cancelled = cancelled
        self.budget = budget

    def read(self, path: Path, media_type: str, *, language: str | None = None) -> Extraction:
        if media_type == PDF:
            return self._read_pdf(path, language)
        if media_type in IMAGES:
            return self._read_images(path, language)
        raise Permanent(f"{media_type} is not a PDF or an image")

    def _read_pdf(self, path: Path, hint: str | None) -> Extraction:
        document = pdfium.PdfDocument(path)
        try:
            total = len(document)
            layers = []
            for index in range(total):
                page = document[index]
                try:
                    layers.append(_page_layer(page))
                finally:
                    page.close()
            language, source = self._language(hint, [layer.text for layer in layers if layer.usable])
            pages: dict[int, PageText] = {
                number: PageText(number, layer.text, "text_layer")
                for number, layer in enumerate(layers, start=1)
                if layer.usable
            }
            self.progress(len(pages), total, f"text layer of {len(pages)} of {total} pages")
            wanted = [number for number, layer in enumerate(layers, start=1) if not layer.usable]
            reasons = {number: layers[number - 1].reason for number in wanted}

            def images() -> Iterator[Decoded]:
                # PDFium is not thread-safe: pages are rendered here, one at a time, and
                # only read in parallel.
                for number in wanted:
                    page = document[number - 1]
                    try:
                        scale, pixels = _render_scale(page)
                        hold = self.budget.take(pixels, f"page {number}")
                        try:
                            image = _render(page, scale)
                        except BaseException:
                            hold.release()
                            raise
                    finally:
                        page.close()
                    yield Decoded(number, image, hold)
                    del image  # not held here while the next page waits for the budget

            language, source = self._ocr(images(), language, source, pages, reasons, total)
        finally:
            document.close()
        return Extraction([pages[number] for number in sorted(pages)], language, source if language else "none")

    def _read_images(self, path: Path, hint: str | None) -> Extraction:
        pages: dict[int, PageText] = {}
        with Image.open(path) as image:
            total = getattr(image, "n_frames", 1)

            def images() -> Iterator[Decoded]:
                for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                    hold = self.budget.take(frame.width * frame.height, f"page {number}")
                    try:
                        # A phone photo's orientation tag turns it upright first.
                        grey = ImageOps.exif_transpose(frame.convert("L"))
                    except BaseException:
                        hold.release()
                        raise
                    yield Decoded(number, grey, hold)
                    del grey

            language, source = self._language(hint, [])
            reasons = dict.fromkeys(range(1, total + 1), "an image")
            language, source = self._ocr(images(), language, source, pages, reasons, total)
        return Extraction([pages[number] for number in sorted(pages)], language, source if language else "none")

    @staticmethod
    def _language(hint: str | None, texts: list[str]) -> tuple[str | None, str]:
        if hint in languages.LANGUAGES:
            return hint, "hint"
        detected = languages.detect("\n".join(texts)) if texts else None
        return (detected.language, "text layer") if detected else (None, "none")

    def _ocr(
        self,
        images: Iterator[Decoded],
        language: str | None,
        source: str,
        pages: dict[int, PageText],
        reasons: Mapping[int, str | None],
        total: int,
    ) -> tuple[str | None, str]:
        """Read the pages ``images`` yields into ``pages``; returns the document's language
        and where it was learnt (detected from the first page read when nothing said it)."""
        if not reasons:
            return language, source
        lock = threading.Lock()

        def record(number: int, reading: ocr.Reading | None, failure: str | None = None) -> None:
            if reading is None:
                page = PageText(number, "", "failed", None, failure or "Tesseract could not read the page")
            else:
                method = "ocr" if reading.words else "empty"
                page = PageText(number, reading.text, method, reading.confidence, reasons.get(number), reading.steps)
            with lock:
                pages[number] = page
                self.progress(len(pages), total, f"page {number} read ({page.method})")

        # A first page read with both models, kept in case reading it again with its own fails.
        fallback: dict[int, ocr.Reading] = {}

        def finish(number: int, future: Future[ocr.Reading]) -> None:
            try:
                record(number, future.result())
            except (ocr.OcrTimeout, ocr.OcrFailed) as error:
                if number in fallback:
                    record(number, fallback[number])
                else:
                    record(number, None, str(error))

        iterator = iter(images)
        first_hold: Hold | None = None
        try:
            with ocr.Engines() as engines:
                # Started now, Tesseract loads its model while the first pages are rendered.
                engines.start(
                    languages.tesseract_model(language), 1 if language is None else min(self.workers, len(reasons))
                )
                if language is None:
                    first = next(iterator, None)
                    if first is None:
                        return None, source
                    first_hold = first.hold
                    reading, failure = self._read_one(first.image, languages.tesseract_model(None), engines)
                    detected = languages.detect(reading.text) if reading is not None else None
                    if detected is not None and reading is not None:
                        language, source = detected.language, "ocr"
                        # Read again with the right model alone ("spa+eng" loses Spanish
                        # accents), beside the next pages rather than before them.
                        fallback[first.number] = reading
                        iterator = itertools.chain([first], iterator)
                    else:
                        first.hold.release()
                        record(first.number, reading, failure)
                    del first
                model = languages.tesseract_model(language)
                engines.start(model, min(self.workers, sum(number not in pages for number in reasons)))
                self._read_all(iterator, model, engines, finish)
        finally:
            # Read or not (a failure on the way), every page submitted has finished by now.
            if first_hold is not None:
                first_hold.release()
        return language, source

    def _read_all(
        self,
        images: Iterator[Decoded],
        model: str,
        engines: ocr.Engines,
        finish: Callable[[int, Future[ocr.Reading]], None],
    ) -> None:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="vigia-ocr") as pool:
            running: list[tuple[int, Future[ocr.Reading]]] = []
            for page in images:
                if self.cancelled():
                    page.hold.release()
                    break
                try:
                    future = pool.submit(ocr.read, page.image, model, timeout=self.timeout, engines=engines)
                except BaseException:
                    page.hold.release()
                    raise
                # Given back by the thread that read it, not by this one: this thread may be
                # waiting on the budget for the next page meanwhile.
                future.add_done_callback(_releasing(page.hold))
                running.append((page.number, future))
                del page  # the image lives on with its reading only
                # At most two pages waiting per reader: renders are large.
                while len(running) >= 2 * self.workers:
                    finish(*running.pop(0))
                for item in [item for item in running if item[1].done()]:
                    running.remove(item)
                    finish(*item)
            for item in running:
                finish(*item)

    def _read_one(self, image: Image.Image, model: str, engines: ocr.Engines) -> tuple[ocr.Reading | None, str | None]:
        try:
            return ocr.read(image, model, timeout=self.timeout, engines=engines), None
        except (ocr.OcrTimeout, ocr.OcrFailed) as error:
            return None, str(error)
