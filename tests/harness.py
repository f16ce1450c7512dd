"""The API under test, in process: a `Vigia` app over a real store with embedded workers, a
Starlette test client, an API key of every role for two tenants, and the small pipelines
the API tests run. Shared by the integration test modules."""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette.testclient prefers httpx2 and says so once, at import; httpx works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from tests.pipelines import ALL
from vigia import Pipeline, Settings, StageContext, Vigia
from vigia.access import Role, issue
from vigia.api import create_app

API = "/api/v1"
TENANT = "acme"
OTHER_TENANT = "globex"
TERMINAL = {"succeeded", "degraded", "failed", "dead", "cancelled"}


# --- pipelines of these tests ----------------------------------------------------------

quick = Pipeline("t_api_quick", description="Echoes its input after three progress steps.")


@quick.stage()
def echo(ctx: StageContext) -> dict[str, Any]:
    for step in range(3):
        ctx.progress((step + 1) / 3, f"step {step + 1}/3")
    return {"echo": ctx.input}


files = Pipeline("t_api_file", accepts=("image/png", "application/pdf"))


@files.stage()
def inspect_file(ctx: StageContext) -> dict[str, Any]:
    """Reports the file reference the job carries."""
    return {"file": ctx.input["file"], "note": ctx.input.get("note")}


_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()


def gate(label: str) -> threading.Event:
    with _gates_lock:
        return _gates.setdefault(label, threading.Event())


def release_all_gates() -> None:
    with _gates_lock:
        for event in _gates.values():
            event.set()


gated = Pipeline("t_api_gated", description="Holds until the test opens its gate.")


@gated.stage()
def hold(ctx: StageContext) -> dict[str, Any]:
    label = ctx.input["label"]
    ctx.progress(0.1, "waiting for the gate")
    deadline = time.monotonic() + 20
    while not gate(label).wait(0.02):
        ctx.raise_if_cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
    ctx.progress(0.9, "gate open")
    return {"label": label}


@gated.stage()
def finish(ctx: StageContext) -> dict[str, Any]:
    return {"done": ctx.outputs["hold"]["label"]}


ticker = Pipeline("t_api_ticker", description="Reports progress many times, a little apart.")


@ticker.stage()
def tick(ctx: StageContext) -> dict[str, Any]:
    steps = int(ctx.input.get("steps", 20))
    for step in range(steps):
        time.sleep(float(ctx.input.get("delay", 0.03)))
        ctx.progress((step + 1) / steps, f"tick {step + 1}/{steps}")
    return {"ticks": steps}


LOCAL = [quick, files, gated, ticker]


# --- the app under test ----------------------------------------------------------------


@dataclass
class Harness:
    client: TestClient
    vigia: Vigia
    #: Plaintext keys by who holds them.
    keys: dict[str, str]
    key_ids: dict[str, str]

    def headers(self, who: str = "submitter") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def submit(self, pipeline: str, job_input: Any = None, who: str = "submitter", **body: Any) -> dict[str, Any]:
        response = self.client.post(
            f"{API}/pipelines/{pipeline}/jobs", json={"input": job_input, **body}, headers=self.headers(who)
        )
        assert response.status_code == 202, response.text
        return response.json()

    def submit_file(
        self, pipeline: str, data: bytes, filename: str, job_input: Any = None, who: str = "submitter"
    ) -> dict[str, Any]:
        """A multipart submission: the file, and the input as its JSON field."""
        response = self.client.post(
            f"{API}/pipelines/{pipeline}/jobs",
            files={"file": (filename, data, "application/octet-stream")},
            data={"input": json.dumps(job_input or {})},
            headers=self.headers(who),
        )
        assert response.status_code == 202, response.text
        return response.json()

    def job(self, job_id: str, who: str = "submitter") -> dict[str, Any]:
        response = self.client.get(f"{API}/jobs/{job_id}", headers=self.headers(who))
        assert response.status_code == 200, response.text
        return response.json()

    def wait(
        self, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        """Poll the job's status until ``until`` holds (by default: finished)."""
        until = until or (lambda job: job["state"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} never got there: {job}"
            time.sleep(0.03)


@contextlib.contextmanager
def harness(store_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Harness]:
    defaults: dict[str, Any] = {
        "database_url": store_url,
        "data_dir": tmp_path / "data",
        "poll_interval": 0.05,
        "concurrency": 4,
        "lease_seconds": 5,
        "shutdown_grace": 1,
        "max_upload_bytes": 4096,
    }
    settings = Settings(**{**defaults, **overrides})
    vigia = Vigia.from_settings(settings, pipelines=[*ALL, *LOCAL], upgrade=True)
    try:
        keys: dict[str, str] = {}
        key_ids: dict[str, str] = {}
        for who, tenant, role in [
            ("submitter", TENANT, Role.SUBMITTER),
            ("viewer", TENANT, Role.VIEWER),
            ("reviewer", TENANT, Role.REVIEWER),
            ("admin", TENANT, Role.ADMIN),
            ("other", OTHER_TENANT, Role.SUBMITTER),
            ("other_admin", OTHER_TENANT, Role.ADMIN),
            ("revoked", TENANT, Role.ADMIN),
        ]:
            issued = issue()
            key_ids[who] = vigia.keys.create(issued, tenant=tenant, role=role, name=who, now=time.time()).id
            keys[who] = issued.plaintext
        vigia.keys.revoke(key_ids["revoked"], time.time())
        with TestClient(create_app(vigia), raise_server_exceptions=False) as client:
            try:
                yield Harness(client, vigia, keys, key_ids)
            finally:
                release_all_gates()
    finally:
        vigia.close()


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is our one error shape with this status (and code); returns its error."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def problem_fields(error: dict[str, Any]) -> list[str]:
    return [problem["field"] for problem in error["details"].get("problems", [])]


#: A pressure-injury case of mild risk, for tests that need one to carry a photo.
MILD_CASE = {
    "patient_code": "PT-MILD",
    "braden": {
        "sensory_perception": 3,
        "moisture": 3,
        "activity": 3,
        "mobility": 3,
        "nutrition": 3,
        "friction_shear": 2,
    },
}


def label() -> str:
    return uuid.uuid4().hex[:12]


def tiny_png() -> bytes:
    """A real 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
NOT_A_KNOWN_TYPE = b"\x13\x37" + bytes(range(256)) * 2


def blob_files(api: Harness) -> list[Path]:
    root = api.vigia.settings.blob_dir
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


# --- OpenAPI ------------------------------------------------------------------------------
