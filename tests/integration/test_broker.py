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
from vigia.executors.celery.messages import BATCH_TASK_NAME, BATCHABLE_TIMEOUT, MAX_RUNS_PER_MESSAGE
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


def _queued(client: redis.Redis, queue: str) -> list[tuple[dict, list]]:
    """The messages on ``queue`` in the order a worker takes them (kombu pushes on the left
    and workers pop on the right): their headers and positional arguments."""
    found = []
    for item in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(item)
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        assert kwargs == {}
        assert envelope["properties"]["delivery_info"]["routing_key"] == queue
        found.append((envelope["headers"], args))
    return found


def test_a_backlog_goes_several_runs_to_a_message_with_the_runs_only_in_argsrepr(
    app: Celery, registry: Registry, redis_url: str
) -> None:
    secret = {"patient": "Ana Pérez", "nhc": "12345678"}
    runs = [
        Dispatch(run_id, "medical_priority", "sending", "first", StageWork(f"job-{run_id}", 0, secret, {}))
        for run_id in range(1, 1201)  # more than one flush of the batch
    ]
    subscriber = redis.Redis.from_url(redis_url).pubsub()
    subscriber.psubscribe("*celeryev*")
    assert send(app, registry, runs) == 1200 // MAX_RUNS_PER_MESSAGE

    client = redis.Redis.from_url(redis_url)
    carried: list[int] = []
    for headers, args in _queued(client, "medical_priority"):
        assert headers["task"] == BATCH_TASK_NAME
        [items] = args
        ids = [run_id for run_id, _ in items]
        assert len(ids) == MAX_RUNS_PER_MESSAGE
        assert headers["argsrepr"] == str(ids)  # the jobs' input is not shown
        assert headers["shadow"] == f"sending:first x{MAX_RUNS_PER_MESSAGE}"
        # The runs' time limits add up: the last one waits for those before it.
        assert headers["timelimit"] == [8 * 30 + 60.0, 8 * 30 + 10.0]
        assert all(json.loads(work)["input"] == secret for _, work in items)  # but it travels
        carried += ids
    assert carried == list(range(1, 1201))  # each once, in the order given
    # The task-sent events go out with the batch too (what Flower shows as sent).
    announced = []
    while (message := subscriber.get_message(timeout=1.0)) is not None:
        if message["type"] == "pmessage":
            event = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
            if event["type"] == "task-sent":
                assert "Ana" not in json.dumps(event)
                announced.append(event["args"])
    assert len(announced) == 1200 // MAX_RUNS_PER_MESSAGE
    subscriber.close()
    client.close()


def test_a_few_ready_runs_and_runs_of_long_stages_each_go_alone(registry: Registry, redis_url: str) -> None:
    registry.get("sending").stage("long", queue="medical_priority", timeout=BATCHABLE_TIMEOUT + 1)(_noop)
    app = make_celery(Settings(broker_url=redis_url, database_url="sqlite:///unused.db"), registry)
    few = [
        Dispatch(run_id, "medical_priority", "sending", "first", StageWork(f"j{run_id}", 0, {}, {}))
        for run_id in (1, 2, 3)
    ]
    long = [
        Dispatch(run_id, "medical_priority", "sending", "long", StageWork(f"j{run_id}", 0, {}, {}))
        for run_id in range(10, 50)
    ]
    try:
        assert send(app, registry, few + long) == 3 + 40
        client = redis.Redis.from_url(redis_url)
        queued = _queued(client, "medical_priority")
        client.close()
    finally:
        app.close()
    assert {headers["task"] for headers, _ in queued} == {TASK_NAME}
    assert [args[0] for _, args in queued] == [1, 2, 3, *range(10, 50)]
    assert [headers["argsrepr"] for headers, _ in queued][:3] == ["[1]", "[2]", "[3]"]
    assert queued[0][0]["shadow"] == "sending:first" and queued[-1][0]["shadow"] == "sending:long"
