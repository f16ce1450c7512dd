"""Sending stage runs to Redis: kombu's publish batches and Vigía's Redis transport, on a
real Redis (what a Celery worker would take from its queue)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from vigia.config import Settings
from vigia.executors.celery import TASK_NAME, make_celery, send
from vigia.executors.celery import transport as broker
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.store.base import Dispatch, StageWork


def _noop(ctx: object) -> None:
    return None


@pytest.fixture
def registry() -> Registry:
    pipeline = Pipeline("sending")
    pipeline.stage("first", queue="medical_priority", timeout=30)(_noop)
    return Registry([pipeline])


@pytest.fixture
def app(redis_url: str, registry: Registry) -> Iterator[Celery]:
    celery_app = make_celery(Settings(broker_url=redis_url, database_url="sqlite:///unused.db"), registry)
    yield celery_app
    celery_app.close()


def test_redis_urls_use_vigias_transport_and_rediss_keeps_kombus(redis_url: str, registry: Registry) -> None:
    assert make_celery(Settings(broker_url=redis_url), registry).conf.broker_transport == broker.TRANSPORT
    tls = make_celery(Settings(broker_url=redis_url.replace("redis://", "rediss://", 1)), registry)
    assert tls.conf.broker_transport != broker.TRANSPORT


def test_a_channel_reuses_one_client_until_its_pool_is_replaced(app: Celery, redis_url: str) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker.Channel)
        first = channel._create_client()
        assert channel._create_client() is first
        first.set("vigia-test:key", "1")
        # What kombu does after a fork or a lost connection: the next client must use the new pool.
        channel._disconnect_pools()
        second = channel._create_client()
        assert second is not first
        assert second.connection_pool is channel.pool
        assert second.get("vigia-test:key") == b"1"


def test_a_batch_of_sends_puts_each_message_on_its_queue_with_the_run_only_in_argsrepr(
    app: Celery, registry: Registry, redis_url: str
) -> None:
    secret = {"patient": "Ana Pérez", "nhc": "12345678"}
    runs = [
        Dispatch(run_id, "medical_priority", "sending", "first", StageWork(f"job-{run_id}", 0, secret, {}))
        for run_id in range(1, 1201)  # more than one flush of the batch
    ]
    subscriber = redis.Redis.from_url(redis_url).pubsub()
    subscriber.psubscribe("*celeryev*")
    assert send(app, registry, runs) == 1200

    client = redis.Redis.from_url(redis_url)
    raw = client.lrange("medical_priority", 0, -1)
    assert len(raw) == 1200
    sent = {}
    for item in raw:
        envelope = json.loads(item)
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        assert kwargs == {}
        headers = envelope["headers"]
        assert headers["task"] == TASK_NAME
        assert headers["argsrepr"] == f"[{args[0]}]"  # the job's input is not shown
        assert headers["timelimit"] == [30 + 60.0, 30 + 10.0]
        assert json.loads(args[1])["input"] == secret  # but it travels to the worker
        sent[args[0]] = envelope["properties"]["delivery_info"]["routing_key"]
    assert sent == dict.fromkeys(range(1, 1201), "medical_priority")
    # The task-sent events go out with the batch too (what Flower shows as sent).
    announced = []
    while (message := subscriber.get_message(timeout=1.0)) is not None:
        if message["type"] == "pmessage":
            event = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
            if event["type"] == "task-sent":
                assert "Ana" not in json.dumps(event)
                announced.append(event["args"])
    assert sorted(announced) == sorted(f"[{run_id}]" for run_id in range(1, 1201))
    subscriber.close()
    client.close()
