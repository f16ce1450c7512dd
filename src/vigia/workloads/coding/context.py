"""Clinical filtering of a redacted note: its sections (English and Spanish headings), its
boilerplate dropped, and every mention of a known condition with its context (negated,
uncertain or ruled out, family history, historical, hypothetical).

medspaCy's sectionizer and ConText (Chapman et al.) on a blank spaCy pipeline: rule-based,
no model to download. ConText's English rules are medspaCy's; its Spanish ones are written
here (medspaCy ships none). Sentences end at punctuation and at line ends (notes are lists).
The pipelines load once per process (about 12 s: spaCy's import and medspaCy's rules).
"""

from __future__ import annotations

import bisect
import functools
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from vigia.workloads.coding.lexicon import CONCEPTS, phrases, strip_accents

#: Lines that are forms, signatures and legal text, not the clinical story.
BOILERPLATE = re.compile(
    r"^[ \t]*(?:electronically signed.*|signed electronically.*|dictated but not read.*|this (?:note|document|report)"
    r" (?:was|is|has been) .*|confidential(?:ity)? (?:notice|information).*"
    r"|documento firmado (?:digital|electr[oó]nica)mente.*|firmado (?:digital|electr[oó]nica)mente.*"
    r"|este documento (?:es|contiene) .*confidencial.*|"
    r"informaci[oó]n confidencial.*|page \d+ of \d+|p[aá]gina \d+ de \d+|printed (?:on|by) .*|impreso (?:el|por) .*|"
    r"copia (?:fiel|controlada).*|template.*|plantilla.*|[-=_*]{3,})[ \t]*$",
    re.I | re.M,
)

SECTIONS_EN = (
    ("assessment_and_plan", ("Assessment and Plan:", "Assessment & Plan:", "A/P:", "A&P:", "Impression and Plan:",
                             "Assessment/Plan:", "Impression/Plan:")),
    ("diagnoses", ("Diagnoses:", "Diagnosis:", "Discharge Diagnoses:", "Discharge Diagnosis:", "Final Diagnosis:",
                   "Final Diagnoses:", "Primary Diagnosis:", "Secondary Diagnoses:", "Active Problems:",
                   "Problem List:")),
    ("wound_assessment", ("Wound Assessment:", "Wound Care:", "Skin Assessment:")),
    ("assessment", ("Assessment:", "Impression:")),
    ("physical_exam", ("Exam:", "Examination:", "Vitals:", "Objective:")),
    ("labs", ("Labs:", "Laboratory:", "Imaging:", "Chest X-ray:", "CXR:", "ECG:", "EKG:")),
    ("history_of_present_illness", ("HPI:", "Subjective:", "History of Present Illness:")),
    ("plan", ("Plan:", "Disposition:")),
    ("medications", ("Medications:", "Home Medications:", "Current Medications:", "Outpatient Medications:",
                     "Discharge Medications:", "Meds:")),
    ("allergies", ("Allergies:", "Allergy:")),
)  # fmt: skip
SECTIONS_ES = (
    ("chief_complaint", ("Motivo de consulta:", "Motivo de ingreso:", "Motivo de la consulta:")),
    ("history_of_present_illness", ("Enfermedad actual:", "Historia de la enfermedad actual:", "Anamnesis:",
                                    "Relato:", "Tiempo de enfermedad:")),
    ("family_history", ("Antecedentes familiares:", "Historia familiar:", "Antecedentes heredofamiliares:")),
    ("past_medical_history", ("Antecedentes:", "Antecedentes personales:", "Antecedentes patológicos:",
                              "Antecedentes médicos:", "Antecedentes personales patológicos:")),
    ("medications", ("Medicación:", "Medicamentos:", "Medicación habitual:", "Tratamiento habitual:")),
    ("allergies", ("Alergias:", "Alergia:")),
    ("physical_exam", ("Examen físico:", "Exploración física:", "Examen clínico:", "Examen físico general:")),
    ("labs", ("Laboratorio:", "Resultados:", "Exámenes auxiliares:", "Resultados de laboratorio:")),
    ("assessment_and_plan", ("Impresión diagnóstica:", "Impresión diagnóstica y plan:", "Evaluación y plan:",
                             "Valoración y plan:")),
    ("diagnoses", ("Diagnóstico:", "Diagnósticos:", "Diagnóstico de egreso:", "Diagnósticos de egreso:",
                   "Diagnóstico principal:", "Diagnósticos secundarios:", "Diagnóstico final:")),
    ("plan", ("Plan:", "Plan de trabajo:", "Indicaciones:", "Tratamiento:", "Plan terapéutico:")),
    ("hospital_course", ("Evolución:", "Evolución clínica:", "Curso hospitalario:")),
    ("wound_assessment", ("Valoración de la herida:", "Valoración de enfermería:", "Curación:",
                          "Valoración de la piel:")),
)  # fmt: skip

#: Spanish ConText rules: (phrase, category, direction). What follows a condition ("neumonía
#: descartada", "a descartar") is read by `AFTER_ES`, not by ConText: its matcher keeps one
#: rule per phrase, so a phrase cannot look both ways.
CONTEXT_ES = (
    *((phrase, "NEGATED_EXISTENCE", "FORWARD") for phrase in (
        "no", "niega", "negó", "sin", "ausencia de", "no presenta", "no refiere", "no se evidencia",
        "no se observa", "no se observan", "no hay", "libre de", "ningún", "ninguna", "negativo para",
        "negativa para", "se descarta", "se descartó", "se descartan", "se ha descartado", "descartó",
        "descartándose", "sin evidencia de", "sin signos de", "no tiene", "no se confirma", "no impresiona",
        "negativos para", "negativas para", "que descarta", "que descartan", "descarta", "se excluye",
        "se excluyó", "excluye", "se excluyen")),
    *((phrase, "POSSIBLE_EXISTENCE", "FORWARD") for phrase in (
        "posible", "probable", "sospecha de", "sospechoso de", "sospechosa de", "descartar", "d/c",
        "impresiona", "presunto", "presunta", "probablemente", "no se puede descartar", "versus", "vs")),
    *((phrase, "FAMILY", "BIDIRECTIONAL") for phrase in (
        "madre", "padre", "hermano", "hermana", "abuelo", "abuela", "tío", "tía", "hijo", "hija", "familiar",
        "antecedentes familiares", "antecedente familiar", "mamá", "papá", "primo", "prima", "esposo", "esposa")),
    *((phrase, "HISTORICAL", "FORWARD") for phrase in (
        "antecedente de", "antecedentes de", "historia de", "historial de", "en el pasado",
        "previo de", "con antecedente de")),
    *((phrase, "HISTORICAL", "BACKWARD") for phrase in ("previo", "previa", "antiguo", "antigua", "en la infancia")),
    *((phrase, "HYPOTHETICAL", "FORWARD") for phrase in (
        "si presenta", "en caso de", "ante la aparición de", "signos de alarma", "acudir si", "volver si")),
    # Words that name a kind of the condition, not its absence ("infarto sin elevación del ST").
    *((phrase, "PSEUDO", "PSEUDO") for phrase in (
        "sin elevación del st", "sin elevacion del st", "sin supradesnivel del st", "sin supradesnivel st",
        # NPIAP's stage name, not an uncertain injury.
        "sospecha de lesión de tejido profundo", "sospecha de lesion de tejido profundo",
        "sospecha de lesión de tejidos profundos")),
    *((phrase, "TERMINATE", "TERMINATE") for phrase in (
        "pero", "sin embargo", "aunque", "excepto", "salvo", "refiere", "presenta", "y se", ";")),
)  # fmt: skip
#: English rules medspaCy lacks.
CONTEXT_EN = (
    ("negative for", "NEGATED_EXISTENCE", "FORWARD"),
    ("remote", "HISTORICAL", "FORWARD"),
    ("healed", "HISTORICAL", "FORWARD"),
    ("excludes", "NEGATED_EXISTENCE", "FORWARD"),
    ("excluded", "NEGATED_EXISTENCE", "FORWARD"),
    ("rules out", "NEGATED_EXISTENCE", "FORWARD"),
    ("ruled out", "NEGATED_EXISTENCE", "FORWARD"),
    ("concern for", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("probable", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("likely", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("questionable", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("suspected", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("suspect", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("versus", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("r/o", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("without st elevation", "PSEUDO", "PSEUDO"),
    ("non st elevation", "PSEUDO", "PSEUDO"),
    ("non-st elevation", "PSEUDO", "PSEUDO"),
    ("suspected deep tissue", "PSEUDO", "PSEUDO"),
    ("suspected deep tissue injury", "PSEUDO", "PSEUDO"),
    ("never smoker", "NEGATED_EXISTENCE", "FORWARD"),
    ("never smoked", "NEGATED_EXISTENCE", "FORWARD"),
)
#: What the rest of a condition's clause says of it: (category, pattern on the folded text
#: after the mention, up to the clause's end).
_LEAD = r"^[\s,:()-]*"
#: A few words between the condition and what is said of it ("DVT of L leg ruled out",
#: "Flu A/B/RSV PCR: all negative", "COVID-19 and influenza negative").
_GAP = r"(?:[^\s,;.]+\s+){0,5}?"
#: A field answered no ("Tabaquismo: no", "Smoking: never", "Alcohol (-)").
_ANSWERED_NO = r"|^\s*(?::\s*(?:no|none|never|denies|negative|negativo|negativa|negado|niega|nunca)|\(\s*-\s*\))\s*$"
AFTER_EN = (
    # (not "resolved": a discharge diagnosis treated during the stay is "resolved" and coded)
    ("historical", re.compile(_LEAD + r"(?:\(?\s*)?(?:healed|remote|in the past)\b")),
    # ("headache, probable migraine": "probable" is the migraine's, not the headache's.)
    ("uncertain", re.compile(_LEAD + r"(?:(?:is|was)\s+)?(?:(?:suspected|possible|probable|questionable)\s*$"
                             r"|not excluded|not (?:been )?ruled out|cannot be (?:excluded|ruled out)|to be ruled out"
                             r"|vs\.?\b|versus)")),
    ("negated", re.compile(_LEAD + _GAP + r"(?:(?:was|were|is|are|has been|have been|had been)\s+)?(?:ruled out"
                           r"|excluded|r/o'?d)\b|" + _LEAD + _GAP + r"(?:all\s+|both\s+)?(?:negative|absent"
                           r"|not (?:seen|found|present|confirmed))\b" + _ANSWERED_NO)),
)  # fmt: skip
AFTER_ES = (
    ("historical", re.compile(_LEAD + r"(?:\(?\s*)?(?:consolidad[oa]|antigu[oa]|remot[oa])\b")),
    ("uncertain", re.compile(_LEAD + r"(?:(?:a|por|para)\s+descartar|en estudio|a confirmar|por confirmar"
                             r"|(?:probable|posible)\s*$|no descartad[oa]|sin descartar)\b")),
    ("negated", re.compile(_LEAD + _GAP + r"(?:(?:fue|ha sido|es|queda|quedo|fueron|han sido)\s+)?(?:descartad[oa]s?"
                           r"|excluid[oa]s?|negativ[oa]s?|ausentes?)\b|" + _LEAD + r"no (?:se )?confirm"
                           + _ANSWERED_NO)),
)  # fmt: skip
#: A line that opens a part of the note ("Family History:", "Exam -"), known heading or not.
_HEADING_LINE = re.compile(r"^[ \t]*(?:[A-ZÁÉÍÓÚÑ][\w /&()'’-]{1,40}|[A-Z]{2,6})[ \t]*[:\-–](?!\d)", re.M)
_FAMILY_HEADING = re.compile(
    r"^[ \t]*(?:family (?:medical )?history|fhx?|fam(?:ily)? hx|antecedentes (?:heredo)?familiares|historia familiar"
    r"|antecedentes heredo-familiares)\b",
    re.I,
)
#: A negation that says the condition was looked for and excluded, not merely absent.
_RULED_OUT = re.compile(
    r"\b(?:ruled? out|rules out|r/o'?d|excluded|excludes|descartad[oa]s?|se descart[ao]|descart[ao]n?|descartandose"
    r"|se excluye|se excluyo|excluye|excluid[oa]s?)\b"
)
#: Where a clause ends (its condition's context ends with it).
#: ("X and Y ruled out" rules out both: "and" does not end it.)
_CLAUSE_END = re.compile(r"[;,.]|(?<!\S)(?:but|pero|with|con|however|sin embargo)\s")


#: A line opening with words in capitals and a colon: a heading, known or not.
_CAPITAL_HEADING = r"(?m)^[ \t]*[A-ZÁÉÍÓÚÑ][A-ZÁÉÍÓÚÑ /&()-]{2,40}:"
#: A relative's label under a family history heading ("Madre: DM2") is not a heading.
_RELATIVE_LABEL = re.compile(
    r"^[ \t]*(?:madre|padre|herman[oa]s?|hij[oa]s?|abuel[oa]s?|t[ií][oa]s?|mother|father|brothers?|sisters?"
    r"|sons?|daughters?|grand(?:mother|father)|aunt|uncle)\b",
    re.I,
)


class _Headings:
    """The note's heading lines, read once: which one stands nearest above an offset."""

    def __init__(self, text: str) -> None:
        found = [match for match in _HEADING_LINE.finditer(text) if not _RELATIVE_LABEL.match(match.group())]
        self._ends = [match.end() for match in found]
        self._family = [bool(_FAMILY_HEADING.match(match.group())) for match in found]

    def under_family(self, offset: int) -> bool:
        """Whether the nearest heading above ``offset`` (its own line's included) is a family history."""
        index = bisect.bisect_right(self._ends, offset) - 1
        return index >= 0 and self._family[index]


#: A negation right before a condition, after a field's colon ("Duplex: no DVT"): medspaCy
#: reads ": no" as a field answered no, which negates backwards only.
_NEGATED_BEFORE = re.compile(
    r"(?:^|[\s:(,])(?:no|not|without|negative for|neg for|sin|niega|denies)\s+"
    r"(?:(?:evidence|signs?|sign)\s+of\s+|(?:evidencia|signos?)\s+de\s+)?$"
)


def _negated_before(text: str) -> bool:
    return bool(_NEGATED_BEFORE.search(strip_accents(text).casefold()))


def _after(text: str, language: str) -> str | None:
    """The context the words after a mention give it ("pneumonia ruled out"), or None."""
    clause = strip_accents(text).casefold()
    end = _CLAUSE_END.search(clause, re.match(_LEAD, clause).end())  # type: ignore[union-attr]
    clause = clause[: end.start()] if end else clause
    for category, pattern in AFTER_ES if language == "es" else AFTER_EN:
        if pattern.search(clause):
            return category
    return None


@dataclass(frozen=True, slots=True)
class Mention:
    concept: str
    #: Offsets in the redacted text.
    start: int
    end: int
    text: str
    sentence_start: int
    sentence_end: int
    section: str | None
    negated: bool = False
    uncertain: bool = False
    family: bool = False
    historical: bool = False
    hypothetical: bool = False
    #: Negated because it was looked for and excluded ("PE ruled out", "se descarta ITU").
    ruled_out: bool = False

    @property
    def context(self) -> list[str]:
        return [
            name
            for name in ("negated", "ruled_out", "uncertain", "family", "historical", "hypothetical")
            if getattr(self, name)
        ]

    def to_record(self) -> dict[str, Any]:
        """Every field, as JSON (a stage's output); `from_record` reads it back."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Mention:
        return cls(**{name: record[name] for name in cls.__dataclass_fields__ if name in record})


@dataclass
class Filtered:
    sections: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)
    #: Boilerplate lines left out, by their offsets.
    dropped: list[tuple[int, int]] = field(default_factory=list)


#: A line that starts a new statement: a list item, or a heading ("Plan:", "PMH -").
_STATEMENT_START = re.compile(r"^\s*(?:[-*•·–]|\d{1,2}[.)]|[A-ZÁÉÍÓÚÑ][\w /&()'’-]{0,40}[:\-–]\s)")
#: Wrapped prose: a line this long that ends mid-sentence goes on in the next one.
_WRAPPED_LINE = 50


def _line_breaks_sentence(previous: str, following: str) -> bool:
    """Notes list findings one per line, but also wrap prose: a line end ends a sentence
    unless the line is a long one cut mid-sentence and the next line carries on."""
    previous = previous.rstrip()
    if not previous or not following.strip():
        return True
    if previous[-1] in ".:;!?" or _STATEMENT_START.match(following):
        return True
    return len(previous) < _WRAPPED_LINE and not following.lstrip()[:1].islower()


def _split_lines(doc: Any) -> Any:
    text = doc.text
    for index, token in enumerate(doc[:-1]):
        if "\n" in token.text or (token.whitespace_ and "\n" in token.whitespace_):
            following = doc[index + 1]
            line_start = text.rfind("\n", 0, token.idx) + 1
            line_end = text.find("\n", following.idx)
            previous_line = text[line_start : token.idx + len(token.text)]
            next_line = text[following.idx : line_end if line_end != -1 else len(text)]
            following.is_sent_start = _line_breaks_sentence(previous_line, next_line)
    return doc


@functools.cache
def pipeline(language: str) -> Any:
    """The language's medspaCy pipeline, built once per process."""
    from loguru import logger  # noqa: PLC0415 -- medspaCy's logger, silenced before it speaks

    logger.remove()
    # medspaCy's matchers hold phrase rules only: spaCy would warn on every note that their
    # token matcher is empty.
    warnings.filterwarnings("ignore", message=r".*\[W036\]", category=UserWarning)
    import medspacy  # noqa: PLC0415 -- spaCy and medspaCy: 12 s, only where notes are read
    import spacy  # noqa: PLC0415 -- as above
    from medspacy.context import ConTextRule  # noqa: PLC0415 -- as above
    from medspacy.ner import TargetRule  # noqa: PLC0415 -- as above
    from medspacy.section_detection import SectionRule  # noqa: PLC0415 -- as above
    from spacy.language import Language  # noqa: PLC0415 -- as above

    if not Language.has_factory("vigia_line_sentences"):
        Language.component("vigia_line_sentences")(_split_lines)
    nlp = medspacy.load(
        spacy.blank(language),
        language_code=language,
        medspacy_enable=["medspacy_target_matcher", "medspacy_context", "medspacy_sectionizer"],
    )
    nlp.add_pipe("sentencizer", first=True)
    nlp.add_pipe("vigia_line_sentences", after="sentencizer")
    rules = []
    for concept in CONCEPTS:
        rules += [TargetRule(phrase, concept.key) for phrase in phrases(concept, language)]
        rules += [TargetRule(abbreviation, concept.key, pattern=[{"TEXT": abbreviation}]) for abbreviation in
                  concept.abbreviations]  # fmt: skip
    nlp.get_pipe("medspacy_target_matcher").add(rules)
    context = nlp.get_pipe("medspacy_context")
    extra = CONTEXT_ES if language == "es" else CONTEXT_EN
    context.add([ConTextRule(phrase, category, direction=direction) for phrase, category, direction in extra])
    sections = SECTIONS_ES if language == "es" else SECTIONS_EN
    sectionizer = nlp.get_pipe("medspacy_sectionizer")
    sectionizer.add([SectionRule(title, category) for category, titles in sections for title in titles])
    # A heading the rules do not know still ends the section above it: "DIAGNÓSTICOS AL
    # ALTA:" after "Antecedentes familiares:" is not family history.
    sectionizer.add([SectionRule("a heading in capitals", "other", pattern=_CAPITAL_HEADING)])
    # Family and past history come from the nearest heading and ConText, not from a
    # section that may run on past headings the rules do not know.
    sectionizer.assertion_attributes_mapping = {
        category: attributes
        for category, attributes in sectionizer.assertion_attributes_mapping.items()
        if category not in ("family_history", "past_medical_history", "sexual_and_social_history")
    }
    return nlp


def filter_note(text: str, language: str) -> Filtered:
    """Sections, boilerplate and the mentions of conditions in a redacted note."""
    found = Filtered()
    kept = text
    for match in BOILERPLATE.finditer(text):
        if match.group().strip():
            found.dropped.append(match.span())
            # Blanked, not cut: every offset still points into the note.
            kept = kept[: match.start()] + " " * (match.end() - match.start()) + kept[match.end() :]
    doc = pipeline(language)(kept)
    headings = _Headings(kept)
    for section in doc._.sections:
        title = doc[section.title_start : section.title_end]
        body = doc[section.body_start : section.body_end]
        start = title.start_char if len(title) else body.start_char
        found.sections.append(
            {
                "category": section.category,
                "title": title.text.strip() or None,
                "start": start,
                "end": body.end_char if len(body) else start,
            }
        )
    for entity in doc.ents:
        if entity.text.isupper() and len(entity.text) <= 5 and kept[entity.end_char :].lstrip(" \t").startswith(":"):
            continue  # "PE:" opens the physical exam, "ID:" a line; not a pulmonary embolism
        sentence = entity.sent
        after = _after(kept[entity.end_char : sentence.end_char], language)
        section = entity._.section_category
        negated = (
            bool(entity._.is_negated)
            or after == "negated"
            or _negated_before(kept[sentence.start_char : entity.start_char])
        )
        found.mentions.append(
            Mention(
                concept=entity.label_,
                start=entity.start_char,
                end=entity.end_char,
                text=entity.text,
                sentence_start=sentence.start_char,
                sentence_end=sentence.end_char,
                section=section,
                negated=negated,
                ruled_out=negated and bool(_RULED_OUT.search(strip_accents(sentence.text).casefold())),
                uncertain=bool(entity._.is_uncertain) or after == "uncertain",
                family=bool(entity._.is_family) or headings.under_family(entity.start_char),
                historical=bool(entity._.is_historical) or after == "historical",
                hypothetical=bool(entity._.is_hypothetical),
            )
        )
    return found
