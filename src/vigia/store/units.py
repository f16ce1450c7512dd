"""One transaction of the job store: loading (and locking) jobs with their stage runs,
inserting jobs, claiming and dispatching stage runs, and writing what a settlement decided.
Reviews, audit entries and purges of the same transaction go through `vigia.store.oversight`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Row

from vigia import fairness
from vigia.audit import AuditDraft
from vigia.blobs import digests_in
from vigia.escalation import Review
from vigia.exceptions import DuplicateIdempotencyKey
from vigia.expiry import Expiry
from vigia.job import CLAIMABLE_STAGE_STATES, Event, Job, JobState, StageRun, StageState
from vigia.store import bulk, oversight, retention
from vigia.store.base import DeadFilter, Dispatch, NewJob, Snapshot, StageWork, WriteSet
from vigia.store.schema import batches, events, job_files, jobs, stage_runs

CLAIMABLE = [state.value for state in CLAIMABLE_STAGE_STATES]


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
RUN_WITH_SIBLINGS = _WITH_RUNS.where(
    jobs.c.id == sa.select(stage_runs.c.job_id).where(stage_runs.c.id == sa.bindparam("run_id")).scalar_subquery()
)
_UPDATES: dict[tuple[str, tuple[str, ...]], sa.Update] = {}


_MARK_RUNNING = (
    stage_runs.update()
    .where(stage_runs.c.id.in_(sa.bindparam("run_ids", expanding=True)))
    .values(
        state=StageState.RUNNING.value,
        attempts=stage_runs.c.attempts + 1,
        lease_owner=sa.bindparam("owner"),
        lease_until=sa.bindparam("until"),
        started_at=sa.bindparam("now"),
        finished_at=None,
        duration=None,
        progress=0.0,
    )
    .returning(*stage_runs.c)
)
_MARK_RUNNING_RECHECKED = _MARK_RUNNING.where(stage_runs.c.state.in_(CLAIMABLE))


def _update_statement(table: sa.Table, key: sa.Column[Any], shape: tuple[str, ...]) -> sa.Update:
    statement = _UPDATES.get((table.name, shape))
    if statement is None:
        statement = _UPDATES[(table.name, shape)] = (
            table.update().where(key == sa.bindparam("_key")).values({name: sa.bindparam(f"_{name}") for name in shape})
        )
    return statement


#: Candidate statements by the queues they read and whether tenants are left out in each.
_CANDIDATES: dict[tuple[tuple[str, bool], ...], sa.Select[Any] | sa.CompoundSelect[Any]] = {}
_CLAIM_ORDER = (stage_runs.c.priority.desc(), stage_runs.c.available_at, stage_runs.c.id)


def _candidates(
    wanted: Mapping[str, int], capped: Mapping[str, list[str]], now: float
) -> tuple[sa.Select[Any] | sa.CompoundSelect[Any], dict[str, Any]]:
    """One statement reading the next ready stage runs of every queue with free slots: per
    queue and claimable state, rows in index order (a single arm over both states would sort
    the queue's whole backlog), more than the slots so that they can be shared between
    tenants (`vigia.fairness`), all arms in one round trip."""
    shape = tuple((queue, bool(capped.get(queue))) for queue in wanted)
    parameters: dict[str, Any] = {"now": now}
    for index, queue in enumerate(wanted):
        parameters[f"queue_{index}"] = queue
        parameters[f"limit_{index}"] = wanted[queue] * fairness.LOOKAHEAD
        if capped.get(queue):
            parameters[f"capped_{index}"] = capped[queue]
    statement = _CANDIDATES.get(shape)
    if statement is None:
        arms = []
        for index, (_, leaves_out) in enumerate(shape):
            for state in CLAIMABLE:
                arm = (
                    sa.select(
                        stage_runs.c.id,
                        stage_runs.c.job_id,
                        stage_runs.c.queue,
                        stage_runs.c.priority,
                        stage_runs.c.available_at,
                        jobs.c.tenant,
                    )
                    .join(jobs, jobs.c.id == stage_runs.c.job_id)
                    .where(
                        stage_runs.c.queue == sa.bindparam(f"queue_{index}"),
                        stage_runs.c.state == state,
                        stage_runs.c.available_at <= sa.bindparam("now"),
                        jobs.c.tenant.not_in(sa.bindparam(f"capped_{index}", expanding=True))
                        if leaves_out
                        else sa.true(),
                    )
                    .order_by(*_CLAIM_ORDER)
                    .limit(sa.bindparam(f"limit_{index}", type_=sa.Integer))
                )
                # SQLite takes ORDER BY and LIMIT in an arm of a compound select only inside
                # a subquery.
                arms.append(sa.select(arm.subquery()))
        statement = arms[0] if len(arms) == 1 else sa.union_all(*arms)
        if len(_CANDIDATES) < 1024:  # shapes are few: the subsets of an installation's queues
            _CANDIDATES[shape] = statement
    return statement, parameters


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
    return snapshots(connection.execute(query, parameters))


def snapshots(rows: Iterable[Row[Any]]) -> dict[str, Snapshot]:
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


def _work_of(row: Row[Any]) -> StageWork:
    """What a dispatched run's worker needs, as the dispatch query read it."""
    return StageWork(row.job_id, row.attempts, row.input, None, row.tenant)


class SQLUnitOfWork:
    """One transaction; jobs it loads stay locked (PostgreSQL row locks, SQLite's write lock)."""

    def __init__(self, connection: Connection, *, row_locks: bool, audit_key: bytes | None = None) -> None:
        self._connection = connection
        self._row_locks = row_locks
        self._audit_key = audit_key
        #: PostgreSQL: many rows in one statement (see `vigia.store.bulk`).
        self._bulk = row_locks
        #: Events and audit entries of this transaction, written by `finish`.
        self._events: list[Event] = []
        self._audits: list[AuditDraft] = []

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
        named = [{"job_id": job.id, "sha256": digest} for job in new for digest in digests_in(job.input)]
        if named:
            self._connection.execute(job_files.insert(), named)
        self._insert_events(new_events)

    def insert_batch(self, batch_id: str, tenant: str, pipeline: str, size: int, now: float) -> None:
        self._connection.execute(
            batches.insert().values(id=batch_id, tenant=tenant, pipeline=pipeline, size=size, created_at=now)
        )

    def claim(
        self,
        free_slots: Mapping[str, int],
        owner: str,
        lease_until: float,
        now: float,
        tenant_cap: int | None = None,
    ) -> list[StageRun]:
        wanted = {queue: limit for queue, limit in free_slots.items() if limit > 0}
        if not wanted:
            return []
        busy = self._in_progress(sent=False) if tenant_cap is not None else {}
        # Tenants at their cap are left out in the query: their backlog cannot hide others'.
        capped = {
            queue: [tenant for (where, tenant), count in busy.items() if where == queue and count >= (tenant_cap or 0)]
            for queue in wanted
        }
        statement, parameters = _candidates(wanted, capped, now)
        rows = {row.id: row for row in self._connection.execute(statement, parameters)}
        if not rows:
            return []
        if tenant_cap is None and len({row.tenant for row in rows.values()}) > 1:
            busy = self._in_progress(sent=False)
        by_queue: dict[str, list[fairness.Candidate]] = defaultdict(list)
        for row in rows.values():
            by_queue[row.queue].append(fairness.Candidate(row.id, row.tenant, row.priority, row.available_at))
        candidates = [
            rows[run_id]
            for queue, waiting in by_queue.items()
            for run_id in fairness.share(
                waiting,
                wanted[queue],
                {tenant: count for (where, tenant), count in busy.items() if where == queue},
                tenant_cap,
            )
        ]
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
        rows = self._connection.execute(
            _MARK_RUNNING_RECHECKED if recheck_state else _MARK_RUNNING,
            {"run_ids": run_ids, "owner": owner, "until": lease_until, "now": now},
        )
        return [StageRun.from_row(row._mapping) for row in rows]

    def _in_progress(self, *, sent: bool) -> dict[tuple[str, str], int]:
        """Stage runs in progress per (queue, tenant): running, and with ``sent`` also those
        handed to a worker's queue and not yet taken."""
        busy: sa.ColumnElement[bool] = stage_runs.c.state == StageState.RUNNING.value
        if sent:
            busy = sa.or_(busy, sa.and_(stage_runs.c.state.in_(CLAIMABLE), stage_runs.c.dispatched_at.is_not(None)))
        query = (
            sa.select(stage_runs.c.queue, jobs.c.tenant, sa.func.count())
            .join(jobs, jobs.c.id == stage_runs.c.job_id)
            .where(busy)
            .group_by(stage_runs.c.queue, jobs.c.tenant)
        )
        return {(str(queue), str(tenant)): int(count) for queue, tenant, count in self._connection.execute(query)}

    def take_for_dispatch(
        self,
        now: float,
        limit: int,
        *,
        resend_before: float,
        resend_queues: Sequence[str],
        tenant_cap: int | None = None,
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
                jobs.c.tenant,
            )
            .join(jobs, jobs.c.id == stage_runs.c.job_id)
            .where(stage_runs.c.state.in_(CLAIMABLE), stage_runs.c.available_at <= now, not_sent)
            .order_by(stage_runs.c.priority.desc(), stage_runs.c.available_at, stage_runs.c.id)
            .limit(limit)
        )
        if self._row_locks:
            query = query.with_for_update(of=stage_runs, skip_locked=True)
        busy: dict[tuple[str, str], int] = {}
        if tenant_cap is not None:
            # Nothing more of a tenant is sent to a queue where it already has its cap in
            # progress (running or waiting in the broker): what is held back goes later.
            busy = self._in_progress(sent=True)
            capped = [key for key, count in busy.items() if count >= tenant_cap]
            if capped:
                query = query.where(sa.not_(sa.tuple_(stage_runs.c.queue, jobs.c.tenant).in_(capped)))
        found = list(self._connection.execute(query))
        if tenant_cap is not None and found:
            kept = []
            for row in found:
                slot = (row.queue, row.tenant)
                if busy.get(slot, 0) < tenant_cap:
                    busy[slot] = busy.get(slot, 0) + 1
                    kept.append(row)
            found = kept
        taken = [
            Dispatch(
                row.id,
                row.queue,
                row.pipeline,
                row.stage,
                StageWork(row.job_id, row.attempts, row.input, None, row.tenant),
            )
            for row in found
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

    def append_audit(self, drafts: Sequence[AuditDraft]) -> None:
        self._audits.extend(drafts)

    def finish(self) -> None:
        """Write the events of the whole transaction in one statement, then chain its audit
        entries, last: one read and one update of the chain's head for them all, and its
        lock held only for the end."""
        if self._events:
            self._write_events(self._events)
            self._events = []
        if self._audits:
            oversight.append_audit(self._connection, self._audits, row_locks=self._row_locks, key=self._audit_key)
            self._audits = []

    def delete_dead_jobs(self, where: DeadFilter, limit: int) -> list[str]:
        return oversight.delete_dead_jobs(self._connection, where, limit)

    def delete_expired_jobs(self, expiry: Expiry, limit: int) -> tuple[list[str], set[str]]:
        return retention.delete_expired(self._connection, expiry, limit, row_locks=self._row_locks)

    def unreferenced_files(self, digests: Iterable[str]) -> set[str]:
        return retention.unreferenced(self._connection, digests)

    def count_expired_jobs(self, expiry: Expiry) -> int:
        return retention.count_expired(self._connection, expiry)

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
            if values.get("state") in CLAIMABLE and "dispatched_at" not in values
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
        self._events.extend(new_events)

    def _write_events(self, new_events: Sequence[Event]) -> None:
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
