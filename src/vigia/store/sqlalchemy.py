"""The job store on SQLAlchemy Core: SQLite (the embedded default) and PostgreSQL.

The only module that speaks SQL. Driver errors are translated here, once, into Vigía's
own exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, Row

from vigia import constants
from vigia.audit import AuditDraft, AuditEntry
from vigia.escalation import Review
from vigia.exceptions import (
    BatchNotFound,
    DuplicateIdempotencyKey,
    InvalidValue,
    JobNotFound,
    SchemaOutOfDate,
    StoreError,
    StoreUnavailable,
    TransientConflict,
)
from vigia.job import (
    CLAIMABLE_STAGE_STATES,
    MAX_SEQ,
    Event,
    Job,
    JobState,
    StageRun,
    StageState,
    id_floor,
    is_job_id,
)
from vigia.store import bulk, migrations, oversight
from vigia.store.base import Batch, DeadFilter, Dispatch, JobFilter, JobPage, NewJob, Snapshot, StageWork, WriteSet
from vigia.store.schema import batches, events, jobs, stage_runs

log = logging.getLogger("vigia.store")

T = TypeVar("T")

_CLAIMABLE = [state.value for state in CLAIMABLE_STAGE_STATES]
#: PostgreSQL error codes worth running a unit of work again for.
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57")  # connection exceptions, operator intervention


def normalise_url(url: str) -> str:
    """Pick the drivers Vigía ships with when a URL names only the database."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_engine(url: str, *, sqlite_autocheckpoint: Callable[[], bool] = lambda: True) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        _configure_sqlite(engine, sqlite_autocheckpoint)
        return engine
    # No pre-ping (a round trip before every transaction): a connection that died with a
    # server restart fails its transaction once, SQLAlchemy then discards the pool's old
    # connections, and `SQLJobStore.transact` runs the work again on a fresh one.
    return sa.create_engine(url, pool_size=10, max_overflow=10)


def _configure_sqlite(engine: Engine, autocheckpoint: Callable[[], bool]) -> None:
    @sa_event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that writers can BEGIN
        # IMMEDIATE: they queue for the write lock at the start instead of failing midway.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts and survives a killed process; only an OS
        # crash or power loss may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A commit that crosses the WAL's size threshold copies the WAL back into the
        # database file itself, adding milliseconds to that one commit. While a background
        # checkpointer runs (see `SQLJobStore.background_checkpoints`) no commit does that.
        cursor.execute(f"PRAGMA wal_autocheckpoint={1000 if autocheckpoint() else 0}")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        mode = "BEGIN IMMEDIATE" if connection.get_execution_options().get("vigia_write") else "BEGIN"
        connection.exec_driver_sql(mode)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into Vigía's: unavailable, transient, or a plain store error."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        raise _translate(error) from error


def _translate(error: sa_exc.DBAPIError) -> StoreError:
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    if sqlstate in _TRANSIENT_SQLSTATES:
        return TransientConflict(_one_line(error.orig))
    if error.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return StoreUnavailable(f"the job store cannot be reached: {_one_line(error.orig)}")
    if isinstance(error, sa_exc.OperationalError):
        text = _one_line(error.orig).lower()
        if "database is locked" in text:
            return TransientConflict(_one_line(error.orig))
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            return SchemaOutOfDate()
        return StoreUnavailable(f"the job store cannot be reached: {_one_line(error.orig)}")
    if isinstance(error, sa_exc.ProgrammingError) and "does not exist" in _one_line(error.orig):
        return SchemaOutOfDate()
    if isinstance(error, sa_exc.DataError):
        # A value the database cannot hold (PostgreSQL refuses NUL in text): the caller's input.
        return InvalidValue(f"a value cannot be stored or searched for: {_one_line(error.orig)}")
    return StoreError(f"the job store failed: {_one_line(error.orig)}")


def _one_line(error: BaseException | None) -> str:
    """A driver's message on one line (psycopg's span several, with hints)."""
    return " ".join(str(error).split())


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


# Statements built once: building one costs more than running it, and a statement object
# that is reused keeps its cache key, so SQLAlchemy finds its compiled form at once.
#: A job's stage-run columns are read beside the job's under these names.
_RUN_LABELS = tuple((column.name, f"run_{column.name}") for column in stage_runs.c)
_WITH_RUNS = sa.select(jobs, *(column.label(f"run_{column.name}") for column in stage_runs.c)).join(
    stage_runs, stage_runs.c.job_id == jobs.c.id
)
_JOB_WITH_RUNS = _WITH_RUNS.where(jobs.c.id == sa.bindparam("job_id"))
_JOBS_WITH_RUNS = _WITH_RUNS.where(jobs.c.id.in_(sa.bindparam("job_ids", expanding=True))).order_by(jobs.c.id)
# Locks the jobs, in id order (the order every unit of work locks in). Its own statement:
# PostgreSQL re-reads a locked row that another transaction changed while it waited, but
# not the rows joined to it, so a join would see the runs as they were before the wait.
_LOCK_JOB = sa.select(jobs.c.id).where(jobs.c.id == sa.bindparam("job_id")).with_for_update()
_LOCK_JOBS = (
    sa.select(jobs.c.id)
    .where(jobs.c.id.in_(sa.bindparam("job_ids", expanding=True)))
    .order_by(jobs.c.id)
    .with_for_update()
)
_RUN_WITH_SIBLINGS = _WITH_RUNS.where(
    jobs.c.id == sa.select(stage_runs.c.job_id).where(stage_runs.c.id == sa.bindparam("run_id")).scalar_subquery()
)
_UPDATES: dict[tuple[str, tuple[str, ...]], sa.Update] = {}


def _update_statement(table: sa.Table, key: sa.Column[Any], shape: tuple[str, ...]) -> sa.Update:
    statement = _UPDATES.get((table.name, shape))
    if statement is None:
        statement = _UPDATES[(table.name, shape)] = (
            table.update().where(key == sa.bindparam("_key")).values({name: sa.bindparam(f"_{name}") for name in shape})
        )
    return statement


def _load_snapshots(connection: Connection, job_ids: list[str], *, lock: bool) -> dict[str, Snapshot]:
    """Jobs (locked first with ``lock``) and their stage runs."""
    if len(job_ids) == 1:
        parameters: dict[str, Any] = {"job_id": job_ids[0]}
        lock_query, query = _LOCK_JOB, _JOB_WITH_RUNS
    else:
        parameters = {"job_ids": job_ids}
        lock_query, query = _LOCK_JOBS, _JOBS_WITH_RUNS
    if lock:
        connection.execute(lock_query, parameters)
    return _snapshots(connection.execute(query, parameters))


def _snapshots(rows: Iterable[Row[Any]]) -> dict[str, Snapshot]:
    """Snapshots from rows of `_WITH_RUNS`: a job's columns come again with each of its runs."""
    found: dict[str, Job] = {}
    runs: dict[str, dict[str, StageRun]] = defaultdict(dict)
    for row in rows:
        values = row._mapping
        job = found.get(values["id"])
        if job is None:
            job = found[values["id"]] = Job.from_row(values)
        run = StageRun.from_row({name: values[label] for name, label in _RUN_LABELS})
        runs[job.id][run.stage] = run
    return {job_id: Snapshot(job, runs[job_id]) for job_id, job in found.items()}


class SQLUnitOfWork:
    """One transaction; jobs it loads stay locked (PostgreSQL row locks, SQLite's write lock)."""

    def __init__(self, connection: Connection, *, row_locks: bool) -> None:
        self._connection = connection
        self._row_locks = row_locks
        #: PostgreSQL: many rows in one statement (see `vigia.store.bulk`).
        self._bulk = row_locks

    def load(self, job_ids: Sequence[str], *, lock: bool = True) -> dict[str, Snapshot]:
        if not job_ids:
            return {}
        # One lock order everywhere: no deadlock between us.
        return _load_snapshots(self._connection, sorted(set(job_ids)), lock=self._row_locks and lock)

    def find_idempotent(self, tenant: str, key: str) -> Job | None:
        row = self._connection.execute(
            sa.select(jobs).where(jobs.c.tenant == tenant, jobs.c.idempotency_key == key)
        ).first()
        return None if row is None else Job.from_row(row._mapping)

    def insert_jobs(self, new: Sequence[NewJob], new_events: Sequence[Event]) -> None:
        if not new:
            return
        last_seq: dict[str, int] = {}
        for item in new_events:
            last_seq[item.job_id] = max(item.seq, last_seq.get(item.job_id, 0))
        rows = [
            {
                "id": job.id,
                "tenant": job.tenant,
                "pipeline": job.pipeline,
                "pipeline_version": job.pipeline_version,
                "state": JobState.QUEUED.value,
                "priority": job.priority,
                "progress": 0.0,
                "current_stage": None,
                "input": job.input,
                "input_hash": job.input_hash,
                "idempotency_key": job.idempotency_key,
                "result": None,
                "error_type": None,
                "error_message": None,
                "created_at": job.created_at,
                "started_at": None,
                "finished_at": None,
                "updated_at": job.created_at,
                "last_seq": last_seq.get(job.id, 0),
                "batch_id": job.batch_id,
            }
            for job in new
        ]
        try:
            # A plain insert() with parameters is compiled once and cached; .values(...)
            # would build and hash a new statement on every submission. A duplicate key
            # fails the transaction, which `transact` then runs again from the start.
            self._connection.execute(jobs.insert(), rows)
        except sa_exc.IntegrityError as error:
            raise DuplicateIdempotencyKey() from error
        self._connection.execute(
            stage_runs.insert(),
            [
                {
                    "job_id": job.id,
                    "stage": run.stage,
                    "state": run.state.value,
                    "queue": run.queue,
                    "priority": job.priority,
                    "attempts": 0,
                    "available_at": job.created_at,
                    "progress": 0.0,
                }
                for job in new
                for run in job.runs
            ],
        )
        self._insert_events(new_events)

    def insert_batch(self, batch_id: str, tenant: str, pipeline: str, size: int, now: float) -> None:
        self._connection.execute(
            batches.insert().values(id=batch_id, tenant=tenant, pipeline=pipeline, size=size, created_at=now)
        )

    def claim(self, queue: str, limit: int, owner: str, lease_until: float, now: float) -> list[StageRun]:
        if limit <= 0:
            return []
        # One query per claimable state, each read in index order, then merged: a single
        # query over both states would sort the whole backlog of the queue.
        order = (stage_runs.c.priority.desc(), stage_runs.c.available_at, stage_runs.c.id)
        per_state = [
            sa.select(stage_runs.c.id, stage_runs.c.job_id, *order[:2])
            .where(stage_runs.c.queue == queue, stage_runs.c.state == state, stage_runs.c.available_at <= now)
            .order_by(*order)
            .limit(limit)
            for state in _CLAIMABLE
        ]
        rows = [row for query in per_state for row in self._connection.execute(query)]
        candidates = sorted(rows, key=lambda row: (-row.priority, row.available_at, row.id))[:limit]
        if not candidates:
            return []
        run_ids = [row.id for row in candidates]
        if self._row_locks:
            # Lock the jobs first (the order every unit of work uses), skipping jobs another
            # transaction is deciding on right now: their stages are claimed next time.
            locked = set(
                self._connection.scalars(
                    sa.select(jobs.c.id)
                    .where(jobs.c.id.in_({row.job_id for row in candidates}))
                    .order_by(jobs.c.id)
                    .with_for_update(skip_locked=True)
                )
            )
            run_ids = [row.id for row in candidates if row.job_id in locked]
        # On SQLite this transaction has held the write lock since the SELECT above, so the
        # candidates are still claimable; checking their state again would only lead the
        # planner to scan the state index instead of looking rows up by id.
        claimed = self._mark_running(run_ids, owner, lease_until, now, recheck_state=self._row_locks)
        position = {run_id: index for index, run_id in enumerate(run_ids)}
        return sorted(claimed, key=lambda run: position[run.id])

    def _mark_running(
        self, run_ids: list[int], owner: str, lease_until: float, now: float, *, recheck_state: bool
    ) -> list[StageRun]:
        if not run_ids:
            return []
        condition: sa.ColumnElement[bool] = stage_runs.c.id.in_(run_ids)
        if recheck_state:
            condition = sa.and_(condition, stage_runs.c.state.in_(_CLAIMABLE))
        rows = self._connection.execute(
            stage_runs.update()
            .where(condition)
            .values(
                state=StageState.RUNNING.value,
                attempts=stage_runs.c.attempts + 1,
                lease_owner=owner,
                lease_until=lease_until,
                started_at=now,
                finished_at=None,
                duration=None,
                progress=0.0,
            )
            .returning(*stage_runs.c)
        )
        return [StageRun.from_row(row._mapping) for row in rows]

    def take_for_dispatch(
        self, now: float, limit: int, *, resend_before: float, resend_queues: Sequence[str]
    ) -> list[Dispatch]:
        """Ready stage runs not sent yet (or, in ``resend_queues``, sent before
        ``resend_before`` and never taken), marked as sent now."""
        not_sent: sa.ColumnElement[bool] = stage_runs.c.dispatched_at.is_(None)
        if resend_queues:
            not_sent = sa.or_(
                not_sent,
                sa.and_(stage_runs.c.dispatched_at < resend_before, stage_runs.c.queue.in_(list(resend_queues))),
            )
        query = (
            sa.select(
                stage_runs.c.id,
                stage_runs.c.queue,
                stage_runs.c.stage,
                stage_runs.c.job_id,
                stage_runs.c.attempts,
                jobs.c.pipeline,
                jobs.c.input,
            )
            .join(jobs, jobs.c.id == stage_runs.c.job_id)
            .where(stage_runs.c.state.in_(_CLAIMABLE), stage_runs.c.available_at <= now, not_sent)
            .order_by(stage_runs.c.priority.desc(), stage_runs.c.available_at, stage_runs.c.id)
            .limit(limit)
        )
        if self._row_locks:
            query = query.with_for_update(of=stage_runs, skip_locked=True)
        taken = [
            Dispatch(row.id, row.queue, row.pipeline, row.stage, StageWork(row.job_id, row.attempts, row.input, None))
            for row in self._connection.execute(query)
        ]
        if taken:
            self._connection.execute(
                stage_runs.update()
                .where(stage_runs.c.id.in_([item.run_id for item in taken]))
                .values(dispatched_at=now)
            )
        return taken

    def insert_review(self, review: Review) -> None:
        oversight.insert_review(self._connection, review)

    def lock_review(self, review_id: str) -> Review | None:
        return oversight.lock_review(self._connection, review_id, row_locks=self._row_locks)

    def update_review(self, review: Review) -> None:
        oversight.update_review(self._connection, review)

    def append_audit(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        return oversight.append_audit(self._connection, drafts, row_locks=self._row_locks)

    def delete_dead_jobs(self, where: DeadFilter, limit: int) -> list[str]:
        return oversight.delete_dead_jobs(self._connection, where, limit)

    def expired_leases(self, now: float, limit: int) -> list[StageRun]:
        rows = self._connection.execute(
            sa.select(stage_runs)
            .where(stage_runs.c.state == StageState.RUNNING.value, stage_runs.c.lease_until < now)
            .order_by(stage_runs.c.lease_until)
            .limit(limit)
        )
        return [StageRun.from_row(row._mapping) for row in rows]

    def write(self, changes: WriteSet) -> None:
        self._update_many(jobs, jobs.c.id, changes.jobs)
        runs = {
            # A run that becomes ready again (a retry, a hand-back) has not been sent since.
            run_id: {**values, "dispatched_at": None}
            if values.get("state") in _CLAIMABLE and "dispatched_at" not in values
            else values
            for run_id, values in changes.runs.items()
        }
        self._update_many(stage_runs, stage_runs.c.id, runs)
        self._insert_events(changes.events)

    def _update_many(self, table: sa.Table, key: sa.Column[Any], changes: Mapping[Any, Mapping[str, Any]]) -> None:
        # Rows changing the same columns share a statement: one per shape.
        by_shape: dict[tuple[str, ...], list[tuple[Any, Mapping[str, Any]]]] = defaultdict(list)
        for row_id, values in changes.items():
            by_shape[tuple(sorted(values))].append((row_id, values))
        for shape, rows in by_shape.items():
            if self._bulk:
                bulk.update_rows(
                    self._connection, table, key, shape, [{key.name: row_id, **values} for row_id, values in rows]
                )
            else:  # one executemany
                self._connection.execute(
                    _update_statement(table, key, shape),
                    [
                        {"_key": row_id, **{f"_{name}": _plain(values[name]) for name in shape}}
                        for row_id, values in rows
                    ],
                )

    def _insert_events(self, new_events: Sequence[Event]) -> None:
        rows = [
            {
                "job_id": item.job_id,
                "seq": item.seq,
                "type": item.type.value,
                "state": item.state.value,
                "stage": item.stage,
                "progress": item.progress,
                "message": item.message,
                "created_at": item.created_at,
                "stage_progress": item.stage_progress,
            }
            for item in new_events
        ]
        if not rows:
            return
        if self._bulk:
            bulk.insert_rows(self._connection, events, rows)
        else:
            self._connection.execute(events.insert(), rows)


class SQLJobStore:
    """Job store on a SQLAlchemy engine."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = normalise_url(url)
        self._background_checkpoints = False
        self.engine = engine or create_engine(self.url, sqlite_autocheckpoint=lambda: not self._background_checkpoints)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read_engine = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # SQLite has one writer at a time; queueing our own threads on a lock is far
        # quicker than SQLite's sleeping busy handler (other processes still use that).
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )

    # --- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[SQLUnitOfWork]:
        with self.writing() as connection:
            yield SQLUnitOfWork(connection, row_locks=not self.is_sqlite)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: our own threads queue on the lock, SQLite's BEGIN IMMEDIATE
        makes other processes queue, and driver errors come out as ours."""
        with (
            self._write_lock,
            translate_errors(),
            self.engine.connect().execution_options(vigia_write=True) as connection,
            connection.begin(),
        ):
            yield connection

    def transact(self, work: Callable[[SQLUnitOfWork], T], attempts: int = 5) -> T:
        """Run ``work`` in a unit of work, again if it collided with another transaction."""
        for attempt in range(1, attempts + 1):
            try:
                with self.unit_of_work() as unit:
                    return work(unit)
            except (TransientConflict, DuplicateIdempotencyKey):
                if attempt == attempts:
                    raise
                log.info("store.transaction_retried", extra={"attempt": attempt})
            except StoreUnavailable:
                # Once: the connection may have died with a server restart (the pool now
                # replaces its old connections); if the server is down, this fails again.
                if attempt > 1:
                    raise
                log.info("store.reconnecting")
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads. On PostgreSQL it runs each statement on its own (no BEGIN
        and ROLLBACK round trips); a read that needs one snapshot makes a single statement."""
        with translate_errors(), self._read_engine.connect() as connection:
            yield connection

    # --- reads --------------------------------------------------------------------------

    def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        if not is_job_id(job_id):
            raise JobNotFound(f"no job {job_id[:40]!r}", job_id=job_id[:40])
        query = sa.select(jobs).where(jobs.c.id == job_id)
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        with self.reading() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}", job_id=job_id)
        return Job.from_row(row._mapping)

    def snapshot_of_run(self, run_id: int) -> Snapshot | None:
        """The job a stage run belongs to, with all its runs, read without a transaction or
        a lock (a distributed worker deciding whether a message is still worth running)."""
        with self.reading() as connection:
            found = _snapshots(connection.execute(_RUN_WITH_SIBLINGS, {"run_id": run_id}))
        return next(iter(found.values()), None)

    def get_runs(self, job_id: str) -> list[StageRun]:
        with self.reading() as connection:
            rows = connection.execute(
                sa.select(stage_runs).where(stage_runs.c.job_id == job_id).order_by(stage_runs.c.id)
            )
            return [StageRun.from_row(row._mapping) for row in rows]

    def list_jobs(self, where: JobFilter, limit: int = 50, cursor: str | None = None) -> JobPage:
        query = self._filtered(sa.select(jobs), where)
        if cursor:
            query = query.where(jobs.c.id < cursor)
        query = query.order_by(jobs.c.id.desc()).limit(limit + 1)
        with self.reading() as connection:
            found = [Job.from_row(row._mapping) for row in connection.execute(query)]
        more = len(found) > limit
        found = found[:limit]
        return JobPage(found, found[-1].id if more and found else None)

    def dead_job_ids(self, where: DeadFilter, limit: int) -> list[str]:
        query = oversight.dead_jobs_query([jobs.c.id], where).order_by(jobs.c.id).limit(limit)
        with self.reading() as connection:
            return list(connection.scalars(query))

    def count_jobs(self, where: JobFilter) -> int:
        with self.reading() as connection:
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
        with self.reading() as connection:
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
        with self.reading() as connection:
            return list(connection.scalars(sa.select(jobs.c.id).where(jobs.c.batch_id == batch_id).order_by(jobs.c.id)))

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        if after_seq >= MAX_SEQ:
            return []
        with self.reading() as connection:
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
        with self.writing() as connection:
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

    # --- SQLite write-ahead log -------------------------------------------------------

    def background_checkpoints(self, enabled: bool) -> None:
        """With ``enabled``, commits stop checkpointing the WAL; the caller promises to call
        `checkpoint` every second or so from a thread of its own (the embedded executor does)."""
        if self.is_sqlite and enabled != self._background_checkpoints:
            self._background_checkpoints = enabled
            self.engine.dispose()  # pooled connections pick up the new setting

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking readers or writers."""
        if self.is_sqlite:
            with translate_errors(), self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # --- health -------------------------------------------------------------------------

    def check(self) -> None:
        with self.reading() as connection:
            current = migrations.current_revision(connection)
        if current != migrations.head_revision():
            raise SchemaOutOfDate(
                f"the job store's schema is at {current or 'nothing'}, this Vigía needs "
                f"{migrations.head_revision()}: run `vigia db upgrade`"
            )

    def upgrade(self) -> None:
        with translate_errors(), self.engine.begin() as connection:
            migrations.upgrade(connection)

    def close(self) -> None:
        self.engine.dispose()
