"""Pipelines used by the tests. Stage functions do real (small) work and record what they
saw in `journal`, so that tests can check what ran, when, and with what."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import defaultdict
from typing import Any

from vigia import Pipeline, Retry, RetryPolicy, Severity, Skip, StageContext
from vigia.exceptions import Permanent
from vigia.pipeline import EscalationRule


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


# --- oversight: severity policies, result rules, stage requests, patient data ------------

#: Switches a test flips between attempts (in this process: embedded mode only).
switches: dict[str, bool] = {}

# A CRITICAL stage that always fails (retryable): escalated at its first failure, dead
# after its second attempt.
critical_failure = Pipeline("t_critical", subject_field="patient_code")


@critical_failure.stage(after=(), severity=Severity.CRITICAL, retry=RetryPolicy(max_attempts=2, base_delay=0.05))
def vital_check(ctx: StageContext) -> None:
    journal.enter("oversight", f"{ctx.job_id}:vital_check:{ctx.attempt}")
    journal.leave("oversight", f"{ctx.job_id}:vital_check:{ctx.attempt}")
    raise ConnectionError("vital-sign service unreachable")


# A LOW stage that fails for good: never escalated.
low_failure = Pipeline("t_low")


@low_failure.stage(after=(), severity=Severity.LOW, retry=RetryPolicy(max_attempts=2, base_delay=0.05))
def housekeeping(ctx: StageContext) -> None:
    raise ConnectionError("cache unavailable")


# Result-driven escalation: low confidence goes to the specialists.
confidence = Pipeline(
    "t_confidence",
    subject_field="patient_code",
    stages=[],
)


@confidence.stage(after=())
def detect(ctx: StageContext) -> dict[str, Any]:
    return {"confidence": float((ctx.input or {}).get("confidence", 0.9))}


@confidence.stage()
def summarise(ctx: StageContext) -> dict[str, Any]:
    return {"confidence": ctx.outputs["detect"]["confidence"]}


confidence.escalate_when(
    EscalationRule("detect", lambda output: output["confidence"] < 0.60, "confidence below 0.60", role="specialists")
)

# Resumable from the dead-letter queue: "load" succeeds once, "analyse" fails while its
# switch is on (one attempt: dead at once).
resumable = Pipeline("t_resumable")


@resumable.stage(after=())
def load(ctx: StageContext) -> dict[str, Any]:
    journal.enter("resumable", f"{ctx.job_id}:load")
    journal.leave("resumable", f"{ctx.job_id}:load")
    return {"loaded": (ctx.input or {}).get("n")}


@resumable.stage(retry=RetryPolicy(max_attempts=1))
def analyse(ctx: StageContext) -> dict[str, Any]:
    journal.enter("resumable", f"{ctx.job_id}:analyse")
    journal.leave("resumable", f"{ctx.job_id}:analyse")
    if switches.get("analyse_broken", True):
        raise TimeoutError("analysis model timed out")
    return {"analysed": ctx.outputs["load"]["loaded"]}


# Patient data everywhere it could leak from: the input, an error message, a decision.
patient_data = Pipeline("t_patient", subject_field="patient_code")


@patient_data.stage(after=(), retry=RetryPolicy(max_attempts=2, base_delay=0.01), severity=Severity.HIGH)
def read_note(ctx: StageContext) -> dict[str, Any]:
    note = (ctx.input or {}).get("note", "")
    if ctx.attempt == 1:
        raise ValueError(f"could not parse the note: {note}")
    ctx.audit("note.read", words=len(note.split()), urgent=True)
    ctx.escalate("the note mentions a fall", role="medical_team")
    return {"words": len(note.split())}


# A chain whose first stage fails for good: the two after it will never run.
chain = Pipeline("t_chain")


@chain.stage(after=())
def first(ctx: StageContext) -> dict[str, Any]:
    raise Permanent("the input cannot be used")


@chain.stage()
def second(ctx: StageContext) -> dict[str, Any]:
    return {}


@chain.stage()
def third(ctx: StageContext) -> dict[str, Any]:
    return {}


# Two short stages that append every start, with the process that made it, to a journal file
# shared by all processes (`journal` in the input): the chaos probe counts each stage's
# executions from it, and sees what a worker it is about to kill holds.
chaos = Pipeline("t_chaos")


def _journalled(ctx: StageContext) -> dict[str, Any]:
    line = f"{ctx.job_id} {ctx.stage} {ctx.attempt} {os.getpid()}\n".encode()
    descriptor = os.open(ctx.input["journal"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line)  # one short O_APPEND write: whole, whatever else appends
    finally:
        os.close(descriptor)
    time.sleep(ctx.input.get("pace", 0.02))
    return {"attempt": ctx.attempt}


chaos.stage("first", after=())(_journalled)
chaos.stage("second", after=("first",))(_journalled)

# The same, declared short (a timeout under `BATCHABLE_TIMEOUT`): in distributed mode a
# backlog of them goes several runs to a Celery message.
brief = Pipeline("t_brief")
brief.stage("first", after=(), timeout=10)(_journalled)
brief.stage("second", after=("first",), timeout=10)(_journalled)


ALL = [
    chaos,
    brief,
    chain,
    parallel,
    narrow,
    retry_later,
    timeouts,
    outcomes,
    long_running,
    critical_failure,
    low_failure,
    confidence,
    resumable,
    patient_data,
]


# Stages in a process of their own (embedded mode): `spin` burns the CPU for `seconds`
# reporting progress (and with `refuse` fails for good after asking for a review), each
# saying which process ran it; `stuck` never returns: it is killed at its timeout.
isolated = Pipeline("t_isolated")


@isolated.stage(after=(), run_in="process", timeout=60)
def spin(ctx: StageContext) -> dict[str, Any]:
    seconds = float(ctx.input.get("seconds", 0))
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
        if count % 100_000 == 0:
            ctx.progress(min(1.0, 1 - (deadline - time.monotonic()) / max(seconds, 1e-9)), "spinning")
    ctx.progress(1.0, "done")
    if ctx.input.get("refuse"):
        ctx.escalate("the isolated stage asked for a person", severity="high")
        raise Permanent("refused on purpose")
    return {"pid": os.getpid(), "loops": count}


@isolated.stage(run_in="process", timeout=60)
def after_spin(ctx: StageContext) -> dict[str, Any]:
    return {"pid": os.getpid(), "upstream": ctx.outputs["spin"]["pid"]}


stuck = Pipeline("t_stuck")


@stuck.stage(after=(), run_in="process", timeout=1.0, retry=RetryPolicy(max_attempts=1))
def hang(ctx: StageContext) -> None:
    with open(ctx.input["pid_file"], "w") as pid_file:
        pid_file.write(str(os.getpid()))
    while True:
        time.sleep(0.05)


ALL.extend([isolated, stuck])
