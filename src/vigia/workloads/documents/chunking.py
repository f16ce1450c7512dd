"""Chunks of cleaned text for search: about ``size`` characters each, ending on a sentence
boundary where there is one, each starting ``overlap`` characters before the previous one
ended (on a word boundary), and each knowing its offsets and pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from vigia.workloads.documents.cleaning import CleanText

DEFAULT_SIZE = 1000
DEFAULT_OVERLAP = 100
#: Abbreviations after which a full stop ends no sentence (Spanish and English documents).
ABBREVIATIONS = frozenset(
    """
    sr sra srta sres dr dra drs lic ing arq abg prof mg mag mba phd med enf tec
    art arts inc núm num nro n no nº ref exp pág pag págs pp p vol cap fig tel telf
    av avda jr dpto dept depto mz lt urb esq km aprox approx etc ej e g i e vs cf
    st mr mrs ms jan feb mar apr jun jul aug sep sept oct nov dec ene abr ago set dic
    cia s a s r l sac eirl u s a
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_BOUNDARY = re.compile(r"(?<=[.!?…;:])[\"'”»)\]]*\s+|\n\s*\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    #: Offsets in the cleaned text: ``text == clean.text[start:end]``.
    start: int
    end: int
    text: str
    #: The pages it spans, from 1.
    page_start: int
    page_end: int


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence (and paragraph) of ``text``, the last one included."""
    ends = []
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        if match.group().strip() == "" and text[end - 1 : end] == ".":
            word = re.search(r"(\w+)\.$", text[max(0, end - 20) : end])
            if word and (word.group(1).casefold() in ABBREVIATIONS or len(word.group(1)) == 1):
                continue
            following = text[match.end() : match.end() + 1]
            if following and following.islower():  # "etc. y", a decimal-free abbreviation
                continue
        ends.append(end)
    if not ends or ends[-1] < len(text.rstrip()):
        ends.append(len(text.rstrip()))
    return ends


def _word_start(text: str, offset: int) -> int:
    """The start of the word at or after ``offset``."""
    while offset < len(text) and not text[offset].isspace() and offset > 0 and not text[offset - 1].isspace():
        offset += 1
    while offset < len(text) and text[offset].isspace():
        offset += 1
    return offset


def _word_end(text: str, start: int, limit: int) -> int:
    """The last word boundary at or before ``limit`` after ``start`` (``limit`` itself in a
    text without spaces)."""
    cut = text.rfind(" ", start + 1, limit)
    cut = max(cut, text.rfind("\n", start + 1, limit))
    return cut if cut > start else limit


def spans(text: str, *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> Iterator[tuple[int, int]]:
    """(start, end) of each chunk of ``text``."""
    if size <= overlap:
        raise ValueError(f"a chunk ({size}) must be longer than its overlap ({overlap})")
    ends = sentence_ends(text)
    length = len(text.rstrip())
    start = _word_start(text, 0)
    while start < length:
        limit = start + size
        fitting = [end for end in ends if start < end <= limit]
        if limit >= length:
            end = length
        elif fitting and fitting[-1] - start >= size // 2:
            end = fitting[-1]
        else:  # a sentence longer than half a chunk: cut between words
            end = _word_end(text, start, limit)
        chunk_start = start
        yield chunk_start, end
        if end >= length:
            return
        # One very long word: no overlap rather than no progress.
        start = min(end, _word_start(text, max(end - overlap, chunk_start + 1)))


def chunk(clean: CleanText, *, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    found = []
    for index, (start, end) in enumerate(spans(clean.text, size=size, overlap=overlap)):
        text = clean.text[start:end]
        if not text.strip():
            continue
        found.append(Chunk(index, start, end, text, clean.page_of(start), clean.page_of(max(start, end - 1))))
    return found
