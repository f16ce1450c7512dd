"""Embedded engine throughput and submit latency, beside a bare asyncio.Queue floor.

    python benchmarks/engine.py [--jobs 2000] [--concurrency 32] [--rounds 3]

Prints, per configuration: jobs/s, stage runs/s, process CPU time per stage run (steadier
than rates on a shared machine), and the ratio to the floor measured in the same run; then
the latency of `Vigia.submit` (p50/p99) with idle workers and while workers drain a backlog.
The job store is SQLite in a temporary directory (the embedded default).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vigia import JobState, Pipeline, Settings, StageContext, Vigia


async def _noop(ctx: StageContext) -> None:
    return None


def _noop_sync(ctx: StageContext) -> None:
    return None


def _pipeline(name: str, stages: int, *, threaded: bool = False, timeout: float | None = None) -> Pipeline:
    pipeline = Pipeline(name)
    for number in range(stages):
        options = {} if timeout is None else {"timeout": timeout}
        pipeline.stage(f"s{number}", **options)(_noop_sync if threaded else _noop)
    return pipeline


PIPELINES = {
    "noop-1": _pipeline("noop-1", 1),
    "noop-3": _pipeline("noop-3", 3),
    "noop-1-thread": _pipeline("noop-1-thread", 1, threaded=True),
    # Declared short (a 30 s timeout): in distributed mode a backlog of them goes several
    # runs to a Celery message (vigia.executors.celery.messages.batches_of).
    "short-1": _pipeline("short-1", 1, timeout=30),
    "short-3": _pipeline("short-3", 3, timeout=30),
}
#: The same pipelines as a list, for VIGIA_PIPELINES=engine:PIPELINE_LIST in worker processes.
PIPELINE_LIST = list(PIPELINES.values())


@dataclass
class Figures:
    label: str
    jobs: int
    stage_runs: int
    seconds: float
    cpu_seconds: float
    #: CPU seconds by process group, where a benchmark measures several processes.
    cpu_parts: dict[str, float] = field(default_factory=dict)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def runs_per_second(self) -> float:
        return self.stage_runs / self.seconds

    @property
    def cpu_ms_per_run(self) -> float:
        return 1000 * self.cpu_seconds / self.stage_runs


def _settings(directory: Path, concurrency: int) -> Settings:
    return Settings(data_dir=directory, concurrency=concurrency, poll_interval=0.5)


async def engine_drain(pipeline_name: str, jobs: int, concurrency: int) -> Figures:
    """Store a backlog of jobs, then time the embedded executor draining it."""
    pipeline = PIPELINES[pipeline_name]
    with tempfile.TemporaryDirectory() as directory:
        app = Vigia.from_settings(_settings(Path(directory), concurrency), pipelines=PIPELINES.values())
        await app.start(workers=False)
        ids = [
            app.coordinator.submit(pipeline_name, {"n": number}).job.id for number in range(jobs)
        ]  # a backlog, stored before the clock starts
        cpu, wall = time.process_time(), time.perf_counter()
        await app.start()
        assert app.executor is not None
        while app.executor.completed < jobs * len(pipeline.nodes):  # type: ignore[attr-defined]
            await asyncio.sleep(0.005)
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        await app.stop()
        last = await app.get_job(ids[-1])
        assert last.state is JobState.SUCCEEDED, last
        app.close()
    return Figures(f"vigia {pipeline_name}", jobs, jobs * len(pipeline.nodes), seconds, cpu_seconds)


async def queue_floor(stages: int, jobs: int, concurrency: int) -> Figures:
    """The same no-op work through bare asyncio.Queues: one queue per stage, `concurrency`
    consumers each, nothing stored. What an in-process engine cannot beat."""
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(stages)]
    done = asyncio.Event()
    finished = 0

    async def consume(index: int) -> None:
        nonlocal finished
        while True:
            item = await queues[index].get()
            await _noop(None)  # type: ignore[arg-type]
            if index + 1 < stages:
                queues[index + 1].put_nowait(item)
            else:
                finished += 1
                if finished == jobs:
                    done.set()

    for item in range(jobs):
        queues[0].put_nowait(item)
    cpu, wall = time.process_time(), time.perf_counter()
    workers = [asyncio.create_task(consume(index)) for index in range(stages) for _ in range(concurrency)]
    await done.wait()
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return Figures(f"asyncio.Queue x{stages}", jobs, jobs * stages, seconds, cpu_seconds)


async def submit_latency(submissions: int, concurrency: int, *, workers: bool, backlog: int = 0) -> list[float]:
    """Latency of `Vigia.submit` (stored and committed when it returns), one caller."""
    with tempfile.TemporaryDirectory() as directory:
        app = Vigia.from_settings(_settings(Path(directory), concurrency), pipelines=PIPELINES.values())
        await app.start(workers=False)
        for number in range(backlog):
            app.coordinator.submit("noop-3", {"n": number})
        if workers:
            await app.start()
        for warm_up in range(20):
            await app.submit("noop-1", {"warm": warm_up})
        latencies = []
        for number in range(submissions):
            started = time.perf_counter()
            await app.submit("noop-1", {"n": number})
            latencies.append(time.perf_counter() - started)
        await app.stop()
        app.close()
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def main(jobs: int, concurrency: int, rounds: int, submissions: int) -> None:
    print(f"embedded engine, SQLite store, {jobs} jobs per run, concurrency {concurrency} per queue, {rounds} rounds")
    print("median of rounds; rounds interleave configurations so that machine noise hits all alike\n")
    results: dict[str, list[Figures]] = {}
    for _ in range(rounds):
        for label, runner in (
            ("floor-1", lambda: queue_floor(1, jobs, concurrency)),
            ("vigia-1", lambda: engine_drain("noop-1", jobs, concurrency)),
            ("floor-3", lambda: queue_floor(3, jobs, concurrency)),
            ("vigia-3", lambda: engine_drain("noop-3", jobs, concurrency)),
            ("vigia-1-thread", lambda: engine_drain("noop-1-thread", jobs, concurrency)),
        ):
            results.setdefault(label, []).append(await runner())

    def median(label: str) -> Figures:
        runs = results[label]
        return sorted(runs, key=lambda figures: figures.runs_per_second)[len(runs) // 2]

    header = (
        f"{'configuration':<26}{'jobs/s':>10}{'stage runs/s':>14}{'CPU ms/run':>12}"
        f"{'runs/s vs floor':>17}{'CPU vs floor':>14}"
    )
    print(header)
    print("-" * len(header))
    for label, floor_label in (
        ("floor-1", "floor-1"),
        ("vigia-1", "floor-1"),
        ("vigia-1-thread", "floor-1"),
        ("floor-3", "floor-3"),
        ("vigia-3", "floor-3"),
    ):
        figures, floor = median(label), median(floor_label)
        print(
            f"{figures.label:<26}{figures.jobs_per_second:>10,.0f}{figures.runs_per_second:>14,.0f}"
            f"{figures.cpu_ms_per_run:>12.3f}{figures.runs_per_second / floor.runs_per_second:>16.4f}x"
            f"{figures.cpu_ms_per_run / floor.cpu_ms_per_run:>13.0f}x"
        )
    spread = {label: [round(f.runs_per_second) for f in runs] for label, runs in results.items()}
    print(f"\nstage runs/s in each round: {spread}")

    print(f"\nsubmit latency (Vigia.submit, {submissions} sequential submissions, committed on return)")
    for label, workers, backlog in (
        ("no workers in the process", False, 0),
        ("workers running each job as it comes", True, 0),
        ("workers draining a 3-stage backlog", True, jobs),
    ):
        latencies = await submit_latency(submissions, concurrency, workers=workers, backlog=backlog)
        print(
            f"  {label:<38} p50 {1000 * statistics.median(latencies):6.2f} ms   "
            f"p99 {1000 * percentile(latencies, 0.99):6.2f} ms   max {1000 * max(latencies):6.2f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.jobs, arguments.concurrency, arguments.rounds, arguments.submissions))
