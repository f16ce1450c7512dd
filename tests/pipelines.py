"""Pipelines used by the tests. Stage functions do real (small) work and record what they
saw in `journal`, so that tests can check what ran, when, and with what."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from typing import Any

from vigia import Pipeline, Retry, RetryPolicy, Severity, Skip, StageContext
from vigia.exceptions import Permanent


class Journal:
    """Thread-safe record of stage activity within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str, float]] = []
        self.active: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.flags: dict[str, Any] = {}

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self.active.clear()
            self.peak.clear()
            self.flags.clear()

    def enter(self, group: str, label: str) -> None:
        with self._lock:
            self.entries.append(("start", label, time.monotonic()))
            self.active[group] += 1
            self.peak[group] = max(self.peak[group], self.active[group])

    def leave(self, group: str, label: str) -> None:
        with self._lock:
            self.entries.append(("end", label, time.monotonic()))
            self.active[group] -= 1

    def order(self, kind: str = "start") -> list[str]:
        with self._lock:
            return [label for what, label, _ in self.entries if what == kind]


journal = Journal()


def _sleep_stage(seconds: float, group: str) -> Any:
    def stage(ctx: StageContext) -> dict[str, Any]:
        label = (ctx.input or {}).get("label", ctx.job_id)
        journal.enter(group, f"{label}:{ctx.stage}")
        try:
            steps = max(5, int(seconds / 0.1))
            for step in range(steps):
                if ctx.cancelled:
                    journal.flags[f"{label}:{ctx.stage}:saw_cancel"] = True
                    ctx.raise_if_cancelled()
                time.sleep(seconds / steps)
                ctx.progress((step + 1) / steps, f"step {step + 1}/{steps}")
            return {"stage": ctx.stage, "attempt": ctx.attempt}
        finally:
            journal.leave(group, f"{label}:{ctx.stage}")

    return stage


# Two branches that each sleep, joined: proves branches overlap and the join waits.
parallel = Pipeline("t_parallel")
parallel.stage("left", after=(), weight=1)(_sleep_stage(0.3, "parallel"))
parallel.stage("right", after=(), weight=1)(_sleep_stage(0.3, "parallel"))


@parallel.stage(after=("left", "right"))
def join(ctx: StageContext) -> dict[str, Any]:
    return {"seen": sorted(ctx.outputs)}


# One slow stage on a narrow queue: concurrency and priority checks.
narrow = Pipeline("t_narrow")
narrow.stage("work", queue="narrow")(_sleep_stage(0.2, "narrow"))


# Fails its first attempt asking for a delayed retry.
retry_later = Pipeline("t_retry_later")


@retry_later.stage(queue="narrow", retry=RetryPolicy(max_attempts=3))
def flaky(ctx: StageContext) -> dict[str, Any]:
    label = (ctx.input or {}).get("label", ctx.job_id)
    journal.enter("narrow", f"{label}:flaky:{ctx.attempt}")
    journal.leave("narrow", f"{label}:flaky:{ctx.attempt}")
    if ctx.attempt == 1:
        raise Retry("not yet", after=(ctx.input or {}).get("after", 1.0))
    return {"attempt": ctx.attempt}


# Timeouts: an async stage that overruns, and a sync one that notices ctx.cancelled.
timeouts = Pipeline("t_timeouts")


@timeouts.stage(after=(), timeout=0.2, retry=RetryPolicy(max_attempts=2, base_delay=0.05))
async def slow_async(ctx: StageContext) -> None:
    await asyncio.sleep(30)


@timeouts.stage(after=(), timeout=0.2, critical=False, retry=RetryPolicy(max_attempts=1))
def slow_sync(ctx: StageContext) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if ctx.cancelled:
            journal.flags["slow_sync_saw_cancel"] = True
            return
        time.sleep(0.01)


# Degradation and dead-lettering.
outcomes = Pipeline("t_outcomes")


@outcomes.stage(after=())
def start(ctx: StageContext) -> dict[str, Any]:
    return {"mode": (ctx.input or {}).get("mode", "ok")}


@outcomes.stage(critical=False, severity=Severity.LOW, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
def optional(ctx: StageContext) -> dict[str, Any]:
    mode = ctx.outputs["start"]["mode"]
    if mode == "optional_fails":
        raise ValueError("optional enrichment unavailable")
    if mode == "optional_skips":
        raise Skip("nothing to enrich")
    return {"enriched": True}


@outcomes.stage(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
def essential(ctx: StageContext) -> dict[str, Any]:
    mode = ctx.outputs["start"]["mode"]
    if mode == "essential_dies":
        raise ConnectionError("model server unreachable")
    if mode == "essential_rejects":
        raise Permanent("input cannot be processed")
    return {"optional_seen": "optional" in ctx.outputs}


# A cancellable long stage.
long_running = Pipeline("t_long")
long_running.stage("first", timeout=60)(_sleep_stage(10.0, "long"))
long_running.stage("second")(_sleep_stage(0.1, "long"))


ALL = [parallel, narrow, retry_later, timeouts, outcomes, long_running]
