"""A longer ranked list of candidate codes beside the asserted ones: for each asserted code,
the other billable codes of its category, the ones whose description shares words with the
mention and with what the text said of it (stage, side, type) first. A coder choosing
between close codes sees them side by side; none of them is asserted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from vigia.workloads.coding.codeset import codeset, describe
from vigia.workloads.coding.modifiers import folded

#: Candidates listed per asserted code, and in all.
PER_CODE = 3
LIMIT = 20


class _Mentioned(Protocol):
    @property
    def text(self) -> str: ...


class _Asserted(Protocol):
    code: str
    description: str
    confidence: float
    basis: list[str]

    @property
    def mentions(self) -> Sequence[_Mentioned]: ...


def ranked(codes: Sequence[_Asserted]) -> list[dict[str, Any]]:
    """The asserted ``codes`` (best first), then their closest alternatives."""
    icd = codeset()
    found: list[dict[str, Any]] = [
        {"code": entry.code, "description": entry.description, "score": entry.confidence, "asserted": True}
        for entry in codes
    ]
    seen = {item["code"] for item in found}
    for entry in codes:
        words = {word for mention in entry.mentions for word in folded(mention.text).split()}
        words |= {word for item in entry.basis for word in folded(item).replace(":", " ").split()}
        try:
            siblings = [code for code in icd.get_descendants(icd.get_parent(entry.code)) if icd.is_leaf(code)]
        except ValueError:  # a category without a parent: nothing beside it
            continue
        scored = []
        for code in siblings:
            if code not in seen:
                overlap = len(words & set(folded(describe(code)).replace(",", " ").split())) / (len(words) or 1)
                scored.append((round(entry.confidence * (0.4 + 0.3 * overlap), 2), code))
        for score, code in sorted(scored, reverse=True)[:PER_CODE]:
            found.append({"code": code, "description": describe(code), "score": score, "asserted": False})
            seen.add(code)
    return sorted(found, key=lambda item: (not item["asserted"], -item["score"]))[:LIMIT]
