"""Stages that run in a process of their own (`Stage(run_in="process")`), in embedded mode.

A CPU-bound stage in a thread holds the GIL the event loop needs, and Python cannot stop a
thread: a stage that overran its timeout was abandoned but ran on. In a child process it
has a core of its own, and at its timeout (or when its job is cancelled) the child is
killed and another started in its place.

Children are started on demand (spawned: nothing of the parent's threads or connections
is inherited), up to the pool's size, and reused: a model a stage loads stays loaded in the
child for the next run. A child gets the stage function (by reference: a module-level
function), what its context needs (input, outputs, settings, the blob store, the database
URL), and sends back progress as it goes and then the result or the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.context import StageContext
from vigia.escalation import EscalationRequest, NotificationRequest
from vigia.exceptions import StageCancelled

log = logging.getLogger("vigia.isolated")

#: How often a waiting parent looks whether the stage's job was cancelled.
CANCEL_CHECK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Task:
    """What a child needs to run one attempt (all of it picklable)."""

    function: Callable[[StageContext], Any]
    job_id: str
    stage: str
    attempt: int
    input: Any
    outputs: dict[str, Any]
    tenant: str | None
    settings: Settings | None
    files: BlobStore | None
    database_url: str | None


@dataclass(slots=True)
class Finished:
    result: Any = None
    error: BaseException | None = None
    escalations: list[EscalationRequest] = field(default_factory=list)
    decisions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notifications: list[NotificationRequest] = field(default_factory=list)


def _child(connection: Connection) -> None:
    """A child's loop: one task at a time until the parent closes the pipe."""
    databases: dict[str, Any] = {}

    def database_at(url: str | None) -> Any:
        if url is None:
            return None
        if url not in databases:
            from vigia.store.database import Database  # noqa: PLC0415 -- SQLAlchemy only where a stage needs it

            databases[url] = Database(url)
        return databases[url]

    while True:
        try:
            kind, task = connection.recv()
        except (EOFError, OSError):
            return
        if kind == "load":  # the stage's module imported (by unpickling it) and the database open
            database_at(task[1])
            connection.send(("loaded", None))
            continue
        database = database_at(task.database_url)

        def report(fraction: float, message: str | None) -> None:
            connection.send(("progress", fraction, message))

        context = StageContext(
            job_id=task.job_id,
            stage=task.stage,
            attempt=task.attempt,
            input=task.input,
            outputs=task.outputs,
            report=report,
            files=task.files,
            settings=task.settings,
            tenant=task.tenant,
            database=database,
        )
        finished = Finished()
        try:
            result = task.function(context)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            finished.result = result
        except BaseException as error:  # the parent decides what it means
            finished.error = error
        finished.escalations = list(context.escalations)
        finished.decisions = list(context.decisions)
        finished.notifications = list(context.notifications)
        connection.send(("finished", _picklable(finished)))


def _database_url(ctx: StageContext) -> str | None:
    return None if ctx.database is None else ctx.database.engine.url.render_as_string(hide_password=False)


def _picklable(finished: Finished) -> Finished:
    """The outcome as it can cross the pipe: an exception that cannot be pickled becomes a
    RuntimeError saying what it was."""
    if finished.error is not None:
        try:
            pickle.dumps(finished.error)
        except Exception:
            finished.error = RuntimeError(f"{type(finished.error).__name__}: {finished.error}")
    return finished


@dataclass(slots=True)
class _Child:
    process: SpawnProcess
    connection: Connection
    broken: bool = False
    #: The stage functions whose modules this child has imported.
    loaded: set[str] = field(default_factory=set)


class ProcessPool:
    """Up to ``size`` child processes that run stage attempts, reused between attempts."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._slots = asyncio.Semaphore(self.size)

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    return child
                child.connection.close()
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_child, args=(child_end,), daemon=True, name="vigia-stage")
        process.start()
        child_end.close()
        return _Child(process, parent_end)

    @staticmethod
    def _load(child: _Child, function: Callable[[StageContext], Any], database_url: str | None) -> None:
        name = f"{function.__module__}:{function.__qualname__} {database_url}"
        if name in child.loaded:
            return
        child.connection.send(("load", (function, database_url)))
        try:
            child.connection.recv()
        except (EOFError, OSError):
            raise RuntimeError(
                f"the stage's process could not load {name} (exit status {child.process.exitcode})"
            ) from None
        child.loaded.add(name)

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            self._idle.append(child)

    @staticmethod
    def _kill(child: _Child) -> None:
        with contextlib.suppress(Exception):
            child.process.kill()
            child.process.join(5)
        child.connection.close()

    @contextlib.asynccontextmanager
    async def child(self, function: Callable[[StageContext], Any], ctx: StageContext) -> AsyncIterator[_Child]:
        """A child for one attempt of ``function``, started if none is idle and made to
        import the function's module, both before the stage's timeout runs (the pool's
        time, not the stage's); given back after, or killed if the attempt broke off."""
        async with self._slots:
            child = await asyncio.to_thread(self._take)
            try:
                await asyncio.to_thread(self._load, child, function, _database_url(ctx))
            except BaseException:
                self._kill(child)
                raise
            try:
                yield child
            finally:
                if child.broken:
                    self._kill(child)
                else:
                    self._give_back(child)

    async def run(self, child: _Child, function: Callable[[StageContext], Any], ctx: StageContext) -> Any:
        """Run ``function`` on ``ctx`` in ``child``; its result, or its exception raised
        here. Cancelled (the runner's timeout) or its job cancelled, the child is killed."""
        task = Task(
            function,
            ctx.job_id,
            ctx.stage,
            ctx.attempt,
            ctx.input,
            dict(ctx.outputs),
            ctx.tenant,
            ctx.settings,
            ctx.files,
            _database_url(ctx),
        )
        try:
            finished = await self._attempt(child, task, ctx)
        except BaseException:
            child.broken = True  # overran, cancelled, or the child died: never reused
            raise
        ctx.escalations.extend(finished.escalations)
        ctx.decisions.extend(finished.decisions)
        ctx.notifications.extend(finished.notifications)
        if finished.error is not None:
            raise finished.error
        return finished.result

    async def _attempt(self, child: _Child, task: Task, ctx: StageContext) -> Finished:
        child.connection.send(("run", task))
        loop = asyncio.get_running_loop()
        while True:
            ready = await loop.run_in_executor(None, child.connection.poll, CANCEL_CHECK_SECONDS)
            if ctx.cancelled:
                raise StageCancelled()
            if not ready:
                if not child.process.is_alive():
                    raise RuntimeError(f"the stage's process died (exit status {child.process.exitcode})")
                continue
            try:
                message = child.connection.recv()
            except (EOFError, OSError):
                raise RuntimeError(f"the stage's process died (exit status {child.process.exitcode})") from None
            if message[0] == "progress":
                ctx.progress(message[1], message[2])
                continue
            finished: Finished = message[1]
            return finished

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.connection.close()  # the child's recv ends: it returns
            child.process.join(5)
            if child.process.is_alive():
                self._kill(child)
