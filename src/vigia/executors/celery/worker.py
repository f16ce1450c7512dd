"""`vigia worker` in distributed mode: a Celery worker with Vigía's settings, and beside it a
housekeeping process that settles what the pool processes finished, dispatches what is due
and reaps expired leases; the signals that stop them together."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from celery import Celery, signals

from vigia import wiring
from vigia.config import Settings
from vigia.events import RedisEventBus
from vigia.exceptions import ConfigurationError
from vigia.executors.celery.app import make_celery
from vigia.executors.celery.dispatcher import maintain_once, settle_finished
from vigia.executors.celery.handoff import Handoff, settle_batches
from vigia.executors.celery.inspect import ping
from vigia.executors.celery.runtime import coordinator_of
from vigia.executors.embedded import worker_id
from vigia.registry import Registry

log = logging.getLogger("vigia.celery")

#: The housekeeping process's name as the operating system shows it (15 characters at most).
HOUSEKEEPING_PROCESS_NAME = "vigia-housekeep"
#: What the worker sends its housekeeping process to stop it.
HOUSEKEEPING_STOP_SIGNAL = signal.SIGUSR1
#: `vigia worker`'s exit code when it stopped because its housekeeping process died.
HOUSEKEEPING_DIED_EXIT_CODE = 3
#: How long a stopping worker waits for its housekeeping process's last batch.
HOUSEKEEPING_SHUTDOWN_SECONDS = 10.0


def run_worker(settings: Settings, registry: Registry, *, queues: Sequence[str], concurrency: int, pool: str) -> None:
    """`vigia worker` in distributed mode: a Celery worker with Vigía's settings, beside a
    housekeeping process that settles what the pool processes finished, dispatches due
    stage runs and reaps expired leases."""
    database = wiring.open_database(settings, upgrade=False)
    try:
        database.check()  # refuse to start on an unreachable or outdated store
    finally:
        database.close()
    problem = ping(settings.broker_url or "")
    if problem is not None:
        raise ConfigurationError(f"the broker at {settings.broker_url} cannot be reached: {problem}")
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
        own = coordinator_of(settings, registry)
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
    settling = coordinator_of(settings, registry)
    bus = RedisEventBus(settings.broker_url or "")
    settle_batches(
        Handoff(redis.Redis.from_url(settings.broker_url or "")),
        worker_id("settler"),
        lambda batch: settle_finished(app, registry, settling, bus, batch),
        stopping,
    )
