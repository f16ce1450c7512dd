"""The messages Celery carries: "run stage run N", with what its worker needs when it fits,
and how they are sent (batched, with Celery's time limits just beyond the stage's own)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

from celery import Celery

from vigia import constants
from vigia.exceptions import VigiaError
from vigia.registry import Registry
from vigia.store.base import Dispatch, StageWork

TASK_NAME = "vigia.run_stage"
#: Ready stage runs sent per pass of a dispatcher.
DISPATCH_BATCH = 500
#: Redis commands buffered before a flush while sending (a message and its task-sent event
#: are two): a dispatcher's whole batch in one round trip.
SEND_BATCH_OPERATIONS = 2 * DISPATCH_BATCH
#: Celery's limits beyond the stage's own timeout: soft (an exception in the task) and hard
#: (the worker process is killed) for a task that will not return.
SOFT_LIMIT_MARGIN = 10.0
HARD_LIMIT_MARGIN = 60.0
#: Larger inputs and upstream outputs than this (JSON bytes) are read from the store by
#: the worker rather than sent in the message.
WORK_IN_MESSAGE_LIMIT = 64 * 1024


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
                args=[item.run_id, *work_message(item)],
                queue=item.queue,
                soft_time_limit=timeout + SOFT_LIMIT_MARGIN,
                time_limit=timeout + HARD_LIMIT_MARGIN,
                producer=producer,
                # Flower and the worker's log name the pipeline and stage (one task name
                # serves them all) and show the run, never the job's input (patient data)
                # that the message may carry; and Celery need not repr it per message.
                shadow=task_label(item.pipeline, item.stage),
                argsrepr=f"[{item.run_id}]",
                kwargsrepr="{}",
                # Nothing to declare: Celery sends to a queue through Redis's anonymous
                # exchange (a push onto the queue's list), and kombu would copy and bind
                # the queue's declaration for every message only to find it done.
                declare=[],
            )
            sent += 1
    return sent


def task_label(pipeline: str, stage: str) -> str:
    """The name a stage run's task shows under (Celery's shadow name): `pipeline:stage`."""
    return f"{pipeline}:{stage}"


def work_message(item: Dispatch) -> list[str]:
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
        "tenant": work.tenant,
        "attempts": work.attempts,
        "input": work.input,
        "outputs": work.outputs,
    }
    try:
        encoded = json.dumps(message, separators=(",", ":"))
    except (TypeError, ValueError):
        return []
    return [encoded] if len(encoded) <= WORK_IN_MESSAGE_LIMIT else []


def dispatch_of(run_id: int, encoded: str) -> Dispatch:
    message = json.loads(encoded)
    work = StageWork(
        message["job_id"], int(message["attempts"]), message["input"], message["outputs"], message.get("tenant")
    )
    return Dispatch(run_id, message["queue"], message["pipeline"], message["stage"], work)
