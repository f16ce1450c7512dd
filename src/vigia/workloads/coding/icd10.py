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

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigia.workloads.coding import ranking
from vigia.workloads.coding.codeset import billable, describe
from vigia.workloads.coding.context import Mention
from vigia.workloads.coding.lexicon import BY_KEY
from vigia.workloads.coding.modifiers import (
    ACUTE,
    ACUTE_ON_CHRONIC,
    ASPIRATION,
    CHRONIC,
    CIGARETTES,
    CKD_CODE,
    COMBINED,
    DIASTOLIC,
    EXACERBATION,
    FACE,
    FORMER,
    HEMIPARESIS,
    HIP,
    HYPERGLYCEMIA,
    HYPOGLYCEMIA,
    INSULIN,
    KETOACIDOSIS,
    KNEE,
    LATERAL_SITES,
    LOBAR,
    LOWER_LIMB,
    NSTEMI,
    PAROXYSMAL,
    PERMANENT,
    PERSISTENT,
    SEQUELA,
    STATUS_ASTHMATICUS,
    STEMI,
    SYSTOLIC,
    TYPE_1,
    TYPE_2,
    UPPER_LIMB,
    ckd_stage,
    folded,
    laterality,
    pressure_ulcer_code,
    ulcer_site,
    ulcer_stage,
)


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


# --- from mentions to codes -----------------------------------------------------------------


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


def _sentence(text: str, mention: Mention) -> str:
    return text[mention.sentence_start : mention.sentence_end]


@dataclass
class _Found:
    """Asserted mentions by concept, and the sentences they stand in."""

    text: str
    by_concept: dict[str, list[Mention]]

    def has(self, concept: str) -> bool:
        return concept in self.by_concept

    def sentences(self, concept: str) -> str:
        return " ".join(_sentence(self.text, mention) for mention in self.by_concept.get(concept, []))

    def mentions(self, *concepts: str) -> list[Mention]:
        return [mention for concept in concepts for mention in self.by_concept.get(concept, [])]


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
    found = _Found(text, dict(asserted))
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


Add = Callable[..., None]


def _diabetes(found: _Found, add: Add, result: Inference) -> set[str]:
    if not found.has("diabetes"):
        return set()
    mentions = found.mentions("diabetes")
    context = folded(found.sentences("diabetes"))
    whole = folded(found.text)
    kind = "E10" if TYPE_1.search(context) or (not TYPE_2.search(context) and TYPE_1.search(whole)) else "E11"
    basis = []
    if kind == "E11" and not (TYPE_2.search(context) or TYPE_2.search(whole)):
        result.queries.append(Query("diabetes", "diabetes documented without its type (1 or 2)", mentions[0]))
        basis.append("type not documented: E11 by default (guideline I.C.4.a.2)")
    complications = []
    if found.has("ckd"):
        complications.append(
            (f"{kind}.22", found.mentions("ckd"), "with chronic kidney disease (the 'with' convention)")
        )
    if found.has("neuropathy"):
        polyneuropathy = "poly" in folded(found.sentences("neuropathy"))
        complications.append((f"{kind}.42" if polyneuropathy else f"{kind}.40", found.mentions("neuropathy"),
                              "with neuropathy (the 'with' convention)"))  # fmt: skip
    if found.has("retinopathy"):
        complications.append((f"{kind}.319", found.mentions("retinopathy"), "with retinopathy"))
    if found.has("diabetic_foot_ulcer"):
        complications.append((f"{kind}.621", found.mentions("diabetic_foot_ulcer"), "with foot ulcer"))
    if KETOACIDOSIS.search(context):
        complications.append((f"{kind}.10", [], "with ketoacidosis"))
    if HYPERGLYCEMIA.search(context):
        complications.append((f"{kind}.65", [], "with hyperglycemia"))
    if HYPOGLYCEMIA.search(context):
        complications.append((f"{kind}.649", [], "with hypoglycemia"))
    if not complications:
        add(f"{kind}.9", "diabetes", mentions, [*basis, "without documented complications"])
    for code, extra, why in complications:
        add(code, "diabetes", [*mentions, *extra], [*basis, why])
    if kind == "E11" and INSULIN.search(whole):
        add("Z79.4", "diabetes", mentions, ["long-term use of insulin"], 0.8)
    return {"diabetes", "neuropathy", "retinopathy"}


def _ckd_code(found: _Found, result: Inference) -> str:
    stage = ckd_stage(found.sentences("ckd"))
    if stage is None:
        result.queries.append(
            Query("ckd", "chronic kidney disease documented without its stage", found.mentions("ckd")[0])
        )
    return CKD_CODE[stage]


def _heart_failure_code(found: _Found, result: Inference) -> tuple[str, list[str]]:
    context = folded(found.sentences("heart_failure"))
    kind = (
        "4"
        if COMBINED.search(context)
        else "2"
        if SYSTOLIC.search(context)
        else "3"
        if DIASTOLIC.search(context)
        else None
    )
    acuity = (
        "3"
        if ACUTE_ON_CHRONIC.search(context)
        else "1"
        if ACUTE.search(context)
        else "2"
        if CHRONIC.search(context)
        else "0"
    )
    if kind is None:
        result.queries.append(
            Query(
                "heart_failure",
                "heart failure documented without its type (systolic, diastolic)",
                found.mentions("heart_failure")[0],
            )
        )
        return "I50.9", []
    if acuity == "0":
        result.queries.append(
            Query(
                "heart_failure",
                "heart failure documented without its acuity (acute, chronic)",
                found.mentions("heart_failure")[0],
            )
        )
    names = {"2": "systolic", "3": "diastolic", "4": "combined"}
    return f"I50.{kind}{acuity}", [
        names[kind],
        {"0": "acuity unspecified", "1": "acute", "2": "chronic", "3": "acute on chronic"}[acuity],
    ]


def _circulatory(found: _Found, add: Add, result: Inference) -> set[str]:
    """Hypertension with heart failure and chronic kidney disease, and each alone."""
    handled = set()
    ckd = _ckd_code(found, result) if found.has("ckd") else None
    if ckd is not None:
        add(ckd, "ckd", found.mentions("ckd"), ["stage as documented"] if ckd != "N18.9" else [])
        handled.add("ckd")
    if found.has("heart_failure"):
        code, basis = _heart_failure_code(found, result)
        add(code, "heart_failure", found.mentions("heart_failure"), basis)
        handled.add("heart_failure")
    heart_disease = found.has("hypertensive_heart_disease")
    if found.has("hypertension") or heart_disease:
        late_ckd = ckd in ("N18.5", "N18.6")
        links = found.mentions("hypertension", "hypertensive_heart_disease")
        if found.has("heart_failure") and ckd is not None:
            code = "I13.2" if late_ckd else "I13.0"
            why = "hypertension with heart failure and chronic kidney disease (the 'with' convention)"
            add(code, "hypertension", [*links, *found.mentions("heart_failure", "ckd")], [why])
        elif found.has("heart_failure"):
            add("I11.0", "hypertension", [*links, *found.mentions("heart_failure")],
                ["hypertension with heart failure (the 'with' convention)"])  # fmt: skip
        elif ckd is not None and heart_disease:
            add("I13.11" if late_ckd else "I13.10", "hypertension", [*links, *found.mentions("ckd")],
                ["hypertensive heart disease with chronic kidney disease, no heart failure documented"])  # fmt: skip
        elif ckd is not None:
            add("I12.0" if late_ckd else "I12.9", "hypertension", [*links, *found.mentions("ckd")],
                ["hypertension with chronic kidney disease (the 'with' convention)"])  # fmt: skip
        elif heart_disease:
            add("I11.9", "hypertension", links, ["hypertensive heart disease, no heart failure documented"])
        else:
            add("I10", "hypertension", links)
        handled.update(("hypertension", "hypertensive_heart_disease"))
    if ckd == "N18.6" and re.search(
        r"\b(?:dialysis|dialisis|hemodialisis|hemodialysis)\b", folded(found.sentences("ckd"))
    ):
        add("Z99.2", "ckd", found.mentions("ckd"), ["dependence on renal dialysis"], 0.8)
    return handled


#: What separates the descriptions of several wounds in one sentence.
_WOUND_SEPARATOR = re.compile(r";|,|\s(?:and|y|e)\s")


def _wound_clauses(text: str, mentions: Sequence[Mention]) -> dict[Mention, str]:
    """The words that describe each pressure-ulcer mention: its sentence, or where one
    sentence lists several ("stage 3 on the sacrum; unstageable on the left heel"), the part
    from the separator before it to the separator before the next one."""
    ordered = sorted(mentions, key=lambda mention: mention.start)
    leads = {}
    for index, mention in enumerate(ordered):
        previous = ordered[index - 1] if index else None
        floor = mention.sentence_start
        if previous is not None and previous.sentence_start == mention.sentence_start:
            floor = previous.end
        separators = list(_WOUND_SEPARATOR.finditer(text, floor, mention.start))
        leads[mention] = separators[-1].start() if separators and floor != mention.sentence_start else floor
    clauses = {}
    for index, mention in enumerate(ordered):
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        end = mention.sentence_end
        if following is not None and following.sentence_start == mention.sentence_start:
            end = leads[following]
        clauses[mention] = text[leads[mention] : end]
    return clauses


def _pressure_ulcers(found: _Found, add: Add, result: Inference) -> set[str]:
    if not found.has("pressure_ulcer"):
        return set()
    groups: dict[tuple[str | None, str | None], tuple[list[Mention], str | None]] = {}
    clauses = _wound_clauses(found.text, found.mentions("pressure_ulcer"))
    for mention in found.mentions("pressure_ulcer"):
        sentence = clauses[mention]
        site, side, stage = ulcer_site(sentence), laterality(sentence), ulcer_stage(sentence)
        mentions, best = groups.get((site, side), ([], None))
        order = {None: 0, "unstageable": 1, "deep tissue": 1, "1": 2, "2": 3, "3": 4, "4": 5}
        groups[(site, side)] = ([*mentions, mention], stage if order[stage] > order[best] else best)
    specified = any(site is not None or stage is not None for (site, _), (_, stage) in groups.items())
    for (site, side), (mentions, stage) in groups.items():
        if specified and site is None and stage is None:
            continue  # "the pressure ulcer", named again: one of those described, not another
        basis = [f"site: {site or 'not documented'}", f"stage: {stage or 'not documented'}"]
        if site in LATERAL_SITES:
            basis.append(f"side: {side or 'not documented'}")
        add(pressure_ulcer_code(site, side, stage), "pressure_ulcer", mentions, basis)
        if stage is None:
            result.queries.append(Query("pressure_ulcer", "pressure injury documented without its stage", mentions[0]))
        if site is None:
            result.queries.append(Query("pressure_ulcer", "pressure injury documented without its site", mentions[0]))
        elif site in LATERAL_SITES and side is None:
            result.queries.append(
                Query("pressure_ulcer", f"pressure injury of the {site}: side not documented", mentions[0])
            )
    return {"pressure_ulcer"}


def _respiratory(found: _Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("copd"):
        context = folded(found.sentences("copd"))
        if found.has("pneumonia"):
            add("J44.0", "copd", found.mentions("copd", "pneumonia"), ["with acute lower respiratory infection"])
        if EXACERBATION.search(context):
            add("J44.1", "copd", found.mentions("copd"), ["with acute exacerbation"])
        elif not found.has("pneumonia"):
            add("J44.9", "copd", found.mentions("copd"))
        handled.add("copd")
    if found.has("asthma"):
        context = folded(found.sentences("asthma"))
        code = (
            "J45.902"
            if STATUS_ASTHMATICUS.search(context)
            else "J45.901"
            if EXACERBATION.search(context)
            else "J45.909"
        )
        add(code, "asthma", found.mentions("asthma"), ["with exacerbation"] if code != "J45.909" else [])
        handled.add("asthma")
    if found.has("pneumonia"):
        context = folded(found.sentences("pneumonia"))
        code = "J69.0" if ASPIRATION.search(context) else "J18.1" if LOBAR.search(context) else "J18.9"
        add(code, "pneumonia", found.mentions("pneumonia"))
        handled.add("pneumonia")
    if found.has("respiratory_failure"):
        context = folded(found.sentences("respiratory_failure"))
        if re.search(r"\b(?:acute on chronic|cronica agudizada|cronica reagudizada)\b", context):
            code = "J96.20"
        elif ACUTE.search(context):
            code = "J96.00"
        elif CHRONIC.search(context):
            code = "J96.10"
        else:
            code = "J96.90"
            result.queries.append(
                Query(
                    "respiratory_failure",
                    "respiratory failure documented without its acuity (acute, chronic)",
                    found.mentions("respiratory_failure")[0],
                )
            )
        add(code, "respiratory_failure", found.mentions("respiratory_failure"))
        handled.add("respiratory_failure")
    return handled


def _sided(found: _Found, add: Add, result: Inference) -> set[str]:
    """Conditions whose code carries a side: DVT, cellulitis of a limb, knee or hip osteoarthritis, foot ulcers."""
    handled = set()
    if found.has("dvt"):
        side = laterality(found.sentences("dvt"))
        add({"right": "I82.401", "left": "I82.402", "bilateral": "I82.403"}.get(side or "", "I82.409"), "dvt",
            found.mentions("dvt"))  # fmt: skip
        if side is None:
            result.queries.append(Query("dvt", "deep vein thrombosis: side not documented", found.mentions("dvt")[0]))
        handled.add("dvt")
    if found.has("cellulitis"):
        context = found.sentences("cellulitis")
        side = laterality(context)
        plain = folded(context)
        if LOWER_LIMB.search(plain):
            code = {"right": "L03.115", "left": "L03.116"}.get(side or "", "L03.119")
        elif UPPER_LIMB.search(plain):
            code = {"right": "L03.113", "left": "L03.114"}.get(side or "", "L03.119")
        elif FACE.search(plain):
            code = "L03.211"
        else:
            code = "L03.90"
        add(code, "cellulitis", found.mentions("cellulitis"))
        if code == "L03.119":
            result.queries.append(
                Query("cellulitis", "cellulitis of a limb: side not documented", found.mentions("cellulitis")[0])
            )
        handled.add("cellulitis")
    if found.has("osteoarthritis"):
        context = found.sentences("osteoarthritis")
        side = laterality(context)
        plain = folded(context)
        if KNEE.search(plain):
            code = {"right": "M17.11", "left": "M17.12", "bilateral": "M17.0"}.get(side or "", "M17.10")
        elif HIP.search(plain):
            code = {"right": "M16.11", "left": "M16.12", "bilateral": "M16.0"}.get(side or "", "M16.10")
        else:
            code = "M19.90"
        add(code, "osteoarthritis", found.mentions("osteoarthritis"))
        if code in ("M17.10", "M16.10"):
            result.queries.append(
                Query("osteoarthritis", "osteoarthritis: side not documented", found.mentions("osteoarthritis")[0])
            )
        handled.add("osteoarthritis")
    if found.has("diabetic_foot_ulcer"):
        side = laterality(found.sentences("diabetic_foot_ulcer"))
        add({"right": "L97.519", "left": "L97.529"}.get(side or "", "L97.509"), "diabetic_foot_ulcer",
            found.mentions("diabetic_foot_ulcer"))  # fmt: skip
        handled.add("diabetic_foot_ulcer")
    return handled


def _stroke_sequelae(found: _Found, add: Add, result: Inference) -> set[str]:
    """A past stroke with what it left (hemiparesis, "secuela de ACV") is coded as its
    sequela (I69.3-), not as a history of it (Z86.73)."""
    keys = [key for key in ("stroke", "history:stroke") if found.has(key)]
    context = folded(" ".join(found.sentences(key) for key in keys))
    if not keys or not SEQUELA.search(context):
        return set()
    mentions = found.mentions(*keys)
    if HEMIPARESIS.search(context):
        side = laterality(context)
        # Dominance undocumented: the right side is the dominant one (guideline I.C.9.a.2).
        code = {"right": "I69.351", "left": "I69.354"}.get(side or "", "I69.359")
        add(code, "stroke", mentions, ["sequela: hemiplegia or hemiparesis", f"side: {side or 'not documented'}"])
        if side is None:
            result.queries.append(Query("stroke", "hemiparesis after a stroke: side not documented", mentions[0]))
    else:
        add("I69.30", "stroke", mentions, ["sequela of a cerebral infarction"])
    return set(keys)


def _others(found: _Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("atrial_fibrillation"):
        context = folded(found.sentences("atrial_fibrillation"))
        code = ("I48.0" if PAROXYSMAL.search(context) else "I48.19" if PERSISTENT.search(context)
                else "I48.21" if PERMANENT.search(context) else "I48.91")  # fmt: skip
        add(code, "atrial_fibrillation", found.mentions("atrial_fibrillation"))
        handled.add("atrial_fibrillation")
    if found.has("myocardial_infarction"):
        context = folded(found.sentences("myocardial_infarction"))
        code = "I21.4" if NSTEMI.search(context) else "I21.3" if STEMI.search(context) else "I21.9"
        add(code, "myocardial_infarction", found.mentions("myocardial_infarction"))
        handled.add("myocardial_infarction")
    if found.has("tobacco"):
        context = folded(found.sentences("tobacco"))
        if FORMER.search(context):
            add("Z87.891", "tobacco", found.mentions("tobacco"), ["former user"], 0.8)
        else:
            add("F17.210" if CIGARETTES.search(context) else "F17.200", "tobacco", found.mentions("tobacco"))
        handled.add("tobacco")
    if found.has("renal_failure") and not (found.has("aki") or found.has("ckd")):
        mention = found.mentions("renal_failure")[0]
        context = folded(found.sentences("renal_failure"))
        if ACUTE.search(context):
            add("N17.9", "renal_failure", found.mentions("renal_failure"), ["acute"])
        elif CHRONIC.search(context):
            add("N18.9", "renal_failure", found.mentions("renal_failure"), ["chronic"])
        else:
            add("N19", "renal_failure", found.mentions("renal_failure"))
            result.queries.append(
                Query("renal_failure", "kidney failure documented without its acuity (acute, chronic)", mention)
            )
        handled.add("renal_failure")
    elif found.has("renal_failure"):
        handled.add("renal_failure")
    if found.has("anemia") and not found.has("iron_deficiency_anemia"):
        result.queries.append(Query("anemia", "anemia documented without its type", found.mentions("anemia")[0]))
    elif found.has("anemia"):
        handled.add("anemia")
    return handled


RULES: tuple[Callable[[_Found, Add, Inference], set[str]], ...] = (
    _diabetes, _circulatory, _pressure_ulcers, _respiratory, _sided, _stroke_sequelae, _others,
)  # fmt: skip
