"""What happens next: pure decisions shared by every executor.

Each function takes a job as it is stored (the job, its stage runs, the pipeline) and one
thing that happened (a stage was claimed, reported progress, finished, or the job was
cancelled), and returns a `Transition`: the changes to write and the events to append.
Nothing here does I/O, reads the clock or draws random numbers: callers pass `now` and
`rand`, so every decision can be tested by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vigia.escalation import (
    EscalationDraft,
    EscalationRequest,
    NotificationRequest,
    Policies,
    for_failure,
    for_request,
    for_result,
)
from vigia.exceptions import InvalidTransition
from vigia.job import CLAIMABLE_STAGE_STATES, EventType, Job, JobState, StageRun, StageState
from vigia.pipeline import Pipeline

#: Severity policies when a caller gives none (SPEC §4 defaults).
DEFAULT_POLICIES = Policies()

#: Progress stays below this until the job has finished, so 100 always means "done".
PROGRESS_CEILING_WHILE_RUNNING = 99.0

OutcomeStatus = Literal["succeeded", "failed", "skipped", "cancelled", "released"]


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """How one attempt of a stage ended, as the worker that ran it reports it."""

    run_id: int
    job_id: str
    stage: str
    attempt: int
    status: OutcomeStatus
    started_at: float
    finished_at: float
    output: Any = None
    error_type: str | None = None
    error_message: str | None = None
    #: Whether the stage's retry policy considers the error worth another attempt.
    retryable: bool = False
    #: A delay the stage asked for with `Retry(after=...)`.
    retry_after: float | None = None
    #: Human reviews the stage asked for (`ctx.escalate`).
    escalations: tuple[EscalationRequest, ...] = ()
    #: Clinical decisions the stage recorded (`ctx.audit`): (action, details).
    decisions: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    #: Messages the stage asked to send (`ctx.notify`).
    notifications: tuple[NotificationRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """A stage's own progress within its current attempt."""

    run_id: int
    job_id: str
    stage: str
    attempt: int
    fraction: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event to append; the store gives it its sequence number and timestamp."""

    type: EventType
    state: JobState
    progress: float
    stage: str | None = None
    message: str | None = None
    #: The stage's own progress, 0.0–1.0, for stage events.
    stage_progress: float | None = None


@dataclass(slots=True)
class Transition:
    """Changes to one job, to be written atomically."""

    job_id: str
    #: Columns to set per stage run, by stage name.
    run_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Columns to set on the job.
    job_changes: dict[str, Any] = field(default_factory=dict)
    events: list[EventDraft] = field(default_factory=list)
    #: Stages this transition made ready to run (to dispatch after commit).
    ready: list[str] = field(default_factory=list)
    #: Human-review items to open, with their notifications.
    escalations: list[EscalationDraft] = field(default_factory=list)
    #: Why nothing changed (a duplicate or stale delivery), for logs and tests.
    ignored: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.run_changes or self.job_changes or self.events)


@dataclass(frozen=True, slots=True)
class InitialRun:
    stage: str
    state: StageState
    queue: str


def plan_job(pipeline: Pipeline) -> list[InitialRun]:
    """The stage runs of a new job: roots queued, the rest pending."""
    return [
        InitialRun(
            stage=name,
            state=StageState.QUEUED if not node.depends_on else StageState.PENDING,
            queue=node.stage.queue,
        )
        for name, node in pipeline.nodes.items()
    ]


def on_claimed(pipeline: Pipeline, job: Job, run: StageRun, now: float) -> Transition:
    """A worker took ``run`` (already marked running by the store's claim)."""
    transition = Transition(job.id)
    state = job.state
    if state is JobState.QUEUED:
        state = JobState.RUNNING
        transition.job_changes.update(state=state, started_at=run.started_at or now)
        transition.events.append(EventDraft(EventType.JOB_STARTED, state, job.progress))
    transition.job_changes["current_stage"] = run.stage
    transition.events.append(
        EventDraft(EventType.STAGE_STARTED, state, job.progress, run.stage, f"attempt {run.attempts}", 0.0)
    )
    return transition


def on_progress(pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], report: ProgressReport) -> Transition:
    transition = Transition(job.id)
    run = runs.get(report.stage)
    if run is None or run.id != report.run_id or run.state is not StageState.RUNNING or run.attempts != report.attempt:
        transition.ignored = "progress from a stage run that is no longer running"
        return transition
    if job.state.is_terminal:
        transition.ignored = "progress for a finished job"
        return transition
    fraction = min(1.0, max(0.0, report.fraction))
    if fraction < run.progress or (fraction == run.progress and not report.message):
        transition.ignored = "progress did not advance"
        return transition
    updated = {**runs, run.stage: run.evolve(progress=fraction)}
    progress = _running_progress(pipeline, job, updated)
    transition.run_changes[run.stage] = {"progress": fraction}
    if progress != job.progress:
        transition.job_changes["progress"] = progress
    transition.events.append(
        EventDraft(EventType.STAGE_PROGRESS, job.state, progress, run.stage, report.message, fraction)
    )
    return transition


def on_outcome(
    pipeline: Pipeline,
    job: Job,
    runs: Mapping[str, StageRun],
    outcome: StageOutcome,
    now: float,
    rand: float,
    policies: Policies = DEFAULT_POLICIES,
) -> Transition:
    """A stage attempt ended (or its lease expired): record it, decide what follows, and
    whether a person must look (see `vigia.escalation`)."""
    transition = Transition(job.id)
    run = runs.get(outcome.stage)
    if (
        run is None
        or run.id != outcome.run_id
        or run.state is not StageState.RUNNING
        or run.attempts != outcome.attempt
    ):
        transition.ignored = "duplicate or stale delivery: the stage run is not running this attempt"
        return transition
    if job.state is JobState.CANCELLED:
        transition.run_changes[run.stage] = {**_finished(outcome), "state": StageState.CANCELLED}
        transition.events.append(
            EventDraft(EventType.STAGE_CANCELLED, job.state, job.progress, run.stage, "stopped: job cancelled")
        )
        return transition
    if outcome.status in ("cancelled", "released"):
        # The worker stopped the stage without the job being cancelled (it lost its lease,
        # or is shutting down): hand the stage run back rather than lose it.
        return _released(transition, job, run, now)

    stage = pipeline.node(run.stage).stage
    if outcome.status == "skipped" and stage.critical:
        outcome = replace(
            outcome,
            status="failed",
            error_type="SkipNotAllowed",
            error_message=f"a critical stage cannot be skipped: {outcome.error_message or ''}".strip(),
            retryable=False,
        )
    retrying = False
    if outcome.status == "failed" and not job.state.is_terminal:
        decision = policies.retry_policy(stage).decide(
            outcome.attempt, retryable=outcome.retryable, requested_delay=outcome.retry_after, rand=rand
        )
        if decision.retry:
            retrying = True
            _retrying(transition, pipeline, job, runs, outcome, now, decision.delay, policies)
    if not retrying:
        _ended(transition, pipeline, job, runs, outcome, now, policies)
    if not job.state.is_terminal:
        _escalate(transition, policies, pipeline, job, outcome, final=not retrying)
    return transition


def _escalate(
    transition: Transition, policies: Policies, pipeline: Pipeline, job: Job, outcome: StageOutcome, *, final: bool
) -> None:
    """Open the human reviews this outcome calls for, each announced by an event (before
    the job's final event, which ends a client's stream)."""
    drafts: list[EscalationDraft] = []
    if outcome.status == "failed":
        draft = for_failure(
            policies, pipeline, outcome.stage, outcome.attempt, final=final, error_type=outcome.error_type
        )
        if draft is not None:
            drafts.append(draft)
    elif outcome.status == "succeeded":
        drafts.extend(for_result(policies, pipeline, outcome.stage, outcome.output))
    drafts.extend(for_request(policies, outcome.stage, request) for request in outcome.escalations)
    if not drafts:
        return
    state = transition.job_changes.get("state", job.state)
    progress = transition.job_changes.get("progress", job.progress)
    announcements = [
        EventDraft(
            EventType.JOB_ESCALATED, state, progress, draft.stage, f"human review ({draft.role}): {draft.reason}"
        )
        for draft in drafts
    ]
    ending = [event for event in transition.events if event.type is EventType.JOB_FINISHED]
    transition.events = [event for event in transition.events if event.type is not EventType.JOB_FINISHED]
    transition.events.extend([*announcements, *ending])
    transition.escalations.extend(drafts)


def _finished(outcome: StageOutcome) -> dict[str, Any]:
    return {
        "finished_at": outcome.finished_at,
        "duration": max(0.0, outcome.finished_at - outcome.started_at),
        "lease_owner": None,
        "lease_until": None,
    }


def _released(transition: Transition, job: Job, run: StageRun, now: float) -> Transition:
    """Handed back unfinished: the attempt does not count. A job that ended meanwhile keeps
    it parked (pending) like its other waiting stages, not claimable."""
    transition.run_changes[run.stage] = {
        "state": StageState.PENDING if job.state.is_terminal else StageState.QUEUED,
        "attempts": run.attempts - 1,
        "available_at": now,
        "lease_owner": None,
        "lease_until": None,
        "progress": 0.0,
    }
    transition.events.append(
        EventDraft(EventType.STAGE_RETRYING, job.state, job.progress, run.stage, "released by its worker; queued again")
    )
    return transition


def _describe_failure(pipeline: Pipeline, outcome: StageOutcome, policies: Policies) -> str:
    attempts = policies.retry_policy(pipeline.node(outcome.stage).stage).max_attempts
    return f"attempt {outcome.attempt} of {attempts} failed: {outcome.error_type}: {outcome.error_message}"


def _retrying(
    transition: Transition,
    pipeline: Pipeline,
    job: Job,
    runs: Mapping[str, StageRun],
    outcome: StageOutcome,
    now: float,
    delay: float,
    policies: Policies,
) -> Transition:
    transition.run_changes[outcome.stage] = {
        **_finished(outcome),
        "error_type": outcome.error_type,
        "error_message": outcome.error_message,
        "state": StageState.RETRYING,
        "available_at": now + delay,
        "progress": 0.0,
    }
    message = f"{_describe_failure(pipeline, outcome, policies)}; retrying in {delay:.1f} s"
    transition.events.append(EventDraft(EventType.STAGE_RETRYING, job.state, job.progress, outcome.stage, message))
    transition.job_changes["current_stage"] = _current_stage(pipeline, runs, exclude=outcome.stage)
    return transition


def _ended(
    transition: Transition,
    pipeline: Pipeline,
    job: Job,
    runs: Mapping[str, StageRun],
    outcome: StageOutcome,
    now: float,
    policies: Policies,
) -> Transition:
    """The stage run is over for good (succeeded, skipped, or failed with no retry left)."""
    run = runs[outcome.stage]
    stage = pipeline.node(run.stage).stage
    changes: dict[str, Any] = {**_finished(outcome)}
    fraction: float | None = None
    if outcome.status == "succeeded":
        state, event_type, message, fraction = StageState.SUCCEEDED, EventType.STAGE_SUCCEEDED, None, 1.0
        changes.update(output=outcome.output, progress=1.0, error_type=None, error_message=None)
    elif outcome.status == "skipped":
        state, event_type, message = StageState.SKIPPED, EventType.STAGE_SKIPPED, outcome.error_message
        changes.update(error_message=outcome.error_message)
    else:
        state, event_type = StageState.FAILED, EventType.STAGE_FAILED
        message = _describe_failure(pipeline, outcome, policies)
        changes.update(error_type=outcome.error_type, error_message=outcome.error_message)
    transition.run_changes[run.stage] = {**changes, "state": state}
    runs = {**runs, run.stage: run.evolve(state=state, output=changes.get("output"), progress=1.0)}

    if job.state.is_terminal:
        # A branch that was still running when the job ended: keep what it did, start nothing.
        transition.events.append(EventDraft(event_type, job.state, job.progress, run.stage, message, fraction))
        return transition
    if state is StageState.FAILED and stage.critical:
        transition.events.append(EventDraft(event_type, job.state, job.progress, run.stage, message))
        _park_claimable_runs(transition, runs)
        error = {"error_type": outcome.error_type, "error_message": outcome.error_message}
        _finish(transition, job, JobState.DEAD if outcome.retryable else JobState.FAILED, now, job.progress, error)
        return transition
    if state is StageState.FAILED:
        message = f"{message} (non-critical: going on without it)"

    progress = _running_progress(pipeline, job, runs)
    transition.events.append(EventDraft(event_type, job.state, progress, run.stage, message, fraction))
    _advance(transition, pipeline, job, runs, progress, now)
    return transition


def _advance(
    transition: Transition, pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], progress: float, now: float
) -> None:
    """Queue the stages that became ready, or finish the job if nothing is left."""
    ready = ready_stages(pipeline, runs)
    for stage_name in ready:
        transition.run_changes[stage_name] = {"state": StageState.QUEUED, "available_at": now}
        runs = {**runs, stage_name: runs[stage_name].evolve(state=StageState.QUEUED)}
    transition.ready = ready
    if all(run.state.is_terminal for run in runs.values()):
        degraded = any(run.state in (StageState.FAILED, StageState.SKIPPED) for run in runs.values())
        final = runs[pipeline.final_stage]
        transition.job_changes["result"] = final.output if final.state is StageState.SUCCEEDED else None
        _finish(transition, job, JobState.DEGRADED if degraded else JobState.SUCCEEDED, now, 100.0)
        return
    if progress != job.progress:
        transition.job_changes["progress"] = progress
    transition.job_changes["current_stage"] = _current_stage(pipeline, runs)


def on_cancel(job: Job, runs: Mapping[str, StageRun], now: float) -> Transition:
    """Cancel a job: nothing more is dispatched; running stages see `ctx.cancelled`."""
    if job.state.is_terminal:
        raise InvalidTransition(f"job {job.id} is already {job.state.value}", job_id=job.id, state=job.state.value)
    transition = Transition(job.id)
    for run in runs.values():
        if run.state in (StageState.PENDING, *CLAIMABLE_STAGE_STATES):
            transition.run_changes[run.stage] = {"state": StageState.CANCELLED, "finished_at": now}
    _finish(transition, job, JobState.CANCELLED, now, job.progress)
    return transition


def on_retry(pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], now: float) -> Transition:
    """Take a dead or failed job out of the dead-letter queue: the stages that failed or
    never ran start again (with a fresh count of attempts); finished ones keep their outputs."""
    if job.state not in (JobState.DEAD, JobState.FAILED):
        raise InvalidTransition(
            f"job {job.id} is {job.state.value}: only dead or failed jobs can be retried",
            job_id=job.id,
            state=job.state.value,
        )
    transition = Transition(job.id)
    reset = {
        "state": StageState.PENDING,
        "attempts": 0,
        "error_type": None,
        "error_message": None,
        "finished_at": None,
        "started_at": None,
        "duration": None,
        "progress": 0.0,
        "lease_owner": None,
        "lease_until": None,
    }
    restarted = dict(runs)
    for name, run in runs.items():
        critical = pipeline.node(name).stage.critical
        if (run.state is StageState.FAILED and critical) or run.state in (StageState.CANCELLED, StageState.PENDING):
            transition.run_changes[name] = dict(reset)
            restarted[name] = run.evolve(state=StageState.PENDING, attempts=0)
    started = any(run.state is StageState.SUCCEEDED for run in runs.values())
    state = JobState.RUNNING if started else JobState.QUEUED
    transition.job_changes.update(state=state, finished_at=None, error_type=None, error_message=None, result=None)
    transition.events.append(
        EventDraft(EventType.JOB_RETRIED, state, job.progress, None, "retried from the dead-letter queue")
    )
    ready = ready_stages(pipeline, restarted)
    for stage_name in ready:
        transition.run_changes[stage_name] = {
            **transition.run_changes.get(stage_name, {}),
            "state": StageState.QUEUED,
            "available_at": now,
        }
        restarted[stage_name] = restarted[stage_name].evolve(state=StageState.QUEUED)
    transition.ready = ready
    transition.job_changes["current_stage"] = _current_stage(pipeline, restarted)
    return transition


def on_unrunnable(job: Job, runs: Mapping[str, StageRun], error_type: str, message: str, now: float) -> Transition:
    """The job cannot go on in this installation (its pipeline is not registered here, or
    its stages no longer match the pipeline's): fail it, with the reason, rather than leave
    it waiting for ever."""
    transition = Transition(job.id)
    if job.state.is_terminal:
        transition.ignored = "the job has already finished"
        return transition
    for run in runs.values():
        if run.state is StageState.RUNNING:
            transition.run_changes[run.stage] = {
                "state": StageState.FAILED,
                "finished_at": now,
                "lease_owner": None,
                "lease_until": None,
                "error_type": error_type,
                "error_message": message,
            }
        elif not run.state.is_terminal:
            transition.run_changes[run.stage] = {"state": StageState.CANCELLED, "finished_at": now}
    _finish(transition, job, JobState.FAILED, now, job.progress, {"error_type": error_type, "error_message": message})
    return transition


def incompatibility(pipeline: Pipeline, runs: Mapping[str, StageRun]) -> str | None:
    """Why the job's stage runs do not fit ``pipeline`` (it changed since the job began)."""
    expected, found = set(pipeline.nodes), set(runs)
    if expected == found:
        return None
    return (
        f"pipeline {pipeline.name!r} v{pipeline.version} no longer matches this job's stages "
        f"(missing: {sorted(expected - found) or 'none'}, unknown: {sorted(found - expected) or 'none'})"
    )


def ready_stages(pipeline: Pipeline, runs: Mapping[str, StageRun]) -> list[str]:
    """Pending stages whose dependencies have all finished in a way they can build on."""
    ready = []
    for name, node in pipeline.nodes.items():
        run = runs.get(name)
        if run is None or run.state is not StageState.PENDING:
            continue
        if all(_satisfies(pipeline, runs[dependency]) for dependency in node.depends_on):
            ready.append(name)
    return ready


def stage_progress(pipeline: Pipeline, runs: Mapping[str, StageRun]) -> float:
    """Overall progress in percent from each stage's share (its weight) and state."""
    total = pipeline.total_weight
    done = 0.0
    for name, node in pipeline.nodes.items():
        run = runs.get(name)
        if run is None:
            continue
        if run.state in (StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED):
            done += node.stage.weight
        elif run.state is StageState.RUNNING:
            done += node.stage.weight * run.progress
    return 100.0 * done / total


def _running_progress(pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun]) -> float:
    computed = min(PROGRESS_CEILING_WHILE_RUNNING, round(stage_progress(pipeline, runs), 2))
    return max(job.progress, computed)


def _satisfies(pipeline: Pipeline, run: StageRun) -> bool:
    if run.state is StageState.SUCCEEDED:
        return True
    return run.state in (StageState.FAILED, StageState.SKIPPED) and not pipeline.node(run.stage).stage.critical


def _current_stage(pipeline: Pipeline, runs: Mapping[str, StageRun], exclude: str | None = None) -> str | None:
    for wanted in (StageState.RUNNING, StageState.QUEUED, StageState.RETRYING):
        for name in pipeline.execution_order:
            run = runs.get(name)
            if name != exclude and run is not None and run.state is wanted:
                return name
    return None


def _park_claimable_runs(transition: Transition, runs: Mapping[str, StageRun]) -> None:
    """A job that ended dispatches nothing more; its waiting stages return to pending so that
    a retry from the dead-letter queue can pick them up again."""
    for run in runs.values():
        if run.state in CLAIMABLE_STAGE_STATES and run.stage not in transition.run_changes:
            transition.run_changes[run.stage] = {"state": StageState.PENDING}


def _finish(
    transition: Transition,
    job: Job,
    state: JobState,
    now: float,
    progress: float,
    error: Mapping[str, Any] | None = None,
) -> None:
    transition.job_changes.update(state=state, finished_at=now, progress=progress, current_stage=None)
    if error:
        transition.job_changes.update(error)
    message = None if error is None else f"{error['error_type']}: {error['error_message']}"
    transition.events.append(EventDraft(EventType.JOB_FINISHED, state, progress, None, message))
