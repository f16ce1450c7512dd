"""What a note says about a condition beyond its name, read from the sentences that mention
it (folded: lower case, no accents, so "Estadío" and "estadio" read alike): side, pressure
ulcer site and stage, CKD stage, diabetes type and complications, heart failure type and
acuity, exacerbation, and the like. English and Spanish, abbreviations included."""

from __future__ import annotations

import re

from vigia.workloads.coding.codeset import billable
from vigia.workloads.coding.lexicon import strip_accents


def folded(text: str) -> str:
    return strip_accents(text).casefold()


RIGHT = re.compile(r"\b(?:right|derech[oa]s?|der|dcho|dcha|dx)\b")
LEFT = re.compile(r"\b(?:left|izquierd[oa]s?|izq|izdo|izda)\b")
BILATERAL = re.compile(r"\b(?:bilateral(?:es)?|both|ambos|ambas)\b")
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5}


def laterality(text: str) -> str | None:
    plain = folded(text)
    if BILATERAL.search(plain):
        return "bilateral"
    right, left = bool(RIGHT.search(plain)), bool(LEFT.search(plain))
    if right and not left:
        return "right"
    if left and not right:
        return "left"
    return None


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else _ROMAN.get(text)


ULCER_STAGE = re.compile(
    r"\b(?:stage|estadio|grado|categoria|categor[ií]a|etapa|est|cat|grade)\s*[:.]?\s*(iv|iii|ii|i|[1-4])\b"
    r"|\b(iv|iii|ii|i|[1-4])(?:st|nd|rd|th)?\s*(?:stage|estadio|grado)\b"
)
UNSTAGEABLE = re.compile(
    r"\b(?:unstageable|no estadificable|inclasificable|no clasificable|no estatificable|unstaged)\b"
)
DEEP_TISSUE = re.compile(
    r"\b(?:deep tissue (?:pressure )?injury|deep tissue injury|lesion (?:de|del) tejido profundo|dti|sdti|ltp)\b"
)
SITES = (
    ("sacral", re.compile(r"\b(?:sacr(?:o|a|al|um)|region sacra|sacrococcigea|coccyx|coccix|coxis|coccygeal)\b")),
    ("heel", re.compile(r"\b(?:heel|heels|talon|talones|calcaneo|calcaneal)\b")),
    ("hip", re.compile(r"\b(?:hip|cadera|trocanter(?:ea|ica)?|trochanter(?:ic)?)\b")),
    ("buttock", re.compile(r"\b(?:buttock|buttocks|gluteal|gluteo|glutea|nalga|isquion|isquiatica|ischial|ischium)\b")),
    ("ankle", re.compile(r"\b(?:ankle|tobillo|maleolo|malleolus|malleolar|maleolar)\b")),
    ("elbow", re.compile(r"\b(?:elbow|codo)\b")),
    ("back", re.compile(r"\b(?:back|espalda|escapula|scapula|scapular|omoplato|dorsal)\b")),
    ("head", re.compile(r"\b(?:head|occipital|occiput|cabeza|oreja|ear|nariz|nose)\b")),
)
#: L89's fourth and fifth characters per site: (unspecified side, right, left) or one.
ULCER_SITE_CODE = {
    "elbow": ("L89.00", "L89.01", "L89.02"),
    "back": ("L89.10", "L89.10", "L89.10"),
    "sacral": ("L89.15", "L89.15", "L89.15"),
    "hip": ("L89.20", "L89.21", "L89.22"),
    "buttock": ("L89.30", "L89.31", "L89.32"),
    "ankle": ("L89.50", "L89.51", "L89.52"),
    "heel": ("L89.60", "L89.61", "L89.62"),
    "head": ("L89.81", "L89.81", "L89.81"),
}
LATERAL_SITES = {"elbow", "hip", "buttock", "ankle", "heel"}


def ulcer_stage(text: str) -> str | None:
    """ "1"–"4", "unstageable", "deep tissue", or None."""
    plain = folded(text)
    if DEEP_TISSUE.search(plain):
        return "deep tissue"
    if UNSTAGEABLE.search(plain):
        return "unstageable"
    match = ULCER_STAGE.search(plain)
    if match:
        number = _number(match.group(1) or match.group(2))
        if number is not None and 1 <= number <= 4:
            return str(number)
    return None


def ulcer_site(text: str) -> str | None:
    plain = folded(text)
    for site, pattern in SITES:
        if pattern.search(plain):
            return site
    return None


def pressure_ulcer_code(site: str | None, side: str | None, stage: str | None) -> str:
    stage_digit = {"unstageable": "0", "deep tissue": "6", None: "9"}.get(stage, stage or "9")
    if site is None:
        unspecified = {"9": "L89.90", "0": "L89.95", "6": "L89.96"}
        return unspecified.get(stage_digit, f"L89.9{stage_digit}")
    prefixes = ULCER_SITE_CODE[site]
    prefix = prefixes[{"right": 1, "left": 2}.get(side or "", 0)]
    code = f"{prefix}{stage_digit}"
    return code if billable(code) else f"{prefix}9"


CKD_STAGE = re.compile(r"\b(?:stage|estadio|grado|etapa|estadi|g)\s*[:.]?\s*(3a|3b|iiia|iiib|v|iv|iii|ii|i|[1-5])\b")
ESRD = re.compile(
    r"\b(?:end[- ]stage|esrd|terminal|dialysis|hemodialysis|dialisis|hemodialisis|dialisis peritoneal|en dialisis)\b"
)


def ckd_stage(text: str) -> str | None:
    plain = folded(text)
    if ESRD.search(plain):
        return "esrd"
    match = CKD_STAGE.search(plain)
    if not match:
        return None
    value = match.group(1).replace("iiia", "3a").replace("iiib", "3b")
    return {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5"}.get(value, value)


CKD_CODE = {"1": "N18.1", "2": "N18.2", "3": "N18.30", "3a": "N18.31", "3b": "N18.32", "4": "N18.4", "5": "N18.5",
            "esrd": "N18.6", None: "N18.9"}  # fmt: skip

TYPE_1 = re.compile(
    r"\b(?:type\s*(?:1|i|one)|tipo\s*(?:1|i|uno)|dm\s*-?\s*1|dmi|t1dm|iddm|insulinodependiente|juvenil)\b"
)
TYPE_2 = re.compile(r"\b(?:type\s*(?:2|ii|two)|tipo\s*(?:2|ii|dos)|dm\s*-?\s*2|dmii|t2dm|niddm|del adulto)\b")
HYPERGLYCEMIA = re.compile(
    r"\b(?:hyperglyc(?:a)?emia|hiperglucemia|hiperglicemia|uncontrolled|poorly controlled|out of control|"
    r"descompensad[ao]|descontrolad[ao]|mal control|mal controlad[ao]|inadequately controlled)\b"
)
HYPOGLYCEMIA = re.compile(r"\b(?:hypoglyc(?:a)?emia|hipoglucemia|hipoglicemia)\b")
KETOACIDOSIS = re.compile(r"\b(?:ketoacidosis|cetoacidosis|dka)\b")
INSULIN = re.compile(r"\b(?:insulin|insulina|glargin[ae]?|lantus|nph|humalog|detemir|degludec|aspart|lispro)\b")
SYSTOLIC = re.compile(
    r"\b(?:systolic|hfref|reduced ejection fraction|sistolic[ao]|fraccion de eyeccion reducida|fey? reducida)\b"
)
DIASTOLIC = re.compile(
    r"\b(?:diastolic|hfpef|preserved ejection fraction|diastolic[ao]|fraccion de eyeccion preservada|fey? preservada)\b"
)
COMBINED = re.compile(r"\b(?:combined systolic and diastolic|systolic and diastolic|sistolica y diastolica|mixta)\b")
ACUTE_ON_CHRONIC = re.compile(
    r"\b(?:acute on chronic|cronica agudizada|cronica reagudizada|cronica descompensada|decompensated|descompensada"
    r"|exacerbation|exacerbacion|reagudizada|agudizada)\b"
)
ACUTE = re.compile(r"\b(?:acute|aguda|agudo)\b")
CHRONIC = re.compile(r"\b(?:chronic|cronica|cronico)\b")
EXACERBATION = re.compile(
    r"\b(?:exacerbation|exacerbated|exacerbacion|reagudizad[ao]|agudizad[ao]|descompensad[ao]|flare|crisis asmatica"
    r"|acute asthma|ataque de asma)\b"
)
STATUS_ASTHMATICUS = re.compile(r"\b(?:status asthmaticus|estado asmatico|estatus asmatico)\b")
ASPIRATION = re.compile(r"\b(?:aspiration|aspirativa|broncoaspiracion|por aspiracion)\b")
LOBAR = re.compile(r"\b(?:lobar|lobular)\b")
PAROXYSMAL = re.compile(r"\b(?:paroxysmal|paroxistica)\b")
PERSISTENT = re.compile(r"\b(?:persistent|persistente)\b")
PERMANENT = re.compile(r"\b(?:permanent|permanente|chronic|cronica)\b")
STEMI = re.compile(r"\b(?:stemi|st elevation|elevacion del st|con supradesnivel)\b")
NSTEMI = re.compile(r"\b(?:nstemi|non[- ]st|sin elevacion del st|sin supradesnivel)\b")
KNEE = re.compile(r"\b(?:knee|knees|rodilla|rodillas)\b")
HIP = re.compile(r"\b(?:hip|hips|cadera|caderas)\b")
LOWER_LIMB = re.compile(r"\b(?:leg|legs|lower extremity|lower limb|calf|thigh|foot|pierna|piernas|miembro inferior|"
                        r"extremidad inferior|pantorrilla|muslo|pie)\b")  # fmt: skip
UPPER_LIMB = re.compile(
    r"\b(?:arm|upper extremity|upper limb|forearm|brazo|antebrazo|miembro superior|extremidad superior)\b"
)
FACE = re.compile(r"\b(?:face|facial|cara|rostro)\b")
CIGARETTES = re.compile(r"\b(?:cigarette|cigarettes|cigarrillos?|pack[- ]years?|paquetes?[- ]ano)\b")
FORMER = re.compile(r"\b(?:former|ex[- ]?smoker|quit|ex[- ]?fumador[a]?|dejo de fumar|exfumador[a]?)\b")
SEQUELA = re.compile(
    r"\b(?:secuelas?|sequelae?|residual|late effects?|hemiparesia|hemiplejia|hemiparesis|hemiplegia|hemiparetic)\b"
)
HEMIPARESIS = re.compile(r"\b(?:hemiparesia|hemiplejia|hemiparesis|hemiplegia|hemiparetic|hemipletic)\b")
