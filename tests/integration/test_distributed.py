"""Distributed mode with real processes: `vigia worker` (Celery, prefork) subprocesses over a
real Redis, a real PostgreSQL job store, and the API side in this process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis

from tests import document_corpus
from tests.conftest import service_missing
from tests.harness import TestClient
from tests.onnx_models import STAGE_4, constant_detector, yolov5_rows
from tests.pipelines import ALL
from tests.receivers import webhook_receiver
from vigia import Job, JobState, Settings, StageRun, StageState, Vigia
from vigia.access import Role, issue
from vigia.api import create_app
from vigia.executors.celery import HOUSEKEEPING_DIED_EXIT_CODE, HOUSEKEEPING_PROCESS_NAME, make_celery, queue_facts
from vigia.registry import Registry
from vigia.store.base import ReviewFilter
from vigia.store.database import Database
from vigia.store.documents import DocumentFilter
from vigia.store.jobs import SQLJobStore
from vigia.store.oversight import OversightStore
from vigia.workloads.demo import pipeline as demo
from vigia.workloads.documents.embeddings import embedder
from vigia.workloads.documents.search import Searcher
from vigia.workloads.pressure_injury import samples

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3.0

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]


class Cluster:
    def __init__(self, database_url: str, broker_url: str, data_dir: Path) -> None:
        self.database_url = database_url
        self.broker_url = broker_url
        self.data_dir = data_dir
        self.workers: list[subprocess.Popen[bytes]] = []
        self.env = {
            **{name: value for name, value in os.environ.items() if not name.startswith("VIGIA_")},
            "VIGIA_DATABASE_URL": database_url,
            "VIGIA_BROKER_URL": broker_url,
            "VIGIA_DATA_DIR": str(data_dir),
            "VIGIA_POLL_INTERVAL": "0.1",
            "VIGIA_LEASE_SECONDS": str(LEASE_SECONDS),
            "VIGIA_PIPELINES": "tests.pipelines:ALL",
            "VIGIA_LOG_LEVEL": "INFO",  # Celery says "ready." at INFO
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            broker_url=self.broker_url,
            blob_url=self.env.get("VIGIA_BLOB_URL"),
            data_dir=self.data_dir,
            poll_interval=0.1,
            lease_seconds=LEASE_SECONDS,
        )

    def start_worker(self, *options: str, ready: bool = True) -> subprocess.Popen[bytes]:
        """Start a `vigia worker`; with ``ready``, return once Celery says it is ready (a
        worker still starting when a test stops a service would refuse to start at all)."""
        log = self.data_dir / f"worker-{len(self.workers)}.log"
        with log.open("ab") as output:
            worker = subprocess.Popen(
                [sys.executable, "-m", "vigia.cli", "worker", *options],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the pool's children die with it
            )
        self.workers.append(worker)
        deadline = time.monotonic() + 60
        while ready and " ready." not in log.read_text(errors="replace"):
            assert worker.poll() is None, f"the worker exited:\n{log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, (
                f"the worker did not get ready:\n{log.read_text(errors='replace')[-3000:]}"
            )
            time.sleep(0.1)
        return worker

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:] for path in sorted(self.data_dir.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)


@pytest.fixture
def cluster(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    store = SQLJobStore(Database(postgres_url))
    store.database.upgrade()
    store.database.close()
    running = Cluster(postgres_url, redis_url, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def run_api(cluster: Cluster, scenario: Callable[[Vigia], object]) -> object:
    async def main() -> object:
        vigia = Vigia.from_settings(cluster.settings(), pipelines=[*ALL, demo])
        await vigia.start()
        try:
            return await scenario(vigia)  # type: ignore[misc]
        finally:
            await vigia.stop()
            vigia.close()

    return asyncio.run(main())


def test_jobs_run_on_worker_processes_with_live_events(cluster: Cluster) -> None:
    cluster.start_worker("--concurrency", "2")
    cluster.start_worker("--concurrency", "2")

    # Shaped like what kombu's JSON decoder turns into Python objects (or refuses): the
    # stage must see the client's JSON as it was sent.
    tagged = {"__type__": "datetime", "__value__": "2026-01-01T10:00:00"}
    unreadable = {"__type__": "uuid", "__value__": "not a uuid"}

    async def scenario(vigia: Vigia) -> tuple[list[JobState], list[int], dict, list[Any]]:
        jobs = [await vigia.submit("demo", {"pace": 0, "flaky": number % 5 == 0}) for number in range(20)]
        odd = [await vigia.submit("t_outcomes", {"mode": tagged, "visit": unreadable})]
        seqs = [event.seq async for event in vigia.events(jobs[0].id)]
        finished = [await vigia.wait(job.id, timeout=120) for job in jobs + odd]
        starts = [run.output for run in vigia.store.get_runs(odd[0].id) if run.stage == "start"]
        return [job.state for job in finished], seqs, finished[19].result, starts

    states, seqs, result, starts = run_api(cluster, scenario)  # type: ignore[misc]
    assert states == [JobState.SUCCEEDED] * 21, cluster.logs()
    # The worker's log, like Flower (both read the task's name from the request), names each
    # task by its pipeline and stage (Celery's shadow name), and shows no input.
    logged = "".join(path.read_text(errors="replace") for path in cluster.data_dir.glob("worker-*.log"))
    assert "Task demo:" in logged and "Task t_outcomes:start[" in logged, logged[-3000:]
    assert "vigia.run_stage[" not in logged and "not a uuid" not in logged
    assert seqs == list(range(1, len(seqs) + 1))
    assert result["sentences"] == 19
    assert starts == [{"mode": tagged}]

    registry = Registry([*ALL, demo])
    facts = queue_facts(make_celery(cluster.settings(), registry), cluster.settings(), registry.queues, timeout=3)
    assert facts.depths == dict.fromkeys(registry.queues, 0)
    assert len(facts.workers) == 2, facts
    # The queues of every pipeline the workers load (the test ones and those installed),
    # and the built-in notifications' one.
    served = {*Registry.discover(["tests.pipelines:ALL"]).queues, "notifications"}
    assert all(set(queues) == served for queues in facts.workers.values()), facts
    assert len(facts.consumers("narrow")) == 2


def test_a_backlog_travels_several_runs_to_a_message_and_each_runs_once(cluster: Cluster) -> None:
    cluster.start_worker("--concurrency", "2")
    cluster.start_worker("--concurrency", "2")
    journal = cluster.data_dir / "journal"

    async def scenario(vigia: Vigia) -> list[Job]:
        # All at once: the dispatcher finds a backlog of first stages. Each message then
        # holds its runs longer than the keeper's interval (8 x 50 ms), so the runs still
        # waiting their turn have their claims written meanwhile and are not sent again.
        _, jobs = await vigia.submit_batch("t_brief", [{"journal": str(journal), "pace": 0.05}] * 96)
        return [await vigia.wait(job.id, timeout=180) for job in jobs]

    finished: list[Job] = run_api(cluster, scenario)  # type: ignore[assignment]
    assert [job.state for job in finished] == [JobState.SUCCEEDED] * 96, cluster.logs()
    logged = "".join(path.read_text(errors="replace") for path in cluster.data_dir.glob("worker-*.log"))
    assert "Task t_brief:first x" in logged, logged[-3000:]
    starts = [line.split()[:2] for line in journal.read_text().splitlines()]
    assert len(starts) == 2 * 96 and len({tuple(start) for start in starts}) == 2 * 96  # each stage once
    store = SQLJobStore(Database(cluster.database_url))
    try:
        attempts = {run.attempts for job in finished for run in store.get_runs(job.id)}
    finally:
        store.database.close()
    assert attempts == {1}


def test_kill_9_of_a_worker_machine_mid_run_loses_no_job(cluster: Cluster) -> None:
    doomed = cluster.start_worker("--concurrency", "2")
    cluster.start_worker("--concurrency", "2")

    # Its pool processes: a stage run they hold a lease on is theirs (the owner names the pid).
    doomed_pids = {str(child.pid) for child in psutil.Process(doomed.pid).children(recursive=True)}

    def held_by_doomed(runs: Iterable[StageRun]) -> list[StageRun]:
        return [
            run
            for run in runs
            if run.state is StageState.RUNNING and (run.lease_owner or "").split(":")[2] in doomed_pids
        ]

    async def scenario(vigia: Vigia) -> tuple[dict, dict, list[JobState]]:
        jobs = [await vigia.submit("demo", {"pace": 0.2 if number < 8 else 0.01}) for number in range(120)]
        slow = jobs[:8]
        store = vigia.store
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # Only the slow jobs are looked at, so that the look is quick, and only a stage
            # started less than 1.5 s ago counts: a slow stage runs for about 4 s, so it is
            # certainly still held right after the kill.
            runs = [run for job in slow for run in store.get_runs(job.id)]
            early = [run for run in held_by_doomed(runs) if time.time() - (run.started_at or 0) < 1.5]
            if early and any(run.state is StageState.SUCCEEDED for run in runs):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the doomed worker never held a slow stage early in its run")
        os.killpg(doomed.pid, signal.SIGKILL)  # the main process and its pool: a lost machine
        before = {(run.job_id, run.stage): run for job in jobs for run in store.get_runs(job.id)}
        finished = [await vigia.wait(job.id, timeout=180) for job in jobs]
        after = {(run.job_id, run.stage): run for job in jobs for run in store.get_runs(job.id)}
        return before, after, [job.state for job in finished]

    before, after, states = run_api(cluster, scenario)  # type: ignore[misc]
    assert states == [JobState.SUCCEEDED] * 120, cluster.logs()
    for key, run in before.items():
        if run.state is StageState.SUCCEEDED:
            assert after[key].attempts == run.attempts and after[key].finished_at == run.finished_at, key
    # What the killed worker was still running when it died was taken back and ran again.
    victims = held_by_doomed(before.values())
    assert victims, "the doomed worker should have been running a stage when it was killed"
    for run in victims:
        again = after[(run.job_id, run.stage)]
        assert again.attempts > run.attempts and again.lease_owner is None, (run, again)


def test_a_worker_stops_when_its_housekeeping_process_dies_and_stops_cleanly_when_told(cluster: Cluster) -> None:
    def housekeeper_of(worker: subprocess.Popen[bytes]) -> psutil.Process:
        named = [child for child in psutil.Process(worker.pid).children() if child.name() == HOUSEKEEPING_PROCESS_NAME]
        assert len(named) == 1, psutil.Process(worker.pid).children()
        return named[0]

    # Killed as the kernel's out-of-memory killer would: nothing would settle what this
    # worker runs, so it stops (for its supervisor to start it again).
    doomed = cluster.start_worker("--concurrency", "1")
    housekeeper_of(doomed).kill()
    assert doomed.wait(60) == HOUSEKEEPING_DIED_EXIT_CODE, cluster.logs()
    assert "housekeeping.died" in cluster.logs()

    # A worker told to stop (SIGTERM to its process group) stops cleanly, housekeeping too,
    # which ignores the signal itself and settles until Celery has stopped.
    calm = cluster.start_worker("--concurrency", "1")
    housekeeper = housekeeper_of(calm)
    housekeeper.terminate()
    time.sleep(1)
    assert housekeeper.is_running() and housekeeper.status() != psutil.STATUS_ZOMBIE
    os.killpg(calm.pid, signal.SIGTERM)
    assert calm.wait(60) == 0, cluster.logs()
    assert not housekeeper.is_running()
    assert cluster.logs().count("housekeeping.died") == 1


def test_a_failure_on_a_worker_escalates_and_the_notification_is_delivered_by_a_worker(cluster: Cluster) -> None:

    with webhook_receiver("dist-secret") as receiver:
        channels = json.dumps({"hook": {"type": "webhook", "url": receiver.url, "secret": "dist-secret"}})
        cluster.env.update(
            VIGIA_NOTIFY_CHANNELS=channels, VIGIA_NOTIFY_ROUTES='{"*": ["hook"]}', VIGIA_AUDIT_KEY="22" * 32
        )
        cluster.start_worker("--concurrency", "2")

        async def scenario(vigia: Vigia) -> JobState:
            job = await vigia.submit("t_critical", {"patient_code": "PT-9"})
            return (await vigia.wait(job.id, timeout=180)).state

        state = run_api(cluster, scenario)
        # The worker records the delivery in the audit log after the receiver has answered:
        # wait for both (the flake this fixes read the log in between), generously, since a
        # busy machine may delay the notification's first attempt or make it retry.
        store = SQLJobStore(Database(cluster.database_url))
        try:
            watch = OversightStore(store.database)
            deadline = time.monotonic() + 180
            while True:
                actions = [entry.action for entry in watch.audit_entries()]
                if receiver.accepted() and "decision.notification.delivered" in actions:
                    break
                assert time.monotonic() < deadline, (
                    f"no delivery recorded after 180 s: receiver got {len(receiver.accepted())}, audit {actions}\n"
                    + cluster.logs()
                )
                time.sleep(0.2)
            found = watch.list_reviews(ReviewFilter())
        finally:
            store.database.close()
    assert state is JobState.DEAD, cluster.logs()
    assert [(review.stage, review.severity.value, review.status.value) for review in found] == [
        ("vital_check", "critical", "open")
    ]
    [delivery] = receiver.accepted()
    assert delivery.signed and delivery.json["review_id"] == found[0].id
    assert {"job.submitted", "job.running", "review.opened", "job.dead", "decision.notification.delivered"} <= set(
        actions
    )


@pytest.mark.parametrize("blobs", ["shared directory", "S3"])
def test_a_pressure_injury_case_runs_on_workers_with_a_model(
    cluster: Cluster, tmp_path: Path, blobs: str, request: pytest.FixtureRequest
) -> None:
    model = constant_detector(tmp_path / "model.onnx", yolov5_rows((320, 320, 100, 90, 0.93, STAGE_4)))
    cluster.env.update(VIGIA_PI_MODEL=str(model), VIGIA_AUDIT_KEY="33" * 32)
    if blobs == "S3":
        # The photo in a bucket, and the worker on a data directory of its own: it shares
        # nothing with the API but the store, the broker and the bucket.
        blob_url = request.getfixturevalue("s3_blob_url")
        cluster.env.update(request.getfixturevalue("s3_server").environment())
        cluster.env.update(VIGIA_BLOB_URL=blob_url, VIGIA_DATA_DIR=str(tmp_path / "worker-machine"))
    cluster.start_worker("--concurrency", "2")

    async def scenario(vigia: Vigia) -> Any:
        ref = vigia.blobs.put_bytes(samples.photo("eschar.png"), "image/png", "eschar.png")
        braden = {
            "sensory_perception": 1,
            "moisture": 2,
            "activity": 1,
            "mobility": 1,
            "nutrition": 2,
            "friction_shear": 1,
        }
        job = await vigia.submit(
            "pressure_injury_case", {"patient_code": "PT-D", "braden": braden, "file": ref.to_input()}
        )
        return await vigia.wait(job.id, timeout=90)

    done = run_api(cluster, scenario)
    store = SQLJobStore(Database(cluster.database_url))
    try:
        found = OversightStore(store.database).list_reviews(ReviewFilter())
        queues = {run.stage: run.queue for run in store.get_runs(done.id)}
    finally:
        store.database.close()
    assert done.state is JobState.SUCCEEDED, cluster.logs()
    assert (done.result["grade"], done.result["triage"]["level"]) == ("stage_4", "emergency")
    assert [(review.role, review.severity.value) for review in found] == [("specialists", "critical")]
    assert queues == {
        "intake": "image_processing",
        "detect": "image_processing",
        "risk": "medical_priority",
        "assessment": "medical_priority",
        "triage": "medical_priority",
        "audit": "audit_logging",
        "notify": "notifications",
    }
    if blobs == "S3":
        import boto3  # noqa: PLC0415 -- the S3 extra

        bucket = cluster.env["VIGIA_BLOB_URL"].removeprefix("s3://").split("/")[0]
        keys = [item["Key"] for item in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
        original = hashlib.sha256(samples.photo("eschar.png")).hexdigest()
        # The worker replaced the upload by its stripped copy in the bucket.
        assert [key for key in keys if original in key] == [f"jobs/{original[:2]}/{original[2:4]}/{original}.replaced"]
        assert len(keys) == 2
        assert not (tmp_path / "worker-machine" / "blobs").exists()


def test_cancelling_a_job_stops_its_stage_on_a_worker(cluster: Cluster) -> None:
    cluster.start_worker("--concurrency", "2")

    async def scenario(vigia: Vigia) -> tuple[float, dict]:
        job = await vigia.submit("t_long", {"label": "remote"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = {run.stage: run for run in vigia.store.get_runs(job.id)}
            if runs["first"].state is StageState.RUNNING and runs["first"].progress > 0:
                break
            await asyncio.sleep(0.05)
        cancelled_at = time.time()
        await vigia.cancel(job.id)
        while time.monotonic() < deadline:
            runs = {run.stage: run for run in vigia.store.get_runs(job.id)}
            if runs["first"].state is not StageState.RUNNING:
                break
            await asyncio.sleep(0.05)
        return cancelled_at, runs

    cancelled_at, runs = run_api(cluster, scenario)  # type: ignore[misc]
    assert runs["first"].state is StageState.CANCELLED, cluster.logs()
    assert runs["first"].finished_at is not None
    # The stage was asked to run 10 s; it stopped soon after the cancel instead.
    assert runs["first"].finished_at - cancelled_at < 5
    assert runs["second"].state is StageState.CANCELLED and runs["second"].attempts == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, without persistence: a restart loses every queue."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server is not on PATH: cannot restart a private Redis")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restart_mid_run_loses_no_job(postgres_url: str, private_redis: PrivateRedis, tmp_path: Path) -> None:
    store = SQLJobStore(Database(postgres_url))
    store.database.upgrade()
    store.database.close()
    cluster = Cluster(postgres_url, private_redis.url, tmp_path)
    try:
        cluster.start_worker("--concurrency", "2")
        cluster.start_worker("--concurrency", "2")

        async def scenario(vigia: Vigia) -> list[JobState]:
            jobs = [await vigia.submit("demo", {"pace": 0.05 if number < 12 else 0.01}) for number in range(120)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                runs = [run for job in jobs for run in vigia.store.get_runs(job.id)]
                if sum(run.state is StageState.RUNNING for run in runs) >= 2:
                    break
                await asyncio.sleep(0.05)
            private_redis.kill()  # every queued message is gone with it
            await asyncio.sleep(1.0)
            private_redis.start()
            finished = [await vigia.wait(job.id, timeout=180) for job in jobs]
            return [job.state for job in finished]

        states = run_api(cluster, scenario)
        assert states == [JobState.SUCCEEDED] * 120, cluster.logs()
    finally:
        cluster.stop_all()


def _cluster_control(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version,
            "main",
            action,
            *(["-m", "fast"] if action == "stop" else []),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def restartable_postgres(postgres_url: str) -> Iterator[str]:
    """The local PostgreSQL cluster, which this test may stop and start (it is always
    started again, whatever happens)."""

    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        service_missing("pg_ctlcluster is not available: cannot restart PostgreSQL")
    try:
        yield postgres_url
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _cluster_control("start")
        _wait_for_postgres(postgres_url, 60)


def _wait_for_postgres(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back")


def test_postgres_restart_mid_run_api_says_503_and_everything_recovers(
    restartable_postgres: str, redis_url: str, tmp_path: Path
) -> None:
    database = Database(restartable_postgres)
    database.upgrade()
    database.close()
    cluster = Cluster(restartable_postgres, redis_url, tmp_path)
    try:
        cluster.start_worker("--concurrency", "2")
        vigia = Vigia.from_settings(cluster.settings(), pipelines=[*ALL, demo])
        issued = issue()
        vigia.keys.create(issued, tenant="default", role=Role.ADMIN, name="test", now=time.time())
        headers = {"Authorization": f"Bearer {issued.plaintext}"}
        with TestClient(create_app(vigia)) as client:
            batch = client.post(
                "/api/v1/batches",
                json={"pipeline": "demo", "inputs": [{"pace": 0.05 if n < 6 else 0.01} for n in range(100)]},
                headers=headers,
            )
            ids = [job["id"] for job in batch.json()["jobs"]]
            time.sleep(1.0)
            _cluster_control("stop")
            try:
                down = client.get(f"/api/v1/jobs/{ids[0]}", headers=headers)
                submitted_while_down = client.post(
                    "/api/v1/pipelines/demo/jobs", json={"input": {"pace": 0}}, headers=headers
                )
            finally:
                _cluster_control("start")
            _wait_for_postgres(restartable_postgres, 60)
            deadline = time.monotonic() + 180
            states: list[str] = []
            while time.monotonic() < deadline:
                page = client.get("/api/v1/jobs", params={"limit": 200}, headers=headers)
                by_id = (
                    {job["id"]: job["state"] for job in page.json().get("jobs", [])} if page.status_code == 200 else {}
                )
                states = [by_id.get(job_id, "?") for job_id in ids]
                if all(state in ("succeeded", "degraded", "failed", "dead", "cancelled") for state in states):
                    break
                time.sleep(0.25)
        vigia.close()
        assert down.status_code == 503, down.text
        assert down.headers.get("retry-after")
        assert down.json()["error"]["code"] == "store_unavailable"
        assert submitted_while_down.status_code == 503, submitted_while_down.text
        assert states == ["succeeded"] * 100, (states, cluster.logs())
    finally:
        cluster.stop_all()


def _worker_refusal(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A worker's refusal as a user sees it, at the default log level."""
    return subprocess.run(
        [sys.executable, "-m", "vigia.cli", "worker"],
        env={**env, "VIGIA_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_refuses_to_start_without_its_services_or_with_an_old_schema(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    cluster = Cluster(postgres_url, redis_url, tmp_path)
    outdated = _worker_refusal(cluster.env)  # the fresh database has no schema yet
    no_broker = _worker_refusal({**cluster.env, "VIGIA_BROKER_URL": f"redis://127.0.0.1:{_free_port()}/0"})
    no_store = _worker_refusal(
        {**cluster.env, "VIGIA_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing"}
    )
    for result, expected in ((outdated, "vigia db upgrade"), (no_store, "cannot be reached")):
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    store = SQLJobStore(Database(postgres_url))
    store.database.upgrade()
    store.database.close()
    no_broker = _worker_refusal({**cluster.env, "VIGIA_BROKER_URL": f"redis://127.0.0.1:{_free_port()}/0"})
    assert no_broker.returncode == 1, no_broker.stderr
    assert "broker" in no_broker.stderr and "cannot be reached" in no_broker.stderr, no_broker.stderr
    assert "Traceback" not in outdated.stderr + no_store.stderr + no_broker.stderr


def test_a_document_is_ingested_by_worker_processes_on_their_own_queues(cluster: Cluster) -> None:
    """The document workload on Celery: extraction on a `documents` worker, embeddings on an
    `embeddings` worker, the job's file in the shared blob directory, search from the API side."""

    cluster.start_worker("--queues", "documents,notifications,default", "--concurrency", "1")
    cluster.start_worker("--queues", "embeddings", "--concurrency", "1")
    doc = document_corpus.corpus(2, seed=5)[0]
    data = document_corpus.text_pdf(doc)

    async def scenario(vigia: Vigia) -> tuple[Any, list[str], list[Any]]:
        ref = vigia.blobs.put_bytes(data, "application/pdf", "oficio.pdf")
        job = await vigia.submit("document_ingest", {"file": ref.to_input()})
        done = await vigia.wait(job.id, timeout=200)
        queues = {run.stage: run.queue for run in vigia.store.get_runs(job.id)}
        searcher = Searcher(vigia.documents, embedder)
        found = await asyncio.to_thread(searcher.search, DocumentFilter("default"), doc.references[0], k=3)
        return done, [queues["extract"], queues["embed"]], found

    done, queues, found = run_api(cluster, scenario)  # type: ignore[misc]
    assert done.state is JobState.SUCCEEDED, (done.error_message, cluster.logs())
    assert done.result["status"] == "indexed"
    assert queues == ["documents", "embeddings"]
    assert found and found[0].document_id == done.result["document_id"]
    assert found[0].vector_score is not None


def test_a_clinical_note_is_coded_by_a_worker_process_on_the_coding_queue(cluster: Cluster) -> None:
    """The coding workload on Celery: every stage on a `coding` worker (medspaCy and the code
    set loaded in that process), the report read from the API side."""
    cluster.start_worker("--queues", "coding,notifications,default", "--concurrency", "1")
    note = (
        "Paciente: Eulalia Cotrina Villacorta   HC: 458921\n"
        "Impresión diagnóstica:\n1. Diabetes mellitus tipo 2 con enfermedad renal crónica estadio 4.\n"
        "2. Hipertensión arterial.\n3. Se descarta neumonía.\n"
    )

    async def scenario(vigia: Vigia) -> tuple[Any, set[str]]:
        job = await vigia.submit("clinical_coding_report", {"text": note, "billed_codes": ["E11.9", "J18.9"]})
        done = await vigia.wait(job.id, timeout=200)
        return done, {run.queue for run in vigia.store.get_runs(job.id)}

    done, queues = run_api(cluster, scenario)  # type: ignore[misc]
    assert done.state is JobState.DEGRADED, (done.error_message, cluster.logs())  # no SNOMED CT release
    assert queues == {"coding"}
    report = done.result
    assert {item["code"] for item in report["codes"]} == {"E11.22", "N18.4", "I12.9"}
    assert "Eulalia" not in report["redacted_text"] and "458921" not in report["redacted_text"]
    assert {item["code"] for item in report["coding_analysis"]["unsupported"]} == {"J18.9"}
    assert [item["code"] for item in report["coding_analysis"]["more_specific"]] == ["E11.9"]


def test_the_tenant_stream_follows_jobs_run_by_worker_processes(cluster: Cluster) -> None:
    """The dashboard's job list follows jobs a Celery worker runs: their events cross Redis."""
    cluster.start_worker("--concurrency", "2")
    vigia = Vigia.from_settings(cluster.settings(), pipelines=[*ALL, demo])
    issued = issue()
    vigia.keys.create(issued, tenant="default", role=Role.VIEWER, name="dashboard", now=time.time())
    submitter = issue()
    vigia.keys.create(submitter, tenant="default", role=Role.SUBMITTER, name="clinic", now=time.time())
    other = issue()
    vigia.keys.create(other, tenant="elsewhere", role=Role.SUBMITTER, name="other", now=time.time())
    ours: list[str] = []
    seen: list[dict[str, Any]] = []
    try:
        with (
            TestClient(create_app(vigia)) as client,
            client.stream("GET", "/api/v1/events", headers={"Authorization": f"Bearer {issued.plaintext}"}) as stream,
        ):
            assert stream.status_code == 200
            fields: dict[str, str] = {}
            finished: set[str] = set()
            for number, line in enumerate(stream.iter_lines()):
                if number == 0:  # open: now submit another tenant's job, then ours
                    elsewhere = {"Authorization": f"Bearer {other.plaintext}"}
                    client.post("/api/v1/pipelines/demo/jobs", json={"input": {"pace": 0}}, headers=elsewhere)
                    clinic = {"Authorization": f"Bearer {submitter.plaintext}"}
                    for _ in range(2):
                        response = client.post(
                            "/api/v1/pipelines/demo/jobs", json={"input": {"pace": 0.02}}, headers=clinic
                        )
                        assert response.status_code == 202, response.text
                        ours.append(response.json()["id"])
                if line == "" and "data" in fields:
                    event = json.loads(fields["data"])
                    seen.append(event)
                    if event["type"] == "job.finished":
                        finished.add(event["job_id"])
                    if set(ours) <= finished:
                        break
                if line == "":
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
    finally:
        vigia.close()
    assert {event["job_id"] for event in seen} == set(ours), cluster.logs()
    for job_id in ours:
        mine = [event for event in seen if event["job_id"] == job_id]
        assert mine[-1]["type"] == "job.finished" and mine[-1]["state"] == "succeeded", mine
        assert any(event["type"] == "stage.progress" for event in mine)


def test_one_tenants_backlog_does_not_hold_every_worker_slot_from_another(cluster: Cluster) -> None:
    """The probe's finding: eight slow jobs of one tenant held every slot of a queue while
    another tenant's job waited. With a cap of one run in progress per tenant and queue, the
    other tenant's job runs at once on the second slot (without it, behind four)."""
    # On every process: a worker's housekeeping process dispatches too.
    cluster.env["VIGIA_TENANT_MAX_RUNNING"] = "1"
    cluster.start_worker("--concurrency", "2")
    journal = cluster.data_dir / "journal.txt"
    settings = dataclasses.replace(cluster.settings(), tenant_max_running=1)

    async def main() -> tuple[list[Job], Job]:
        vigia = Vigia.from_settings(settings, pipelines=[*ALL, demo])
        await vigia.start()
        try:
            slow = [
                await vigia.submit("t_chaos", {"journal": str(journal), "pace": 0.5}, tenant="busy") for _ in range(4)
            ]
            quick = await vigia.submit("t_chaos", {"journal": str(journal), "pace": 0.0}, tenant="quiet")
            return [await vigia.wait(job.id, timeout=180) for job in slow], await vigia.wait(quick.id, timeout=180)
        finally:
            await vigia.stop()
            vigia.close()

    slow, quick = asyncio.run(main())
    assert {job.state for job in [*slow, quick]} == {JobState.SUCCEEDED}, cluster.logs()
    # The order stages started in (the journal every worker process appends to): the quiet
    # tenant's two stages come before the busy tenant's third stage, not after its first four.
    started = [line.split()[0] for line in journal.read_text().splitlines()]
    before_quick_finished = started[: max(i for i, job_id in enumerate(started) if job_id == quick.id)]
    assert sum(job_id != quick.id for job_id in before_quick_finished) <= 2, (quick.id, journal.read_text())
