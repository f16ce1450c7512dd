"""Metadata of a document, read from its own text, with no language model: title, type,
dates, reference numbers, keywords. Every field says where in the cleaned text it came from
(offsets, page, the words themselves), so that a person can check it.

Built for the kind of document, not for a sample: the tables below are the administrative
and clinical document types of Spanish- and English-speaking public offices and clinics,
and the patterns are the usual written forms of their dates and numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vigia.workloads.documents.cleaning import CleanText

#: How far into the document the title and the type are looked for.
HEAD_CHARACTERS = 1500
MAX_TITLE = 200
MAX_KEYWORDS = 10


@dataclass(frozen=True, slots=True)
class DocumentType:
    key: str
    label: str
    #: Patterns (case-insensitive) naming the type as a document names itself.
    patterns: tuple[str, ...]


#: Spanish and English administrative and clinical document types, most specific first.
DOCUMENT_TYPES: tuple[DocumentType, ...] = (
    DocumentType("oficio_multiple", "Oficio múltiple", (r"\boficio\s+m[uú]ltiple\b",)),
    DocumentType("oficio", "Oficio", (r"\boficio\b",)),
    DocumentType(
        "resolucion",
        "Resolución",
        (
            r"\bresoluci[oó]n\s+(?:directoral|ministerial|jefatural|gerencial|de\s+alcald[ií]a|de\s+"
            r"gerencia|vice\s*ministerial|suprema|administrativa|rectoral|regional|ejecutiva)\b",
            r"\bresoluci[oó]n\b",
        ),
    ),
    DocumentType("memorando", "Memorando", (r"\bmemor[aá]ndum\b", r"\bmemorando\b", r"\bmemo\b")),
    DocumentType("informe_tecnico", "Informe técnico", (r"\binforme\s+t[eé]cnico\b",)),
    DocumentType("informe_legal", "Informe legal", (r"\binforme\s+legal\b",)),
    DocumentType(
        "epicrisis",
        "Epicrisis / informe de alta",
        (r"\bepicrisis\b", r"\binforme\s+de\s+alta\b", r"\bresumen\s+de\s+alta\b"),
    ),
    DocumentType(
        "discharge_summary",
        "Discharge summary",
        (r"\bdischarge\s+summary\b", r"\bdischarge\s+report\b"),
    ),
    DocumentType(
        "lab_report",
        "Lab report",
        (
            r"\blab(?:oratory)?\s+(?:report|results?)\b",
            r"\binforme\s+de\s+laboratorio\b",
            r"\bresultados?\s+de\s+laboratorio\b",
            r"\bhemograma\b",
            r"\bcomplete\s+blood\s+count\b",
        ),
    ),
    DocumentType(
        "referral",
        "Referral letter",
        (
            r"\breferral\b",
            r"\bhoja\s+de\s+referencia\b",
            r"\binterconsulta\b",
            r"\bcontrarreferencia\b",
            r"\bderivaci[oó]n\b",
        ),
    ),
    DocumentType("receta", "Prescription", (r"\breceta\s+m[eé]dica\b", r"\bprescription\b")),
    DocumentType(
        "certificado_medico",
        "Medical certificate",
        (r"\bcertificado\s+m[eé]dico\b", r"\bmedical\s+certificate\b", r"\bsick\s+note\b"),
    ),
    DocumentType("historia_clinica", "Clinical record", (r"\bhistoria\s+cl[ií]nica\b", r"\bmedical\s+record\b")),
    DocumentType("informe", "Informe", (r"\binforme\b",)),
    DocumentType("report", "Report", (r"\breport\b",)),
    DocumentType("constancia", "Constancia", (r"\bconstancia\b",)),
    DocumentType("certificado", "Certificado", (r"\bcertificado\b", r"\bcertificate\b")),
    DocumentType("solicitud", "Solicitud", (r"\bsolicitud\b", r"\bapplication\s+form\b", r"\brequest\s+form\b")),
    DocumentType("acta", "Acta", (r"\bacta\b", r"\bminutes\s+of\b")),
    DocumentType("decreto", "Decreto", (r"\bdecreto\b", r"\bdecree\b")),
    DocumentType("directiva", "Directiva", (r"\bdirectiva\b", r"\bdirective\b")),
    DocumentType("convenio", "Convenio", (r"\bconvenio\b", r"\bagreement\b")),
    DocumentType("contrato", "Contrato", (r"\bcontrato\b", r"\bcontract\b")),
    DocumentType("carta", "Carta", (r"\bcarta\b",)),
    DocumentType("memorandum", "Memorandum", (r"\bmemorandum\b",)),
    DocumentType("letter", "Letter", (r"\bdear\s+(?:dr|mr|mrs|ms|sir|madam|colleague)",)),
    DocumentType("factura", "Invoice", (r"\bfactura\b", r"\binvoice\b")),
)
_TYPE_PATTERNS = [(kind, re.compile(pattern, re.IGNORECASE)) for kind in DOCUMENT_TYPES for pattern in kind.patterns]

MONTHS = {
    # Spanish
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
    "ene": 1, "feb": 2, "mar": 3, "abr": 4, "may": 5, "jun": 6, "jul": 7, "ago": 8, "sep": 9, "set": 9,
    "oct": 10, "nov": 11, "dic": 12,
    # English
    "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "apr": 4, "aug": 8, "sept": 9, "dec": 12,
}  # fmt: skip
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    # 2025-04-21
    ("iso", re.compile(r"\b(?P<y>(?:19|20)\d{2})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")),
    # 21 de abril de 2025, 21 de abril del 2025, 21 abril 2025, 21 April 2025, 1.º de marzo
    (
        "day_month_year",
        re.compile(
            rf"\b(?P<d>\d{{1,2}})(?:\.?[ºo°])?(?:\s+de)?\s+(?P<mon>{_MONTH})\.?(?:\s+(?:de|del))?,?\s+(?P<y>(?:19|20)\d{{2}})\b",
            re.IGNORECASE,
        ),
    ),
    # April 21, 2025; Apr. 21 2025
    (
        "month_day_year",
        re.compile(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>(?:19|20)\d{{2}})\b", re.I),
    ),
    # 21/04/2025, 21-04-2025, 21.04.2025, 04/21/2025 (by language), 21/04/25
    ("numeric", re.compile(r"\b(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<y>(?:19|20)?\d{2})\b")),
)

#: Reference numbers: a document type (or "expediente", "ref.") then "N°" and an identifier.
_REFERENCE = re.compile(
    r"""(?P<kind>
          (?:oficio|resoluci[oó]n|memor[aá]ndum|memorando|informe|carta|decreto|acta|directiva|
             convenio|contrato|constancia|certificado|solicitud|expediente|exp|registro|
             letter|report|reference|ref|case|file|order|invoice|factura)
          (?:\s+(?:m[uú]ltiple|directoral|ministerial|jefatural|gerencial|regional|rectoral|
               suprema|administrativa|ejecutiva|t[eé]cnico|legal|de\s+alcald[ií]a|de\s+gerencia))?
        )\.?\s*
        (?:n[.°ºo]*\s*|nro\.?\s*|núm(?:ero)?\.?\s*|no\.?\s*|number\s*|\#\s*|:\s*)
        (?P<number>[0-9A-Z][0-9A-Z\-./]*\d[0-9A-Z\-./]*[0-9A-Z])""",
    re.IGNORECASE | re.VERBOSE,
)
_ASUNTO = re.compile(r"^\s*(?:asunto|subject|re|referencia|ref)\s*[:.]\s*(?P<value>\S.{3,})$", re.IGNORECASE | re.M)

STOPWORDS = frozenset(
    """
    a al algo algunas algunos ante antes como con contra cual cuando de del desde donde durante e el ella
    ellas ellos en entre era es esa esas ese eso esos esta estas este esto estos fue fueron ha han hasta
    hay la las le les lo los mas más me mi mis muy ni no nos o os otra otras otro otros para pero poco por
    porque que quien quienes se sea ser si sí sin sino sobre su sus tal también tambien te tiene tienen
    todo todos tu tus un una unas uno unos usted ustedes y ya dicho dicha según segun así asi cada mismo
    misma señor señora sr sra dr dra lic ing n nº n° nro año años dia día días mes meses presente grato
    dirigirme dirigirse atentamente cordialmente saludo saludos hacer llegar mediante cual cuyo cuya
    the of and to in for on with at by from as is are was were be been being this that these those it its
    an or not no but if then than so such which who whom whose what when where why how all any each
    other some into over under about after before between through during our your their his her him she
    he they we you i me my mr mrs ms dear also may shall will would should can could must has have had do
    does did per via re please hereby herein thereof sincerely regards yours kind
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_WORD = re.compile(r"[^\W\d_][^\W_]*(?:[-'][^\W\d_]+)*", re.UNICODE)


def _source(clean: CleanText, start: int, end: int) -> dict[str, Any]:
    return {"start": start, "end": end, "page": clean.page_of(start), "text": clean.text[start:end][:MAX_TITLE]}


def _field(value: Any, clean: CleanText, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {"value": value, "source": _source(clean, start, end), **extra}


# --- type and title -----------------------------------------------------------------------


def document_type(clean: CleanText) -> dict[str, Any] | None:
    """The type the document names itself by near its start (earliest mention wins; a
    mention on a line of its own, as a heading, counts more)."""
    head = clean.text[:HEAD_CHARACTERS]
    best: tuple[float, DocumentType, re.Match[str]] | None = None
    for kind, pattern in _TYPE_PATTERNS:
        match = pattern.search(head)
        if match is None:
            continue
        line_start = head.rfind("\n", 0, match.start()) + 1
        heading = match.start() - line_start <= 3
        score = match.start() - (500 if heading else 0)
        if best is None or score < best[0]:
            best = (score, kind, match)
    if best is None:
        return None
    _, kind, match = best
    return _field(kind.key, clean, match.start(), match.end(), label=kind.label)


def _lines(text: str, limit: int) -> Iterator[tuple[int, int, str]]:
    offset = 0
    for line in text[:limit].split("\n"):
        stripped = line.strip()
        if stripped:
            start = offset + line.index(stripped)
            yield start, start + len(stripped), stripped
        offset += len(line) + 1


def title(clean: CleanText, kind: dict[str, Any] | None, repeated: Sequence[str] = ()) -> dict[str, Any] | None:
    """The subject line ("Asunto:", "Subject:") when there is one; else the heading that
    names the document's type and number; else the first heading-like line."""
    head_limit = HEAD_CHARACTERS
    subject = _ASUNTO.search(clean.text[:head_limit])
    if subject:
        value = " ".join(subject.group("value").split())[:MAX_TITLE]
        return _field(value, clean, subject.start("value"), subject.end("value"), how="subject line")
    if kind is not None:
        start = kind["source"]["start"]
        line_start = clean.text.rfind("\n", 0, start) + 1
        line_end = clean.text.find("\n", start)
        line_end = len(clean.text) if line_end == -1 else line_end
        line = clean.text[line_start:line_end].strip()
        if 0 < len(line) <= MAX_TITLE and start - line_start <= 3:
            return _field(line, clean, line_start, line_start + len(line), how="type heading")
    skip = {" ".join(line.split()).casefold() for line in repeated}
    for start, end, line in _lines(clean.text, head_limit):
        words = line.split()
        letters = [char for char in line if char.isalpha()]
        if len(words) < 2 or len(letters) < 6 or line.casefold() in skip:
            continue
        if line.rstrip().endswith((".", ",")) and not line.isupper():
            continue  # a sentence, not a heading
        return _field(line[:MAX_TITLE], clean, start, min(end, start + MAX_TITLE), how="first heading")
    return None


# --- dates --------------------------------------------------------------------------------


def _year(text: str) -> int:
    year = int(text)
    return year + (2000 if year < 50 else 1900) if year < 100 else year


def dates(clean: CleanText, language: str | None) -> list[dict[str, Any]]:
    """Every date the text writes, in ISO 8601, in order of appearance; numeric dates read
    day first unless the document is English and the day cannot come first."""
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for kind, pattern in _DATE_PATTERNS:
        for match in pattern.finditer(clean.text):
            span = match.span()
            if any(start <= span[0] < end or span[0] <= start < span[1] for start, end in found):
                continue
            value = _date_of(kind, match, language)
            if value is not None:
                found[span] = _field(value.isoformat(), clean, *span, written=match.group())
    return [found[span] for span in sorted(found)]


def _date_of(kind: str, match: re.Match[str], language: str | None) -> dt.date | None:
    groups = match.groupdict()
    try:
        if kind == "numeric":
            first, second = int(groups["a"]), int(groups["b"])
            year = _year(groups["y"])
            month_first = language == "en" and first <= 12 and second > 12
            month_first = month_first or (language == "en" and first <= 12 and second <= 12)
            if first > 12:
                month_first = False
            day, month = (second, first) if month_first else (first, second)
        else:
            day = int(groups["d"])
            month = int(groups["m"]) if kind == "iso" else MONTHS[groups["mon"].casefold().rstrip(".")]
            year = int(groups["y"])
        return dt.date(year, month, day)
    except (KeyError, ValueError):
        return None


def document_date(clean: CleanText, found: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The date of issue: the first date on a line that starts with a place ("Lima, 3 de
    marzo de 2025") or the first date of the first page."""
    first_page_end = clean.page_spans[0][1] if clean.page_spans else len(clean.text)
    for item in found:
        start = item["source"]["start"]
        line_start = clean.text.rfind("\n", 0, start) + 1
        if re.match(r"^[^\W\d_][^\n,]{1,40},\s*$", clean.text[line_start:start]):
            return item
    early = [item for item in found if item["source"]["start"] < first_page_end]
    return early[0] if early else (found[0] if found else None)


# --- reference numbers --------------------------------------------------------------------


def references(clean: CleanText) -> list[dict[str, Any]]:
    """Reference numbers ("Oficio N° 123-2025-UGEL.09/AGEBRE"), each once, in order."""
    seen: set[str] = set()
    found = []
    for match in _REFERENCE.finditer(clean.text):
        number = match.group("number").rstrip(".-/")
        if not any(char.isdigit() for char in number) or number.casefold() in seen:
            continue
        seen.add(number.casefold())
        kind = " ".join(match.group("kind").split())
        found.append(
            _field(
                f"{kind} N° {number}",
                clean,
                match.start(),
                match.start("number") + len(number),
                number=number,
                kind=kind.casefold(),
            )
        )
    return found


# --- keywords -----------------------------------------------------------------------------


def keywords(clean: CleanText, limit: int = MAX_KEYWORDS) -> list[dict[str, Any]]:
    """Key phrases by RAKE (Rose et al., 2010): runs of content words between stop words
    and punctuation, scored by their words' degree over frequency; each with where it
    first appears."""
    phrases: list[tuple[int, int, tuple[str, ...]]] = []
    for piece in re.finditer(r"[^.,;:!?()\[\]\n\"“”«»]+", clean.text):
        run: list[tuple[int, int, str]] = []
        for word in _WORD.finditer(piece.group()):
            lowered = word.group().casefold()
            if lowered in STOPWORDS or len(lowered) < 3:
                if run:
                    phrases.append(_phrase(piece.start(), run))
                run = []
            else:
                run.append((word.start(), word.end(), lowered))
                if len(run) == 3:
                    phrases.append(_phrase(piece.start(), run))
                    run = []
        if run:
            phrases.append(_phrase(piece.start(), run))
    frequency: Counter[str] = Counter()
    degree: Counter[str] = Counter()
    for _, _, words in phrases:
        for content in words:
            frequency[content] += 1
            degree[content] += len(words)
    scores: dict[tuple[str, ...], float] = {}
    first: dict[tuple[str, ...], tuple[int, int]] = {}
    counts: Counter[tuple[str, ...]] = Counter()
    for start, end, words in phrases:
        counts[words] += 1
        scores[words] = sum(degree[word] / frequency[word] for word in words)
        first.setdefault(words, (start, end))
    # A phrase that comes back is worth more than one said once.
    ranked = sorted(scores, key=lambda words: (-(scores[words] * (1 + 0.5 * (counts[words] - 1))), first[words][0]))
    return [
        _field(" ".join(words), clean, *first[words], score=round(scores[words], 3), count=counts[words])
        for words in ranked[:limit]
    ]


def _phrase(offset: int, run: Sequence[tuple[int, int, str]]) -> tuple[int, int, tuple[str, ...]]:
    return offset + run[0][0], offset + run[-1][1], tuple(word for _, _, word in run)


def extract(clean: CleanText, *, language: str | None, page_count: int) -> dict[str, Any]:
    """All of the above, as the document's metadata."""
    kind = document_type(clean)
    found_dates = dates(clean, language)
    return {
        "title": title(clean, kind, clean.removed_lines),
        "document_type": kind,
        "date": document_date(clean, found_dates),
        "dates": found_dates,
        "references": references(clean),
        "language": language,
        "page_count": page_count,
        "keywords": keywords(clean),
    }
