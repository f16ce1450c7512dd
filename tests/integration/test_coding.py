"""The clinical coding workload end to end in embedded mode, through the HTTP API, with the
real medspaCy pipelines and the real ICD-10-CM code set: the report and its milestones, the
billed codes checked, a claim at risk sent to a coder, bad input refused with a clear 422,
SNOMED CT from a release in RF2 format, and no note text in logs, events, audit entries,
notifications or any stored table but the job's own input."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import API, Harness, assert_error, harness
from tests.integration.test_api_streams import check_event, sse_events
from tests.receivers import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.timeout(300)
PIPELINE = "clinical_coding_report"
SECRET = "coding-hook-secret"

NOTE_EN = """EMERGENCY DEPARTMENT NOTE
Patient: Zenobia Quillfeather     MRN: 88417723
DOB: 02/11/1944     Phone: (614) 555-0148
Seen 03/14/2025 at 09:40 by Dr. Amadeus Pennywhistle, MD.

HPI: 81 y/o F with type 2 diabetes and hypertension, brought in by her daughter
Ophelia Quillfeather for a wound on the sacrum. Denies chest pain. No fever.

ASSESSMENT AND PLAN:
1. Stage 3 pressure injury of the sacrum, 4 x 3 cm, xylophone-shaped erythema at the edges.
2. Type 2 diabetes mellitus with diabetic chronic kidney disease, CKD stage 3b.
3. Hypertension.
4. Pneumonia ruled out (clear chest x-ray).
Family history: father had a myocardial infarction.
"""

NOTE_ES = """NOTA DE URGENCIAS
Paciente: Eulalia Cotrina Villacorta     HC: 458921     DNI 45678912
Fecha: 21 de abril de 2025, 08:15. Teléfono: +51 987 654 321

Motivo de consulta: disuria y fiebre.
Antecedentes: HTA, DM2 en tratamiento con metformina 850 mg c/12h.
Niega dolor torácico. Se descarta neumonía. Padre con infarto agudo de miocardio.

Impresión diagnóstica:
1. Infección del tracto urinario.
2. Diabetes mellitus tipo 2 sin complicaciones.
3. Hipertensión arterial.
Médico: Dra. Lucía Paredes Ríos, CMP 45123.
"""


def submitted(api: Harness, job_input: dict[str, Any]) -> dict[str, Any]:
    job = api.submit(PIPELINE, job_input)
    return api.wait(job["id"], timeout=180)


def result_of(api: Harness, job_id: str) -> dict[str, Any]:
    response = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["result"]
    return body


def events_of(api: Harness, job_id: str) -> list[dict[str, Any]]:
    with api.client.stream("GET", f"{API}/jobs/{job_id}/events", headers=api.headers()) as response:
        assert response.status_code == 200
        return [check_event(event) for event in sse_events(response)]


@pytest.fixture
def coding(sqlite_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(sqlite_url, tmp_path, max_upload_bytes=1024 * 1024) as api:
        yield api


# --- the report ------------------------------------------------------------------------------


def test_an_english_note_is_coded_with_evidence_and_its_bill_checked(coding: Harness) -> None:
    billed = ["E11.9", "L89.152", "I10", "J18.9", "I21.9"]
    job = submitted(coding, {"text": NOTE_EN, "billed_codes": billed})
    assert job["state"] == "degraded", job  # no SNOMED CT release configured
    report = result_of(coding, job["id"])
    assert {"phi", "redacted_text", "sections", "codes", "ranked", "excluded", "coding_analysis", "quality",
            "degraded", "language"} <= set(report)  # fmt: skip
    assert report["language"] == "en" and report["language_source"] == "detected"
    assert report["degraded"] == [{"stage": "snomed", "reason": "no terminology configured"}]

    # PHI: spans into the original note, none of it in the redacted text
    kinds = {NOTE_EN[span["start"] : span["end"]]: span["type"] for span in report["phi"]}
    for words, kind in [("Zenobia Quillfeather", "NAME"), ("88417723", "RECORD_NUMBER"), ("02/11/1944", "DATE"),
                        ("(614) 555-0148", "PHONE"), ("03/14/2025", "DATE"), ("Amadeus Pennywhistle", "NAME"),
                        ("Ophelia Quillfeather", "NAME")]:  # fmt: skip
        assert kinds.get(words) == kind, (words, kinds)
        assert words not in report["redacted_text"]
    assert "81 y/o" in report["redacted_text"] and "09:40" in report["redacted_text"]
    assert all(0 < span["score"] <= 1 for span in report["phi"])

    codes = {item["code"]: item for item in report["codes"]}
    assert set(codes) == {"L89.153", "E11.22", "N18.32", "I12.9"}
    for item in codes.values():
        assert item["description"] and 0 < item["confidence"] <= 1
        for evidence in item["evidence"]:
            assert NOTE_EN[evidence["start"] : evidence["end"]].casefold() == evidence["text"].casefold()
    excluded = {item["code"]: item["reason"] for item in report["excluded"]}
    assert excluded["J18.9"].startswith("ruled out")
    assert excluded["I21.9"].startswith("family")
    assert excluded["R07.9"].startswith("negated")
    assert not set(excluded) & set(codes)
    assert [item["code"] for item in report["ranked"]][: len(codes)] and len(report["ranked"]) >= len(codes)

    analysis = report["coding_analysis"]
    unsupported = {item["code"]: item for item in analysis["unsupported"]}
    assert set(unsupported) == {"L89.152", "J18.9", "I21.9"}
    assert unsupported["L89.152"]["suggested"] == "L89.153"
    assert {item["code"]: item["suggested"] for item in analysis["more_specific"]} == {
        "E11.9": "E11.22",
        "I10": "I12.9",
    }
    assert {item["code"] for item in analysis["missing"]} == {"N18.32"}

    # A claim at risk goes to a coder's review queue.
    reviews = coding.client.get(f"{API}/reviews", params={"role": "coding"}, headers=coding.headers("reviewer"))
    assert reviews.status_code == 200, reviews.text
    [review] = [item for item in reviews.json()["reviews"] if item["job_id"] == job["id"]]
    assert "coder must review" in review["reason"]


def test_a_spanish_note_is_coded_in_spanish(coding: Harness) -> None:
    job = submitted(coding, {"text": NOTE_ES, "billed_codes": ["N39.0", "E11.9", "I10"]})
    report = result_of(coding, job["id"])
    assert report["language"] == "es"
    found = {NOTE_ES[span["start"] : span["end"]]: span["type"] for span in report["phi"]}
    for words, kind in [("Eulalia Cotrina Villacorta", "NAME"), ("458921", "RECORD_NUMBER"), ("45678912", "ID"),
                        ("21 de abril de 2025", "DATE"), ("+51 987 654 321", "PHONE"),
                        ("Lucía Paredes Ríos", "NAME"), ("45123", "ID")]:  # fmt: skip
        assert found.get(words) == kind, (words, found)
    assert {item["code"] for item in report["codes"]} == {"N39.0", "E11.9", "I10", "Z79.84"}
    excluded = {item["code"]: item["reason"] for item in report["excluded"]}
    assert excluded["R07.9"].startswith("negated") and excluded["J18.9"].startswith("ruled out")
    assert excluded["I21.9"].startswith("family")
    # the fever and dysuria of a urinary infection are not coded apart
    assert not {"R50.9", "R30.0"} & {item["code"] for item in report["codes"]}
    assert report["coding_analysis"]["supported"] == ["N39.0", "E11.9", "I10"]
    assert report["coding_analysis"]["unsupported"] == []
    assert coding.job(job["id"])["awaiting_review"] is False


def test_the_twelve_milestones_are_reported_in_order(coding: Harness) -> None:
    job = submitted(coding, {"text": NOTE_ES, "language": "es"})
    events = events_of(coding, job["id"])
    progress = [round(event["progress"]) for event in events]
    assert progress == sorted(progress), progress
    for milestone in (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100):
        assert milestone in progress, f"{milestone} % missing: {progress}"
    said = " | ".join(event["message"] or "" for event in events)
    for words in ("PHI detection started", "PHI complete", "clinical filtering started", "filtering complete",
                  "ICD-10 inference started", "coding analysis", "quality analysis", "finalising"):  # fmt: skip
        assert words in said, said


# --- bad input --------------------------------------------------------------------------------


def test_bad_notes_and_codes_are_a_clear_422_and_nothing_stored_is_touched(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIA_CODING_MAX_CHARS", "2000")  # the submission check reads the environment
    with harness(sqlite_url, tmp_path) as api:
        kept = submitted(api, {"text": NOTE_ES})
        before = api.job(kept["id"])

        def refused(job_input: Any, *words: str) -> None:
            response = api.client.post(
                f"{API}/pipelines/{PIPELINE}/jobs", json={"input": job_input}, headers=api.headers()
            )
            error = assert_error(response, 422)
            for word in words:
                assert word in error["message"], error

        refused({"text": ""}, "empty")
        refused({"text": "   \n\t "}, "empty")
        refused({}, "text")
        refused({"text": NOTE_EN * 4}, "2,000")
        refused({"text": "x\x00y" * 10}, "NUL")
        portuguese = (
            "Paciente do sexo feminino, 67 anos, deu entrada no pronto-socorro com dor abdominal e febre há três dias."
            " Nega vômitos. Ao exame, abdome doloroso à palpação no quadrante inferior direito. Hipótese diagnóstica:"
            " apendicite aguda. Conduta: avaliação da cirurgia geral, jejum e hidratação venosa."
        )
        refused({"text": portuguese}, "Portuguese")
        refused({"text": NOTE_EN, "language": "fr"}, "es", "en")
        refused({"text": NOTE_EN, "billed_codes": ["E11.9", "banana", "Z99.99", "12345"]}, "banana", "Z99.99", "12345")
        refused({"text": NOTE_EN, "billed_codes": "E11.9"}, "list")
        refused({"text": NOTE_EN, "billed_codes": ["E11.9"] * 101}, "100")
        after = api.job(kept["id"])
        assert after == before
        listed = api.client.get(f"{API}/jobs", params={"pipeline": PIPELINE}, headers=api.headers()).json()
        assert [job["id"] for job in listed["jobs"]] == [kept["id"]]


# --- SNOMED CT -------------------------------------------------------------------------------

RF2_MAP_HEADER = (
    "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tmapGroup\tmapPriority\tmapRule"
    "\tmapAdvice\tmapTarget\tcorrelationId\tmapCategoryId"
)
RF2_DESCRIPTION_HEADER = "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificance"


def rf2_release(directory: Path) -> Path:
    """A release in RF2 format holding the two concepts the Spanish note needs."""
    release = directory / "SnomedCT_Test" / "Snapshot"
    (release / "Refset" / "Map").mkdir(parents=True)
    (release / "Terminology").mkdir(parents=True)
    maps = [
        ("44054006", "E11.9", "ALWAYS E11.9"),
        ("38341003", "I10", "ALWAYS I10"),
        ("68566005", "N39.0", "ALWAYS N39.0"),
    ]
    rows = [
        f"{index}\t20250301\t1\t5991000124107\t6011000124106\t{concept}\t1\t1\tTRUE\t{advice}\t{code}\t447561005\t447637006"
        for index, (concept, code, advice) in enumerate(maps)
    ]
    (release / "Refset" / "Map" / "der2_iisssccRefset_ExtendedMapSnapshot_US1000124_20250301.txt").write_text(
        "\n".join([RF2_MAP_HEADER, *rows]) + "\n", encoding="utf-8"
    )
    terms = [
        ("44054006", "Diabetes mellitus type 2 (disorder)"),
        ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
        ("68566005", "Urinary tract infectious disease (disorder)"),
    ]
    rows = [
        f"{index}\t20250301\t1\t900000000000207008\t{concept}\ten\t900000000000003001\t{term}\t900000000000448009"
        for index, (concept, term) in enumerate(terms)
    ]
    (release / "Terminology" / "sct2_Description_Snapshot-en_US1000124_20250301.txt").write_text(
        "\n".join([RF2_DESCRIPTION_HEADER, *rows]) + "\n", encoding="utf-8"
    )
    return directory / "SnomedCT_Test"


def test_snomed_ct_concepts_come_from_the_configured_release_and_a_broken_one_degrades(
    sqlite_url: str, tmp_path: Path
) -> None:
    with harness(sqlite_url, tmp_path, coding_snomed_release=rf2_release(tmp_path)) as api:
        job = submitted(api, {"text": NOTE_ES})
        assert job["state"] == "succeeded", job
        report = result_of(api, job["id"])
        assert report["degraded"] == []
        concepts = report["snomed"]["concepts"]
        assert concepts["E11.9"] == [
            {"concept_id": "44054006", "term": "Diabetes mellitus type 2 (disorder)", "icd10": "E11.9",
             "map_advice": "ALWAYS E11.9"}
        ]  # fmt: skip
        assert [concept["concept_id"] for concept in concepts["N39.0"]] == ["68566005"]

    empty = tmp_path / "not-a-release"
    empty.mkdir()
    with harness(sqlite_url, tmp_path / "second", coding_snomed_release=empty) as api:
        job = submitted(api, {"text": NOTE_ES})
        assert job["state"] == "degraded"
        report = result_of(api, job["id"])
        assert [item["stage"] for item in report["degraded"]] == ["snomed"]
        assert report["codes"], "the codes do not depend on SNOMED CT"
        runs = {run["stage"]: run for run in api.job(job["id"])["stages"]}
        assert "no extended map" in (runs["snomed"]["error_message"] or "")


# --- no note text outside the report ------------------------------------------------------------

#: What the note says that must stay in it: its PHI, and a clinical phrase of its own.
MARKERS = ("Zenobia", "Quillfeather", "Pennywhistle", "88417723", "02/11/1944", "555-0148", "xylophone-shaped")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def test_no_note_text_reaches_logs_events_audit_notifications_or_other_tables(
    store_url: str, tmp_path: Path, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {
        "notify_channels": json.dumps({"hook": {"type": "webhook", "url": receiver.url, "secret": SECRET}}),
        "notify_routes": json.dumps({"*": ["hook"]}),
        "audit_key": "ab" * 32,
    }
    with caplog.at_level(logging.DEBUG), harness(store_url, tmp_path, **settings) as api:
        job = submitted(api, {"text": NOTE_EN, "billed_codes": ["I21.9", "E11.9"]})
        assert job["state"] == "degraded"
        deadline = time.monotonic() + 30
        while not receiver.accepted():  # the coder's review is notified
            assert time.monotonic() < deadline, "no notification was sent: the check below would prove nothing"
            time.sleep(0.05)
        events = events_of(api, job["id"])
        audited = [entry.to_dict() for entry in api.vigia.oversight.audit_entries()]
        tables = stored_rows(api)

    logged = "\n".join(f"{record.getMessage()} {json.dumps(record.__dict__, default=str)}" for record in caplog.records)
    sent = "\n".join(delivery.body.decode() for delivery in receiver.deliveries)
    assert caplog.records and events and audited and sent
    for marker in MARKERS:
        assert marker not in logged, f"{marker} in a log record"
        assert marker not in json.dumps(events), f"{marker} in an event"
        assert marker not in json.dumps(audited), f"{marker} in the audit log"
        assert marker not in sent, f"{marker} in a notification"
    for table, text in tables.items():
        for marker in MARKERS[:-1]:  # the clinical phrase is in the redacted note, the PHI is not
            assert marker not in text, f"{marker} stored in {table}"
    assert "xylophone-shaped" in tables["vigia_stage_runs"], "the redacted note was not stored: nothing was checked"


def stored_rows(api: Harness) -> dict[str, str]:
    """Every stored table as text, the job's own input left out (the note as sent)."""
    engine = api.vigia.store.database.engine
    found = {}
    with engine.connect() as connection:
        for table in _tables(engine):
            rows = connection.execute(sa.select(table)).mappings().all()
            if table.name == "vigia_jobs":
                rows = [{key: value for key, value in row.items() if key != "input"} for row in rows]
            found[table.name] = json.dumps([dict(row) for row in rows], default=str)
    return found


def _tables(engine: sa.Engine) -> list[sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return [table for name, table in metadata.tables.items() if name.startswith("vigia_")]
