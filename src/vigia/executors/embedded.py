"""The embedded executor: stage runs on this process's asyncio loop and threads.

The job store is the queue: claims take ready stage runs per queue up to that queue's
concurrency, so work submitted by another process, retries that came due and stages left
behind by a killed process are all found the same way. One writer loop writes what has
gathered meanwhile (this process's submissions, finished attempts, progress) and claims for
the free slots, all in one transaction: a lone job costs a commit for its submission and
first claim and one for its outcome (shared with the next submission when one comes within
a moment), and under load the store's cost is paid per batch rather than per stage run.
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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.context import StageContext
from vigia.coordinator import Assignment, Coordinator, JobRequest, Settled, SlotOffer, Submitted, Written
from vigia.events import EventBus
from vigia.exceptions import StoreUnavailable, TransientConflict, VigiaError
from vigia.executors.isolated import ProcessPool
from vigia.job import Event, StageRun
from vigia.orchestrator import ProgressReport, StageOutcome
from vigia.runner import clean_text, run_attempt
from vigia.store.database import Database

log = logging.getLogger("vigia.embedded")

T = TypeVar("T")

#: Pause before trying the store again after it failed.
STORE_RETRY_DELAY = 1.0
#: How long the writer lets news accumulate before writing what needs no haste.
WRITE_COALESCE_SECONDS = 0.002
#: Writes tried after `stop` before what is left is given up to the reaper.
CLOSING_ATTEMPTS = 3


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
        #: Whether other stages depend on a (pipeline, stage), as learnt (see `_leads_on`).
        self._successors: dict[tuple[str, str], bool] = {}
        #: Queues whose last claim may have left ready runs waiting (see `_adopt`).
        self._held_back: set[str] = set()
        self._outcomes: list[StageOutcome] = []
        self._reports: list[ProgressReport] = []
        self._submissions: list[tuple[JobRequest, asyncio.Future[Submitted | VigiaError]]] = []
        #: The next write should claim even if it makes nothing ready itself.
        self._claim_wanted = True
        #: Something waits to be written; `_urgent`: without waiting for more to join it.
        self._pending = asyncio.Event()
        self._urgent = asyncio.Event()
        #: Held by the writer loop while it writes: `stop` waits for a claim in flight.
        self._writing = asyncio.Lock()
        #: The writer loop has ended: submissions go elsewhere (see `submit`).
        self._closed = False
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
            asyncio.create_task(self._write_loop(), name="vigia-writer"),
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
        writer, leases, reaper = self._tasks
        await asyncio.gather(reaper, return_exceptions=True)
        async with self._writing:
            pass  # a claim in flight has started its stages: they are among those waited for
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
        self._wake_writer(urgent=True)
        await asyncio.gather(writer, leases, return_exceptions=True)
        if self._owns_db:
            self._db.shutdown(wait=True)
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._process_pool is not None:
            self._process_pool.close()
        log.info("executor.stopped", extra={"owner": self.owner})

    def wake(self, queues: Iterable[str] = ()) -> None:
        self._claim_wanted = True
        self._wake_writer(urgent=True)

    async def submit(self, request: JobRequest) -> Submitted | VigiaError | None:
        """Store a submission with the next write, which also claims its first stage when a
        slot is free; None once this executor has stopped writing (store it elsewhere)."""
        if self._closed:
            return None
        future: asyncio.Future[Submitted | VigiaError] = asyncio.get_running_loop().create_future()
        self._submissions.append((request, future))
        self._wake_writer(urgent=True)
        return await future

    def job_cancelled(self, job_id: str) -> None:
        for item in self._inflight.values():
            if item.assignment.job.id == job_id:
                item.context.cancel()

    @property
    def running(self) -> int:
        return len(self._inflight)

    # --- the writer loop ----------------------------------------------------------------

    def _wake_writer(self, *, urgent: bool) -> None:
        self._pending.set()
        if urgent:
            self._urgent.set()

    def _alone(self) -> bool:
        """Little to write, and no slot freed where runs were left waiting."""
        return len(self._outcomes) + len(self._reports) <= 1 and not (self._claim_wanted and self._held_back)

    def _has_writes(self) -> bool:
        return bool(self._submissions or self._outcomes or self._reports)

    async def _write_loop(self) -> None:
        failures = 0
        while True:
            if self._closing and (not self._has_writes() or failures >= CLOSING_ATTEMPTS):
                self._closed = True  # no await since the check: nothing was added meanwhile
                for _, future in self._submissions:
                    future.set_exception(StoreUnavailable("the executor stopped before storing this job"))
                self._submissions = []
                return
            if not self._pending.is_set() and not await _set_within(self._pending, self.poll_interval):
                # Retries that came due, work of other processes, runs left by a killed one.
                self._claim_wanted = True
            if self._closing:
                pass  # write what is left at once
            elif not self._urgent.is_set() and self._alone():
                # A lone outcome or progress report waits a moment for company (a submission
                # to share the commit with, say). Under a backlog there is company enough:
                # the write goes at once.
                await _set_within(self._urgent, WRITE_COALESCE_SECONDS)
            elif self._urgent.is_set() and self._claim_wanted and not self._has_writes():
                # A wake (a retry, a batch submitted): news rarely comes alone, and a moment's
                # pause lets one claim take it all.
                await asyncio.sleep(WRITE_COALESCE_SECONDS)
            self._pending.clear()
            self._urgent.clear()
            async with self._writing:
                failures = 0 if await self._write_once() else failures + 1
            if failures:
                await asyncio.sleep(0 if self._closing else STORE_RETRY_DELAY)

    async def _write_once(self) -> bool:
        """Write what has gathered and claim for the free slots; False if the store failed
        (what was gathered is kept for the next attempt, submissions are told)."""
        submissions, self._submissions = self._submissions, []
        outcomes, self._outcomes = self._outcomes, []
        reports, self._reports = self._reports, []
        eager, self._claim_wanted = self._claim_wanted, False
        free = {} if self._stopping else self._free_slots()
        offer = SlotOffer(free, self.owner, self.lease_seconds, eager=eager) if free else None
        if not submissions and not outcomes and not reports and (offer is None or not eager):
            return True  # nothing to write, and no claim asked for
        requests = [request for request, _ in submissions]
        try:
            written = await self._store(self.coordinator.write, requests, outcomes, reports, offer)
        except (StoreUnavailable, TransientConflict) as error:
            log.error("write.failed", extra={"error": str(error)})
            # Nothing is dropped: put it back and try again (a submitter hears of it and
            # may submit again: its job was not stored).
            self._outcomes[:0] = outcomes
            self._reports[:0] = reports
            self._claim_wanted = self._claim_wanted or eager or bool(requests)
            self._fail_submissions(submissions, error)
            self._wake_writer(urgent=True)  # again after the pause, not at the next poll
            return False
        except Exception as error:
            # Something in this batch is refused (by the store, or trips a bug of ours);
            # retrying it whole would fail for ever and stop every job: go item by item.
            log.error("write.refused", extra={"error": str(error), "error_type": type(error).__name__})
            written = await self._write_separately(submissions, outcomes, reports, offer)
        else:
            for (_, future), result in zip(submissions, written.submitted, strict=True):
                if not future.done():
                    future.set_result(result)
        self.completed += len(outcomes)
        self._record(written, free)
        return True

    def _record(self, written: Written, free: Mapping[str, int]) -> None:
        created = [item for item in written.submitted if isinstance(item, Submitted) and item.created]
        # In the order they were written: the submissions' events, then what followed.
        self._publish([event for item in created for event in item.events])
        self._publish(written.settled.events)
        claimed = written.claimed
        if claimed is not None:
            self._publish(claimed.events)
        self._adopt(free, claimed.queues if claimed else (), claimed.assignments if claimed else [])

    def _fail_submissions(
        self, submissions: list[tuple[JobRequest, asyncio.Future[Submitted | VigiaError]]], error: BaseException
    ) -> None:
        for _, future in submissions:
            if not future.done():
                future.set_exception(error)

    async def _write_separately(
        self,
        submissions: list[tuple[JobRequest, asyncio.Future[Submitted | VigiaError]]],
        outcomes: list[StageOutcome],
        reports: list[ProgressReport],
        offer: SlotOffer | None,
    ) -> Written:
        """After a refused write: the submissions with the claim, then each outcome alone."""
        written = Written([], Settled(), None)
        if submissions or offer is not None:
            try:
                written = await self._store(
                    self.coordinator.write, [request for request, _ in submissions], (), (), offer
                )
            except Exception as error:
                self._fail_submissions(submissions, error)
                self._claim_wanted = True
            else:
                for (_, future), result in zip(submissions, written.submitted, strict=True):
                    if not future.done():
                        future.set_result(result)
        settled = await self._settle_one_by_one(outcomes, reports)
        written.settled.events += settled.events
        written.settled.ready += settled.ready
        if settled.ready:
            self.wake()  # claimed by the next write
        return written

    def _free_slots(self) -> dict[str, int]:
        return {queue: cap - self._busy[queue] for queue, cap in self.capacity.items() if cap > self._busy[queue]}

    def _adopt(self, free: Mapping[str, int], claimed_on: Iterable[str], assignments: list[Assignment]) -> None:
        """Start what a claim took and note the queues where ready runs may have been left
        waiting for a slot: every queue with no free slot, each queue claimed on whose
        claim filled every free slot, and all of them under a tenant cap (the cap, not the
        slots, may have held runs back). A slot freed on another queue needs no claim:
        whatever becomes ready is claimed by the write that makes it so."""
        for assignment in assignments:
            self._start(assignment)
        if self.coordinator.tenant_cap is not None:
            self._held_back = set(self.capacity)
            return
        taken = Counter(assignment.run.queue for assignment in assignments)
        for queue in claimed_on:
            if taken[queue] >= free.get(queue, 0):
                self._held_back.add(queue)
            else:
                self._held_back.discard(queue)
        self._held_back |= {queue for queue in self.capacity if free.get(queue, 0) == 0}

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
            if run.queue in self._held_back:
                self._claim_wanted = True  # a slot is free for what the last claim left waiting
        self._outcomes.append(outcome)
        # An outcome that other stages wait for is written at once; one that only ends its
        # job may wait a moment for company.
        self._wake_writer(urgent=self._leads_on(assignment.job.pipeline, run.stage))

    def _leads_on(self, pipeline_name: str, stage: str) -> bool:
        """Whether any stage of the pipeline depends on ``stage``."""
        key = (pipeline_name, stage)
        leads = self._successors.get(key)
        if leads is None:
            try:
                nodes = self.coordinator.registry.get(pipeline_name).nodes.values()
            except VigiaError:
                return False
            leads = self._successors[key] = any(stage in node.depends_on for node in nodes)
        return leads

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
        self._wake_writer(urgent=False)

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
            self._wake_writer(urgent=False)
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
                    self.wake()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), max(self.lease_seconds / 2, self.poll_interval))

    # --- helpers ------------------------------------------------------------------------

    async def _store(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    def _publish(self, events: list[Event]) -> None:
        if events:
            self.bus.publish(events)


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` up to ``seconds``; whether it was set. A deadline on this task
    rather than `asyncio.wait_for`, which would start a task of its own each time."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
