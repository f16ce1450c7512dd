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


#: Languages a clinical note might be in, told apart from the two read: a note in one of
#: them is refused by name rather than read with the wrong rules.
OTHER_LANGUAGES = ("PORTUGUESE", "FRENCH", "ITALIAN", "GERMAN", "CATALAN", "DUTCH")
#: Above this confidence a note is taken to be in another language.
OTHER_LANGUAGE_CONFIDENCE = 0.6


@functools.cache
def _wide_detector() -> Any:
    """Trigram models only (lingua's low-accuracy mode): 0.1 s and ~30 MB to load, and
    plenty for a paragraph; the languages' names are lingua's own."""
    from lingua import Language, LanguageDetectorBuilder  # noqa: PLC0415 -- as above

    languages = [Language.SPANISH, Language.ENGLISH, *(getattr(Language, name) for name in OTHER_LANGUAGES)]
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


@dataclass(frozen=True, slots=True)
class Identified:
    #: "es" or "en": the one of the two the text is closer to.
    language: str
    confidence: float
    #: Another language the text reads as (ISO 639-1 code and English name), or None.
    other: tuple[str, str] | None = None


def identify(text: str) -> Identified:
    """Spanish or English, or another language by name when the text is clearly in one.
    Short or terse texts (abbreviations, lists) lean on the two: English when undecided."""
    values = _wide_detector().compute_language_confidence_values(text[:20_000])
    scores = {value.language.iso_code_639_1.name.lower(): float(value.value) for value in values}
    best = values[0] if values else None
    if (
        best is not None
        and best.language.name in OTHER_LANGUAGES
        and float(best.value) >= OTHER_LANGUAGE_CONFIDENCE
        and sum(char.isalpha() for char in text) >= MIN_LETTERS
    ):
        return Identified(
            "es" if scores.get("es", 0) > scores.get("en", 0) else "en",
            float(best.value),
            (best.language.iso_code_639_1.name.lower(), best.language.name.capitalize()),
        )
    spanish, english = scores.get("es", 0.0), scores.get("en", 0.0)
    total = spanish + english
    if total == 0:
        return Identified("en", 0.0)
    language = "es" if spanish > english else "en"
    return Identified(language, round(max(spanish, english) / total, 3))
