"""The embedded executor end to end, on SQLite and PostgreSQL, with real threads and timers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tests.pipelines import ALL, journal
from vigia import EventType, JobState, Settings, StageState, Vigia
from vigia.exceptions import IdempotencyConflict, InvalidTransition
from vigia.store.base import JobFilter

T = TypeVar("T")


@pytest.fixture
def app(store_url: str, tmp_path) -> Iterator[Vigia]:
    journal.clear()
    settings = Settings(
        database_url=store_url,
        data_dir=tmp_path,
        concurrency=4,
        queue_concurrency={"narrow": 1},
        poll_interval=0.05,
        lease_seconds=5,
        shutdown_grace=1,
    )
    vigia = Vigia.from_settings(settings, pipelines=ALL, upgrade=True)
    yield vigia
    vigia.close()


def run(app: Vigia, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on a fresh loop, stopping the app's workers on the way out."""

    async def scenario() -> T:
        try:
            return await coroutine
        finally:
            await app.stop()

    return asyncio.run(scenario())


def test_parallel_branches_overlap_and_join_waits_for_both(app: Vigia) -> None:
    async def scenario():
        await app.start()
        job = await app.submit("t_parallel", {"label": "p"})
        return await app.wait(job.id, timeout=30)

    job = run(app, scenario())
    assert job.state is JobState.SUCCEEDED
    assert job.result == {"seen": ["left", "right"]}
    assert journal.peak["parallel"] == 2, "both branches should have run at the same time"
    starts = journal.order("start")
    assert set(starts) == {"p:left", "p:right"}


def test_queue_concurrency_is_a_hard_bound(app: Vigia) -> None:
    async def scenario():
        await app.start()
        jobs = [await app.submit("t_narrow", {"label": f"n{i}"}) for i in range(4)]
        return [await app.wait(job.id, timeout=30) for job in jobs]

    finished = run(app, scenario())
    assert all(job.state is JobState.SUCCEEDED for job in finished)
    assert journal.peak["narrow"] == 1


def test_higher_priority_runs_first(app: Vigia) -> None:
    async def scenario():
        await app.start(workers=False)
        low = [await app.submit("t_narrow", {"label": f"low{i}"}, priority=0) for i in range(3)]
        high = await app.submit("t_narrow", {"label": "high"}, priority=10)
        await app.stop()
        await app.start()
        for job in [*low, high]:
            await app.wait(job.id, timeout=30)

    run(app, scenario())
    assert journal.order()[0] == "high:work"
    assert journal.order()[1:] == ["low0:work", "low1:work", "low2:work"]


def test_delayed_retry_holds_no_worker(app: Vigia) -> None:
    async def scenario():
        await app.start(workers=False)
        waiting = await app.submit("t_retry_later", {"label": "a", "after": 1.0})
        await app.start()
        await asyncio.sleep(0.3)  # a's first attempt has failed and waits for its retry
        other = await app.submit("t_narrow", {"label": "b"})
        return await app.wait(waiting.id, timeout=30), await app.wait(other.id, timeout=30)

    waiting, other = run(app, scenario())
    assert waiting.state is JobState.SUCCEEDED and other.state is JobState.SUCCEEDED
    # The narrow queue has one slot: b could only run in between if a's retry did not hold it.
    assert journal.order() == ["a:flaky:1", "b:work", "a:flaky:2"]


def test_timeouts_are_enforced_for_async_and_sync_stages(app: Vigia) -> None:
    async def scenario():
        await app.start()
        job = await app.submit("t_timeouts", {})
        job = await app.wait(job.id, timeout=30)
        return job, {run.stage: run for run in await app.get_runs(job.id)}

    job, runs = run(app, scenario())
    assert job.state is JobState.DEAD
    assert job.error_type == "StageTimeout"
    assert runs["slow_async"].attempts == 2
    assert runs["slow_async"].state is StageState.FAILED
    assert runs["slow_sync"].error_type == "StageTimeout"
    assert journal.flags.get("slow_sync_saw_cancel") is True


@pytest.mark.parametrize(
    ("mode", "state", "optional_state"),
    [
        ("ok", JobState.SUCCEEDED, StageState.SUCCEEDED),
        ("optional_fails", JobState.DEGRADED, StageState.FAILED),
        ("optional_skips", JobState.DEGRADED, StageState.SKIPPED),
        ("essential_dies", JobState.DEAD, StageState.SUCCEEDED),
        ("essential_rejects", JobState.FAILED, StageState.SUCCEEDED),
    ],
)
def test_degradation_and_dead_lettering(app: Vigia, mode: str, state: JobState, optional_state: StageState) -> None:
    async def scenario():
        await app.start()
        job = await app.submit("t_outcomes", {"mode": mode})
        job = await app.wait(job.id, timeout=30)
        return job, {run.stage: run for run in await app.get_runs(job.id)}

    job, runs = run(app, scenario())
    assert job.state is state
    assert runs["optional"].state is optional_state
    if state is JobState.DEGRADED:
        assert job.result == {"optional_seen": False}
        assert job.progress == 100
    if mode == "essential_dies":
        assert runs["essential"].attempts == 2
        assert job.error_type == "ConnectionError"
        assert job.progress < 100
    if mode == "essential_rejects":
        assert runs["essential"].attempts == 1
        assert job.error_type == "Permanent"


def test_cancel_stops_a_running_stage_and_dispatches_nothing_more(app: Vigia) -> None:
    async def scenario():
        await app.start()
        job = await app.submit("t_long", {"label": "c"})
        async for event in app.events(job.id):
            if event.type is EventType.STAGE_PROGRESS:
                break
        cancelled = await app.cancel(job.id)
        await asyncio.sleep(1.0)
        return cancelled, await app.get_job(job.id), {run.stage: run for run in await app.get_runs(job.id)}

    cancelled, job, runs = run(app, scenario())
    assert cancelled.state is JobState.CANCELLED
    assert job.state is JobState.CANCELLED
    assert journal.flags.get("c:first:saw_cancel") is True
    assert runs["first"].state is StageState.CANCELLED
    assert runs["second"].state is StageState.CANCELLED
    assert runs["second"].attempts == 0
    with pytest.raises(InvalidTransition):
        run(app, app.cancel(job.id))


def test_events_are_gap_free_resumable_and_progress_is_monotonic(app: Vigia) -> None:
    async def scenario():
        await app.start()
        job = await app.submit("t_parallel", {"label": "e"})
        everything = [event async for event in app.events(job.id)]
        resumed = [event async for event in app.events(job.id, after=5)]
        return everything, resumed

    everything, resumed = run(app, scenario())
    assert [event.seq for event in everything] == list(range(1, len(everything) + 1))
    assert resumed == everything[5:]
    progress = [event.progress for event in everything]
    assert progress == sorted(progress)
    assert progress[-1] == 100 and all(value < 100 for value in progress[:-1])
    assert everything[0].type is EventType.JOB_QUEUED
    assert everything[-1].type is EventType.JOB_FINISHED and everything[-1].state is JobState.SUCCEEDED
    assert any(event.type is EventType.STAGE_PROGRESS and event.stage == "left" for event in everything)


def test_idempotent_submission(app: Vigia) -> None:
    async def scenario():
        await app.start(workers=False)
        first = await app.submit("t_narrow", {"label": "i"}, idempotency_key="k-1")
        again = await app.submit("t_narrow", {"label": "i"}, idempotency_key="k-1")
        with pytest.raises(IdempotencyConflict):
            await app.submit("t_narrow", {"label": "other"}, idempotency_key="k-1")
        page = await app.list_jobs(JobFilter(pipeline="t_narrow"))
        return first, again, page

    first, again, page = run(app, scenario())
    assert again.id == first.id
    assert [job.id for job in page.jobs] == [first.id]
