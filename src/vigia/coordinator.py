"""Applies the orchestrator's decisions to the store, atomically. Shared by every executor.

Each method opens one unit of work, loads (and locks) the jobs concerned, asks the
orchestrator what follows, and writes the result with its events. Methods are synchronous:
executors call them from a thread (embedded) or a worker process (Celery). They return the
events written, for the caller to publish once the transaction has committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vigia import audit as audit_module
from vigia import constants, orchestrator
from vigia.audit import AuditDraft
from vigia.escalation import EscalationDraft, NotificationRequest, Oversight, Review, ReviewStatus, Urgency
from vigia.exceptions import IdempotencyConflict, InvalidInput, JobNotFound, ReviewNotFound, UnknownPipeline, VigiaError
from vigia.job import CLAIMABLE_STAGE_STATES, Event, EventType, Job, JobState, StageRun, StageState, new_job_id
from vigia.orchestrator import EventDraft, ProgressReport, StageOutcome, Transition
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.serialization import NotStorable, to_storable
from vigia.store.base import DeadFilter, Dispatch, JobStore, NewJob, Snapshot, StageWork, UnitOfWork, WriteSet

log = logging.getLogger("vigia.coordinator")

#: The audit log's actor for what the engine decides itself.
SYSTEM_ACTOR = "system"
#: Notifications jump their queue by urgency.
NOTIFICATION_PRIORITY = {Urgency.CRITICAL: 100, Urgency.HIGH: 50, Urgency.NORMAL: 0}

#: Stage runs the reaper takes back per pass.
REAP_BATCH = 500
#: Jobs retried per transaction by a bulk retry.
RETRY_CHUNK = 100


@dataclass(frozen=True, slots=True)
class Assignment:
    """A claimed stage run with what its function needs."""

    run: StageRun
    job: Job
    #: Outputs of the stages this one depends on, directly or not.
    outputs: Mapping[str, Any]


@dataclass(slots=True)
class Settled:
    events: list[Event] = field(default_factory=list)
    #: Stage runs that became ready: what a distributed executor sends next.
    ready: list[Dispatch] = field(default_factory=list)
    #: Jobs that reached a terminal state.
    finished: list[Job] = field(default_factory=list)
    #: Claims `settle` refused (by run id): those runs belong to nobody's attempt now.
    refused: set[int] = field(default_factory=set)
    #: Notification jobs created for the reviews this settlement opened.
    notifications: list[Job] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobRequest:
    pipeline: str
    input: Any
    tenant: str = constants.DEFAULT_TENANT
    idempotency_key: str | None = None
    priority: int = 0
    #: Who submits, for the audit log (an API key's id).
    actor: str = SYSTEM_ACTOR


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    events: list[Event]
    #: False when an idempotency key matched an earlier submission.
    created: bool


def input_fingerprint(pipeline: str, job_input: Any) -> str:
    canonical = json.dumps([pipeline, job_input], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Batch:
    """Transitions applied in order to in-memory snapshots, gathered into one write."""

    def __init__(self, snapshots: Mapping[str, Snapshot], now: float, actor: str = SYSTEM_ACTOR) -> None:
        self.now = now
        #: Who the audit log says acted: an API key's id, or "system" for the engine itself.
        self.actor = actor
        self.jobs = {job_id: snapshot.job for job_id, snapshot in snapshots.items()}
        self.runs = {job_id: dict(snapshot.runs) for job_id, snapshot in snapshots.items()}
        self.writes = WriteSet()
        self.settled = Settled()
        self.escalations: list[tuple[Job, EscalationDraft]] = []
        #: Messages stages asked to send: (job, stage, request).
        self.requests: list[tuple[Job, str, NotificationRequest]] = []
        #: Audit entries to chain at commit: (job or None, action, details).
        self.audits: list[tuple[Job | None, str, dict[str, Any]]] = []

    def apply(self, transition: Transition) -> bool:
        """Apply ``transition`` (False when the orchestrator ignored the delivery)."""
        if transition.ignored:
            log.debug("transition.ignored", extra={"job_id": transition.job_id, "reason": transition.ignored})
            return False
        job = self.jobs[transition.job_id]
        runs = self.runs[transition.job_id]
        for stage, changes in transition.run_changes.items():
            run = runs[stage]
            runs[stage] = run.evolve(**changes)
            self.writes.runs.setdefault(run.id, {}).update(changes)
        seq = job.last_seq
        for draft in transition.events:
            seq += 1
            self.writes.events.append(self._event(job.id, seq, draft))
        changes = dict(transition.job_changes)
        if seq != job.last_seq or changes:
            changes.update(last_seq=seq, updated_at=self.now)
            job = job.evolve(**changes)
            self.jobs[job.id] = job
            self.writes.jobs.setdefault(job.id, {}).update(changes)
        self.settled.ready.extend(
            Dispatch(
                runs[stage].id,
                runs[stage].queue,
                job.pipeline,
                stage,
                StageWork(job.id, runs[stage].attempts, job.input, None),
            )
            for stage in transition.ready
        )
        if "state" in transition.job_changes:
            if job.state.is_terminal:
                self.settled.finished.append(job)
            details: dict[str, Any] = {"pipeline": job.pipeline}
            if job.error_type and job.state in (JobState.FAILED, JobState.DEAD):
                details["error_type"] = job.error_type
            self.audits.append((job, f"job.{job.state.value}", details))
        self.escalations.extend((job, draft) for draft in transition.escalations)
        return True

    def _event(self, job_id: str, seq: int, draft: EventDraft) -> Event:
        return Event(
            job_id,
            seq,
            draft.type,
            draft.state,
            draft.stage,
            draft.progress,
            draft.message,
            self.now,
            draft.stage_progress,
        )

    def mark_dispatched(self) -> None:
        """Record the ready runs as sent now: the caller sends them once this commits (a
        crash in between leaves them to the dispatcher's re-send of lost messages)."""
        for item in self.settled.ready:
            self.writes.runs.setdefault(item.run_id, {})["dispatched_at"] = self.now


class Coordinator:
    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        oversight: Oversight | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.oversight = oversight or Oversight()
        self._clock = clock
        self._rand = rand

    # --- committing -----------------------------------------------------------------------

    def _commit(self, unit: UnitOfWork, batch: _Batch) -> Settled:
        """Write what the batch decided: changes, events, the reviews its escalations open
        with their notifications, and its audit entries (chained last: the chain's lock is
        then held only for the end of the transaction)."""
        if batch.writes:
            unit.write(batch.writes)
        batch.settled.events = batch.writes.events
        for job, draft in batch.escalations:
            self._open_review(unit, batch, job, draft)
        for job, stage, request in batch.requests:
            message = {
                "subject": request.subject,
                "text": request.text,
                "urgency": request.urgency.value,
                "role": request.role,
                "job_id": job.id,
                "review_id": None,
                "fields": {"pipeline": job.pipeline, "stage": stage},
            }
            batch.settled.notifications.extend(self._notification_jobs(unit, job.tenant, message, batch.now))
        drafts = [
            AuditDraft(
                action,
                batch.actor,
                batch.now,
                job.tenant if job else None,
                job.id if job else None,
                self._subject(job),
                details,
            )
            for job, action, details in batch.audits
        ]
        if drafts:
            unit.append_audit(drafts)
        return batch.settled

    def _subject(self, job: Job | None) -> str | None:
        if job is None or job.pipeline not in self.registry:
            return None
        return self.oversight.subject_of(self.registry.get(job.pipeline), job.input)

    def _open_review(self, unit: UnitOfWork, batch: _Batch, job: Job, draft: EscalationDraft) -> None:
        review_id = new_job_id(batch.now)
        unit.insert_review(
            Review(
                id=review_id,
                tenant=job.tenant,
                job_id=job.id,
                stage=draft.stage,
                kind=draft.kind,
                reason=draft.reason,
                severity=draft.severity,
                role=draft.role,
                urgency=draft.urgency,
                status=ReviewStatus.OPEN,
                created_at=batch.now,
            )
        )
        details = {
            "review_id": review_id,
            "pipeline": job.pipeline,
            "stage": draft.stage,
            "kind": draft.kind.value,
            "severity": draft.severity.value,
            "role": draft.role,
            "urgency": draft.urgency.value,
            "reason": draft.reason[:120],
        }
        batch.audits.append((job, "review.opened", details))
        log.warning("review.opened", extra={"job_id": job.id, "review_id": review_id, "role": draft.role})
        if not draft.notify:
            return
        message = {
            "subject": f"{job.pipeline}: human review needed ({draft.severity.value})",
            "text": f"{draft.reason}\nJob {job.id}, stage {draft.stage or '-'}, review {review_id}.",
            "urgency": draft.urgency.value,
            "role": draft.role,
            "job_id": job.id,
            "review_id": review_id,
            "fields": {"pipeline": job.pipeline, "stage": draft.stage, "severity": draft.severity.value},
        }
        batch.settled.notifications.extend(self._notification_jobs(unit, job.tenant, message, batch.now))

    def _notification_jobs(self, unit: UnitOfWork, tenant: str, message: dict[str, Any], now: float) -> list[Job]:
        """Jobs of the notification pipeline delivering ``message`` over each channel of its role."""
        notifier = self.oversight.notification_pipeline
        if notifier is None:
            return []
        urgency = Urgency(message["urgency"])
        created = [
            self._new_job(
                notifier,
                {"channel": channel, "message": {**message, "id": new_job_id(now)}},
                input_fingerprint(notifier.name, [message, channel, now]),
                tenant,
                NOTIFICATION_PRIORITY[urgency],
            )
            for channel in self.oversight.channels_for(message["role"])
        ]
        if created:
            unit.insert_jobs([new for new, _ in created], [event for _, done in created for event in done.events])
        return [done.job for _, done in created]

    def notify(
        self,
        role: str,
        urgency: Urgency,
        subject: str,
        text: str,
        *,
        tenant: str = constants.DEFAULT_TENANT,
        fields: Mapping[str, Any] | None = None,
        audit: AuditDraft | None = None,
    ) -> list[Job]:
        """Tell ``role`` something (an alert) over its channels, with an audit entry."""

        def work(unit: UnitOfWork) -> list[Job]:
            message = {
                "subject": subject,
                "text": text,
                "urgency": urgency.value,
                "role": role,
                "job_id": None,
                "review_id": None,
                "fields": dict(fields or {}),
            }
            created = self._notification_jobs(unit, tenant, message, self._clock())
            if audit is not None:
                unit.append_audit([audit])
            return created

        return self.store.transact(work)

    def submit(
        self,
        pipeline_name: str,
        job_input: Any,
        *,
        tenant: str = constants.DEFAULT_TENANT,
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> Submitted:
        request = JobRequest(pipeline_name, job_input, tenant, idempotency_key, priority)
        [outcome] = self.submit_many([request])
        if isinstance(outcome, VigiaError):
            raise outcome
        return outcome

    def submit_many(self, requests: Sequence[JobRequest]) -> list[Submitted | VigiaError]:
        """Store independent submissions in one transaction (one commit for many callers);
        each one succeeds or fails on its own."""
        outcomes: list[Submitted | VigiaError | None] = [None] * len(requests)
        checked: list[tuple[int, JobRequest, Pipeline, Any, str]] = []
        for index, request in enumerate(requests):
            try:
                pipeline = self.registry.get(request.pipeline)
                checked.append((index, request, pipeline, *self._checked_input(pipeline, request.input)))
            except VigiaError as error:
                outcomes[index] = error
            except Exception as error:  # a pipeline's validator failed: this request only
                log.warning("submit.validator_failed", extra={"error_type": type(error).__name__})
                outcomes[index] = InvalidInput(
                    f"the pipeline's input check failed ({type(error).__name__})", pipeline=request.pipeline
                )

        def work(unit: UnitOfWork) -> dict[int, Submitted | VigiaError]:
            stored: dict[int, Submitted | VigiaError] = {}
            unkeyed: list[tuple[NewJob, Submitted]] = []
            for index, request, pipeline, job_input, fingerprint in checked:
                new = self._new_job(pipeline, job_input, fingerprint, request.tenant, request.priority, request)
                if request.idempotency_key is None:
                    unkeyed.append(new)
                    stored[index] = new[1]
                    continue
                # A keyed job is written at once, so that a later request in this batch
                # with the same key finds it.
                existing = unit.find_idempotent(request.tenant, request.idempotency_key)
                if existing is None:
                    unit.insert_jobs([new[0]], new[1].events)
                    stored[index] = new[1]
                elif existing.input_hash != fingerprint:
                    stored[index] = IdempotencyConflict(
                        "this Idempotency-Key was already used with a different pipeline or input",
                        job_id=existing.id,
                    )
                else:
                    stored[index] = Submitted(existing, [], created=False)
            if unkeyed:
                unit.insert_jobs([job for job, _ in unkeyed], [event for _, done in unkeyed for event in done.events])
            actors = {index: request.actor for index, request, *_ in checked}
            self._audit_submissions(
                unit,
                [
                    (actors[index], done)
                    for index, done in stored.items()
                    if isinstance(done, Submitted) and done.created
                ],
            )
            return stored

        if checked:
            for index, outcome in self.store.transact(work).items():
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    def submit_batch(
        self,
        pipeline_name: str,
        inputs: Sequence[Any],
        *,
        tenant: str = constants.DEFAULT_TENANT,
        priority: int = 0,
        actor: str = SYSTEM_ACTOR,
    ) -> tuple[str, list[Submitted]]:
        """Store many jobs of one pipeline at once, all or none; returns the batch id."""
        pipeline = self.registry.get(pipeline_name)
        if not inputs:
            raise InvalidInput("a batch needs at least one job", field="items")
        checked = []
        for index, job_input in enumerate(inputs):
            try:
                checked.append(self._checked_input(pipeline, job_input))
            except InvalidInput as error:
                raise InvalidInput(f"item {index}: {error.message}", index=index, **error.details) from None

        def work(unit: UnitOfWork) -> tuple[str, list[Submitted]]:
            now = self._clock()
            batch_id = new_job_id(now)
            unit.insert_batch(batch_id, tenant, pipeline.name, len(checked), now)
            created = [
                self._new_job(pipeline, job_input, fingerprint, tenant, priority, batch_id=batch_id)
                for job_input, fingerprint in checked
            ]
            unit.insert_jobs([job for job, _ in created], [event for _, done in created for event in done.events])
            self._audit_submissions(unit, [(actor, done) for _, done in created], batch_id)
            return batch_id, [done for _, done in created]

        return self.store.transact(work)

    def _audit_submissions(
        self, unit: UnitOfWork, submitted: Sequence[tuple[str, Submitted]], batch_id: str | None = None
    ) -> None:
        drafts = []
        for actor, done in submitted:
            job = done.job
            details: dict[str, Any] = {"pipeline": job.pipeline, "priority": job.priority}
            if batch_id is not None:
                details["batch_id"] = batch_id
            drafts.append(
                AuditDraft("job.submitted", actor, job.created_at, job.tenant, job.id, self._subject(job), details)
            )
        if drafts:
            unit.append_audit(drafts)

    @staticmethod
    def _checked_input(pipeline: Pipeline, job_input: Any) -> tuple[Any, str]:
        try:
            job_input = to_storable(job_input)
        except NotStorable as error:
            raise InvalidInput(f"the job input {error}") from None
        if pipeline.validate_input is not None:
            pipeline.validate_input(job_input)
        return job_input, input_fingerprint(pipeline.name, job_input)

    def _new_job(
        self,
        pipeline: Pipeline,
        job_input: Any,
        fingerprint: str,
        tenant: str,
        priority: int,
        request: JobRequest | None = None,
        *,
        batch_id: str | None = None,
    ) -> tuple[NewJob, Submitted]:
        """A job to insert, and how its submission is answered once it is."""
        now = self._clock()
        job_id = new_job_id(now)
        idempotency_key = request.idempotency_key if request is not None else None
        event = Event(job_id, 1, EventType.JOB_QUEUED, JobState.QUEUED, None, 0.0, None, now)
        new = NewJob(
            id=job_id,
            tenant=tenant,
            pipeline=pipeline.name,
            pipeline_version=pipeline.version,
            priority=priority,
            input=job_input,
            input_hash=fingerprint,
            idempotency_key=idempotency_key,
            runs=orchestrator.plan_job(pipeline),
            created_at=now,
            batch_id=batch_id,
        )
        job = Job(
            id=job_id,
            tenant=tenant,
            pipeline=pipeline.name,
            pipeline_version=pipeline.version,
            state=JobState.QUEUED,
            priority=priority,
            progress=0.0,
            current_stage=None,
            input=job_input,
            input_hash=fingerprint,
            idempotency_key=idempotency_key,
            result=None,
            error_type=None,
            error_message=None,
            created_at=now,
            started_at=None,
            finished_at=None,
            updated_at=now,
            last_seq=event.seq,
            batch_id=batch_id,
        )
        return new, Submitted(job, [event], created=True)

    def claim(
        self, free_slots: Mapping[str, int], owner: str, lease_seconds: float
    ) -> tuple[list[Assignment], list[Event]]:
        """Claim up to ``free_slots[queue]`` ready stage runs per queue."""

        def work(unit: UnitOfWork) -> tuple[list[Assignment], list[Event]]:
            now = self._clock()
            claimed: list[StageRun] = []
            for queue, limit in free_slots.items():
                claimed.extend(unit.claim(queue, limit, owner, now + lease_seconds, now))
            if not claimed:
                return [], []
            batch = _Batch(unit.load([run.job_id for run in claimed]), now)
            runnable = []
            for run in claimed:
                job = batch.jobs[run.job_id]
                pipeline = self._pipeline_for(batch, job)
                if pipeline is not None:
                    batch.apply(orchestrator.on_claimed(pipeline, job, run, now))
                    runnable.append(run)
            settled = self._commit(unit, batch)
            return [
                self._assignment(batch.jobs[run.job_id], batch.runs[run.job_id], run) for run in runnable
            ], settled.events

        return self.store.transact(work)

    def assignment_for(self, run_id: int, owner: str, lease_seconds: float) -> Assignment | None:
        """What a distributed worker needs to run the stage run its message names, read
        without a transaction; None when the run is no longer ready (a duplicate delivery,
        a cancelled or finished job).

        The claim is not written here: the returned run is the claim the worker means to
        make, which `settle` writes together with the outcome for a stage that ends within
        the keeper's first interval, or the keeper writes for a longer one. A quick stage
        thus costs no transaction of its own (its settlement shares one with others); a
        duplicate delivery that races it loses at `settle`. `planned_claim` makes the same
        claim from what the message said, without this read."""
        snapshot = self.store.snapshot_of_run(run_id)
        if snapshot is None:
            return None
        job = snapshot.job
        run = next((other for other in snapshot.runs.values() if other.id == run_id), None)
        if run is None or run.state not in CLAIMABLE_STAGE_STATES or job.state.is_terminal:
            return None
        if job.pipeline not in self.registry or (
            orchestrator.incompatibility(self.registry.get(job.pipeline), snapshot.runs) is not None
        ):
            self._fail_unrunnable(job.id)
            return None
        claimed = self._claimed(run, owner, lease_seconds)
        return self._assignment(job, {**snapshot.runs, run.stage: claimed}, claimed)

    def _claimed(self, run: StageRun, owner: str, lease_seconds: float) -> StageRun:
        """``run`` as the claim of its next attempt by ``owner``, starting now."""
        now = self._clock()
        return run.evolve(
            state=StageState.RUNNING,
            attempts=run.attempts + 1,
            lease_owner=owner,
            lease_until=now + lease_seconds,
            started_at=now,
            finished_at=None,
            duration=None,
            progress=0.0,
        )

    def _fail_unrunnable(self, job_id: str) -> list[Event]:
        def work(unit: UnitOfWork) -> list[Event]:
            batch = _Batch(unit.load([job_id]), self._clock())
            if job_id in batch.jobs:
                self._pipeline_for(batch, batch.jobs[job_id])
            return self._commit(unit, batch).events

        return self.store.transact(work)

    def _claim_in(self, batch: _Batch, run: StageRun) -> bool:
        """Write the claim a worker made in memory (see `assignment_for`), with its
        "started" events, if the run is still the ready one it read."""
        job = batch.jobs.get(run.job_id)
        current = batch.runs.get(run.job_id, {}).get(run.stage)
        if (
            job is None
            or current is None
            or current.id != run.id
            or current.state not in CLAIMABLE_STAGE_STATES
            or current.attempts != run.attempts - 1
            or job.state.is_terminal
        ):
            return False
        pipeline = self._pipeline_for(batch, job)
        if pipeline is None:
            return False
        transition = orchestrator.on_claimed(pipeline, job, run, batch.now)
        transition.run_changes[run.stage] = {
            name: getattr(run, name)
            for name in (
                "state",
                "attempts",
                "lease_owner",
                "lease_until",
                "started_at",
                "finished_at",
                "duration",
                "progress",
            )
        }
        batch.apply(transition)
        return True

    def _pipeline_for(self, batch: _Batch, job: Job) -> Pipeline | None:
        """The job's pipeline, or None after failing the job when this installation cannot
        run it (not registered here, or its stages changed since the job began)."""
        try:
            pipeline = self.registry.get(job.pipeline)
        except UnknownPipeline as error:
            problem, error_type = error.message, "PipelineUnavailable"
        else:
            mismatch = orchestrator.incompatibility(pipeline, batch.runs[job.id])
            if mismatch is None:
                return pipeline
            problem, error_type = mismatch, "PipelineChanged"
        log.error("job.unrunnable", extra={"job_id": job.id, "error_type": error_type})
        batch.apply(orchestrator.on_unrunnable(job, batch.runs[job.id], error_type, problem, batch.now))
        return None

    def _assignment(self, job: Job, runs: Mapping[str, StageRun], run: StageRun) -> Assignment:
        ancestors = self.registry.get(job.pipeline).node(run.stage).ancestors
        return Assignment(
            run=runs[run.stage],
            job=job,
            outputs={
                name: other.output
                for name, other in runs.items()
                if name in ancestors and other.state is StageState.SUCCEEDED
            },
        )

    def settle(
        self,
        outcomes: Sequence[StageOutcome] = (),
        reports: Sequence[ProgressReport] = (),
        claims: Sequence[StageRun] = (),
        *,
        dispatching: bool = False,
    ) -> Settled:
        """Record claims made in memory (see `assignment_for`), progress reports and
        finished attempts, and decide what follows each. A refused claim (the run was taken,
        cancelled or its job ended meanwhile) drops that run's reports and outcome and is
        named in `Settled.refused`. With ``dispatching``, the runs that became ready are
        recorded as sent: the caller sends them itself."""
        if not outcomes and not reports and not claims:
            return Settled()

        def work(unit: UnitOfWork) -> Settled:
            now = self._clock()
            job_ids = [run.job_id for run in claims] + [report.job_id for report in reports]
            batch = _Batch(unit.load(job_ids + [outcome.job_id for outcome in outcomes]), now)
            # By attempt: a stale claim refused must not drop a later attempt's outcome.
            refused = {(run.id, run.attempts) for run in claims if not self._claim_in(batch, run)}
            # Progress first: an attempt's reports come before its outcome.
            for report in reports:
                if report.job_id in batch.jobs and (report.run_id, report.attempt) not in refused:
                    job = batch.jobs[report.job_id]
                    pipeline = self._pipeline_for(batch, job)
                    if pipeline is not None:
                        batch.apply(orchestrator.on_progress(pipeline, job, batch.runs[job.id], report))
            for outcome in outcomes:
                if outcome.job_id not in batch.jobs:
                    log.warning("outcome.job_missing", extra={"job_id": outcome.job_id})
                    continue
                if (outcome.run_id, outcome.attempt) in refused:
                    continue
                job = batch.jobs[outcome.job_id]
                pipeline = self._pipeline_for(batch, job)
                if pipeline is None:
                    continue
                transition = orchestrator.on_outcome(
                    pipeline, job, batch.runs[job.id], outcome, now, self._rand(), self.oversight.policies
                )
                if batch.apply(transition):
                    # The stage's own clinical decisions and messages, once its outcome counts.
                    batch.audits.extend(
                        (batch.jobs[job.id], f"decision.{action}", {"stage": outcome.stage, **details})
                        for action, details in outcome.decisions
                    )
                    batch.requests.extend(
                        (batch.jobs[job.id], outcome.stage, request) for request in outcome.notifications
                    )
            if dispatching:
                batch.mark_dispatched()
            settled = self._commit(unit, batch)
            settled.refused = {run_id for run_id, _ in refused}
            if dispatching:
                settled.ready = [self._with_work(batch, item) for item in settled.ready]
            return settled

        return self.store.transact(work)

    def cancel(self, job_id: str, tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> tuple[Job, list[Event]]:
        self.store.get_job(job_id, tenant)  # JobNotFound for another tenant's job

        def work(unit: UnitOfWork) -> tuple[Job, list[Event]]:
            now = self._clock()
            snapshots = unit.load([job_id])
            if job_id not in snapshots:
                raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
            batch = _Batch(snapshots, now, actor)
            batch.apply(orchestrator.on_cancel(batch.jobs[job_id], batch.runs[job_id], now))
            settled = self._commit(unit, batch)
            return batch.jobs[job_id], settled.events

        return self.store.transact(work)

    # --- the dead-letter queue ------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> Settled:
        """Take dead or failed jobs out of the dead-letter queue: each resumes from the
        stage that failed, keeping what earlier stages produced. All or none: one that
        cannot be retried (unknown, another tenant's, not dead or failed) refuses the call."""

        def work(unit: UnitOfWork) -> Settled:
            now = self._clock()
            snapshots = unit.load(list(job_ids))
            batch = _Batch(snapshots, now, actor)
            for job_id in dict.fromkeys(job_ids):
                job = batch.jobs.get(job_id)
                if job is None or (tenant is not None and job.tenant != tenant):
                    raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
                pipeline = self.registry.get(job.pipeline)
                batch.apply(orchestrator.on_retry(pipeline, job, batch.runs[job_id], now))
                batch.audits.append((batch.jobs[job_id], "job.retried", {"pipeline": job.pipeline}))
            return self._commit(unit, batch)

        return self.store.transact(work)

    def retry_dead(self, where: DeadFilter, actor: str = SYSTEM_ACTOR, *, limit: int = 10_000) -> Settled:
        """Retry every dead job ``where`` selects (up to ``limit``), a chunk per transaction."""
        settled = Settled()
        job_ids = self.store.dead_job_ids(where, limit)
        for start in range(0, len(job_ids), RETRY_CHUNK):
            chunk = self.retry(job_ids[start : start + RETRY_CHUNK], where.tenant, actor)
            settled.events.extend(chunk.events)
            settled.ready.extend(chunk.ready)
        return settled

    def purge_dead(self, where: DeadFilter, actor: str = SYSTEM_ACTOR, *, limit: int = 10_000) -> int:
        """Delete the dead jobs ``where`` selects (up to ``limit``), with their stage runs,
        events and reviews; the audit log keeps who purged what."""

        def work(unit: UnitOfWork) -> int:
            job_ids = unit.delete_dead_jobs(where, limit)
            if job_ids:
                details: dict[str, Any] = {"count": len(job_ids), "filter": where.describe()}
                details["job_ids"] = job_ids[: audit_module.MAX_DETAIL_ITEMS]
                unit.append_audit([AuditDraft("dlq.purged", actor, self._clock(), where.tenant, None, None, details)])
            return len(job_ids)

        return self.store.transact(work)

    # --- human review ---------------------------------------------------------------------

    def review(
        self,
        review_id: str,
        status: ReviewStatus,
        actor: str,
        *,
        tenant: str | None = None,
        note: str | None = None,
    ) -> Review:
        """Acknowledge or resolve a review item (open -> acknowledged -> resolved; an open
        one may be resolved at once). The note stays with the review, not in the audit log."""

        def work(unit: UnitOfWork) -> Review:
            now = self._clock()
            review = unit.lock_review(review_id)
            if review is None or (tenant is not None and review.tenant != tenant):
                raise ReviewNotFound(f"no review {review_id!r}", review_id=review_id)
            changed = review.transition(status, actor, now, note)
            unit.update_review(changed)
            job = unit.load([review.job_id], lock=False).get(review.job_id)
            details = {"review_id": review.id, "status": status.value, "pipeline": job.job.pipeline if job else None}
            unit.append_audit(
                [
                    AuditDraft(
                        f"review.{status.value}",
                        actor,
                        now,
                        review.tenant,
                        review.job_id,
                        self._subject(job.job if job else None),
                        details,
                    )
                ]
            )
            return changed

        return self.store.transact(work)

    def take_for_dispatch(
        self, limit: int = 500, *, resend_after: float = 60.0, resend_queues: Sequence[str] = ()
    ) -> list[Dispatch]:
        """Ready stage runs to send to their queues now (distributed mode)."""
        now = self._clock()
        taken = self.store.transact(
            lambda unit: unit.take_for_dispatch(
                now, limit, resend_before=now - resend_after, resend_queues=resend_queues
            )
        )
        return [self._first_stage_work(item) for item in taken]

    def _first_stage_work(self, item: Dispatch) -> Dispatch:
        """The store's dispatch knows no outputs: a stage that depends on none needs none."""
        if item.work is None or item.pipeline not in self.registry:
            return item
        node = self.registry.get(item.pipeline).nodes.get(item.stage)
        if node is None or node.ancestors:
            return item
        return replace(item, work=replace(item.work, outputs={}))

    def _with_work(self, batch: _Batch, item: Dispatch) -> Dispatch:
        """A run this settlement made ready, with what its worker needs (all in hand here)."""
        if item.work is None:
            return item
        job = batch.jobs[item.work.job_id]
        runs = batch.runs[job.id]
        run = runs[item.stage]
        ancestors = self.registry.get(job.pipeline).node(item.stage).ancestors
        outputs = {
            name: other.output
            for name, other in runs.items()
            if name in ancestors and other.state is StageState.SUCCEEDED
        }
        return replace(item, work=StageWork(job.id, run.attempts, job.input, outputs))

    def planned_claim(self, item: Dispatch, owner: str, lease_seconds: float) -> StageRun | None:
        """The claim a worker means to make on a run its message described (see
        `assignment_for`), made without reading the store; None when the message says too
        little or names what this installation does not run (the worker then reads)."""
        work = item.work
        if work is None or work.outputs is None or item.pipeline not in self.registry:
            return None
        if item.stage not in self.registry.get(item.pipeline).nodes:
            return None
        # As the message knew it: ready, with no lease (what a claim does not set is unused).
        sent = StageRun(item.run_id, work.job_id, item.stage, StageState.QUEUED, item.queue, 0, work.attempts,
                        self._clock(), None, None, None, None, None, 0.0, None, None, None)  # fmt: skip
        return self._claimed(sent, owner, lease_seconds)

    def reap(self) -> Settled:
        """Take back stage runs whose worker stopped renewing its lease: each counts as a
        failed attempt (`LeaseExpired`, retryable) and follows the stage's retry policy."""

        def work(unit: UnitOfWork) -> Settled:
            now = self._clock()
            expired = unit.expired_leases(now, REAP_BATCH)
            if not expired:
                return Settled()
            batch = _Batch(unit.load([run.job_id for run in expired]), now)
            for run in expired:
                job = batch.jobs[run.job_id]
                log.warning("lease.expired", extra={"job_id": job.id, "stage": run.stage, "owner": run.lease_owner})
                outcome = StageOutcome(
                    run_id=run.id,
                    job_id=run.job_id,
                    stage=run.stage,
                    attempt=run.attempts,
                    status="failed",
                    started_at=run.started_at or now,
                    finished_at=now,
                    error_type="LeaseExpired",
                    error_message=f"worker {run.lease_owner} stopped renewing its lease",
                    retryable=True,
                )
                pipeline = self._pipeline_for(batch, job)
                if pipeline is not None:
                    batch.apply(
                        orchestrator.on_outcome(
                            pipeline, job, batch.runs[job.id], outcome, now, self._rand(), self.oversight.policies
                        )
                    )
            return self._commit(unit, batch)

        return self.store.transact(work)
