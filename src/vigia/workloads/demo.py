"""A small real pipeline that shows the engine at work: text statistics.

    load ─┬─ words ──────┬─ report
          ├─ sentences ──┤
          └─ language ───┘   (non-critical: the report goes on without it)

Input: ``{"text": "...", "pace": 0.05, "flaky": false}``; without ``text`` it reads the
bundled sample. ``pace`` (seconds per step) slows the stages down so that a person can
watch the progress; ``flaky`` makes the words stage fail its first attempt, to show a retry.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from importlib import resources
from typing import Any

from vigia.context import StageContext
from vigia.exceptions import InvalidInput, Retry
from vigia.pipeline import Pipeline, Severity
from vigia.retry import RetryPolicy

STEPS = 20
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = {
    "en": {"the", "and", "of", "to", "a", "in", "is", "that", "for", "it", "with", "as", "on", "be", "are"},
    "es": {"el", "la", "de", "que", "y", "en", "los", "las", "un", "una", "por", "con", "para", "es", "se"},
}
MAX_TEXT = 5_000_000


def _validate(job_input: Any) -> None:
    if job_input is None:
        return
    if not isinstance(job_input, dict):
        raise InvalidInput('the demo pipeline takes an object like {"text": "..."}')
    text = job_input.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise InvalidInput("'text' must be a non-empty string", field="text")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise InvalidInput(f"'text' is longer than {MAX_TEXT} characters", field="text")
    pace = job_input.get("pace", 0)
    if not isinstance(pace, int | float) or isinstance(pace, bool) or not 0 <= pace <= 5:
        raise InvalidInput("'pace' must be a number of seconds between 0 and 5", field="pace")


pipeline = Pipeline(
    "demo",
    version="1",
    description="Text statistics in parallel branches: the engine's smallest real pipeline.",
    validate_input=_validate,
)


def _pace(ctx: StageContext) -> float:
    return float((ctx.input or {}).get("pace", 0))


def _steps(ctx: StageContext, items: list[Any], label: str) -> list[list[Any]]:
    """Split work into steps, reporting progress (and honouring pace and cancellation)."""
    size = max(1, -(-len(items) // STEPS))
    chunks = [items[start : start + size] for start in range(0, len(items), size)] or [[]]
    for number, _chunk in enumerate(chunks, 1):
        ctx.raise_if_cancelled()
        if _pace(ctx):
            time.sleep(_pace(ctx))
        ctx.progress(number / len(chunks), f"{label} {number}/{len(chunks)}")
    return chunks


@pipeline.stage(after=(), weight=1, severity=Severity.HIGH)
def load(ctx: StageContext) -> dict[str, Any]:
    """Read the text (or the bundled sample) and normalise its whitespace."""
    text = (ctx.input or {}).get("text")
    if text is None:
        text = resources.files("vigia.workloads").joinpath("demo_sample.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    _steps(ctx, lines, "reading line block")
    normalised = re.sub(r"\s+", " ", text).strip()
    return {"text": normalised, "characters": len(normalised)}


@pipeline.stage(after="load", weight=2, retry=RetryPolicy(max_attempts=3, base_delay=0.5))
def words(ctx: StageContext) -> dict[str, Any]:
    """Count words and the most frequent ones (stopwords left out)."""
    if (ctx.input or {}).get("flaky") and ctx.attempt == 1:
        raise Retry("simulated transient failure on the first attempt", after=0.5)
    found = [word.lower() for word in _WORD.findall(ctx.outputs["load"]["text"])]
    counts: Counter[str] = Counter()
    stop = set().union(*_STOPWORDS.values())
    for chunk in _steps(ctx, found, "counting words, block"):
        counts.update(word for word in chunk if word not in stop and len(word) > 2)
    return {"words": len(found), "distinct": len(set(found)), "top": dict(counts.most_common(8))}


@pipeline.stage(after="load", weight=2)
def sentences(ctx: StageContext) -> dict[str, Any]:
    """Split sentences and measure them."""
    parts = [part for part in _SENTENCE_END.split(ctx.outputs["load"]["text"]) if part]
    lengths: list[int] = []
    for chunk in _steps(ctx, parts, "measuring sentences, block"):
        lengths.extend(len(_WORD.findall(part)) for part in chunk)
    return {
        "sentences": len(parts),
        "mean_words": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        "longest_words": max(lengths, default=0),
    }


@pipeline.stage(after="load", weight=1, critical=False, severity=Severity.LOW)
def language(ctx: StageContext) -> dict[str, Any]:
    """Guess English or Spanish from stopwords (non-critical)."""
    found = [word.lower() for word in _WORD.findall(ctx.outputs["load"]["text"])]
    scores = {language: sum(word in stop for word in found) for language, stop in _STOPWORDS.items()}
    ctx.progress(1.0, "compared stopword counts")
    best = max(scores, key=lambda language: scores[language])
    return {"language": best if scores[best] else "unknown", "scores": scores}


@pipeline.stage(after=("words", "sentences", "language"), weight=1)
def report(ctx: StageContext) -> dict[str, Any]:
    """Join the branches into one report."""
    words_out, sentences_out = ctx.outputs["words"], ctx.outputs["sentences"]
    language_out = ctx.outputs.get("language", {"language": "unavailable"})
    ctx.progress(1.0, "report assembled")
    return {
        "characters": ctx.outputs["load"]["characters"],
        "words": words_out["words"],
        "distinct_words": words_out["distinct"],
        "top_words": words_out["top"],
        "sentences": sentences_out["sentences"],
        "mean_words_per_sentence": sentences_out["mean_words"],
        "language": language_out["language"],
    }
