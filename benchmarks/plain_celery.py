"""Plain Celery, configured like Vigía's workers, for benchmarks/distributed.py to compare with."""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("PLAIN_CELERY_BROKER", "redis://127.0.0.1:6379/13")
COUNTER = "plain-celery:done"

app = Celery("plain", broker=BROKER)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="plain",
    task_send_sent_event=True,
    worker_hijack_root_logger=False,
)


counter = redis.Redis.from_url(BROKER)


@app.task(name="plain.noop")
def noop(count: bool = True) -> None:
    if count:  # the only extra: tell the benchmark this one is done
        counter.incr(COUNTER)
