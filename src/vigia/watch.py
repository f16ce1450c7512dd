"""Watching a running installation: the facts monitoring shows, and the alert rules
evaluated over them, persisted, and notified once per incident.

The rules and the rendering are pure (`vigia.monitoring`); this module gathers the facts
from the job store and, in distributed mode, from the broker and the workers, and acts on
what the rules decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigia import monitoring, retention, scaling, trends
from vigia.anchors import HEAD, RETENTION, AnchorFile, Checkpoint
from vigia.audit import AuditDraft
from vigia.blobs import BlobStore
from vigia.config import Settings
from vigia.coordinator import Coordinator
from vigia.escalation import Urgency
from vigia.exceptions import VigiaError
from vigia.expiry import Expiry
from vigia.monitoring import Alert, AlertSeverity, Evaluation, QueueFacts, Snapshot, Thresholds
from vigia.registry import Registry
from vigia.scaling import Advice
from vigia.store.history import HistoryStore
from vigia.store.oversight import OversightStore

log = logging.getLogger("vigia.watch")

#: The window of throughput, failure rate and processing times.
WINDOW_SECONDS = 3600.0
#: Audit retention runs at most this often.
PRUNE_INTERVAL = 24 * 3600.0

#: Who consumes which queue: the executor of this process, or Celery's workers.
ConsumersSource = Callable[[], dict[str, list[str]]]


def thresholds_of(settings: Settings) -> Thresholds:
    return Thresholds(
        queue_depth=settings.alert_queue_depth,
        queue_depth_seconds=settings.alert_queue_depth_seconds,
        failure_rate=settings.alert_failure_rate,
        failure_min_jobs=settings.alert_failure_min_jobs,
        p95_seconds=settings.alert_p95_seconds,
    )


@dataclass(frozen=True, slots=True)
class Observation:
    snapshot: Snapshot
    evaluation: Evaluation

    @property
    def health(self) -> monitoring.Health:
        return monitoring.health(self.evaluation.active)

    def status(self) -> dict[str, object]:
        return monitoring.status_document(self.snapshot, self.evaluation.active)

    def metrics(self) -> bytes:
        return monitoring.render_metrics(self.snapshot, self.evaluation.active)


class Watch:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        coordinator: Coordinator,
        facts: OversightStore,
        consumers: ConsumersSource,
        *,
        history: HistoryStore | None = None,
        anchors: AnchorFile | None = None,
        sees_workers: Callable[[], bool] = lambda: True,
        blobs: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.coordinator = coordinator
        self.facts = facts
        self.consumers = consumers
        #: Where each check's queue depths are kept for the charts (none: not kept).
        self.history = history
        #: Where the audit chain's signed checkpoints go (none: not kept).
        self.anchors = anchors
        self._checkpointed: int | None = None
        #: False where the workers cannot be seen from here (an embedded store read by a
        #: process without workers): then no queue is required, rather than all of them
        #: reported as unserved.
        self.sees_workers = sees_workers
        self.thresholds = thresholds_of(settings)
        self._last_prune = 0.0
        #: Where the files retention deletes live (none: jobs are not purged from here).
        self.blobs = blobs

    @property
    def required_queues(self) -> tuple[str, ...]:
        return tuple(self.settings.required_queues or self.registry.queues)

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = time.time() if now is None else now
        consumed = self.consumers()
        depths = self.facts.claimable_depths(now)
        names = list(dict.fromkeys([*self.required_queues, *self.registry.queues, *depths]))
        finished, failed, times = self.facts.finished_since(now - WINDOW_SECONDS)
        dead, waiting, undelivered = self.facts.counts()
        return Snapshot(
            at=now,
            window_seconds=WINDOW_SECONDS,
            queues=tuple(
                QueueFacts(name, depths.get(name, 0), tuple(sorted(consumed.get(name, [])))) for name in names
            ),
            required_queues=self.required_queues if self.sees_workers() else (),
            finished=finished,
            failed=failed,
            times=tuple(times),
            jobs_by_outcome=self.facts.jobs_by_outcome(),
            stage_durations=tuple(self.facts.stage_durations()),
            dlq_size=dead,
            open_reviews=waiting,
            notifications_failed=undelivered,
            workers=tuple(sorted({worker for workers in consumed.values() for worker in workers})),
            scaling=tuple(self.scaling(now)),
        )

    def scaling(self, now: float, *, window: float = WINDOW_SECONDS, target_wait: float | None = None) -> list[Advice]:
        """Per queue, the workers the load of the last ``window`` seconds needs for a mean
        wait within ``target_wait`` (default: `VIGIA_SCALE_TARGET_WAIT`)."""
        wait = self.settings.scale_target_wait if target_wait is None else target_wait
        loads = {load.queue: load for load in self.facts.queue_loads(now - window, now)}
        return [
            scaling.advise(
                loads.get(queue) or scaling.QueueLoad(queue, 0, 0, None, window),
                target_wait_seconds=wait,
                slots_per_worker=self.settings.concurrency_for(queue),
            )
            for queue in dict.fromkeys([*self.registry.queues, *loads])
        ]

    def observe(self, now: float | None = None) -> Observation:
        """The facts and the alert rules over them, without acting on them (a read)."""
        snapshot = self.snapshot(now)
        return Observation(snapshot, monitoring.evaluate(snapshot, self.thresholds, self.facts.active_alerts()))

    def check(self, now: float | None = None) -> Observation:
        """Observe, keep the alert states, and notify the alerts that started or ended."""
        observation = self.observe(now)
        evaluation = observation.evaluation
        self.facts.save_alerts(evaluation.active, evaluation.started)
        if self.history is not None:
            self.history.record(observation.snapshot.at, observation.snapshot.queues)
        self.checkpoint(observation.snapshot.at)
        for alert in evaluation.started:
            self._tell(alert, started=True)
        for alert in evaluation.resolved:
            self._tell(alert, started=False)
        self._prune(observation.snapshot.at)
        return observation

    def trends(self, now: float | None = None) -> dict[str, object]:
        """The last hour per minute: jobs finished, failure rate and p95 per pipeline (from
        the jobs themselves), and the queue depths the checks saw."""
        now = time.time() if now is None else now
        since = trends.bucket_starts(now)[0]
        if self.history is None:
            return trends.series((), (), now)
        return trends.series(self.history.finished_since(since), self.history.samples_since(since), now)

    def _tell(self, alert: Alert, *, started: bool) -> None:
        urgency = (
            Urgency.NORMAL
            if not started
            else Urgency.CRITICAL
            if alert.severity is AlertSeverity.CRITICAL
            else Urgency.HIGH
        )
        what = "alert" if started else "resolved"
        log.warning(f"alert.{'started' if started else 'resolved'}", extra={"rule": alert.rule, "key": alert.key})
        self.coordinator.notify(
            self.settings.alert_role,
            urgency,
            f"{what}: {alert.rule} ({alert.severity.value}) {alert.key}",
            alert.message,
            fields={"rule": alert.rule, "key": alert.key, "severity": alert.severity.value},
            audit=AuditDraft(
                f"alert.{'started' if started else 'resolved'}",
                "system",
                time.time(),
                details={"rule": alert.rule, "key": alert.key[:120], "severity": alert.severity.value},
            ),
        )

    def checkpoint(self, now: float | None = None) -> None:
        """Sign the audit chain's head into the anchor file, if it moved since the last."""
        if self.anchors is None:
            return
        if self._checkpointed is None:
            last = self.anchors.last()
            self._checkpointed = last.seq if last is not None else 0
        head = self.facts.audit_anchor()
        if head.last_seq > 0 and head.last_seq != self._checkpointed:
            self.anchors.append(Checkpoint(HEAD, head.last_seq, head.last_hash, time.time() if now is None else now))
            self._checkpointed = head.last_seq

    def prune_audit(self, before: float) -> int:
        """Retention: entries older than ``before`` removed, a signed checkpoint of the last
        one left outside the store first (so that verification tells a prune from a deletion)."""
        anchors = self.anchors

        def anchor(seq: int, digest: str) -> None:
            if anchors is not None:
                anchors.append(Checkpoint(RETENTION, seq, digest, time.time()))

        return self.facts.prune_audit(before, anchor)

    def _prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_INTERVAL:
            return
        self._last_prune = now
        removed = self.prune_audit(now - self.settings.audit_retention_days * 86400)
        if removed:
            log.info("audit.pruned", extra={"entries": removed})
        if self.blobs is not None and (self.settings.job_retention_days or self.settings.pipeline_retention_days):
            # A short pause between batches leaves the store to the workers and the API.
            purged = retention.purge(self.coordinator, self.blobs, Expiry.of(self.settings, now), pause=0.05)
            if purged.jobs:
                log.info("jobs.purged", extra={"jobs": purged.jobs, "files": purged.files})

    async def run(self, stop: asyncio.Event) -> None:
        """Check every `monitor_interval` seconds until ``stop`` is set; survive failures."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.check)
            except (VigiaError, OSError) as error:
                log.warning("watch.failed", extra={"error": str(error)})
            except Exception as error:  # keep watching whatever one pass ran into
                log.error("watch.failed", extra={"error_type": type(error).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.monitor_interval)
