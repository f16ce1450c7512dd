"""What the broker and the workers say: messages waiting per queue (read from Redis), the
workers online and the queues each consumes (Celery's remote control), and whether the
broker answers at all. Monitoring and readiness ask here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from celery import Celery

from vigia.config import Settings


def ping(url: str, *, timeout: float = 2.0) -> str | None:
    """None when the broker at ``url`` answers, else why not (without the URL, which may
    hold a password)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return None
    except redis.RedisError as error:
        return str(error)
    finally:
        client.close()


def broker_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Messages waiting per queue, read from Redis (kombu keeps each queue as a list)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        return {queue: int(depth) for queue, depth in zip(queues, pipe.execute(), strict=True)}


@dataclass(frozen=True, slots=True)
class BrokerQueues:
    """What monitoring needs from the broker: messages waiting per queue, and the workers
    online with the queues each consumes."""

    depths: dict[str, int]
    workers: dict[str, list[str]]

    def consumers(self, queue: str) -> list[str]:
        return sorted(name for name, queues in self.workers.items() if queue in queues)


def queue_facts(app: Celery, settings: Settings, queues: Sequence[str], *, timeout: float = 1.0) -> BrokerQueues:
    """Read the queue depths from Redis and ask the workers (Celery's remote control) which
    queues they consume; a worker that does not answer within ``timeout`` counts as offline."""
    broker = redis.Redis.from_url(settings.broker_url or "")
    try:
        depths = broker_depths(broker, queues)
    finally:
        broker.close()
    return BrokerQueues(depths, workers_online(app, timeout=timeout))


def workers_online(app: Celery, *, timeout: float = 1.0) -> dict[str, list[str]]:
    """The workers that answer within ``timeout``, with the queues each consumes."""
    answers = app.control.inspect(timeout=timeout).active_queues() or {}
    return {name: sorted(queue["name"] for queue in consumed) for name, consumed in answers.items()}


def consumers_of(app: Celery, *, timeout: float = 1.0) -> Callable[[], dict[str, list[str]]]:
    """Queues and their consumers as ``app``'s workers report them (distributed mode)."""

    def consumers() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for worker, queues in workers_online(app, timeout=timeout).items():
            for queue in queues:
                found.setdefault(queue, []).append(worker)
        return found

    return consumers
