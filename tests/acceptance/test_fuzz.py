"""Schema fuzzing of every operation of a real `vigia serve`, with an admin key and with a
viewer key, valid and invalid requests generated from its OpenAPI document (schemathesis):
no 5xx, every response as the document says, and the store intact afterwards. Bounded:
a few examples per operation, derandomised so that a failure reproduces."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_serve import KEY, Server, describe, run_vigia, start_server, stop

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: Examples per operation, key and mode: about 1,000 requests in all.
EXAMPLES = 10
#: Streams that never end by themselves (followed elsewhere), and the page of metrics.
SKIPPED = {"GET /api/v1/events", "GET /api/v1/jobs/{job_id}/events"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    base = tmp_path_factory.mktemp("fuzz")
    server = start_server(base / "data", base / "serve.log")
    try:
        created = run_vigia(
            "keys", "create", "--role", "viewer", "--tenant", "default", "--data-dir", base / "data", cwd=base
        )
        found = KEY.search(created.stdout)
        assert created.returncode == 0 and found, describe(created)
        yield server, {"admin": server.admin_key(), "viewer": found.group(0)}
    finally:
        stop(server.process)


def test_no_operation_answers_a_5xx_or_off_its_schema(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    with server.http(keys["admin"]) as http:
        sentinel = http.post("/pipelines/demo/jobs", json={"input": {"pace": 0}}).json()["id"]
        deadline = time.monotonic() + 60
        while (before := http.get(f"/jobs/{sentinel}").json())["state"] != "succeeded":
            assert time.monotonic() < deadline, before
            time.sleep(0.1)
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    tried = 0
    for operation in operations:
        if operation.label in SKIPPED:
            continue
        for who, key in keys.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                tried += 1
                failures.extend(_fuzz(operation, server.url, key, who, mode))
    print(f"fuzzed {tried} operation × key × mode combinations, {EXAMPLES} examples each")
    assert failures == [], "\n".join(failures[:30])

    # The store is intact: the job made before is as it was, the audit chain verifies.
    with server.http(keys["admin"]) as http:
        after = http.get(f"/jobs/{sentinel}").json()
    assert {name: after[name] for name in ("state", "progress", "last_event")} == {
        name: before[name] for name in ("state", "progress", "last_event")
    }
    verified = run_vigia("audit", "verify", "--data-dir", server.data_dir, cwd=Path(server.data_dir).parent)
    assert verified.returncode == 0, describe(verified)


def _fuzz(operation: Any, base_url: str, key: str, who: str, mode: GenerationMode) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        where = f"{operation.label} as {who} ({mode.value}): {case.method} {case.formatted_path} query={case.query}"
        if response.status_code >= 500:
            found.append(f"{where} -> {response.status_code} {response.text[:200]}")
            return
        if response.headers.get("content-type", [""])[0].startswith("application/json") and response.status_code != 404:
            try:
                operation.validate_response(response)
            except Exception as error:  # schemathesis raises a group of failed checks
                found.append(f"{where} -> {response.status_code}, off its schema: {str(error)[:300]}")

    # Unsatisfiable: nothing to make invalid (no parameters, no body): nothing to send.
    with contextlib.suppress(Unsatisfiable):
        run()
    return found
