"""What the monitoring charts draw from: the jobs finished over the last hour (read from the
jobs table, so it is true after a restart) and the queue depths the watch sampled."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from vigia import constants
from vigia.job import JobState
from vigia.monitoring import QueueFacts
from vigia.store.database import Database
from vigia.store.schema import jobs, queue_samples
from vigia.trends import FinishedJob, QueueSample

#: Samples older than this are removed as new ones are written.
SAMPLE_RETENTION_SECONDS = 24 * 3600.0

_FAILED = (JobState.FAILED.value, JobState.DEAD.value)


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, at: float, queues: Sequence[QueueFacts]) -> None:
        """Keep one sample per queue, and forget those past the retention."""
        with self._database.writing() as connection:
            if queues:
                connection.execute(
                    queue_samples.insert(),
                    [
                        {"at": at, "queue": facts.name, "depth": facts.depth, "consumers": len(facts.consumers)}
                        for facts in queues
                    ],
                )
            connection.execute(queue_samples.delete().where(queue_samples.c.at < at - SAMPLE_RETENTION_SECONDS))

    def finished_since(self, since: float) -> list[FinishedJob]:
        return finished_jobs(self._database, since)

    def samples_since(self, since: float) -> list[QueueSample]:
        query = sa.select(
            queue_samples.c.at, queue_samples.c.queue, queue_samples.c.depth, queue_samples.c.consumers
        ).where(queue_samples.c.at >= since)
        with self._database.reading() as connection:
            return [QueueSample(*row) for row in connection.execute(query)]


def finished_jobs(database: Database, since: float) -> list[FinishedJob]:
    """Jobs finished since ``since``, notifications aside (they are not the service's work
    and have their own alert), with their processing time (start to finish)."""
    terminal = [state.value for state in JobState if state.is_terminal]
    query = sa.select(jobs.c.pipeline, jobs.c.state, jobs.c.created_at, jobs.c.started_at, jobs.c.finished_at).where(
        jobs.c.state.in_(terminal),
        jobs.c.finished_at >= since,
        jobs.c.pipeline != constants.NOTIFY_PIPELINE,
    )
    with database.reading() as connection:
        rows = connection.execute(query).all()
    return [
        FinishedJob(
            pipeline,
            finished_at,
            max(0.0, finished_at - (started_at or created_at)),
            state in _FAILED,
            state == JobState.CANCELLED.value,
        )
        for pipeline, state, created_at, started_at, finished_at in rows
    ]
