"""Chaos probe: kill -9 of the server and of a worker under a 2,000-job load, in embedded and
in distributed mode, and nothing is lost or done twice.

Clients submit every job over HTTP with an Idempotency-Key and, when the server is gone, try
the same key again once it is back, as a careful client would. The server is killed while
they submit, a worker while it holds stage runs; both are started again. Then:

- every job a client was told about exists, there is one job per key, and all succeed;
- a stage ran again only where the process that ran it was killed, and otherwise once per
  attempt the store counted (the journal the stages append to, from every process, says so);
- what the killed worker held was taken back and finished;
- each job's events are numbered without a gap.

The time to recover from each kill is printed (``pytest -s``).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.acceptance.test_serve import API, free_port, vigia_command, vigia_env
from vigia.store.database import Database

ROOT = Path(__file__).resolve().parents[2]
JOBS = 2000
CLIENTS = 8
LEASE_SECONDS = 2.0
PIPELINE = "t_chaos"
STAGES = ("first", "second")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
    seen: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} {seen()}")
        time.sleep(interval)


@dataclass
class Installation:
    """The processes of one installation, each in its own process group (a Celery worker's
    pool dies with it), and the database they share."""

    data_dir: Path
    env: dict[str, str]
    database_url: str
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    def log(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as output:
            process = subprocess.Popen(
                [*vigia_command(), *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_server(self) -> None:
        self.start("server", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir))

    def kill(self, name: str) -> set[int]:
        """kill -9 the process and everything it started; the pids that died."""
        process = self.processes[name]
        pids = {process.pid} | {child.pid for child in psutil.Process(process.pid).children(recursive=True)}
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        return pids

    def answering(self) -> bool:
        server = self.processes["server"]
        assert server.poll() is None, f"the server exited with {server.returncode}:\n{self.logs()}"
        try:
            return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}:\n{path.read_text(errors='replace')[-2500:]}"
            for path in sorted(self.data_dir.glob("*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


class Clients:
    """CLIENTS threads submitting JOBS jobs, each retrying its key until the server answers."""

    def __init__(self, installation: Installation, key: str, journal: Path, pipeline: str) -> None:
        self.installation = installation
        self.pipeline = pipeline
        self.headers = {"Authorization": f"Bearer {key}"}
        self.journal = journal
        self.acknowledged: dict[int, str] = {}
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(CLIENTS)
        self.futures = [self.pool.submit(self._submit_share, share) for share in range(CLIENTS)]

    def _submit_share(self, share: int) -> None:
        with httpx.Client(base_url=self.installation.url, headers=self.headers, timeout=10.0) as http:
            for number in range(share, JOBS, CLIENTS):
                self._submit(http, number)

    def _submit(self, http: httpx.Client, number: int) -> None:
        body = {"input": {"journal": str(self.journal), "pace": 0.01, "number": number}}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = http.post(
                    f"/pipelines/{self.pipeline}/jobs", json=body, headers={"Idempotency-Key": f"chaos-{number}"}
                )
            except httpx.TransportError:
                time.sleep(0.05)  # the server is down: the same key again once it is back
                continue
            if response.status_code in (200, 202):
                with self.lock:
                    self.acknowledged[number] = response.json()["id"]
                return
            if response.status_code == 503:  # the store not ready yet after a restart
                time.sleep(0.05)
                continue
            with self.lock:
                self.refused.append(f"job {number}: {response.status_code} {response.text[:300]}")
            return
        with self.lock:
            self.refused.append(f"job {number}: no answer for 180 s")

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def finish(self) -> None:
        for future in self.futures:
            future.result(timeout=300)
        self.pool.shutdown()


def jobs_by_state(engine: sa.Engine, pipeline: str) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT state, count(*) FROM vigia_jobs WHERE pipeline = :pipeline GROUP BY state"),
            {"pipeline": pipeline},
        )
        return {state: int(count) for state, count in rows}


def held_runs(engine: sa.Engine, journal: Path, pids: set[int]) -> set[tuple[str, str]]:
    """The stage runs one of ``pids`` started (the journal says) that have not succeeded yet.
    From the journal, not from the store: a distributed worker writes its claim on a short
    stage only with the outcome."""
    started = set()
    for line in journal.read_text().splitlines() if journal.exists() else ():
        job_id, stage, _, pid = line.split()
        if int(pid) in pids:
            started.add((job_id, stage))
    if not started:
        return set()
    return {run for run, state in run_states(engine, started).items() if state != "succeeded"}


def stage_runs_by_state(engine: sa.Engine) -> str:
    """What the store says of the stage runs, for a timeout's message."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT state, dispatched_at IS NOT NULL, count(*) FROM vigia_stage_runs GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
    return "stage runs " + ", ".join(f"{state}{' (sent)' if sent else ''}: {count}" for state, sent, count in rows)


def run_states(engine: sa.Engine, runs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT job_id, stage, state FROM vigia_stage_runs")).all()
    return {(job_id, stage): state for job_id, stage, state in rows if (job_id, stage) in runs}


def chaos(installation: Installation, worker_args: tuple[str, ...], mode: str, pipeline: str = PIPELINE) -> None:
    journal = installation.data_dir / "journal.txt"
    engine = sa.create_engine(installation.database_url)
    installation.start_server()
    wait_for(installation.answering, 60, "the server to answer")
    installation.start("worker", "worker", *worker_args)
    key = (installation.data_dir / "admin.key").read_text().strip()
    clients = Clients(installation, key, journal, pipeline)
    try:
        # 1. The server dies while the clients submit (and its dispatching or embedded workers with it).
        wait_for(lambda: clients.count() >= 400, 120, "400 submissions")
        killed = installation.kill("server")
        killed_at = time.monotonic()
        acknowledged_at_kill = clients.count()
        installation.start_server()
        wait_for(installation.answering, 60, "the restarted server to answer")
        answering_after = time.monotonic() - killed_at
        wait_for(lambda: clients.count() > acknowledged_at_kill, 60, "a submission after the restart", 0.01)
        submitting_after = time.monotonic() - killed_at

        # 2. A worker dies while it holds stage runs.
        held: set[tuple[str, str]] = set()

        def worker_holds_runs() -> bool:
            nonlocal held
            pids = {installation.processes["worker"].pid} | {
                child.pid for child in psutil.Process(installation.processes["worker"].pid).children(recursive=True)
            }
            held = held_runs(engine, journal, pids)
            return len(held) >= 2 and clients.count() >= 1000

        wait_for(
            worker_holds_runs,
            120,
            "the worker to hold stage runs",
            0.02,
            lambda: f"(holds {len(held)}; {clients.count()} submitted; jobs {jobs_by_state(engine, pipeline)})",
        )
        pids = installation.kill("worker")
        killed |= pids
        worker_killed_at = time.monotonic()
        held = held_runs(engine, journal, pids)  # what it had started and not finished when it died
        assert held, "the worker finished everything it held before it died: nothing was tested"
        installation.start("worker", "worker", *worker_args)
        wait_for(
            lambda: set(run_states(engine, held).values()) == {"succeeded"},
            120,
            "the killed worker's stage runs to be taken back and finished",
            0.05,
            lambda: f"({run_states(engine, held)}; {stage_runs_by_state(engine)})",
        )
        held_finished_after = time.monotonic() - worker_killed_at

        clients.finish()
        assert clients.refused == [], clients.refused[:10]
        started = time.monotonic()
        wait_for(
            lambda: jobs_by_state(engine, pipeline).get("succeeded", 0) >= JOBS,
            240,
            "every job to succeed",
            0.2,
            lambda: f"(jobs {jobs_by_state(engine, pipeline)}; {stage_runs_by_state(engine)})",
        )
        drained_after = time.monotonic() - started
    except BaseException:
        print(installation.logs())
        raise
    finally:
        clients.pool.shutdown(wait=False, cancel_futures=True)

    print(
        f"\nchaos ({mode}, {JOBS} jobs): server kill -9 with {acknowledged_at_kill} jobs submitted: answering again"
        f" after {answering_after:.2f} s, submissions resumed after {submitting_after:.2f} s; worker kill -9 holding"
        f" {len(held)} stage runs: all taken back and finished after {held_finished_after:.2f} s"
        f" (lease {LEASE_SECONDS} s); the remaining jobs done {drained_after:.2f} s after the last submission"
    )
    check_nothing_lost_or_duplicated(engine, clients.acknowledged, journal, killed, pipeline)
    engine.dispose()


def check_nothing_lost_or_duplicated(
    engine: sa.Engine, acknowledged: dict[int, str], journal: Path, killed: set[int], pipeline: str
) -> None:
    with engine.connect() as connection:
        jobs = connection.execute(
            sa.text("SELECT id, idempotency_key, state FROM vigia_jobs WHERE pipeline = :pipeline"),
            {"pipeline": pipeline},
        ).all()
        runs = connection.execute(
            sa.text(
                "SELECT r.job_id, r.stage, r.state, r.attempts FROM vigia_stage_runs r"
                " JOIN vigia_jobs j ON j.id = r.job_id WHERE j.pipeline = :pipeline"
            ),
            {"pipeline": pipeline},
        ).all()
        sequences = connection.execute(
            sa.text(
                "SELECT e.job_id, count(*), max(e.seq), sum(CASE WHEN e.type = 'job.finished' THEN 1 ELSE 0 END)"
                " FROM vigia_events e JOIN vigia_jobs j ON j.id = e.job_id WHERE j.pipeline = :pipeline"
                " GROUP BY e.job_id"
            ),
            {"pipeline": pipeline},
        ).all()

    # Lost: every acknowledged job is there; duplicated: one job per key, no more jobs than keys.
    assert len(acknowledged) == JOBS
    by_key = collections.Counter(key for _, key, _ in jobs)
    assert len(jobs) == JOBS and set(by_key) == {f"chaos-{number}" for number in range(JOBS)}, (
        f"{len(jobs)} jobs for {len(by_key)} keys"
    )
    ids = {job_id for job_id, _, _ in jobs}
    assert set(acknowledged.values()) <= ids, "an acknowledged job is missing"
    assert {state for _, _, state in jobs} == {"succeeded"}

    # Duplicated: a stage ran again only where the process that ran it before was killed.
    # Among the processes that lived, each attempt the store counted ran once. (A killed
    # distributed worker may not have written its claim yet: the store does not count that
    # attempt, and the next one has its number.)
    survivors: collections.Counter[tuple[str, str, str]] = collections.Counter()
    starts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in journal.read_text().splitlines():
        job_id, stage, attempt, pid = line.split()
        starts[(job_id, stage)] += 1
        if int(pid) not in killed:
            survivors[(job_id, stage, attempt)] += 1
    twice = [entry for entry, count in survivors.items() if count > 1]
    assert not twice, f"{len(twice)} attempts ran twice in processes that were not killed, e.g. {twice[:5]}"
    lived = collections.Counter((job_id, stage) for job_id, stage, _ in survivors)
    assert len(runs) == JOBS * len(STAGES)
    for job_id, stage, state, attempts in runs:
        assert state == "succeeded", (job_id, stage, state)
        # Run at least once (perhaps only by a process that finished it and then was killed).
        assert starts[(job_id, stage)] >= 1 and lived[(job_id, stage)] <= attempts, (
            job_id,
            stage,
            starts[(job_id, stage)],
            lived[(job_id, stage)],
            attempts,
        )
    rerun = sum(1 for count in starts.values() if count > 1)
    print(f"stage runs: {len(runs)}, of them run again after a kill: {rerun}")

    # Events: numbered 1..n without a gap, and the job finished once.
    assert len(sequences) == JOBS
    for job_id, count, last, finished in sequences:
        assert count == last, f"events of {job_id} have a gap: {count} events, last seq {last}"
        assert finished == 1, f"{job_id} finished {finished} times"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Installation]:
    env = vigia_env(
        VIGIA_PIPELINES="tests.pipelines:ALL",
        VIGIA_LEASE_SECONDS=str(LEASE_SECONDS),
        VIGIA_CONCURRENCY="8",
        VIGIA_SHUTDOWN_GRACE="0",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    installation = Installation(data_dir, env, f"sqlite:///{data_dir / 'vigia.db'}")
    try:
        yield installation
    finally:
        installation.stop_all()


@pytest.fixture
def distributed(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Installation]:
    env = vigia_env(
        VIGIA_DATABASE_URL=postgres_url,
        VIGIA_BROKER_URL=redis_url,
        VIGIA_PIPELINES="tests.pipelines:ALL",
        VIGIA_LEASE_SECONDS=str(LEASE_SECONDS),
        VIGIA_POLL_INTERVAL="0.1",
        VIGIA_LOG_LEVEL="INFO",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    database = Database(postgres_url)
    database.upgrade()  # as `vigia db upgrade` would: a distributed server does not migrate
    database.close()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    installation = Installation(data_dir, env, postgres_url)
    try:
        yield installation
    finally:
        installation.stop_all()


def test_kill_9_of_server_and_worker_under_load_in_embedded_mode(embedded: Installation) -> None:
    # The server runs embedded workers; a second process works on the same SQLite store.
    chaos(embedded, ("--data-dir", str(embedded.data_dir)), "embedded, SQLite")


@pytest.mark.postgres
def test_kill_9_of_server_and_worker_under_load_in_distributed_mode(distributed: Installation) -> None:
    distributed.start("worker-steady", "worker", "--concurrency", "4")
    chaos(distributed, ("--concurrency", "4"), "distributed, Celery + Redis + PostgreSQL")


@pytest.mark.postgres
def test_kill_9_under_load_in_distributed_mode_with_several_runs_to_a_message(distributed: Installation) -> None:
    # Stages declared short: the backlog travels several runs to a Celery message, so the
    # killed worker also held runs of its messages that had not started yet.
    distributed.start("worker-steady", "worker", "--concurrency", "4")
    chaos(distributed, ("--concurrency", "4"), "distributed, several runs to a message", "t_brief")
    logged = "".join(distributed.log(name).read_text(errors="replace") for name in ("worker", "worker-steady"))
    assert "Task t_brief:first x" in logged or "Task t_brief:second x" in logged
