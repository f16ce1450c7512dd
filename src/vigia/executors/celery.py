"""The distributed executor: each stage run is a Celery task over Redis.

Celery carries only "run stage run N" messages; what runs next, retries, joins,
degradation and dead-lettering are decided by the same coordinator and orchestrator as in
embedded mode, in whichever process finished the stage. The store stays the record: a
message lost with a Redis restart is sent again from it, a duplicate finds its stage run no
longer ready and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from celery import Celery, signals

from vigia import constants
from vigia.config import Settings
from vigia.context import StageContext
from vigia.coordinator import Coordinator
from vigia.events import EventBus, RedisEventBus
from vigia.exceptions import ConfigurationError, StoreError, VigiaError
from vigia.executors.embedded import worker_id
from vigia.orchestrator import ProgressReport
from vigia.registry import Registry
from vigia.runner import run_attempt
from vigia.storage import LocalBlobStore
from vigia.store.base import Dispatch
from vigia.store.sqlalchemy import SQLJobStore

log = logging.getLogger("vigia.celery")

TASK_NAME = "vigia.run_stage"
#: Ready stage runs sent per pass of a dispatcher.
DISPATCH_BATCH = 500
#: A run sent this long ago, still waiting, in a queue the broker holds nothing for, was lost
#: (a Redis restart, a crash between the commit and the send): it is sent again.
RESEND_AFTER_SECONDS = 15.0
#: How often a running stage's progress is written, its lease renewed, cancellation checked.
KEEPER_INTERVAL = 0.25
#: Celery's limits beyond the stage's own timeout: soft (an exception in the task) and hard
#: (the worker process is killed) for a task that will not return.
SOFT_LIMIT_MARGIN = 10.0
HARD_LIMIT_MARGIN = 60.0


def make_celery(settings: Settings, registry: Registry) -> Celery:
    if not settings.broker_url:
        raise ConfigurationError("distributed mode needs VIGIA_BROKER_URL (redis://...)")
    longest = max(
        (node.stage.timeout for pipeline in registry for node in pipeline.nodes.values()),
        default=constants.DEFAULT_STAGE_TIMEOUT,
    )
    app = Celery("vigia", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1000,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_default_queue=constants.DEFAULT_QUEUE,
        task_time_limit=longest + HARD_LIMIT_MARGIN,
        # Longer than any stage may run, so Redis never hands a running task to a second worker.
        broker_transport_options={"visibility_timeout": int(2 * longest + 3600)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    runtime = _Runtime(settings, registry)

    def run_stage(task: Any, run_id: int) -> str:
        return runtime.run_stage(task.app, run_id)

    app.task(name=TASK_NAME, bind=True, acks_late=True, ignore_result=True)(run_stage)
    return app


def send(app: Celery, registry: Registry, runs: Iterable[Dispatch]) -> int:
    """Send each run to its queue, with Celery time limits just beyond the stage's own
    timeout (which the runner enforces first): the soft one lets the task report, the hard
    one kills a worker process stuck in C code."""
    sent = 0
    for item in runs:
        timeout = constants.DEFAULT_STAGE_TIMEOUT
        with contextlib.suppress(VigiaError):  # a pipeline unknown here: its worker decides
            timeout = registry.get(item.pipeline).node(item.stage).stage.timeout
        app.send_task(
            TASK_NAME,
            args=[item.run_id],
            queue=item.queue,
            soft_time_limit=timeout + SOFT_LIMIT_MARGIN,
            time_limit=timeout + HARD_LIMIT_MARGIN,
        )
        sent += 1
    return sent


def broker_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting per queue, read from Redis (kombu keeps each queue as a list)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        return {queue: int(depth) for queue, depth in zip(queues, pipe.execute(), strict=True)}


class _Parts(NamedTuple):
    coordinator: Coordinator
    bus: EventBus
    owner: str
    threads: ThreadPoolExecutor


class _Runtime:
    """What a worker process needs to run stage runs; built on first use in each process
    (after Celery forks its pool), never shared across a fork."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self._parts: _Parts | None = None
        self._lock = threading.Lock()
        self._loops = threading.local()

    def parts(self) -> _Parts:
        with self._lock:
            if self._parts is None:
                from vigia.app import oversight_for

                oversight = oversight_for(self.settings, self.registry)
                self._parts = _Parts(
                    Coordinator(SQLJobStore(self.settings.database_url), self.registry, oversight=oversight),
                    RedisEventBus(self.settings.broker_url or ""),
                    worker_id("celery"),
                    ThreadPoolExecutor(4, thread_name_prefix="vigia-stage"),
                )
            return self._parts

    def loop(self) -> asyncio.AbstractEventLoop:
        """This thread's event loop for async stages: one per worker thread (the threads pool
        runs several tasks at once) rather than one built and torn down per task."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
        return loop

    def run_stage(self, app: Celery, run_id: int) -> str:
        coordinator, bus, owner, threads = self.parts()
        loop = self.loop()
        lease = self.settings.lease_seconds
        assignment = coordinator.assignment_for(run_id, owner, lease)
        if assignment is None:
            return "duplicate"  # another delivery ran it, or it is no longer ready
        run, job = assignment.run, assignment.job
        stage = self.registry.get(job.pipeline).node(run.stage).stage
        reports: list[ProgressReport] = []
        reports_lock = threading.Lock()

        def report(fraction: float, message: str | None) -> None:
            with reports_lock:
                reports.append(ProgressReport(run.id, job.id, run.stage, run.attempts, fraction, message))

        def take_reports() -> list[ProgressReport]:
            with reports_lock:
                taken = list(reports)
                reports.clear()
            return taken

        context = StageContext(
            job_id=job.id,
            stage=run.stage,
            attempt=run.attempts,
            input=job.input,
            outputs=assignment.outputs,
            report=report,
            files=LocalBlobStore(self.settings.blob_dir),
            settings=self.settings,
        )
        done = threading.Event()
        claimed = threading.Event()

        def keep() -> None:
            """While the stage runs: write its claim (once it outlives the first interval),
            its progress and its lease, and notice cancellation."""
            while not done.wait(KEEPER_INTERVAL):
                try:
                    if not claimed.is_set():
                        settled = coordinator.settle([], take_reports(), [run])
                        bus.publish(settled.events)
                        if settled.refused:  # taken by another delivery, or the job ended
                            context.cancel()
                            return
                        claimed.set()
                        continue
                    if batch := take_reports():
                        bus.publish(coordinator.settle([], batch).events)
                    lost, cancelled = coordinator.store.renew_leases([run.id], owner, time.time() + lease)
                except StoreError as error:
                    log.warning("keeper.failed", extra={"error": str(error)})
                    continue
                if lost or cancelled:
                    context.cancel()

        keeper = threading.Thread(target=keep, name=f"vigia-keeper-{run.id}", daemon=True)
        keeper.start()
        try:
            outcome = loop.run_until_complete(run_attempt(stage, context, run_id=run.id, threads=threads))
        finally:
            done.set()
            keeper.join()
        settled = coordinator.settle([outcome], take_reports(), [] if claimed.is_set() else [run], dispatching=True)
        bus.publish(settled.events)
        send(app, self.registry, settled.ready)  # recorded as sent by the settlement itself
        return "duplicate" if settled.refused else outcome.status


def dispatch_ready(
    app: Celery, coordinator: Coordinator, broker: redis.Redis | None = None, queues: Sequence[str] = ()
) -> int:
    """Send every ready stage run not sent yet; and, for queues the broker holds nothing
    for, those sent long ago that no worker took (their message was lost)."""
    resend: list[str] = []
    if queues and broker is not None:
        with contextlib.suppress(redis.RedisError):
            resend = [queue for queue, depth in broker_depths(broker, queues).items() if depth == 0]
    total = 0
    while True:
        taken = coordinator.take_for_dispatch(DISPATCH_BATCH, resend_after=RESEND_AFTER_SECONDS, resend_queues=resend)
        total += send(app, coordinator.registry, taken)
        if len(taken) < DISPATCH_BATCH:
            return total


class CeleryExecutor:
    """The API process's part in distributed mode: sends ready stage runs to their queues
    (new jobs, retries that came due, messages lost on the way) and reaps expired leases."""

    def __init__(self, coordinator: Coordinator, bus: EventBus, app: Celery, settings: Settings) -> None:
        self.coordinator = coordinator
        self.bus = bus
        self.app = app
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="vigia-celery-dispatch")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self, queues: Iterable[str] = ()) -> None:
        self._wake.set()

    def job_cancelled(self, job_id: str) -> None:
        """Workers notice within `KEEPER_INTERVAL` (their lease renewal reports it)."""

    async def _loop(self) -> None:
        queues = self.coordinator.registry.queues
        broker = redis.Redis.from_url(self.settings.broker_url or "")
        next_reap = 0.0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await asyncio.to_thread(dispatch_ready, self.app, self.coordinator, broker, queues)
                    if time.monotonic() >= next_reap:
                        next_reap = time.monotonic() + self.settings.lease_seconds / 2
                        self.bus.publish((await asyncio.to_thread(self.coordinator.reap)).events)
                except Exception as error:  # keep dispatching whatever one pass ran into
                    log.error("dispatch.failed", extra={"error": str(error), "error_type": type(error).__name__})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
        finally:
            broker.close()


def run_worker(settings: Settings, registry: Registry, *, queues: Sequence[str], concurrency: int, pool: str) -> None:
    """`vigia worker` in distributed mode: a Celery worker with Vigía's settings, plus a
    thread in the main process that dispatches due stage runs and reaps expired leases."""
    store = SQLJobStore(settings.database_url)
    store.check()  # refuse to start on an unreachable or outdated store
    store.close()
    client = redis.Redis.from_url(settings.broker_url or "")
    try:
        client.ping()
    except redis.RedisError as error:
        raise ConfigurationError(f"the broker at {settings.broker_url} cannot be reached: {error}") from None
    finally:
        client.close()
    app = make_celery(settings, registry)
    stop = threading.Event()

    def maintain() -> None:
        from vigia.app import oversight_for

        coordinator = Coordinator(
            SQLJobStore(settings.database_url), registry, oversight=oversight_for(settings, registry)
        )
        bus = RedisEventBus(settings.broker_url or "")
        broker = redis.Redis.from_url(settings.broker_url or "")
        next_reap = 0.0
        while not stop.wait(settings.poll_interval):
            try:
                dispatch_ready(app, coordinator, broker, queues)
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + settings.lease_seconds / 2
                    bus.publish(coordinator.reap().events)
            except Exception as error:  # keep maintaining whatever one pass ran into
                log.error("maintenance.failed", extra={"error": str(error), "error_type": type(error).__name__})

    @signals.worker_ready.connect(weak=False)
    def start_maintenance(**_: Any) -> None:
        threading.Thread(target=maintain, name="vigia-maintenance", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def stop_maintenance(**_: Any) -> None:
        stop.set()

    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            f"{worker_id('vigia').replace(':', '-')}@%h",
            "--loglevel",
            settings.log_level,
            "--events",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """What monitoring needs from the broker: messages waiting per queue, and the workers
    online with the queues each consumes."""

    depths: dict[str, int]
    workers: dict[str, list[str]]

    def consumers(self, queue: str) -> list[str]:
        return sorted(name for name, queues in self.workers.items() if queue in queues)


def queue_facts(app: Celery, settings: Settings, queues: Sequence[str], *, timeout: float = 1.0) -> QueueFacts:
    """Read the queue depths from Redis and ask the workers (Celery's remote control) which
    queues they consume; a worker that does not answer within ``timeout`` counts as offline."""
    broker = redis.Redis.from_url(settings.broker_url or "")
    try:
        depths = broker_depths(broker, queues)
    finally:
        broker.close()
    answers = app.control.inspect(timeout=timeout).active_queues() or {}
    workers = {name: sorted(queue["name"] for queue in consumed) for name, consumed in answers.items()}
    return QueueFacts(depths, workers)
