"""What a pool process needs to run stage runs, and running one: the claim (planned from
the message when it says enough, else read), the attempt under its deadline, the keeper
for a long stage, and the hand-over of what it finished to the housekeeping processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import redis
from celery import Celery

from vigia import wiring
from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.context import StageContext
from vigia.coordinator import Coordinator
from vigia.events import EventBus, RedisEventBus
from vigia.executors.celery.dispatcher import settle_finished
from vigia.executors.celery.handoff import Finished, Handoff
from vigia.executors.celery.keeper import Held, Keeper
from vigia.executors.celery.messages import dispatch_of
from vigia.executors.embedded import worker_id
from vigia.job import StageRun
from vigia.orchestrator import ProgressReport
from vigia.registry import Registry
from vigia.runner import run_attempt
from vigia.store.database import Database

log = logging.getLogger("vigia.celery")


def coordinator_of(settings: Settings, registry: Registry) -> Coordinator:
    """A coordinator of its own for a worker-side process (opened after the fork)."""
    return wiring.coordinator_for(settings, registry, wiring.open_database(settings, upgrade=False))


class Parts(NamedTuple):
    database: Database
    coordinator: Coordinator
    bus: EventBus
    handoff: Handoff
    keeper: Keeper
    owner: str
    threads: ThreadPoolExecutor
    files: BlobStore


class Task(NamedTuple):
    """A stage run to run here: the claim to make, and what its function needs."""

    claim: StageRun
    pipeline: str
    input: Any
    outputs: Mapping[str, Any]
    tenant: str | None


class Runtime:
    """What a worker process needs to run stage runs; built on first use in each process
    (after Celery forks its pool), never shared across a fork."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self._parts: Parts | None = None
        self._lock = threading.Lock()
        self._loops = threading.local()

    def parts(self) -> Parts:
        with self._lock:
            if self._parts is None:
                database = wiring.open_database(self.settings, upgrade=False)
                coordinator = wiring.coordinator_for(self.settings, self.registry, database)
                bus = RedisEventBus(self.settings.broker_url or "")
                owner = worker_id("celery")
                self._parts = Parts(
                    database,
                    coordinator,
                    bus,
                    Handoff(redis.Redis.from_url(self.settings.broker_url or "")),
                    Keeper(coordinator, bus, owner, self.settings.lease_seconds),
                    owner,
                    ThreadPoolExecutor(4, thread_name_prefix="vigia-stage"),
                    wiring.blobs_for(self.settings),
                )
            return self._parts

    def loop(self) -> asyncio.AbstractEventLoop:
        """This thread's event loop for async stages: one per worker thread (the threads pool
        runs several tasks at once) rather than one built and torn down per task."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
        return loop

    def task(self, parts: Parts, run_id: int, work: str | None) -> Task | None:
        """From the message when it says enough (no read), else from the store; None when
        the store says the run is no longer ready (another delivery ran it, or its job ended)."""
        coordinator, owner, lease = parts.coordinator, parts.owner, self.settings.lease_seconds
        if work is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # a malformed message: read
                item = dispatch_of(run_id, work)
                claim = coordinator.planned_claim(item, owner, lease)
                if claim is not None and item.work is not None and item.work.outputs is not None:
                    return Task(claim, item.pipeline, item.work.input, item.work.outputs, item.work.tenant)
        assignment = coordinator.assignment_for(run_id, owner, lease)
        if assignment is None:
            return None
        job = assignment.job
        return Task(assignment.run, job.pipeline, job.input, assignment.outputs, job.tenant)

    def run_stage(self, app: Celery, run_id: int, work: str | None = None) -> str:
        return self.run_stages(app, [(run_id, work)])[0]

    def run_stages(self, app: Celery, runs: Sequence[tuple[int, str | None]]) -> list[str]:
        """Run the stage runs of one message, one after another. Each is held by the keeper
        from the start, so that a run still waiting its turn past the keeper's interval has
        its claim written (the store shows it taken, and the dispatcher does not send it
        again) and a run another delivery took meanwhile is skipped."""
        parts = self.parts()
        prepared: list[tuple[Task, Held] | None] = []
        for run_id, work in runs:
            task = self.task(parts, run_id, work)
            prepared.append(None if task is None else (task, self._hold(parts, task)))
        statuses: list[str] = []
        try:
            for item in prepared:
                statuses.append("duplicate" if item is None else self._run_held(app, parts, *item))
        finally:
            # Should the message end early (Celery's soft time limit), the runs it did not
            # reach are let go: their leases lapse and the reaper hands them back, instead
            # of the keeper renewing them for ever.
            for item in prepared[len(statuses) :]:
                if item is not None:
                    parts.keeper.release(item[1])
        return statuses

    def _run_held(self, app: Celery, parts: Parts, task: Task, held: Held) -> str:
        try:
            if held.finished:  # the keeper's claim was refused: another delivery has it
                return "duplicate"
            stage = self.registry.get(task.pipeline).node(task.claim.stage).stage
            outcome = self.loop().run_until_complete(
                run_attempt(stage, held.context, run_id=task.claim.id, threads=parts.threads)
            )
        finally:
            claimed = parts.keeper.release(held)
        self._hand_over(app, parts, Finished(outcome, tuple(held.take_reports()), None if claimed else task.claim))
        return outcome.status

    def _hold(self, parts: Parts, task: Task) -> Held:
        run = task.claim
        reports: list[ProgressReport] = []
        reports_lock = threading.Lock()

        def report(fraction: float, message: str | None) -> None:
            with reports_lock:
                reports.append(ProgressReport(run.id, run.job_id, run.stage, run.attempts, fraction, message))

        def take_reports() -> list[ProgressReport]:
            with reports_lock:
                taken = list(reports)
                reports.clear()
            return taken

        context = StageContext(
            job_id=run.job_id,
            stage=run.stage,
            attempt=run.attempts,
            input=task.input,
            outputs=task.outputs,
            report=report,
            files=parts.files,
            settings=self.settings,
            tenant=task.tenant,
            database=parts.database,
        )
        held = Held(run, context, take_reports)
        parts.keeper.hold(held)
        return held

    def _hand_over(self, app: Celery, parts: Parts, finished: Finished) -> None:
        coordinator, bus, handoff = parts.coordinator, parts.bus, parts.handoff
        try:
            handoff.push(finished)
        except redis.RedisError as error:
            # No broker to hand it over with: settle it here (the next stages cannot be
            # sent now either; the dispatcher sends them once Redis is back).
            log.warning("handoff.unavailable", extra={"error": str(error), "run_id": finished.outcome.run_id})
            settle_finished(app, self.registry, coordinator, bus, [finished])
