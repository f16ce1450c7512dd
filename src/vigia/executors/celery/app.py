"""The Celery app of a Vigía installation: Vigía's settings, and the tasks that run a stage
run, or several of one stage, in a pool process (see `vigia.executors.celery.runtime`)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from vigia import constants
from vigia.config import Settings
from vigia.exceptions import ConfigurationError
from vigia.executors.celery import transport
from vigia.executors.celery.messages import BATCH_TASK_NAME, HARD_LIMIT_MARGIN, TASK_NAME
from vigia.executors.celery.runtime import Runtime
from vigia.registry import Registry


def make_celery(settings: Settings, registry: Registry) -> Celery:
    if not settings.broker_url:
        raise ConfigurationError("distributed mode needs VIGIA_BROKER_URL (redis://...)")
    longest = max(
        (node.stage.timeout for pipeline in registry for node in pipeline.nodes.values()),
        default=constants.DEFAULT_STAGE_TIMEOUT,
    )
    app = Celery("vigia", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1000,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_default_queue=constants.DEFAULT_QUEUE,
        task_time_limit=longest + HARD_LIMIT_MARGIN,
        # Longer than any stage may run, so Redis never hands a running task to a second worker.
        broker_transport_options={"visibility_timeout": int(2 * longest + 3600)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.broker_url.startswith("redis://"):  # not rediss:// (kombu checks its TLS options by that name)
        app.conf.broker_transport = transport.TRANSPORT
    runtime = Runtime(settings, registry)

    def run_stage(task: Any, run_id: int, work: str | None = None) -> str:
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        return runtime.run_stage(task.app, run_id, None if redelivered or not isinstance(work, str) else work)

    def run_stages(task: Any, runs: list[Any]) -> list[str]:
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        wanted = []
        for item in runs:
            if isinstance(item, list) and item and isinstance(item[0], int):
                work = item[1] if len(item) > 1 and isinstance(item[1], str) and not redelivered else None
                wanted.append((item[0], work))
        return runtime.run_stages(task.app, wanted)

    app.task(name=TASK_NAME, bind=True, acks_late=True, ignore_result=True)(run_stage)
    app.task(name=BATCH_TASK_NAME, bind=True, acks_late=True, ignore_result=True)(run_stages)
    return app
