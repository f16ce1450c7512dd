"""Retention at scale: the purge rate of a store holding ``--jobs`` finished jobs, and the
status look-ups another thread makes meanwhile (what the API would answer during a purge).

    python benchmarks/retention.py [--jobs 1000000] [--database-url postgresql://...]

Fills a fresh store as `benchmarks/store.py` does (every job with a stage run; a twelfth
dead, which retention keeps), then purges everything that finished (500 jobs a
transaction, no pause) while a second thread looks jobs up by id without stopping. Prints
jobs purged per second and the look-ups' p50/p99, against the same look-ups before the
purge.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from store import fill  # benchmarks/store.py, beside this file
from vigia import retention
from vigia.blobs import LocalBlobStore
from vigia.coordinator import Coordinator
from vigia.exceptions import JobNotFound
from vigia.expiry import Expiry
from vigia.registry import Registry
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore


def percentiles(durations: list[float]) -> str:
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {1000 * statistics.median(ordered):.3f} ms, p99 {1000 * p99:.3f} ms over {len(ordered):,}"


def look_up(url: str, ids: list[str], stop: Any, started: Any, results: Any) -> None:
    store = SQLJobStore(Database(url))
    lookups = random.Random(5)
    during: list[float] = []
    started.set()
    while not stop.is_set():
        begun = time.perf_counter()
        with contextlib.suppress(JobNotFound):  # purged already: still a look-up, a 404
            store.get_job(lookups.choice(ids))
        during.append(time.perf_counter() - begun)
    results.put(during)
    store.database.close()


def main(count: int, url: str | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SQLJobStore(Database(url or f"sqlite:///{Path(directory) / 'vigia.db'}"))
        store.database.upgrade()
        print(f"{store.database.engine.dialect.name}: filling with {count:,} jobs")
        ids, _ = fill(store, count, backlog=0)
        if store.database.engine.dialect.name == "postgresql":
            with store.database.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        rng = random.Random(3)
        before = []
        for _ in range(2000):
            begun = time.perf_counter()
            store.get_job(rng.choice(ids))
            before.append(time.perf_counter() - begun)
        print(f"  status by id before the purge: {percentiles(before)}")

        coordinator = Coordinator(store, Registry([]))
        blobs = LocalBlobStore(Path(directory) / "blobs")
        # The look-ups from a process of their own, as the API's would be (not this one's GIL).
        context = multiprocessing.get_context("spawn")
        stop, started = context.Event(), context.Event()
        results: multiprocessing.Queue[list[float]] = context.Queue()
        reader = context.Process(
            target=look_up,
            args=(str(store.database.engine.url.render_as_string(hide_password=False)), ids, stop, started, results),
        )
        reader.start()
        started.wait(60)

        def shown(progress: retention.Purged) -> None:
            if progress.batches % 50 == 0:
                print(f"\r  purged {progress.jobs:,} jobs", end="", flush=True)

        try:
            purged = retention.purge(coordinator, blobs, Expiry(time.time(), before=time.time() + 1), progress=shown)
        finally:
            stop.set()
            during = results.get(timeout=120)
            reader.join()
        print(
            f"\r  purged {purged.jobs:,} jobs in {purged.batches:,} batches, {purged.seconds:.1f} s:"
            f" {purged.jobs / purged.seconds:,.0f} jobs/s"
        )
        print(f"  status by id during the purge: {percentiles(during)}")
        store.database.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    arguments = parser.parse_args()
    main(arguments.jobs, arguments.database_url)
