"""The monitoring charts' series: per minute, on whole minutes, nothing invented."""

from __future__ import annotations

import itertools

from vigia.trends import FinishedJob, QueueSample, bucket_starts, series

NOW = 1_800_000_030.0  # 30 s into a minute


def job(pipeline: str, at: float, seconds: float, *, failed: bool = False, cancelled: bool = False) -> FinishedJob:
    return FinishedJob(pipeline, at, seconds, failed, cancelled)


def test_buckets_are_the_last_hours_whole_minutes_oldest_first() -> None:
    starts = bucket_starts(NOW)
    assert len(starts) == 60
    assert starts[-1] == NOW - 30 and starts[0] == NOW - 30 - 59 * 60
    assert all(later - earlier == 60 for earlier, later in itertools.pairwise(starts))
    assert bucket_starts(NOW + 20) == starts  # a read 20 s later draws the same bars


def test_each_minute_counts_its_jobs_failures_and_p95() -> None:
    last = NOW - 30
    finished = [
        *(job("cases", last + 1, float(n)) for n in range(1, 20)),  # 1..19 s
        job("cases", last + 2, 100.0, failed=True),
        job("cases", last - 60 + 5, 3.0),
        job("cases", last + 3, 500.0, cancelled=True),  # counted as finished, not timed
        job("notes", last - 59 * 60, 2.0, failed=True),  # the oldest minute
        job("notes", last - 60 * 60, 2.0),  # before the hour: not drawn
    ]
    drawn = series(finished, [], NOW)
    cases = drawn["pipelines"]["cases"]
    assert cases["finished"][-1] == 21 and cases["failed"][-1] == 1
    assert cases["failure_rate"][-1] == round(1 / 21, 4)
    # Nearest rank over the 20 timed jobs (1..19 and 100): the 19th, 19 s.
    assert cases["p95_seconds"][-1] == 19.0
    assert (cases["finished"][-2], cases["p95_seconds"][-2], cases["failure_rate"][-2]) == (1, 3.0, 0.0)
    # A minute without jobs has no rate and no p95, rather than a zero that means "fine".
    assert cases["failure_rate"][0] is None and cases["p95_seconds"][0] is None and cases["finished"][0] == 0
    notes = drawn["pipelines"]["notes"]
    assert sum(notes["finished"]) == 1 and notes["finished"][0] == 1 and notes["failure_rate"][0] == 1.0


def test_a_queue_shows_its_deepest_backlog_of_each_minute_and_nothing_where_unseen() -> None:
    last = NOW - 30
    samples = [
        QueueSample(last + 1, "images", 3, 2),
        QueueSample(last + 20, "images", 40, 2),
        QueueSample(last + 25, "images", 7, 1),
        QueueSample(last - 120, "images", 0, 2),
        QueueSample(last - 3600, "images", 999, 2),  # before the hour
    ]
    drawn = series([], samples, NOW)
    images = drawn["queues"]["images"]
    assert images["depth"][-1] == 40 and images["consumers"][-1] == 1  # the latest count of workers
    assert images["depth"][-3] == 0
    assert images["depth"][-2] is None and images["depth"][0] is None
    assert 999 not in images["depth"]
    assert drawn["pipelines"] == {} and drawn["step_seconds"] == 60
