"""What a stage in a process of its own costs, against the same stage in a thread.

    python benchmarks/isolation.py [--runs 300] [--cpu-runs 8] [--cpu-loops 5000000]

No-op stage runs one after another through `run_attempt` (the executors' own path): the
per-run cost of the pipe round trip and the context sent to the child. Then ``--cpu-runs``
pure-Python CPU-bound runs of ``--cpu-loops`` iterations each, two at a time: in threads
they share one GIL, in processes they have a core each. Medians of 3 rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from vigia.context import StageContext
from vigia.executors.isolated import ProcessPool
from vigia.pipeline import Stage
from vigia.runner import run_attempt


def noop(ctx: StageContext) -> dict[str, int]:
    return {"ok": 1}


def burn(ctx: StageContext) -> int:
    total = 0
    for number in range(int(ctx.input)):  # pure Python: it holds the GIL throughout
        total += number % 7
    return total


def context(number: int, job_input: object = None) -> StageContext:
    return StageContext(job_id=f"job-{number}", stage="s", attempt=1, input=job_input, outputs={})


async def one_by_one(stage: Stage, runs: int, threads: ThreadPoolExecutor, processes: ProcessPool | None) -> float:
    started = time.perf_counter()
    for number in range(runs):
        outcome = await run_attempt(stage, context(number), run_id=number, threads=threads, processes=processes)
        assert outcome.status == "succeeded", outcome
    return (time.perf_counter() - started) / runs


async def two_at_a_time(
    stage: Stage, runs: int, loops: int, threads: ThreadPoolExecutor, processes: ProcessPool | None
) -> float:
    slots = asyncio.Semaphore(2)

    async def one(number: int) -> None:
        async with slots:
            outcome = await run_attempt(
                stage, context(number, loops), run_id=number, threads=threads, processes=processes
            )
            assert outcome.status == "succeeded", outcome

    started = time.perf_counter()
    await asyncio.gather(*(one(number) for number in range(runs)))
    return time.perf_counter() - started


async def main(runs: int, cpu_runs: int, cpu_loops: int) -> None:
    threads = ThreadPoolExecutor(4)
    processes = ProcessPool(2)
    in_thread, in_process = Stage("s", noop), Stage("s", noop, run_in="process")
    burn_thread, burn_process = Stage("b", burn, timeout=600), Stage("b", burn, timeout=600, run_in="process")
    await one_by_one(in_process, 3, threads, processes)  # the children started and warm
    await two_at_a_time(burn_process, 2, 1000, threads, processes)
    rounds: dict[str, list[float]] = {
        "thread no-op ms": [],
        "process no-op ms": [],
        "thread CPU s": [],
        "process CPU s": [],
    }
    for _ in range(3):
        rounds["thread no-op ms"].append(1000 * await one_by_one(in_thread, runs, threads, None))
        rounds["process no-op ms"].append(1000 * await one_by_one(in_process, runs, threads, processes))
        rounds["thread CPU s"].append(await two_at_a_time(burn_thread, cpu_runs, cpu_loops, threads, None))
        rounds["process CPU s"].append(await two_at_a_time(burn_process, cpu_runs, cpu_loops, threads, processes))
    processes.close()
    threads.shutdown()
    for name, values in rounds.items():
        print(f"  {name:18} median {statistics.median(values):.3f}  ({', '.join(f'{value:.3f}' for value in values)})")
    print(
        f"  {cpu_runs} CPU-bound runs of {cpu_loops:,} loops, 2 at a time: processes"
        f" {statistics.median(rounds['thread CPU s']) / statistics.median(rounds['process CPU s']):.2f}x faster"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cpu-runs", type=int, default=8)
    parser.add_argument("--cpu-loops", type=int, default=5_000_000, help="Iterations of each CPU-bound run.")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.cpu_runs, arguments.cpu_loops))
