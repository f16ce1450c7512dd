"""The distributed executor: each stage run is a Celery task over Redis.

Celery carries only "run stage run N" messages; what runs next, retries, joins,
degradation and dead-lettering are decided by the same coordinator and orchestrator as in
embedded mode. A pool process hands what it finished to the housekeeping processes of the
workers (see `vigia.executors.handoff`), which settle it in batches and send what became
ready. The store stays the record: a message lost with a Redis restart is sent again from
it, a duplicate finds its stage run no longer ready (or its outcome refused) and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import kombu.exceptions
import redis
from celery import Celery, signals

from vigia import constants
from vigia.config import Settings
from vigia.context import StageContext
from vigia.coordinator import Coordinator
from vigia.events import EventBus, RedisEventBus
from vigia.exceptions import ConfigurationError, VigiaError
from vigia.executors import broker
from vigia.executors.embedded import worker_id
from vigia.executors.handoff import Finished, Handoff, settle_batches
from vigia.executors.keeper import Held, Keeper
from vigia.job import StageRun
from vigia.orchestrator import ProgressReport
from vigia.registry import Registry
from vigia.runner import run_attempt
from vigia.storage import LocalBlobStore
from vigia.store.base import Dispatch, StageWork
from vigia.store.sqlalchemy import SQLJobStore

log = logging.getLogger("vigia.celery")

TASK_NAME = "vigia.run_stage"
#: Ready stage runs sent per pass of a dispatcher.
DISPATCH_BATCH = 500
#: Redis commands buffered before a flush while sending (a message and its task-sent event
#: are two): a dispatcher's whole batch in one round trip.
SEND_BATCH_OPERATIONS = 2 * DISPATCH_BATCH
#: A run sent this long ago, still waiting, in a queue the broker holds nothing for, was lost
#: (a Redis restart, a crash between the commit and the send): it is sent again.
RESEND_AFTER_SECONDS = 15.0
#: Celery's limits beyond the stage's own timeout: soft (an exception in the task) and hard
#: (the worker process is killed) for a task that will not return.
SOFT_LIMIT_MARGIN = 10.0
HARD_LIMIT_MARGIN = 60.0
#: Larger inputs and upstream outputs than this (JSON bytes) are read from the store by
#: the worker rather than sent in the message.
WORK_IN_MESSAGE_LIMIT = 64 * 1024
#: The housekeeping process's name as the operating system shows it (15 characters at most).
HOUSEKEEPING_PROCESS_NAME = "vigia-housekeep"
#: What the worker sends its housekeeping process to stop it.
HOUSEKEEPING_STOP_SIGNAL = signal.SIGUSR1
#: `vigia worker`'s exit code when it stopped because its housekeeping process died.
HOUSEKEEPING_DIED_EXIT_CODE = 3
#: How long a stopping worker waits for its housekeeping process's last batch.
HOUSEKEEPING_SHUTDOWN_SECONDS = 10.0


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
    if settings.broker_url.startswith("redis://"):  # not rediss:// (kombu checks its TLS options by that name)
        app.conf.broker_transport = broker.TRANSPORT
    runtime = _Runtime(settings, registry)

    def run_stage(task: Any, run_id: int, work: str | None = None) -> str:
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        return runtime.run_stage(task.app, run_id, None if redelivered or not isinstance(work, str) else work)

    app.task(name=TASK_NAME, bind=True, acks_late=True, ignore_result=True)(run_stage)
    return app


def send(app: Celery, registry: Registry, runs: Sequence[Dispatch]) -> int:
    """Send each run to its queue, with Celery time limits just beyond the stage's own
    timeout (which the runner enforces first): the soft one lets the task report, the hard
    one kills a worker process stuck in C code."""
    if not runs:  # most settlements make nothing ready: no producer to take from the pool
        return 0
    sent = 0
    # One Redis round trip per batch (kombu's publish batches) rather than two per message,
    # the message and its task-sent event: a third of the sending CPU, a twentieth of Redis's.
    with app.producer_or_acquire() as producer, producer.batch(max_size=SEND_BATCH_OPERATIONS):
        for item in runs:
            timeout = constants.DEFAULT_STAGE_TIMEOUT
            with contextlib.suppress(VigiaError):  # a pipeline unknown here: its worker decides
                timeout = registry.get(item.pipeline).node(item.stage).stage.timeout
            app.send_task(
                TASK_NAME,
                args=[item.run_id, *_work_message(item)],
                queue=item.queue,
                soft_time_limit=timeout + SOFT_LIMIT_MARGIN,
                time_limit=timeout + HARD_LIMIT_MARGIN,
                producer=producer,
                # Flower and the worker's log show the run, never the job's input (patient
                # data) that the message may carry; and Celery need not repr it per message.
                argsrepr=f"[{item.run_id}]",
                kwargsrepr="{}",
                # Nothing to declare: Celery sends to a queue through Redis's anonymous
                # exchange (a push onto the queue's list), and kombu would copy and bind
                # the queue's declaration for every message only to find it done.
                declare=[],
            )
            sent += 1
    return sent


def _work_message(item: Dispatch) -> list[str]:
    """What the worker needs besides the run's id, when it is known and small enough to
    travel in the message (a worker reads the store for the rest). As a JSON string of its
    own: kombu's decoder would turn a client's `{"__type__": ...}` object into something
    else, or refuse the message."""
    work = item.work
    if work is None or work.outputs is None:
        return []
    message = {
        "pipeline": item.pipeline,
        "stage": item.stage,
        "queue": item.queue,
        "job_id": work.job_id,
        "attempts": work.attempts,
        "input": work.input,
        "outputs": work.outputs,
    }
    try:
        encoded = json.dumps(message, separators=(",", ":"))
    except (TypeError, ValueError):
        return []
    return [encoded] if len(encoded) <= WORK_IN_MESSAGE_LIMIT else []


def _dispatch_of(run_id: int, encoded: str) -> Dispatch:
    message = json.loads(encoded)
    work = StageWork(message["job_id"], int(message["attempts"]), message["input"], message["outputs"])
    return Dispatch(run_id, message["queue"], message["pipeline"], message["stage"], work)


def broker_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting per queue, read from Redis (kombu keeps each queue as a list)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        return {queue: int(depth) for queue, depth in zip(queues, pipe.execute(), strict=True)}


def _coordinator(settings: Settings, registry: Registry) -> Coordinator:
    from vigia.app import oversight_for

    return Coordinator(SQLJobStore(settings.database_url), registry, oversight=oversight_for(settings, registry))


class _Parts(NamedTuple):
    coordinator: Coordinator
    bus: EventBus
    handoff: Handoff
    keeper: Keeper
    owner: str
    threads: ThreadPoolExecutor
    files: LocalBlobStore


class _Task(NamedTuple):
    """A stage run to run here: the claim to make, and what its function needs."""

    claim: StageRun
    pipeline: str
    input: Any
    outputs: Mapping[str, Any]


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
                coordinator = _coordinator(self.settings, self.registry)
                bus = RedisEventBus(self.settings.broker_url or "")
                owner = worker_id("celery")
                self._parts = _Parts(
                    coordinator,
                    bus,
                    Handoff(redis.Redis.from_url(self.settings.broker_url or "")),
                    Keeper(coordinator, bus, owner, self.settings.lease_seconds),
                    owner,
                    ThreadPoolExecutor(4, thread_name_prefix="vigia-stage"),
                    LocalBlobStore(self.settings.blob_dir),
                )
            return self._parts

    def loop(self) -> asyncio.AbstractEventLoop:
        """This thread's event loop for async stages: one per worker thread (the threads pool
        runs several tasks at once) rather than one built and torn down per task."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
        return loop

    def task(self, parts: _Parts, run_id: int, work: str | None) -> _Task | None:
        """From the message when it says enough (no read), else from the store; None when
        the store says the run is no longer ready (another delivery ran it, or its job ended)."""
        coordinator, owner, lease = parts.coordinator, parts.owner, self.settings.lease_seconds
        if work is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # a malformed message: read
                item = _dispatch_of(run_id, work)
                claim = coordinator.planned_claim(item, owner, lease)
                if claim is not None and item.work is not None and item.work.outputs is not None:
                    return _Task(claim, item.pipeline, item.work.input, item.work.outputs)
        assignment = coordinator.assignment_for(run_id, owner, lease)
        if assignment is None:
            return None
        return _Task(assignment.run, assignment.job.pipeline, assignment.job.input, assignment.outputs)

    def run_stage(self, app: Celery, run_id: int, work: str | None = None) -> str:
        parts = self.parts()
        task = self.task(parts, run_id, work)
        if task is None:
            return "duplicate"
        run = task.claim
        stage = self.registry.get(task.pipeline).node(run.stage).stage
        reports: list[ProgressReport] = []
        reports_lock = threading.Lock()

        def report(fraction: float, message: str | None) -> None:
            with reports_lock:
                reports.append(ProgressReport(run.id, run.job_id, run.stage, run.attempts, fraction, message))

        def take_reports() -> list[ProgressReport]:
            with reports_lock:
                taken = list(reports)
                reports.clear()
            return taken

        context = StageContext(
            job_id=run.job_id,
            stage=run.stage,
            attempt=run.attempts,
            input=task.input,
            outputs=task.outputs,
            report=report,
            files=parts.files,
            settings=self.settings,
        )
        held = Held(run, context, take_reports)
        parts.keeper.hold(held)
        try:
            outcome = self.loop().run_until_complete(run_attempt(stage, context, run_id=run.id, threads=parts.threads))
        finally:
            claimed = parts.keeper.release(held)
        self._hand_over(app, parts, Finished(outcome, tuple(take_reports()), None if claimed else run))
        return outcome.status

    def _hand_over(self, app: Celery, parts: _Parts, finished: Finished) -> None:
        coordinator, bus, handoff, *_ = parts
        try:
            handoff.push(finished)
        except redis.RedisError as error:
            # No broker to hand it over with: settle it here (the next stages cannot be
            # sent now either; the dispatcher sends them once Redis is back).
            log.warning("handoff.unavailable", extra={"error": str(error), "run_id": finished.outcome.run_id})
            settle_finished(app, self.registry, coordinator, bus, [finished])


def settle_finished(
    app: Celery, registry: Registry, coordinator: Coordinator, bus: EventBus, batch: Sequence[Finished]
) -> None:
    """Settle finished attempts in one transaction, publish their events and send the stage
    runs that became ready (recorded as sent by the settlement itself)."""
    batch = _one_per_attempt(batch)
    settled = coordinator.settle(
        [item.outcome for item in batch],
        [report for item in batch for report in item.reports],
        [item.claim for item in batch if item.claim is not None],
        dispatching=True,
    )
    bus.publish(settled.events)
    # Recorded as sent: should the broker fail now, the dispatcher sends them again later.
    with contextlib.suppress(redis.RedisError, kombu.exceptions.OperationalError):
        send(app, registry, settled.ready)


def _one_per_attempt(batch: Sequence[Finished]) -> list[Finished]:
    """Two deliveries of one message may both have run the same attempt: keep one, the one
    whose claim is already written if there is one (it owns the attempt; the other's claim
    would be refused, and a refused claim refuses its run's outcomes in that settlement)."""
    chosen: dict[tuple[int, int], Finished] = {}
    for item in batch:
        key = (item.outcome.run_id, item.outcome.attempt)
        if key not in chosen or (chosen[key].claim is not None and item.claim is None):
            chosen[key] = item
    return list(chosen.values())


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


def maintain_once(
    app: Celery,
    coordinator: Coordinator,
    bus: EventBus,
    broker: redis.Redis,
    queues: Sequence[str],
    *,
    next_reap: float,
    lease_seconds: float,
) -> float:
    """One pass of the dispatcher: send what is due, and reap expired leases once
    ``next_reap`` (monotonic) has come; returns when to reap next."""
    dispatch_ready(app, coordinator, broker, queues)
    if time.monotonic() < next_reap:
        return next_reap
    bus.publish(coordinator.reap().events)
    return time.monotonic() + lease_seconds / 2


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
                    next_reap = await asyncio.to_thread(
                        maintain_once,
                        self.app,
                        self.coordinator,
                        self.bus,
                        broker,
                        queues,
                        next_reap=next_reap,
                        lease_seconds=self.settings.lease_seconds,
                    )
                except Exception as error:  # keep dispatching whatever one pass ran into
                    log.error("dispatch.failed", extra={"error": str(error), "error_type": type(error).__name__})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
        finally:
            broker.close()


def run_worker(settings: Settings, registry: Registry, *, queues: Sequence[str], concurrency: int, pool: str) -> None:
    """`vigia worker` in distributed mode: a Celery worker with Vigía's settings, beside a
    housekeeping process that settles what the pool processes finished, dispatches due
    stage runs and reaps expired leases."""
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
    # A process of its own rather than a thread beside Celery's consumer: a busy thread there
    # holds the GIL while the consumer waits to hand out the next task, and the pool starves.
    housekeeper = multiprocessing.get_context("fork").Process(
        target=_housekeeping, args=(settings, registry, app, queues, os.getpid()), name="vigia-housekeeping"
    )
    housekeeper.start()
    stopping, died = threading.Event(), threading.Event()

    def watch_housekeeper() -> None:
        """Without it nothing this worker runs is settled: should it end unasked (killed
        for memory, say), stop the worker so that its supervisor starts both again."""
        housekeeper.join()
        if not stopping.is_set():
            log.critical("housekeeping.died", extra={"exit_code": housekeeper.exitcode})
            died.set()
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_housekeeper, name="vigia-housekeeping-watch", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def stop_housekeeping(**_: Any) -> None:
        # Celery says so once its pool has finished its tasks: their outcomes are handed
        # over, and the housekeeper settles what waits before it stops. A signal rather
        # than a shared lock (one held by a process that was killed is never released).
        stopping.set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(housekeeper.pid or 0, HOUSEKEEPING_STOP_SIGNAL)
        housekeeper.join(HOUSEKEEPING_SHUTDOWN_SECONDS)
        if housekeeper.is_alive():
            housekeeper.kill()

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
    if died.is_set():
        raise SystemExit(HOUSEKEEPING_DIED_EXIT_CODE)


def _housekeeping(settings: Settings, registry: Registry, app: Celery, queues: Sequence[str], parent: int) -> None:
    """The housekeeping process: settles in this thread, dispatches and reaps in another,
    until its worker says stop (or is gone)."""
    with contextlib.suppress(OSError):  # Linux: `ps`, `top` and monitoring tell it apart
        Path("/proc/self/comm").write_text(HOUSEKEEPING_PROCESS_NAME)
    # SIGTERM and SIGINT to the process group stop Celery, which lets its running tasks
    # finish: the housekeeper goes on settling their outcomes until Celery has stopped.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    signalled: list[int] = []
    signal.signal(HOUSEKEEPING_STOP_SIGNAL, lambda received, _: signalled.append(received))

    def stopping() -> bool:
        return bool(signalled) or os.getppid() != parent

    def maintain() -> None:
        own = _coordinator(settings, registry)
        bus = RedisEventBus(settings.broker_url or "")
        broker = redis.Redis.from_url(settings.broker_url or "")
        next_reap = 0.0
        while not stopping():
            time.sleep(settings.poll_interval)
            try:
                next_reap = maintain_once(
                    app, own, bus, broker, queues, next_reap=next_reap, lease_seconds=settings.lease_seconds
                )
            except Exception as error:  # keep maintaining whatever one pass ran into
                log.error("maintenance.failed", extra={"error": str(error), "error_type": type(error).__name__})

    threading.Thread(target=maintain, name="vigia-maintenance", daemon=True).start()
    settling = _coordinator(settings, registry)
    bus = RedisEventBus(settings.broker_url or "")
    settle_batches(
        Handoff(redis.Redis.from_url(settings.broker_url or "")),
        worker_id("settler"),
        lambda batch: settle_finished(app, registry, settling, bus, batch),
        stopping,
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
