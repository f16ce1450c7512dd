"""From a note's words to ICD-10-CM codes, English and Spanish, with the real medspaCy
pipelines and the real code set: context (negated, ruled out, uncertain, family) never coded,
combination codes of the "with" convention, pressure ulcers by site and stage, integral
symptoms, documentation queries, and the billed codes checked against what the note says."""

from __future__ import annotations

from typing import Any

import pytest

from vigia.workloads.coding import analysis, context, icd10, phi
from vigia.workloads.coding.codeset import billable

pytestmark = pytest.mark.timeout(300)


def infer(text: str, language: str) -> icd10.Inference:
    """What the pipeline's stages do with a note: redact, filter, infer."""
    redacted = phi.redact(text)
    filtered = context.filter_note(redacted.text, language)
    return icd10.infer(redacted.text, filtered.mentions)


def codes(found: icd10.Inference) -> set[str]:
    return {code.code for code in found.codes}


def excluded(found: icd10.Inference) -> dict[str, str]:
    """Excluded code -> the first word of its reason."""
    return {item.code: item.reason.split(":")[0] for item in found.excluded}


# --- context: never coded -------------------------------------------------------------------

CONTEXT = {
    "en negated": ("en", "Denies chest pain. No pneumonia on chest x-ray.", {"R07.9": "negated", "J18.9": "negated"}),
    "en ruled out": (
        "en",
        "Assessment: pulmonary embolism ruled out by CTA. Myocardial infarction was excluded.",
        {"I26.99": "ruled out", "I21.9": "ruled out"},
    ),
    "en uncertain": ("en", "Assessment: possible pneumonia. Rule out urinary tract infection.", {"J18.9": "uncertain"}),
    "en family, in a sentence and under a heading": (
        "en",
        "Father had a myocardial infarction at 52.\n\nFamily history:\nType 2 diabetes and hypertension in mother.\n",
        {"I21.9": "family", "E11.9": "family", "I10": "family"},
    ),
    "es negado": ("es", "Niega dolor torácico. Sin signos de neumonía.", {"R07.9": "negated", "J18.9": "negated"}),
    "es descartado": (
        "es",
        "Impresión diagnóstica: se descarta neumonía. Tromboembolismo pulmonar descartado por angiotomografía.",
        {"J18.9": "ruled out", "I26.99": "ruled out"},
    ),
    "es a descartar": ("es", "Impresión diagnóstica: infección urinaria a descartar.", {"N39.0": "uncertain"}),
    "es familiar, en la frase y bajo el título": (
        "es",
        "Madre con diabetes mellitus tipo 2.\n\n"
        "Antecedentes familiares:\nPadre hipertenso, infarto agudo de miocardio.\n",
        {"E11.9": "family", "I10": "family", "I21.9": "family"},
    ),
}


@pytest.mark.parametrize(("language", "text", "expected"), CONTEXT.values(), ids=CONTEXT.keys())
def test_negated_ruled_out_uncertain_and_family_conditions_are_never_coded(
    language: str, text: str, expected: dict[str, str]
) -> None:
    found = infer(text, language)
    assert not codes(found) & set(expected), [(code.code, code.mentions[0].text) for code in found.codes]
    reasons = excluded(found)
    for code, reason in expected.items():
        assert reasons.get(code, "").startswith(reason), f"{code}: {reasons}"
    for item in found.excluded:  # each exclusion says where its words are
        assert text[item.mention.start : item.mention.end] == item.mention.text


def test_a_condition_asserted_beside_its_negation_is_coded_once() -> None:
    found = infer(
        "Assessment and Plan:\n1. Community-acquired pneumonia, right lower lobe.\n"
        "2. No evidence of sepsis. Denies chest pain.\n",
        "en",
    )
    assert codes(found) == {"J18.9"}
    assert {"A41.9", "R07.9"} <= set(excluded(found))


# --- combination codes, specificity, integral symptoms ----------------------------------------

COMBINATIONS = {
    "en diabetes with ckd and hypertension": (
        "en",
        "Assessment: type 2 diabetes mellitus with diabetic chronic kidney disease, CKD stage 3b. Hypertension.",
        {"E11.22", "N18.32", "I12.9"},
    ),
    "en hypertension, heart failure and ckd": (
        "en",
        "Assessment: hypertension. Chronic diastolic heart failure. CKD stage 4.",
        {"I13.0", "I50.32", "N18.4"},
    ),
    "en hypertensive heart disease with systolic failure": (
        "en",
        "Assessment: hypertensive heart disease with chronic systolic heart failure.",
        {"I11.0", "I50.22"},
    ),
    "en pneumonia without its symptoms": ("en", "Community-acquired pneumonia with cough and fever.", {"J18.9"}),
    "es dm2 con nefropatía, erc 4, hta": (
        "es",
        "DM2 con nefropatía diabética, ERC estadio 4, HTA.",
        {"E11.22", "N18.4", "I12.9"},
    ),
    "es cardiopatía hipertensiva con insuficiencia": (
        "es",
        "Cardiopatía hipertensiva con insuficiencia cardíaca crónica.",
        {"I11.0", "I50.9"},
    ),
    "es neumonía sin sus síntomas": ("es", "Neumonía adquirida en la comunidad con tos y fiebre.", {"J18.9"}),
}


@pytest.mark.parametrize(("language", "text", "expected"), COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_combination_codes_follow_the_with_convention_and_integral_symptoms_are_not_coded(
    language: str, text: str, expected: set[str]
) -> None:
    found = infer(text, language)
    assert codes(found) == expected
    assert all(billable(code) for code in codes(found))
    for code in found.codes:
        assert 0 < code.confidence <= 1
        assert code.mentions, code
        for mention in code.mentions:
            assert text[mention.start : mention.end] == mention.text


PRESSURE_ULCERS = {
    "en stage 3 sacrum": ("en", "Stage 3 pressure injury of the sacrum.", "L89.153"),
    "en unstageable left heel": ("en", "Unstageable pressure injury of the left heel.", "L89.620"),
    "en deep tissue injury right heel": ("en", "Deep tissue pressure injury of the right heel.", "L89.616"),
    "en stage 2 right hip": ("en", "Stage 2 pressure ulcer of the right hip.", "L89.212"),
    "en coccyx, stage not documented": ("en", "Pressure injury on the coccyx, stage not documented.", "L89.159"),
    "es categoría 4 sacro": ("es", "LPP categoría 4 en región sacra.", "L89.154"),
    "es no estadificable talón izquierdo": ("es", "Úlcera por presión no estadificable en talón izquierdo.", "L89.620"),
    "es tejido profundo talón derecho": ("es", "Lesión de tejido profundo por presión en talón derecho.", "L89.616"),
    "es estadio II trocánter izquierdo": ("es", "Úlcera por presión estadio II en trocánter izquierdo.", "L89.222"),
}


@pytest.mark.parametrize(("language", "text", "expected"), PRESSURE_ULCERS.values(), ids=PRESSURE_ULCERS.keys())
def test_pressure_ulcers_are_coded_by_site_side_and_stage(language: str, text: str, expected: str) -> None:
    assert codes(infer(text, language)) == {expected}


def test_several_pressure_ulcers_each_get_their_code() -> None:
    found = infer(
        "Wound assessment: stage 3 pressure injury of the sacrum; unstageable pressure injury of the left heel;"
        " deep tissue injury of the right heel.",
        "en",
    )
    assert {"L89.153", "L89.620", "L89.616"} <= codes(found)


# --- documentation queries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "text", "concepts"),
    [
        ("en", "Pressure injury on the sacrum. Diabetes, on metformin. Chronic kidney disease.",
         {"pressure_ulcer", "diabetes", "ckd"}),
        ("es", "Lesión por presión en sacro. Diabetes en tratamiento con metformina. Enfermedad renal crónica.",
         {"pressure_ulcer", "diabetes", "ckd"}),
    ],
    ids=["en", "es"],
)  # fmt: skip
def test_what_a_coder_would_query_is_listed_with_the_text_that_prompted_it(
    language: str, text: str, concepts: set[str]
) -> None:
    found = infer(text, language)
    assert {query.concept for query in found.queries} >= concepts
    for query in found.queries:
        assert text[query.mention.start : query.mention.end] == query.mention.text


# --- billed codes ----------------------------------------------------------------------------


def report_codes(found: icd10.Inference) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The codes and exclusions as the ICD-10 stage reports them (JSON), what the analysis reads."""
    asserted = [
        {"code": code.code, "description": code.description, "evidence": [{"text": m.text} for m in code.mentions]}
        for code in found.codes
    ]
    excluded_ = [
        {"code": item.code, "reason": item.reason, "evidence": [{"text": item.mention.text}]} for item in found.excluded
    ]
    return asserted, excluded_


NOTE = (
    "Assessment and Plan:\n"
    "1. Type 2 diabetes mellitus with diabetic CKD stage 3a.\n"
    "2. Stage 3 pressure injury of the sacrum.\n"
    "3. Acute myocardial infarction ruled out (troponins negative x2).\n"
    "4. Father with COPD.\n"
)


def test_billed_codes_the_note_does_not_support_are_found_with_their_reason() -> None:
    asserted, excluded_ = report_codes(infer(NOTE, "en"))
    found = analysis.analyse(["e11.9", "L89.152", "I21.9", "J44.9", "N18.31", "I50.9", "E11"], asserted, excluded_)
    unsupported = {item["code"]: item for item in found["unsupported"]}
    assert set(unsupported) == {"L89.152", "I21.9", "J44.9", "I50.9", "E11"}
    assert unsupported["I21.9"]["reason"].startswith("ruled out")
    assert unsupported["J44.9"]["reason"].startswith("family")
    assert "stage" in unsupported["L89.152"]["reason"] and unsupported["L89.152"]["suggested"] == "L89.153"
    assert unsupported["I50.9"]["reason"] == "not documented in the note"
    assert unsupported["E11"]["reason"].startswith("not billable")
    assert [item["code"] for item in found["more_specific"]] == ["E11.9"]
    assert found["more_specific"][0]["suggested"] == "E11.22"
    assert found["supported"] == ["N18.31"]
    for item in [*found["unsupported"], *found["more_specific"]]:
        if item["code"] not in ("I50.9",):
            assert item["evidence"], item


def test_codes_the_note_supports_but_the_bill_lacks_are_missing() -> None:
    asserted, excluded_ = report_codes(infer(NOTE, "en"))
    found = analysis.analyse(["E11.22"], asserted, excluded_)
    assert found["supported"] == ["E11.22"]
    assert {item["code"] for item in found["missing"]} == {"N18.31", "L89.153"}
    assert found["unsupported"] == [] and found["more_specific"] == []
    assert all(item["evidence"] for item in found["missing"])


# --- status Z codes: medications and tobacco --------------------------------------------------

STATUSES = {
    "en insulin and oral agents: both": (
        "en",
        "Assessment: type 2 diabetes mellitus. On metformin 1000 mg bid and insulin glargine 20 units nightly.",
        {"E11.9", "Z79.84", "Z79.4"},
    ),
    "en anticoagulant and aspirin, antiplatelet stopped": (
        "en",
        "Atrial fibrillation on apixaban 5 mg bid. Aspirin 81 mg daily. Clopidogrel discontinued.",
        {"I48.91", "Z79.01", "Z79.82"},
    ),
    "en former smoker": ("en", "Social history: former smoker, quit 10 years ago.", {"Z87.891"}),
    "en current smoker": ("en", "Social history: smoker, 1 ppd.", {"F17.210"}),
    "en never smoker, aspirin allergy": ("en", "Tobacco: never. Allergies: aspirin.", set()),
    "es metformina sí, glibenclamida suspendida": (
        "es",
        "DM2 en tratamiento con metformina 850 mg c/12h. Se suspende glibenclamida.",
        {"E11.9", "Z79.84"},
    ),
    "es exfumador": ("es", "Exfumador de 20 paquetes-año.", {"Z87.891"}),
    "es tabaquismo activo": ("es", "Tabaquismo activo, fuma 10 cigarrillos al día.", {"F17.210"}),
    "es acenocumarol y oxígeno domiciliario": (
        "es",
        "EPOC con oxígeno domiciliario. Fibrilación auricular permanente en tratamiento con acenocumarol.",
        {"J44.9", "Z99.81", "I48.21", "Z79.01"},
    ),
}


@pytest.mark.parametrize(("language", "text", "expected"), STATUSES.values(), ids=STATUSES.keys())
def test_status_codes_are_coded_only_when_the_note_documents_them(language: str, text: str, expected: set[str]) -> None:
    assert codes(infer(text, language)) == expected


# --- conditions, with the specificity the code set asks for --------------------------------

CONDITIONS = {
    "en alzheimer with moderate dementia": (
        "en", "Diagnoses: Alzheimer's disease with moderate dementia.", {"G30.9", "F02.B0"}),
    "en right intertrochanteric fracture": (
        "en", "Assessment: right intertrochanteric hip fracture.", {"S72.141A"}),
    "en embolic left mca stroke": (
        "en",
        "Assessment: acute ischemic stroke, embolic occlusion of the left middle cerebral artery, NIHSS 12,"
        " with right hemiparesis.",
        {"I63.412", "R29.712", "G81.91"},
    ),
    "en bph with nocturia": ("en", "Assessment: BPH with nocturia.", {"N40.1", "R35.1"}),
    "en obesity class 2 with bmi": ("en", "Obesity class 2, BMI 37.4.", {"E66.812", "Z68.37"}),
    "en heart failure and respiratory failure": (
        "en",
        "Acute on chronic systolic heart failure. Acute hypoxic respiratory failure.",
        {"I50.23", "J96.01"},
    ),
    "en e. coli sepsis with septic shock": (
        "en",
        "Assessment: sepsis due to E. coli urinary tract infection with septic shock.",
        {"A41.51", "R65.21", "N39.0"},
    ),
    "en asthma by severity": (
        "en", "Assessment: moderate persistent asthma with acute exacerbation.", {"J45.41"}),
    "en diabetic heel ulcer by depth": (
        "en",
        "Assessment: type 2 diabetes with foot ulcer of the right heel, fat layer exposed.",
        {"E11.621", "L97.412"},
    ),
    "en anemia in ckd": ("en", "Anemia in CKD stage 4. Hyperkalemia.", {"D63.1", "N18.4", "E87.5"}),
    "en inferior stemi": ("en", "Inferior STEMI, RCA occlusion.", {"I21.11"}),
    "en femoral dvt, pe with cor pulmonale": (
        "en", "DVT of the left femoral vein. Pulmonary embolism with right heart strain.", {"I82.412", "I26.09"}),
    "es demencia severa": ("es", "Diagnósticos: demencia severa.", {"F03.C0"}),
    "es fractura de cuello femoral izquierda": (
        "es", "Diagnóstico: fractura de cadera izquierda, cuello femoral.", {"S72.002A"}),
    "es secuela de acv": ("es", "Antecedente de ACV con hemiparesia izquierda secuelar.", {"I69.354"}),
    "es obesidad mórbida con imc": ("es", "Obesidad mórbida, IMC 42.", {"E66.01", "Z68.41"}),
    "es colecistitis litiásica": ("es", "Colecistitis aguda litiásica. Apendicitis aguda.", {"K80.00", "K35.80"}),
    "es iamcest anterior, fa paroxística": (
        "es", "IAMCEST anterior. Fibrilación auricular paroxística.", {"I21.09", "I48.0"}),
    "es hpb con nicturia, anemia ferropénica por pérdidas": (
        "es",
        "Hiperplasia prostática benigna con nicturia. Anemia ferropénica por pérdidas crónicas.",
        {"N40.1", "R35.1", "D50.0"},
    ),
    "es neumonía con insuficiencia respiratoria": (
        "es",
        "Neumonía adquirida en la comunidad. Insuficiencia respiratoria aguda hipoxémica.",
        {"J18.9", "J96.01"},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("language", "text", "expected"), CONDITIONS.values(), ids=CONDITIONS.keys())
def test_conditions_are_coded_with_the_specificity_the_note_supports(
    language: str, text: str, expected: set[str]
) -> None:
    found = infer(text, language)
    assert codes(found) == expected
    assert all(billable(code) for code in codes(found))


def test_a_negated_medication_or_condition_is_still_never_coded() -> None:
    found = infer("No anticoagulation. Denies hemiparesis. Sin antecedente de fractura de cadera.", "en")
    assert not codes(found) & {"Z79.01", "G81.90"}


# --- pressure injuries in wound-care tables ---------------------------------------------------

WOUND_TABLES = {
    "en table": (
        "en",
        "Wound Assessment:\nPressure injuries:\nSacrum: stage 4\nSite: left heel | Stage: DTI\n"
        "Site: occiput | Stage: unstageable\n",
        {"L89.154", "L89.626", "L89.810"},
    ),
    "es lista": (
        "es",
        "Úlceras por presión:\nSacro: categoría 3\nTalón izquierdo: sospecha de lesión de tejido profundo\n"
        "Oreja derecha: estadio 2\n",
        {"L89.153", "L89.626", "L89.812"},
    ),
    "es tabla": (
        "es",
        "Valoración de la herida:\nLPP\nLocalización: sacro — Categoría: 3\n"
        "Localización: trocánter derecho — Categoría: 2\n",
        {"L89.153", "L89.212"},
    ),
}


@pytest.mark.parametrize(("language", "text", "expected"), WOUND_TABLES.values(), ids=WOUND_TABLES.keys())
def test_each_wound_of_a_table_gets_its_own_code(language: str, text: str, expected: set[str]) -> None:
    assert codes(infer(text, language)) == expected


SPANISH_SPECIFICITY = {
    "ic crónica agudizada con fevi reducida, partida en dos líneas": (
        "Diagnósticos al alta:\n1. Insuficiencia cardiaca crónica agudizada con fracción de eyección\n"
        "   reducida (FEVI 30%).\n",
        {"I50.23"},
    ),
    "anemia ferropénica por hipermenorrea": ("Anemia ferropénica secundaria a hipermenorrea.", {"D50.0", "N92.0"}),
    "fractura de colles izquierda": ("Impresión diagnóstica: fractura de Colles izquierda.", {"S52.532A"}),
    "úlcera de pie con tejido graso expuesto": (
        "Úlcera neuropática en pie derecho con tejido graso expuesto, DM2.",
        {"E11.621", "L97.512"},
    ),
}


@pytest.mark.parametrize(("text", "expected"), SPANISH_SPECIFICITY.values(), ids=SPANISH_SPECIFICITY.keys())
def test_spanish_notes_give_the_specific_code(text: str, expected: set[str]) -> None:
    assert codes(infer(text, "es")) == expected


def test_an_ejection_fraction_alone_is_a_query_not_a_type() -> None:
    found = infer("Assessment: decompensated heart failure. Echo: EF 30%.", "en")
    assert codes(found) == {"I50.9"}
    assert any("ejection fraction of 30%" in query.issue for query in found.queries)


IMPLIED_AND_SPECIFIC = {
    "en diabetic retinopathy says the diabetes": ("en", "Diabetic retinopathy, both eyes.", {"E11.319"}),
    "es neuropatía diabética dice la diabetes": ("es", "Neuropatía diabética.", {"E11.42"}),
    "en hashimoto's hypothyroidism is E06.3 alone": (
        "en",
        "Hashimoto thyroiditis with hypothyroidism on levothyroxine.",
        {"E06.3"},
    ),
    "es episodio depresivo moderado": ("es", "Episodio depresivo moderado.", {"F32.1"}),
    "es disfagia orofaríngea": ("es", "Disfagia orofaríngea.", {"R13.12"}),
}


@pytest.mark.parametrize(
    ("language", "text", "expected"), IMPLIED_AND_SPECIFIC.values(), ids=IMPLIED_AND_SPECIFIC.keys()
)
def test_a_complication_names_its_cause_and_specific_forms_are_coded(
    language: str, text: str, expected: set[str]
) -> None:
    assert codes(infer(text, language)) == expected


def test_se_descarto_is_ruled_out_and_common_conditions_have_their_codes() -> None:
    found = infer("Se descartó TBC pulmonar. Crisis hipertensiva. Erisipela en pierna. Artritis reumatoide.", "es")
    assert excluded(found)["A15.0"] == "ruled out"
    assert codes(found) == {"I16.9", "A46", "M06.9"}


@pytest.mark.parametrize(
    ("language", "text", "code", "reason"),
    [
        ("es", "Hemocultivos negativos para sepsis.", "A41.9", "negated"),
        ("es", "TAC que descarta ACV.", "I63.9", "ruled out"),
        ("es", "Se excluye TEP.", "I26.99", "ruled out"),
        ("en", "CT head excludes stroke.", "I63.9", "ruled out"),
        ("en", "CTA rules out pulmonary embolism.", "I26.99", "ruled out"),
    ],
)
def test_more_ways_of_saying_absent_or_excluded(language: str, text: str, code: str, reason: str) -> None:
    found = infer(text, language)
    assert code not in codes(found)
    assert excluded(found)[code] == reason


def test_a_healed_fracture_is_history_and_room_air_is_not_arthritis() -> None:
    found = infer("PMH: remote left Colles fracture (healed). SpO2 97% RA. Hyperkalemia, resolved.", "en")
    assert codes(found) == {"Z87.81", "E87.5"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reagudización de EPOC.", {"J44.1"}),
        ("ACxFA en tratamiento.", {"I48.91"}),
        ("Lumbalgia con ciática.", {"M54.40"}),
        ("Dependencia alcohólica.", {"F10.20"}),
    ],
)
def test_spanish_ways_of_writing_a_diagnosis(text: str, expected: set[str]) -> None:
    assert codes(infer(text, "es")) == expected


def test_an_exacerbation_denied_is_not_coded() -> None:
    assert codes(infer("EPOC estable durante el ingreso, sin agudización.", "es")) == {"J44.9"}
    assert codes(infer("COPD, stable, no exacerbation this year.", "en")) == {"J44.9"}
