"""kombu's Redis transport with one client object per channel.

kombu builds a new `redis.Redis` facade for every command it sends outside a pipeline (an
event, an ack, a publish), and building one costs about 0.1 ms of CPU (redis-py fills its
table of response callbacks each time). A Celery worker sends several per task, which is a
fifth of its main process's CPU on no-op work. The facade holds no connection of its own
(commands take one from the channel's pool), so one per channel serves them all; it is
built afresh whenever the channel's pool is (after a fork or a lost connection).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

#: What `make_celery` names as Celery's `broker_transport` for redis:// broker URLs.
TRANSPORT = "vigia.executors.celery.transport:Transport"


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's own connection for BRPOP and friends
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
