"""The `vigia` command on a local job store (no server, except to try a revoked key).

Every command is a real subprocess without a terminal (stdin from /dev/null, output to
pipes), as in a script or a CI job.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import typer

from tests.acceptance.test_serve import (
    DEMO_STAGES,
    JOB_ID,
    KEY,
    assert_one_line_error,
    describe,
    result_json,
    run_vigia,
    start_server,
    stop,
)
from vigia.api.auth import KEY_CACHE_SECONDS
from vigia.cli import app

PRINTED_KEY = re.compile(r"^vigia_[0-9a-f]{12}_")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose job store has been created with `vigia db upgrade`."""
    path = tmp_path / "data"
    result = run_vigia("db", "upgrade", "--data-dir", path, cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    return path


def test_db_upgrade_creates_the_store_and_can_run_again(tmp_path: Path) -> None:
    path = tmp_path / "data"
    for _ in range(2):
        result = run_vigia("db", "upgrade", "--data-dir", path, cwd=tmp_path)
        assert result.returncode == 0, describe(result)
        assert "up to date" in result.stdout
        assert result.stderr == ""
    assert (path / "vigia.db").is_file()
    assert not (tmp_path / ".vigia").exists(), "--data-dir was not honoured"


@pytest.mark.slow
def test_keys_create_list_revoke_and_a_revoked_key_is_refused(tmp_path: Path, data_dir: Path) -> None:
    created = run_vigia(
        "keys", "create", "--role", "viewer", "--tenant", "t1", "--name", "n", "--data-dir", data_dir, cwd=tmp_path
    )
    assert created.returncode == 0, describe(created)
    printed = created.stdout.splitlines()
    assert len(printed) == 1, describe(created)
    key = printed[0]
    assert PRINTED_KEY.match(key), describe(created)
    assert KEY.fullmatch(key), describe(created)
    key_id, secret = key.split("_", 2)[1:]
    assert key_id in created.stderr

    listed = run_vigia("keys", "list", "--data-dir", data_dir, cwd=tmp_path)
    assert listed.returncode == 0, describe(listed)
    row = next((line for line in listed.stdout.splitlines() if key_id in line), None)
    assert row is not None, describe(listed)
    assert re.search(r"\bt1\b.*\bviewer\b.*\bn\b", row), describe(listed)
    assert secret not in listed.stdout + listed.stderr
    assert secret[:12] not in listed.stdout + listed.stderr

    # A server on this data dir: keys exist, so it creates no admin key of its own.
    server = start_server(data_dir, tmp_path / "serve.log")
    try:
        assert not server.key_file.exists()
        with server.http(key) as http:
            assert http.get("/jobs").status_code == 200
            refused = http.post("/pipelines/demo/jobs", json={"input": {"pace": 0}})
            assert refused.status_code == 403, refused.text  # a viewer may not submit
            assert refused.json()["error"]["code"] == "permission_denied"

            revoked = run_vigia("keys", "revoke", key_id, "--data-dir", data_dir, cwd=tmp_path)
            assert revoked.returncode == 0, describe(revoked)
            assert key_id in revoked.stdout
            assert "revoked" in revoked.stdout

            # A server that verified the key moments ago may trust it for KEY_CACHE_SECONDS more.
            deadline = time.monotonic() + min(KEY_CACHE_SECONDS, 15.0) + 2.0
            while (response := http.get("/jobs")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert response.status_code == 401, f"the revoked key still works: {response.text}"
            assert response.json()["error"]["code"] == "unauthenticated"
            assert http.get("/jobs").status_code == 401
    finally:
        stop(server.process)

    listed = run_vigia("keys", "list", "--data-dir", data_dir, cwd=tmp_path)
    assert listed.returncode == 0, describe(listed)
    row = next(line for line in listed.stdout.splitlines() if key_id in line)
    assert not row.rstrip().endswith("-"), f"the key should show when it was revoked:\n{listed.stdout}"


def test_keys_revoke_of_an_unknown_key_fails_with_one_error_line(tmp_path: Path, data_dir: Path) -> None:
    result = run_vigia("keys", "revoke", "0123456789ab", "--data-dir", data_dir, cwd=tmp_path)
    assert_one_line_error(result, "0123456789ab", status=1)


def test_keys_create_with_an_unknown_role_fails_clearly(tmp_path: Path, data_dir: Path) -> None:
    result = run_vigia("keys", "create", "--role", "nonsense", "--data-dir", data_dir, cwd=tmp_path)
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert "vigia_" not in result.stdout + result.stderr
    for word in ("--role", "nonsense", "viewer", "submitter", "reviewer", "admin"):
        assert word in result.stderr, describe(result)

    listed = run_vigia("keys", "list", "--data-dir", data_dir, cwd=tmp_path)
    assert listed.returncode == 0, describe(listed)
    assert "nonsense" not in listed.stdout


def test_pipelines_json_lists_demo_with_its_stages(tmp_path: Path) -> None:
    result = run_vigia("pipelines", "--json", cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    described = {item["name"]: item for item in json.loads(result.stdout)}
    assert "demo" in described
    stages = {stage["name"]: stage for stage in described["demo"]["stages"]}
    assert set(stages) == set(DEMO_STAGES)
    assert stages["load"]["depends_on"] == []
    assert set(stages["report"]["depends_on"]) == {"words", "sentences", "language"}
    assert stages["language"]["critical"] is False


def test_submit_with_input_that_is_not_json_exits_2(tmp_path: Path) -> None:
    result = run_vigia("submit", "demo", "--input", "not json", "--data-dir", tmp_path / "data", cwd=tmp_path)
    assert_one_line_error(result, "--input", status=2)
    assert result.stdout == ""


def test_status_of_an_unknown_job_exits_1(tmp_path: Path, data_dir: Path) -> None:
    unknown = "f" * 32
    result = run_vigia("status", unknown, "--data-dir", data_dir, cwd=tmp_path)
    assert_one_line_error(result, unknown, status=1)
    assert result.stdout == ""


def test_local_submit_stores_a_queued_job(tmp_path: Path, data_dir: Path) -> None:
    submitted = run_vigia("submit", "demo", "--input", '{"pace": 0}', "--data-dir", data_dir, cwd=tmp_path)
    assert submitted.returncode == 0, describe(submitted)
    job_id = submitted.stdout.strip()
    assert JOB_ID.match(job_id), describe(submitted)

    status = run_vigia("status", job_id, "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert status.returncode == 0, describe(status)
    body = json.loads(status.stdout)
    assert body["id"] == job_id
    assert body["state"] == "queued"  # nothing runs its stages: no worker, no server


def test_demo_runs_to_the_end_and_its_job_stays_in_the_store(tmp_path: Path, data_dir: Path) -> None:
    result = run_vigia("demo", "--text", "--pace", "0", "--data-dir", data_dir, cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    assert "succeeded" in result.stdout
    match = re.search(r"submitted job ([0-9a-f]{32})", result.stdout)
    assert match, describe(result)
    assert result_json(result.stdout)["sentences"] > 0

    status = run_vigia("status", match.group(1), "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert status.returncode == 0, describe(status)
    body = json.loads(status.stdout)
    assert body["state"] == "succeeded"
    assert {stage["stage"]: stage["state"] for stage in body["stages"]} == dict.fromkeys(DEMO_STAGES, "succeeded")
    assert body["result"]["sentences"] > 0

    jobs = run_vigia("jobs", "list", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert jobs.returncode == 0, describe(jobs)
    assert [job["id"] for job in json.loads(jobs.stdout)["jobs"]] == [match.group(1)]


def test_demo_runs_the_pressure_injury_cases_and_shows_triage_and_escalations(tmp_path: Path, data_dir: Path) -> None:
    result = run_vigia("demo", "--data-dir", data_dir, cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    output = " ".join(result.stdout.split())
    for shown in (
        "sacral erythema, moderate risk: ROUTINE",
        "eschar over the sacrum, very high risk: URGENT",
        "automatic grading unavailable",
        "blurred",
        "detection model: none",
    ):
        assert shown in output, describe(result)
    listed = run_vigia("reviews", "list", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert len(json.loads(listed.stdout)["reviews"]) == 4, describe(listed)


HELP = {
    (): [
        "serve",
        "submit",
        "status",
        "jobs",
        "pipelines",
        "keys",
        "db",
        "demo",
        "worker",
        "reviews",
        "dlq",
        "audit",
        "monitor",
        "docs",
        "coding",
        "scale",
        "deploy",
    ],
    ("serve",): ["--host", "--port", "--concurrency", "--no-workers", "--data-dir"],
    ("submit",): ["--input", "--follow", "--idempotency-key", "--priority", "--url", "--api-key", "--data-dir"],
    ("status",): ["--json", "--url", "--api-key", "--data-dir"],
    ("jobs",): ["list", "purge"],
    ("jobs", "list"): ["--pipeline", "--state", "--limit", "--json", "--url", "--api-key", "--data-dir"],
    ("pipelines",): ["--json", "--url", "--api-key", "--data-dir"],
    ("keys",): ["create", "list", "revoke"],
    ("keys", "create"): ["--role", "--tenant", "--name", "--data-dir"],
    ("keys", "list"): ["--tenant", "--data-dir"],
    ("keys", "revoke"): ["--data-dir"],
    ("db",): ["upgrade"],
    ("db", "upgrade"): ["--data-dir"],
    ("demo",): ["--text", "--documents", "--coding", "--pace", "--flaky", "--data-dir"],
    ("worker",): ["--queues", "--concurrency", "--data-dir"],
    ("reviews",): ["list", "ack", "resolve"],
    ("reviews", "list"): ["--status", "--role", "--limit", "--json", "--url"],
    ("reviews", "ack"): ["--url", "--api-key", "--data-dir"],
    ("reviews", "resolve"): ["--note", "--url", "--data-dir"],
    ("dlq",): ["list", "stats", "retry", "purge"],
    ("dlq", "list"): ["--pipeline", "--stage", "--error-type", "--since", "--until", "--json", "--url"],
    ("dlq", "stats"): ["--pipeline", "--stage", "--error-type", "--json", "--url"],
    ("dlq", "retry"): ["--pipeline", "--stage", "--error-type", "--url"],
    ("dlq", "purge"): ["--pipeline", "--all", "--yes", "--url"],
    ("audit",): ["verify", "export", "prune"],
    ("audit", "verify"): ["--data-dir"],
    ("audit", "export"): ["--since", "--output", "--data-dir"],
    ("audit", "prune"): ["--data-dir"],
    ("monitor",): ["--once", "--json", "--interval", "--url", "--data-dir", "rules"],
    ("monitor", "rules"): ["--output"],
    ("scale",): ["advise"],
    ("scale", "advise"): ["--target-wait", "--window", "--json", "--url", "--data-dir"],
    ("deploy",): ["kubernetes"],
    ("deploy", "kubernetes"): ["--output"],
    ("jobs", "purge"): ["--before", "--pipeline", "--dry-run", "--data-dir"],
    ("docs",): ["add", "list", "show", "search", "delete", "reindex"],
    ("docs", "add"): ["--language", "--follow", "--url", "--api-key", "--data-dir"],
    ("docs", "list"): ["--type", "--lang", "--limit", "--json", "--url"],
    ("docs", "show"): ["--pages", "--json", "--url"],
    ("docs", "search"): ["-k", "--type", "--lang", "--json", "--url"],
    ("docs", "delete"): ["--yes", "--url"],
    ("docs", "reindex"): ["--data-dir"],
    ("coding",): ["report", "show"],
    ("coding", "report"): ["--billed", "--language", "--follow", "--json", "--url", "--api-key", "--data-dir"],
    ("coding", "show"): ["--json", "--url", "--api-key", "--data-dir"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda command: " ".join(command) or "vigia")
def test_help_of_every_command(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run_vigia(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    assert "Usage:" in result.stdout
    for word in HELP[command]:
        assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", result.stdout), f"{word} missing:\n{result.stdout}"


def test_every_command_has_a_help_test() -> None:

    def commands(group: object, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        found = {path}
        for name, sub in getattr(group, "commands", {}).items():
            found |= commands(sub, (*path, name))
        return found

    assert commands(typer.main.get_command(app)) == set(HELP)
