"""ICD-10-CM rules for the circulatory system: hypertension with heart failure and chronic
kidney disease (the I11–I13 combinations), heart failure by type and acuity, atrial
fibrillation by kind, myocardial infarction by type and wall, stroke by artery and mechanism
with its deficits, NIHSS score and sequelae, venous thrombosis by vein and side, and
pulmonary embolism."""

from __future__ import annotations

import re

from vigia.workloads.coding.findings import Add, Found, Inference, Query, Rule, clause
from vigia.workloads.coding.modifiers import (
    ACUTE,
    ACUTE_ON_CHRONIC,
    ARTERIES,
    CHRONIC,
    CKD_CODE,
    COMBINED,
    COR_PULMONALE,
    DIASTOLIC,
    DVT_VEINS,
    EMBOLIC,
    LACUNAR,
    LEFT_HANDED,
    LONGSTANDING,
    MI_TYPE_2,
    MI_WALLS,
    NIHSS,
    NSTEMI,
    PAROXYSMAL,
    PERMANENT,
    PERSISTENT,
    RIGHT_NONDOMINANT,
    SADDLE,
    SEQUELA,
    STEMI,
    STOPPED,
    SYSTOLIC,
    THROMBOTIC,
    ckd_stage,
    ejection_fraction,
    first_of,
    folded,
    laterality,
)

#: A stroke named as an old one ("old lacunar infarct", "ACV antiguo").
OLD = re.compile(r"\b(?:old|antiguo|antigua|previo|previa|prior|remote|past|pasado)\b")


def _ckd_code(found: Found, result: Inference) -> str:
    stage = ckd_stage(found.sentences("ckd"))
    if stage is None:
        result.queries.append(
            Query("ckd", "chronic kidney disease documented without its stage", found.mentions("ckd")[0])
        )
    return CKD_CODE[stage]


def _heart_failure_code(found: Found, result: Inference) -> tuple[str, list[str]]:
    context = folded(found.sentences("heart_failure"))
    kind = first_of((("4", COMBINED), ("2", SYSTOLIC), ("3", DIASTOLIC)), context, None)
    acuity = first_of((("3", ACUTE_ON_CHRONIC), ("1", ACUTE), ("2", CHRONIC)), context, "0")
    if kind is None:
        # An ejection fraction alone does not give the type (Coding Clinic): the clinician is asked.
        fraction = ejection_fraction(folded(found.text))
        seen = f"; an ejection fraction of {fraction}% is documented" if fraction is not None else ""
        result.queries.append(
            Query(
                "heart_failure",
                f"heart failure documented without its type (systolic, diastolic){seen}",
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


def _circulatory(found: Found, add: Add, result: Inference) -> set[str]:
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
    dialysis = [m for m in found.mentions("dialysis") if not STOPPED.search(folded(clause(found.text, m)))]
    if ckd is not None and dialysis:
        add("Z99.2", "dialysis", dialysis, ["dependence on renal dialysis"], 0.8)
    elif ckd == "N18.6" and re.search(
        r"\b(?:dialysis|dialisis|hemodialisis|hemodialysis)\b", folded(found.sentences("ckd"))
    ):
        add("Z99.2", "ckd", found.mentions("ckd"), ["dependence on renal dialysis"], 0.8)
    handled.add("dialysis")
    if ckd is not None and found.has("anemia") and not found.has("iron_deficiency_anemia"):
        add("D63.1", "anemia", [*found.mentions("anemia"), *found.mentions("ckd")],
            ["anemia in chronic kidney disease (the 'with' convention)"])  # fmt: skip
        handled.add("anemia")
    return handled


def _atrial_fibrillation(found: Found, add: Add, result: Inference) -> set[str]:
    if not found.has("atrial_fibrillation"):
        return set()
    context = folded(found.sentences("atrial_fibrillation"))
    kinds = (("I48.0", PAROXYSMAL), ("I48.11", LONGSTANDING), ("I48.19", PERSISTENT), ("I48.21", PERMANENT),
             ("I48.20", CHRONIC))  # fmt: skip
    code = first_of(kinds, context, "I48.91")
    add(code, "atrial_fibrillation", found.mentions("atrial_fibrillation"))
    return {"atrial_fibrillation"}


def _myocardial_infarction(found: Found, add: Add, result: Inference) -> set[str]:
    if not found.has("myocardial_infarction"):
        return set()
    mentions = found.mentions("myocardial_infarction")
    context = folded(" ".join([found.sentences("myocardial_infarction"), *(m.text for m in mentions)]))
    if MI_TYPE_2.search(context) and not STEMI.search(context):
        add("I21.A1", "myocardial_infarction", mentions, ["type 2 (demand)"])
    elif NSTEMI.search(context):
        add("I21.4", "myocardial_infarction", mentions, ["non-ST elevation"])
    elif STEMI.search(context):
        wall = first_of(MI_WALLS, context, None)
        add(wall or "I21.3", "myocardial_infarction", mentions, ["ST elevation", f"wall: {wall or 'not documented'}"])
        if wall is None:
            result.queries.append(Query("myocardial_infarction", "STEMI documented without its wall", mentions[0]))
    else:
        add("I21.9", "myocardial_infarction", mentions)
        result.queries.append(Query("myocardial_infarction", "myocardial infarction: STEMI or NSTEMI?", mentions[0]))
    return {"myocardial_infarction"}


_SIDE_DIGIT = {"right": "1", "left": "2", "bilateral": "3"}


def _hemiplegia_side(words: str) -> tuple[str | None, str]:
    """The side and whether it is the dominant one: undocumented dominance is the right side
    dominant, the left non-dominant (guideline I.C.6.a), unless handedness says otherwise."""
    side = laterality(words)
    if side == "left":
        return side, "dominant" if LEFT_HANDED.search(words) else "non-dominant"
    if side == "right":
        return side, "non-dominant" if LEFT_HANDED.search(words) or RIGHT_NONDOMINANT.search(words) else "dominant"
    return None, ""


def _stroke(found: Found, add: Add, result: Inference) -> set[str]:
    """An acute stroke by artery and mechanism, with its deficits (G81.9-) and NIHSS score
    (R29.7-); a past one with what it left as its sequela (I69.3-), else its history (Z86.73)."""
    acute, history = found.has("stroke"), found.has("history:stroke")
    if not (acute or history):
        return set()
    words = folded(" ".join([found.sentences("stroke"), found.sentences("history:stroke")]))
    mentions = found.mentions("stroke", "history:stroke")
    old = acute and OLD.search(words) and not ACUTE.search(words)
    deficits = [key for key in ("hemiplegia", "aphasia", "dysarthria") if found.has(key)]
    if ((history or old) and (deficits or SEQUELA.search(words))) or (acute and SEQUELA.search(words) and not
                                                                    ACUTE.search(words)):  # fmt: skip
        if "hemiplegia" in deficits:
            side, dominance = _hemiplegia_side(f"{words} {folded(found.sentences('hemiplegia'))}")
            code = {("right", "dominant"): "I69.351", ("left", "dominant"): "I69.352",
                    ("right", "non-dominant"): "I69.353", ("left", "non-dominant"): "I69.354"}.get(
                (side or "", dominance), "I69.359")  # fmt: skip
            add(code, "stroke", [*mentions, *found.mentions("hemiplegia")],
                ["sequela: hemiplegia or hemiparesis", f"side: {side or 'not documented'}"])  # fmt: skip
            if side is None:
                result.queries.append(Query("stroke", "hemiparesis after a stroke: side not documented", mentions[0]))
        if "aphasia" in deficits:
            add("I69.320", "stroke", [*mentions, *found.mentions("aphasia")], ["sequela: aphasia"])
        if "dysarthria" in deficits:
            add("I69.322", "stroke", [*mentions, *found.mentions("dysarthria")], ["sequela: dysarthria"])
        if not deficits:
            add("I69.30", "stroke", mentions, ["sequela of a cerebral infarction"])
        return {"stroke", "history:stroke", *deficits}
    if old:
        add("Z86.73", "stroke", mentions, ["documented as past, nothing left"], 0.8)
        return {"stroke", "history:stroke"}
    if acute:
        _acute_stroke(found, add, result, folded(found.sentences("stroke")))
        return {"stroke", "hemiplegia"}
    return set()


def _acute_stroke(found: Found, add: Add, result: Inference, words: str) -> None:
    mentions = found.mentions("stroke")
    artery, side = None, _SIDE_DIGIT.get(laterality(words) or "", "9")
    for digit, pattern in ARTERIES:
        match = pattern.search(words)
        if match:  # the side named with the artery ("left MCA", "arteria cerebral media izquierda")
            artery = digit
            near = laterality(words[max(0, match.start() - 25) : match.end() + 25])
            side = _SIDE_DIGIT.get(near or "", side)
            break
    if LACUNAR.search(words):
        code, why = "I63.81", "lacunar: occlusion of a small artery"
    elif artery is not None:
        mechanism = "4" if EMBOLIC.search(words) else "3" if THROMBOTIC.search(words) else "5"
        code = f"I63.{mechanism}{artery}{side}"
        why = "artery and mechanism as documented"
    elif EMBOLIC.search(words):
        code, why = "I63.40", "embolic, artery not documented"
    elif THROMBOTIC.search(words):
        code, why = "I63.30", "thrombotic, artery not documented"
    else:
        code, why = "I63.9", ""
    add(code, "stroke", mentions, [why] if why else [])
    if found.has("hemiplegia"):
        own = " ".join(clause(found.text, mention) for mention in found.mentions("hemiplegia"))
        hemi_side, dominance = _hemiplegia_side(folded(own))
        hemi = {("right", "dominant"): "G81.91", ("left", "dominant"): "G81.92", ("right", "non-dominant"): "G81.93",
                ("left", "non-dominant"): "G81.94"}.get((hemi_side or "", dominance), "G81.90")  # fmt: skip
        add(hemi, "hemiplegia", found.mentions("hemiplegia"), [f"side: {hemi_side or 'not documented'}"])
    score = NIHSS.search(folded(found.text))
    if score and int(score.group(1)) <= 42:
        add(f"R29.7{int(score.group(1)):02d}", "stroke", mentions, [f"NIHSS {score.group(1)}"], 0.85)


def _venous_thromboembolism(found: Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("dvt"):
        words = folded(found.sentences("dvt"))
        side = _SIDE_DIGIT.get(laterality(words) or "", "9")
        vein = first_of(DVT_VEINS, words, "0")
        chronic = CHRONIC.search(words) and not ACUTE.search(words)
        code = f"I82.{'5' if chronic else '4'}{vein}{side}"
        add(code, "dvt", found.mentions("dvt"), [f"vein: {vein if vein != '0' else 'not documented'}"])
        if side == "9":
            result.queries.append(Query("dvt", "deep vein thrombosis: side not documented", found.first("dvt")))
        handled.add("dvt")
    if found.has("pulmonary_embolism"):
        words = folded(found.sentences("pulmonary_embolism"))
        cor = bool(COR_PULMONALE.search(words))
        code = ("I26.02" if cor else "I26.92") if SADDLE.search(words) else ("I26.09" if cor else "I26.99")
        add(code, "pulmonary_embolism", found.mentions("pulmonary_embolism"),
            ["with acute cor pulmonale"] if cor else [])  # fmt: skip
        handled.add("pulmonary_embolism")
    return handled


CIRCULATORY: tuple[Rule, ...] = (
    _circulatory, _atrial_fibrillation, _myocardial_infarction, _stroke, _venous_thromboembolism,
)  # fmt: skip
