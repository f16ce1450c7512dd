"""A settlement: the orchestrator's transitions applied, in order, to in-memory snapshots of
the jobs concerned, gathered into one write.

It touches no database: the coordinator loads the snapshots in a unit of work, applies
transitions here, then writes `writes` and hands the rest (escalations, messages, audit
entries) to `vigia.oversight`. What it decided is in `settled`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vigia import constants, orchestrator
from vigia.escalation import EscalationDraft
from vigia.exceptions import UnknownPipeline
from vigia.job import CLAIMABLE_STAGE_STATES, Event, Job, JobState, StageRun
from vigia.notify.message import Message
from vigia.orchestrator import EventDraft, Transition
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.store.base import Dispatch, Snapshot, StageWork, WriteSet

log = logging.getLogger("vigia.coordinator")

#: The columns a claim made in memory sets on its stage run.
CLAIM_COLUMNS = ("state", "attempts", "lease_owner", "lease_until", "started_at", "finished_at", "duration", "progress")


@dataclass(slots=True)
class Settled:
    """What a settlement decided, once it has committed."""

    events: list[Event] = field(default_factory=list)
    #: Stage runs that became ready: what a distributed executor sends next.
    ready: list[Dispatch] = field(default_factory=list)
    #: Jobs that reached a terminal state.
    finished: list[Job] = field(default_factory=list)
    #: Claims `settle` refused (by run id): those runs belong to nobody's attempt now.
    refused: set[int] = field(default_factory=set)
    #: Notification jobs created for the reviews and messages of this settlement.
    notifications: list[Job] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An audit entry to chain at commit: about ``job`` (or the installation), ``action``."""

    job: Job | None
    action: str
    details: Mapping[str, Any]


class Settlement:
    """Transitions applied in order to in-memory snapshots, gathered into one write."""

    def __init__(
        self,
        snapshots: Mapping[str, Snapshot],
        now: float,
        registry: Registry,
        actor: str = constants.SYSTEM_ACTOR,
    ) -> None:
        self.now = now
        self.registry = registry
        #: Who the audit log says acted: an API key's id, or "system" for the engine itself.
        self.actor = actor
        self.jobs = {job_id: snapshot.job for job_id, snapshot in snapshots.items()}
        self.runs = {job_id: dict(snapshot.runs) for job_id, snapshot in snapshots.items()}
        self.writes = WriteSet()
        self.settled = Settled()
        #: Review items to open (with their notifications).
        self.escalations: list[tuple[Job, EscalationDraft]] = []
        #: Messages stages asked to send, by the job they concern (without ids yet).
        self.messages: list[tuple[Job, Message]] = []
        self.audits: list[AuditNote] = []

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
                StageWork(job.id, runs[stage].attempts, job.input, None, job.tenant),
            )
            for stage in transition.ready
        )
        if "state" in transition.job_changes:
            if job.state.is_terminal:
                self.settled.finished.append(job)
            details: dict[str, Any] = {"pipeline": job.pipeline}
            if job.error_type and job.state in (JobState.FAILED, JobState.DEAD):
                details["error_type"] = job.error_type
            self.audit(job, f"job.{job.state.value}", details)
        self.escalations.extend((job, draft) for draft in transition.escalations)
        return True

    def audit(self, job: Job | None, action: str, details: Mapping[str, Any]) -> None:
        self.audits.append(AuditNote(job, action, details))

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

    def pipeline_for(self, job: Job) -> Pipeline | None:
        """The job's pipeline, or None after failing the job when this installation cannot
        run it (not registered here, or its stages changed since the job began)."""
        try:
            pipeline = self.registry.get(job.pipeline)
        except UnknownPipeline as error:
            problem, error_type = error.message, "PipelineUnavailable"
        else:
            mismatch = orchestrator.incompatibility(pipeline, self.runs[job.id])
            if mismatch is None:
                return pipeline
            problem, error_type = mismatch, "PipelineChanged"
        log.error("job.unrunnable", extra={"job_id": job.id, "error_type": error_type})
        self.apply(orchestrator.on_unrunnable(job, self.runs[job.id], error_type, problem, self.now))
        return None

    def record_claim(self, run: StageRun) -> bool:
        """Write the claim a worker made in memory (see `Coordinator.assignment_for`), with
        its "started" events, if the run is still the ready one it read."""
        job = self.jobs.get(run.job_id)
        current = self.runs.get(run.job_id, {}).get(run.stage)
        if (
            job is None
            or current is None
            or current.id != run.id
            or current.state not in CLAIMABLE_STAGE_STATES
            or current.attempts != run.attempts - 1
            or job.state.is_terminal
        ):
            return False
        pipeline = self.pipeline_for(job)
        if pipeline is None:
            return False
        transition = orchestrator.on_claimed(pipeline, job, run, self.now)
        transition.run_changes[run.stage] = {name: getattr(run, name) for name in CLAIM_COLUMNS}
        self.apply(transition)
        return True

    def mark_dispatched(self) -> None:
        """Record the ready runs as sent now: the caller sends them once this commits (a
        crash in between leaves them to the dispatcher's re-send of lost messages)."""
        for item in self.settled.ready:
            self.writes.runs.setdefault(item.run_id, {})["dispatched_at"] = self.now
