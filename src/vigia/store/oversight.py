"""SQL of oversight, what watches over the jobs: human-review items, the audit chain,
alerts, the dead-letter queue's listings, and the facts monitoring reads. The job tables'
own SQL is in `units.py` and `jobs.py`; units of work there call the writing functions
here, so that a review or an audit entry is written in the same transaction as the change
it follows."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigia import constants
from vigia.audit import AuditDraft, AuditEntry, chain
from vigia.escalation import Review, ReviewStatus
from vigia.job import Job, JobState, StageState
from vigia.monitoring import DURATION_BUCKETS, Alert, AlertSeverity, PipelineTimes, StageDurations, times_of
from vigia.scaling import QueueLoad
from vigia.store import bulk
from vigia.store.base import DeadFilter, DeadJob, ReviewFilter
from vigia.store.database import Database
from vigia.store.history import finished_jobs
from vigia.store.schema import alerts, audit_head, audit_log, events, jobs, reviews, stage_runs

_HEAD = 1
#: Audit entries read per query when walking the chain.
AUDIT_PAGE = 1000


# --- written inside units of work -------------------------------------------------------


def insert_review(connection: Connection, review: Review) -> None:
    connection.execute(reviews.insert(), _review_row(review))


def lock_review(connection: Connection, review_id: str, *, row_locks: bool) -> Review | None:
    query = sa.select(reviews).where(reviews.c.id == review_id)
    if row_locks:
        query = query.with_for_update()
    row = connection.execute(query).first()
    return None if row is None else Review.from_row(row._mapping)


def update_review(connection: Connection, review: Review) -> None:
    row = _review_row(review)
    connection.execute(reviews.update().where(reviews.c.id == review.id).values(row))


def _review_row(review: Review) -> dict[str, Any]:
    row = review.to_dict()
    return {column.name: row[column.name] for column in reviews.c}


# Built once: the audit chain is extended by nearly every transaction.
_READ_HEAD = sa.select(audit_head).where(audit_head.c.id == _HEAD)
_LOCK_HEAD = _READ_HEAD.with_for_update()
_INSERT_AUDIT = audit_log.insert()
_MOVE_HEAD = (
    audit_head.update()
    .where(audit_head.c.id == _HEAD)
    .values(last_seq=sa.bindparam("seq"), last_hash=sa.bindparam("hash"))
)


def append_audit(
    connection: Connection, drafts: Sequence[AuditDraft], *, row_locks: bool, key: bytes | None
) -> list[AuditEntry]:
    if not drafts:
        return []
    head = connection.execute(_LOCK_HEAD if row_locks else _READ_HEAD).one()
    entries = chain(head.last_hash, head.last_seq, drafts, key)
    rows = [entry.to_dict() for entry in entries]
    if row_locks:  # PostgreSQL: one statement for the lot
        bulk.insert_rows(connection, audit_log, rows)
    else:
        connection.execute(_INSERT_AUDIT, rows)
    connection.execute(_MOVE_HEAD, {"seq": entries[-1].seq, "hash": entries[-1].hash})
    return entries


def dead_jobs_query(columns: Sequence[Any], where: DeadFilter) -> sa.Select[Any]:
    query = sa.select(*columns).where(jobs.c.state == JobState.DEAD.value)
    if where.tenant is not None:
        query = query.where(jobs.c.tenant == where.tenant)
    if where.pipeline is not None:
        query = query.where(jobs.c.pipeline == where.pipeline)
    if where.error_type is not None:
        query = query.where(jobs.c.error_type == where.error_type)
    if where.died_after is not None:
        query = query.where(jobs.c.finished_at >= where.died_after)
    if where.died_before is not None:
        query = query.where(jobs.c.finished_at < where.died_before)
    if where.stage is not None:
        # An alias of its own: a query that also reads stage_runs (the counts by stage)
        # would otherwise correlate the subquery's table away and leave it without a FROM.
        failed = stage_runs.alias("failed_run")
        query = query.where(
            sa.exists()
            .where(
                failed.c.job_id == jobs.c.id,
                failed.c.stage == where.stage,
                failed.c.state == StageState.FAILED.value,
            )
            .correlate(jobs)
        )
    return query


def delete_dead_jobs(connection: Connection, where: DeadFilter, limit: int) -> list[str]:
    job_ids = list(connection.scalars(dead_jobs_query([jobs.c.id], where).order_by(jobs.c.id).limit(limit)))
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        # Children first: SQLite enforces the foreign keys without cascading them unless told.
        for table in (reviews, stage_runs, events):
            connection.execute(table.delete().where(table.c.job_id.in_(chunk)))
        connection.execute(jobs.delete().where(jobs.c.id.in_(chunk)))
    return job_ids


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditAnchor:
    """Where the chain starts (after retention) and ends."""

    first_seq: int
    first_prev_hash: str
    last_seq: int
    last_hash: str
    #: Entries from this one on are keyed (those before were written by an older version).
    keyed_from: int = 1


class OversightStore:
    """Reads of reviews, the dead-letter queue, the audit log, alerts and monitoring facts,
    and the writes that stand alone (alerts, audit retention)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # reviews

    def list_reviews(self, where: ReviewFilter, limit: int = 50, cursor: str | None = None) -> list[Review]:
        query = sa.select(reviews)
        if where.tenant is not None:
            query = query.where(reviews.c.tenant == where.tenant)
        if where.statuses:
            query = query.where(reviews.c.status.in_([status.value for status in where.statuses]))
        if where.role is not None:
            query = query.where(reviews.c.role == where.role)
        if where.job_id is not None:
            query = query.where(reviews.c.job_id == where.job_id)
        if cursor:
            query = query.where(reviews.c.id < cursor)
        with self._database.reading() as connection:
            rows = connection.execute(query.order_by(reviews.c.id.desc()).limit(limit))
            return [Review.from_row(row._mapping) for row in rows]

    # the dead-letter queue

    def list_dead(self, where: DeadFilter, limit: int = 50, cursor: str | None = None) -> list[DeadJob]:
        query = dead_jobs_query([jobs], where)
        if cursor:
            query = query.where(jobs.c.id < cursor)
        with self._database.reading() as connection:
            found = [
                Job.from_row(row._mapping) for row in connection.execute(query.order_by(jobs.c.id.desc()).limit(limit))
            ]
            failed = _failed_runs(connection, [job.id for job in found])
        listed = []
        for job in found:
            run = failed.get(job.id)
            listed.append(
                DeadJob(
                    job,
                    run.stage if run is not None else None,
                    int(run.attempts) if run is not None else 0,
                    run.error_type if run is not None else job.error_type,
                    run.error_message if run is not None else job.error_message,
                )
            )
        return listed

    def dlq_statistics(self, where: DeadFilter) -> dict[str, Any]:
        """Dead jobs by pipeline, failed stage, error type and hour of death."""
        hour = sa.cast(jobs.c.finished_at / 3600, sa.Integer)
        with self._database.reading() as connection:
            by_pipeline = connection.execute(
                dead_jobs_query([jobs.c.pipeline, sa.func.count()], where).group_by(jobs.c.pipeline)
            ).all()
            by_error = connection.execute(
                dead_jobs_query([jobs.c.error_type, sa.func.count()], where).group_by(jobs.c.error_type)
            ).all()
            by_hour = connection.execute(dead_jobs_query([hour, sa.func.count()], where).group_by(hour)).all()
            by_stage = connection.execute(
                dead_jobs_query([stage_runs.c.stage, sa.func.count(sa.distinct(jobs.c.id))], where)
                .join(stage_runs, stage_runs.c.job_id == jobs.c.id)
                .where(stage_runs.c.state == StageState.FAILED.value)
                .group_by(stage_runs.c.stage)
            ).all()
        total = sum(int(count) for _, count in by_pipeline)
        return {
            "total": total,
            "by_pipeline": {name: int(count) for name, count in by_pipeline},
            "by_stage": {name: int(count) for name, count in by_stage},
            "by_error_type": {(name or "unknown"): int(count) for name, count in by_error},
            "by_hour": [
                {"hour": int(bucket) * 3600, "count": int(count)}
                for bucket, count in sorted(by_hour, key=lambda item: item[0] or 0)
                if bucket is not None
            ],
        }

    # the audit log

    def audit_anchor(self) -> AuditAnchor:
        with self._database.reading() as connection:
            head = connection.execute(sa.select(audit_head).where(audit_head.c.id == _HEAD)).one()
        return AuditAnchor(head.first_seq, head.first_prev_hash, head.last_seq, head.last_hash, head.keyed_from)

    def audit_hashes(self, seqs: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(seqs))
        found: dict[int, str] = {}
        with self._database.reading() as connection:
            for start in range(0, len(wanted), 500):
                query = sa.select(audit_log.c.seq, audit_log.c.hash).where(
                    audit_log.c.seq.in_(wanted[start : start + 500])
                )
                found.update({int(seq): str(digest) for seq, digest in connection.execute(query)})
        return found

    def audit_entries(self, *, since: float | None = None, after_seq: int = 0) -> Iterator[AuditEntry]:
        """Every entry in chain order (from ``after_seq``, or those at or after ``since``)."""
        while True:
            query = sa.select(audit_log).where(audit_log.c.seq > after_seq)
            if since is not None:
                query = query.where(audit_log.c.at >= since)
            with self._database.reading() as connection:
                page = [
                    AuditEntry.from_row(row._mapping)
                    for row in connection.execute(query.order_by(audit_log.c.seq).limit(AUDIT_PAGE))
                ]
            yield from page
            if len(page) < AUDIT_PAGE:
                return
            after_seq = page[-1].seq

    def prune_audit(self, before: float, anchor_with: Callable[[int, str], None] | None = None) -> int:
        """Remove entries older than ``before`` (retention), leaving an anchor so that the
        rest of the chain still verifies from its new first entry. ``anchor_with(seq, hash)``
        is told of the last entry removed before anything is (a signed checkpoint outside
        the store: a crash in between leaves a checkpoint, never an unexplained gap)."""
        with self._database.writing() as connection:
            head = connection.execute(sa.select(audit_head).where(audit_head.c.id == _HEAD).with_for_update()).one()
            last_old = connection.scalar(
                sa.select(sa.func.max(audit_log.c.seq)).where(audit_log.c.at < before, audit_log.c.seq <= head.last_seq)
            )
            if last_old is None:
                return 0
            anchor = connection.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == last_old)).scalar_one()
            if anchor_with is not None:
                anchor_with(int(last_old), str(anchor))
            removed = connection.execute(audit_log.delete().where(audit_log.c.seq <= last_old)).rowcount
            connection.execute(
                audit_head.update()
                .where(audit_head.c.id == _HEAD)
                .values(first_seq=last_old + 1, first_prev_hash=anchor)
            )
        return int(removed or 0)

    # alerts

    def active_alerts(self) -> dict[tuple[str, str], Alert]:
        with self._database.reading() as connection:
            rows = connection.execute(sa.select(alerts)).all()
        return {
            (row.rule, row.key): Alert(
                row.rule, row.key, AlertSeverity(row.severity), row.message, float(row.since), bool(row.firing)
            )
            for row in rows
        }

    def save_alerts(self, active: Sequence[Alert], notified: Sequence[Alert]) -> None:
        """Replace the stored alerts by ``active``; mark ``notified`` as notified now."""
        told = {(alert.rule, alert.key) for alert in notified}
        now = time.time()
        with self._database.writing() as connection:
            previous = {(row.rule, row.key): row.notified_at for row in connection.execute(sa.select(alerts))}
            connection.execute(alerts.delete())
            if active:
                connection.execute(
                    alerts.insert(),
                    [
                        {
                            **alert.to_dict(),
                            "notified_at": now if alert.ident in told else previous.get(alert.ident),
                        }
                        for alert in active
                    ],
                )

    # monitoring facts

    def claimable_depths(self, now: float) -> dict[str, int]:
        """Stage runs ready to run, per queue (what waits, whatever the broker holds)."""
        with self._database.reading() as connection:
            rows = connection.execute(
                sa.select(stage_runs.c.queue, sa.func.count())
                .where(
                    stage_runs.c.state.in_([StageState.QUEUED.value, StageState.RETRYING.value]),
                    stage_runs.c.available_at <= now,
                )
                .group_by(stage_runs.c.queue)
            ).all()
        return {queue: int(count) for queue, count in rows}

    def queue_loads(self, since: float, now: float) -> list[QueueLoad]:
        """Per queue, the stage runs that became ready in [since, now] (arrivals: a run
        retried counts once) and those that finished there, with their mean duration; one
        pass over the stage runs."""
        arrived = sa.and_(
            stage_runs.c.available_at >= since,
            stage_runs.c.available_at <= now,
            stage_runs.c.state != StageState.PENDING.value,
        )
        served = sa.and_(stage_runs.c.finished_at >= since, stage_runs.c.duration.is_not(None))
        query = sa.select(
            stage_runs.c.queue,
            sa.func.sum(sa.case((arrived, 1), else_=0)),
            sa.func.sum(sa.case((served, 1), else_=0)),
            sa.func.avg(sa.case((served, stage_runs.c.duration))),
        ).group_by(stage_runs.c.queue)
        with self._database.reading() as connection:
            rows = connection.execute(query.where(sa.or_(arrived, served))).all()
        return [
            QueueLoad(queue, int(arrivals or 0), int(finished or 0), None if mean is None else float(mean), now - since)
            for queue, arrivals, finished, mean in sorted(rows)
        ]

    def finished_since(self, since: float) -> tuple[int, int, list[PipelineTimes]]:
        """Jobs finished since ``since`` (not counting notifications): how many, how many
        failed or died, and processing times (start to finish) per pipeline."""
        finished = finished_jobs(self._database, since)
        seconds: dict[str, list[float]] = defaultdict(list)
        for job in finished:
            if not job.cancelled:
                seconds[job.pipeline].append(job.seconds)
        failed = sum(1 for job in finished if job.failed)
        return len(finished), failed, [times_of(pipeline, values) for pipeline, values in sorted(seconds.items())]

    def jobs_by_outcome(self) -> dict[tuple[str, str], int]:
        with self._database.reading() as connection:
            rows = connection.execute(
                sa.select(jobs.c.pipeline, jobs.c.state, sa.func.count()).group_by(jobs.c.pipeline, jobs.c.state)
            ).all()
        return {(pipeline, state): int(count) for pipeline, state, count in rows}

    def stage_durations(self, since: float | None = None) -> list[StageDurations]:
        """Histograms of finished stage runs' durations per pipeline and stage."""
        columns: list[Any] = [jobs.c.pipeline, stage_runs.c.stage, sa.func.count(), sa.func.sum(stage_runs.c.duration)]
        columns += [sa.func.sum(sa.case((stage_runs.c.duration <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        query = (
            sa.select(*columns)
            .join(jobs, jobs.c.id == stage_runs.c.job_id)
            .where(stage_runs.c.duration.is_not(None))
            .group_by(jobs.c.pipeline, stage_runs.c.stage)
        )
        if since is not None:
            query = query.where(stage_runs.c.finished_at >= since)
        with self._database.reading() as connection:
            rows = connection.execute(query).all()
        return [
            StageDurations(
                pipeline, stage, tuple(int(value or 0) for value in buckets), int(count), float(total or 0.0)
            )
            for pipeline, stage, count, total, *buckets in sorted(rows, key=lambda row: (row[0], row[1]))
        ]

    def counts(self) -> tuple[int, int, int]:
        """(dead jobs, open or acknowledged reviews, notifications that could not be delivered)."""
        with self._database.reading() as connection:
            dead = connection.scalar(sa.select(sa.func.count()).where(jobs.c.state == JobState.DEAD.value))
            waiting = connection.scalar(
                sa.select(sa.func.count()).where(
                    reviews.c.status.in_([ReviewStatus.OPEN.value, ReviewStatus.ACKNOWLEDGED.value])
                )
            )
            undelivered = connection.scalar(
                sa.select(sa.func.count()).where(
                    jobs.c.pipeline == constants.NOTIFY_PIPELINE,
                    jobs.c.state.in_([JobState.DEAD.value, JobState.FAILED.value]),
                )
            )
        return int(dead or 0), int(waiting or 0), int(undelivered or 0)

    def reviews_of(self, job_ids: Sequence[str]) -> dict[str, list[Review]]:
        if not job_ids:
            return {}
        with self._database.reading() as connection:
            rows = connection.execute(
                sa.select(reviews).where(reviews.c.job_id.in_(list(job_ids))).order_by(reviews.c.id)
            ).all()
        found: dict[str, list[Review]] = defaultdict(list)
        for row in rows:
            found[row.job_id].append(Review.from_row(row._mapping))
        return dict(found)


def _failed_runs(connection: Connection, job_ids: Sequence[str]) -> dict[str, Any]:
    """Per job, the failed stage run that ended it (the last to finish)."""
    if not job_ids:
        return {}
    rows = connection.execute(
        sa.select(stage_runs)
        .where(stage_runs.c.job_id.in_(list(job_ids)), stage_runs.c.state == StageState.FAILED.value)
        .order_by(stage_runs.c.finished_at)
    ).all()
    return {row.job_id: row for row in rows}
