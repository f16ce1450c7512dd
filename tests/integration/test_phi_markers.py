"""Patient-data markers in every input field of every workload, then a scan of everywhere
data goes besides the job itself: logs, the audit log, events, notifications, metrics and
blob names. None may hold a marker. (Results are the job's own answer to its caller and
are checked by each workload's tests.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import API, harness
from tests.integration.test_failure_handling import oversight_settings
from tests.receivers import webhook_receiver
from vigia.workloads.pressure_injury import samples

pytestmark = pytest.mark.timeout(300)

DOCUMENTS = Path(__file__).resolve().parents[2] / "src/vigia/workloads/documents/samples"
MARKERS = ["PT-MARKER-7731", "Quispezzyx", "MARKERTITLE", "MARKERFILE", "MARKERNOTE"]


def test_no_marker_reaches_logs_audit_events_notifications_metrics_or_blob_names(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with (
        webhook_receiver("s") as receiver,
        harness(store_url, tmp_path, max_upload_bytes=20_000_000, **oversight_settings(receiver)) as api,
    ):
        case = {
            "patient_code": "PT-MARKER-7731",
            "braden": {"sensory_perception": 2, "moisture": 2, "activity": 1, "mobility": 2, "nutrition": 2,
                       "friction_shear": 1},
            "context": {"age": 91, "diabetes": True},
        }  # fmt: skip
        jobs = [
            api.client.post(
                f"{API}/pipelines/pressure_injury_case/jobs",
                files={"file": ("MARKERFILE Quispezzyx.jpg", samples.photo("erythema.jpg"), "image/jpeg")},
                data={"input": json.dumps(case)},
                headers=api.headers(),
            ),
            api.client.post(
                f"{API}/pipelines/clinical_coding_report/jobs",
                json={
                    "input": {
                        "text": "Paciente: Rosa Quispezzyx. DNI 45879632. MARKERNOTE. Diabetes mellitus tipo 2.",
                        "billed_codes": ["E11.9"],
                    }
                },
                headers=api.headers(),
            ),
            api.client.post(
                f"{API}/pipelines/document_ingest/jobs",
                files={
                    "file": (
                        "MARKERFILE.pdf",
                        (DOCUMENTS / "oficio-born-digital.pdf").read_bytes(),
                        "application/pdf",
                    )
                },
                data={"input": json.dumps({"title": "MARKERTITLE"})},
                headers=api.headers(),
            ),
        ]
        ids = []
        for response in jobs:
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        for job_id in ids:
            assert api.wait(job_id, timeout=240)["state"] in ("succeeded", "degraded")
        api.vigia.watch.check()
        sinks = {
            "logs": caplog.text,
            "audit": json.dumps([entry.to_dict() for entry in api.vigia.oversight.audit_entries()]),
            "events": json.dumps(
                [event.to_dict() for job_id in ids for event in api.vigia.store.events_after(job_id, 0, 100_000)]
            ),
            "notifications": json.dumps(
                api.client.get(f"{API}/notifications", headers=api.headers("admin")).json(), default=str
            )
            + json.dumps([delivery.json for delivery in receiver.accepted()]),
            "metrics": api.client.get(f"{API}/metrics", headers=api.headers("admin")).text,
            "blob names": "\n".join(path.name for path in (tmp_path / "data" / "blobs").rglob("*")),
        }
    leaks = [f"{marker} in {sink}" for sink, text in sinks.items() for marker in MARKERS if marker in text]
    assert leaks == [], leaks
    assert all(text for text in sinks.values() if text is not sinks["blob names"])
