"""What a note says about a condition beyond its name, read from the sentences that mention
it (folded: lower case, no accents, so "Estadío" and "estadio" read alike): side, pressure
ulcer site and stage, CKD stage, diabetes type and complications, heart failure type and
acuity, exacerbation, and the like. English and Spanish, abbreviations included."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

from vigia.workloads.coding.codeset import billable
from vigia.workloads.coding.lexicon import strip_accents


def folded(text: str) -> str:
    return strip_accents(text).casefold()


T = TypeVar("T")
D = TypeVar("D")


def first_of(choices: Iterable[tuple[T, re.Pattern[str]]], text: str, default: D) -> T | D:
    """The value of the first ``(value, pattern)`` whose pattern finds something in ``text``
    (tables go from the most specific reading to the least), else ``default``."""
    return next((value for value, pattern in choices if pattern.search(text)), default)


_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|sin|without|denies|niega|negative for|neg for|r/o|rule out|descartar|no hay|free of)\b[^.;\n]{0,25}$"
)
_NEGATION_AFTER = re.compile(r"^[^.;\n]{0,20}\b(?:ruled out|excluded|negative|descartad[oa]s?|negativ[oa]s?)\b")


def affirmed(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``pattern`` finds something in the folded ``text`` that is not denied
    around it ("with hyperglycemia - no DKA/HHS" affirms no ketoacidosis)."""
    return any(
        not _NEGATION_BEFORE.search(text[max(0, match.start() - 40) : match.start()])
        and not _NEGATION_AFTER.search(text[match.end() : match.end() + 40])
        for match in pattern.finditer(text)
    )


#: A body part a one-letter side may stand before ("R heel", "L hip", "Rt. buttock").
_SIDED_PART = (
    r"(?=\s*(?:heel|hip|buttock|ischi\w*|elbow|ankle|malleol\w*|foot|leg|knee|arm|hand|shoulder|trochanter"
    r"|lower|upper|le\b|ue\b))"
)
RIGHT = re.compile(r"\b(?:right|derech[oa]s?|der|dcho|dcha|dx)\b|\b(?:rt|r)\b\.?" + _SIDED_PART)
LEFT = re.compile(r"\b(?:left|izquierd[oa]s?|izq|izdo|izda)\b|\b(?:lt|l)\b\.?" + _SIDED_PART)
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
    r"\b(?:deep tissue (?:pressure )?injury|deep tissue injury|deep tissue damage|lesion (?:de|del) tejido profundo"
    r"|(?:sospecha de )?lesion de tejidos? profundos?|dano (?:de|del) tejido profundo|dti|sdti|dtpi|ltp)\b"
)
SITES = (
    ("sacral", re.compile(r"\b(?:sacr(?:o|a|al|um)|region sacra|sacrococcigea|coccyx|coccix|coxis|coccygeal)\b")),
    ("heel", re.compile(r"\b(?:heel|heels|talon|talones|calcaneo|calcaneal)\b")),
    ("hip", re.compile(r"\b(?:hip|cadera|trocanter(?:ea|ica)?|trochanter(?:ic)?)\b")),
    ("buttock", re.compile(r"\b(?:buttock|buttocks|gluteal|gluteo|glutea|nalga|isquion|isquiatica|ischial|ischium)\b")),
    ("ankle", re.compile(r"\b(?:ankle|tobillo|maleolo|malleolus|malleolar|maleolar)\b")),
    ("elbow", re.compile(r"\b(?:elbow|codo)\b")),
    (
        "upper back",
        re.compile(
            r"\b(?:upper back|escapula|scapula|scapular|omoplato|region dorsal|interescapular"
            r"|espalda alta|parte alta de la espalda|shoulder blade)\b"
        ),
    ),
    ("lower back", re.compile(r"\b(?:lower back|low back|region lumbar|lumbar|espalda baja|zona lumbar)\b")),
    ("back", re.compile(r"\b(?:back|espalda|columna|spine|spinal|apofisis espinosa)\b")),
    (
        "head",
        re.compile(
            r"\b(?:head|occipital|occiput|cabeza|oreja|orejas|ear|ears|earlobe|pabellon auricular"
            r"|auricular|nariz|nose|nasal|face|cara|rostro|menton|chin|frente|forehead|cuero cabelludo"
            r"|scalp)\b"
        ),
    ),
    (
        "other",
        re.compile(
            r"\b(?:knee|rodilla|shoulder|hombro|toe|toes|dedo|dedos|ortejo|hallux|foot|pie|leg|pierna"
            r"|shin|pretibial|tibia|espinilla|thigh|muslo|rib|costilla|arm|brazo)\b"
        ),
    ),
)
#: Back, buttock and hip in one wound.
CONTIGUOUS = re.compile(r"\b(?:contiguous|contigu[oa]s?)\b")
#: L89's fourth and fifth characters per site: (unspecified side, right, left) or one.
ULCER_SITE_CODE = {
    "elbow": ("L89.00", "L89.01", "L89.02"),
    "back": ("L89.10", "L89.10", "L89.10"),
    "upper back": ("L89.10", "L89.11", "L89.12"),
    "lower back": ("L89.10", "L89.13", "L89.14"),
    "contiguous": ("L89.4", "L89.4", "L89.4"),
    "other": ("L89.89", "L89.89", "L89.89"),
    "sacral": ("L89.15", "L89.15", "L89.15"),
    "hip": ("L89.20", "L89.21", "L89.22"),
    "buttock": ("L89.30", "L89.31", "L89.32"),
    "ankle": ("L89.50", "L89.51", "L89.52"),
    "heel": ("L89.60", "L89.61", "L89.62"),
    "head": ("L89.81", "L89.81", "L89.81"),
}
LATERAL_SITES = {"elbow", "hip", "buttock", "ankle", "heel", "upper back", "lower back"}


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
    if CONTIGUOUS.search(plain):
        return "contiguous"
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
    if site == "contiguous":
        return code if billable(code) else "L89.40"
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
    r"\b(?:systolic|hfref|icfer|reduced\s+ejection\s+fraction|sistolic[ao]|fraccion\s+de\s+eyeccion\s+reducida"
    r"|(?:fevi|fey?|lvef|ef)\s+(?:reducida|deprimida|reduced|depressed))\b"
)
DIASTOLIC = re.compile(
    r"\b(?:diastolic|hfpef|icfep|preserved\s+ejection\s+fraction|diastolic[ao]"
    r"|fraccion\s+de\s+eyeccion\s+(?:preservada|conservada)|(?:fevi|fey?|lvef|ef)\s+(?:preservada|conservada|preserved))\b"
)
#: An ejection fraction's value ("FEVI 30%", "EF of 25 %", "fracción de eyección del 55%").
EJECTION_FRACTION = re.compile(
    r"\b(?:fevi|fey?|lvef|ef|fraccion\s+de\s+eyeccion(?:\s+del\s+ventriculo\s+izquierdo)?|ejection\s+fraction)"
    r"\s*(?:de|del|of|:|=|was|is|en)?\s*(?:de\s+|del\s+)?(\d{1,2})(?:\s*-\s*\d{1,2})?\s*%"
)


def ejection_fraction(text: str) -> int | None:
    """The (first) ejection fraction written in the folded ``text``, in percent."""
    match = EJECTION_FRACTION.search(text)
    return int(match.group(1)) if match else None


COMBINED = re.compile(r"\b(?:combined systolic and diastolic|systolic and diastolic|sistolica y diastolica|mixta)\b")
ACUTE_ON_CHRONIC = re.compile(
    r"\b(?:acute\s+on\s+chronic|cronica\s+agudizada|cronica\s+reagudizada|cronica\s+descompensada|decompensated|descompensada"
    r"|exacerbation|exacerbacion|reagudizada|agudizada)\b"
)
ACUTE = re.compile(r"\b(?:acute|aguda|agudo)\b")
CHRONIC = re.compile(r"\b(?:chronic|cronica|cronico)\b")
EXACERBATION = re.compile(
    r"\b(?:exacerbation|exacerbated|exacerbacion|reagudizad[ao]|agudizad[ao]|reagudizacion|agudizacion"
    r"|descompensad[ao]|descompensacion|flare|crisis asmatica"
    r"|acute asthma|ataque de asma)\b"
)
STATUS_ASTHMATICUS = re.compile(r"\b(?:status asthmaticus|estado asmatico|estatus asmatico)\b")
ASPIRATION = re.compile(r"\b(?:aspiration|aspirativa|broncoaspiracion|por aspiracion)\b")
LOBAR = re.compile(r"\b(?:lobar|lobular)\b")
PAROXYSMAL = re.compile(r"\b(?:paroxysmal|paroxistica)\b")
PERSISTENT = re.compile(r"\b(?:persistent|persistente)\b")
PERMANENT = re.compile(r"\b(?:permanent|permanente)\b")
LONGSTANDING = re.compile(
    r"\b(?:longstanding persistent|long-standing persistent|persistente de larga (?:evolucion|duracion))\b"
)
STEMI = re.compile(r"\b(?:stemi|st elevation|st-elevation|elevacion del st|con supradesnivel|iamcest|scacest|iamest)\b")
NSTEMI = re.compile(r"\b(?:nstemi|non[- ]st|sin elevacion del st|sin supradesnivel|iamsest|scasest|nste-?acs)\b")
MI_TYPE_2 = re.compile(r"\b(?:type 2 (?:mi|myocardial infarction)|tipo 2|demand ischemia)\b")
#: STEMI by wall or artery: the I21 code each names.
MI_WALLS = (
    ("I21.01", re.compile(r"\b(?:left main|tronco (?:de la )?coronari[oa] izquierd[oa]|tci)\b")),
    (
        "I21.02",
        re.compile(r"\b(?:lad|left anterior descending|descendente anterior|arteria descendente anterior|da)\b"),
    ),
    ("I21.09", re.compile(r"\b(?:anterior|anterolateral|anteroseptal|antero-?septal|anteroapical|septal|apical)\b")),
    ("I21.11", re.compile(r"\b(?:rca|right coronary|coronaria derecha|cd)\b")),
    ("I21.19", re.compile(r"\b(?:inferior|inferoposterior|inferolateral|infero-?lateral|diafragmatic[oa])\b")),
    ("I21.21", re.compile(r"\b(?:circumflex|lcx|circunfleja|cx)\b")),
    ("I21.29", re.compile(r"\b(?:lateral|posterior|posterolateral|high lateral)\b")),
)
KNEE = re.compile(r"\b(?:knee|knees|rodilla|rodillas)\b")
HIP = re.compile(r"\b(?:hip|hips|cadera|caderas)\b")
LOWER_LIMB = re.compile(r"\b(?:leg|legs|lower extremity|lower limb|calf|thigh|foot|pierna|piernas|miembro inferior|"
                        r"extremidad inferior|pantorrilla|muslo|pie)\b")  # fmt: skip
UPPER_LIMB = re.compile(
    r"\b(?:arm|upper extremity|upper limb|forearm|brazo|antebrazo|miembro superior|extremidad superior)\b"
)
FACE = re.compile(r"\b(?:face|facial|cara|rostro)\b")
CIGARETTES = re.compile(
    r"\b(?:cigarette|cigarettes|cigarrillos?|cigarros?|pack[- ]years?|paquetes?[- ]anos?|ppd|packs? (?:per|a) day"
    r"|smok\w*|fuma\w*|cajetillas?|pitillos?|ipa|i\.p\.a\.?|paq/ano)\b"
)
CHEWING = re.compile(r"\b(?:chewing tobacco|chew|snuff|dip|tabaco masticado|tabaco de mascar|mascar tabaco)\b")
CIGARS = re.compile(r"\b(?:cigars?|pipe|puros?|pipa|habanos?)\b")
FORMER = re.compile(
    r"\b(?:former|ex[- ]?smoker|quit|ex[- ]?fumador[a]?|dejo de fumar|exfumador[a]?|ex[- ]?tabaquista"
    r"|ex[- ]?tabaquismo|tabaquismo (?:previo|suspendido|pasado)|stopped smoking|remote)\b"
)
SEQUELA = re.compile(r"\b(?:secuelas?|secuelar|sequelae?|residual|late effects?|with residual|que dej[oó])\b")
HEMIPARESIS = re.compile(r"\b(?:hemiparesia|hemiplejia|hemiparesis|hemiplegia|hemiparetic|hemipletic)\b")
LEFT_HANDED = re.compile(r"\b(?:left[- ]handed|zurd[oa]|left hand dominant|dominancia izquierda)\b")
RIGHT_NONDOMINANT = re.compile(r"\b(?:right non-?dominant|lado derecho no dominante)\b")

# --- status Z codes: medications --------------------------------------------------------------

#: A medication stopped: not long-term use.
STOPPED = re.compile(
    r"\b(?:discontinued|discontinue|stopped|stop|ceased|suspended|suspend|se suspende|suspendid[oa]s?|suspender"
    r"|se suspendio|suspendi|retirad[oa]|se retira|retirar|discontinuad[oa]|se discontinua|d/c'?d|dc'?d|off)\b"
)
#: Insulin only to correct glucose while in hospital: not long-term (guideline I.C.4.a.3).
TEMPORARY_INSULIN = re.compile(
    r"\b(?:sliding scale|correction(?:al)? (?:scale|dose)|escala movil|pauta correctora|insulina de rescate"
    r"|segun glucemia|temporar\w*|transitori\w*|resistance|resistencia)\b"
)
LONG_TERM = re.compile(
    r"\b(?:long[- ]term|chronic|chronically|maintenance|indefinite\w*|cronic[oa]s?|de forma cronica|uso prolongado"
    r"|a largo plazo|de larga data|de mantenimiento|indefinid[oa]|habitual|home medications?)\b"
)
ANESTHESIA_CLASS = re.compile(r"^\s*(?:class|clase|physical status|ps)?\s*(?:i{1,3}v?|iv|[1-6])\b")

# --- other specificity ---------------------------------------------------------------------------

SEVERE = re.compile(r"\b(?:severe|severa|severo|grave|advanced|avanzad[oa])\b")
MODERATE = re.compile(r"\b(?:moderate|moderad[oa])\b")
MILD = re.compile(r"\b(?:mild|leve|early|inicial|incipiente)\b")
AGITATION = re.compile(
    r"\b(?:agitation|agitated|agitacion|agitad[oa]|aggressive|agresiv[oa]|behavioral disturbance"
    r"|trastorno (?:de )?conducta|alteraciones? conductual\w*)\b"
)
#: Dysphagia by its phase (R13.1-), the most specific first.
DYSPHAGIA_PHASES = (
    ("R13.14", re.compile(r"\b(?:pharyngoesophageal|faringoesofagic[ao])\b")),
    ("R13.12", re.compile(r"\b(?:oropharyngeal|orofaringe[ao])\b")),
    ("R13.13", re.compile(r"\b(?:pharyngeal|faringe[ao])\b")),
    ("R13.11", re.compile(r"\b(?:oral phase|fase oral|oral)\b")),
)
RECURRENT = re.compile(r"\b(?:recurrent|recurrente|recidivante)\b")
REMISSION = re.compile(r"\b(?:in remission|en remision)\b")
MIXED = re.compile(r"\b(?:mixed|mixta|combined|combinada)\b")
HYPOXIA = re.compile(
    r"\b(?:hypoxi[ac]|hypoxemi[ac]|hipoxemi(?:a|ca)|hipoxi(?:a|ca)|type (?:1|i)|tipo (?:1|i)"
    r"|parcial|desaturation|desaturacion)\b"
)
HYPERCAPNIA = re.compile(
    r"\b(?:hypercapni[ac]|hypercarbi[ac]|hipercapni(?:a|ca)|type (?:2|ii)|tipo (?:2|ii)"
    r"|global)\b"
)
ASTHMA_SEVERITY = (
    ("J45.2", re.compile(r"\b(?:mild intermittent|intermitente(?: leve)?|leve intermitente)\b")),
    ("J45.3", re.compile(r"\b(?:mild persistent|persistente leve|leve persistente)\b")),
    ("J45.4", re.compile(r"\b(?:moderate persistent|persistente moderad[oa]|moderad[oa] persistente)\b")),
    (
        "J45.5",
        re.compile(
            r"\b(?:severe persistent|persistente sever[oa]|persistente grave|sever[oa] persistente"
            r"|grave persistente)\b"
        ),
    ),
)
SEASONAL = re.compile(r"\b(?:seasonal|hay fever|estacional|polinosis|pollen|polen)\b")
OBESITY_CLASS = re.compile(r"\b(?:class|clase|grado|grade|tipo|type)\s*(iii|ii|i|[1-3])\b")
BMI = re.compile(
    r"\b(?:bmi|imc|indice de masa corporal|body mass index)\s*(?:of|de|is|es|was|:|=)?\s*(\d{2}(?:[.,]\d+)?)"
)
NIHSS = re.compile(r"\bnihss\s*(?:score)?\s*(?:of|de|:|=|was|is|es|was|initial|inicial)?\s*(\d{1,2})\b")
EMBOLIC = re.compile(r"\b(?:embolic|embolism|embolo|embolic[oa]|cardioembolic[oa]?|embolia)\b")
THROMBOTIC = re.compile(r"\b(?:thrombotic|thrombosis|thrombus|trombotic[oa]|trombosis|trombo|aterotrombotic[oa])\b")
LACUNAR = re.compile(r"\b(?:lacunar|lacunares|lacune)\b")
ARTERIES = (
    ("1", re.compile(r"\b(?:mca|middle cerebral|acm|arteria cerebral media|cerebral media)\b")),
    ("2", re.compile(r"\b(?:aca|anterior cerebral|arteria cerebral anterior|cerebral anterior)\b")),
    ("3", re.compile(r"\b(?:pca|posterior cerebral|arteria cerebral posterior|cerebral posterior)\b")),
)
CHRONIC_BLOOD_LOSS = re.compile(
    r"\b(?:chronic blood loss|blood loss|perdidas? cronicas?|perdida cronica de sangre|sangrado cronico"
    r"|hemorragia cronica"
    r"|perdidas digestivas|secondary to bleeding|secundaria a sangrado|por sangrado|menorrhagia|menorragia"
    r"|hipermenorrea|hypermenorrhea|heavy menstrual bleeding|sangrado menstrual abundante|metrorragia"
    r"|sangrado uterino|uterine bleeding|gi bleed\w*|hemorragia digestiva|melena)\b"
)
ORGANISMS = (
    ("A41.02", "B95.62", re.compile(r"\b(?:mrsa|methicillin[- ]resistant|meticilino resistente|sarm)\b")),
    ("A41.01", "B95.61", re.compile(r"\b(?:mssa|staphylococcus aureus|s\. aureus|staph aureus|estafilococo aureus)\b")),
    ("A41.51", "B96.20", re.compile(r"\b(?:e\. ?coli|escherichia coli)\b")),
    ("A41.52", "B96.5", re.compile(r"\b(?:pseudomonas)\b")),
    ("A40.3", "B95.3", re.compile(r"\b(?:streptococcus pneumoniae|pneumococcal|neumococo|neumococica)\b")),
)
SEVERE_SEPSIS = re.compile(r"\b(?:severe sepsis|sepsis severa|sepsis grave)\b")
COR_PULMONALE = re.compile(
    r"\b(?:cor pulmonale|right heart strain|right ventricular strain|sobrecarga (?:del )?ventricul"
    r"\w* derech\w*|disfuncion del ventriculo derecho|tension del ventriculo derecho)\b"
)
SADDLE = re.compile(r"\b(?:saddle|en silla de montar|en silla)\b")
DVT_VEINS = (
    ("1", re.compile(r"\b(?:femoral|femoral comun|common femoral)\b")),
    ("2", re.compile(r"\b(?:iliac|iliaca|iliofemoral|ileofemoral)\b")),
    ("3", re.compile(r"\b(?:popliteal|poplitea)\b")),
    ("4", re.compile(r"\b(?:tibial)\b")),
    ("5", re.compile(r"\b(?:peroneal|peronea)\b")),
    ("6", re.compile(r"\b(?:soleal|gastrocnemius|gemelar|calf muscular|muscular de la pantorrilla)\b")),
    ("Y", re.compile(r"\b(?:proximal)\b")),
    ("Z", re.compile(r"\b(?:distal|calf|pantorrilla)\b")),
)
INFLUENZA_IDENTIFIED = re.compile(
    r"\b(?:influenza|flu|gripe)\s*(?:type\s*)?(?:a|b)\b|\bh1n1|\bh3n2|\bpositive|positiv[oa]"
)
FRACTURE_SITES = (
    (
        "S72.14",
        re.compile(r"\b(?:intertrochanteric|pertrochanteric|intertrocanter\w*|pertrocanter\w*|transtrocanter\w*)\b"),
    ),
    ("S72.03", re.compile(r"\b(?:midcervical|transcervical|mediocervical)\b")),
    ("S72.04", re.compile(r"\b(?:basicervical|base of (?:the )?neck|basicervical)\b")),
    ("S72.01", re.compile(r"\b(?:subcapital|intracapsular|intracapsular\w*)\b")),
    ("S72.00", re.compile(r"\b(?:neck|cuello|hip|cadera)\b")),
    ("S72.10", re.compile(r"\b(?:trochanteric|trocanter\w*)\b")),
)
NONDISPLACED = re.compile(
    r"\b(?:nondisplaced|non-displaced|undisplaced|no desplazada|sin desplazamiento|impactada|impacted)\b"
)
SUBSEQUENT = re.compile(
    r"\b(?:subsequent encounter|routine healing|aftercare|follow-up visit|healing fracture|en consolidacion)\b"
)
OPEN_FRACTURE = re.compile(r"\b(?:open fracture|fractura abierta|compound fracture|expuesta)\b")
ULCER_SITES_L97 = (
    ("4", re.compile(r"\b(?:heel|talon|calcane\w*|midfoot|mediopie|arch|arco)\b")),
    ("3", re.compile(r"\b(?:ankle|tobillo|maleol\w*|malleol\w*)\b")),
    ("2", re.compile(r"\b(?:calf|pantorrilla|gemelo)\b")),
    (
        "5",
        re.compile(
            r"\b(?:toe|toes|dedo|dedos|hallux|ortejo|metatars\w*|plantar|planta|forefoot|antepie|dorsum|dorso"
            r"|foot|pie)\b"
        ),
    ),
)
ULCER_DEPTH = (
    ("4", re.compile(r"\b(?:bone|hueso|osea|oseo|osteomyelitis|osteomielitis|probe[- ]to[- ]bone)\b")),
    ("3", re.compile(r"\b(?:muscle necrosis|necrosis of muscle|necrosis muscular|muscle|musculo|muscular)\b")),
    (
        "2",
        re.compile(
            r"\b(?:fat layer|fat exposed|subcutaneous|subcutane[oa]|tejido celular subcutaneo|gras[ao]|adipos[oa])\b"
        ),
    ),
    (
        "1",
        re.compile(r"\b(?:limited to breakdown of (?:the )?skin|superficial|epidermis|dermis|skin breakdown|piel)\b"),
    ),
)
RETINOPATHY_LEVELS = (
    ("5", re.compile(r"\b(?:proliferative|proliferativa|pdr|rdp)\b")),
    ("4", re.compile(r"\b(?:severe nonproliferative|severe npdr|no proliferativa severa|no proliferativa grave)\b")),
    ("3", re.compile(r"\b(?:moderate nonproliferative|moderate npdr|no proliferativa moderada)\b")),
    ("2", re.compile(r"\b(?:mild nonproliferative|mild npdr|no proliferativa leve)\b")),
)
MACULAR_EDEMA = re.compile(r"\b(?:macular edema|edema macular|dme|emd)\b")
GANGRENE = re.compile(r"\b(?:gangrene|gangrena|necrosis seca)\b")
AUTONOMIC = re.compile(r"\b(?:autonomic|autonomica|autonomo)\b")
MONONEUROPATHY = re.compile(r"\b(?:mononeuropathy|mononeuropatia)\b")
DYSKINESIA = re.compile(r"\b(?:dyskinesia|dyskinesias|discinesias?|disquinesias?)\b")
FLUCTUATIONS = re.compile(r"\b(?:fluctuations?|fluctuaciones|wearing[- ]off|on-off|fenomeno on-off)\b")
INTRACTABLE = re.compile(
    r"\b(?:intractable|refractory|drug[- ]resistant|refractaria|farmacorresistente|pharmacoresistant)\b"
)
SLEEP_OBSTRUCTIVE = re.compile(r"\b(?:obstructive|obstructiva|osa|saos|sahos|sahs|hipopnea)\b")
HEMATURIA = re.compile(r"\b(?:hematuria|with blood|hemorragica|hemorrhagic)\b")
PERFORATED = re.compile(r"\b(?:perforated|perforation|perforada|perforacion|ruptured|rota)\b")
