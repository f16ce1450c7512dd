"""Stages with `run_in="process"` in embedded mode: they run in a child process (reused
from job to job), report progress from there, keep their escalations and errors, and are
killed at their timeout or when their job is cancelled, where a thread would run on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.harness import API, harness
from vigia import Pipeline, StageContext
from vigia.exceptions import PipelineDefinitionError
from vigia.store.base import ReviewFilter

pytestmark = pytest.mark.timeout(300)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_process_stage_runs_in_a_reused_child_and_reports_from_there(sqlite_url: str, tmp_path: Path) -> None:
    with harness(sqlite_url, tmp_path) as api:
        ids = []
        for _ in range(2):  # one after the other: the same child serves both
            response = api.submit("t_isolated", {"seconds": 0.3})
            ids.append(response["id"])
            assert api.wait(ids[-1], timeout=120)["state"] == "succeeded"
        outputs = [{run.stage: run.output for run in api.vigia.store.get_runs(job_id)} for job_id in ids]
        events = api.client.get(f"{API}/jobs/{ids[0]}/events?after=0", headers=api.headers())
    pids = {output["spin"]["pid"] for output in outputs}
    assert os.getpid() not in pids
    assert len(pids) <= 2 and outputs[0]["after_spin"]["upstream"] == outputs[0]["spin"]["pid"]
    # Reused: at most one child per stage running at once, never one per attempt.
    assert len({*pids, *(output["after_spin"]["pid"] for output in outputs)}) <= 2
    assert "spinning" in events.text  # progress sent from the child reached the job's events


def test_an_error_and_an_escalation_in_the_child_count_as_in_a_thread(sqlite_url: str, tmp_path: Path) -> None:
    with harness(sqlite_url, tmp_path) as api:
        response = api.submit("t_isolated", {"seconds": 0, "refuse": True})
        job = api.wait(response["id"], timeout=120)
        reviews = api.vigia.oversight.list_reviews(ReviewFilter(job_id=job["id"]))
    assert job["state"] == "failed", job
    assert job["error_type"] == "Permanent" and "refused on purpose" in job["error_message"]
    assert [review.reason for review in reviews if review.kind == "request"] == [
        "the isolated stage asked for a person"
    ]


def test_a_stage_past_its_timeout_is_killed_not_abandoned(sqlite_url: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with harness(sqlite_url, tmp_path) as api:
        response = api.submit("t_stuck", {"pid_file": str(pid_file)})
        job = api.wait(response["id"], timeout=60)
        assert job["state"] in ("failed", "dead"), job
        assert job["error_type"] == "StageTimeout", job
        assert pid_file.exists(), api.client.get(f"{API}/jobs/{job['id']}/events?after=0", headers=api.headers()).text
        child = int(pid_file.read_text())
        # A thread would still be running the loop; the child process is gone.
        wait_until(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie", 10, "the kill")


def test_cancelling_the_job_kills_its_running_child(sqlite_url: str, tmp_path: Path) -> None:
    with harness(sqlite_url, tmp_path) as api:
        response = api.submit("t_isolated", {"seconds": 60})
        job_id = response["id"]
        api.wait(job_id, until=lambda job: job["progress"] > 0, timeout=60)
        # The stage's child (not multiprocessing's resource tracker, also a child).
        children = [child for child in psutil.Process().children() if "spawn_main" in " ".join(child.cmdline())]
        assert children, "the stage runs in a child"
        started = time.monotonic()
        assert api.client.post(f"{API}/jobs/{job_id}/cancel", headers=api.headers()).status_code == 200
        assert api.wait(job_id, timeout=30)["state"] == "cancelled"
        wait_until(
            lambda: not any(child.is_running() and child.status() != "zombie" for child in children), 10, "the kill"
        )
        assert time.monotonic() - started < 10  # not the 60 s the stage meant to spin


def test_a_process_stage_must_be_a_module_level_function() -> None:
    pipeline = Pipeline("t_local")

    def local(ctx: StageContext) -> None:
        return None

    with pytest.raises(PipelineDefinitionError, match="module-level function"):
        pipeline.stage(run_in="process")(local)
        pipeline.validate()
