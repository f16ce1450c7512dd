"""The embedded executor: stage runs on this process's asyncio loop and threads.

The job store is the queue: the dispatcher claims ready stage runs per queue up to that
queue's concurrency, so work submitted by another process, retries that came due and
stages left behind by a killed process are all found the same way. Everything a stage
reports goes through one settle loop that writes what has accumulated in a single
transaction, so the store's cost is paid per batch rather than per stage run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.context import StageContext
from vigia.coordinator import Assignment, Coordinator, Settled
from vigia.events import EventBus
from vigia.exceptions import StoreUnavailable, TransientConflict
from vigia.executors.isolated import ProcessPool
from vigia.job import Event, StageRun
from vigia.orchestrator import ProgressReport, StageOutcome
from vigia.runner import clean_text, run_attempt
from vigia.store.database import Database

log = logging.getLogger("vigia.embedded")

T = TypeVar("T")

#: Pause before trying the store again after it failed.
STORE_RETRY_DELAY = 1.0
#: How long the dispatcher lets news accumulate before claiming.
CLAIM_COALESCE_SECONDS = 0.002


def worker_id(kind: str = "embedded") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class _Inflight:
    assignment: Assignment
    context: StageContext
    task: asyncio.Task[None]


class EmbeddedExecutor:
    def __init__(
        self,
        coordinator: Coordinator,
        bus: EventBus,
        *,
        queues: Mapping[str, int],
        lease_seconds: float,
        poll_interval: float,
        shutdown_grace: float,
        owner: str | None = None,
        writes: ThreadPoolExecutor | None = None,
        files: BlobStore | None = None,
        settings: Settings | None = None,
        database: Database | None = None,
    ) -> None:
        self.coordinator = coordinator
        #: Handed to every stage (its context's ``files`` and ``settings``).
        self.files = files
        self.settings = settings
        self.database = database
        self.bus = bus
        self.capacity = dict(queues)
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.owner = owner or worker_id()
        # Store calls are serialised on one thread (the app's writer thread when given):
        # SQLite has one writer anyway, and one thread keeps the order of claims and
        # settlements simple to reason about.
        self._owns_db = writes is None
        self._db = writes or ThreadPoolExecutor(1, thread_name_prefix="vigia-store")
        # Each slot can hold a thread, plus room for abandoned (timed-out) sync stages.
        self._threads = ThreadPoolExecutor(2 * sum(self.capacity.values()) + 4, thread_name_prefix="vigia-stage")
        #: Children for `run_in="process"` stages, started on first use (most never need one).
        self._process_pool: ProcessPool | None = None
        self._inflight: dict[int, _Inflight] = {}
        self._busy: dict[str, int] = dict.fromkeys(self.capacity, 0)
        self._outcomes: list[StageOutcome] = []
        self._reports: list[ProgressReport] = []
        self._wake = asyncio.Event()
        self._pending = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Stage runs finished by this executor (monitoring and benchmarks read it).
        self.completed = 0

    def consumers(self) -> dict[str, list[str]]:
        """The queues this executor works on, with its name (for monitoring), while running."""
        if self._loop is None or self._stopping:
            return {}
        return {queue: [self.owner] for queue in self.capacity}

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="vigia-dispatch"),
            asyncio.create_task(self._settle_loop(), name="vigia-settle"),
            asyncio.create_task(self._lease_loop(), name="vigia-leases"),
            asyncio.create_task(self._reap_loop(), name="vigia-reaper"),
        ]
        log.info("executor.started", extra={"owner": self.owner, "queues": self.capacity})

    async def stop(self) -> None:
        if self._stopping:
            return
        # Loops finish the store call they are in rather than being cancelled in the middle
        # of it: a cancelled claim or settlement could have committed with nobody to act on it.
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        dispatcher, settler, leases, reaper = self._tasks
        await asyncio.gather(dispatcher, reaper, return_exceptions=True)
        running = [item.task for item in self._inflight.values()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.shutdown_grace)
            for item in list(self._inflight.values()):
                if item.task in late:
                    item.context.cancel()
                    item.task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)
        leases.cancel()
        # Record what is left (stopped stages are handed back) so a restart need not wait
        # for their leases to expire; if the store is down, the reaper recovers them later.
        self._closing = True
        self._pending.set()
        await asyncio.gather(settler, leases, return_exceptions=True)
        if self._owns_db:
            self._db.shutdown(wait=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._process_pool is not None:
            self._process_pool.close()
        log.info("executor.stopped", extra={"owner": self.owner})

    def wake(self, queues: Iterable[str] = ()) -> None:
        self._wake.set()

    def job_cancelled(self, job_id: str) -> None:
        for item in self._inflight.values():
            if item.assignment.job.id == job_id:
                item.context.cancel()

    @property
    def running(self) -> int:
        return len(self._inflight)

    # --- the loops ----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            free = {queue: cap - self._busy[queue] for queue, cap in self.capacity.items() if cap > self._busy[queue]}
            self._wake.clear()
            if free:
                try:
                    assignments, events = await self._store(
                        self.coordinator.claim, free, self.owner, self.lease_seconds
                    )
                except Exception as error:  # keep dispatching whatever one claim ran into
                    log.error("claim.failed", extra={"error": str(error), "error_type": type(error).__name__})
                    await asyncio.sleep(STORE_RETRY_DELAY)
                    continue
                self._publish(events)
                for assignment in assignments:
                    self._start(assignment)
                if assignments and any(self._busy[q] < self.capacity[q] for q in self.capacity):
                    continue  # stages finished meanwhile, or more became ready: look again now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            # News rarely comes alone (a burst of submissions, a batch of finished stages):
            # a moment's pause lets one claim take them all instead of one transaction each.
            await asyncio.sleep(CLAIM_COALESCE_SECONDS)

    def _start(self, assignment: Assignment) -> None:
        run = assignment.run
        context = StageContext(
            job_id=run.job_id,
            stage=run.stage,
            attempt=run.attempts,
            input=assignment.job.input,
            outputs=assignment.outputs,
            report=self._reporter(run.id, run.job_id, run.stage, run.attempts),
            files=self.files,
            settings=self.settings,
            tenant=assignment.job.tenant,
            database=self.database,
        )
        self._busy[run.queue] += 1
        task = asyncio.create_task(self._execute(assignment, context), name=f"vigia-stage-{run.id}")
        self._inflight[run.id] = _Inflight(assignment, context, task)

    def _processes(self) -> ProcessPool:
        if self._process_pool is None:
            self._process_pool = ProcessPool(max(self.capacity.values(), default=1))
        return self._process_pool

    async def _execute(self, assignment: Assignment, context: StageContext) -> None:
        run = assignment.run
        outcome: StageOutcome
        try:
            stage = self.coordinator.registry.get(assignment.job.pipeline).node(run.stage).stage
            processes = self._processes() if stage.run_in == "process" else None
            outcome = await run_attempt(stage, context, run_id=run.id, threads=self._threads, processes=processes)
        except asyncio.CancelledError:
            outcome = self._outcome_without_result(run, "cancelled")
        except Exception as error:  # not the stage's failure (run_attempt catches those): ours
            log.exception("stage.execution_failed", extra={"job_id": run.job_id, "stage": run.stage})
            outcome = dataclasses.replace(
                self._outcome_without_result(run, "failed"),
                error_type=type(error).__name__,
                error_message="the executor failed to run this stage",
                retryable=True,
            )
        finally:
            # Only our own entry: a newer attempt of the same run may be in flight by now.
            item = self._inflight.get(run.id)
            if item is not None and item.context is context:
                del self._inflight[run.id]
            self._busy[run.queue] -= 1
            self._wake.set()
        self._outcomes.append(outcome)
        self._pending.set()

    @staticmethod
    def _outcome_without_result(run: StageRun, status: Any) -> StageOutcome:
        return StageOutcome(
            run_id=run.id,
            job_id=run.job_id,
            stage=run.stage,
            attempt=run.attempts,
            status=status,
            started_at=run.started_at or time.time(),
            finished_at=time.time(),
        )

    def _reporter(self, run_id: int, job_id: str, stage: str, attempt: int) -> Callable[[float, str | None], None]:
        loop = self._loop
        assert loop is not None

        def report(fraction: float, message: str | None) -> None:
            item = ProgressReport(run_id, job_id, stage, attempt, fraction, message)
            if _on_loop(loop):
                self._add_report(item)
            else:
                loop.call_soon_threadsafe(self._add_report, item)

        return report

    def _add_report(self, report: ProgressReport) -> None:
        self._reports.append(report)
        self._pending.set()

    async def _settle_loop(self) -> None:
        while not self._closing:
            await self._pending.wait()
            self._pending.clear()
            await self._settle_pending(attempts=3 if self._closing else None)
        await self._settle_pending(attempts=3)

    async def _settle_pending(self, attempts: int | None = None) -> None:
        failures = 0
        while self._outcomes or self._reports:
            outcomes, self._outcomes = self._outcomes, []
            reports, self._reports = self._reports, []
            try:
                settled = await self._store(self.coordinator.settle, outcomes, reports)
            except (StoreUnavailable, TransientConflict) as error:
                # Nothing is dropped: put it back and try again.
                log.error("settle.failed", extra={"error": str(error)})
                self._outcomes[:0] = outcomes
                self._reports[:0] = reports
                failures += 1
                if (attempts is not None or self._closing) and failures >= (attempts or 3):
                    return  # stopping with the store down: the reaper recovers these runs later
                await asyncio.sleep(STORE_RETRY_DELAY)
                continue
            except Exception as error:
                # Something in this batch is refused (by the store, or trips a bug of ours);
                # retrying it whole would fail for ever and stop every job: go item by item.
                log.error("settle.refused", extra={"error": str(error), "error_type": type(error).__name__})
                settled = await self._settle_one_by_one(outcomes, reports)
            self.completed += len(outcomes)
            self._publish(settled.events)
            if settled.ready:
                self._wake.set()

    async def _settle_one_by_one(self, outcomes: list[StageOutcome], reports: list[ProgressReport]) -> Settled:
        total = Settled()
        for report in reports:
            with contextlib.suppress(Exception):  # a progress report is not worth a stuck job
                total.events += (await self._store(self.coordinator.settle, [], [report])).events
        for outcome in outcomes:
            try:
                settled = await self._store(self.coordinator.settle, [outcome], [])
            except (StoreUnavailable, TransientConflict):
                self._outcomes.append(outcome)
                continue
            except Exception as error:
                # Record the attempt as failed for good, without what the store refused.
                refused = dataclasses.replace(
                    outcome,
                    status="failed",
                    output=None,
                    error_type="StoreRefused",
                    error_message=clean_text(f"the job store refused this stage's result: {error}", 500),
                    retryable=False,
                )
                try:
                    settled = await self._store(self.coordinator.settle, [refused], [])
                except Exception:
                    log.error("settle.dropped", extra={"job_id": outcome.job_id, "stage": outcome.stage})
                    continue  # its lease expires and the reaper takes the stage run back
            total.events += settled.events
            total.ready += settled.ready
        if self._outcomes:
            self._pending.set()
        return total

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not self._inflight:
                continue
            try:
                lost, cancelled = await self._store(
                    self.coordinator.store.renew_leases,
                    list(self._inflight),
                    self.owner,
                    time.time() + self.lease_seconds,
                )
            except Exception as error:
                log.error("lease.renew_failed", extra={"error": str(error), "error_type": type(error).__name__})
                continue
            for run_id in lost | cancelled:
                item = self._inflight.get(run_id)
                if item is not None:
                    item.context.cancel()

    async def _reap_loop(self) -> None:
        while not self._stopping:
            try:
                settled = await self._store(self.coordinator.reap)
            except Exception as error:
                log.error("reap.failed", extra={"error": str(error), "error_type": type(error).__name__})
            else:
                self._publish(settled.events)
                if settled.ready or settled.events:
                    self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), max(self.lease_seconds / 2, self.poll_interval))

    # --- helpers ------------------------------------------------------------------------

    async def _store(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    def _publish(self, events: list[Event]) -> None:
        if events:
            self.bus.publish(events)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
