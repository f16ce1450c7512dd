"""Jobs, stage runs and events: frozen value objects with explicit mapping from rows."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self


class JobState(StrEnum):
    QUEUED = "queued"  # accepted and stored; no stage has started yet
    RUNNING = "running"  # at least one stage has started
    SUCCEEDED = "succeeded"  # every stage succeeded
    DEGRADED = "degraded"  # finished, but a non-critical stage failed or was skipped
    FAILED = "failed"  # a critical stage failed for good (a permanent error)
    DEAD = "dead"  # a critical stage exhausted its retries: in the dead-letter queue
    CANCELLED = "cancelled"  # stopped on request

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.DEGRADED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED}
)


class StageState(StrEnum):
    PENDING = "pending"  # waiting for the stages it depends on
    QUEUED = "queued"  # ready, waiting for a worker
    RUNNING = "running"  # a worker holds its lease
    SUCCEEDED = "succeeded"  # finished; its output is recorded
    FAILED = "failed"  # failed for good (no attempts left, or a permanent error)
    RETRYING = "retrying"  # failed; will be queued again at `available_at`
    SKIPPED = "skipped"  # chose not to run (Skip): the job is degraded
    CANCELLED = "cancelled"  # the job was cancelled before this stage finished

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGE_STATES


TERMINAL_STAGE_STATES = frozenset({StageState.SUCCEEDED, StageState.FAILED, StageState.SKIPPED, StageState.CANCELLED})
#: States a worker may claim once `available_at` has come.
CLAIMABLE_STAGE_STATES = (StageState.QUEUED, StageState.RETRYING)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    tenant: str
    pipeline: str
    pipeline_version: str
    state: JobState
    priority: int
    #: Overall progress, 0–100; never goes back, 100 only once finished.
    progress: float
    current_stage: str | None
    input: Any
    input_hash: str
    idempotency_key: str | None
    result: Any
    error_type: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    #: Sequence number of the job's latest event.
    last_seq: int
    #: The batch the job was submitted in, if any.
    batch_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        values = {field.name: row[field.name] for field in dataclasses.fields(cls)}
        values["state"] = JobState(values["state"])
        return cls(**values)

    @classmethod
    def queued(
        cls,
        job_id: str,
        *,
        tenant: str,
        pipeline: str,
        pipeline_version: str,
        priority: int,
        input: Any,
        input_hash: str,
        created_at: float,
        idempotency_key: str | None = None,
        batch_id: str | None = None,
    ) -> Self:
        """A job just accepted: queued, nothing run yet, its first event (`job.queued`) written."""
        return cls(
            id=job_id,
            tenant=tenant,
            pipeline=pipeline,
            pipeline_version=pipeline_version,
            state=JobState.QUEUED,
            priority=priority,
            progress=0.0,
            current_stage=None,
            input=input,
            input_hash=input_hash,
            idempotency_key=idempotency_key,
            result=None,
            error_type=None,
            error_message=None,
            created_at=created_at,
            started_at=None,
            finished_at=None,
            updated_at=created_at,
            last_seq=1,
            batch_id=batch_id,
        )

    def evolve(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        """The job without its input and result: what listings show."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "pipeline": self.pipeline,
            "pipeline_version": self.pipeline_version,
            "state": self.state.value,
            "priority": self.priority,
            "progress": self.progress,
            "current_stage": self.current_stage,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
            "last_seq": self.last_seq,
        }


@dataclass(frozen=True, slots=True)
class StageRun:
    id: int
    job_id: str
    stage: str
    state: StageState
    queue: str
    priority: int
    attempts: int
    #: Monotonic clock is not shared across machines; all times are epoch seconds.
    available_at: float
    lease_owner: str | None
    lease_until: float | None
    started_at: float | None
    finished_at: float | None
    duration: float | None
    progress: float
    error_type: str | None
    error_message: str | None
    output: Any
    #: When a distributed executor last sent this run to its queue (None: not since it
    #: became ready).
    dispatched_at: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        values = {field.name: row[field.name] for field in dataclasses.fields(cls)}
        values["state"] = StageState(values["state"])
        return cls(**values)

    @classmethod
    def ready(cls, run_id: int, *, job_id: str, stage: str, queue: str, attempts: int, available_at: float) -> Self:
        """A run waiting for a worker, as its dispatcher knew it: no lease, nothing run yet
        in this attempt (what a claim does not set is left empty)."""
        return cls(
            id=run_id,
            job_id=job_id,
            stage=stage,
            state=StageState.QUEUED,
            queue=queue,
            priority=0,
            attempts=attempts,
            available_at=available_at,
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

    def evolve(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "state": self.state.value,
            "queue": self.queue,
            "attempts": self.attempts,
            "progress": self.progress,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "error_type": self.error_type,
            "error_message": self.error_message,
        }


class EventType(StrEnum):
    JOB_QUEUED = "job.queued"
    JOB_STARTED = "job.started"
    JOB_FINISHED = "job.finished"  # `state` says how
    STAGE_STARTED = "stage.started"
    STAGE_PROGRESS = "stage.progress"
    STAGE_SUCCEEDED = "stage.succeeded"
    STAGE_RETRYING = "stage.retrying"
    STAGE_FAILED = "stage.failed"
    STAGE_SKIPPED = "stage.skipped"
    STAGE_CANCELLED = "stage.cancelled"
    JOB_CANCEL_REQUESTED = "job.cancel_requested"
    JOB_ESCALATED = "job.escalated"  # a human-review item was opened; `message` says why
    JOB_RETRIED = "job.retried"  # taken out of the dead-letter queue to run again


@dataclass(frozen=True, slots=True)
class Event:
    job_id: str
    #: Per job, starting at 1, without gaps: a client resumes after the last one it saw.
    seq: int
    type: EventType
    #: The job's state once this event happened.
    state: JobState
    stage: str | None
    progress: float
    message: str | None
    created_at: float
    #: The stage's own progress (0.0–1.0) for stage events, so a client can draw a bar per stage.
    stage_progress: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        values = {field.name: row[field.name] for field in dataclasses.fields(cls)}
        values["type"] = EventType(values["type"])
        values["state"] = JobState(values["state"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "seq": self.seq,
            "type": self.type.value,
            "state": self.state.value,
            "stage": self.stage,
            "progress": self.progress,
            "message": self.message,
            "created_at": self.created_at,
            "stage_progress": self.stage_progress,
        }

    @property
    def is_final(self) -> bool:
        return self.type is EventType.JOB_FINISHED


#: Sequence numbers are 32-bit in the store; a client asking to resume beyond gets nothing.
MAX_SEQ = 2**31 - 1
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the shape of a job (or batch) id; anything else names nothing."""
    return bool(_JOB_ID.match(text))


def new_job_id(now: float) -> str:
    """A 32-hex-digit id that sorts by creation time: 48 bits of milliseconds, 80 random bits."""
    return f"{int(now * 1000):012x}{secrets.randbits(80):020x}"


def id_floor(moment: float) -> str:
    """The smallest job id that can have been created at or after ``moment``."""
    return f"{max(0, int(moment * 1000)):012x}" + "0" * 20
