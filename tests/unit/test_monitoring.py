"""Monitoring: percentiles, alert rules and their life cycle, health, Prometheus text, status JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vigia import scaling
from vigia.monitoring import (
    ALL,
    DURATION_BUCKETS,
    FAILURE_RATE,
    NO_WORKERS,
    QUEUE_DEPTH,
    SLOW_PIPELINE,
    Alert,
    AlertSeverity,
    Evaluation,
    PipelineTimes,
    QueueFacts,
    Snapshot,
    StageDurations,
    Thresholds,
    evaluate,
    health,
    percentile,
    render_metrics,
    status_document,
    times_of,
)

T0 = 1_700_000_000.0


def quiet(**changes: Any) -> Snapshot:
    """A snapshot in which no rule holds: one consumed queue, nothing finished."""
    base = Snapshot(
        at=T0,
        window_seconds=300.0,
        queues=(QueueFacts("default", 0, ("worker-1",)),),
        required_queues=("default",),
        finished=0,
        failed=0,
        times=(),
        jobs_by_outcome={},
        stage_durations=(),
        dlq_size=0,
        open_reviews=0,
        notifications_failed=0,
        workers=("worker-1",),
    )
    return dataclasses.replace(base, **changes)


def depth(n: int, *, at: float = T0) -> Snapshot:
    return quiet(at=at, queues=(QueueFacts("default", n, ("worker-1",)),))


def by_ident(alerts: tuple[Alert, ...]) -> dict[tuple[str, str], Alert]:
    return {(alert.rule, alert.key): alert for alert in alerts}


def alert(rule: str, key: str, *, since: float = T0, firing: bool = True, message: str = "m") -> Alert:
    severity = AlertSeverity.CRITICAL if rule in (NO_WORKERS, FAILURE_RATE) else AlertSeverity.WARNING
    return Alert(rule=rule, key=key, severity=severity, message=message, since=since, firing=firing)


NOTHING = Evaluation(active=(), started=(), resolved=())


# --- percentile ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    # Nearest rank on [15, 20, 35, 40, 50]: rank = ceil(q/100 * 5).
    [(0, 15.0), (5, 15.0), (20, 15.0), (30, 20.0), (40, 20.0), (50, 35.0), (80, 40.0), (81, 50.0), (100, 50.0)],
)
def test_percentile_is_the_nearest_rank(q: float, expected: float) -> None:
    assert percentile([40.0, 15.0, 50.0, 20.0, 35.0], q) == expected


def test_percentile_of_one_to_twenty() -> None:
    values = [float(v) for v in range(20, 0, -1)]

    assert percentile(values, 50) == 10.0  # rank 10
    assert percentile(values, 95) == 19.0  # rank 19
    assert percentile(values, 99) == 20.0  # rank ceil(19.8) = 20


def test_percentile_rank_is_not_pushed_up_by_float_rounding() -> None:
    # 0.07 * 100 == 7.000000000000001 in floats: a naive ceil would take rank 8.
    assert percentile([float(v) for v in range(1, 101)], 7) == 7.0


def test_percentile_of_one_value_is_that_value_for_every_q() -> None:
    assert [percentile([4.5], q) for q in (0, 1, 50, 99, 100)] == [4.5] * 5


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 95) == 0.0


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_rejects_q_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="q must be between 0 and 100"):
        percentile([1.0], q)


def test_times_of_summarises_with_p50_p95_p99() -> None:
    seconds = [float(v) for v in range(1, 201)]  # 1..200

    assert times_of("intake", seconds) == PipelineTimes("intake", count=200, p50=100.0, p95=190.0, p99=198.0)
    assert times_of("intake", []) == PipelineTimes("intake", count=0, p50=0.0, p95=0.0, p99=0.0)


# --- value objects ------------------------------------------------------------------------


def test_thresholds_defaults() -> None:
    assert Thresholds() == Thresholds(
        queue_depth=100,
        queue_depth_seconds=300.0,
        failure_rate=0.05,
        failure_min_jobs=10,
        p95_seconds=60.0,
        p95_min_jobs=5,
    )


@pytest.mark.parametrize(
    "field", ["queue_depth", "queue_depth_seconds", "failure_rate", "failure_min_jobs", "p95_seconds", "p95_min_jobs"]
)
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_thresholds_must_be_positive_and_finite(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be a finite number > 0"):
        Thresholds(**{field: value})


def test_failure_rate_threshold_is_at_most_one() -> None:
    assert Thresholds(failure_rate=1.0).failure_rate == 1.0
    with pytest.raises(ValueError, match=r"^failure_rate must be at most 1"):
        Thresholds(failure_rate=1.01)


def test_snapshot_failure_rate_and_throughput() -> None:
    snapshot = quiet(window_seconds=120.0, finished=30, failed=3)

    assert snapshot.failure_rate == 0.1
    assert snapshot.throughput_per_minute == 15.0


def test_snapshot_failure_rate_is_unknown_when_nothing_finished() -> None:
    assert quiet(finished=0, failed=0).failure_rate is None
    assert quiet(finished=0).throughput_per_minute == 0.0


def test_snapshot_failure_rate_is_zero_when_jobs_finished_and_none_failed() -> None:
    assert quiet(finished=10, failed=0).failure_rate == 0.0


def test_snapshot_needs_a_positive_window() -> None:
    with pytest.raises(ValueError, match="window_seconds must be > 0"):
        quiet(window_seconds=0.0)


def test_stage_durations_needs_one_count_per_bucket() -> None:
    with pytest.raises(ValueError, match=f"buckets must have {len(DURATION_BUCKETS)} counts, got 3"):
        StageDurations("p", "s", (0, 1, 2), count=2, total=1.0)


def test_stage_durations_must_be_cumulative_up_to_count() -> None:
    decreasing = (0, 2, 1, *[2] * (len(DURATION_BUCKETS) - 3))
    with pytest.raises(ValueError, match="cumulative"):
        StageDurations("p", "s", decreasing, count=2, total=1.0)
    with pytest.raises(ValueError, match="cumulative"):
        StageDurations("p", "s", (3,) * len(DURATION_BUCKETS), count=2, total=1.0)


# --- rules --------------------------------------------------------------------------------


def test_a_quiet_snapshot_raises_nothing() -> None:
    assert evaluate(quiet(), Thresholds(), {}) == NOTHING


def test_required_queue_without_consumers_is_critical_at_once() -> None:
    snapshot = quiet(
        queues=(QueueFacts("default", 0, ("worker-1",)), QueueFacts("gpu", 3, ())),
        required_queues=("default", "gpu", "ocr"),  # "ocr" is not even known to the broker
    )

    result = evaluate(snapshot, Thresholds(), {})

    expected = (
        Alert(
            NO_WORKERS,
            "gpu",
            AlertSeverity.CRITICAL,
            "no worker consumes queue 'gpu': its work will not run",
            since=T0,
            firing=True,
        ),
        Alert(
            NO_WORKERS,
            "ocr",
            AlertSeverity.CRITICAL,
            "no worker consumes queue 'ocr': its work will not run",
            since=T0,
            firing=True,
        ),
    )
    assert result == Evaluation(active=expected, started=expected, resolved=())


def test_a_queue_nobody_needs_may_have_no_consumer() -> None:
    snapshot = quiet(queues=(QueueFacts("default", 0, ("worker-1",)), QueueFacts("legacy", 0, ())))

    assert evaluate(snapshot, Thresholds(), {}) == NOTHING


def test_queue_depth_at_the_threshold_raises_nothing() -> None:
    assert evaluate(depth(100), Thresholds(queue_depth=100), {}) == NOTHING


def test_queue_depth_above_the_threshold_is_pending_first() -> None:
    result = evaluate(depth(101), Thresholds(queue_depth=100), {})

    pending = Alert(
        QUEUE_DEPTH,
        "default",
        AlertSeverity.WARNING,
        "queue 'default' holds 101 waiting messages (limit 100)",
        since=T0,
        firing=False,
    )
    assert result == Evaluation(active=(pending,), started=(), resolved=())


def test_queue_depth_fires_once_it_held_for_the_duration() -> None:
    thresholds = Thresholds(queue_depth=100, queue_depth_seconds=300.0)
    first = evaluate(depth(150), thresholds, {})

    almost = evaluate(depth(160, at=T0 + 299.0), thresholds, by_ident(first.active))
    assert [(a.since, a.firing) for a in almost.active] == [(T0, False)]
    assert almost.started == ()

    held = evaluate(depth(170, at=T0 + 300.0), thresholds, by_ident(almost.active))
    fired = Alert(
        QUEUE_DEPTH,
        "default",
        AlertSeverity.WARNING,
        "queue 'default' holds 170 waiting messages (limit 100)",
        since=T0,
        firing=True,
    )
    assert held == Evaluation(active=(fired,), started=(fired,), resolved=())


def test_pending_queue_depth_is_dropped_when_the_queue_drains() -> None:
    thresholds = Thresholds(queue_depth=100, queue_depth_seconds=300.0)
    first = evaluate(depth(150), thresholds, {})

    drained = evaluate(depth(100, at=T0 + 200.0), thresholds, by_ident(first.active))
    assert drained == NOTHING  # never fired: nothing to resolve

    again = evaluate(depth(150, at=T0 + 250.0), thresholds, by_ident(drained.active))
    assert [(a.since, a.firing) for a in again.active] == [(T0 + 250.0, False)]  # a new incident


def test_failure_rate_at_the_threshold_raises_nothing() -> None:
    assert evaluate(quiet(finished=20, failed=1), Thresholds(failure_rate=0.05), {}) == NOTHING


def test_failure_rate_above_the_threshold_is_critical_at_once() -> None:
    result = evaluate(quiet(finished=10, failed=1), Thresholds(failure_rate=0.05, failure_min_jobs=10), {})

    fired = Alert(
        FAILURE_RATE,
        ALL,
        AlertSeverity.CRITICAL,
        "10.0% of jobs failed in the last 300 s: 1 of 10 (limit 5.0%)",
        since=T0,
        firing=True,
    )
    assert result == Evaluation(active=(fired,), started=(fired,), resolved=())


def test_failure_rate_needs_enough_finished_jobs() -> None:
    assert evaluate(quiet(finished=9, failed=9), Thresholds(failure_min_jobs=10), {}) == NOTHING


def test_slow_pipeline_at_the_threshold_raises_nothing() -> None:
    times = (PipelineTimes("intake", count=5, p50=10.0, p95=60.0, p99=90.0),)

    assert evaluate(quiet(times=times), Thresholds(p95_seconds=60.0, p95_min_jobs=5), {}) == NOTHING


def test_slow_pipeline_above_the_threshold_is_a_warning_at_once() -> None:
    times = (
        PipelineTimes("intake", count=5, p50=10.0, p95=60.5, p99=90.0),
        PipelineTimes("coding", count=50, p50=1.0, p95=2.0, p99=3.0),
    )

    result = evaluate(quiet(times=times), Thresholds(p95_seconds=60.0, p95_min_jobs=5), {})

    fired = Alert(
        SLOW_PIPELINE,
        "intake",
        AlertSeverity.WARNING,
        "pipeline 'intake' took 60.5 s at p95 over 5 jobs (limit 60 s)",
        since=T0,
        firing=True,
    )
    assert result == Evaluation(active=(fired,), started=(fired,), resolved=())


def test_slow_pipeline_needs_enough_finished_jobs() -> None:
    times = (PipelineTimes("intake", count=4, p50=100.0, p95=100.0, p99=100.0),)

    assert evaluate(quiet(times=times), Thresholds(p95_min_jobs=5), {}) == NOTHING


# --- life cycle ---------------------------------------------------------------------------


def test_an_alert_already_firing_is_not_started_again_and_keeps_its_since() -> None:
    previous = alert(FAILURE_RATE, ALL, since=T0 - 600.0, message="old numbers")

    result = evaluate(quiet(finished=10, failed=5), Thresholds(), {previous.ident: previous})

    still = Alert(
        FAILURE_RATE,
        ALL,
        AlertSeverity.CRITICAL,
        "50.0% of jobs failed in the last 300 s: 5 of 10 (limit 5.0%)",
        since=T0 - 600.0,
        firing=True,
    )
    assert result == Evaluation(active=(still,), started=(), resolved=())


def test_firing_queue_depth_stays_firing_even_if_the_duration_was_raised() -> None:
    previous = alert(QUEUE_DEPTH, "default", since=T0 - 60.0)

    result = evaluate(depth(500), Thresholds(queue_depth_seconds=3_600.0), {previous.ident: previous})

    assert [(a.since, a.firing) for a in result.active] == [(T0 - 60.0, True)]
    assert result.started == ()


def test_an_alert_whose_condition_is_gone_is_resolved() -> None:
    slow = alert(SLOW_PIPELINE, "intake", since=T0 - 100.0)
    deep = alert(QUEUE_DEPTH, "default", since=T0 - 900.0)
    pending = alert(QUEUE_DEPTH, "gpu", since=T0 - 10.0, firing=False)
    previous = {a.ident: a for a in (slow, deep, pending)}

    result = evaluate(quiet(), Thresholds(), previous)

    assert result == Evaluation(active=(), started=(), resolved=(slow, deep))


def test_rules_are_independent_and_listed_in_rule_order() -> None:
    held = alert(NO_WORKERS, "gpu", since=T0 - 30.0)
    gone = alert(SLOW_PIPELINE, "coding", since=T0 - 30.0)
    snapshot = quiet(
        queues=(QueueFacts("default", 101, ("worker-1",)), QueueFacts("gpu", 0, ())),
        required_queues=("default", "gpu"),
        finished=10,
        failed=2,
    )

    result = evaluate(snapshot, Thresholds(), {held.ident: held, gone.ident: gone})

    assert [(a.rule, a.key, a.firing) for a in result.active] == [
        (NO_WORKERS, "gpu", True),
        (QUEUE_DEPTH, "default", False),
        (FAILURE_RATE, ALL, True),
    ]
    assert [(a.rule, a.key) for a in result.started] == [(FAILURE_RATE, ALL)]
    assert result.resolved == (gone,)


# --- health -------------------------------------------------------------------------------


def test_health_is_ok_without_firing_alerts() -> None:
    assert health([]) == "ok"
    assert health([alert(NO_WORKERS, "gpu", firing=False)]) == "ok"


def test_health_is_the_worst_firing_severity() -> None:
    warning = alert(QUEUE_DEPTH, "default")
    critical = alert(FAILURE_RATE, ALL)

    assert health([warning]) == "warning"
    assert health([warning, critical]) == "critical"
    assert health([critical, warning]) == "critical"
    assert health([warning, dataclasses.replace(critical, firing=False)]) == "warning"


# --- Prometheus text ----------------------------------------------------------------------


def busy() -> Snapshot:
    buckets = (0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4)
    return quiet(
        window_seconds=600.0,
        queues=(QueueFacts("default", 7, ("w1", "w2")), QueueFacts("gpu", 0, ())),
        required_queues=("default",),
        finished=30,
        failed=3,
        times=(PipelineTimes("intake", count=30, p50=1.5, p95=9.0, p99=12.25),),
        jobs_by_outcome={("intake", "succeeded"): 27, ("intake", "failed"): 3, ("coding", "queued"): 2},
        stage_durations=(StageDurations("intake", "ocr", buckets, count=5, total=61.5),),
        dlq_size=2,
        open_reviews=4,
        notifications_failed=1,
        workers=("w1", "w2", "w3"),
        scaling=(ADVICE,),
    )


#: What `vigia.scaling` advised for the busy snapshot's default queue.
ADVICE = scaling.advise(
    scaling.QueueLoad("default", arrivals=120, finished=118, mean_service_seconds=2.0, window_seconds=600.0),
    target_wait_seconds=5.0,
    slots_per_worker=2,
)


def parsed(text: bytes) -> dict[str, tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
    """name -> (type, help, samples) as Prometheus would read them back."""
    return {
        family.name: (family.type, family.documentation, [(s.name, s.labels, s.value) for s in family.samples])
        for family in text_string_to_metric_families(text.decode())
    }


def test_render_metrics_exposes_every_fact() -> None:
    active = (
        alert(NO_WORKERS, "gpu"),
        alert(NO_WORKERS, "ocr"),
        alert(QUEUE_DEPTH, "default", firing=False),  # pending: not counted
        alert(SLOW_PIPELINE, "intake"),
    )

    families = parsed(render_metrics(busy(), active))

    assert list(families) == [
        "vigia_jobs",
        "vigia_stage_duration_seconds",
        "vigia_queue_depth",
        "vigia_queue_consumers",
        "vigia_workers",
        "vigia_dlq_size",
        "vigia_open_reviews",
        "vigia_notifications_failed",
        "vigia_failure_rate",
        "vigia_throughput_per_minute",
        "vigia_processing_seconds",
        "vigia_processing_jobs",
        "vigia_workers_advised",
        "vigia_alerts_firing",
    ]
    assert families["vigia_processing_jobs"][2] == [("vigia_processing_jobs", {"pipeline": "intake"}, 30.0)]
    assert families["vigia_workers_advised"][2] == [
        ("vigia_workers_advised", {"queue": "default"}, float(ADVICE.workers_needed))
    ]
    assert families["vigia_jobs"] == (
        "counter",
        "Jobs stored, by pipeline and state.",
        [
            ("vigia_jobs_total", {"pipeline": "coding", "state": "queued"}, 2.0),
            ("vigia_jobs_total", {"pipeline": "intake", "state": "failed"}, 3.0),
            ("vigia_jobs_total", {"pipeline": "intake", "state": "succeeded"}, 27.0),
        ],
    )
    assert families["vigia_queue_depth"] == (
        "gauge",
        "Messages waiting on a queue.",
        [("vigia_queue_depth", {"queue": "default"}, 7.0), ("vigia_queue_depth", {"queue": "gpu"}, 0.0)],
    )
    assert families["vigia_queue_consumers"] == (
        "gauge",
        "Workers consuming a queue.",
        [("vigia_queue_consumers", {"queue": "default"}, 2.0), ("vigia_queue_consumers", {"queue": "gpu"}, 0.0)],
    )
    scalars = {
        name: (families[name][1], families[name][2])
        for name in (
            "vigia_workers",
            "vigia_dlq_size",
            "vigia_open_reviews",
            "vigia_notifications_failed",
            "vigia_failure_rate",
            "vigia_throughput_per_minute",
        )
    }
    assert scalars == {
        "vigia_workers": ("Workers alive.", [("vigia_workers", {}, 3.0)]),
        "vigia_dlq_size": ("Jobs in the dead-letter queue.", [("vigia_dlq_size", {}, 2.0)]),
        "vigia_open_reviews": ("Human reviews not yet closed.", [("vigia_open_reviews", {}, 4.0)]),
        "vigia_notifications_failed": (
            "Notifications that could not be sent.",
            [("vigia_notifications_failed", {}, 1.0)],
        ),
        "vigia_failure_rate": (
            "Share of jobs finished in the window that failed.",
            [("vigia_failure_rate", {}, 0.1)],
        ),
        "vigia_throughput_per_minute": (
            "Jobs finished per minute over the window.",
            [("vigia_throughput_per_minute", {}, 3.0)],
        ),
    }
    assert families["vigia_processing_seconds"] == (
        "gauge",
        "Processing time of jobs finished in the window, by quantile.",
        [
            ("vigia_processing_seconds", {"pipeline": "intake", "quantile": "0.5"}, 1.5),
            ("vigia_processing_seconds", {"pipeline": "intake", "quantile": "0.95"}, 9.0),
            ("vigia_processing_seconds", {"pipeline": "intake", "quantile": "0.99"}, 12.25),
        ],
    )
    assert families["vigia_alerts_firing"] == (
        "gauge",
        "Alerts firing.",
        [
            ("vigia_alerts_firing", {"rule": "no_workers", "severity": "critical"}, 2.0),
            ("vigia_alerts_firing", {"rule": "queue_depth", "severity": "warning"}, 0.0),
            ("vigia_alerts_firing", {"rule": "failure_rate", "severity": "critical"}, 0.0),
            ("vigia_alerts_firing", {"rule": "slow_pipeline", "severity": "warning"}, 1.0),
            ("vigia_alerts_firing", {"rule": "notifications_undelivered", "severity": "critical"}, 0.0),
        ],
    )


def test_render_metrics_stage_durations_are_a_cumulative_histogram() -> None:
    kind, documentation, samples = parsed(render_metrics(busy()))["vigia_stage_duration_seconds"]

    labels = {"pipeline": "intake", "stage": "ocr"}
    les = [
        "0.01",
        "0.05",
        "0.1",
        "0.25",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "30.0",
        "60.0",
        "120.0",
        "300.0",
        "600.0",
        "+Inf",
    ]
    counts = [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 5.0]
    assert kind == "histogram"
    assert documentation == "Duration of finished stage runs."
    assert samples == [
        *[
            ("vigia_stage_duration_seconds_bucket", {**labels, "le": le}, count)
            for le, count in zip(les, counts, strict=True)
        ],
        ("vigia_stage_duration_seconds_count", labels, 5.0),
        ("vigia_stage_duration_seconds_sum", labels, 61.5),
    ]


def test_render_metrics_of_a_quiet_snapshot_omits_the_unknown_failure_rate() -> None:
    families = parsed(render_metrics(quiet()))

    assert "vigia_failure_rate" not in families
    assert families["vigia_jobs"][2] == []
    assert families["vigia_stage_duration_seconds"][2] == []
    assert families["vigia_throughput_per_minute"][2] == [("vigia_throughput_per_minute", {}, 0.0)]
    assert [s[2] for s in families["vigia_alerts_firing"][2]] == [0.0, 0.0, 0.0, 0.0, 0.0]


def test_render_metrics_twice_gives_the_same_text() -> None:
    # Each call has a registry of its own: nothing accumulates between scrapes.
    assert render_metrics(busy()) == render_metrics(busy())


# --- status document ----------------------------------------------------------------------


def test_status_document() -> None:
    firing = Alert(QUEUE_DEPTH, "default", AlertSeverity.WARNING, "deep", since=T0 - 400.0, firing=True)
    pending = Alert(NO_WORKERS, "gpu", AlertSeverity.CRITICAL, "nobody", since=T0, firing=False)

    document = status_document(busy(), iter([firing, pending]))

    assert document == {
        "at": T0,
        "health": "warning",
        "window_seconds": 600.0,
        "queues": [
            {"name": "default", "depth": 7, "consumers": ["w1", "w2"]},
            {"name": "gpu", "depth": 0, "consumers": []},
        ],
        "workers": ["w1", "w2", "w3"],
        "throughput_per_minute": 3.0,
        "failure_rate": 0.1,
        "finished": 30,
        "failed": 3,
        "processing_seconds": {"intake": {"count": 30, "p50": 1.5, "p95": 9.0, "p99": 12.25}},
        "dlq_size": 2,
        "open_reviews": 4,
        "notifications_failed": 1,
        "alerts": [
            {
                "rule": "queue_depth",
                "key": "default",
                "severity": "warning",
                "message": "deep",
                "since": T0 - 400.0,
                "firing": True,
            },
            {
                "rule": "no_workers",
                "key": "gpu",
                "severity": "critical",
                "message": "nobody",
                "since": T0,
                "firing": False,
            },
        ],
        "scaling": [ADVICE.to_dict()],
    }
    assert document["scaling"][0]["workers_needed"] == 1  # 0.4 busy slots of 2
    assert json.loads(json.dumps(document)) == document


def test_status_document_of_a_quiet_snapshot() -> None:
    document = status_document(quiet(), ())

    assert (document["health"], document["failure_rate"], document["alerts"]) == ("ok", None, [])


def test_undelivered_notifications_fire_a_critical_alert_once() -> None:
    snapshot = quiet(notifications_failed=2)

    first = evaluate(snapshot, Thresholds(), {})
    again = evaluate(
        dataclasses.replace(snapshot, at=snapshot.at + 30), Thresholds(), {a.ident: a for a in first.active}
    )
    cleared = evaluate(quiet(at=snapshot.at + 60), Thresholds(), {a.ident: a for a in again.active})

    assert [(a.rule, a.key, a.severity, a.firing) for a in first.started] == [
        ("notifications_undelivered", "*", AlertSeverity.CRITICAL, True)
    ]
    assert "2 notification(s)" in first.started[0].message
    assert again.started == () and len(again.active) == 1
    assert [a.rule for a in cleared.resolved] == ["notifications_undelivered"]
