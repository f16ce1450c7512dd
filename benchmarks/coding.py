"""The clinical coding workload's speed on this machine: what loading its models costs a
process once, and notes per second through the whole `clinical_coding_report` pipeline in
one worker process, with the time of each stage.

    python benchmarks/coding.py [--rounds N] [--concurrency C]

The notes are the workload's samples and the evaluation set (benchmarks/coding_eval/notes,
its markup stripped), each submitted ``--rounds`` times. Loading is measured in a fresh
Python process per part (imports included), as a worker pays it on its first note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coding_eval import load as load_eval_set  # noqa: E402
from vigia import Settings, Vigia  # noqa: E402
from vigia.workloads import coding  # noqa: E402

#: What each part costs a fresh process, measured there: (label, code run after `import time`).
LOADS = (
    ("PHI finder (name lists)", "from vigia.workloads.coding import phi; phi.find('Patient: Ana Ruiz')"),
    ("language detector (lingua)", "from vigia.workloads import language; language.identify('Paciente con fiebre')"),
    ("medspaCy, English pipeline", "from vigia.workloads.coding import context; context.pipeline('en')"),
    ("medspaCy, Spanish pipeline", "from vigia.workloads.coding import context; context.pipeline('es')"),
    ("ICD-10-CM code set", "from vigia.workloads.coding.codeset import codeset, billable; billable('E11.9')"),
)


def load_costs() -> list[tuple[str, float]]:
    costs = []
    for label, code in LOADS:
        script = f"import time\nbegan = time.perf_counter()\n{code}\nprint(time.perf_counter() - began)"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        costs.append((label, float(done.stdout.strip().splitlines()[-1])))
    return costs


def notes() -> list[str]:
    texts = [path.read_text(encoding="utf-8") for path in coding.samples()]
    return texts + [note.text for note in load_eval_set(HERE / "coding_eval")]


async def throughput(texts: list[str], rounds: int, concurrency: int) -> tuple[float, int, dict[str, list[float]]]:
    """Seconds for every note ``rounds`` times in one process with ``concurrency`` workers
    (models loaded first), how many jobs, and each stage's run times."""
    with tempfile.TemporaryDirectory() as directory:
        vigia = Vigia.from_settings(Settings(data_dir=Path(directory), concurrency=concurrency, poll_interval=0.02))
        async with vigia:
            for language_note in (texts[0], next(text for text in texts if "Paciente" in text)):
                warm = await vigia.submit(coding.NAME, {"text": language_note})
                await vigia.wait(warm.id, timeout=300)
            began = time.perf_counter()
            jobs = [await vigia.submit(coding.NAME, {"text": text}) for _ in range(rounds) for text in texts]
            for job in jobs:
                await vigia.wait(job.id, timeout=600)
            seconds = time.perf_counter() - began
            stages: dict[str, list[float]] = defaultdict(list)
            for job in jobs:
                for run in vigia.store.get_runs(job.id):
                    if run.started_at is not None and run.finished_at is not None:
                        stages[run.stage].append(run.finished_at - run.started_at)
            return seconds, len(jobs), stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each note is coded")
    parser.add_argument("--concurrency", type=int, default=1, help="workers in the process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    costs = load_costs()
    texts = notes()
    seconds, count, stages = asyncio.run(throughput(texts, args.rounds, args.concurrency))
    figures = {
        "load_seconds": dict(costs),
        "notes": count,
        "notes_per_second": count / seconds,
        "mean_characters": statistics.mean(len(text) for text in texts),
        "stage_ms": {
            stage: {"mean": statistics.mean(times) * 1000, "p95": sorted(times)[int(len(times) * 0.95)] * 1000}
            for stage, times in stages.items()
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print("loading, once per process (a fresh interpreter each, imports included):")
    for label, cost in costs:
        print(f"  {label:32} {cost:6.2f} s")
    print(f"\n{count} notes ({len(texts)} distinct, {figures['mean_characters']:.0f} characters on average),"
          f" {args.concurrency} worker(s) in one process: {figures['notes_per_second']:.2f} notes/s")  # fmt: skip
    print(f"{'stage':18}{'mean ms':>10}{'p95 ms':>10}")
    for stage in coding.pipeline.execution_order:
        if stage in figures["stage_ms"]:
            timing = figures["stage_ms"][stage]
            print(f"{stage:18}{timing['mean']:>10.1f}{timing['p95']:>10.1f}")
    total = sum(timing["mean"] for timing in figures["stage_ms"].values())
    print(f"{'sum of stages':18}{total:>10.1f}   (per note; the rest of {1000 / figures['notes_per_second']:.0f} ms"
          " is the engine's hand-offs between stages)")  # fmt: skip


if __name__ == "__main__":
    main()
