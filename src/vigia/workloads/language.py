"""Which language a text is in, Spanish or English: the two the workloads read (their OCR
models, metadata tables and clinical rules). A detector library (lingua, Apache-2.0, its
n-gram models restricted to the two, preloaded: 0.9 s and ~140 MB once per process) rather
than word lists: it decides well on a single sentence, and says how sure it is."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

#: The languages documents are read in, and the Tesseract model of each.
LANGUAGES = ("es", "en")
TESSERACT_MODELS = {"es": "spa", "en": "eng"}
#: Fewer letters than this say nothing reliable about a language.
MIN_LETTERS = 20


@dataclass(frozen=True, slots=True)
class Detected:
    language: str
    #: The detector's confidence in it, 0–1.
    confidence: float


@functools.cache
def _detector() -> Any:
    from lingua import Language, LanguageDetectorBuilder  # noqa: PLC0415 -- its models load in 0.9 s: once, when needed

    return (
        LanguageDetectorBuilder.from_languages(Language.SPANISH, Language.ENGLISH)
        .with_preloaded_language_models()
        .build()
    )


def detect(text: str) -> Detected | None:
    """The language of ``text`` between Spanish and English, or None when it has too few
    letters to tell."""
    if sum(char.isalpha() for char in text) < MIN_LETTERS:
        return None
    values = _detector().compute_language_confidence_values(text[:20_000])
    if not values:
        return None
    best = values[0]
    return Detected(best.language.iso_code_639_1.name.lower(), float(best.value))


def tesseract_model(language: str | None) -> str:
    """The Tesseract model for a language; both when it is not known yet."""
    return TESSERACT_MODELS.get(language or "", "spa+eng")
