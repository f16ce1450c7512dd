"""Prometheus alert rules written from the thresholds the built-in monitor applies, so
that an installation watched by Prometheus and one watched by `vigia monitor` raise the
same alerts at the same points (`vigia monitor rules`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from vigia import monitoring
from vigia.monitoring import RULE_SEVERITY, Thresholds
from vigia.yaml_text import to_yaml

#: Prometheus alert names by the built-in monitor's rule names.
ALERT_NAMES: Mapping[str, str] = {
    monitoring.NO_WORKERS: "VigiaNoWorkers",
    monitoring.QUEUE_DEPTH: "VigiaQueueDepth",
    monitoring.FAILURE_RATE: "VigiaFailureRate",
    monitoring.SLOW_PIPELINE: "VigiaSlowPipeline",
    monitoring.UNDELIVERED: "VigiaNotificationsUndelivered",
}


def _duration(seconds: float) -> str:
    return f"{round(seconds)}s"


def rules(thresholds: Thresholds, required_queues: Sequence[str], window_seconds: float) -> dict[str, Any]:
    """The rule groups, as Prometheus reads them."""
    # Escaped for RE2, then for the PromQL string the pattern sits in.
    queues = "|".join(re.escape(queue).replace("\\", "\\\\") for queue in sorted(required_queues))
    finished_in_window = f"vigia_throughput_per_minute * {window_seconds / 60:g}"
    found = [
        (
            monitoring.NO_WORKERS,
            f'vigia_queue_consumers{{queue=~"{queues}"}} == 0',
            0.0,
            "No worker consumes queue {{ $labels.queue }}: its work will not run.",
        ),
        (
            monitoring.QUEUE_DEPTH,
            f"vigia_queue_depth > {thresholds.queue_depth}",
            thresholds.queue_depth_seconds,
            "Queue {{ $labels.queue }} holds {{ $value }} waiting messages (limit "
            f"{thresholds.queue_depth}) for {_duration(thresholds.queue_depth_seconds)}.",
        ),
        (
            monitoring.FAILURE_RATE,
            f"vigia_failure_rate > {thresholds.failure_rate:g} and on() ({finished_in_window}) >= "
            f"{thresholds.failure_min_jobs}",
            0.0,
            "{{ $value | humanizePercentage }} of the jobs finished in the last "
            f"{window_seconds:g} s failed (limit {thresholds.failure_rate:.1%}).",
        ),
        (
            monitoring.SLOW_PIPELINE,
            f'vigia_processing_seconds{{quantile="0.95"}} > {thresholds.p95_seconds:g}'
            f" and on(pipeline) vigia_processing_jobs >= {thresholds.p95_min_jobs}",
            0.0,
            f"Pipeline {{{{ $labels.pipeline }}}} took {{{{ $value }}}} s at p95 (limit {thresholds.p95_seconds:g} s).",
        ),
        (
            monitoring.UNDELIVERED,
            "vigia_notifications_failed > 0",
            0.0,
            "{{ $value }} notification(s) could not be delivered: see the dead-letter queue "
            "(pipeline vigia.notify) and retry them.",
        ),
    ]
    written = []
    for rule, expression, hold, description in found:
        entry: dict[str, Any] = {"alert": ALERT_NAMES[rule], "expr": expression}
        if hold:
            entry["for"] = _duration(hold)
        entry["labels"] = {"severity": RULE_SEVERITY[rule].value, "rule": rule}
        entry["annotations"] = {"description": description}
        written.append(entry)
    return {"groups": [{"name": "vigia", "rules": written}]}


def render(thresholds: Thresholds, required_queues: Sequence[str], window_seconds: float) -> str:
    header = (
        "# Vigía's alert rules, written by `vigia monitor rules` from the thresholds the built-in\n"
        "# monitor applies (VIGIA_ALERT_*): change those and write this file again.\n"
    )
    return header + to_yaml(rules(thresholds, required_queues, window_seconds)) + "\n"
