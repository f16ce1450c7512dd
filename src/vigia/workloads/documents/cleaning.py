"""Cleaning extracted text: Unicode normalised, words split across line ends joined again,
the headers and footers every page repeats removed, whitespace made regular.

Pure text in, text out, with the offsets of each page in the cleaned text kept, so that a
chunk (and a search result) knows which page it came from.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: Characters that compatibility normalisation would change in ways that lose meaning in
#: administrative Spanish (º and ª are ordinals: "N.º 12", "1.ª"), kept as they are.
_KEEP = {"º", "ª", "°"}
#: Zero-width and soft characters that only split words.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
#: A word broken at the end of a line: a letter, a hyphen, the line end, a lowercase letter.
_HYPHENATED = re.compile(r"(?<=[^\W\d_])[-\u2010\u2011]\n[ \t]*(?=[a-záéíóúüñàèìòùç])")
#: Lines that are only a page number ("3", "- 3 -", "Página 3 de 10", "Page 3 of 10").
_PAGE_NUMBER = re.compile(
    r"^\s*(?:[-–—]\s*)?(?:(?:p[áa]g(?:ina)?|page|p)\.?\s*)?\d{1,4}(?:\s*(?:de|of|/)\s*\d{1,4})?(?:\s*[-–—])?\s*$",
    re.IGNORECASE,
)
#: How many lines at the top and at the bottom of a page may be a running header or footer.
EDGE_LINES = 3
#: A line counts as repeated when it stands at the edge of this share of the pages (and of
#: at least two of them).
REPEATED_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class CleanText:
    text: str
    #: Per page (in order), where its text starts and ends in ``text``.
    page_spans: tuple[tuple[int, int], ...]
    #: Header and footer lines removed (each once), for the record.
    removed_lines: tuple[str, ...] = ()

    def page_of(self, offset: int) -> int:
        """The number (from 1) of the page holding character ``offset``."""
        for number, (start, end) in enumerate(self.page_spans, start=1):
            if offset < end or (start == end and offset == start):
                return number
        return len(self.page_spans) or 1


def fold(text: str) -> str:
    """Lower case without accents: what the keyword index holds and what queries match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


#: What the keyword index and queries are made of: runs of letters and digits, folded.
TOKEN = re.compile(r"[0-9a-z]+")


def index_text(text: str) -> str:
    """``text`` as the keyword index holds it: folded tokens separated by spaces (so that
    every database's full-text parser splits "123-2025-UGEL.09/AGEBRE" the same way)."""
    return " ".join(TOKEN.findall(fold(text)))


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width forms, compatibility spaces) but for ordinal signs;
    invisible characters dropped; line ends made ``\\n``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_INVISIBLE)
    if not any(char in text for char in _KEEP):
        return unicodedata.normalize("NFKC", text)
    return "".join(char if char in _KEEP else unicodedata.normalize("NFKC", char) for char in text)


#: Lines up to this long may differ in their numbers from page to page and still be the same
#: header ("Página 3 de 10"); longer ones must repeat exactly.
SHORT_LINE = 40


def _shape(line: str) -> str:
    """A line as it repeats from page to page: case and spacing ignored, and in a short
    line digits stand for any number (page numbers, dates of printing)."""
    text = " ".join(line.split()).casefold()
    return re.sub(r"\d+", "#", text) if len(text) <= SHORT_LINE else text


def _edges(lines: Sequence[str]) -> list[int]:
    """Indexes of the non-blank lines near the top and the bottom of a page: up to
    `EDGE_LINES` each, and never the middle of a short page."""
    filled = [index for index, line in enumerate(lines) if line.strip()]
    reach = min(EDGE_LINES, max(0, (len(filled) - 1) // 2))
    return sorted(set(filled[:reach] + filled[len(filled) - reach :])) if reach else []


def repeated_edge_lines(pages: Sequence[Sequence[str]]) -> set[str]:
    """Shapes of the lines that stand at the top or bottom of most pages."""
    if len(pages) < 2:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({_shape(lines[index]) for index in _edges(lines)})
    needed = max(2, int(len(pages) * REPEATED_SHARE + 0.999))
    return {shape for shape, count in counts.items() if count >= needed and len(shape) > 1}


def clean_pages(pages: Sequence[str]) -> CleanText:
    """Clean each page, drop repeated headers, footers and bare page numbers, and join the
    pages with a blank line."""
    split = [_clean_lines(normalise(page)) for page in pages]
    repeated = repeated_edge_lines(split)
    removed: dict[str, None] = {}
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    offset = 0
    for lines in split:
        edges = set(_edges(lines))
        kept = []
        for index, line in enumerate(lines):
            if index in edges and (_shape(line) in repeated or _PAGE_NUMBER.match(line)):
                removed.setdefault(line.strip(), None)
                continue
            kept.append(line)
        page_text = _join(kept)
        if parts:
            offset += 2  # the blank line between pages
        spans.append((offset, offset + len(page_text)))
        parts.append(page_text)
        offset += len(page_text)
    return CleanText("\n\n".join(parts), tuple(spans), tuple(removed))


def _clean_lines(text: str) -> list[str]:
    text = _HYPHENATED.sub("", text)
    return [_SPACES.sub(" ", line).strip() for line in text.split("\n")]


def _join(lines: Sequence[str]) -> str:
    """Lines as text: at most one blank line between paragraphs, none at either end."""
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
