"""The last hour as charts: per pipeline, jobs finished, failed and the p95 processing time
per minute; per queue, the depth the watch saw. Pure: the store gives the rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vigia.monitoring import percentile

#: A chart's span and step.
HISTORY_SECONDS = 3600.0
BUCKET_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class FinishedJob:
    pipeline: str
    finished_at: float
    seconds: float
    failed: bool
    cancelled: bool


@dataclass(frozen=True, slots=True)
class QueueSample:
    at: float
    queue: str
    depth: int
    consumers: int


def bucket_starts(now: float, span: float = HISTORY_SECONDS, step: float = BUCKET_SECONDS) -> list[float]:
    """The start of each step of the span ending at ``now``, oldest first, on whole steps
    (so that two reads a few seconds apart draw the same bars)."""
    last = math.floor(now / step) * step
    count = max(1, math.ceil(span / step))
    return [last - step * index for index in range(count - 1, -1, -1)]


def series(
    finished: Iterable[FinishedJob],
    samples: Iterable[QueueSample],
    now: float,
    span: float = HISTORY_SECONDS,
    step: float = BUCKET_SECONDS,
) -> dict[str, Any]:
    """The charts' data: a list of bucket start times, and per pipeline and per queue one
    value per bucket (None where a bucket saw nothing to measure)."""
    starts = bucket_starts(now, span, step)
    first = starts[0]
    slots = len(starts)

    def slot(moment: float) -> int | None:
        index = int((moment - first) // step)
        return index if 0 <= index < slots else None

    done: dict[str, list[int]] = defaultdict(lambda: [0] * slots)
    failed: dict[str, list[int]] = defaultdict(lambda: [0] * slots)
    seconds: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(slots)])
    for job in finished:
        index = slot(job.finished_at)
        if index is None:
            continue
        done[job.pipeline][index] += 1
        if job.failed:
            failed[job.pipeline][index] += 1
        if not job.cancelled:
            seconds[job.pipeline][index].append(job.seconds)
    pipelines = {
        name: {
            "finished": done[name],
            "failed": failed[name],
            "failure_rate": [
                round(failures / total, 4) if total else None
                for failures, total in zip(failed[name], done[name], strict=True)
            ],
            "p95_seconds": [round(percentile(values, 95), 3) if values else None for values in seconds[name]],
        }
        for name in sorted(done)
    }
    depth: dict[str, list[int | None]] = defaultdict(lambda: [None] * slots)
    consumers: dict[str, list[int | None]] = defaultdict(lambda: [None] * slots)
    for sample in sorted(samples, key=lambda item: item.at):
        index = slot(sample.at)
        if index is None:
            continue
        # The deepest the queue was seen within the minute: a chart of backlogs should not
        # hide a spike between two samples of the same minute.
        previous = depth[sample.queue][index]
        depth[sample.queue][index] = sample.depth if previous is None else max(previous, sample.depth)
        consumers[sample.queue][index] = sample.consumers
    queues = {name: {"depth": depth[name], "consumers": consumers[name]} for name in sorted(depth)}
    return {"step_seconds": step, "buckets": starts, "pipelines": pipelines, "queues": queues}
