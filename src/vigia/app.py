"""The Vigía application object: the Python API, usable without HTTP.

app = Vigia.from_settings(Settings.from_env(), pipelines=[my_pipeline])
async with app:
    job = await app.submit("my_pipeline", {"text": "..."})
    async for event in app.events(job.id):
        print(event.progress, event.stage)
    job = await app.wait(job.id)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar

from vigia import constants, wiring
from vigia.config import Settings
from vigia.coordinator import SYSTEM_ACTOR, JobRequest, Settled, Submitted
from vigia.escalation import Review, ReviewStatus
from vigia.events import RedisEventBus
from vigia.exceptions import VigiaError
from vigia.executors.base import Executor
from vigia.executors.embedded import EmbeddedExecutor
from vigia.job import Event, Job, StageRun
from vigia.pipeline import Pipeline
from vigia.store.base import Batch, DeadFilter, DeadJob, JobFilter, JobPage, ReviewFilter
from vigia.watch import Watch
from vigia.wiring import Parts

log = logging.getLogger("vigia.app")

T = TypeVar("T")


class Vigia:
    """An installation's parts (see `vigia.wiring`) behind the calls a program makes."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.registry = parts.registry
        self.database = parts.database
        self.store = parts.store
        self.coordinator = parts.coordinator
        self.oversight = parts.oversight
        self.keys = parts.keys
        self.documents = parts.documents
        self.bus = parts.bus
        self.blobs = parts.blobs
        self.executor: Executor | None = None
        self._watch: Watch | None = None
        self._watching: asyncio.Task[None] | None = None
        self._watch_stop = asyncio.Event()
        self._maintenance: asyncio.Task[None] | None = None
        # Every write of this process goes through one thread: writes to the store are
        # serialised anyway (SQLite has one writer), and one thread spares the others the
        # lock handoffs and the interpreter-lock convoys of many.
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="vigia-writes")
        self._pending_submissions: list[tuple[JobRequest, asyncio.Future[Submitted | VigiaError]]] = []
        self._submission_writer: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, pipelines: Iterable[Pipeline] = (), upgrade: bool | None = None
    ) -> Self:
        """Build the app: pipelines given here, plus those named in settings and installed.

        ``upgrade`` brings the store's schema up to date; by default only for a local SQLite
        store (a shared database is upgraded on purpose, with `vigia db upgrade`).
        """
        return cls(wiring.build(settings or Settings.from_env(), pipelines, upgrade=upgrade))

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, *, workers: bool = True, watch: bool = False) -> None:
        """Check the store and, with ``workers``, start executing stages in this process;
        with ``watch``, evaluate the alert rules every `monitor_interval` (a server does)."""
        await asyncio.to_thread(self.database.check)
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(self.database.keep_wal_short(), name="vigia-checkpoint")
        if workers and self.executor is None:
            self.executor = wiring.executor_for(self.parts, writes=self._writes)
            await self.executor.start()
        if watch and self._watching is None:
            # After the executor: the first check must see this process's own workers.
            self._watch_stop.clear()
            self._watching = asyncio.create_task(self.watch.run(self._watch_stop), name="vigia-watch")

    async def stop(self) -> None:
        if self._watching is not None:
            self._watch_stop.set()
            await asyncio.gather(self._watching, return_exceptions=True)
            self._watching = None
        if self.executor is not None:
            await self.executor.stop()
            self.executor = None
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        if isinstance(self.bus, RedisEventBus):
            await self.bus.aclose()

    def close(self) -> None:
        self._writes.shutdown(wait=True)
        self.database.close()

    async def _write(self, function: Callable[..., T], *args: Any, **options: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._writes, functools.partial(function, *args, **options)
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        self.close()

    # --- jobs ---------------------------------------------------------------------------

    async def submit(
        self,
        pipeline: str,
        job_input: Any = None,
        *,
        tenant: str = constants.DEFAULT_TENANT,
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> Job:
        """Store a new job and return it at once (the same job again for a repeated key)."""
        submitted = await self.submit_job(
            pipeline, job_input, tenant=tenant, idempotency_key=idempotency_key, priority=priority
        )
        return submitted.job

    async def submit_job(
        self,
        pipeline: str,
        job_input: Any = None,
        *,
        tenant: str = constants.DEFAULT_TENANT,
        idempotency_key: str | None = None,
        priority: int = 0,
        actor: str = SYSTEM_ACTOR,
    ) -> Submitted:
        """Like `submit`, saying also whether the job is new or an idempotent repeat.

        Submissions that arrive while the store is busy are written together, in one
        transaction, when it is free: under load, one commit serves many callers."""
        request = JobRequest(pipeline, job_input, tenant, idempotency_key, priority, actor)
        outcome: Submitted | VigiaError | None = None
        if isinstance(self.executor, EmbeddedExecutor):
            # With the executor's next write, which also claims the job's first stage.
            outcome = await self.executor.submit(request)
        if outcome is None:
            future: asyncio.Future[Submitted | VigiaError] = asyncio.get_running_loop().create_future()
            self._pending_submissions.append((request, future))
            if self._submission_writer is None:
                self._submission_writer = asyncio.create_task(self._write_submissions())
            outcome = await future
        if isinstance(outcome, VigiaError):
            raise outcome
        return outcome

    async def _write_submissions(self) -> None:
        try:
            while self._pending_submissions:
                batch, self._pending_submissions = self._pending_submissions, []
                try:
                    outcomes = await self._write(self.coordinator.submit_many, [request for request, _ in batch])
                except BaseException as error:  # the store failed: every caller in the batch hears it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                created = [outcome for outcome in outcomes if isinstance(outcome, Submitted) and outcome.created]
                self.bus.publish([event for outcome in created for event in outcome.events])
                if created and self.executor is not None:
                    self.executor.wake()
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._submission_writer = None

    async def submit_batch(
        self,
        pipeline: str,
        inputs: Sequence[Any],
        *,
        tenant: str = constants.DEFAULT_TENANT,
        priority: int = 0,
        actor: str = SYSTEM_ACTOR,
    ) -> tuple[str, list[Job]]:
        """Store many jobs of one pipeline at once (all or none); returns the batch id and jobs."""
        batch_id, submitted = await self._write(
            self.coordinator.submit_batch, pipeline, inputs, tenant=tenant, priority=priority, actor=actor
        )
        self.bus.publish([event for item in submitted for event in item.events])
        if self.executor is not None:
            self.executor.wake()
        return batch_id, [item.job for item in submitted]

    async def get_batch(self, batch_id: str, tenant: str | None = None) -> Batch:
        return await asyncio.to_thread(self.store.get_batch, batch_id, tenant)

    async def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        return await asyncio.to_thread(self.store.get_job, job_id, tenant)

    async def tenant_of(self, job_id: str) -> str | None:
        return await asyncio.to_thread(self.store.tenant_of, job_id)

    async def get_runs(self, job_id: str) -> list[StageRun]:
        return await asyncio.to_thread(self.store.get_runs, job_id)

    async def list_jobs(self, where: JobFilter | None = None, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        return await asyncio.to_thread(self.store.list_jobs, where or JobFilter(), limit, cursor)

    async def cancel(self, job_id: str, tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> Job:
        job, events = await self._write(self.coordinator.cancel, job_id, tenant, actor)
        self.bus.publish(events)
        if self.executor is not None:
            self.executor.job_cancelled(job_id)
        return job

    # --- the dead-letter queue and human review -----------------------------------------

    async def retry(self, job_id: str, tenant: str | None = None, actor: str = SYSTEM_ACTOR) -> Job:
        """Take a dead or failed job out of the dead-letter queue: it resumes from the stage
        that failed, keeping earlier outputs."""
        await self.get_job(job_id, tenant)  # JobNotFound for another tenant's job
        self._settled(await self._write(self.coordinator.retry, [job_id], tenant, actor))
        return await self.get_job(job_id, tenant)

    async def retry_dead(self, where: DeadFilter, actor: str = SYSTEM_ACTOR) -> int:
        """Retry every dead job ``where`` selects; how many."""
        settled = await self._write(self.coordinator.retry_dead, where, actor)
        self._settled(settled)
        return len({event.job_id for event in settled.events})

    async def purge_dead(self, where: DeadFilter, actor: str = SYSTEM_ACTOR) -> int:
        return await self._write(self.coordinator.purge_dead, where, actor)

    async def list_dead(self, where: DeadFilter, *, limit: int = 50, cursor: str | None = None) -> list[DeadJob]:
        return await asyncio.to_thread(self.oversight.list_dead, where, limit, cursor)

    async def dlq_statistics(self, where: DeadFilter) -> dict[str, Any]:
        return await asyncio.to_thread(self.oversight.dlq_statistics, where)

    async def list_reviews(self, where: ReviewFilter, *, limit: int = 50, cursor: str | None = None) -> list[Review]:
        return await asyncio.to_thread(self.oversight.list_reviews, where, limit, cursor)

    async def reviews_of(self, job_ids: Sequence[str]) -> dict[str, list[Review]]:
        return await asyncio.to_thread(self.oversight.reviews_of, job_ids)

    async def review(
        self, review_id: str, status: ReviewStatus, actor: str, *, tenant: str | None = None, note: str | None = None
    ) -> Review:
        """Acknowledge or resolve a human-review item."""
        return await self._write(self.coordinator.review, review_id, status, actor, tenant=tenant, note=note)

    def _settled(self, settled: Settled) -> None:
        self.bus.publish(settled.events)
        if self.executor is not None and (settled.ready or settled.notifications):
            self.executor.wake()

    # --- watching -------------------------------------------------------------------------

    @property
    def watch(self) -> Watch:
        """Monitoring facts and alert rules over this installation."""
        if self._watch is None:
            self._watch = wiring.watch_for(self.parts, lambda: self.executor)
        return self._watch

    async def events(
        self, job_id: str, after: int = 0, *, follow: bool = True, poll: float | None = None
    ) -> AsyncIterator[Event]:
        """The job's events after sequence number ``after``: first those stored, then live
        ones as they happen, until the job finishes (or only the stored ones without
        ``follow``). Nothing is skipped or repeated, whatever the bus drops.

        Live events come from this process's bus; after ``poll`` seconds without one the
        store is read again, which is how events written by other processes arrive."""
        quiet = poll if poll is not None else self.settings.poll_interval * 4
        subscription = self.bus.subscribe(job_id) if follow else None
        try:
            last = after
            finished = False
            for event in await asyncio.to_thread(self.store.events_after, job_id, last, 1_000_000):
                yield event
                last = event.seq
                finished = finished or event.is_final
            if subscription is None or finished:
                return
            job = await self.get_job(job_id)
            if job.state.is_terminal and job.last_seq <= last:
                return
            while True:
                event_or_none = await subscription.get(timeout=quiet)
                if event_or_none is not None and event_or_none.seq == last + 1 and not subscription.overflowed:
                    news: Sequence[Event] = [event_or_none]
                elif event_or_none is not None and event_or_none.seq <= last:
                    continue
                else:
                    # A gap, an overflow or a quiet spell: the store has the full story.
                    subscription.overflowed = False
                    subscription.drain()
                    news = await asyncio.to_thread(self.store.events_after, job_id, last, 1_000_000)
                    if not news:
                        # Nothing after `last`: if the job has ended, nothing ever will be
                        # (a client may resume from beyond the job's final event).
                        job = await self.get_job(job_id)
                        if job.state.is_terminal and job.last_seq <= last:
                            return
                for event in news:
                    yield event
                    last = event.seq
                    if event.is_final:
                        return
        finally:
            if subscription is not None:
                subscription.close()

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job has finished, and return it."""

        async def until_finished() -> Job:
            async for _ in self.events(job_id):
                pass
            return await self.get_job(job_id)

        return await asyncio.wait_for(until_finished(), timeout)
