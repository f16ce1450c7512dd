"""Distributed mode beside plain Celery: the same no-op work, the same Redis, in one run.

    python benchmarks/distributed.py [--jobs 1000] [--rounds 2]

Vigía: `vigia worker --concurrency 2` (two prefork processes) with the job store on a fresh
PostgreSQL database, the no-op 1-stage and 3-stage pipelines of benchmarks/engine.py: with
the default stage timeout (each run its own Celery message, as plain Celery's tasks), and
declared short (`short-*`, a 30 s timeout: a backlog goes several runs to a message).
Plain Celery: a worker with the same settings (`--concurrency 2`, acks_late, prefetch 1,
JSON, no result backend, task events on) running a no-op task, and a chain of three. Each configuration:
workers started and ready first, then the whole batch sent, timed until the last is done.
CPU is summed over the workers (main process, pool processes including recycled ones,
Vigía's housekeeping process), this process, Redis and PostgreSQL (steadier than rates here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from celery import chain  # noqa: E402

from engine import PIPELINES, Figures  # noqa: E402
from vigia import Settings, Vigia  # noqa: E402
from vigia.executors.celery import HOUSEKEEPING_PROCESS_NAME  # noqa: E402
from vigia.store.database import Database  # noqa: E402
from vigia.store.jobs import SQLJobStore  # noqa: E402

ADMIN_DB = os.environ.get("VIGIA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("VIGIA_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/") + "/13"


def _own(process: psutil.Process, *, reaped: bool = False) -> float:
    """A process's CPU seconds (with those of its children that have exited, if asked)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system + (times.children_user + times.children_system if reaped else 0.0)


class Watched:
    """Where the CPU goes, read afresh at each look (pool processes are recycled and
    PostgreSQL starts a backend per new connection during a run)."""

    def __init__(self, worker: subprocess.Popen[bytes]) -> None:
        self.main = psutil.Process(worker.pid)
        # Vigía's housekeeping process names itself; plain Celery has none.
        named = [child.pid for child in self.main.children() if child.name() == HOUSEKEEPING_PROCESS_NAME]
        self.housekeeper = named[0] if named else None

    def cpu(self) -> dict[str, float]:
        main_times = self.main.cpu_times()
        pool = main_times.children_user + main_times.children_system  # recycled pool processes
        housekeeping = 0.0
        for child in self.main.children(recursive=True):
            if child.pid == self.housekeeper:
                housekeeping += _own(child)
            else:
                pool += _own(child)
        redis_cpu = postgres = 0.0
        for process in psutil.process_iter(["name", "ppid"]):
            name = process.info["name"] or ""
            if name.startswith("redis-server"):
                redis_cpu += _own(process)
            elif "postgres" in name:
                # The postmaster counts its exited backends too; live backends count their own.
                postgres += _own(process, reaped=process.info["ppid"] == 1 or not _postgres_parent(process))
        parts = {
            "pool": pool,
            "worker": main_times.user + main_times.system,
            "sender": _own(psutil.Process(os.getpid())),
            "redis": redis_cpu,
            "postgres": postgres,
        }
        if self.housekeeper is not None:
            parts["housekeeping"] = housekeeping
        return parts


def _postgres_parent(process: psutil.Process) -> bool:
    try:
        parent = process.parent()
    except psutil.NoSuchProcess:
        return False
    return parent is not None and "postgres" in (parent.name() or "")


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # A fresh log each round: an earlier round's "ready." must not count for this one.
    with log.open("wb") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_ready(log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "ready." in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')[-3000:]}")


def plain_round(jobs: int, chain_of: int, directory: Path) -> Figures:
    import plain_celery  # noqa: PLC0415 -- its Celery app reads PLAIN_CELERY_BROKER, set only for plain rounds

    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    env = {**os.environ, "PLAIN_CELERY_BROKER": REDIS, "PYTHONPATH": str(HERE)}
    log = directory / f"plain-{chain_of}.log"
    worker = start(
        # -E: task events on, as Vigía's workers have them (for Flower).
        [sys.executable, "-m", "celery", "-A", "plain_celery", "worker", "-c", "2", "-Q", "plain", "-l", "INFO", "-E"],
        env,
        log,
    )
    try:
        wait_ready(log, worker)
        watched = Watched(worker)
        cpu, began = watched.cpu(), time.perf_counter()
        for _ in range(jobs):
            if chain_of == 1:
                plain_celery.noop.delay()
            else:
                steps = [plain_celery.noop.si(False) for _ in range(chain_of - 1)] + [plain_celery.noop.si(True)]
                chain(*steps).delay()
        while int(client.get(plain_celery.COUNTER) or 0) < jobs:
            time.sleep(0.01)
        seconds, parts = time.perf_counter() - began, spent(cpu, watched.cpu())
    finally:
        stop(worker)
        client.flushdb()
        client.close()
    label = "plain Celery task" if chain_of == 1 else f"plain Celery chain of {chain_of}"
    return Figures(label, jobs, jobs * chain_of, seconds, sum(parts.values()), parts)


def vigia_round(pipeline: str, jobs: int, directory: Path) -> Figures:
    name = f"vigia_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(ADMIN_DB.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    database_url = ADMIN_DB.rsplit("/", 1)[0] + f"/{name}"
    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    store = SQLJobStore(Database(database_url))
    store.database.upgrade()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("VIGIA_")},
        "VIGIA_DATABASE_URL": database_url,
        "VIGIA_BROKER_URL": REDIS,
        "VIGIA_PIPELINES": "engine:PIPELINE_LIST",
        "VIGIA_POLL_INTERVAL": "0.5",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "src")]),
        "VIGIA_DATA_DIR": str(directory),
    }
    log = directory / f"vigia-{pipeline}.log"
    worker = start(
        [sys.executable, "-m", "vigia.cli", "worker", "--concurrency", "2"], {**env, "VIGIA_LOG_LEVEL": "INFO"}, log
    )
    try:
        wait_ready(log, worker)
        watched = Watched(worker)
        settings = Settings(database_url=database_url, broker_url=REDIS, data_dir=directory, poll_interval=0.5)

        async def run() -> float:
            vigia = Vigia.from_settings(settings, pipelines=PIPELINES.values())
            await vigia.start()
            began = time.perf_counter()
            await asyncio.gather(*(vigia.submit(pipeline, {"n": number}) for number in range(jobs)))
            with store.database.engine.connect() as connection:
                while True:
                    done = connection.execute(
                        sa.text("SELECT count(*) FROM vigia_jobs WHERE state = 'succeeded'")
                    ).scalar_one()
                    connection.commit()
                    if done >= jobs:
                        break
                    # Not more often: each count costs PostgreSQL about 0.6 ms of CPU, which
                    # every 20 ms came to 0.15 ms per stage run charged to Vigía. Finishing
                    # is seen up to 0.1 s late, which counts against Vigía, not for it.
                    await asyncio.sleep(0.1)
            seconds = time.perf_counter() - began
            await vigia.stop()
            vigia.close()
            return seconds

        cpu = watched.cpu()
        seconds = asyncio.run(run())
        parts = spent(cpu, watched.cpu())
    finally:
        stop(worker)
        store.database.close()
        client.flushdb()
        client.close()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    stages = len(PIPELINES[pipeline].nodes)
    return Figures(f"vigia {pipeline}", jobs, jobs * stages, seconds, sum(parts.values()), parts)


def main(jobs: int, rounds: int, only: list[str]) -> None:
    print(f"distributed: 2 worker processes (prefork), Redis DB 13, {jobs} jobs per configuration, {rounds} rounds")
    print("CPU = workers + Redis + PostgreSQL + this process (it sends the tasks; for Vigía it also dispatches)\n")
    results: dict[str, list[Figures]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(rounds):
            for label, runner in (
                ("plain-1", lambda: plain_round(jobs, 1, Path(directory))),
                ("vigia-1", lambda: vigia_round("noop-1", jobs, Path(directory))),
                ("short-1", lambda: vigia_round("short-1", jobs, Path(directory))),
                ("plain-3", lambda: plain_round(jobs // 3, 3, Path(directory))),
                ("vigia-3", lambda: vigia_round("noop-3", jobs // 3, Path(directory))),
                ("short-3", lambda: vigia_round("short-3", jobs // 3, Path(directory))),
            ):
                if not only or label in only:
                    results.setdefault(label, []).append(runner())

    def median(label: str) -> Figures:
        runs = sorted(results[label], key=lambda figures: figures.runs_per_second)
        return runs[len(runs) // 2]

    print(
        f"{'configuration':<28}{'jobs/s':>9}{'stage runs/s':>14}{'CPU ms/run':>12}"
        f"{'rate vs plain':>15}{'CPU vs plain':>14}"
    )
    for label, plain in (
        ("plain-1", "plain-1"),
        ("vigia-1", "plain-1"),
        ("short-1", "plain-1"),
        ("plain-3", "plain-3"),
        ("vigia-3", "plain-3"),
        ("short-3", "plain-3"),
    ):
        if label not in results:
            continue
        figures = median(label)
        ratios = ""
        if plain in results:
            base = median(plain)
            ratios = (
                f"{figures.runs_per_second / base.runs_per_second:>14.2f}x"
                f"{figures.cpu_ms_per_run / base.cpu_ms_per_run:>13.2f}x"
            )
        print(
            f"{figures.label:<28}{figures.jobs / figures.seconds:>9,.0f}{figures.runs_per_second:>14,.0f}"
            f"{figures.cpu_ms_per_run:>12.2f}{ratios}"
        )
    print("\nCPU ms per stage run by process (median round):")
    for label in results:
        figures = median(label)
        shares = "  ".join(
            f"{name} {1000 * seconds / figures.stage_runs:.2f}" for name, seconds in figures.cpu_parts.items()
        )
        print(f"  {figures.label:<26}{shares}")
    spread = {label: [round(figures.runs_per_second) for figures in runs] for label, runs in results.items()}
    print(f"\nstage runs/s per round: {spread}")
    cpu = {label: [round(figures.cpu_ms_per_run, 2) for figures in runs] for label, runs in results.items()}
    print(f"CPU ms per stage run per round: {cpu}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--only",
        action="append",
        choices=["plain-1", "vigia-1", "short-1", "plain-3", "vigia-3", "short-3"],
        default=[],
        help="run only these configurations (repeat the option; ratios need the plain one too)",
    )
    arguments = parser.parse_args()
    main(arguments.jobs, arguments.rounds, arguments.only)
