"""Situations that once stopped the engine or misled a client (found in review)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vigia import JobState, Pipeline, Settings, StageContext, Vigia
from vigia.coordinator import Coordinator, JobRequest
from vigia.exceptions import InvalidInput
from vigia.registry import Registry
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore

retired = Pipeline("t_retired")


@retired.stage()
def only(ctx: StageContext) -> None:
    return None


seen = Pipeline("t_seen")


@seen.stage(after=())
def left(ctx: StageContext) -> str:
    return "left"


@seen.stage(after=())
def right(ctx: StageContext) -> dict[str, list[str]]:
    return {"visible": sorted(ctx.outputs)}


@seen.stage(after=("left", "right"))
def joined(ctx: StageContext) -> dict[str, list[str]]:
    return {"visible": sorted(ctx.outputs)}


def _fussy(job_input: Any) -> None:
    if job_input.get("boom"):
        raise KeyError("missing")  # a validator's own bug, not an InvalidInput


fussy = Pipeline("t_fussy", validate_input=_fussy)
fussy.stage("only")(lambda ctx: None)


def test_a_job_of_a_pipeline_this_process_lacks_fails_with_the_reason_and_others_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, poll_interval=0.05)
    store = SQLJobStore(Database(settings.database_url))
    store.database.upgrade()
    orphan = Coordinator(store, Registry([retired])).submit("t_retired", {}).job
    store.database.close()

    async def scenario() -> tuple[Any, Any]:
        vigia = Vigia.from_settings(settings, pipelines=[seen])  # t_retired is not registered here
        async with vigia:
            other = await vigia.submit("t_seen", {})
            return await vigia.wait(orphan.id, timeout=30), await vigia.wait(other.id, timeout=30)

    orphaned, other = asyncio.run(scenario())
    assert orphaned.state is JobState.FAILED
    assert orphaned.error_type == "PipelineUnavailable"
    assert "t_retired" in (orphaned.error_message or "")
    assert other.state is JobState.SUCCEEDED


def test_a_stage_sees_only_the_outputs_of_the_stages_it_depends_on(tmp_path: Path) -> None:
    async def scenario() -> Any:
        vigia = Vigia.from_settings(Settings(data_dir=tmp_path, poll_interval=0.05), pipelines=[seen])
        async with vigia:
            job = await vigia.wait((await vigia.submit("t_seen", {})).id, timeout=30)
            return job, {run.stage: run.output for run in await vigia.get_runs(job.id)}

    job, outputs = asyncio.run(scenario())
    assert job.state is JobState.SUCCEEDED
    assert outputs["right"] == {"visible": []}  # `left` may have finished first: still not visible
    assert job.result == {"visible": ["left", "right"]}


def test_following_from_beyond_the_last_event_ends_when_the_job_ends(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], JobState]:
        vigia = Vigia.from_settings(Settings(data_dir=tmp_path, poll_interval=0.05), pipelines=[seen])
        async with vigia:
            job = await vigia.submit("t_seen", {})
            followed = [event async for event in vigia.events(job.id, after=10_000)]
            return followed, (await vigia.get_job(job.id)).state

    followed, state = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert followed == []
    assert state is JobState.SUCCEEDED


def test_a_failing_validator_fails_only_its_own_submission(tmp_path: Path) -> None:
    store = SQLJobStore(Database(Settings(data_dir=tmp_path).database_url))
    store.database.upgrade()
    coordinator = Coordinator(store, Registry([fussy]))
    outcomes = coordinator.submit_many(
        [
            JobRequest("t_fussy", {"n": 1}, tenant="a"),
            JobRequest("t_fussy", {"boom": True}, tenant="b"),
            JobRequest("t_fussy", {"n": 2}, tenant="a"),
        ]
    )
    store.database.close()
    assert [type(outcome).__name__ for outcome in outcomes] == ["Submitted", "InvalidInput", "Submitted"]
    assert isinstance(outcomes[1], InvalidInput)
    assert "KeyError" in outcomes[1].message


@pytest.mark.parametrize(
    ("environment", "arguments", "status"),
    [
        ({"VIGIA_LOG_LEVEL": "verbose"}, ["jobs"], 2),
        ({"VIGIA_CONCURRENCY": "many"}, ["jobs"], 2),
        ({}, ["submit", "demo", "--input", '{"a": NaN}'], 2),
        ({}, ["submit", "demo", "--input", "[" * 5000 + "]" * 5000], 2),
    ],
)
def test_cli_configuration_and_input_errors_are_one_line(
    tmp_path: Path, environment: dict[str, str], arguments: list[str], status: int
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("VIGIA_")}
    env.update(environment, VIGIA_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "vigia.cli", *arguments],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
