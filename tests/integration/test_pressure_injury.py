"""The pressure-injury case through the HTTP API with embedded workers (SQLite and
PostgreSQL): a photo uploaded as multipart, metadata stripped in storage, Braden risk,
guideline assessment, triage, and each escalation path with real notifications and real
ONNX models built in the tests."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.harness import API, Harness, assert_error, harness
from tests.integration.test_failure_handling import AUDIT_KEY, SECRET, oversight_settings, reviews, wait_for
from tests.onnx_models import STAGE_2, STAGE_4, constant_detector, yolov5_rows
from tests.receivers import WebhookReceiver, webhook_receiver
from vigia.audit import Pseudonymiser
from vigia.blobs import BlobRef, LocalBlobStore
from vigia.workloads.pressure_injury import samples

pytestmark = pytest.mark.timeout(120)

PIPELINE = "pressure_injury_case"
BRADEN_HIGH = {
    "sensory_perception": 2,
    "moisture": 3,
    "activity": 1,
    "mobility": 2,
    "nutrition": 2,
    "friction_shear": 2,
}
BRADEN_MILD = {
    "sensory_perception": 4,
    "moisture": 3,
    "activity": 3,
    "mobility": 3,
    "nutrition": 3,
    "friction_shear": 2,
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def case_harness(store_url: str, tmp_path: Path, receiver: WebhookReceiver, model: Path | None) -> Any:
    return harness(
        store_url,
        tmp_path,
        max_upload_bytes=5_000_000,
        pi_model=model,
        **oversight_settings(receiver, routes={"*": ["hook"]}),
    )


def photo(name: str = "phone_photo.jpg") -> bytes:
    return samples.photo(name)


def upload(api: Harness, data: bytes, case: dict[str, Any], filename: str = "wound.jpg") -> dict[str, Any]:
    response = api.client.post(
        f"{API}/pipelines/{PIPELINE}/jobs",
        files={"file": (filename, data, "application/octet-stream")},
        data={"input": json.dumps(case)},
        headers=api.headers(),
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def result(api: Harness, job_id: str) -> dict[str, Any]:
    response = api.client.get(f"{API}/jobs/{job_id}/result", headers=api.headers())
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def detector(tmp_path: Path, *boxes: tuple[float, float, float, float, float, int]) -> Path:
    return constant_detector(tmp_path / "detector.onnx", yolov5_rows(*boxes))


def test_a_case_without_a_model_is_triaged_and_sent_to_human_review_with_its_photo_stripped(
    store_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    with case_harness(store_url, tmp_path, receiver, None) as api:
        original = photo("phone_photo.jpg")
        assert b"ExamplePhone" in original  # the sample carries device EXIF (and GPS)
        job = upload(api, original, {"patient_code": "PT-77", "braden": BRADEN_HIGH, "context": {"age": 81}})
        done = api.wait(job["id"])
        assert done["state"] == "succeeded", done
        case = result(api, job["id"])

        # Never an invented grade: the case goes to a person.
        assert (case["graded"], case["grade"], case["confidence"]) == (False, None, None)
        assert case["triage"]["level"] == "urgent"  # ungraded and at high risk
        assert "no automatic grading and the patient is at high risk: assess in person" in case["triage"]["reasons"]
        assert case["risk"]["braden"]["total"] == 12 and case["risk"]["braden"]["band"] == "high"
        assert {"factor": "age", "label": "age 81 (70 or over)"} in case["risk"]["risk_factors"]
        topics = [item["topic"] for item in case["recommendations"]]
        assert topics[:2] == ["repositioning", "support_surface"] and "referral" in topics
        assert all("2019" in item["reference"] for item in case["recommendations"])
        [review] = reviews(api)
        assert (review["kind"], review["stage"], review["role"]) == ("result", "detect", "medical_team")
        assert review["reason"] == "automatic grading unavailable: a clinician must grade the wound"
        assert done["awaiting_review"] is True

        # The upload with its GPS, device and date is gone from storage; what is kept has none.
        blobs = LocalBlobStore(tmp_path / "data" / "blobs")
        uploaded = BlobRef.from_input(api.vigia.store.get_job(job["id"]).input["file"])
        assert not blobs.path(uploaded).exists()
        kept = BlobRef.from_input(case["photo"])
        stored = blobs.path(kept).read_bytes()
        assert b"ExamplePhone" not in stored and b"GPS" not in stored
        with Image.open(io.BytesIO(stored)) as clean:
            assert not clean.getexif() and "exif" not in clean.info
            with Image.open(io.BytesIO(original)) as raw:
                assert clean.size == (raw.size[1], raw.size[0])  # turned upright (EXIF orientation 6)
        assert blobs.read(uploaded) == stored  # the upload's reference now reads the clean copy
        # What a reader (the dashboard) is given is the clean copy, never under a file name.
        served = api.client.get(f"{API}/jobs/{job['id']}/file", headers=api.headers("viewer"))
        assert served.status_code == 200 and served.content == stored, served.text
        assert served.headers["content-type"] == kept.media_type
        assert "filename" not in served.headers.get("content-disposition", "")
        assert_error(api.client.get(f"{API}/jobs/{job['id']}/file", headers=api.headers("other")), 404, "job_not_found")

        # Audited as a clinical decision, the patient pseudonymised.
        decisions = [entry for entry in api.vigia.oversight.audit_entries() if entry.action.startswith("decision.")]
        [triaged] = [entry for entry in decisions if entry.action == "decision.pressure_injury.triaged"]
        assert triaged.details["level"] == "urgent" and triaged.details["braden_total"] == 12
        assert triaged.subject == Pseudonymiser(bytes.fromhex(AUDIT_KEY))("PT-77")
        [delivery] = wait_for(receiver.accepted, what="the review notification")
        assert delivery.json["role"] == "medical_team" and "PT-77" not in delivery.body.decode()


def test_a_stage_4_injury_pages_the_specialists_at_once(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    model = detector(tmp_path, (320, 320, 120, 90, 0.91, STAGE_4), (330, 325, 110, 80, 0.70, STAGE_4))
    with case_harness(sqlite_url, tmp_path, receiver, model) as api:
        job = upload(api, photo("eschar.png"), {"patient_code": "PT-9", "braden": BRADEN_HIGH}, "sacrum.png")
        done = api.wait(job["id"])
        case = result(api, job["id"])

        assert (done["state"], case["grade"], case["confidence"]) == ("succeeded", "stage_4", 0.91)
        detect = next(run for run in api.vigia.store.get_runs(job["id"]) if run.stage == "detect")
        assert [d["category"] for d in detect.output["detections"]] == ["stage_4"]  # the overlap suppressed
        assert case["triage"]["level"] == "emergency"
        [review] = reviews(api)
        assert (review["role"], review["severity"], review["urgency"]) == ("specialists", "critical", "critical")
        deliveries = wait_for(receiver.accepted, what="the page")
        assert [(d.json["role"], d.json["urgency"]) for d in deliveries] == [("specialists", "critical")]
        assert deliveries[0].signed
        # Paged when detection settled, before the case was triaged.
        events = [event.to_dict() for event in api.vigia.store.events_after(job["id"])]
        escalated = next(e["seq"] for e in events if e["type"] == "job.escalated")
        triage_started = next(e["seq"] for e in events if e["type"] == "stage.started" and e["stage"] == "triage")
        assert escalated < triage_started


def test_low_confidence_goes_to_review_and_a_confident_stage_2_is_routine(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    doubtful = detector(tmp_path, (320, 320, 100, 100, 0.41, STAGE_2))
    with case_harness(sqlite_url, tmp_path, receiver, doubtful) as api:
        job = upload(api, photo("ulcer.jpg"), {"patient_code": "PT-1", "braden": BRADEN_MILD})
        api.wait(job["id"])
        [review] = reviews(api)
        assert review["reason"] == "detection confidence below 0.60: human review required"
        assert result(api, job["id"])["escalated"] is True

    confident = constant_detector(tmp_path / "confident.onnx", yolov5_rows((320, 320, 100, 100, 0.88, STAGE_2)))
    with (
        webhook_receiver(SECRET) as routine_receiver,
        case_harness(
            sqlite_url.replace("vigia.db", "second.db"), tmp_path / "second", routine_receiver, confident
        ) as api,
    ):
        job = upload(api, photo("ulcer.jpg"), {"patient_code": "PT-2", "braden": BRADEN_MILD})
        api.wait(job["id"])
        case = result(api, job["id"])
        assert (case["grade"], case["triage"]["level"], case["escalated"]) == ("stage_2", "routine", False)
        assert reviews(api) == []
        [delivery] = wait_for(routine_receiver.accepted, what="the routine notification")
        body = delivery.json
        assert (body["role"], body["urgency"], body["review_id"]) == ("medical_team", "normal", None)
        assert body["subject"] == "pressure-injury case triaged routine"


def test_a_broken_model_degrades_the_case_and_escalates_it(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(1).bytes(512))
    with case_harness(sqlite_url, tmp_path, receiver, corrupt) as api:
        job = upload(api, photo("erythema.jpg"), {"patient_code": "PT-3", "braden": BRADEN_MILD})
        done = api.wait(job["id"])
        assert done["state"] == "degraded"
        detect = next(stage for stage in done["stages"] if stage["stage"] == "detect")
        assert detect["state"] == "failed" and "cannot be loaded" in detect["error_message"]
        [review] = reviews(api)
        assert (review["kind"], review["stage"], review["severity"]) == ("failure", "detect", "high")
        assert result(api, job["id"])["graded"] is False


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ({"patient_code": "PT-1", "braden": {**BRADEN_MILD, "moisture": 5}}, "braden.moisture"),
        ({"patient_code": "PT-1", "braden": {**BRADEN_MILD, "friction_shear": 4}}, "braden.friction_shear"),
        (
            {"patient_code": "PT-1", "braden": {k: v for k, v in BRADEN_MILD.items() if k != "nutrition"}},
            "braden.nutrition",
        ),
        ({"braden": BRADEN_MILD}, "patient_code"),
    ],
)
def test_bad_case_data_is_a_422_naming_the_field_and_stores_nothing(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver, case: dict[str, Any], field: str
) -> None:
    with case_harness(sqlite_url, tmp_path, receiver, None) as api:
        response = api.client.post(
            f"{API}/pipelines/{PIPELINE}/jobs",
            files={"file": ("w.jpg", photo("erythema.jpg"), "image/jpeg")},
            data={"input": json.dumps(case)},
            headers=api.headers(),
        )
        error = assert_error(response, 422)
        assert error["details"]["field"] == field
        not_an_image = api.client.post(
            f"{API}/pipelines/{PIPELINE}/jobs",
            files={"file": ("w.jpg", b"GIF89a" + bytes(100), "image/jpeg")},
            data={"input": json.dumps({"patient_code": "PT-1", "braden": BRADEN_MILD})},
            headers=api.headers(),
        )
        assert_error(not_an_image, 415)
        assert api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"] == []


def test_the_clients_file_name_stays_with_the_job_and_nowhere_else(
    store_url: str, tmp_path: Path, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    name = "Maria Lopez Quispe herida sacra.jpg"
    marker = "Maria Lopez Quispe"
    caplog.set_level("DEBUG")
    with case_harness(store_url, tmp_path, receiver, None) as api:
        job = upload(api, photo("phone_photo.jpg"), {"patient_code": "PT-78", "braden": BRADEN_HIGH}, filename=name)
        assert api.wait(job["id"])["state"] == "succeeded"
        # With the job, for display.
        assert api.vigia.store.get_job(job["id"]).input["file"]["filename"] == name
        # Nowhere else: stage outputs, the result, events, blob storage (names and markers), logs.
        outputs = json.dumps([run.output for run in api.vigia.store.get_runs(job["id"])])
        assert marker not in outputs
        assert marker not in json.dumps(result(api, job["id"]))
        assert marker not in json.dumps([event.to_dict() for event in api.vigia.store.events_after(job["id"])])
        for path in (tmp_path / "data" / "blobs").rglob("*"):
            assert marker not in path.name
            if path.is_file() and path.suffix == ".replaced":
                assert marker not in path.read_text()
        assert marker not in caplog.text


MEMORY_PROBE = """
import sys
from pathlib import Path
from vigia.workloads.pressure_injury import image
data = Path(sys.argv[1]).read_bytes()
# VmHWM, not ru_maxrss: the latter survives exec, so it starts at the test runner's peak.
def peak():
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
base = peak()
rises = []
for _ in range(4):
    photo = image.clean(data)
    image.quality(photo.image)
    cleaned = photo.data
    del photo
    image.for_detection(cleaned, 1280)
    rises.append(round(peak() - base))
print(*rises)
"""


def test_a_largest_photo_is_cleaned_and_measured_in_bounded_memory(tmp_path: Path) -> None:
    """40 megapixels, four times in a row, in a fresh process: the peak stays under 400 MB
    above the start (about 3.3 bytes a pixel at most: one decoded copy and the encoder's
    buffers) and does not grow from one photo to the next. Before the fix: 851 MB for one."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 255, (790, 790, 3), dtype=np.uint8)
    path = tmp_path / "large.jpg"
    Image.fromarray(small).resize((6320, 6320)).save(path, quality=85)
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert probe.returncode == 0, probe.stderr
    rises = [int(value) for value in probe.stdout.split()]
    print(f"peak rise over the process's start, MB, after each of four 40-megapixel photos: {rises}")
    assert rises[0] < 400, rises
    assert rises[-1] - rises[0] < 50, rises


def test_a_huge_photo_of_one_colour_is_refused_at_submission(
    store_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    flat = io.BytesIO()
    Image.new("RGB", (6320, 6320), (200, 120, 110)).save(flat, "PNG", optimize=True)
    assert len(flat.getvalue()) < 200_000  # the probe's shape: a small file, 40 megapixels
    with case_harness(store_url, tmp_path, receiver, None) as api:
        response = api.client.post(
            f"{API}/pipelines/{PIPELINE}/jobs",
            files={"file": ("flat.png", flat.getvalue(), "image/png")},
            data={"input": json.dumps({"patient_code": "PT-79", "braden": BRADEN_HIGH})},
            headers=api.headers(),
        )
        error = assert_error(response, 422, "invalid_input")
        assert error["details"]["field"] == "file" and "one colour" in error["message"]
        assert api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"] == []
