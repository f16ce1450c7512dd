"""Retention's statements: finished jobs past their cutoff deleted with everything that
hangs off them, a batch at a time, and the files no job or document names any more."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigia.escalation import ReviewStatus
from vigia.expiry import FINISHED_STATES, Expiry
from vigia.job import JobState
from vigia.store.schema import documents, events, job_files, jobs, reviews, stage_runs


def _expired(expiry: Expiry, states: tuple[JobState, ...] = FINISHED_STATES) -> sa.ColumnElement[bool] | None:
    """Finished jobs (in ``states``) past their pipeline's cutoff, none with a review still
    waiting; None when nothing can expire."""
    by_pipeline = []
    for pipeline, cutoff in expiry.cutoffs().items():
        if cutoff is not None:
            by_pipeline.append(sa.and_(jobs.c.pipeline == pipeline, jobs.c.finished_at < cutoff))
    default = expiry.default_cutoff()
    if default is not None:
        by_pipeline.append(sa.and_(jobs.c.pipeline.not_in(list(expiry.cutoffs())), jobs.c.finished_at < default))
    if not by_pipeline:
        return None
    waiting = (
        sa.select(reviews.c.id)
        .where(
            reviews.c.job_id == jobs.c.id,
            reviews.c.status.in_([ReviewStatus.OPEN.value, ReviewStatus.ACKNOWLEDGED.value]),
        )
        .exists()
    )
    state = jobs.c.state == states[0].value if len(states) == 1 else jobs.c.state.in_([item.value for item in states])
    return sa.and_(state, sa.or_(*by_pipeline), sa.not_(waiting))


def count_expired(connection: Connection, expiry: Expiry) -> int:
    condition = _expired(expiry)
    if condition is None:
        return 0
    return int(connection.scalar(sa.select(sa.func.count()).select_from(jobs).where(condition)) or 0)


def delete_expired(
    connection: Connection, expiry: Expiry, limit: int, *, row_locks: bool
) -> tuple[list[str], set[str]]:
    """Delete up to ``limit`` expired jobs (oldest finished first) with their stage runs,
    events, reviews and file names; their ids, and the files they named."""
    job_ids: list[str] = []
    # One state at a time, oldest first: each query a range of the (state, finished_at)
    # index that stops at ``limit``, where one over all states would sort every match.
    for state in FINISHED_STATES:
        condition = _expired(expiry, (state,))
        if condition is None:
            return [], set()
        query = sa.select(jobs.c.id).where(condition).order_by(jobs.c.finished_at).limit(limit - len(job_ids))
        if row_locks:
            # Another purge (a second serving process) takes other jobs meanwhile.
            query = query.with_for_update(of=jobs, skip_locked=True)
        job_ids += connection.scalars(query)
        if len(job_ids) >= limit:
            break
    if not job_ids:
        return [], set()
    named = set(connection.scalars(sa.select(job_files.c.sha256).where(job_files.c.job_id.in_(job_ids))))
    # Children first: SQLite enforces the foreign keys without cascading them unless told.
    for table in (reviews, stage_runs, events, job_files):
        connection.execute(table.delete().where(table.c.job_id.in_(job_ids)))
    connection.execute(jobs.delete().where(jobs.c.id.in_(job_ids)))
    return job_ids, named


def unreferenced(connection: Connection, digests: Iterable[str]) -> set[str]:
    """Of ``digests``, those no stored job and no document names."""
    wanted = set(digests)
    if not wanted:
        return set()
    named = set(connection.scalars(sa.select(job_files.c.sha256).where(job_files.c.sha256.in_(wanted))))
    kept = set(connection.scalars(sa.select(documents.c.sha256).where(documents.c.sha256.in_(wanted))))
    return wanted - named - kept
