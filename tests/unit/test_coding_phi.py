"""PHI detection and redaction in clinical notes, English and Spanish: each kind of span
found at its exact offsets, and what looks like PHI but is not (ages under 90, times, doses,
lab values, scores, eponyms) left alone."""

from __future__ import annotations

import re

import pytest

from vigia.workloads.coding import phi

MARK = re.compile(r"\{\{([A-Z_]+)\|(.*?)\}\}")


def unmarked(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The note without its ``{{TYPE|text}}`` marks, and where each marked span stands in it."""
    text, spans, cursor = [], [], 0
    length = 0
    for match in MARK.finditer(marked):
        text.append(marked[cursor : match.start()])
        length += match.start() - cursor
        spans.append((length, length + len(match.group(2)), match.group(1)))
        text.append(match.group(2))
        length += len(match.group(2))
        cursor = match.end()
    text.append(marked[cursor:])
    return "".join(text), spans


def found(text: str) -> list[tuple[int, int, str]]:
    return [(span.start, span.end, span.type) for span in phi.find(text)]


CASES = {
    # English
    "en name by label": "Patient: {{NAME|Gerald T. Whitcomb}}   Sex: M",
    "en name by title, not the title": "Seen by Dr. {{NAME|Priya Natarajan}} at 14:30.",
    "en name with credentials": "Electronically signed: {{NAME|Laura Bennett}}, RN, CWOCN",
    "en relative and later surname": (
        "Patient: {{NAME|Samuel Okafor}}\nWife ({{NAME|Grace Okafor}}) at bedside. {{NAME|Okafor}} denies pain."
    ),
    "en dates in every form": (
        "DOB: {{DATE|07/22/1957}}. Seen {{DATE|January 9, 2025}}, again {{DATE|2025-03-14}}"
        " and {{DATE|14 Mar 2025}}; follow-up {{DATE|Mar 21st, 2025}}."
    ),
    "en record numbers": "MRN: {{RECORD_NUMBER|00482917}}   Visit #: {{RECORD_NUMBER|ED-25-0318842}}",
    "en phones": "Call {{PHONE|(614) 555-0193}} or cell {{PHONE|+1 614 555 0194}}.",
    "en ssn": "SSN {{ID|123-45-6789}} on file.",
    "en e-mail": "Send results to {{EMAIL|g.whitcomb@example.com}} please.",
    "en address": "Lives at {{ADDRESS|1423 Maple Ave}}, {{ADDRESS|Columbus, OH 43215}} with his wife.",
    "en age over 89": "{{AGE|92}}-year-old woman with a sacral wound; her sister is {{AGE|95}} years old.",
    "en licence number": "Ordering provider NPI {{ID|1234567893}}.",
    # Spanish
    "es name by label, two surnames": "Paciente: {{NAME|María Fernanda Quispe Huamán}}   Edad: 67 años",
    "es name by title": "Evaluada por la Dra. {{NAME|Lucía Paredes Ríos}} y la Lic. {{NAME|Ana Torres}}.",
    "es nurse": "Enf. {{NAME|Carmen Rojas}} realiza curación.",
    "es relative and later surname": (
        "Paciente: {{NAME|Rosa Quispe Mamani}}\nAcompañada por su hija, {{NAME|Elena Quispe}}."
        " La señora {{NAME|Quispe}} refiere dolor."
    ),
    "es dates in every form": (
        "Ingreso: {{DATE|21 de abril de 2025}}; control el {{DATE|3-ene-2026}} y el {{DATE|14/03/2025}}."
    ),
    "es record numbers": (
        "HC: {{RECORD_NUMBER|458921}}  NHC {{RECORD_NUMBER|2025-001234}}  Ficha: {{RECORD_NUMBER|77120}}"
    ),
    "es phones": (
        "Teléfono: {{PHONE|+51 987 654 321}}; celular {{PHONE|987 123 456}}; Chile {{PHONE|+56 9 8765 4321}};"
        " Madrid {{PHONE|91 234 56 78}}; México {{PHONE|(55) 1234-5678}}."
    ),
    "es peruvian dni": "DNI {{ID|45678912}}, asegurada SIS.",
    "es chilean rut": "RUT {{ID|12.345.678-5}}",
    "es spanish dni and nie": "DNI {{ID|12345678Z}}; su esposo NIE {{ID|X1234567L}}.",
    "es curp": "CURP: {{ID|GOMC850101HDFRRR09}}",
    "es e-mail": "Correo: {{EMAIL|mfquispe@correo.pe}}",
    "es address": "Domicilio: {{ADDRESS|Av. Arequipa 1234, Lince}}.",
    "es age over 89": "Paciente de {{AGE|94}} años, postrada.",
    "es licence number": "Dr. {{NAME|Julio Salazar}}, CMP {{ID|45123}}, RNE {{ID|22871}}.",
    "es argentine dni and licence": "DNI {{ID|28.456.789}}. Dra. {{NAME|Paula Benítez}}, M.N. {{ID|123456}}.",
    "es colombian cédula": "C.C. {{ID|1.020.345.678}} de Bogotá.",
    "es colombian address": "Domicilio: {{ADDRESS|Carrera 15 # 93-47, Chicó, Bogotá}}. Teléfono fijo no tiene.",
    "es spanish address with floor": "Vive en {{ADDRESS|Calle de Alcalá 120, 4º izq., 28009 Madrid}}.",
    "es spanish street with a comma and lowercase calle": (
        "Domicilio: {{ADDRESS|C/ Mayor, 12, 3º B, 28013 Madrid}}. Su hija vive en {{ADDRESS|calle Alcalá nº 120}}."
    ),
    "es colombian street number": "Dirección: {{ADDRESS|Calle 45 N° 12-34, Barrio El Prado, Medellín}}",
    "en nhs, hospital and insurer numbers": (
        "NHS No: {{RECORD_NUMBER|943 476 5919}}. Hospital No. {{RECORD_NUMBER|K1234567}}."
        " Member ID: {{RECORD_NUMBER|XJH883201}}."
    ),
    "es an address field without a street word": (
        "Domicilio: {{ADDRESS|Los Sauces 455, Ñuñoa}}     Teléfono: {{PHONE|+56 9 8765 4321}}\n"
        "Procedencia: {{ADDRESS|Arequipa}}"
    ),
    "en irish and scottish names": "Mrs. {{NAME|Abigail O'Donnell-Reyes}} seen with Dr. {{NAME|Sean McAllister}}.",
}


@pytest.mark.parametrize("marked", CASES.values(), ids=CASES.keys())
def test_each_kind_of_phi_is_found_at_its_offsets(marked: str) -> None:
    text, expected = unmarked(marked)
    got = found(text)
    for start, end, kind in expected:
        assert (start, end, kind) in got, f"{text[start:end]!r} ({kind}) at {start}: found {got}"
    extra = [(start, end, kind, text[start:end]) for start, end, kind in got if (start, end, kind) not in expected]
    assert not extra, f"not PHI, yet found: {extra}"


NOT_PHI = {
    "en ages under 90, times, doses, labs, scores, eponyms": (
        "67 y/o M, 89-year-old mother. Arrived 06:42, pain since 04:30. Metformin 1000 mg BID,"
        " lisinopril 20 mg daily. HbA1c 7.1%, creatinine 1.4 mg/dL, K 4.2. BP 158/94 HR 96 SpO2 97%."
        " Braden 12, GCS 15, Wells score 4. History of Colles fracture, Parkinson disease, Bell palsy."
        " Bed 12, room 412. Dr. on call notified."
    ),
    "es edades menores de 90, horas, dosis, laboratorio, escalas, epónimos": (
        "Mujer de 78 años; padre de 85 años. Ingresa a las 08:15. Paracetamol 500 mg c/8h,"
        " insulina NPH 10 UI. HbA1c 8,2 %, creatinina 1,9 mg/dl, Hb 10,4 g/dl. PA 150/90, FC 88 lpm."
        " Braden 11, Glasgow 15, Norton 9. Fractura de Colles, enfermedad de Parkinson."
        " Cama 12, habitación 305. Se avisa al médico de guardia. Vivía en la calle desde hace 3 años."
    ),
}


@pytest.mark.parametrize("text", NOT_PHI.values(), ids=NOT_PHI.keys())
def test_what_looks_like_phi_but_is_not_is_left_alone(text: str) -> None:
    assert [(text[start:end], kind) for start, end, kind in found(text)] == []


def test_redaction_replaces_each_span_and_maps_offsets_back() -> None:
    text, expected = unmarked(
        "Patient: {{NAME|Gerald Whitcomb}}  MRN: {{RECORD_NUMBER|00482917}}\n"
        "Seen {{DATE|03/14/2025}} for chest pain; {{NAME|Whitcomb}} denies dyspnea."
    )
    redacted = phi.redact(text)
    assert "Whitcomb" not in redacted.text and "00482917" not in redacted.text and "03/14/2025" not in redacted.text
    assert redacted.text.count("[NAME]") == 2
    assert "[RECORD]" in redacted.text and "[DATE]" in redacted.text
    # a word of the redacted text maps back to the same word of the note
    for word in ("chest pain", "denies dyspnea"):
        at = redacted.text.index(word)
        original = redacted.original_offset(at)
        assert text[original : original + len(word)] == word
    assert [(span.start, span.end, span.type) for span in redacted.spans] == expected


def test_a_name_repeated_in_capitals_is_found_but_a_common_word_is_not() -> None:
    text, expected = unmarked(
        "Nombre: {{NAME|Rosa Huamán Flores}}\nFIRMA DEL PACIENTE: {{NAME|HUAMÁN FLORES}}\n"
        "Se observa piel rosa en bordes de la herida."
    )
    got = found(text)
    for span in expected:
        assert span in got, (text[span[0] : span[1]], got)
    assert all(text[start:end] != "rosa" for start, end, _ in got)


def test_an_invalid_check_digit_or_letter_is_not_taken_for_an_id() -> None:
    # the RUT's check digit and the DNI's letter are computed from the number
    assert phi._rut_valid("12345678", "5") and not phi._rut_valid("12345678", "3")
    assert phi._spanish_dni_valid("12345678", "Z") and not phi._spanish_dni_valid("12345678", "A")
    text = "Frasco 12.345.678-3 del apósito; referencia 12345678A."
    assert [kind for _, _, kind in found(text)] == []
