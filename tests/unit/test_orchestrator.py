"""The orchestrator's pure decisions, tested by value: no store, no clock, no randomness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from vigia.context import StageContext
from vigia.escalation import ReviewKind
from vigia.exceptions import InvalidTransition
from vigia.job import CLAIMABLE_STAGE_STATES, EventType, Job, JobState, StageRun, StageState
from vigia.orchestrator import (
    PROGRESS_CEILING_WHILE_RUNNING,
    InitialRun,
    OutcomeStatus,
    ProgressReport,
    StageOutcome,
    Transition,
    on_cancel,
    on_claimed,
    on_outcome,
    on_progress,
    plan_job,
    ready_stages,
    stage_progress,
)
from vigia.pipeline import Pipeline, Severity, Stage
from vigia.retry import RetryPolicy

NOW = 1_700_000_000.0
JOB_ID = "0000000000000000000000000000abcd"

# --- factories ----------------------------------------------------------------------------


def noop(ctx: StageContext) -> None:
    return None


def stage(name: str, **kwargs: Any) -> Stage:
    return Stage(name=name, function=noop, **kwargs)


def make_job(pipeline: Pipeline, **changes: Any) -> Job:
    job = Job(
        id=JOB_ID,
        tenant="default",
        pipeline=pipeline.name,
        pipeline_version=pipeline.version,
        state=JobState.RUNNING,
        priority=0,
        progress=0.0,
        current_stage=None,
        input={"patient": "p-1"},
        input_hash="hash",
        idempotency_key=None,
        result=None,
        error_type=None,
        error_message=None,
        created_at=NOW - 100.0,
        started_at=NOW - 90.0,
        finished_at=None,
        updated_at=NOW - 90.0,
        last_seq=2,
    )
    return job.evolve(**changes)


def make_runs(pipeline: Pipeline, **overrides: StageState | Mapping[str, Any]) -> dict[str, StageRun]:
    """The runs `plan_job` gives a new job (ids 1, 2, … in definition order), with overrides.

    An override is a state, or a mapping of fields. A RUNNING run gets attempt 1 and a lease
    unless told otherwise.
    """
    runs: dict[str, StageRun] = {}
    for run_id, initial in enumerate(plan_job(pipeline), start=1):
        run = StageRun(
            id=run_id,
            job_id=JOB_ID,
            stage=initial.stage,
            state=initial.state,
            queue=initial.queue,
            priority=0,
            attempts=0,
            available_at=NOW - 100.0,
            lease_owner=None,
            lease_until=None,
            started_at=None,
            finished_at=None,
            duration=None,
            progress=0.0,
            error_type=None,
            error_message=None,
            output=None,
        )
        override = overrides.pop(initial.stage, None)
        if override is not None:
            changes = {"state": override} if isinstance(override, StageState) else dict(override)
            state = changes.get("state", run.state)
            if state is StageState.RUNNING:
                changes = {
                    "attempts": 1,
                    "started_at": NOW - 10.0,
                    "lease_owner": "worker-1",
                    "lease_until": NOW + 20.0,
                    **changes,
                }
            elif state is StageState.SUCCEEDED:
                changes = {"attempts": 1, "progress": 1.0, "output": f"{initial.stage}-out", **changes}
            elif state in (StageState.FAILED, StageState.RETRYING):
                changes = {"attempts": 1, **changes}
            run = run.evolve(**changes)
        runs[initial.stage] = run
    assert not overrides, f"unknown stages in overrides: {sorted(overrides)}"
    return runs


def outcome(
    run: StageRun, status: OutcomeStatus = "succeeded", *, attempt: int | None = None, **fields: Any
) -> StageOutcome:
    return StageOutcome(
        run_id=fields.pop("run_id", run.id),
        job_id=run.job_id,
        stage=run.stage,
        attempt=run.attempts if attempt is None else attempt,
        status=status,
        started_at=NOW - 10.0,
        finished_at=NOW - 1.0,
        **fields,
    )


def failure(run: StageRun, *, retryable: bool = True, **fields: Any) -> StageOutcome:
    fields.setdefault("error_type", "ConnectionError")
    fields.setdefault("error_message", "connection refused")
    return outcome(run, "failed", retryable=retryable, **fields)


def report(
    run: StageRun, fraction: float, message: str | None = "working", *, attempt: int | None = None
) -> ProgressReport:
    return ProgressReport(
        run_id=run.id,
        job_id=run.job_id,
        stage=run.stage,
        attempt=run.attempts if attempt is None else attempt,
        fraction=fraction,
        message=message,
    )


def apply(job: Job, runs: Mapping[str, StageRun], transition: Transition) -> tuple[Job, dict[str, StageRun]]:
    """Write a transition the way a store would (for multi-step scenarios)."""
    updated = dict(runs)
    for name, changes in transition.run_changes.items():
        updated[name] = updated[name].evolve(**changes)
    if transition.job_changes:
        job = job.evolve(**transition.job_changes)
    return job, updated


def claim(
    pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], name: str
) -> tuple[Job, dict[str, StageRun], Transition]:
    """What the store's claim plus `on_claimed` do to one claimable run."""
    run = runs[name]
    assert run.state in CLAIMABLE_STAGE_STATES
    run = run.evolve(state=StageState.RUNNING, attempts=run.attempts + 1, started_at=NOW, progress=0.0)
    runs = {**runs, name: run}
    transition = on_claimed(pipeline, job, run, NOW)
    job, runs = apply(job, runs, transition)
    return job, runs, transition


def event_types(transition: Transition) -> list[EventType]:
    return [event.type for event in transition.events]


SEQUENTIAL = Pipeline("sequential", stages=[stage("a"), stage("b"), stage("c")])

DIAMOND = Pipeline(
    "diamond",
    stages=[
        stage("intake"),
        stage("image", after=("intake",), queue="image_processing"),
        stage("risk", after=("intake",)),
        stage("assess", after=("image", "risk")),
    ],
)

TWO_ROOTS = Pipeline(
    "two_roots",
    stages=[stage("left", after=()), stage("right", after=(), queue="gpu"), stage("join", after=("left", "right"))],
)


# --- plan_job -----------------------------------------------------------------------------


def test_plan_queues_the_first_stage_and_leaves_the_rest_pending() -> None:
    assert plan_job(SEQUENTIAL) == [
        InitialRun("a", StageState.QUEUED, "default"),
        InitialRun("b", StageState.PENDING, "default"),
        InitialRun("c", StageState.PENDING, "default"),
    ]


def test_plan_queues_every_parallel_root_on_its_queue() -> None:
    assert plan_job(TWO_ROOTS) == [
        InitialRun("left", StageState.QUEUED, "default"),
        InitialRun("right", StageState.QUEUED, "gpu"),
        InitialRun("join", StageState.PENDING, "default"),
    ]


# --- on_claimed ---------------------------------------------------------------------------


def test_first_claim_starts_the_job() -> None:
    job = make_job(SEQUENTIAL, state=JobState.QUEUED, started_at=None, progress=0.0)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)

    transition = on_claimed(SEQUENTIAL, job, runs["a"], NOW)

    # The job started when its first stage did (a claim may be announced later, with its outcome).
    assert runs["a"].started_at is not None and runs["a"].started_at != NOW
    assert transition.job_changes == {
        "state": JobState.RUNNING,
        "started_at": runs["a"].started_at,
        "current_stage": "a",
    }
    assert event_types(transition) == [EventType.JOB_STARTED, EventType.STAGE_STARTED]
    started = transition.events[1]
    assert (started.state, started.stage, started.message) == (JobState.RUNNING, "a", "attempt 1")
    assert transition.run_changes == {}


def test_later_claim_only_moves_the_current_stage() -> None:
    job = make_job(SEQUENTIAL, progress=33.33)
    runs = make_runs(SEQUENTIAL, a=StageState.SUCCEEDED, b={"state": StageState.RUNNING, "attempts": 2})

    transition = on_claimed(SEQUENTIAL, job, runs["b"], NOW)

    assert transition.job_changes == {"current_stage": "b"}
    assert event_types(transition) == [EventType.STAGE_STARTED]
    event = transition.events[0]
    assert (event.state, event.stage, event.progress, event.message) == (JobState.RUNNING, "b", 33.33, "attempt 2")


# --- success and what it makes ready -------------------------------------------------------


def test_success_records_output_and_queues_the_next_stage() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], output={"n": 1}), NOW, 0.0)

    assert transition.ignored is None
    assert transition.run_changes["a"] == {
        "finished_at": NOW - 1.0,
        "duration": 9.0,
        "lease_owner": None,
        "lease_until": None,
        "state": StageState.SUCCEEDED,
        "output": {"n": 1},
        "progress": 1.0,
        "error_type": None,
        "error_message": None,
    }
    assert transition.run_changes["b"] == {"state": StageState.QUEUED, "available_at": NOW}
    assert "c" not in transition.run_changes
    assert transition.ready == ["b"]
    assert transition.job_changes == {"progress": 33.33, "current_stage": "b"}
    assert event_types(transition) == [EventType.STAGE_SUCCEEDED]
    assert transition.events[0].stage == "a"
    assert transition.events[0].progress == 33.33


def test_success_after_a_retry_clears_the_previous_error() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(
        SEQUENTIAL,
        a={"state": StageState.RUNNING, "attempts": 2, "error_type": "ConnectionError", "error_message": "refused"},
    )

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], output=1), NOW, 0.0)

    assert transition.run_changes["a"]["state"] is StageState.SUCCEEDED
    assert transition.run_changes["a"]["error_type"] is None
    assert transition.run_changes["a"]["error_message"] is None


def test_join_waits_until_all_its_dependencies_succeeded() -> None:
    job = make_job(DIAMOND)
    runs = make_runs(
        DIAMOND,
        intake=StageState.SUCCEEDED,
        image=StageState.RUNNING,
        risk={"state": StageState.RUNNING, "attempts": 1},
    )

    first = on_outcome(DIAMOND, job, runs, outcome(runs["image"], output="img"), NOW, 0.0)

    assert first.ready == []
    assert "assess" not in first.run_changes
    assert first.job_changes["current_stage"] == "risk"

    job, runs = apply(job, runs, first)
    second = on_outcome(DIAMOND, job, runs, outcome(runs["risk"], output="risk"), NOW + 1.0, 0.0)

    assert second.ready == ["assess"]
    assert second.run_changes["assess"] == {"state": StageState.QUEUED, "available_at": NOW + 1.0}


def test_join_does_not_start_while_a_dependency_is_retrying() -> None:
    job = make_job(DIAMOND)
    runs = make_runs(DIAMOND, intake=StageState.SUCCEEDED, image=StageState.RUNNING, risk=StageState.RETRYING)

    transition = on_outcome(DIAMOND, job, runs, outcome(runs["image"]), NOW, 0.0)

    assert transition.ready == []
    assert "assess" not in transition.run_changes
    assert "state" not in transition.job_changes


def test_a_root_succeeding_does_not_start_the_join_of_two_roots() -> None:
    job = make_job(TWO_ROOTS)
    runs = make_runs(TWO_ROOTS, left=StageState.RUNNING)  # right still queued

    transition = on_outcome(TWO_ROOTS, job, runs, outcome(runs["left"]), NOW, 0.0)

    assert transition.ready == []
    assert set(transition.run_changes) == {"left"}
    assert transition.job_changes["current_stage"] == "right"


def test_success_fans_out_to_parallel_branches() -> None:
    job = make_job(DIAMOND)
    runs = make_runs(DIAMOND, intake=StageState.RUNNING)

    transition = on_outcome(DIAMOND, job, runs, outcome(runs["intake"]), NOW, 0.0)

    assert transition.ready == ["image", "risk"]
    assert transition.run_changes["image"]["state"] is StageState.QUEUED
    assert transition.run_changes["risk"]["state"] is StageState.QUEUED
    assert "assess" not in transition.run_changes


def test_last_success_finishes_the_job_with_the_final_stage_output() -> None:
    job = make_job(SEQUENTIAL, progress=66.67)
    runs = make_runs(SEQUENTIAL, a=StageState.SUCCEEDED, b=StageState.SUCCEEDED, c=StageState.RUNNING)

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["c"], output={"report": "ok"}), NOW, 0.0)

    assert transition.job_changes == {
        "result": {"report": "ok"},
        "state": JobState.SUCCEEDED,
        "finished_at": NOW,
        "progress": 100.0,
        "current_stage": None,
    }
    assert event_types(transition) == [EventType.STAGE_SUCCEEDED, EventType.JOB_FINISHED]
    finished = transition.events[-1]
    assert (finished.state, finished.progress, finished.stage) == (JobState.SUCCEEDED, 100.0, None)


def test_job_result_is_the_last_defined_stage_output_even_if_another_branch_ends_later() -> None:
    job = make_job(TWO_ROOTS, progress=60.0)
    runs = make_runs(
        TWO_ROOTS,
        left={"state": StageState.RUNNING},
        right={"state": StageState.SUCCEEDED, "output": "right-out"},
        join={"state": StageState.SUCCEEDED, "output": "join-out"},
    )

    transition = on_outcome(TWO_ROOTS, job, runs, outcome(runs["left"], output="left-out"), NOW, 0.0)

    assert transition.job_changes["state"] is JobState.SUCCEEDED
    assert transition.job_changes["result"] == "join-out"


# --- failures and retries -----------------------------------------------------------------

RETRYING_PIPELINE = Pipeline(
    "retrying",
    stages=[
        stage("fetch", retry=RetryPolicy(max_attempts=3, base_delay=2.0, factor=3.0, max_delay=100.0, jitter=0.5)),
        stage("parse"),
    ],
)


def test_retryable_failure_with_attempts_left_schedules_a_retry_after_the_backoff() -> None:
    job = make_job(RETRYING_PIPELINE, progress=10.0)
    runs = make_runs(RETRYING_PIPELINE, fetch={"state": StageState.RUNNING, "attempts": 2, "progress": 0.6})
    policy = RETRYING_PIPELINE.node("fetch").stage.retry_policy

    transition = on_outcome(RETRYING_PIPELINE, job, runs, failure(runs["fetch"]), NOW, 0.4)

    expected_delay = 2.0 * 3.0 * (1 - 0.5 * 0.4)  # attempt 2: base * factor, minus 20 % jitter
    assert policy.backoff(2, 0.4) == pytest.approx(expected_delay)
    changes = transition.run_changes["fetch"]
    assert changes["state"] is StageState.RETRYING
    assert changes["available_at"] == pytest.approx(NOW + 4.8)
    assert changes["error_type"] == "ConnectionError"
    assert changes["error_message"] == "connection refused"
    assert changes["progress"] == 0.0
    assert changes["lease_owner"] is None
    assert set(transition.run_changes) == {"fetch"}
    assert transition.ready == []
    assert "state" not in transition.job_changes
    assert "finished_at" not in transition.job_changes
    assert event_types(transition) == [EventType.STAGE_RETRYING]
    message = transition.events[0].message or ""
    assert "attempt 2 of 3" in message
    assert "ConnectionError: connection refused" in message
    assert "retrying in 4.8 s" in message
    assert transition.events[0].progress == 10.0


def test_retry_honours_the_delay_the_stage_asked_for() -> None:
    job = make_job(RETRYING_PIPELINE)
    runs = make_runs(RETRYING_PIPELINE, fetch=StageState.RUNNING)

    transition = on_outcome(
        RETRYING_PIPELINE, job, runs, failure(runs["fetch"], error_type="Retry", retry_after=30.0), NOW, 0.9
    )

    assert transition.run_changes["fetch"]["state"] is StageState.RETRYING
    assert transition.run_changes["fetch"]["available_at"] == NOW + 30.0


@pytest.mark.parametrize(
    ("severity", "last_retried_attempt"),
    [(Severity.CRITICAL, 1), (Severity.HIGH, 2), (Severity.MEDIUM, 3), (Severity.LOW, 3)],
)
def test_severity_default_policy_decides_how_many_retries(severity: Severity, last_retried_attempt: int) -> None:
    pipeline = Pipeline("severe", stages=[stage("s", severity=severity), stage("t")])
    job = make_job(pipeline)

    runs = make_runs(pipeline, s={"state": StageState.RUNNING, "attempts": last_retried_attempt})
    retried = on_outcome(pipeline, job, runs, failure(runs["s"]), NOW, 0.0)
    runs = make_runs(pipeline, s={"state": StageState.RUNNING, "attempts": last_retried_attempt + 1})
    exhausted = on_outcome(pipeline, job, runs, failure(runs["s"]), NOW, 0.0)

    assert retried.run_changes["s"]["state"] is StageState.RETRYING
    # Default backoff: 1 s doubling; rand=0 means no jitter.
    assert retried.run_changes["s"]["available_at"] == NOW + 2.0 ** (last_retried_attempt - 1)
    assert exhausted.run_changes["s"]["state"] is StageState.FAILED
    assert exhausted.job_changes["state"] is JobState.DEAD


DEAD_PIPELINE = Pipeline(
    "dead_end",
    stages=[
        stage("vital", after=(), retry=RetryPolicy(max_attempts=2)),
        stage("waiting", after=()),
        stage("again", after=()),
        stage("busy", after=()),
        stage("join", after=("vital", "waiting", "again", "busy")),
    ],
)


def test_critical_stage_exhausting_its_retries_kills_the_job_and_parks_its_siblings() -> None:
    job = make_job(DEAD_PIPELINE, progress=12.5)
    runs = make_runs(
        DEAD_PIPELINE,
        vital={"state": StageState.RUNNING, "attempts": 2},
        waiting=StageState.QUEUED,
        again=StageState.RETRYING,
        busy=StageState.RUNNING,
    )

    transition = on_outcome(
        DEAD_PIPELINE,
        job,
        runs,
        failure(runs["vital"], error_type="TimeoutError", error_message="model slow"),
        NOW,
        0.0,
    )

    assert transition.run_changes["vital"]["state"] is StageState.FAILED
    assert transition.run_changes["vital"]["error_type"] == "TimeoutError"
    assert transition.run_changes["waiting"] == {"state": StageState.PENDING}
    assert transition.run_changes["again"] == {"state": StageState.PENDING}
    assert "busy" not in transition.run_changes  # running: left to finish
    assert "join" not in transition.run_changes
    assert transition.ready == []
    assert transition.job_changes == {
        "state": JobState.DEAD,
        "finished_at": NOW,
        "progress": 12.5,
        "current_stage": None,
        "error_type": "TimeoutError",
        "error_message": "model slow",
    }
    # A MEDIUM stage failing for good before its third failure goes to a person too.
    assert event_types(transition) == [EventType.STAGE_FAILED, EventType.JOB_ESCALATED, EventType.JOB_FINISHED]
    assert [(draft.kind, draft.stage) for draft in transition.escalations] == [(ReviewKind.FAILURE, "vital")]
    assert "attempt 2 of 2" in (transition.events[0].message or "")
    finished = transition.events[-1]
    assert finished.state is JobState.DEAD
    assert finished.message == "TimeoutError: model slow"


def test_critical_non_retryable_failure_fails_the_job_at_once() -> None:
    job = make_job(RETRYING_PIPELINE)
    runs = make_runs(RETRYING_PIPELINE, fetch=StageState.RUNNING)

    transition = on_outcome(
        RETRYING_PIPELINE,
        job,
        runs,
        failure(runs["fetch"], retryable=False, error_type="Permanent", error_message="bad input"),
        NOW,
        0.0,
    )

    assert transition.run_changes["fetch"]["state"] is StageState.FAILED
    assert transition.job_changes["state"] is JobState.FAILED
    assert transition.job_changes["error_type"] == "Permanent"
    assert transition.job_changes["error_message"] == "bad input"
    assert "parse" not in transition.run_changes
    assert transition.events[-1].type is EventType.JOB_FINISHED
    assert transition.events[-1].state is JobState.FAILED


NON_CRITICAL = Pipeline(
    "non_critical",
    stages=[
        stage("load"),
        stage("enrich", critical=False, retry=RetryPolicy(max_attempts=2)),
        stage("report"),
    ],
)


def test_non_critical_stage_failing_for_good_lets_its_dependents_run() -> None:
    job = make_job(NON_CRITICAL, progress=33.33)
    runs = make_runs(NON_CRITICAL, load=StageState.SUCCEEDED, enrich={"state": StageState.RUNNING, "attempts": 2})

    transition = on_outcome(NON_CRITICAL, job, runs, failure(runs["enrich"]), NOW, 0.0)

    assert transition.run_changes["enrich"]["state"] is StageState.FAILED
    assert transition.run_changes["enrich"]["error_type"] == "ConnectionError"
    assert transition.run_changes["report"] == {"state": StageState.QUEUED, "available_at": NOW}
    assert transition.ready == ["report"]
    assert "state" not in transition.job_changes
    assert transition.job_changes["current_stage"] == "report"
    assert transition.job_changes["progress"] == 66.67
    assert event_types(transition) == [EventType.STAGE_FAILED, EventType.JOB_ESCALATED]
    assert "non-critical" in (transition.events[0].message or "")


def test_non_critical_stage_retries_before_failing() -> None:
    job = make_job(NON_CRITICAL)
    runs = make_runs(NON_CRITICAL, load=StageState.SUCCEEDED, enrich=StageState.RUNNING)

    transition = on_outcome(NON_CRITICAL, job, runs, failure(runs["enrich"]), NOW, 0.0)

    assert transition.run_changes["enrich"]["state"] is StageState.RETRYING
    assert transition.ready == []


def test_job_with_a_failed_non_critical_stage_ends_degraded() -> None:
    job = make_job(NON_CRITICAL, progress=66.67)
    runs = make_runs(
        NON_CRITICAL, load=StageState.SUCCEEDED, enrich={"state": StageState.FAILED}, report=StageState.RUNNING
    )

    transition = on_outcome(NON_CRITICAL, job, runs, outcome(runs["report"], output="the report"), NOW, 0.0)

    assert transition.job_changes["state"] is JobState.DEGRADED
    assert transition.job_changes["progress"] == 100.0
    assert transition.job_changes["result"] == "the report"
    assert transition.events[-1].type is EventType.JOB_FINISHED
    assert transition.events[-1].state is JobState.DEGRADED


def test_failed_non_critical_final_stage_ends_degraded_without_a_result() -> None:
    pipeline = Pipeline(
        "tail", stages=[stage("main"), stage("extra", critical=False, retry=RetryPolicy(max_attempts=1))]
    )
    job = make_job(pipeline, progress=50.0)
    runs = make_runs(pipeline, main=StageState.SUCCEEDED, extra=StageState.RUNNING)

    transition = on_outcome(pipeline, job, runs, failure(runs["extra"]), NOW, 0.0)

    assert transition.job_changes["state"] is JobState.DEGRADED
    assert transition.job_changes["result"] is None
    assert event_types(transition) == [EventType.STAGE_FAILED, EventType.JOB_ESCALATED, EventType.JOB_FINISHED]


# --- skip ---------------------------------------------------------------------------------


def test_skip_on_a_non_critical_stage_records_it_and_goes_on() -> None:
    job = make_job(NON_CRITICAL)
    runs = make_runs(NON_CRITICAL, load=StageState.SUCCEEDED, enrich=StageState.RUNNING)

    transition = on_outcome(
        NON_CRITICAL, job, runs, outcome(runs["enrich"], "skipped", error_message="no image attached"), NOW, 0.0
    )

    assert transition.run_changes["enrich"]["state"] is StageState.SKIPPED
    assert transition.run_changes["enrich"]["error_message"] == "no image attached"
    assert transition.ready == ["report"]
    assert event_types(transition) == [EventType.STAGE_SKIPPED]
    assert transition.events[0].message == "no image attached"

    job, runs = apply(job, runs, transition)
    runs["report"] = runs["report"].evolve(state=StageState.RUNNING, attempts=1)
    end = on_outcome(NON_CRITICAL, job, runs, outcome(runs["report"], output="r"), NOW, 0.0)

    assert end.job_changes["state"] is JobState.DEGRADED
    assert end.job_changes["result"] == "r"


def test_skip_on_a_critical_stage_is_a_permanent_failure() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a={"state": StageState.RUNNING, "attempts": 1})

    transition = on_outcome(
        SEQUENTIAL, job, runs, outcome(runs["a"], "skipped", error_message="nothing to do", retryable=True), NOW, 0.0
    )

    changes = transition.run_changes["a"]
    assert changes["state"] is StageState.FAILED
    assert changes["error_type"] == "SkipNotAllowed"
    assert "a critical stage cannot be skipped" in changes["error_message"]
    assert "nothing to do" in changes["error_message"]
    assert transition.job_changes["state"] is JobState.FAILED  # permanent, not dead
    assert transition.job_changes["error_type"] == "SkipNotAllowed"
    assert transition.ready == []


# --- duplicate and stale deliveries -------------------------------------------------------


def test_outcome_for_an_already_succeeded_run_is_ignored() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.SUCCEEDED, b=StageState.QUEUED)

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], output="again"), NOW, 0.0)

    assert transition.ignored is not None
    assert transition.is_empty
    assert transition.ready == []


def test_outcome_for_another_attempt_is_ignored() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a={"state": StageState.RUNNING, "attempts": 2})

    transition = on_outcome(SEQUENTIAL, job, runs, failure(runs["a"], attempt=1), NOW, 0.0)

    assert transition.ignored is not None
    assert transition.is_empty
    assert transition.run_changes == {}
    assert transition.events == []


def test_outcome_with_the_wrong_run_id_is_ignored() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], run_id=999), NOW, 0.0)

    assert transition.ignored is not None
    assert transition.is_empty


def test_outcome_for_an_unknown_stage_is_ignored() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)
    stray = StageOutcome(
        run_id=1, job_id=JOB_ID, stage="ghost", attempt=1, status="succeeded", started_at=NOW, finished_at=NOW
    )

    transition = on_outcome(SEQUENTIAL, job, runs, stray, NOW, 0.0)

    assert transition.ignored is not None
    assert transition.is_empty


def test_a_second_delivery_after_applying_the_first_changes_nothing() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)
    delivered = outcome(runs["a"], output=1)

    first = on_outcome(SEQUENTIAL, job, runs, delivered, NOW, 0.0)
    job, runs = apply(job, runs, first)
    second = on_outcome(SEQUENTIAL, job, runs, delivered, NOW + 5.0, 0.0)

    assert first.ready == ["b"]
    assert second.ignored is not None
    assert second.is_empty
    assert second.ready == []


# --- release ------------------------------------------------------------------------------


def test_released_run_is_queued_again_without_using_an_attempt() -> None:
    job = make_job(SEQUENTIAL, progress=5.0)
    runs = make_runs(SEQUENTIAL, a={"state": StageState.RUNNING, "attempts": 2, "progress": 0.4})

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], "released"), NOW, 0.0)

    assert transition.run_changes == {
        "a": {
            "state": StageState.QUEUED,
            "attempts": 1,
            "available_at": NOW,
            "lease_owner": None,
            "lease_until": None,
            "progress": 0.0,
        }
    }
    assert transition.job_changes == {}
    assert event_types(transition) == [EventType.STAGE_RETRYING]
    assert transition.ready == []


def test_cancelled_outcome_for_a_job_that_is_not_cancelled_is_a_release() -> None:
    job = make_job(SEQUENTIAL)
    runs = make_runs(SEQUENTIAL, a=StageState.RUNNING)

    transition = on_outcome(SEQUENTIAL, job, runs, outcome(runs["a"], "cancelled"), NOW, 0.0)

    assert transition.run_changes["a"]["state"] is StageState.QUEUED
    assert transition.run_changes["a"]["attempts"] == 0
    assert "state" not in transition.job_changes


@pytest.mark.parametrize("status", ["released", "cancelled"])
def test_run_released_after_its_job_died_is_not_made_claimable_again(status: OutcomeStatus) -> None:
    # A branch still running when a sibling killed the job is handed back by a stopping worker.
    # A finished job must dispatch nothing more (waiting runs are parked as pending), so the
    # released run must not become claimable again.
    job = make_job(DEAD_PIPELINE, state=JobState.DEAD, finished_at=NOW - 5.0)
    runs = make_runs(DEAD_PIPELINE, vital=StageState.FAILED, busy={"state": StageState.RUNNING, "attempts": 1})

    transition = on_outcome(DEAD_PIPELINE, job, runs, outcome(runs["busy"], status), NOW, 0.0)

    assert transition.run_changes["busy"].get("state") not in CLAIMABLE_STAGE_STATES
    assert "state" not in transition.job_changes


def test_branch_finishing_after_the_job_died_keeps_its_output_but_starts_nothing() -> None:
    pipeline = Pipeline(
        "late_branch",
        stages=[stage("vital", after=()), stage("side", after=()), stage("after_side", after=("side",))],
    )
    job = make_job(pipeline, state=JobState.DEAD, progress=20.0, finished_at=NOW - 5.0)
    runs = make_runs(pipeline, vital=StageState.FAILED, side=StageState.RUNNING)

    transition = on_outcome(pipeline, job, runs, outcome(runs["side"], output="late"), NOW, 0.0)

    assert transition.run_changes["side"]["state"] is StageState.SUCCEEDED
    assert transition.run_changes["side"]["output"] == "late"
    assert "after_side" not in transition.run_changes
    assert transition.ready == []
    assert transition.job_changes == {}
    assert event_types(transition) == [EventType.STAGE_SUCCEEDED]
    assert transition.events[0].state is JobState.DEAD
    assert transition.events[0].progress == 20.0


def test_late_failure_after_the_job_died_is_not_retried() -> None:
    pipeline = Pipeline("late_fail", stages=[stage("vital", after=()), stage("side", after=())])
    job = make_job(pipeline, state=JobState.DEAD, finished_at=NOW - 5.0)
    runs = make_runs(pipeline, vital=StageState.FAILED, side=StageState.RUNNING)

    transition = on_outcome(pipeline, job, runs, failure(runs["side"]), NOW, 0.0)

    assert transition.run_changes["side"]["state"] is StageState.FAILED
    assert transition.job_changes == {}
    assert event_types(transition) == [EventType.STAGE_FAILED]


# --- cancellation -------------------------------------------------------------------------

CANCEL_PIPELINE = Pipeline(
    "cancellable",
    stages=[
        stage("done", after=()),
        stage("busy", after=()),
        stage("waiting", after=()),
        stage("again", after=()),
        stage("later", after=("done", "busy", "waiting", "again")),
    ],
)


def test_cancel_stops_everything_not_yet_running() -> None:
    job = make_job(CANCEL_PIPELINE, progress=30.0, current_stage="busy")
    runs = make_runs(
        CANCEL_PIPELINE,
        done=StageState.SUCCEEDED,
        busy=StageState.RUNNING,
        waiting=StageState.QUEUED,
        again=StageState.RETRYING,
    )

    transition = on_cancel(job, runs, NOW)

    assert transition.run_changes == {
        "waiting": {"state": StageState.CANCELLED, "finished_at": NOW},
        "again": {"state": StageState.CANCELLED, "finished_at": NOW},
        "later": {"state": StageState.CANCELLED, "finished_at": NOW},
    }
    assert transition.job_changes == {
        "state": JobState.CANCELLED,
        "finished_at": NOW,
        "progress": 30.0,
        "current_stage": None,
    }
    assert event_types(transition) == [EventType.JOB_FINISHED]
    assert transition.events[0].state is JobState.CANCELLED
    assert transition.ready == []


def test_cancel_a_job_that_never_started() -> None:
    job = make_job(SEQUENTIAL, state=JobState.QUEUED, started_at=None)
    runs = make_runs(SEQUENTIAL)

    transition = on_cancel(job, runs, NOW)

    assert {name: changes["state"] for name, changes in transition.run_changes.items()} == {
        "a": StageState.CANCELLED,
        "b": StageState.CANCELLED,
        "c": StageState.CANCELLED,
    }
    assert transition.job_changes["state"] is JobState.CANCELLED
    assert [event.type for event in transition.events].count(EventType.JOB_FINISHED) == 1


@pytest.mark.parametrize(
    "state", [JobState.SUCCEEDED, JobState.DEGRADED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED]
)
def test_cancelling_a_finished_job_is_an_invalid_transition(state: JobState) -> None:
    job = make_job(SEQUENTIAL, state=state, finished_at=NOW - 1.0)
    runs = make_runs(SEQUENTIAL, a=StageState.SUCCEEDED)

    with pytest.raises(InvalidTransition) as raised:
        on_cancel(job, runs, NOW)

    assert state.value in str(raised.value)
    assert raised.value.details == {"job_id": JOB_ID, "state": state.value}


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "skipped"])
def test_outcome_arriving_for_a_cancelled_job_records_the_run_as_cancelled(status: OutcomeStatus) -> None:
    job = make_job(CANCEL_PIPELINE, state=JobState.CANCELLED, progress=30.0, finished_at=NOW - 2.0)
    runs = make_runs(
        CANCEL_PIPELINE,
        done=StageState.SUCCEEDED,
        busy=StageState.RUNNING,
        waiting=StageState.CANCELLED,
        again=StageState.CANCELLED,
        later=StageState.CANCELLED,
    )

    transition = on_outcome(CANCEL_PIPELINE, job, runs, outcome(runs["busy"], status, output="x"), NOW, 0.0)

    assert transition.run_changes == {
        "busy": {
            "finished_at": NOW - 1.0,
            "duration": 9.0,
            "lease_owner": None,
            "lease_until": None,
            "state": StageState.CANCELLED,
        }
    }
    assert transition.job_changes == {}
    assert transition.ready == []
    assert event_types(transition) == [EventType.STAGE_CANCELLED]
    assert transition.events[0].state is JobState.CANCELLED


# --- ready_stages -------------------------------------------------------------------------


def test_ready_stages_needs_every_dependency_done() -> None:
    runs = make_runs(DIAMOND, intake=StageState.SUCCEEDED, image=StageState.SUCCEEDED, risk=StageState.RUNNING)

    assert ready_stages(DIAMOND, runs) == []
    runs["risk"] = runs["risk"].evolve(state=StageState.SUCCEEDED)
    assert ready_stages(DIAMOND, runs) == ["assess"]


def test_ready_stages_only_returns_pending_runs() -> None:
    runs = make_runs(DIAMOND, intake=StageState.SUCCEEDED, image=StageState.QUEUED, risk=StageState.CANCELLED)

    assert ready_stages(DIAMOND, runs) == []


def test_failed_or_skipped_non_critical_dependency_satisfies_a_join_but_a_critical_one_does_not() -> None:
    pipeline = Pipeline(
        "mixed_join",
        stages=[
            stage("must", after=()),
            stage("nice", after=(), critical=False),
            stage("join", after=("must", "nice")),
        ],
    )

    assert ready_stages(pipeline, make_runs(pipeline, must=StageState.SUCCEEDED, nice=StageState.FAILED)) == ["join"]
    assert ready_stages(pipeline, make_runs(pipeline, must=StageState.SUCCEEDED, nice=StageState.SKIPPED)) == ["join"]
    assert ready_stages(pipeline, make_runs(pipeline, must=StageState.FAILED, nice=StageState.SUCCEEDED)) == []
    assert ready_stages(pipeline, make_runs(pipeline, must=StageState.SUCCEEDED, nice=StageState.RETRYING)) == []


# --- progress -----------------------------------------------------------------------------

WEIGHTED = Pipeline("weighted", stages=[stage("small", weight=1.0), stage("big", weight=3.0)])


def test_stage_progress_maps_weights_into_percent() -> None:
    runs = make_runs(WEIGHTED)
    assert stage_progress(WEIGHTED, runs) == 0.0

    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big={"state": StageState.RUNNING, "progress": 0.5})
    assert stage_progress(WEIGHTED, runs) == 62.5

    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big=StageState.SUCCEEDED)
    assert stage_progress(WEIGHTED, runs) == 100.0


def test_stage_progress_counts_failed_and_skipped_as_done_and_waiting_as_nothing() -> None:
    pipeline = Pipeline(
        "counting",
        stages=[stage(name, after=(), critical=False) for name in ("f", "s", "q", "r", "p", "x")],
    )
    runs = make_runs(
        pipeline,
        f=StageState.FAILED,
        s=StageState.SKIPPED,
        q={"state": StageState.QUEUED, "progress": 0.9},
        r={"state": StageState.RETRYING, "progress": 0.9},
        p={"state": StageState.PENDING, "progress": 0.9},
        x={"state": StageState.RUNNING, "progress": 0.5},
    )

    assert stage_progress(pipeline, runs) == pytest.approx(100.0 * 2.5 / 6)


def test_progress_report_moves_the_job_through_the_stage_weights() -> None:
    job = make_job(WEIGHTED, progress=25.0)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big=StageState.RUNNING)

    transition = on_progress(WEIGHTED, job, runs, report(runs["big"], 0.5, "chunk 15/30"))

    assert transition.ignored is None
    assert transition.run_changes == {"big": {"progress": 0.5}}
    assert transition.job_changes == {"progress": 62.5}
    assert event_types(transition) == [EventType.STAGE_PROGRESS]
    event = transition.events[0]
    assert (event.stage, event.progress, event.message, event.state) == ("big", 62.5, "chunk 15/30", JobState.RUNNING)


def test_job_progress_never_goes_backwards() -> None:
    # The job already reached 80 % (e.g. before a retry reset its stage); a lower figure does not lower it.
    job = make_job(WEIGHTED, progress=80.0)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big={"state": StageState.RUNNING, "attempts": 2})

    transition = on_progress(WEIGHTED, job, runs, report(runs["big"], 0.2))

    assert transition.run_changes == {"big": {"progress": 0.2}}
    assert "progress" not in transition.job_changes
    assert transition.events[0].progress == 80.0


def test_progress_stays_below_100_until_the_job_finishes() -> None:
    job = make_job(WEIGHTED, progress=25.0)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big=StageState.RUNNING)

    transition = on_progress(WEIGHTED, job, runs, report(runs["big"], 1.0))

    assert transition.job_changes == {"progress": PROGRESS_CEILING_WHILE_RUNNING}
    assert PROGRESS_CEILING_WHILE_RUNNING == 99.0


def test_progress_after_a_heavy_stage_succeeds_is_capped_until_the_end() -> None:
    pipeline = Pipeline("heavy_first", stages=[stage("heavy", weight=99.5), stage("light", weight=0.5)])
    job = make_job(pipeline)
    runs = make_runs(pipeline, heavy=StageState.RUNNING)

    transition = on_outcome(pipeline, job, runs, outcome(runs["heavy"]), NOW, 0.0)

    assert transition.job_changes["progress"] == 99.0
    assert transition.events[0].progress == 99.0


def test_progress_fraction_is_clamped_to_one() -> None:
    job = make_job(WEIGHTED, progress=25.0)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big=StageState.RUNNING)

    transition = on_progress(WEIGHTED, job, runs, report(runs["big"], 1.7))

    assert transition.run_changes == {"big": {"progress": 1.0}}


def test_progress_that_does_not_advance_is_ignored_unless_it_brings_a_message() -> None:
    job = make_job(WEIGHTED, progress=40.0)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big={"state": StageState.RUNNING, "progress": 0.2})

    lower = on_progress(WEIGHTED, job, runs, report(runs["big"], 0.1, "going back"))
    same_silent = on_progress(WEIGHTED, job, runs, report(runs["big"], 0.2, None))
    same_with_message = on_progress(WEIGHTED, job, runs, report(runs["big"], 0.2, "still at chunk 6"))

    assert lower.ignored is not None
    assert lower.is_empty
    assert same_silent.ignored is not None
    assert same_silent.is_empty
    assert same_with_message.ignored is None
    assert same_with_message.events[0].message == "still at chunk 6"
    assert same_with_message.job_changes == {}


def test_progress_from_a_stale_attempt_is_ignored() -> None:
    job = make_job(WEIGHTED)
    runs = make_runs(WEIGHTED, small={"state": StageState.RUNNING, "attempts": 2})

    stale = on_progress(WEIGHTED, job, runs, report(runs["small"], 0.5, attempt=1))
    wrong_run = on_progress(WEIGHTED, job, runs, report(runs["small"].evolve(id=77), 0.5))

    assert stale.ignored is not None
    assert stale.is_empty
    assert wrong_run.ignored is not None
    assert wrong_run.is_empty


def test_progress_from_a_run_that_is_not_running_is_ignored() -> None:
    job = make_job(WEIGHTED)
    runs = make_runs(WEIGHTED, small={"state": StageState.RETRYING, "attempts": 1})

    transition = on_progress(WEIGHTED, job, runs, report(runs["small"], 0.5))

    assert transition.ignored is not None
    assert transition.is_empty


def test_progress_for_a_finished_job_is_ignored() -> None:
    job = make_job(WEIGHTED, state=JobState.CANCELLED, progress=10.0)
    runs = make_runs(WEIGHTED, small=StageState.RUNNING)

    transition = on_progress(WEIGHTED, job, runs, report(runs["small"], 0.5))

    assert transition.ignored is not None
    assert transition.is_empty


def test_retry_resets_the_stage_progress_but_not_the_job_progress() -> None:
    job = make_job(WEIGHTED, progress=62.5)
    runs = make_runs(WEIGHTED, small=StageState.SUCCEEDED, big={"state": StageState.RUNNING, "progress": 0.5})

    transition = on_outcome(WEIGHTED, job, runs, failure(runs["big"]), NOW, 0.0)

    assert transition.run_changes["big"]["progress"] == 0.0
    assert "progress" not in transition.job_changes
    assert transition.events[0].progress == 62.5


# --- a whole job, step by step ------------------------------------------------------------


def test_whole_diamond_job_events_tell_the_story_in_order() -> None:
    job = make_job(DIAMOND, state=JobState.QUEUED, started_at=None, last_seq=1)
    runs = make_runs(DIAMOND)
    transitions: list[Transition] = []

    def step(name: str, status: OutcomeStatus = "succeeded", **fields: Any) -> Transition:
        nonlocal job, runs
        job, runs, claimed = claim(DIAMOND, job, runs, name)
        transitions.append(claimed)
        ended = on_outcome(DIAMOND, job, runs, outcome(runs[name], status, **fields), NOW, 0.0)
        job, runs = apply(job, runs, ended)
        transitions.append(ended)
        return ended

    assert step("intake", output={"image": "ref"}).ready == ["image", "risk"]
    job, runs, claimed = claim(DIAMOND, job, runs, "risk")
    transitions.append(claimed)
    progress = on_progress(DIAMOND, job, runs, report(runs["risk"], 0.5, "braden"))
    job, runs = apply(job, runs, progress)
    transitions.append(progress)
    risk_failed = on_outcome(DIAMOND, job, runs, failure(runs["risk"]), NOW, 0.0)
    job, runs = apply(job, runs, risk_failed)
    transitions.append(risk_failed)
    assert runs["risk"].state is StageState.RETRYING
    assert step("image", output={"lesion": True}).ready == []
    assert step("risk", output={"braden": 14}).ready == ["assess"]
    final = step("assess", output={"stage": 2})

    events = [event for transition in transitions for event in transition.events]
    assert [(event.type, event.stage) for event in events] == [
        (EventType.JOB_STARTED, None),
        (EventType.STAGE_STARTED, "intake"),
        (EventType.STAGE_SUCCEEDED, "intake"),
        (EventType.STAGE_STARTED, "risk"),
        (EventType.STAGE_PROGRESS, "risk"),
        (EventType.STAGE_RETRYING, "risk"),
        (EventType.STAGE_STARTED, "image"),
        (EventType.STAGE_SUCCEEDED, "image"),
        (EventType.STAGE_STARTED, "risk"),
        (EventType.STAGE_SUCCEEDED, "risk"),
        (EventType.STAGE_STARTED, "assess"),
        (EventType.STAGE_SUCCEEDED, "assess"),
        (EventType.JOB_FINISHED, None),
    ]
    figures = [event.progress for event in events]
    assert figures == sorted(figures), "progress went backwards"
    assert max(figures[:-1]) <= PROGRESS_CEILING_WHILE_RUNNING
    assert events[-1].progress == 100.0
    assert events[-1].state is JobState.SUCCEEDED
    assert all(event.state is JobState.RUNNING for event in events[:-1])
    assert runs["risk"].attempts == 2
    assert final.job_changes["result"] == {"stage": 2}
    assert job.state is JobState.SUCCEEDED
    assert job.progress == 100.0
    assert job.result == {"stage": 2}
    assert job.current_stage is None
    assert all(run.state is StageState.SUCCEEDED for run in runs.values())
