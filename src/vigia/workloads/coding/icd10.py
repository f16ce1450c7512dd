"""ICD-10-CM codes a note supports, as a careful coder applies the Official Guidelines:

- only conditions the note asserts: negated, ruled-out or uncertain (the outpatient rule),
  family-history and hypothetical mentions are listed apart with the reason, never coded;
  a past condition is coded as its history (Z86.73) when it has one, a chronic one listed
  among the antecedents as present;
- the most specific billable code the text supports: type, stage, site, laterality,
  acuity (`vigia.workloads.coding.modifiers`), checked against the code set;
- combination codes and the presumed links of the "with" convention: diabetes with its
  complications (E11.22 with CKD, E11.42, E11.65…), hypertension with heart failure or
  chronic kidney disease (I11.0, I12.9, I13.x) and the codes that must go with them;
- signs and symptoms integral to a coded diagnosis are not coded separately.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from vigia.workloads.coding import ranking
from vigia.workloads.coding.codeset import billable, describe
from vigia.workloads.coding.context import Mention
from vigia.workloads.coding.findings import Code, Excluded, Found, Inference, Query, Rule
from vigia.workloads.coding.icd10_circulatory import CIRCULATORY
from vigia.workloads.coding.icd10_conditions import CONDITIONS
from vigia.workloads.coding.icd10_metabolic import METABOLIC
from vigia.workloads.coding.icd10_wounds import WOUNDS
from vigia.workloads.coding.lexicon import BY_KEY

__all__ = ["Code", "Excluded", "Inference", "Query", "infer"]

#: The rules, in order; each codes its concepts and says which it handled (the rest get
#: their concept's code).
RULES: tuple[Rule, ...] = (*METABOLIC, *CIRCULATORY, *WOUNDS, *CONDITIONS)


EXCLUSION_REASONS = {
    "ruled_out": "ruled out: looked for and excluded",
    "negated": "negated: documented as absent",
    "uncertain": "uncertain or to be ruled out: not coded as confirmed (outpatient guideline IV.H)",
    "family": "family history: a relative's condition, not the patient's",
    "hypothetical": "hypothetical: a condition to watch for, not present",
    "historical": "historical: no longer present",
}


def _status(mention: Mention) -> str | None:
    """Why a mention is not asserted (None: it is)."""
    concept = BY_KEY[mention.concept]
    for flag in ("family", "ruled_out", "negated", "hypothetical", "uncertain"):
        if getattr(mention, flag):
            return flag
    if mention.historical and not concept.chronic:
        return "historical"
    return None


def infer(text: str, mentions: Sequence[Mention]) -> Inference:
    """Codes the redacted ``text`` supports, from its ``mentions`` and their context."""
    result = Inference()
    asserted: dict[str, list[Mention]] = defaultdict(list)
    for mention in mentions:
        reason = _status(mention)
        concept = BY_KEY[mention.concept]
        if reason is None:
            asserted[mention.concept].append(mention)
        elif reason == "historical" and concept.history_code:
            asserted[f"history:{mention.concept}"].append(mention)
        else:
            result.excluded.append(
                Excluded(concept.code, describe(concept.code), EXCLUSION_REASONS[reason], concept.key, mention)
            )
    found = Found(text, dict(asserted))
    codes: dict[str, Code] = {}

    def add(
        code: str, concept: str, mentions_: Iterable[Mention], basis: Sequence[str] = (), confidence: float = 0.9
    ) -> None:
        if not billable(code):
            return
        entry = codes.get(code)
        if entry is None:
            entry = codes[code] = Code(code, describe(code), confidence, concept)
        entry.mentions.extend(mention for mention in mentions_ if mention not in entry.mentions)
        entry.basis.extend(item for item in basis if item not in entry.basis)
        entry.confidence = max(entry.confidence, confidence)

    handled: set[str] = set()
    for rule in RULES:
        handled |= rule(found, add, result)
    for key, concept_mentions in found.by_concept.items():
        if key in handled:
            continue
        if key.startswith("history:"):
            concept = BY_KEY[key.split(":", 1)[1]]
            add(concept.history_code or concept.code, concept.key, concept_mentions, ["documented as past"], 0.8)
            continue
        concept = BY_KEY[key]
        add(concept.code, key, concept_mentions)
    _drop_integral_symptoms(codes, result)
    result.excluded = _distinct_exclusions(result.excluded, {entry.concept for entry in codes.values()})
    for entry in codes.values():
        entry.confidence = _confidence(entry)
    result.codes = sorted(codes.values(), key=lambda entry: (-entry.confidence, entry.code))
    result.ranked = ranking.ranked(result.codes)
    return result


def _distinct_exclusions(excluded: Sequence[Excluded], asserted: set[str]) -> list[Excluded]:
    """One exclusion per code and reason, and none for a condition the note asserts elsewhere
    ("history of pneumonia" beside "pneumonia" in the diagnoses)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for item in excluded:
        key = (item.code, item.reason)
        if key not in seen and item.concept not in asserted:
            seen.add(key)
            kept.append(item)
    return kept


def _confidence(entry: Code) -> float:
    """Higher when the diagnosis is stated where diagnoses are written, in words, more than once."""
    best = 0.7
    for mention in entry.mentions:
        score = 0.78
        if mention.section in ("assessment_and_plan", "diagnoses", "impression", "discharge_diagnosis",
                               "wound_assessment"):  # fmt: skip
            score += 0.12
        if mention.text.isupper() and len(mention.text) <= 5:  # an abbreviation
            score -= 0.08
        best = max(best, score)
    if len(entry.mentions) > 1:
        best += 0.04
    if entry.basis:
        best += 0.02
    return round(min(best, 0.98), 2)


def _drop_integral_symptoms(codes: dict[str, Code], result: Inference) -> None:
    explained = {
        symptom: entry
        for entry in codes.values()
        if entry.concept in BY_KEY
        for symptom in BY_KEY[entry.concept].explains
    }
    for code, entry in list(codes.items()):
        concept = BY_KEY.get(entry.concept)
        if concept is not None and concept.symptom and concept.key in explained:
            cause = explained[concept.key]
            del codes[code]
            result.excluded.append(
                Excluded(
                    code,
                    entry.description,
                    f"integral to {cause.code} ({cause.description}): not coded separately (guideline I.B.5)",
                    concept.key,
                    entry.mentions[0],
                )
            )
