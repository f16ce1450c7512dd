"""The job store interface: the source of truth every executor and the API share.

Writes that must see a consistent job happen inside a `UnitOfWork`, which locks the jobs
it loads until it commits; that is how two workers finishing parallel stages of one job
agree on what runs next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from vigia.audit import AuditDraft
from vigia.escalation import Review, ReviewStatus
from vigia.expiry import Expiry
from vigia.job import Event, Job, JobState, StageRun
from vigia.orchestrator import InitialRun

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    tenant: str
    pipeline: str
    pipeline_version: str
    priority: int
    input: Any
    input_hash: str
    idempotency_key: str | None
    runs: Sequence[InitialRun]
    created_at: float
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobFilter:
    tenant: str | None = None
    pipeline: str | None = None
    states: tuple[JobState, ...] = ()
    created_after: float | None = None
    created_before: float | None = None
    #: Jobs whose id starts with this (lowercase hex), e.g. the 8 characters a page shows.
    id_prefix: str | None = None
    batch_id: str | None = None
    #: Include the built-in notification jobs when no pipeline is named.
    internal: bool = False


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which jobs of the dead-letter queue a listing, a bulk retry or a purge concerns."""

    tenant: str | None = None
    pipeline: str | None = None
    #: The stage that failed.
    stage: str | None = None
    error_type: str | None = None
    #: When the job died, in epoch seconds.
    died_after: float | None = None
    died_before: float | None = None

    def describe(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A job in the dead-letter queue, with the stage that failed and its last error."""

    job: Job
    stage: str | None
    attempts: int
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class ReviewFilter:
    tenant: str | None = None
    statuses: tuple[ReviewStatus, ...] = ()
    role: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    #: Pass back to get the next (older) page; None when this is the last one.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job and its stage runs by stage name, as loaded (and locked) in a unit of work."""

    job: Job
    runs: Mapping[str, StageRun]


@dataclass(slots=True)
class WriteSet:
    """Everything one unit of work writes: column changes by primary key, and new events."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.runs or self.events)


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    tenant: str
    pipeline: str
    size: int
    created_at: float
    #: Jobs of the batch by state.
    counts: Mapping[str, int]
    #: Mean progress of the batch's jobs, 0–100.
    progress: float

    @property
    def finished(self) -> int:
        return sum(count for state, count in self.counts.items() if JobState(state).is_terminal)


@dataclass(frozen=True, slots=True)
class StageWork:
    """What a worker needs to run a stage run without reading the store first, as its
    sender knew it. A worker that gets it as a redelivery reads the store all the same."""

    job_id: str
    #: Attempts made before this one.
    attempts: int
    input: Any
    #: Outputs of the stages it depends on (None: not known to the sender).
    outputs: Mapping[str, Any] | None
    #: The job's tenant (None: not known to the sender).
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A ready stage run to send to its queue."""

    run_id: int
    queue: str
    pipeline: str
    stage: str
    work: StageWork | None = None


class UnitOfWork(Protocol):
    def load(self, job_ids: Sequence[str], *, lock: bool = True) -> dict[str, Snapshot]:
        """Load jobs with their stage runs, locking them (unless told not to) until the unit
        of work ends."""

    def insert_jobs(self, new: Sequence[NewJob], events: Sequence[Event]) -> None:
        """Insert new jobs with their stage runs and first events; `DuplicateIdempotencyKey`
        when one's key was taken meanwhile."""

    def insert_batch(self, batch_id: str, tenant: str, pipeline: str, size: int, now: float) -> None: ...

    def find_idempotent(self, tenant: str, key: str) -> Job | None: ...

    def claim(
        self,
        free_slots: Mapping[str, int],
        owner: str,
        lease_until: float,
        now: float,
        tenant_cap: int | None = None,
    ) -> list[StageRun]:
        """Mark up to ``free_slots[queue]`` ready stage runs of each queue as running under
        ``owner``, the slots shared between tenants (`vigia.fairness`), none to a tenant at
        ``tenant_cap``."""

    def take_for_dispatch(
        self,
        now: float,
        limit: int,
        *,
        resend_before: float,
        resend_queues: Sequence[str],
        tenant_cap: int | None = None,
    ) -> list[Dispatch]: ...

    def expired_leases(self, now: float, limit: int) -> list[StageRun]: ...

    def write(self, changes: WriteSet) -> None: ...

    def insert_review(self, review: Review) -> None: ...

    def lock_review(self, review_id: str) -> Review | None: ...

    def update_review(self, review: Review) -> None: ...

    def append_audit(self, drafts: Sequence[AuditDraft]) -> None:
        """Chain entries after the last one when the unit of work ends (they are chained in
        commit order: the chain's end stays locked until the transaction commits)."""

    def delete_dead_jobs(self, where: DeadFilter, limit: int) -> list[str]:
        """Delete dead jobs (and what cascades) that ``where`` selects; their ids."""

    def delete_expired_jobs(self, expiry: Expiry, limit: int) -> tuple[list[str], set[str]]:
        """Delete up to ``limit`` jobs past their retention (and what cascades); their ids
        and the files they named."""

    def unreferenced_files(self, digests: Iterable[str]) -> set[str]:
        """Of ``digests``, those no stored job and no document names."""

    def count_expired_jobs(self, expiry: Expiry) -> int: ...


class JobStore(Protocol):
    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...

    def transact(self, work: Callable[[UnitOfWork], T], attempts: int = 5) -> T:
        """Run ``work`` in a unit of work, again if it collided with another transaction."""

    def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        """The job, or `JobNotFound` (also for another tenant's job)."""

    def get_runs(self, job_id: str) -> list[StageRun]: ...

    def tenant_of(self, job_id: str) -> str | None:
        """The job's tenant (None if there is no such job), without reading the job."""

    def snapshot_of_run(self, run_id: int) -> Snapshot | None:
        """The job owning a stage run, with its runs, read without locking anything."""

    def list_jobs(self, where: JobFilter, limit: int = 50, cursor: str | None = None) -> JobPage: ...

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[Event]: ...

    def iter_events(self, job_id: str, after_seq: int = 0) -> Iterator[Event]: ...

    def renew_leases(self, run_ids: Sequence[int], owner: str, lease_until: float) -> tuple[set[int], set[int]]:
        """Extend the leases ``owner`` holds; returns (lost, cancelled): run ids whose lease is
        no longer ours, and run ids whose job was cancelled."""

    def count_jobs(self, where: JobFilter) -> int: ...

    def dead_job_ids(self, where: DeadFilter, limit: int) -> list[str]: ...

    def get_batch(self, batch_id: str, tenant: str | None = None) -> Batch: ...

    def batch_job_ids(self, batch_id: str) -> list[str]: ...
