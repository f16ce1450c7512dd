"""Settling what workers finished and sending what became ready; the dispatcher an API
process runs in distributed mode (new jobs, retries that came due, lost messages, expired
leases)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence

import kombu.exceptions
import redis
from celery import Celery

from vigia.config import Settings
from vigia.coordinator import Coordinator
from vigia.events import EventBus
from vigia.executors.celery.handoff import Finished
from vigia.executors.celery.inspect import broker_depths
from vigia.executors.celery.messages import DISPATCH_BATCH, send
from vigia.registry import Registry

log = logging.getLogger("vigia.celery")

#: A run sent this long ago, still waiting, in a queue the broker holds nothing for, was lost
#: (a Redis restart, a crash between the commit and the send): it is sent again.
RESEND_AFTER_SECONDS = 15.0


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
