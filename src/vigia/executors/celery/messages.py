"""The messages Celery carries: "run stage run N" (or several runs of one stage under a
backlog), with what its worker needs when it fits, and how they are sent (in publish
batches, with Celery's time limits just beyond the stages' own)."""

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
#: The task that runs several stage runs of one stage, one after another.
BATCH_TASK_NAME = "vigia.run_stages"
#: Stage runs one message carries at most under a backlog (see `batches_of`).
MAX_RUNS_PER_MESSAGE = 8
#: A backlog is shared among at least this many messages, so that it still spreads over
#: the workers that consume the queue.
MIN_MESSAGES_PER_BACKLOG = 4
#: Stages with a longer timeout always travel alone: a long stage would hold the runs
#: queued behind it in its message, and a message's time limits are its runs' summed.
BATCHABLE_TIMEOUT = 60.0
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
    """Send the runs to their queues (several runs of one stage in one message under a
    backlog: `batches_of`), with Celery time limits just beyond the stages' own timeouts
    (which the runner enforces first): the soft one lets the task report, the hard one
    kills a worker process stuck in C code. Returns the messages sent."""
    if not runs:  # most settlements make nothing ready: no producer to take from the pool
        return 0
    sent = 0
    # One Redis round trip per batch (kombu's publish batches) rather than two per message,
    # the message and its task-sent event: a third of the sending CPU, a twentieth of Redis's.
    with app.producer_or_acquire() as producer, producer.batch(max_size=SEND_BATCH_OPERATIONS):
        for group in batches_of(registry, runs):
            first = group[0]
            timeout = len(group) * _timeout_of(registry, first)
            single = len(group) == 1
            app.send_task(
                TASK_NAME if single else BATCH_TASK_NAME,
                args=[first.run_id, *work_message(first)]
                if single
                else [[[item.run_id, *work_message(item)] for item in group]],
                queue=first.queue,
                soft_time_limit=timeout + SOFT_LIMIT_MARGIN,
                time_limit=timeout + HARD_LIMIT_MARGIN,
                producer=producer,
                # Flower and the worker's log name the pipeline and stage (one task name
                # serves them all) and show the runs, never the job's input (patient data)
                # that the message may carry; and Celery need not repr it per message.
                shadow=task_label(first.pipeline, first.stage) + ("" if single else f" x{len(group)}"),
                argsrepr=f"{[item.run_id for item in group]}",
                kwargsrepr="{}",
                # Nothing to declare: Celery sends to a queue through Redis's anonymous
                # exchange (a push onto the queue's list), and kombu would copy and bind
                # the queue's declaration for every message only to find it done.
                declare=[],
            )
            sent += 1
    return sent


def batches_of(registry: Registry, runs: Sequence[Dispatch]) -> list[list[Dispatch]]:
    """The messages to send ``runs`` in, in order. Celery's cost is per message (its main
    process spends about 3 ms on each, whatever the task does), so a backlog of short stage
    runs goes several to a message: up to `MAX_RUNS_PER_MESSAGE` runs of one stage, while
    the backlog still makes at least `MIN_MESSAGES_PER_BACKLOG` messages for the workers to
    share. Runs of long stages (a timeout over `BATCHABLE_TIMEOUT`), and a few ready runs,
    each have a message of their own."""
    by_stage: dict[tuple[str, str, str], list[Dispatch]] = {}
    for item in runs:
        by_stage.setdefault((item.queue, item.pipeline, item.stage), []).append(item)
    messages: list[list[Dispatch]] = []
    for group in by_stage.values():
        size = min(MAX_RUNS_PER_MESSAGE, len(group) // MIN_MESSAGES_PER_BACKLOG)
        if size <= 1 or _timeout_of(registry, group[0]) > BATCHABLE_TIMEOUT:
            messages.extend([item] for item in group)
        else:
            messages.extend(group[start : start + size] for start in range(0, len(group), size))
    return messages


def _timeout_of(registry: Registry, item: Dispatch) -> float:
    with contextlib.suppress(VigiaError):  # a pipeline unknown here: its worker decides
        return registry.get(item.pipeline).node(item.stage).stage.timeout
    return constants.DEFAULT_STAGE_TIMEOUT


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
