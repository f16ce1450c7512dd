"""`vigia reviews`, `vigia dlq` and `vigia monitor` as real subprocesses, on the local store
and against a real `vigia serve` (--url)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.acceptance.test_serve import describe, run_vigia, start_server, stop, vigia_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return vigia_env(VIGIA_PIPELINES="tests.pipelines:ALL", PYTHONPATH=str(ROOT))


def submit(pipeline: str, job_input: dict[str, object], data_dir: Path, url: str) -> str:
    result = run_vigia(
        "submit",
        pipeline,
        "--input",
        json.dumps(job_input),
        "--url",
        url,
        "--data-dir",
        data_dir,
        cwd=data_dir.parent,
        env=env(),
    )
    assert result.returncode == 0, describe(result)
    return result.stdout.strip()


def wait_state(job_id: str, data_dir: Path, wanted: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = run_vigia("status", job_id, "--json", "--data-dir", data_dir, cwd=data_dir.parent, env=env())
        if result.returncode == 0 and json.loads(result.stdout)["state"] == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never became {wanted}")


def test_reviews_dead_letters_and_monitor_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, tmp_path / "serve.log", env=env())
    try:
        url = server.url
        doubtful = submit("t_confidence", {"patient_code": "PT-1", "confidence": 0.2}, data_dir, url)
        dead = submit("t_critical", {"patient_code": "PT-2"}, data_dir, url)
        wait_state(doubtful, data_dir, "succeeded")
        wait_state(dead, data_dir, "dead")

        def vigia(*args: object) -> object:
            return run_vigia(*args, cwd=tmp_path, env=env())

        listed = vigia("reviews", "list", "--json", "--url", url, "--data-dir", data_dir)
        assert listed.returncode == 0, describe(listed)
        items = json.loads(listed.stdout)["reviews"]
        assert sorted(item["kind"] for item in items) == ["failure", "result"]
        result_review = next(item for item in items if item["kind"] == "result")

        acked = vigia("reviews", "ack", result_review["id"], "--url", url, "--data-dir", data_dir)
        assert acked.returncode == 0 and "acknowledged" in acked.stdout, describe(acked)
        again = vigia("reviews", "ack", result_review["id"], "--url", url, "--data-dir", data_dir)
        assert again.returncode == 1 and "error:" in again.stderr and "Traceback" not in again.stderr
        resolved = vigia("reviews", "resolve", result_review["id"], "--note", "checked by hand", "--data-dir", data_dir)
        assert resolved.returncode == 0 and "resolved by cli:" in resolved.stdout, describe(resolved)

        dlq = vigia("dlq", "list", "--json", "--data-dir", data_dir)
        assert [item["job"]["id"] for item in json.loads(dlq.stdout)["jobs"]] == [dead], describe(dlq)
        stats = vigia("dlq", "stats", "--json", "--url", url, "--data-dir", data_dir)
        assert json.loads(stats.stdout)["by_stage"] == {"vital_check": 1}, describe(stats)
        for where in (["--url", url], []):  # through the server, and on the local store
            by_stage = vigia("dlq", "stats", "--stage", "vital_check", "--json", *where, "--data-dir", data_dir)
            assert by_stage.returncode == 0 and "Traceback" not in by_stage.stderr, describe(by_stage)
            assert json.loads(by_stage.stdout)["total"] == 1, describe(by_stage)
        refused = vigia("dlq", "purge", "--data-dir", data_dir)
        assert refused.returncode == 2 and "--all" in refused.stderr
        retried = vigia("dlq", "retry", dead, "--url", url, "--data-dir", data_dir)
        assert retried.returncode == 0 and "retried 1 job(s)" in retried.stdout, describe(retried)
        wait_state(dead, data_dir, "dead")  # it fails again, as it always does
        purged = vigia("dlq", "purge", "--pipeline", "t_critical", "--yes", "--url", url, "--data-dir", data_dir)
        assert purged.returncode == 0 and "purged 1 job(s)" in purged.stdout, describe(purged)

        probe = vigia("monitor", "--once", "--json", "--url", url, "--data-dir", data_dir)
        document = json.loads(probe.stdout)
        assert probe.returncode == {"ok": 0, "warning": 1, "critical": 2}[document["health"]], describe(probe)
        assert {queue["name"] for queue in document["queues"]} >= {"default", "notifications"}

        verified = vigia("audit", "verify", "--data-dir", data_dir)
        assert verified.returncode == 0 and "audit log intact" in verified.stdout, describe(verified)
    finally:
        stop(server.process)

    unreachable = run_vigia("monitor", "--once", "--url", "http://127.0.0.1:9", cwd=tmp_path, env=env())
    assert unreachable.returncode == 3 and "unreachable" in unreachable.stderr, describe(unreachable)
