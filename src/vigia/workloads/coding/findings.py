"""What the ICD-10-CM rules read and write: the asserted mentions of a note by concept
(`Found`), and the codes, exclusions and documentation queries they produce."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigia.workloads.coding.context import Mention


@dataclass
class Code:
    code: str
    description: str
    confidence: float
    concept: str
    #: The mentions that support it (offsets into the redacted text; mapped later).
    mentions: list[Mention] = field(default_factory=list)
    #: Why this code and not its category's default (what the text said).
    basis: list[str] = field(default_factory=list)


@dataclass
class Excluded:
    code: str
    description: str
    reason: str
    concept: str
    mention: Mention


@dataclass
class Query:
    """A documentation gap a coder would query the clinician about."""

    concept: str
    issue: str
    mention: Mention


@dataclass
class Inference:
    codes: list[Code] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    ranked: list[dict[str, Any]] = field(default_factory=list)


def sentence(text: str, mention: Mention) -> str:
    return text[mention.sentence_start : mention.sentence_end]


#: What ends the clause a mention stands in ("metformin 850 mg bid, insulin glargine 20 u").
_CLAUSE_BREAK = re.compile(r"[;,.|\n]|\s[-–—]\s")


def clause(text: str, mention: Mention) -> str:
    """The words of ``mention``'s own clause: its sentence cut at the punctuation around it."""
    before = list(_CLAUSE_BREAK.finditer(text, mention.sentence_start, mention.start))
    start = before[-1].end() if before else mention.sentence_start
    after = _CLAUSE_BREAK.search(text, mention.end, mention.sentence_end)
    return text[start : after.start() if after else mention.sentence_end]


@dataclass
class Found:
    """Asserted mentions by concept, and the sentences they stand in."""

    text: str
    by_concept: dict[str, list[Mention]]

    def has(self, concept: str) -> bool:
        return concept in self.by_concept

    def sentences(self, concept: str) -> str:
        return " ".join(sentence(self.text, mention) for mention in self.by_concept.get(concept, []))

    def mentions(self, *concepts: str) -> list[Mention]:
        return [mention for concept in concepts for mention in self.by_concept.get(concept, [])]

    def first(self, concept: str) -> Mention:
        return self.by_concept[concept][0]


#: ``add(code, concept, mentions, basis=(), confidence=0.9)``: a code the note supports.
Add = Callable[..., None]
#: A rule: codes some concepts, and returns the concepts it handled.
Rule = Callable[[Found, Add, Inference], set[str]]
