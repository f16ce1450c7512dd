"""A settlement and dispatch planning in memory: transitions applied to snapshots, claims
made and refused, ready runs with their work. No store."""

from __future__ import annotations

from typing import Any

from vigia import dispatch
from vigia.context import StageContext
from vigia.job import EventType, Job, JobState, StageRun, StageState
from vigia.orchestrator import StageOutcome, on_outcome, plan_job
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.settlement import Settlement
from vigia.store.base import Dispatch, Snapshot, StageWork
from vigia.submission import new_job

NOW = 1_700_000_000.0


def noop(ctx: StageContext) -> None:
    return None


def two_stages() -> Pipeline:
    pipeline = Pipeline("t_settle")
    pipeline.stage("first")(noop)
    pipeline.stage("second")(noop)
    return pipeline


def snapshot(pipeline: Pipeline, job_input: Any = None) -> Snapshot:
    _, submitted = new_job(pipeline, job_input, "fingerprint", tenant="t", priority=0, now=NOW)
    runs = {
        initial.stage: StageRun.ready(
            index + 1, job_id=submitted.job.id, stage=initial.stage, queue=initial.queue, attempts=0, available_at=NOW
        ).evolve(state=initial.state)
        for index, initial in enumerate(plan_job(pipeline))
    }
    return Snapshot(submitted.job, runs)


def settled_first(settlement: Settlement, job: Job, output: Any) -> None:
    claim = dispatch.claimed(settlement.runs[job.id]["first"], "worker-1", 30.0, NOW)
    assert settlement.record_claim(claim)
    outcome = StageOutcome(
        run_id=claim.id,
        job_id=job.id,
        stage="first",
        attempt=claim.attempts,
        status="succeeded",
        started_at=NOW,
        finished_at=NOW + 1,
        output=output,
    )
    pipeline = settlement.pipeline_for(settlement.jobs[job.id])
    assert pipeline is not None
    assert settlement.apply(on_outcome(pipeline, settlement.jobs[job.id], settlement.runs[job.id], outcome, NOW, 0.0))


def test_a_claim_and_an_outcome_gather_one_write_with_events_in_order() -> None:
    pipeline = two_stages()
    state = snapshot(pipeline, {"n": 1})
    settlement = Settlement({state.job.id: state}, NOW, Registry([pipeline]))
    settled_first(settlement, state.job, {"done": 1})

    events = settlement.writes.events
    assert [event.seq for event in events] == list(range(2, 2 + len(events)))
    assert [event.type for event in events[:2]] == [EventType.JOB_STARTED, EventType.STAGE_STARTED]
    assert EventType.STAGE_SUCCEEDED in [event.type for event in events]
    assert settlement.jobs[state.job.id].state is JobState.RUNNING
    assert settlement.jobs[state.job.id].last_seq == events[-1].seq
    first, second = state.runs["first"].id, state.runs["second"].id
    assert settlement.writes.runs[first]["state"] is StageState.SUCCEEDED
    assert settlement.writes.runs[second]["state"] is StageState.QUEUED
    # The second stage became ready: it is what a distributed executor sends next.
    assert [(item.run_id, item.stage) for item in settlement.settled.ready] == [(second, "second")]
    assert [note.action for note in settlement.audits] == ["job.running"]  # every change of state is audited


def test_a_stale_claim_is_refused_and_writes_nothing() -> None:
    pipeline = two_stages()
    state = snapshot(pipeline)
    settlement = Settlement({state.job.id: state}, NOW, Registry([pipeline]))
    stale = dispatch.claimed(state.runs["first"], "worker-1", 30.0, NOW).evolve(attempts=5)
    assert not settlement.record_claim(stale)
    assert not settlement.writes
    not_ready = dispatch.claimed(state.runs["second"], "worker-1", 30.0, NOW)  # still pending
    assert not settlement.record_claim(not_ready)
    assert not settlement.writes


def test_a_job_of_a_pipeline_not_registered_here_fails_with_an_audit_note() -> None:
    pipeline = two_stages()
    state = snapshot(pipeline)
    settlement = Settlement({state.job.id: state}, NOW, Registry())
    assert settlement.pipeline_for(state.job) is None
    job = settlement.jobs[state.job.id]
    assert job.state is JobState.FAILED
    assert job.error_type == "PipelineUnavailable"
    assert [note.action for note in settlement.audits] == ["job.failed"]
    assert settlement.settled.finished == [job]


def test_dispatched_runs_are_marked_sent_and_carry_their_upstream_outputs() -> None:
    pipeline = two_stages()
    state = snapshot(pipeline, {"n": 2})
    settlement = Settlement({state.job.id: state}, NOW, Registry([pipeline]))
    settled_first(settlement, state.job, {"done": 2})
    settlement.mark_dispatched()
    [ready] = settlement.settled.ready
    assert settlement.writes.runs[ready.run_id]["dispatched_at"] == NOW
    job = settlement.jobs[state.job.id]
    with_work = dispatch.with_work(pipeline, job, settlement.runs[job.id], ready)
    assert with_work.work == StageWork(job.id, 0, {"n": 2}, {"first": {"done": 2}}, "t")


def test_a_planned_claim_needs_the_outputs_and_a_known_stage() -> None:
    pipeline = two_stages()
    registry = Registry([pipeline])
    item = Dispatch(7, "default", pipeline.name, "second", StageWork("j" * 32, 1, None, {"first": {}}))
    claim = dispatch.planned_claim(registry, item, "worker-1", 30.0, NOW)
    assert claim is not None
    assert (claim.id, claim.state, claim.attempts, claim.lease_owner, claim.lease_until) == (
        7,
        StageState.RUNNING,
        2,
        "worker-1",
        NOW + 30.0,
    )
    unknown_outputs = Dispatch(7, "default", pipeline.name, "second", StageWork("j" * 32, 1, None, None))
    assert dispatch.planned_claim(registry, unknown_outputs, "worker-1", 30.0, NOW) is None
    unknown_stage = Dispatch(7, "default", pipeline.name, "third", StageWork("j" * 32, 1, None, {}))
    assert dispatch.planned_claim(registry, unknown_stage, "worker-1", 30.0, NOW) is None
    # A first stage needs no outputs: the store's dispatch, which knows none, gets an empty set.
    first = Dispatch(8, "default", pipeline.name, "first", StageWork("j" * 32, 0, None, None))
    assert dispatch.first_stage_work(registry, first).work == StageWork("j" * 32, 0, None, {})
    assert dispatch.first_stage_work(registry, unknown_outputs) == unknown_outputs
