"""Applies the orchestrator's decisions to the store, atomically. Shared by every executor.

Each method opens one unit of work, loads (and locks) the jobs concerned, applies what the
orchestrator decides to a `Settlement` in memory, and writes it with its events and the
oversight that follows (`vigia.oversight`). Methods are synchronous: executors call them
from a thread (embedded) or a worker process (Celery). They return the events written, for
the caller to publish once the transaction has committed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigia import audit as audit_module
from vigia import constants, dispatch, orchestrator
from vigia.audit import AuditDraft
from vigia.dispatch import Assignment, Claimed, SlotOffer
from vigia.escalation import Review, ReviewStatus, Safeguards, Urgency
from vigia.exceptions import IdempotencyConflict, InvalidInput, JobNotFound, ReviewNotFound, VigiaError
from vigia.expiry import Expiry
from vigia.job import CLAIMABLE_STAGE_STATES, Event, Job, StageRun, new_job_id
from vigia.notify.message import Message
from vigia.orchestrator import ProgressReport, StageOutcome
from vigia.oversight import Oversight
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.settlement import Settled, Settlement
from vigia.store.base import DeadFilter, Dispatch, JobStore, NewJob, UnitOfWork
from vigia.submission import JobRequest, Submitted, checked_input, new_job

log = logging.getLogger("vigia.coordinator")

#: The audit log's actor for what the engine decides itself.
SYSTEM_ACTOR = constants.SYSTEM_ACTOR
#: Stage runs the reaper takes back per pass.
REAP_BATCH = 500
#: Jobs retried per transaction by a bulk retry.
RETRY_CHUNK = 100

__all__ = [
    "SYSTEM_ACTOR",
    "Assignment",
    "Claimed",
    "Coordinator",
    "JobRequest",
    "Settled",
    "SlotOffer",
    "Submitted",
    "Written",
]


@dataclass(slots=True)
class Written:
    """What `Coordinator.write` stored: each submission's outcome in order, the settlement,
    and the claim (None when none was made)."""

    submitted: list[Submitted | VigiaError]
    settled: Settled
    claimed: Claimed | None


class Coordinator:
    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        safeguards: Safeguards | None = None,
        tenant_cap: int | None = None,
    ) -> None:
        self.store = store
        #: Stage runs one tenant may have in progress per queue (None: no cap; free slots
        #: still go to the least-served tenant first).
        self.tenant_cap = tenant_cap
        self.registry = registry
        self.safeguards = safeguards or Safeguards()
        self.oversight = Oversight(registry, self.safeguards, clock)
        self._clock = clock
        self._rand = rand

    def _settlement(
        self, unit: UnitOfWork, job_ids: Sequence[str], now: float, actor: str = SYSTEM_ACTOR
    ) -> Settlement:
        return Settlement(unit.load(list(job_ids)), now, self.registry, actor)

    # --- submissions ----------------------------------------------------------------------

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
        return self.write(requests).submitted

    def write(
        self,
        requests: Sequence[JobRequest] = (),
        outcomes: Sequence[StageOutcome] = (),
        reports: Sequence[ProgressReport] = (),
        offer: SlotOffer | None = None,
    ) -> Written:
        """Submissions (`submit_many`), then finished attempts and progress (`settle`), then a
        claim for ``offer``'s free slots, in one transaction: what an embedded executor has
        gathered meanwhile costs one commit. The claim is made on the queues where a job was
        created or a stage run became ready here, or on all of them with ``offer.eager``."""
        submitted, checked = self._checked(requests)
        if not checked and not outcomes and not reports and offer is None:
            return Written([item for item in submitted if item is not None], Settled(), None)

        def work(unit: UnitOfWork) -> Written:
            stored, fresh = self._store_submissions(unit, checked) if checked else ({}, set())
            settled = self._settle_in(unit, outcomes, reports, ()) if outcomes or reports else Settled()
            claimed = None
            if offer is not None:
                # Where nothing became ready the last claim found all there was (or the
                # offer would be eager): only the queues with news are read.
                news = fresh | {item.queue for item in settled.ready}
                wanted = offer if offer.eager else offer.only(news)
                if wanted.free_slots:
                    claimed = self._claim_in(unit, wanted)
            results = [stored.get(index, item) for index, item in enumerate(submitted)]
            return Written([item for item in results if item is not None], settled, claimed)

        return self.store.transact(work)

    def _checked(
        self, requests: Sequence[JobRequest]
    ) -> tuple[list[Submitted | VigiaError | None], list[tuple[int, JobRequest, Pipeline, Any, str]]]:
        """Each request's input checked by its pipeline (outside any transaction): the
        refusals by position, and what passed."""
        refused: list[Submitted | VigiaError | None] = [None] * len(requests)
        checked: list[tuple[int, JobRequest, Pipeline, Any, str]] = []
        for index, request in enumerate(requests):
            try:
                pipeline = self.registry.get(request.pipeline)
                checked.append((index, request, pipeline, *checked_input(pipeline, request.input)))
            except VigiaError as error:
                refused[index] = error
            except Exception as error:  # a pipeline's validator failed: this request only
                log.warning("submit.validator_failed", extra={"error_type": type(error).__name__})
                refused[index] = InvalidInput(
                    f"the pipeline's input check failed ({type(error).__name__})", pipeline=request.pipeline
                )
        return refused, checked

    def _store_submissions(
        self, unit: UnitOfWork, checked: Sequence[tuple[int, JobRequest, Pipeline, Any, str]]
    ) -> tuple[dict[int, Submitted | VigiaError], set[str]]:
        """Each submission's outcome by position, and the queues of the stage runs the new
        jobs made ready."""
        stored: dict[int, Submitted | VigiaError] = {}
        fresh: set[str] = set()
        unkeyed: list[tuple[NewJob, Submitted]] = []
        for index, request, pipeline, job_input, fingerprint in checked:
            new = new_job(
                pipeline,
                job_input,
                fingerprint,
                tenant=request.tenant,
                priority=request.priority,
                now=self._clock(),
                idempotency_key=request.idempotency_key,
            )
            ready = {run.queue for run in new[0].runs if run.state in CLAIMABLE_STAGE_STATES}
            if request.idempotency_key is None:
                fresh |= ready
                unkeyed.append(new)
                stored[index] = new[1]
                continue
            # A keyed job is written at once, so that a later request in this batch with the
            # same key finds it.
            existing = unit.find_idempotent(request.tenant, request.idempotency_key)
            if existing is None:
                unit.insert_jobs([new[0]], new[1].events)
                stored[index] = new[1]
                fresh |= ready
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
        self.oversight.audit_submissions(
            unit,
            [(actors[index], done) for index, done in stored.items() if isinstance(done, Submitted) and done.created],
        )
        return stored, fresh

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
                checked.append(checked_input(pipeline, job_input))
            except InvalidInput as error:
                raise InvalidInput(f"item {index}: {error.message}", index=index, **error.details) from None

        def work(unit: UnitOfWork) -> tuple[str, list[Submitted]]:
            now = self._clock()
            batch_id = new_job_id(now)
            unit.insert_batch(batch_id, tenant, pipeline.name, len(checked), now)
            created = [
                new_job(
                    pipeline,
                    job_input,
                    fingerprint,
                    tenant=tenant,
                    priority=priority,
                    now=self._clock(),
                    batch_id=batch_id,
                )
                for job_input, fingerprint in checked
            ]
            unit.insert_jobs([job for job, _ in created], [event for _, done in created for event in done.events])
            self.oversight.audit_submissions(unit, [(actor, done) for _, done in created], batch_id)
            return batch_id, [done for _, done in created]

        return self.store.transact(work)

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
            now = self._clock()
            message = Message(new_job_id(now), subject, text, urgency, role, fields=dict(fields or {}))
            created = self.oversight.notification_jobs(unit, tenant, message, now)
            if audit is not None:
                unit.append_audit([audit])
            return created

        return self.store.transact(work)

    # --- claims and outcomes ----------------------------------------------------------------

    def claim(
        self, free_slots: Mapping[str, int], owner: str, lease_seconds: float
    ) -> tuple[list[Assignment], list[Event]]:
        """Claim up to ``free_slots[queue]`` ready stage runs per queue."""
        claimed = self.store.transact(lambda unit: self._claim_in(unit, SlotOffer(free_slots, owner, lease_seconds)))
        return claimed.assignments, claimed.events

    def _claim_in(self, unit: UnitOfWork, offer: SlotOffer) -> Claimed:
        now = self._clock()
        claimed = unit.claim(offer.free_slots, offer.owner, now + offer.lease_seconds, now, self.tenant_cap)
        if not claimed:
            return Claimed([], [], tuple(offer.free_slots))
        settlement = self._settlement(unit, [run.job_id for run in claimed], now)
        runnable: list[tuple[Pipeline, StageRun]] = []
        for run in claimed:
            job = settlement.jobs[run.job_id]
            pipeline = settlement.pipeline_for(job)
            if pipeline is not None:
                settlement.apply(orchestrator.on_claimed(pipeline, job, run, now))
                runnable.append((pipeline, run))
        settled = self.oversight.commit(unit, settlement)
        return Claimed(
            [
                dispatch.assignment(pipeline, settlement.jobs[run.job_id], settlement.runs[run.job_id], run)
                for pipeline, run in runnable
            ],
            settled.events,
            tuple(offer.free_slots),
        )

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
        claimed = dispatch.claimed(run, owner, lease_seconds, self._clock())
        return dispatch.assignment(self.registry.get(job.pipeline), job, {**snapshot.runs, run.stage: claimed}, claimed)

    def planned_claim(self, item: Dispatch, owner: str, lease_seconds: float) -> StageRun | None:
        """The claim a worker means to make on a run its message described (see
        `assignment_for` and `vigia.dispatch.planned_claim`)."""
        return dispatch.planned_claim(self.registry, item, owner, lease_seconds, self._clock())

    def _fail_unrunnable(self, job_id: str) -> list[Event]:
        def work(unit: UnitOfWork) -> list[Event]:
            settlement = self._settlement(unit, [job_id], self._clock())
            if job_id in settlement.jobs:
                settlement.pipeline_for(settlement.jobs[job_id])
            return self.oversight.commit(unit, settlement).events

        return self.store.transact(work)

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
        return self.store.transact(
            lambda unit: self._settle_in(unit, outcomes, reports, claims, dispatching=dispatching)
        )

    def _settle_in(
        self,
        unit: UnitOfWork,
        outcomes: Sequence[StageOutcome],
        reports: Sequence[ProgressReport],
        claims: Sequence[StageRun],
        *,
        dispatching: bool = False,
    ) -> Settled:
        now = self._clock()
        job_ids = [run.job_id for run in claims] + [report.job_id for report in reports]
        settlement = self._settlement(unit, job_ids + [outcome.job_id for outcome in outcomes], now)
        # By attempt: a stale claim refused must not drop a later attempt's outcome.
        refused = {(run.id, run.attempts) for run in claims if not settlement.record_claim(run)}
        # Progress first: an attempt's reports come before its outcome.
        for report in reports:
            if report.job_id in settlement.jobs and (report.run_id, report.attempt) not in refused:
                job = settlement.jobs[report.job_id]
                pipeline = settlement.pipeline_for(job)
                if pipeline is not None:
                    settlement.apply(orchestrator.on_progress(pipeline, job, settlement.runs[job.id], report))
        for outcome in outcomes:
            if (outcome.run_id, outcome.attempt) not in refused:
                self._settle_outcome(settlement, outcome)
        if dispatching:
            settlement.mark_dispatched()
        settled = self.oversight.commit(unit, settlement)
        settled.refused = {run_id for run_id, _ in refused}
        if dispatching:
            settled.ready = [self._with_work(settlement, item) for item in settled.ready]
        return settled

    def _settle_outcome(self, settlement: Settlement, outcome: StageOutcome) -> None:
        if outcome.job_id not in settlement.jobs:
            log.warning("outcome.job_missing", extra={"job_id": outcome.job_id})
            return
        job = settlement.jobs[outcome.job_id]
        pipeline = settlement.pipeline_for(job)
        if pipeline is None:
            return
        transition = orchestrator.on_outcome(
            pipeline, job, settlement.runs[job.id], outcome, settlement.now, self._rand(), self.safeguards.policies
        )
        if not settlement.apply(transition):
            return
        # The stage's own clinical decisions and messages, once its outcome counts.
        job = settlement.jobs[job.id]
        for action, details in outcome.decisions:
            settlement.audit(job, f"decision.{action}", {"stage": outcome.stage, **details})
        for request in outcome.notifications:
            message = Message(
                new_job_id(settlement.now),
                request.subject,
                request.text,
                request.urgency,
                request.role,
                job_id=job.id,
                fields={"pipeline": job.pipeline, "stage": outcome.stage},
            )
            settlement.messages.append((job, message))

    def _with_work(self, settlement: Settlement, item: Dispatch) -> Dispatch:
        if item.work is None:
            return item
        job = settlement.jobs[item.work.job_id]
        return dispatch.with_work(self.registry.get(job.pipeline), job, settlement.runs[job.id], item)

    def cancel(self, job_id: str, tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> tuple[Job, list[Event]]:
        self.store.get_job(job_id, tenant)  # JobNotFound for another tenant's job

        def work(unit: UnitOfWork) -> tuple[Job, list[Event]]:
            now = self._clock()
            settlement = self._settlement(unit, [job_id], now, actor)
            if job_id not in settlement.jobs:
                raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
            settlement.apply(orchestrator.on_cancel(settlement.jobs[job_id], settlement.runs[job_id], now))
            settled = self.oversight.commit(unit, settlement)
            return settlement.jobs[job_id], settled.events

        return self.store.transact(work)

    # --- the dead-letter queue ------------------------------------------------------------

    def retry(self, job_ids: Sequence[str], tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> Settled:
        """Take dead or failed jobs out of the dead-letter queue: each resumes from the
        stage that failed, keeping what earlier stages produced. All or none: one that
        cannot be retried (unknown, another tenant's, not dead or failed) refuses the call."""

        def work(unit: UnitOfWork) -> Settled:
            now = self._clock()
            settlement = self._settlement(unit, job_ids, now, actor)
            for job_id in dict.fromkeys(job_ids):
                job = settlement.jobs.get(job_id)
                if job is None or (tenant is not None and job.tenant != tenant):
                    raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
                pipeline = self.registry.get(job.pipeline)
                settlement.apply(orchestrator.on_retry(pipeline, job, settlement.runs[job_id], now))
                settlement.audit(settlement.jobs[job_id], "job.retried", {"pipeline": job.pipeline})
            return self.oversight.commit(unit, settlement)

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

    def purge_expired(self, expiry: Expiry, limit: int, actor: str = SYSTEM_ACTOR) -> tuple[list[str], set[str]]:
        """Delete up to ``limit`` jobs past their retention in one transaction (audited);
        their ids, and the files they named that nothing stored names any more."""

        def work(unit: UnitOfWork) -> tuple[list[str], set[str]]:
            job_ids, named = unit.delete_expired_jobs(expiry, limit)
            if not job_ids:
                return [], set()
            details: dict[str, Any] = {"count": len(job_ids), "expiry": expiry.describe()}
            details["job_ids"] = job_ids[: audit_module.MAX_DETAIL_ITEMS]
            unit.append_audit([AuditDraft("jobs.purged", actor, self._clock(), None, None, None, details)])
            return job_ids, unit.unreferenced_files(named)

        return self.store.transact(work)

    def unreferenced_files(self, digests: set[str]) -> set[str]:
        """Of ``digests``, the files no stored job and no document names."""
        return self.store.transact(lambda unit: unit.unreferenced_files(digests))

    def count_expired(self, expiry: Expiry) -> int:
        return self.store.transact(lambda unit: unit.count_expired_jobs(expiry))

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
            snapshot = unit.load([review.job_id], lock=False).get(review.job_id)
            job = snapshot.job if snapshot else None
            details = {"review_id": review.id, "status": status.value, "pipeline": job.pipeline if job else None}
            subject = self.oversight.subject(job)
            # The review's own tenant and job: they stay when the job was purged.
            unit.append_audit(
                [AuditDraft(f"review.{status.value}", actor, now, review.tenant, review.job_id, subject, details)]
            )
            return changed

        return self.store.transact(work)

    # --- dispatching and reaping ----------------------------------------------------------

    def take_for_dispatch(
        self, limit: int = 500, *, resend_after: float = 60.0, resend_queues: Sequence[str] = ()
    ) -> list[Dispatch]:
        """Ready stage runs to send to their queues now (distributed mode)."""
        now = self._clock()
        taken = self.store.transact(
            lambda unit: unit.take_for_dispatch(
                now, limit, resend_before=now - resend_after, resend_queues=resend_queues, tenant_cap=self.tenant_cap
            )
        )
        return [dispatch.first_stage_work(self.registry, item) for item in taken]

    def reap(self) -> Settled:
        """Take back stage runs whose worker stopped renewing its lease: each counts as a
        failed attempt (`LeaseExpired`, retryable) and follows the stage's retry policy."""

        def work(unit: UnitOfWork) -> Settled:
            now = self._clock()
            expired = unit.expired_leases(now, REAP_BATCH)
            if not expired:
                return Settled()
            settlement = self._settlement(unit, [run.job_id for run in expired], now)
            for run in expired:
                log.warning("lease.expired", extra={"job_id": run.job_id, "stage": run.stage, "owner": run.lease_owner})
                self._settle_outcome(
                    settlement,
                    StageOutcome(
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
                    ),
                )
            return self.oversight.commit(unit, settlement)

        return self.store.transact(work)
