"""The billed codes against what the note supports, and the documentation a coder would query.

Works on the report's own JSON (the ICD-10 stage's codes and exclusions), so that it runs
wherever that output is, and says of every finding which text it rests on:

- **unsupported**: a billed code the note does not support: not a billable code (a
  category), documented as absent, ruled out, uncertain or a relative's, a different stage
  or severity than documented, or not documented at all;
- **missing**: a code the note supports that the bill lacks;
- **more_specific**: a billed code the note supports only in a less specific form than it
  documents (E11.9 billed, diabetes with chronic kidney disease documented: E11.22), or a
  code the "with" convention replaces by a combination code (I10 with I12.9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vigia.workloads.coding.codeset import billable, codeset, describe, normalise_code

#: Categories that code one condition between them: a code of one and a code of another
#: are the same condition coded differently (hypertension alone, with heart disease, with
#: kidney disease; diabetes by type).
FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"I10", "I11", "I12", "I13", "I15", "I16"}),
    frozenset({"E08", "E09", "E10", "E11", "E13"}),
    frozenset({"N17", "N18", "N19"}),
    frozenset({"J44", "J43", "J42"}),
    frozenset({"I48"}),
    frozenset({"J18", "J15", "J69"}),
)


def _category(code: str) -> str:
    return code.replace(".", "")[:3]


def related(first: str, second: str) -> bool:
    """Whether two codes code the same condition (one category, or one family)."""
    one, other = _category(first), _category(second)
    return one == other or any(one in family and other in family for family in FAMILIES)


def _less_specific(billed: str, documented: str) -> bool:
    """``billed`` says less than ``documented``: its ancestor or its category's unspecified
    code, or the single code a combination code replaces (I10 where I12.9 is documented)."""
    if _category(billed) != _category(documented):
        return billed in {"I10", "N19"}
    icd = codeset()
    if icd.is_valid_item(billed) and documented in icd.get_descendants(billed):
        return True
    described = describe(billed).casefold()
    return "unspecified" in described or "without complications" in described


def _closest(code: str, candidates: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``candidates`` by how many leading characters their code shares with ``code``."""

    def shared(item: Mapping[str, Any]) -> int:
        other = item["code"]
        return next((index for index, (a, b) in enumerate(zip(code, other, strict=False)) if a != b), len(other))

    return sorted(candidates, key=shared, reverse=True)


def _evidence(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(item.get("evidence") or [])


def analyse(
    billed_codes: Sequence[str], codes: Sequence[Mapping[str, Any]], excluded: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``billed_codes`` (as the clinic sent them) against the note's asserted ``codes`` and
    its ``excluded`` mentions, both as the ICD-10 stage reports them."""
    billed = list(dict.fromkeys(normalise_code(code) for code in billed_codes))
    asserted = {item["code"]: item for item in codes}
    unsupported: list[dict[str, Any]] = []
    more_specific: list[dict[str, Any]] = []
    supported: list[str] = []
    accounted: set[str] = set()
    for code in billed:
        if code in asserted:
            supported.append(code)
            accounted.add(code)
            continue
        finding = _billed_finding(code, asserted, excluded)
        if finding.get("suggested"):
            accounted.add(finding["suggested"])
        (more_specific if finding.pop("kind") == "more_specific" else unsupported).append(finding)
    missing = [
        {
            "code": code,
            "description": item["description"],
            "reason": "documented in the note but not billed",
            "evidence": _evidence(item),
        }
        for code, item in asserted.items()
        if code not in accounted
    ]
    return {
        "billed": billed,
        "supported": supported,
        "unsupported": unsupported,
        "missing": missing,
        "more_specific": more_specific,
    }


def _billed_finding(
    code: str, asserted: Mapping[str, Mapping[str, Any]], excluded: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What is wrong with one billed code the note does not assert as billed."""
    description = describe(code)
    finding: dict[str, Any] = {"code": code, "description": description}
    documented = _closest(code, [item for other, item in asserted.items() if related(code, other)])
    if not billable(code):
        children = [item["code"] for item in documented]
        finding.update(
            kind="unsupported",
            reason="not billable: a category, not a leaf code"
            + (f"; the note supports {', '.join(children)}" if children else ""),
            evidence=[piece for item in documented for piece in _evidence(item)],
            suggested=children[0] if children else None,
        )
        return finding
    for item in excluded:
        if item["code"] == code or (related(code, item["code"]) and not documented):
            finding.update(kind="unsupported", reason=item["reason"], evidence=_evidence(item), suggested=None)
            return finding
    if documented:
        best = documented[0]
        if _less_specific(code, best["code"]):
            finding.update(
                kind="more_specific",
                reason=f"the note documents {best['code']} ({best['description']})",
                suggested=best["code"],
                evidence=_evidence(best),
            )
        else:
            finding.update(
                kind="unsupported",
                reason=_mismatch(code, best),
                suggested=best["code"],
                evidence=_evidence(best),
            )
        return finding
    finding.update(kind="unsupported", reason="not documented in the note", evidence=[], suggested=None)
    return finding


def _mismatch(code: str, documented: Mapping[str, Any]) -> str:
    """A billed code of the right condition but not what the note says of it."""
    if _category(code) == "L89":
        return f"wrong site or stage: the note documents {documented['code']} ({documented['description']})"
    return f"wrong type, stage or severity: the note documents {documented['code']} ({documented['description']})"


def quality(queries: Iterable[Mapping[str, Any]], codes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What a coder would query the clinician about, each with the text that prompted it
    (the ICD-10 stage's documentation gaps, and a note that supports no diagnosis)."""
    found = [dict(query) for query in queries]
    if not codes:
        found.append({"concept": None, "issue": "no diagnosis documented that supports a code", "evidence": []})
    return found
