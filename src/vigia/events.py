"""Event bus: tells listeners at once what the store has just recorded.

The store holds every event; the bus only makes them arrive quickly. A listener that falls
behind is not allowed to slow the workers: its queue is bounded, and when it overflows the
subscription is marked so the reader catches up from the store instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from vigia.job import Event

#: Events a subscriber may have waiting before it is told to catch up from the store.
SUBSCRIPTION_BUFFER = 1000


class Subscription:
    """Live events of one job (or of every job when ``job_id`` is None)."""

    def __init__(self, bus: LocalEventBus, job_id: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.job_id = job_id
        self._bus = bus
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIPTION_BUFFER)
        #: Set when events were dropped: read the store from your last sequence number.
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def drain(self) -> list[Event]:
        drained = []
        while not self._queue.empty():
            drained.append(self._queue.get_nowait())
        return drained

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class EventBus(Protocol):
    def publish(self, events: Sequence[Event]) -> None: ...

    def subscribe(self, job_id: str | None = None) -> Subscription: ...


class LocalEventBus:
    """In-process bus. ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self._subscribers: dict[str | None, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()

    def subscribe(self, job_id: str | None = None) -> Subscription:
        subscription = Subscription(self, job_id, asyncio.get_running_loop())
        with self._lock:
            self._subscribers[job_id].add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            listeners = self._subscribers.get(subscription.job_id)
            if listeners is not None:
                listeners.discard(subscription)
                if not listeners:
                    del self._subscribers[subscription.job_id]

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            if not self._subscribers:
                return
            deliveries = [
                (subscription, event)
                for event in events
                for key in (event.job_id, None)
                for subscription in self._subscribers.get(key, ())
            ]
        for subscription, event in deliveries:
            if _in_loop_thread(subscription._loop):
                subscription._offer(event)
            elif not subscription._loop.is_closed():
                subscription._loop.call_soon_threadsafe(subscription._offer, event)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(listeners) for listeners in self._subscribers.values())


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


#: Redis channel prefix of job events; the job id follows.
REDIS_CHANNEL_PREFIX = "vigia:events:"
#: Pause before listening again after Redis went away.
REDIS_RECONNECT_DELAY = 1.0


def events_from_message(text: str | bytes) -> list[Event]:
    """A pub/sub message: a job's events as a list (one event alone, from an older
    version, is read too)."""
    decoded = json.loads(text)
    return [Event.from_row(item) for item in decoded] if isinstance(decoded, list) else [Event.from_row(decoded)]


class RedisEventBus:
    """Events over Redis pub/sub, so that an API process sees progress made on any worker
    machine. Publishing works from any thread or process; each subscribing process runs
    one listener that feeds its local subscriptions. Pub/sub drops messages while a
    listener is disconnected: readers then catch up from the store (see `Vigia.events`)."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415 -- redis is optional (the celery extra): only distributed mode needs it

        self.url = url
        self._redis = redis.Redis.from_url(url)
        self._local = LocalEventBus()
        self._listener: asyncio.Task[None] | None = None

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        import redis  # noqa: PLC0415 -- redis is optional (the celery extra): only distributed mode needs it

        # One message per job with its events in order: a settlement of many stage runs
        # publishes one command per job rather than one per event.
        by_job: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_job.setdefault(event.job_id, []).append(event.to_dict())
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for job_id, job_events in by_job.items():
                    pipe.publish(REDIS_CHANNEL_PREFIX + job_id, json.dumps(job_events, separators=(",", ":")))
                pipe.execute()
        except redis.RedisError as error:
            # The store has the events; listeners catch up from it.
            logging.getLogger("vigia.events").warning("events.publish_failed", extra={"error": str(error)})

    def subscribe(self, job_id: str | None = None) -> Subscription:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="vigia-redis-events")
        return self._local.subscribe(job_id)

    async def _listen(self) -> None:
        import redis  # noqa: PLC0415 -- redis is optional (the celery extra): only distributed mode needs it
        import redis.asyncio as aioredis  # noqa: PLC0415 -- redis is optional (the celery extra): only distributed mode needs it

        while True:
            client = aioredis.Redis.from_url(self.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(REDIS_CHANNEL_PREFIX + "*")
                    async for message in pubsub.listen():
                        if message.get("type") == "pmessage":
                            self._local.publish(events_from_message(message["data"]))
            except (redis.RedisError, OSError) as error:
                logging.getLogger("vigia.events").warning("events.listen_failed", extra={"error": str(error)})
                await asyncio.sleep(REDIS_RECONNECT_DELAY)
            finally:
                await client.aclose()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        self._redis.close()

    @property
    def subscriber_count(self) -> int:
        return self._local.subscriber_count
