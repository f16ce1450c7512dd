"""Monitoring, the pure part: facts about a moment, alert rules, overall health, and the
Prometheus text rendered from them.

Nothing here reads the store or the broker, keeps state, or sends anything. The caller gathers
a `Snapshot`, calls `evaluate` with the alert states it saved last time, saves `active`, and
notifies `started` and `resolved`. So every decision can be tested with plain values, and a
restart loses nothing that the caller persisted.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from vigia.scaling import Advice

#: Upper bounds, in seconds, of the stage-duration histogram buckets (+Inf comes after).
#: From 10 ms (a quick lookup) to 10 min (a long model call), roughly x2-x2.5 apart.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

#: The quantiles reported for each pipeline's processing time, as percentiles.
QUANTILES: tuple[float, ...] = (50, 95, 99)

# Alert rule names: stored with alert states and shown to people, so they must not change.
NO_WORKERS = "no_workers"
QUEUE_DEPTH = "queue_depth"
FAILURE_RATE = "failure_rate"
SLOW_PIPELINE = "slow_pipeline"
#: Notifications that could not be delivered (dead or failed `vigia.notify` jobs): someone
#: was not told something they had to be.
UNDELIVERED = "notifications_undelivered"

#: The key of an alert that is about everything rather than one queue or pipeline.
ALL = "*"

Health = Literal["ok", "warning", "critical"]


class AlertSeverity(StrEnum):
    WARNING = "warning"  # degrading: someone should look during working hours
    CRITICAL = "critical"  # jobs are not being processed, or are failing: act now


#: Each rule always raises the same severity; the metrics list every rule, even at zero.
RULE_SEVERITY: Mapping[str, AlertSeverity] = {
    NO_WORKERS: AlertSeverity.CRITICAL,
    QUEUE_DEPTH: AlertSeverity.WARNING,
    FAILURE_RATE: AlertSeverity.CRITICAL,
    SLOW_PIPELINE: AlertSeverity.WARNING,
    UNDELIVERED: AlertSeverity.CRITICAL,
}

_SEVERITY_RANK: Mapping[AlertSeverity, int] = {AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}


# --- facts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """One queue: how much waits on it, and which workers consume it."""

    name: str
    #: Messages (or stage runs) waiting, not counting those being processed.
    depth: int
    #: Names of the workers consuming the queue; empty means nothing will ever take its work.
    consumers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PipelineTimes:
    """Processing seconds of one pipeline's jobs that finished in the window."""

    pipeline: str
    count: int
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class StageDurations:
    """A cumulative histogram of one stage's run durations, as Prometheus wants it.

    ``buckets[i]`` counts finished runs that took at most ``DURATION_BUCKETS[i]`` seconds;
    ``count`` is every finished run (the +Inf bucket) and ``total`` their summed seconds.
    """

    pipeline: str
    stage: str
    buckets: tuple[int, ...]
    count: int
    total: float

    def __post_init__(self) -> None:
        # A malformed histogram would be exported as nonsense that Prometheus accepts silently.
        if len(self.buckets) != len(DURATION_BUCKETS):
            raise ValueError(f"buckets must have {len(DURATION_BUCKETS)} counts, got {len(self.buckets)}")
        cumulative = (*self.buckets, self.count)
        if any(later < earlier for earlier, later in itertools.pairwise(cumulative)):
            raise ValueError(f"buckets must be cumulative and at most count, got {cumulative}")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What monitoring knows at one moment, gathered from the job store and the broker."""

    #: Epoch seconds when the facts were gathered.
    at: float
    #: Length of the recent window that `finished`, `failed` and `times` cover.
    window_seconds: float
    queues: tuple[QueueFacts, ...]
    #: Queues some registered pipeline sends work to: each needs at least one consumer.
    required_queues: tuple[str, ...]
    #: Jobs that reached a terminal state in the window, failed ones included.
    finished: int
    #: Of those, the ones that failed (failed or dead-lettered).
    failed: int
    times: tuple[PipelineTimes, ...]
    #: (pipeline, job state) -> jobs ever stored in that state: a counter, never reset.
    jobs_by_outcome: Mapping[tuple[str, str], int]
    stage_durations: tuple[StageDurations, ...]
    dlq_size: int
    open_reviews: int
    notifications_failed: int
    #: Names of the workers alive, whatever queues they consume.
    workers: tuple[str, ...]
    #: Per queue, the workers its observed load needs (`vigia.scaling`).
    scaling: tuple[Advice, ...] = ()

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise ValueError(f"window_seconds must be > 0, got {self.window_seconds}")

    @property
    def failure_rate(self) -> float | None:
        """Share of the jobs finished in the window that failed; None when none finished,
        since no failures out of no jobs is not a 0 % failure rate."""
        if self.finished == 0:
            return None
        return self.failed / self.finished

    @property
    def throughput_per_minute(self) -> float:
        return self.finished * 60.0 / self.window_seconds


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the alert rules fire. The defaults suit a small deployment."""

    #: More messages than this waiting on a queue...
    queue_depth: int = 100
    #: ...for at least this long raises `queue_depth` (a burst that drains is normal).
    queue_depth_seconds: float = 300.0
    #: A larger share of failed jobs in the window raises `failure_rate`...
    failure_rate: float = 0.05
    #: ...once at least this many jobs finished (1 failure out of 2 is not a trend).
    failure_min_jobs: int = 10
    #: A pipeline whose p95 processing time exceeds this raises `slow_pipeline`...
    p95_seconds: float = 60.0
    #: ...once it finished at least this many jobs in the window.
    p95_min_jobs: int = 5

    def __post_init__(self) -> None:
        for name in (
            "queue_depth",
            "queue_depth_seconds",
            "failure_rate",
            "failure_min_jobs",
            "p95_seconds",
            "p95_min_jobs",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if self.failure_rate > 1:
            raise ValueError(f"failure_rate must be at most 1, got {self.failure_rate}")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert state, identified by ``(rule, key)``."""

    #: One of NO_WORKERS, QUEUE_DEPTH, FAILURE_RATE, SLOW_PIPELINE.
    rule: str
    #: The queue or pipeline concerned, or ALL.
    key: str
    severity: AlertSeverity
    message: str
    #: When the condition was first seen in this incident (epoch seconds).
    since: float
    #: False while pending: the condition holds but not yet for long enough.
    firing: bool

    @property
    def ident(self) -> tuple[str, str]:
        return (self.rule, self.key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "key": self.key,
            "severity": self.severity.value,
            "message": self.message,
            "since": self.since,
            "firing": self.firing,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    #: Every alert pending or firing now: what to persist for the next evaluation.
    active: tuple[Alert, ...]
    #: Alerts that became firing in this evaluation: notify these, once per incident.
    started: tuple[Alert, ...]
    #: Alerts that were firing and whose condition is gone (as they last were).
    resolved: tuple[Alert, ...]


# --- percentiles --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile by the nearest-rank method: the smallest value such that at
    least ``q`` % of the values are less than or equal to it.

    On the sorted values, that is the one at 1-based rank ``ceil(q / 100 * n)`` (rank 1 for
    q = 0). It is always one of the values, never an interpolation, so a reported p95 is a
    duration some job really took. No values gives 0.0.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    if not values:
        return 0.0
    ordered = sorted(values)
    # q * n / 100 rather than q / 100 * n: exact for whole q, so ceil does not round 7.0000001 up.
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


def times_of(pipeline: str, seconds: Sequence[float]) -> PipelineTimes:
    """Summarise the processing seconds of a pipeline's finished jobs."""
    p50, p95, p99 = (percentile(seconds, q) for q in QUANTILES)
    return PipelineTimes(pipeline=pipeline, count=len(seconds), p50=p50, p95=p95, p99=p99)


# --- alert rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Condition:
    """A rule's condition that holds now, and how long it must hold before firing."""

    rule: str
    key: str
    message: str
    hold_seconds: float = 0.0


def _no_workers(snapshot: Snapshot) -> Iterator[_Condition]:
    consumers = {queue.name: queue.consumers for queue in snapshot.queues}
    for name in snapshot.required_queues:
        if not consumers.get(name):
            yield _Condition(NO_WORKERS, name, f"no worker consumes queue {name!r}: its work will not run")


def _queue_depth(snapshot: Snapshot, thresholds: Thresholds) -> Iterator[_Condition]:
    for queue in snapshot.queues:
        if queue.depth > thresholds.queue_depth:
            yield _Condition(
                QUEUE_DEPTH,
                queue.name,
                f"queue {queue.name!r} holds {queue.depth} waiting messages (limit {thresholds.queue_depth})",
                hold_seconds=thresholds.queue_depth_seconds,
            )


def _failure_rate(snapshot: Snapshot, thresholds: Thresholds) -> Iterator[_Condition]:
    rate = snapshot.failure_rate
    if rate is None or snapshot.finished < thresholds.failure_min_jobs or not rate > thresholds.failure_rate:
        return
    yield _Condition(
        FAILURE_RATE,
        ALL,
        f"{rate:.1%} of jobs failed in the last {snapshot.window_seconds:g} s: "
        f"{snapshot.failed} of {snapshot.finished} (limit {thresholds.failure_rate:.1%})",
    )


def _slow_pipelines(snapshot: Snapshot, thresholds: Thresholds) -> Iterator[_Condition]:
    for times in snapshot.times:
        if times.count >= thresholds.p95_min_jobs and times.p95 > thresholds.p95_seconds:
            yield _Condition(
                SLOW_PIPELINE,
                times.pipeline,
                f"pipeline {times.pipeline!r} took {times.p95:.1f} s at p95 over {times.count} jobs "
                f"(limit {thresholds.p95_seconds:g} s)",
            )


def _undelivered(snapshot: Snapshot) -> Iterator[_Condition]:
    if snapshot.notifications_failed > 0:
        yield _Condition(
            UNDELIVERED,
            ALL,
            f"{snapshot.notifications_failed} notification(s) could not be delivered: "
            "see the dead-letter queue (pipeline vigia.notify) and retry them",
        )


def evaluate(snapshot: Snapshot, thresholds: Thresholds, previous: Mapping[tuple[str, str], Alert]) -> Evaluation:
    """Apply the alert rules to ``snapshot``, continuing the alert states in ``previous``
    (keyed by ``(rule, key)``, as saved from the last evaluation's ``active``)."""
    conditions: dict[tuple[str, str], _Condition] = {}
    for condition in (
        *_no_workers(snapshot),
        *_queue_depth(snapshot, thresholds),
        *_failure_rate(snapshot, thresholds),
        *_slow_pipelines(snapshot, thresholds),
        *_undelivered(snapshot),
    ):
        conditions.setdefault((condition.rule, condition.key), condition)

    active: list[Alert] = []
    started: list[Alert] = []
    for ident, condition in conditions.items():
        before = previous.get(ident)
        # An incident starts when its condition is first seen and lasts while it holds.
        since = snapshot.at if before is None else before.since
        # Once firing, an alert stays firing until its condition goes, so that it is
        # notified once per incident even if the thresholds change meanwhile.
        was_firing = before is not None and before.firing
        alert = Alert(
            rule=condition.rule,
            key=condition.key,
            severity=RULE_SEVERITY[condition.rule],
            message=condition.message,
            since=since,
            firing=was_firing or snapshot.at - since >= condition.hold_seconds,
        )
        active.append(alert)
        if alert.firing and not was_firing:
            started.append(alert)

    # A pending alert whose condition went never fired, so there is nothing to resolve.
    resolved = tuple(alert for ident, alert in previous.items() if alert.firing and ident not in conditions)
    return Evaluation(active=tuple(active), started=tuple(started), resolved=resolved)


def health(active: Iterable[Alert]) -> Health:
    """The severity of the worst firing alert, or "ok"; pending alerts do not count."""
    worst = max((alert.severity for alert in active if alert.firing), key=_SEVERITY_RANK.__getitem__, default=None)
    if worst is None:
        return "ok"
    return "critical" if worst is AlertSeverity.CRITICAL else "warning"


# --- Prometheus metrics -------------------------------------------------------------------


def _le(bound: float) -> str:
    # The form prometheus_client's own histograms use ("1.0", "0.25"), so le labels match.
    return repr(float(bound))


# eq=False: the registry keys collectors by identity, and a snapshot (holding a dict) has no hash.
@dataclass(frozen=True, slots=True, eq=False)
class _SnapshotCollector:
    """A prometheus_client collector that exposes one snapshot, then is thrown away."""

    snapshot: Snapshot
    active: tuple[Alert, ...]

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot

        jobs = CounterMetricFamily("vigia_jobs", "Jobs stored, by pipeline and state.", labels=("pipeline", "state"))
        for (pipeline, state), count in sorted(snapshot.jobs_by_outcome.items()):
            jobs.add_metric((pipeline, state), count)
        yield jobs

        durations = HistogramMetricFamily(
            "vigia_stage_duration_seconds", "Duration of finished stage runs.", labels=("pipeline", "stage")
        )
        for stage in snapshot.stage_durations:
            buckets = [(_le(bound), float(n)) for bound, n in zip(DURATION_BUCKETS, stage.buckets, strict=True)]
            buckets.append(("+Inf", float(stage.count)))
            durations.add_metric((stage.pipeline, stage.stage), buckets, stage.total)
        yield durations

        depth = GaugeMetricFamily("vigia_queue_depth", "Messages waiting on a queue.", labels=("queue",))
        consumers = GaugeMetricFamily("vigia_queue_consumers", "Workers consuming a queue.", labels=("queue",))
        for queue in snapshot.queues:
            depth.add_metric((queue.name,), queue.depth)
            consumers.add_metric((queue.name,), len(queue.consumers))
        yield depth
        yield consumers

        yield GaugeMetricFamily("vigia_workers", "Workers alive.", value=len(snapshot.workers))
        yield GaugeMetricFamily("vigia_dlq_size", "Jobs in the dead-letter queue.", value=snapshot.dlq_size)
        yield GaugeMetricFamily("vigia_open_reviews", "Human reviews not yet closed.", value=snapshot.open_reviews)
        yield GaugeMetricFamily(
            "vigia_notifications_failed", "Notifications that could not be sent.", value=snapshot.notifications_failed
        )
        if snapshot.failure_rate is not None:
            yield GaugeMetricFamily(
                "vigia_failure_rate", "Share of jobs finished in the window that failed.", value=snapshot.failure_rate
            )
        yield GaugeMetricFamily(
            "vigia_throughput_per_minute",
            "Jobs finished per minute over the window.",
            value=snapshot.throughput_per_minute,
        )

        processing = GaugeMetricFamily(
            "vigia_processing_seconds",
            "Processing time of jobs finished in the window, by quantile.",
            labels=("pipeline", "quantile"),
        )
        counted = GaugeMetricFamily(
            "vigia_processing_jobs",
            "Jobs finished in the window that the processing quantiles are taken over.",
            labels=("pipeline",),
        )
        for times in snapshot.times:
            for quantile, seconds in (("0.5", times.p50), ("0.95", times.p95), ("0.99", times.p99)):
                processing.add_metric((times.pipeline, quantile), seconds)
            counted.add_metric((times.pipeline,), times.count)
        yield processing
        yield counted

        advised = GaugeMetricFamily(
            "vigia_workers_advised",
            "Workers a queue's observed load needs for the target wait (vigia scale advise).",
            labels=("queue",),
        )
        for advice in snapshot.scaling:
            advised.add_metric((advice.queue,), advice.workers_needed)
        yield advised

        # Every rule appears, at zero when quiet, so that a dashboard can tell "no alert"
        # from "no data".
        firing: Counter[tuple[str, str]] = Counter({(rule, str(sev)): 0 for rule, sev in RULE_SEVERITY.items()})
        firing.update((alert.rule, str(alert.severity)) for alert in self.active if alert.firing)
        alerts = GaugeMetricFamily("vigia_alerts_firing", "Alerts firing.", labels=("rule", "severity"))
        for (rule, severity), count in firing.items():
            alerts.add_metric((rule, severity), count)
        yield alerts


def render_metrics(snapshot: Snapshot, active: Iterable[Alert] = ()) -> bytes:
    """The Prometheus text exposition of ``snapshot`` and of the firing alerts in ``active``."""
    # A registry of its own per call: the default global one would also export whatever
    # else the process registered, and would keep this snapshot alive.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, tuple(active)))
    return generate_latest(registry)


# --- status document ----------------------------------------------------------------------


def status_document(snapshot: Snapshot, active: Iterable[Alert]) -> dict[str, Any]:
    """The JSON body of ``GET /monitoring/status``."""
    alerts = tuple(active)
    return {
        "at": snapshot.at,
        "health": health(alerts),
        "window_seconds": snapshot.window_seconds,
        "queues": [
            {"name": queue.name, "depth": queue.depth, "consumers": list(queue.consumers)} for queue in snapshot.queues
        ],
        "workers": list(snapshot.workers),
        "throughput_per_minute": snapshot.throughput_per_minute,
        "failure_rate": snapshot.failure_rate,
        "finished": snapshot.finished,
        "failed": snapshot.failed,
        "processing_seconds": {
            times.pipeline: {"count": times.count, "p50": times.p50, "p95": times.p95, "p99": times.p99}
            for times in snapshot.times
        },
        "dlq_size": snapshot.dlq_size,
        "open_reviews": snapshot.open_reviews,
        "notifications_failed": snapshot.notifications_failed,
        "alerts": [alert.to_dict() for alert in alerts],
        "scaling": [advice.to_dict() for advice in snapshot.scaling],
    }
