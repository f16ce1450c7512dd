"""Run one attempt of one stage and say how it ended. Shared by every executor."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from vigia.context import StageContext
from vigia.exceptions import Permanent, Retry, Skip, StageCancelled, StageTimeout
from vigia.orchestrator import StageOutcome
from vigia.pipeline import Stage
from vigia.serialization import NotStorable, to_storable

log = logging.getLogger("vigia.runner")

#: Error messages are kept short: they are stored, listed and shown.
MAX_ERROR_MESSAGE = 2000


class OutputNotSerialisable(TypeError):
    """A stage returned something that is not JSON."""


class StageProcesses(Protocol):
    """Where `run_in="process"` stages run (`vigia.executors.isolated.ProcessPool`): a
    process taken for an attempt, and the attempt run in it."""

    def child(
        self, function: Callable[[StageContext], Any], ctx: StageContext
    ) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def run(self, child: Any, function: Callable[[StageContext], Any], ctx: StageContext) -> Any: ...


async def run_attempt(
    stage: Stage,
    ctx: StageContext,
    *,
    run_id: int,
    threads: Executor | None = None,
    processes: StageProcesses | None = None,
) -> StageOutcome:
    """Run ``stage`` once under its timeout; never raises for the stage's own failures.

    A synchronous stage runs in ``threads``. Python cannot stop a thread, so a sync stage
    that overruns its timeout is abandoned: the attempt is recorded as timed out and
    `ctx.cancelled` turns true, and the thread runs on until the function returns, its
    result discarded. A `run_in="process"` stage runs in ``processes`` (a thread without
    them: a Celery worker's pool process is a process of its own already), whose child is
    killed at the timeout.
    """
    started = time.time()

    def ended(status: Any, **fields: Any) -> StageOutcome:
        return StageOutcome(
            run_id=run_id,
            job_id=ctx.job_id,
            stage=stage.name,
            attempt=ctx.attempt,
            status=status,
            started_at=started,
            finished_at=time.time(),
            escalations=tuple(ctx.escalations),
            decisions=tuple(ctx.decisions),
            notifications=tuple(ctx.notifications),
            **fields,
        )

    def failed(error: BaseException, *, retryable: bool, retry_after: float | None = None) -> StageOutcome:
        return ended(
            "failed",
            error_type=type(error).__name__,
            error_message=_message(error),
            retryable=retryable,
            retry_after=retry_after,
        )

    # A deadline on this task rather than `wait_for`, which would run the stage in a task of
    # its own (one more task per attempt); it also says whether it was our deadline that hit.
    deadline = asyncio.timeout(None)
    isolated = processes if stage.run_in == "process" else None
    try:
        # A stage's process is taken (started, the first time) before its timeout runs.
        async with (
            isolated.child(stage.function, ctx) if isolated is not None else contextlib.nullcontext() as child,
            deadline,
        ):
            deadline.reschedule(asyncio.get_running_loop().time() + stage.timeout)
            if isolated is not None:
                result = await isolated.run(child, stage.function, ctx)
            else:
                result = await _invoke(stage, ctx, threads)
        return ended("succeeded", output=_as_json(result))
    except TimeoutError as error:
        if not deadline.expired():
            # The stage's own I/O timed out, not the stage: an ordinary failure.
            return failed(error, retryable=stage.retry_policy.is_retryable(type(error)))
        ctx.cancel()
        timeout = StageTimeout(f"stage {stage.name!r} ran past its {stage.timeout:g} s timeout")
        return failed(timeout, retryable=stage.retry_policy.is_retryable(StageTimeout))
    except StageCancelled:
        return ended("cancelled")
    except Retry as retry:
        return failed(retry, retryable=True, retry_after=retry.after)
    except Skip as skip:
        return ended("skipped", error_message=_message(skip))
    except Permanent as permanent:
        return failed(permanent, retryable=False)
    except OutputNotSerialisable as error:
        return failed(error, retryable=False)
    except Exception as error:  # a stage's own failure, whatever it is
        log.info("stage.failed", extra={"stage": stage.name, "error_type": type(error).__name__})
        return failed(error, retryable=stage.retry_policy.is_retryable(type(error)))


async def _invoke(stage: Stage, ctx: StageContext, threads: Executor | None) -> Any:
    if stage.is_async:
        return await stage.function(ctx)
    if stage.run_in == "loop":
        result = stage.function(ctx)
    else:
        result = await asyncio.get_running_loop().run_in_executor(threads, stage.function, ctx)
    if inspect.isawaitable(result):
        return await result
    return result


def _as_json(value: Any) -> Any:
    try:
        return to_storable(value)
    except NotStorable as error:
        raise OutputNotSerialisable(f"the stage's output {error}") from None


def _message(error: BaseException) -> str:
    return clean_text(str(error) or type(error).__name__, MAX_ERROR_MESSAGE)


def clean_text(text: str, limit: int) -> str:
    """Text fit to store: no NUL characters (PostgreSQL refuses them), at most ``limit`` long."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "…"
