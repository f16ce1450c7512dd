"""The job store on SQLAlchemy Core (SQLite, the embedded default, and PostgreSQL): units
of work over jobs and their stage runs, the reads the API and the executors make, and leases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigia import constants
from vigia.exceptions import BatchNotFound, JobNotFound
from vigia.job import MAX_SEQ, Event, Job, JobState, StageRun, StageState, id_floor, is_job_id
from vigia.store import oversight
from vigia.store.base import Batch, DeadFilter, JobFilter, JobPage, Snapshot
from vigia.store.database import Database
from vigia.store.schema import batches, events, jobs, stage_runs
from vigia.store.units import RUN_WITH_SIBLINGS, SQLUnitOfWork, snapshots

T = TypeVar("T")


class SQLJobStore:
    """The job store on a `Database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[SQLUnitOfWork]:
        with self.database.writing() as connection:
            unit = SQLUnitOfWork(connection, row_locks=self.database.row_locks, audit_key=self.database.audit_chain_key)
            yield unit
            unit.finish()

    def transact(self, work: Callable[[SQLUnitOfWork], T], attempts: int = 5) -> T:
        """Run ``work`` in a unit of work, again if it collided with another transaction."""
        row_locks = self.database.row_locks
        key = self.database.audit_chain_key

        def run(connection: Connection) -> T:
            unit = SQLUnitOfWork(connection, row_locks=row_locks, audit_key=key)
            result = work(unit)
            unit.finish()
            return result

        return self.database.transact(run, attempts)

    # --- reads --------------------------------------------------------------------------

    def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        if not is_job_id(job_id):
            raise JobNotFound(f"no job {job_id[:40]!r}", job_id=job_id[:40])
        query = sa.select(jobs).where(jobs.c.id == job_id)
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        with self.database.reading() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
        return Job.from_row(row._mapping)

    def tenant_of(self, job_id: str) -> str | None:
        if not is_job_id(job_id):
            return None
        with self.database.reading() as connection:
            tenant: str | None = connection.scalar(sa.select(jobs.c.tenant).where(jobs.c.id == job_id))
        return tenant

    def snapshot_of_run(self, run_id: int) -> Snapshot | None:
        """The job a stage run belongs to, with all its runs, read without a transaction or
        a lock (a distributed worker deciding whether a message is still worth running)."""
        with self.database.reading() as connection:
            found = snapshots(connection.execute(RUN_WITH_SIBLINGS, {"run_id": run_id}))
        return next(iter(found.values()), None)

    def get_runs(self, job_id: str) -> list[StageRun]:
        with self.database.reading() as connection:
            rows = connection.execute(
                sa.select(stage_runs).where(stage_runs.c.job_id == job_id).order_by(stage_runs.c.id)
            )
            return [StageRun.from_row(row._mapping) for row in rows]

    def list_jobs(self, where: JobFilter, limit: int = 50, cursor: str | None = None) -> JobPage:
        query = self._filtered(sa.select(jobs), where)
        if cursor:
            query = query.where(jobs.c.id < cursor)
        query = query.order_by(jobs.c.id.desc()).limit(limit + 1)
        with self.database.reading() as connection:
            found = [Job.from_row(row._mapping) for row in connection.execute(query)]
        more = len(found) > limit
        found = found[:limit]
        return JobPage(found, found[-1].id if more and found else None)

    def dead_job_ids(self, where: DeadFilter, limit: int) -> list[str]:
        query = oversight.dead_jobs_query([jobs.c.id], where).order_by(jobs.c.id).limit(limit)
        with self.database.reading() as connection:
            return list(connection.scalars(query))

    def count_jobs(self, where: JobFilter) -> int:
        with self.database.reading() as connection:
            return int(connection.scalar(self._filtered(sa.select(sa.func.count()).select_from(jobs), where)) or 0)

    @staticmethod
    def _filtered(query: sa.Select[Any], where: JobFilter) -> sa.Select[Any]:
        if where.tenant is not None:
            query = query.where(jobs.c.tenant == where.tenant)
        if where.pipeline is not None:
            query = query.where(jobs.c.pipeline == where.pipeline)
        elif not where.internal:
            query = query.where(jobs.c.pipeline != constants.NOTIFY_PIPELINE)
        if where.states:
            query = query.where(jobs.c.state.in_([state.value for state in where.states]))
        if where.id_prefix:
            # Hex ids: every id with the prefix sorts between it and the prefix + "g".
            query = query.where(jobs.c.id >= where.id_prefix, jobs.c.id < where.id_prefix + "g")
        if where.batch_id is not None:
            query = query.where(jobs.c.batch_id == where.batch_id)
        if where.created_after is not None:
            # Ids start with their creation time: bound the id too, so the index does the work.
            query = query.where(jobs.c.id >= id_floor(where.created_after), jobs.c.created_at >= where.created_after)
        if where.created_before is not None:
            query = query.where(
                jobs.c.id < id_floor(where.created_before + 0.001), jobs.c.created_at < where.created_before
            )
        return query

    def get_batch(self, batch_id: str, tenant: str | None = None) -> Batch:
        if not is_job_id(batch_id):
            raise BatchNotFound(f"no batch {batch_id[:40]!r}", batch_id=batch_id[:40])
        query = sa.select(batches).where(batches.c.id == batch_id)
        if tenant is not None:
            query = query.where(batches.c.tenant == tenant)
        with self.database.reading() as connection:
            row = connection.execute(query).first()
            if row is None:
                raise BatchNotFound(f"no batch {batch_id!r}", batch_id=batch_id)
            counts = connection.execute(
                sa.select(jobs.c.state, sa.func.count(), sa.func.sum(jobs.c.progress))
                .where(jobs.c.batch_id == batch_id)
                .group_by(jobs.c.state)
            ).all()
        total_progress = sum(float(progress or 0.0) for _, _, progress in counts)
        return Batch(
            id=row.id,
            tenant=row.tenant,
            pipeline=row.pipeline,
            size=row.size,
            created_at=row.created_at,
            counts={state: int(count) for state, count, _ in counts},
            progress=round(total_progress / row.size, 2) if row.size else 100.0,
        )

    def batch_job_ids(self, batch_id: str) -> list[str]:
        with self.database.reading() as connection:
            return list(connection.scalars(sa.select(jobs.c.id).where(jobs.c.batch_id == batch_id).order_by(jobs.c.id)))

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        if after_seq >= MAX_SEQ:
            return []
        with self.database.reading() as connection:
            rows = connection.execute(
                sa.select(events)
                .where(events.c.job_id == job_id, events.c.seq > after_seq)
                .order_by(events.c.seq)
                .limit(limit)
            )
            return [Event.from_row(row._mapping) for row in rows]

    def iter_events(self, job_id: str, after_seq: int = 0) -> Iterator[Event]:
        while True:
            page = self.events_after(job_id, after_seq)
            yield from page
            if len(page) < 1000:
                return
            after_seq = page[-1].seq

    # --- leases -------------------------------------------------------------------------

    def renew_leases(self, run_ids: Sequence[int], owner: str, lease_until: float) -> tuple[set[int], set[int]]:
        if not run_ids:
            return set(), set()
        wanted = set(run_ids)
        with self.database.writing() as connection:
            renewed = set(
                connection.scalars(
                    stage_runs.update()
                    .where(
                        stage_runs.c.id.in_(sorted(wanted)),
                        stage_runs.c.lease_owner == owner,
                        stage_runs.c.state == StageState.RUNNING.value,
                    )
                    .values(lease_until=lease_until)
                    .returning(stage_runs.c.id)
                )
            )
            cancelled = set(
                connection.scalars(
                    sa.select(stage_runs.c.id)
                    .join(jobs, jobs.c.id == stage_runs.c.job_id)
                    .where(stage_runs.c.id.in_(sorted(renewed)), jobs.c.state == JobState.CANCELLED.value)
                )
            )
        return wanted - renewed, cancelled


def upload_names(connection: Connection, job_ids: Sequence[str]) -> dict[str, str | None]:
    """The display name of each job's uploaded file (None for a job without one)."""
    names: dict[str, str | None] = {}
    if not job_ids:
        return names
    for job_id, job_input in connection.execute(
        sa.select(jobs.c.id, jobs.c.input).where(jobs.c.id.in_(sorted(set(job_ids))))
    ):
        upload = job_input.get("file") if isinstance(job_input, dict) else None
        names[job_id] = upload.get("filename") if isinstance(upload, dict) else None
    return names
