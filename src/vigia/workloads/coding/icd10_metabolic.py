"""ICD-10-CM rules for diabetes and its complications, nutrition and weight (obesity by class
with the BMI that goes with it, malnutrition by severity), lipids, and the status codes a
note documents: long-term medications (Z79), tobacco (F17.2, Z87.891), supplemental oxygen."""

from __future__ import annotations

import re

from vigia.workloads.coding.findings import Add, Found, Inference, Query, Rule, clause
from vigia.workloads.coding.modifiers import (
    ANESTHESIA_CLASS,
    AUTONOMIC,
    BMI,
    CHEWING,
    CIGARETTES,
    CIGARS,
    FORMER,
    GANGRENE,
    HYPERGLYCEMIA,
    HYPOGLYCEMIA,
    KETOACIDOSIS,
    LONG_TERM,
    MACULAR_EDEMA,
    MILD,
    MIXED,
    MODERATE,
    MONONEUROPATHY,
    OBESITY_CLASS,
    RETINOPATHY_LEVELS,
    SEVERE,
    STOPPED,
    TEMPORARY_INSULIN,
    TYPE_1,
    TYPE_2,
    affirmed,
    first_of,
    folded,
    laterality,
)

#: Complications whose name says the diabetes ("diabetic neuropathy", "retinopatía diabética").
_NAMED_DIABETIC = ("neuropathy", "retinopathy", "peripheral_arterial_disease", "diabetic_foot_ulcer", "ckd")


def _diabetes(found: Found, add: Add, result: Inference) -> set[str]:
    if not found.has("diabetes"):
        implied = [
            mention for mention in found.mentions(*_NAMED_DIABETIC) if re.search(r"\bdiabet", folded(mention.text))
        ]
        if not implied:
            return set()
        found.by_concept["diabetes"] = implied  # the complication's own words are the diabetes' evidence
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
        words = folded(found.sentences("neuropathy"))
        code = ".43" if AUTONOMIC.search(words) else ".41" if MONONEUROPATHY.search(words) else ".42"
        complications.append((f"{kind}{code}", found.mentions("neuropathy"),
                              "with neuropathy (the 'with' convention; peripheral: polyneuropathy)"))  # fmt: skip
    if found.has("retinopathy"):
        complications.append((_retinopathy(kind, found), found.mentions("retinopathy"), "with retinopathy"))
    if found.has("peripheral_arterial_disease"):
        gangrene = affirmed(GANGRENE, folded(found.sentences("peripheral_arterial_disease")))
        complications.append((f"{kind}.52" if gangrene else f"{kind}.51", found.mentions("peripheral_arterial_disease"),
                              "with peripheral angiopathy (the 'with' convention)"))  # fmt: skip
    if found.has("diabetic_foot_ulcer"):
        complications.append((f"{kind}.621", found.mentions("diabetic_foot_ulcer"), "with foot ulcer"))
    if affirmed(KETOACIDOSIS, context):
        complications.append((f"{kind}.10", [], "with ketoacidosis"))
    if affirmed(HYPERGLYCEMIA, context) or found.has("hyperglycemia"):
        complications.append((f"{kind}.65", found.mentions("hyperglycemia"), "with hyperglycemia"))
    if affirmed(HYPOGLYCEMIA, context) or found.has("hypoglycemia"):
        complications.append((f"{kind}.649", found.mentions("hypoglycemia"), "with hypoglycemia"))
    if not complications:
        add(f"{kind}.9", "diabetes", mentions, [*basis, "without documented complications"])
    for code, extra, why in complications:
        add(code, "diabetes", [*mentions, *extra], [*basis, why])
    _antidiabetics(found, add, kind)
    return {"diabetes", "neuropathy", "retinopathy", "peripheral_arterial_disease", "hyperglycemia", "hypoglycemia",
            "oral_hypoglycemic", "insulin", "injectable_antidiabetic"}  # fmt: skip


def _retinopathy(kind: str, found: Found) -> str:
    words = folded(found.sentences("retinopathy"))
    edema = "1" if MACULAR_EDEMA.search(words) else "9"
    level = first_of(RETINOPATHY_LEVELS, words, None)
    if level is None:
        return f"{kind}.31{edema}"
    eye = {"right": "1", "left": "2", "bilateral": "3"}.get(laterality(words) or "", "9")
    return f"{kind}.3{level}{edema}{eye}"


def _taken(found: Found, concept: str, *, long_term: bool = False) -> list:  # type: ignore[type-arg]
    """The mentions of a medication the patient takes: not stopped, not an allergy, and
    (``long_term``) stated to be taken long-term."""
    kept = []
    for mention in found.mentions(concept):
        words = folded(clause(found.text, mention))
        if mention.section == "allergies" or re.search(r"\b(?:allerg\w*|alergi\w*|intoleran\w*)\b", words):
            continue
        if STOPPED.search(words):
            continue
        if long_term and not LONG_TERM.search(folded(found.text[mention.sentence_start : mention.sentence_end])):
            continue
        kept.append(mention)
    return kept


def _antidiabetics(found: Found, add: Add, kind: str) -> None:
    """Z79.4, Z79.84, Z79.85: each assigned when taken, both insulin and oral agents when
    both are (guideline I.C.4.a.3); insulin given only to correct glucose is not long-term."""
    insulin = [
        mention for mention in _taken(found, "insulin")
        if not TEMPORARY_INSULIN.search(folded(clause(found.text, mention)))
    ]  # fmt: skip
    if insulin and kind != "E10":  # type 1 is insulin-requiring by definition: no Z79.4
        add("Z79.4", "insulin", insulin, ["long-term use of insulin"], 0.8)
    oral = _taken(found, "oral_hypoglycemic")
    if oral:
        add("Z79.84", "oral_hypoglycemic", oral, ["long-term use of oral hypoglycemic drugs"], 0.8)
    injectable = _taken(found, "injectable_antidiabetic")
    if injectable:
        add("Z79.85", "injectable_antidiabetic", injectable, ["long-term use of injectable non-insulin drugs"], 0.8)


def _medications(found: Found, add: Add, result: Inference) -> set[str]:
    """Long-term use of anticoagulants, aspirin, antiplatelets and opioids, when documented."""
    anticoagulants = [*_taken(found, "anticoagulant"), *_taken(found, "heparin", long_term=True)]
    if anticoagulants:
        add("Z79.01", "anticoagulant", anticoagulants, ["long-term use of anticoagulants"], 0.8)
    aspirin = [
        mention for mention in _taken(found, "aspirin")
        if not (mention.text.isupper() and ANESTHESIA_CLASS.match(folded(found.text[mention.end : mention.end + 20])))
    ]  # fmt: skip
    if aspirin:
        add("Z79.82", "aspirin", aspirin, ["long-term use of aspirin"], 0.8)
    antiplatelets = _taken(found, "antiplatelet")
    if antiplatelets:
        add("Z79.02", "antiplatelet", antiplatelets, ["long-term use of antiplatelets"], 0.8)
    opioids = _taken(found, "opioid", long_term=True)
    if opioids:
        add("Z79.891", "opioid", opioids, ["long-term use of opiate analgesic, as documented"], 0.8)
    # Without diabetes, glucose-lowering drugs are not coded here (metformin for PCOS,
    # SGLT2 inhibitors for heart failure: Z79.899 at most).
    return {"anticoagulant", "heparin", "aspirin", "antiplatelet", "opioid", "oral_hypoglycemic", "insulin",
            "injectable_antidiabetic"}  # fmt: skip


#: Words that say a habit goes on ("antecedente de tabaquismo activo").
#: "History of" the habit, not the "Social history:" heading ConText also reads as past.
HISTORY_OF = re.compile(r"\b(?:history of|hx of|h/o|antecedentes? de|historia de)\b")
STILL = re.compile(r"\b(?:activ[oa]|actual|actualmente|current|currently|sigue|continua|still)\b")


def _tobacco(found: Found, add: Add, result: Inference) -> set[str]:
    current = [
        mention for mention in found.mentions("tobacco")
        if not re.search(r"(?:non|never|no)[- ]?$", folded(found.text[max(0, mention.start - 6) : mention.start]))
    ]  # fmt: skip
    former = found.mentions("former_smoker")
    former += [
        mention for mention in current
        if FORMER.search(folded(clause(found.text, mention)))
        or (
            mention.historical
            and HISTORY_OF.search(folded(found.text[mention.sentence_start : mention.start]))
            and not STILL.search(folded(clause(found.text, mention)))
        )
    ]  # fmt: skip
    current = [mention for mention in current if mention not in former]
    if current:
        words = folded(" ".join(clause(found.text, mention) for mention in current))
        if CHEWING.search(words):
            code = "F17.220"
        elif CIGARS.search(words) and not re.search(r"\bcigarr?ill|cigarette", words):
            code = "F17.290"
        elif CIGARETTES.search(words):
            code = "F17.210"
        else:
            code = "F17.200"
            result.queries.append(Query("tobacco", "tobacco use documented without the product", current[0]))
        add(code, "tobacco", current, ["current use"])
    elif former:
        add("Z87.891", "former_smoker", former, ["former user: personal history of nicotine dependence"], 0.8)
    if found.has("history:tobacco") and not current:
        add("Z87.891", "former_smoker", found.mentions("history:tobacco"), ["documented as past"], 0.8)
    return {"tobacco", "former_smoker", "history:tobacco"}


#: BMI ranges (adults) and their Z68 codes.
def bmi_code(value: float) -> str | None:
    if value < 10 or value > 100:
        return None
    if value < 20:
        return "Z68.1"
    if value < 40:
        return f"Z68.{int(value)}"
    for limit, code in ((45, "Z68.41"), (50, "Z68.42"), (60, "Z68.43"), (70, "Z68.44")):
        if value < limit:
            return code
    return "Z68.45"


def _weight(found: Found, add: Add, result: Inference) -> set[str]:
    """Obesity by class (E66.81x), morbid obesity, overweight, and the BMI documented with
    them (Z68: only with an associated weight diagnosis, guideline I.B.14)."""
    keys = [key for key in ("morbid_obesity", "obesity", "overweight") if found.has(key)]
    if not keys:
        return set()
    words = folded(" ".join(found.sentences(key) for key in keys))
    grade = OBESITY_CLASS.search(words)
    mentions = found.mentions(*keys)
    if (grade and found.has("obesity")) or (grade and found.has("morbid_obesity")):
        number = {"i": "1", "ii": "2", "iii": "3"}.get(grade.group(1), grade.group(1))
        add(f"E66.81{number}", keys[0], mentions, [f"obesity class {number}"])
    elif found.has("morbid_obesity"):
        add("E66.01", "morbid_obesity", found.mentions("morbid_obesity"))
    elif found.has("obesity"):
        add("E66.9", "obesity", found.mentions("obesity"))
        if "obesity" in keys and not grade:
            result.queries.append(Query("obesity", "obesity documented without its class", found.first("obesity")))
    else:
        add("E66.3", "overweight", found.mentions("overweight"))
    match = BMI.search(folded(found.text))
    if match:
        code = bmi_code(float(match.group(1).replace(",", ".")))
        if code:
            add(code, keys[0], mentions, [f"BMI {match.group(1)} documented with the weight diagnosis"], 0.8)
    return {"morbid_obesity", "obesity", "overweight"}


def _nutrition_and_lipids(found: Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    keys = [key for key in ("malnutrition", "severe_malnutrition") if found.has(key)]
    if keys:
        words = folded(" ".join(found.sentences(key) for key in keys))
        severity = (("E43", SEVERE), ("E44.0", MODERATE), ("E44.1", MILD))
        code = "E43" if found.has("severe_malnutrition") else first_of(severity, words, "E46")
        if code == "E46":
            result.queries.append(Query("malnutrition", "malnutrition documented without its severity",
                                        found.mentions(*keys)[0]))  # fmt: skip
        add(code, keys[0], found.mentions(*keys))
        handled.update(keys)
    if found.has("hyperlipidemia"):
        words = folded(found.sentences("hyperlipidemia"))
        if MIXED.search(words):
            add("E78.2", "hyperlipidemia", found.mentions("hyperlipidemia"), ["mixed"])
        elif not found.has("hypercholesterolemia") and not found.has("hypertriglyceridemia"):
            add("E78.5", "hyperlipidemia", found.mentions("hyperlipidemia"))
        handled.add("hyperlipidemia")
    if found.has("hypercholesterolemia") and found.has("hypertriglyceridemia"):
        add("E78.2", "hyperlipidemia", found.mentions("hypercholesterolemia", "hypertriglyceridemia"),
            ["raised cholesterol and triglycerides: mixed hyperlipidemia"])  # fmt: skip
        handled.update(("hypercholesterolemia", "hypertriglyceridemia"))
    return handled


def _oxygen(found: Found, add: Add, result: Inference) -> set[str]:
    if found.has("home_oxygen"):
        add("Z99.81", "home_oxygen", found.mentions("home_oxygen"), ["dependence on supplemental oxygen"], 0.8)
    return {"home_oxygen"}


METABOLIC: tuple[Rule, ...] = (_diabetes, _medications, _tobacco, _weight, _nutrition_and_lipids, _oxygen)
