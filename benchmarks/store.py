"""Job store look-ups with a large history: status by id, filtered listings, claims.

    python benchmarks/store.py [--jobs 1000000] [--database-url postgresql://...]

Fills a fresh store (SQLite in a temporary directory unless a URL is given) with ``--jobs``
finished jobs spread over tenants, pipelines and states, plus a backlog of queued stage
runs, then times the queries the API and the workers make. Each figure is the median and
the 99th percentile of repeated calls.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vigia.job import JobState, new_job_id
from vigia.store.base import JobFilter
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore
from vigia.store.schema import jobs, stage_runs

TENANTS = ["clinic-a", "clinic-b", "clinic-c", "clinic-d"]
PIPELINES = ["pressure_injury_case", "document_ingest", "clinical_coding_report"]
STATES = [JobState.SUCCEEDED] * 8 + [JobState.DEGRADED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED]
BATCH = 20_000


def fill(store: SQLJobStore, count: int, backlog: int) -> tuple[list[str], float]:
    rng = random.Random(7)
    started = time.time() - count * 0.01  # one job every 10 ms, ending now
    ids: list[str] = []
    for first in range(0, count, BATCH):
        job_rows, run_rows = [], []
        for number in range(first, min(count, first + BATCH)):
            created = started + number * 0.01
            job_id = new_job_id(created)
            ids.append(job_id)
            queued = number >= count - backlog
            state = JobState.QUEUED if queued else rng.choice(STATES)
            job_rows.append(
                {
                    "id": job_id,
                    "tenant": rng.choice(TENANTS),
                    "pipeline": rng.choice(PIPELINES),
                    "pipeline_version": "1",
                    "state": state.value,
                    "priority": 0,
                    "progress": 0.0 if queued else 100.0,
                    "input": {"n": number},
                    "input_hash": f"{number:064x}",
                    "created_at": created,
                    "updated_at": created,
                    "finished_at": None if queued else created + 5,
                    "last_seq": 1,
                }
            )
            run_rows.append(
                {
                    "job_id": job_id,
                    "stage": "only",
                    "state": "queued" if queued else "succeeded",
                    "queue": "default",
                    "priority": rng.choice([0, 0, 0, 5]),
                    "attempts": 0 if queued else 1,
                    "available_at": created,
                    "progress": 0.0,
                }
            )
        with store.database.engine.begin() as connection:
            connection.execute(jobs.insert(), job_rows)
            connection.execute(stage_runs.insert(), run_rows)
        print(f"\r  stored {len(ids):,} jobs", end="", flush=True)
    print()
    return ids, started


def timed(label: str, repeat: int, call: Callable[[], object]) -> None:
    durations = []
    for _ in range(repeat):
        begun = time.perf_counter()
        call()
        durations.append(time.perf_counter() - begun)
    durations.sort()
    p99 = durations[min(len(durations) - 1, round(0.99 * (len(durations) - 1)))]
    print(f"  {label:<58} p50 {1000 * statistics.median(durations):7.3f} ms   p99 {1000 * p99:7.3f} ms")


def main(count: int, url: str | None, backlog: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SQLJobStore(Database(url or f"sqlite:///{Path(directory) / 'vigia.db'}"))
        store.database.upgrade()
        print(f"{store.database.engine.dialect.name}: filling with {count:,} jobs ({backlog:,} still queued)")
        begun = time.perf_counter()
        ids, started = fill(store, count, backlog)
        print(f"  filled in {time.perf_counter() - begun:.0f} s")
        if store.database.engine.dialect.name == "postgresql":
            with store.database.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        rng = random.Random(11)
        middle = started + count * 0.005
        timed("status by id (get_job)", 500, lambda: store.get_job(rng.choice(ids)))
        timed("stage runs of a job (get_runs)", 500, lambda: store.get_runs(rng.choice(ids)))
        timed("newest 50 of a tenant", 200, lambda: store.list_jobs(JobFilter(tenant="clinic-b"), 50))
        timed(
            "newest 50 dead jobs of a tenant",
            200,
            lambda: store.list_jobs(JobFilter(tenant="clinic-b", states=(JobState.DEAD,)), 50),
        )
        timed(
            "50 of a tenant's pipeline in a one-hour window",
            200,
            lambda: store.list_jobs(
                JobFilter(
                    tenant="clinic-c", pipeline="document_ingest", created_after=middle, created_before=middle + 3600
                ),
                50,
            ),
        )
        page = store.list_jobs(JobFilter(tenant="clinic-a"), 50)
        timed("next page by cursor", 200, lambda: store.list_jobs(JobFilter(tenant="clinic-a"), 50, page.next_cursor))
        timed("newest 50 dead jobs, all tenants", 200, lambda: store.list_jobs(JobFilter(states=(JobState.DEAD,)), 50))

        def claim_and_give_back() -> None:
            with store.unit_of_work() as unit:
                claimed = unit.claim("default", 32, "bench", time.time() + 30, time.time())
                assert len(claimed) == 32
                raise _Rollback

        timed(f"claim 32 of a {backlog:,}-run backlog (rolled back)", 100, lambda: _swallow(claim_and_give_back))
        store.database.close()


class _Rollback(Exception):
    pass


def _swallow(call: Callable[[], None]) -> None:
    with contextlib.suppress(_Rollback):
        call()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    arguments = parser.parse_args()
    main(arguments.jobs, arguments.database_url, arguments.backlog)
