"""Protected health information in English and Spanish clinical notes: found, with character
offsets into the note, a type and a score, and redacted.

Recall first (a name left in a coding report is worse than a word wrongly hidden), built
from the forms these identifiers take, not from a sample of notes:

- names: after a label (`Paciente:`, `Patient:`, `Nombre:`, `Madre:`, `Firmado por`), after
  a title (`Dr.`, `Dra.`, `Lic.`, `Enf.`, `Sr.`, `Mrs.`), before credentials (`, MD`, `RN`),
  two capitalised words from the name lists shipped with the package (US Census and the
  Faker project's Spanish-speaking countries, MIT licence), and every later occurrence of a
  name already found, whole or in part;
- dates in every written form (numeric, ISO, with month names in either language, month
  and year), but not times;
- record and visit numbers after their labels (MRN, HC, NHC, ficha, expediente, ED-…);
- phone numbers (US, Latin American and Spanish forms, with or without country code);
- national IDs: US SSN, Peruvian DNI (with its label), Chilean RUT (its check digit
  verified), Spanish DNI and NIE (their letter verified), Mexican CURP;
- e-mail addresses, street addresses and ZIP codes, and ages over 89 (HIPAA Safe Harbor).

Not PHI: ages of 89 or under, times, doses, lab values, scores, eponyms (Braden, Colles).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources

#: What replaces each kind of span in the redacted text.
PLACEHOLDER = {
    "NAME": "[NAME]",
    "DATE": "[DATE]",
    "RECORD_NUMBER": "[RECORD]",
    "PHONE": "[PHONE]",
    "ID": "[ID]",
    "EMAIL": "[EMAIL]",
    "ADDRESS": "[ADDRESS]",
    "AGE": "[AGE>89]",
    "URL": "[URL]",
}


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    type: str
    score: float
    #: Which rule found it (for the report's reader: why this was hidden).
    rule: str

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "type": self.type, "score": self.score, "rule": self.rule}


# --- word lists ---------------------------------------------------------------------------


@functools.cache
def _names(kind: str) -> frozenset[str]:
    text = (resources.files("vigia.workloads.coding") / "names" / f"{kind}.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def first_names() -> frozenset[str]:
    return _names("first_names")


def surnames() -> frozenset[str]:
    return _names("surnames")


#: Capitalised words that are never names in a clinical note, though some are in the name
#: lists (or look like names): eponyms, headings, months, days, places of care, drugs.
NOT_NAMES = frozenset(
    """
    braden norton waterlow glasgow apgar colles barthel morse wells curb centor nyha killip
    parkinson alzheimer crohn cushing addison graves hashimoto hodgkin bell down marfan
    paciente patient nombre name edad age sexo sex fecha date hora time dr dra doctor doctora
    enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre diciembre
    january february march april may june july august september october november december
    lunes martes miércoles jueves viernes sábado domingo monday tuesday wednesday thursday friday
    saturday sunday hospital clínica clinica centro servicio unidad emergencia emergency room ward
    diagnóstico diagnostico diagnosis plan assessment impresión impresion antecedentes history
    examen exam evolución evolucion tratamiento treatment alta discharge admission ingreso
    motivo consulta chief complaint subjective objective hpi ros pmh psh meds medications
    alergias allergies signos vitales vital signs labs laboratorio resultados results
    presión presion pressure ulcer úlcera ulcera lesión lesion stage estadio grado grade
    diabetes hipertensión hipertension hypertension insulina insulin metformina metformin
    derecho derecha izquierdo izquierda right left bilateral sacro sacral talón talon heel
    the and for with without con sin por para del de la las los el y o of on in at to
    mrn dob ssn dni hc nhc id rut curp nie ed er fin csn pcp md rn np do pa icu uci uti ecg ekg rx tac
    """.split()  # noqa: SIM905 -- a word list reads better as text
)

TITLES = (
    r"Dr|Dra|Drs|Dres|Doctor|Doctora|Lic|Licda|Licdo|Enf|Enfra|Enfermera|Enfermero|Obst|Tec|Tco|Ing|Prof"
    r"|Sr|Sra|Srta|Sres|Don|Doña|Mr|Mrs|Ms|Miss|Mx|Nurse|RN"
)
CREDENTIALS = r"MD|M\.D\.|DO|D\.O\.|RN|R\.N\.|NP|PA-C|PA|BSN|MSN|LPN|CNA|PhD|DPM|PharmD|MBBS|FACP|FACS|CWOCN|WOCN"
#: A name word: capitalised (or all capitals), letters, apostrophes and hyphens.
_WORD = (
    r"(?:(?:Mc|Mac|O['’]|D['’])?[A-ZÁÉÍÓÚÑÜ][a-záéíóúñüàèìòù'’]+(?:-(?:O['’])?[A-ZÁÉÍÓÚÑÜ][a-záéíóúñü'’]+)?"
    r"|[A-ZÁÉÍÓÚÑÜ]{2,}(?![a-z]))"
)
_PARTICLE = r"(?:de|del|de la|de los|la|y|van|von|da|do|dos|das|di|le|mc|o')"
#: One to four name words, particles and initials ("John A. Smith") allowed between them.
#: Words of one name are one space apart: more spaces or a tab separate a form's columns.
NAME_RUN = rf"(?:[A-Z]\. ?)?{_WORD}(?: (?:{_PARTICLE} |[A-Z]\. )?{_WORD}){{0,3}}"
#: "SURNAME, Given" and "Surname, Given M." as forms and lists write them.
SURNAME_FIRST = rf"{NAME_RUN},[ \t]+{_WORD}(?: {_WORD})?(?: [A-Z]\.)?"
LABELS = (
    r"paciente|patient|pt|nombre(?:s)?(?: y apellidos)?|name|apellidos?|surname|madre|padre|mother|father"
    r"|esposo|esposa|hijo|hija|son|daughter|wife|husband|spouse|hermano|hermana|brother|sister"
    r"|acompañante|acompañado por|accompanied by|contacto|contact|emergency contact|contacto de emergencia"
    r"|familiar|cuidador|cuidadora|caregiver|tutor|guardian|responsable"
    r"|médico tratante|medico tratante|médico|medico|attending|attending physician|physician|provider"
    r"|referring physician|referido por|referred by|derivado por|pcp|primary care|enfermera|enfermero|nurse"
    r"|firmado por|firma|signed by|electronically signed by|atendido por|seen by|dictated by|resident|residente"
    r"|interno|fellow|cirujano|surgeon|anestesiólogo|anesthesiologist"
    r"|apellidos y nombres|nombres y apellidos|nieto|nieta|sobrino|sobrina|grandson|granddaughter|niece|nephew"
    r"|hcp|hcpoa|health care proxy|poa|apoderado|apoderada|elaboró|elaborado por|realizado por|redactado por"
    r"|written by|prepared by|reviewed by|revisado por|valorado por|evaluado por|evaluated by|author"
)
#: What may stand between a label and the name: another label ("Daughter/HCPOA:") and a
#: role's abbreviation ("Elaboró: R2 MU").
_LABEL_TAIL = r"(?:/\w{1,12})?"
_ROLE_CODES = r"(?:(?:[A-Z]{1,4}\d?|R\d)\s+){0,2}"

_MONTHS_ES = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
_MONTHS_EN = "january|february|march|april|may|june|july|august|september|october|november|december"
_MONTHS_SHORT = "ene|feb|mar|abr|may|jun|jul|ago|sep|sept|set|oct|nov|dic|jan|apr|aug|dec"
_MONTH = rf"(?:{_MONTHS_ES}|{_MONTHS_EN}|{_MONTHS_SHORT})\.?"

#: Comma-separated places after a street: districts, postcodes, cities, to where the address
#: ends (a line's end, a wide gap before the next field, a full stop or a semicolon).
#: A word of a place: an abbreviation may end in a full stop ("Col.", "N.L."), a word may not
#: (its full stop ends the sentence).
_PLACE_WORD = (
    r"(?:[A-ZÁÉÍÓÚÑ0-9][\wÁÉÍÓÚÑáéíóúñº°.'’-]{0,3}\.|[A-ZÁÉÍÓÚÑ0-9][\wÁÉÍÓÚÑáéíóúñº°'’-]*"
    r"|de|del|la|las|los|y|izq\.?|izda\.?|dcha\.?|dpto\.?|piso|bajo)"
)
_PLACE = rf"{_PLACE_WORD}(?: {_PLACE_WORD}){{0,5}}"
_PLACES = rf"(?:(?:,[ \t]*(?-i:{_PLACE})){{1,5}}(?=[ \t]{{2,}}|[ \t]*(?:$|[,;(]|\.(?:\s|$))))?"

PATTERNS: tuple[tuple[str, str, float, re.Pattern[str]], ...] = (
    # (type, rule, score, pattern); a pattern's group "phi", when it has one, is the span.
    ("EMAIL", "email", 0.99, re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("URL", "url", 0.9, re.compile(r"\bhttps?://\S+|\bwww\.\S+\.\w{2,}\S*", re.I)),
    ("ID", "us_ssn", 0.95, re.compile(r"\b(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}\b")),
    ("ID", "curp", 0.95, re.compile(r"\b[A-Z][AEIOUX][A-Z]{2}\d{6}[HM][A-Z]{5}[A-Z0-9]\d\b")),
    (
        "ID",
        "dni_label",
        0.95,
        re.compile(
            r"\b(?:DNI|D\.N\.I\.|C\.?I\.|C[ée]dula(?: de identidad)?|CE|Carn[eé]t? de extranjer[ií]a|pasaporte|passport"
            r"|SSN|NSS|ID|C\.C\.|CC|c[ée]dula de ciudadan[ií]a|RUN|RUT|NIE|NIF|CURP)\s*(?:N[°ºo.]*\s*|#\s*|:\s*)?"
            r"(?P<phi>[A-Z]?\d[\d.\-]{5,14}[0-9A-Z])\b",
            re.I,
        ),
    ),
    (
        "RECORD_NUMBER",
        "record_label",
        0.95,
        re.compile(
            r"\b(?:(?:MRN|M\.R\.N\.|HC|H\.C\.|NHC|N\.H\.C\.|historia cl[ií]nica|hist\.? cl[ií]n\.?|acct\.?"
            r"|ficha(?: cl[ií]nica)?|expediente|exp\.|CIP|DAU|FIN|CSN|medical record(?: number)?"
            # the NHS's, a hospital's or an insurer's number of the patient
            r"|NHS(?: number| no\.?)?|hospital (?:number|no\.?)|MR ?#|unit (?:number|no\.?)|patient id|pt id|CHI"
            r"|member id|subscriber id|policy (?:number|no\.?|#)|insurance id|afiliad[oa]|n[°º] de afiliad[oa]"
            r"|p[oó]liza|SIS|EsSalud|IMSS|ISSSTE|FONASA|ISAPRE)"
            r"(?:\s*(?:N[°ºo.]*|#|:|-)\s*|\s+)"
            # words that only label a number with a number sign: "visit #", "episodio N°"
            r"|(?:record|account|acct\.?|visit|encounter|episodio|episode|admisi[oó]n|atenci[oó]n|cuenta|folio)"
            r"\s*(?:number|no\.?|#|N[°º]|id)\s*[:#]?\s*|(?:record|account|visit|encounter|episodio|episode)\s*:\s*"
            r"|N[°º] de (?:historia|ficha|cuenta|atenci[oó]n)\s*:?\s*)"
            r"(?:N[°ºo.]*\s*|#\s*|:\s*|-\s*)*(?P<phi>\d{3} \d{3} \d{4}|[A-Z]{0,4}-?\d(?:[\w\-/.]*[A-Z0-9])?)(?![\w-])",
            re.I,
        ),
    ),
    (
        "ID",
        "licence_number",
        0.9,
        re.compile(
            r"\b(?:CMP|C\.M\.P\.|CEP|COP|CMV|colegiatura|colegiad[oa]|N[°º]\s*colegiad[oa]|matr[ií]cula|NPI|DEA|UPIN"
            r"|licen[cs]e(?: number| no\.?| #)?|lic\. no\.?|(?:RN|LPN|NP|MD) lic\.?|c[ée]dula profesional"
            r"|c[ée]d\.?\s*prof\.?|RNE|M\.\s?[NP]\.|Mat\.(?:\s?Prof\.)?|N[°º]\s*de\s*colegiad[oa])\s*(?:N[°ºo.]*\s*|#\s*|:\s*)?"
            r"(?P<phi>(?:[A-Z]{1,3}[.-]?)?\d[\d\-]{2,11})\b",
            re.I,
        ),
    ),
    (
        "RECORD_NUMBER",
        "record_prefix",
        0.9,
        re.compile(r"\b(?:ED|ER|EM|ADM|ENC|VIS|MRN|HC|INP|OUT|OP|IP)-\d{3,}[\w-]*\b"),
    ),
    (
        "DATE",
        "date_numeric",
        0.95,
        re.compile(
            # a sentence's full stop may follow it ("DOB: 07/22/1957.")
            r"(?<![\d/.-])(?:\d{1,2}(?P<sep>[/.-])\d{1,2}(?P=sep)(?:19|20)?\d{2}|(?:19|20)\d{2}(?P<sep2>[/.-])\d{1,2}(?P=sep2)\d{1,2})"
            r"(?![\d/-]|\.\d)"
        ),
    ),
    (
        "DATE",
        "date_words",
        0.95,
        re.compile(
            rf"\b(?:\d{{1,2}}(?:\.?[ºo°]|st|nd|rd|th)?(?:\s*|[-/.])(?:de\s+)?{_MONTH}(?:(?:\s*(?:de|del|,)?\s*|[-/.])(?:19|20)?\d{{2}}(?!\d))?"
            rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s*(?:19|20)\d{{2}})?"
            rf"|{_MONTH}\s*(?:de\s+|del\s+|,\s*)?(?:19|20)\d{{2}})\b",
            re.I,
        ),
    ),
    ("DATE", "date_month_year", 0.9, re.compile(r"(?<![\d/.-])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/-]|\.\d)")),
    (
        "AGE",
        "age_over_89",
        0.95,
        re.compile(
            r"\b(?P<phi>(?:9\d|1[01]\d))"
            r"(?:\s*-?\s*(?:years?|yrs?|y/?o|year-old|años|a\.|añ?os de edad)\b|\s*a(?:ñ)?os?\b)",
            re.I,
        ),
    ),
    ("AGE", "age_label_over_89", 0.95, re.compile(r"\b(?:edad|age)(?:/sexo?)?\s*[:=]?\s*(?P<phi>9\d|1[01]\d)\b", re.I)),
    (
        "ADDRESS",
        "street_es",
        0.9,
        re.compile(
            r"\b(?:[Aa]v(?:enida)?\.?|[Cc]alle|C/|Jr\.?|[Jj]ir[oó]n|[Pp]asaje|Psje\.?|Pje\.?|Carrera|Cra\.?|Cll\.?|Diagonal|Transversal"
            r"|Paseo|Camino|Urb(?:anizaci[oó]n)?\.?|Mz\.?|Manzana|Lote|Lt\.?|Block|Bloque|Pasaje|Prolongaci[oó]n|Plaza)"
            # the number, and a Colombian plate ("Carrera 15 # 93-47")
            # ("C/ Mayor, 12" and "calle Alcalá nº 120" in Spain)
            # the street's name opens with a capital or a number ("en la calle desde hace 3 días" is no address)
            r"\s+(?:(?:(?:de|del|de la|de los)\s+)?[A-ZÁÉÍÓÚÑ0-9][\wÁÉÍÓÚÑáéíóúñ.'’ ]{1,39}?\s*,?\s*)?"
            r"(?:[Nn][°ºo.]*\s*)?\d{1,5}[A-Z]?(?:-\d{1,4})?"
            r"(?:\s*(?:#|N[°ºo.]*)\s*\d{1,4}(?:\s*-\s*\d{1,4})?)?"
            r"(?:\s*[-,]?\s*(?:Dpto\.?|Depto\.?|Int\.?"
            r"|Piso|Of\.?|Apt\.?)\s*[\wº°]+)?"
            # and the places after it (Safe Harbor: any place below a state): "Col. Obispado,
            # 64060 Monterrey, N.L.", "Lince, Lima"
            rf"{_PLACES}",
            re.M,
        ),
    ),
    (
        "ADDRESS",
        "street_en",
        0.9,
        re.compile(
            r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln"
            r"|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Ter|Highway|Hwy|Parkway|Pkwy|Circle|Cir)\b\.?"
            r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*\w+)?"
        ),
    ),
    (
        "ADDRESS",
        "address_label",
        0.9,
        # what a form's address field holds, to the field's end: a line's end or a wide gap
        re.compile(
            r"\b(?i:domicilio|direcci[oó]n|address|home address|residencia|lugar de residencia|procedencia"
            r"|domicilio actual)\s*:\s*(?P<phi>[A-ZÁÉÍÓÚÑ0-9][^\n]{2,100}?)"
            # ... or a sentence's full stop (after a word, not after "Av." or "Col.")
            r"(?=[ \t]{2,}|[ \t]*$|[ \t]*[;|]|(?<=[^\W\d_]{4})\.(?:\s|$))",
            re.M,
        ),
    ),
    ("ADDRESS", "zip", 0.85, re.compile(r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")),
)

_PHONE = re.compile(
    # a country code may precede a one-digit mobile or trunk prefix: +56 9 8765 4321, +52 1 55 ...
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\d[\s.-])?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w/])"
    r"|(?<![\w+])\+\d{8,14}\b|(?<![\w/.-])\d{9,10}(?![\w/.-])"
)
_PHONE_CUE = re.compile(
    r"(?:tel[eé]fono|tel[ée]f?\.?|tlf\.?|cel(?:ular)?\.?|m[oó]vil|phone|ph\.?|cell|mobile|fax|whatsapp|contact|contacto)"
    r"\s*(?:n[°ºo.]*)?\s*[:#]?\s*$",
    re.I,
)
_RUT = re.compile(r"\b(\d{1,2}\.?\d{3}\.?\d{3})-?([\dkK])\b")
_ES_DNI = re.compile(r"\b(\d{8})-?([A-HJ-NP-TV-Z])\b")
_NIE = re.compile(r"\b([XYZ])-?(\d{7})-?([A-HJ-NP-TV-Z])\b")
_PERU_DNI_BARE = re.compile(r"(?<![\d.-])\d{8}(?![\d.-])")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _rut_valid(body: str, check: str) -> bool:
    digits = [int(char) for char in body.replace(".", "")][::-1]
    total = sum(digit * (2 + index % 6) for index, digit in enumerate(digits))
    expected = 11 - total % 11
    return check.upper() == {10: "K", 11: "0"}.get(expected, str(expected))


def _spanish_dni_valid(number: str, letter: str) -> bool:
    return _DNI_LETTERS[int(number) % 23] == letter.upper()


def _nie_valid(prefix: str, number: str, letter: str) -> bool:
    return _spanish_dni_valid(str("XYZ".index(prefix.upper())) + number, letter)


# --- finding ------------------------------------------------------------------------------


def _span(match: re.Match[str], kind: str, rule: str, score: float) -> Span:
    group = "phi" if "phi" in match.re.groupindex and match.group("phi") else 0
    return Span(match.start(group), match.end(group), kind, score, rule)


def _plausible_date(written: str) -> bool:
    """A numeric date with a real day and month, in either order ("24-0-12" is a dose)."""
    numbers = [int(part) for part in re.split(r"[/.-]", written)]
    if numbers[0] > 31:  # year first
        numbers = numbers[1:]
    first, second = numbers[0], numbers[1]
    return 1 <= first <= 31 and 1 <= second <= 31 and (first <= 12 or second <= 12)


def _patterns(text: str) -> Iterator[Span]:
    for kind, rule, score, pattern in PATTERNS:
        for match in pattern.finditer(text):
            if rule == "date_numeric" and not _plausible_date(match.group()):
                continue
            span = _span(match, kind, rule, score)
            last = text[span.start : span.end].rsplit(None, 1)[-1]
            if kind == "ADDRESS" and last.endswith(".") and len(last) > 4 and "." not in last[:-1]:
                span = Span(span.start, span.end - 1, kind, score, rule)  # the sentence's full stop, not "N.L."
            yield span
    for match in _RUT.finditer(text):
        if _rut_valid(match.group(1), match.group(2)):
            yield Span(match.start(), match.end(), "ID", 0.95, "chile_rut")
    for match in _ES_DNI.finditer(text):
        if _spanish_dni_valid(match.group(1), match.group(2)):
            yield Span(match.start(), match.end(), "ID", 0.95, "spain_dni")
    for match in _NIE.finditer(text):
        if _nie_valid(match.group(1), match.group(2), match.group(3)):
            yield Span(match.start(), match.end(), "ID", 0.95, "spain_nie")


def _phones(text: str, taken: Sequence[Span]) -> Iterator[Span]:
    """Phone numbers: forms with a country code or grouped digits of phone length, and any
    number after a phone label. Lab values, doses and times do not have phone shapes."""
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if not 7 <= len(digits) <= 15 or _overlaps(match.start(), match.end(), taken):
            continue
        cue = _PHONE_CUE.search(text[max(0, match.start() - 30) : match.start()])
        written = match.group()
        shaped = written.startswith("+") or "(" in written or len(re.findall(r"\d+", written)) >= 2
        bare = len(digits) in (9, 10) and not _numeric_context(text, match)  # 987654321, 5551234567
        if cue or (shaped and len(digits) >= 9) or bare:
            yield Span(match.start(), match.end(), "PHONE", 0.9 if cue or shaped else 0.7, "phone")


def _numeric_context(text: str, match: re.Match[str]) -> bool:
    """Digits that belong to a measurement: a unit or an operator next to them."""
    after = text[match.end() : match.end() + 8].lower()
    before = text[max(0, match.start() - 3) : match.start()]
    return bool(re.match(r"\s*(?:mg|ml|mcg|g/|mmol|mm|cm|kg|u/|ui|iu|%|x10|/mm)", after)) or bool(
        re.search(r"[=<>×x]\s*$", before)
    )


def _peru_dni(text: str, taken: Sequence[Span]) -> Iterator[Span]:
    """An 8-digit number near "DNI" (a label not right before it is handled above)."""
    for match in _PERU_DNI_BARE.finditer(text):
        if _overlaps(match.start(), match.end(), taken):
            continue
        window = text[max(0, match.start() - 40) : match.start()].lower()
        if "dni" in window or "documento" in window or "identidad" in window:
            yield Span(match.start(), match.end(), "ID", 0.9, "peru_dni")


@functools.cache
def _clinical_words() -> frozenset[str]:
    """The words of the conditions the workload codes ("Glucose", "Neumonía" open lines in
    capitals): never a name."""
    from vigia.workloads.coding.lexicon import CONCEPTS, phrases  # noqa: PLC0415 -- a sibling's table, once

    words = {
        word
        for concept in CONCEPTS
        for language in ("en", "es")
        for phrase in phrases(concept, language)
        for word in re.findall(r"[^\W\d_]{4,}", phrase.casefold())
    }
    return frozenset(words | CLINICAL_WORDS)


#: Words that open a line of a note in capitals and are in the name lists.
CLINICAL_WORDS = frozenset(
    """
    glucose glucosa físico fisico general neuro skin piel heart corazón abdomen extremities extremidades
    wound herida dressing apósito curación curacion céd cédula prof profesional médico familiar urgenciólogo
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
#: What follows a place of care's name ("Maple Grove Assisted Living", "Mercy Valley Hospital").
_FACILITY_AFTER = re.compile(
    r"[ \t]+(?:Assisted|Living|Hospital|Medical|Center|Centre|Clinic|Nursing|Rehab|Rehabilitation|Health|Home"
    r"|Care|Memorial|Regional|Hospice|Healthcare|Community|Urgent)\b"
)
_FACILITY_BEFORE = re.compile(r"\b(?:Hospital|Clínica|Clinica|Centro|Policlínico|Posta|Sanatorio|Instituto)[ \t]+$")


# Labels and titles in any case; the name itself capitalised, "SURNAME, Given" too.
_LABELLED = re.compile(
    rf"\b(?i:{LABELS}){_LABEL_TAIL}\s*(?:\([^)]*\))?\s*[:\-–]\s*{_ROLE_CODES}(?P<run>{SURNAME_FIRST}|{NAME_RUN})"
)
_SPOKEN = re.compile(rf"\b(?i:{LABELS}){_LABEL_TAIL}(?:\s+|\s*[(,]\s*)(?P<run>{SURNAME_FIRST}|{NAME_RUN})")
_SURNAME_FIRST = re.compile(rf"\b(?P<run>{SURNAME_FIRST})")
_TITLED = re.compile(rf"\b(?:(?:{TITLES})\.?\s+)+(?P<run>{NAME_RUN})")
_CREDENTIALED = re.compile(rf"(?P<run>{NAME_RUN}),?\s+(?:{CREDENTIALS})\b")
_LISTED = re.compile(rf"\b(?P<first>{_WORD})\s+(?P<rest>(?:(?:{_PARTICLE})\s+)?{_WORD}(?:\s+{_WORD})?)")


def _not_name(word: str) -> bool:
    bare = word.strip(".,;:")
    return (
        bare.casefold() in NOT_NAMES
        or bare.casefold() in _clinical_words()
        or bool(re.fullmatch(_PARTICLE, bare))
        or bool(re.fullmatch(TITLES, bare, re.I))
        or not bare[:1].isupper()
    )


def _trimmed(text: str, match: re.Match[str], rule: str, score: float) -> Iterator[Span]:
    """The match's run without the words at either end that are not names (headings,
    "is"), unless it names a place of care."""
    start = match.start("run") if "run" in match.re.groupindex else match.start()
    run = text[start : match.end("run") if "run" in match.re.groupindex else match.end()]
    words = [(found.start(), found.end(), found.group()) for found in re.finditer(r"\S+", run)]
    while words and _not_name(words[-1][2]):
        words.pop()
    # A first name that is also a month or a heading word ("Dr. Julio Salazar", "Rosa")
    # stays when a name follows it.
    known_first = first_names()
    while (
        words
        and _not_name(words[0][2])
        and not (len(words) > 1 and words[0][2].casefold() in known_first and words[0][2][:1].isupper())
    ):
        words.pop(0)
    if words:
        end = start + words[-1][1] - (len(words[-1][2]) - len(words[-1][2].rstrip(".,;:")))
        begin = start + words[0][0]
        if not (_FACILITY_AFTER.match(text, end) or _FACILITY_BEFORE.search(text, 0, begin)):
            yield Span(begin, end, "NAME", score, rule)


def _run_words(match: re.Match[str]) -> list[str]:
    return [word.strip(",.").casefold() for word in match.group("run").split()]


def _spoken_names(text: str, known: Callable[[str], bool]) -> Iterator[Span]:
    """A name after a label word without a colon ("wife Grace Okafor"), when a word of it is ``known``."""
    for match in _SPOKEN.finditer(text):
        if any(known(word) for word in _run_words(match)):
            yield from _trimmed(text, match, "name_label", 0.85)


def _names_found(text: str) -> Iterator[Span]:
    """Names by their cues: labels, titles, credentials and the shipped lists."""
    known_first, known_last = first_names(), surnames()
    yield from _spoken_names(text, lambda word: word in known_first or word in known_last)
    for match in _LABELLED.finditer(text):
        yield from _trimmed(text, match, "name_label", 0.95)
    for match in _SURNAME_FIRST.finditer(text):  # "HALVORSEN, Ingrid" anywhere, a known given name after it
        given = match.group("run").split(",", 1)[1].split()
        if given and given[0].casefold() in known_first and given[0].casefold() not in NOT_NAMES:
            yield from _trimmed(text, match, "name_surname_first", 0.85)
    for match in _TITLED.finditer(text):
        yield from _trimmed(text, match, "name_title", 0.95)
    for match in _CREDENTIALED.finditer(text):
        yield from _trimmed(text, match, "name_credentials", 0.9)
    for match in _LISTED.finditer(text):
        first = match.group("first").casefold()
        rest = [word.casefold() for word in match.group("rest").split()]
        if first in NOT_NAMES or first not in known_first:
            continue
        if any(word in known_last for word in rest) or (rest and rest[0] in known_first):
            yield from _trimmed(text, match, "name_list", 0.8)


def _overlaps(start: int, end: int, spans: Iterable[Span]) -> bool:
    return any(span.start < end and start < span.end for span in spans)


def _propagate(text: str, names: Sequence[Span]) -> Iterator[Span]:
    """Every later occurrence of a name found, whole or a part of it (a surname alone, a
    first name alone), as a whole word."""
    parts: set[str] = set()
    for span in names:
        words = [word for word in text[span.start : span.end].split() if len(word) > 2]
        parts.update(
            word for word in words if word.casefold() not in NOT_NAMES and not re.fullmatch(_PARTICLE, word, re.I)
        )
        parts.add(text[span.start : span.end])
    # As written, and in capitals (forms repeat the name as "QUISPE HUAMAN"); not in any
    # case, or every "May" and "Rosa" of the note would go.
    for part in sorted(parts | {part.upper() for part in parts}, key=len, reverse=True):
        for match in re.finditer(rf"(?<![\w]){re.escape(part)}(?![\w])", text):
            yield Span(match.start(), match.end(), "NAME", 0.85, "name_repeated")


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans become one (of the type with the highest score)."""
    ordered = sorted(spans, key=lambda span: (span.start, -span.end))
    merged: list[Span] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = last if last.score >= span.score else span
            merged[-1] = Span(last.start, max(last.end, span.end), best.type, max(last.score, span.score), best.rule)
        else:
            merged.append(span)
    return merged


def find(text: str) -> list[Span]:
    """Every PHI span of ``text``, in order, overlapping ones merged."""
    spans = list(_patterns(text))
    spans += list(_phones(text, spans))
    spans += list(_peru_dni(text, spans))
    names = [span for span in _names_found(text) if not _overlaps(span.start, span.end, spans)]
    # A relative named with a surname found elsewhere ("su hijo Andrei Popescu").
    found_parts = {word.strip(",.").casefold() for span in names for word in text[span.start : span.end].split()}
    names += [
        span
        for span in _spoken_names(text, found_parts.__contains__)
        if not _overlaps(span.start, span.end, [*spans, *names])
    ]
    spans += names
    spans += [span for span in _propagate(text, names) if not _overlaps(span.start, span.end, spans)]
    return _merge(spans)


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    spans: tuple[Span, ...]
    #: (start in the redacted text, start in the original, length) per unchanged piece.
    pieces: tuple[tuple[int, int, int], ...]

    def original_offset(self, offset: int) -> int:
        """Where a character of the redacted text stood in the original note."""
        for redacted_start, original_start, length in self.pieces:
            if redacted_start <= offset < redacted_start + length:
                return original_start + offset - redacted_start
        for redacted_start, original_start, length in reversed(self.pieces):
            if offset >= redacted_start + length:
                return original_start + length
        return 0


def redact(text: str, spans: Sequence[Span] | None = None) -> Redacted:
    """``text`` with each span replaced by its type's placeholder."""
    spans = find(text) if spans is None else spans
    out: list[str] = []
    pieces: list[tuple[int, int, int]] = []
    cursor = 0
    length = 0
    for span in spans:
        if span.start > cursor:
            pieces.append((length, cursor, span.start - cursor))
            out.append(text[cursor : span.start])
            length += span.start - cursor
        placeholder = PLACEHOLDER[span.type]
        out.append(placeholder)
        length += len(placeholder)
        cursor = span.end
    if cursor < len(text):
        pieces.append((length, cursor, len(text) - cursor))
        out.append(text[cursor:])
    return Redacted("".join(out), tuple(spans), tuple(pieces))
