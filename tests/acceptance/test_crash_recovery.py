"""Kill -9 a real `vigia worker` process in the middle of a run, start another, and every
unfinished job finishes; stages that had finished are not run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vigia import JobState, Settings, StageState
from vigia.coordinator import Coordinator
from vigia.registry import Registry
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore
from vigia.workloads.demo import pipeline as demo

LEASE_SECONDS = 2.0
JOBS = 12


def start_worker(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VIGIA_DATA_DIR": str(data_dir),
        "VIGIA_LEASE_SECONDS": str(LEASE_SECONDS),
        "VIGIA_POLL_INTERVAL": "0.1",
        "VIGIA_CONCURRENCY": "6",
        "VIGIA_SHUTDOWN_GRACE": "0",
    }
    env.pop("VIGIA_DATABASE_URL", None)
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "vigia.cli", "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def store(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    store = SQLJobStore(Database(settings.database_url))
    store.database.upgrade()
    yield store
    store.database.close()


def runs_by_state(store: SQLJobStore, job_ids: list[str]) -> dict[StageState, int]:
    counts: dict[StageState, int] = {}
    for job_id in job_ids:
        for run in store.get_runs(job_id):
            counts[run.state] = counts.get(run.state, 0) + 1
    return counts


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_finishes_every_job(tmp_path: Path, store: SQLJobStore) -> None:
    coordinator = Coordinator(store, Registry([demo]))
    job_ids = [coordinator.submit("demo", {"pace": 0.05}).job.id for _ in range(JOBS)]
    log = tmp_path / "worker.log"

    first = start_worker(tmp_path, log)
    try:
        # Wait until some stages have finished and others are mid-run.
        wait_for(
            lambda: (
                runs_by_state(store, job_ids).get(StageState.SUCCEEDED, 0) >= 4
                and runs_by_state(store, job_ids).get(StageState.RUNNING, 0) >= 2
            ),
            timeout=60,
            what="stages to be running",
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL

    before = {job_id: {run.stage: run for run in store.get_runs(job_id)} for job_id in job_ids}
    orphaned = [
        (job_id, stage)
        for job_id, runs in before.items()
        for stage, run in runs.items()
        if run.state is StageState.RUNNING
    ]
    finished_before = [
        (job_id, stage, run.finished_at)
        for job_id, runs in before.items()
        for stage, run in runs.items()
        if run.state is StageState.SUCCEEDED
    ]
    assert orphaned, "the kill should have left stage runs mid-flight"
    assert any(store.get_job(job_id).state is not JobState.SUCCEEDED for job_id in job_ids)

    second = start_worker(tmp_path, log)
    try:
        wait_for(
            lambda: all(store.get_job(job_id).state.is_terminal for job_id in job_ids),
            timeout=120,
            what="every job to finish after the restart",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert second.returncode == 0, log.read_text()

    states = {store.get_job(job_id).state for job_id in job_ids}
    assert states == {JobState.SUCCEEDED}, log.read_text()
    for job_id, stage in orphaned:
        run = {r.stage: r for r in store.get_runs(job_id)}[stage]
        assert run.attempts == 2, f"{stage} of {job_id} should have been taken back once"
        messages = [e.message or "" for e in store.events_after(job_id) if e.stage == stage]
        assert any("LeaseExpired" in message for message in messages)
    for job_id, stage, finished_at in finished_before:
        run = {r.stage: r for r in store.get_runs(job_id)}[stage]
        assert run.attempts == 1 and run.finished_at == finished_at, f"{stage} of {job_id} ran again"
    for job_id in job_ids:
        seqs = [event.seq for event in store.events_after(job_id)]
        assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.slow
def test_sigterm_hands_running_stages_back_without_waiting_for_leases(tmp_path: Path, store: SQLJobStore) -> None:
    coordinator = Coordinator(store, Registry([demo]))
    job_ids = [coordinator.submit("demo", {"pace": 0.2}).job.id for _ in range(3)]
    log = tmp_path / "worker.log"
    worker = start_worker(tmp_path, log)
    try:
        wait_for(lambda: runs_by_state(store, job_ids).get(StageState.RUNNING, 0) >= 3, 60, "stages to run")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert worker.returncode == 0, log.read_text()
    after = runs_by_state(store, job_ids)
    assert StageState.RUNNING not in after, after
    # Handed back, not failed: the attempt does not count against the stage.
    for job_id in job_ids:
        for run in store.get_runs(job_id):
            if run.state is StageState.QUEUED:
                assert run.attempts == 0
                assert run.lease_owner is None
