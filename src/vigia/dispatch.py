"""What a worker is handed with a stage run: the claim it makes, and the outputs of the
stages its stage depends on. Pure: from snapshots and the registry, no store.

A claim is made in memory (`claimed`) and written later, with the attempt's outcome or by
the keeper of a long stage; a distributed worker may even make it from what its message
said (`planned_claim`), without reading the store at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from vigia.job import Event, Job, StageRun, StageState
from vigia.pipeline import Pipeline
from vigia.registry import Registry
from vigia.store.base import Dispatch, StageWork


@dataclass(frozen=True, slots=True)
class Assignment:
    """A claimed stage run with what its function needs."""

    run: StageRun
    job: Job
    #: Outputs of the stages this one depends on, directly or not.
    outputs: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SlotOffer:
    """An executor's free slots, offered to a write so that it claims ready stage runs in
    its own transaction (a submission claiming its job's first stage) instead of leaving
    them to a claim of their own."""

    free_slots: Mapping[str, int]
    owner: str
    lease_seconds: float
    #: Claim on every queue even if the write makes nothing ready (a poll, a wake, a slot
    #: freed where runs were left waiting); otherwise only where it makes runs ready.
    eager: bool = False

    def only(self, queues: Iterable[str]) -> SlotOffer:
        wanted = set(queues)
        return replace(self, free_slots={queue: n for queue, n in self.free_slots.items() if queue in wanted})


@dataclass(slots=True)
class Claimed:
    """What a claim took (and the events it wrote), for the executor that offered the slots."""

    assignments: list[Assignment]
    events: list[Event]
    #: The queues the claim was made for.
    queues: tuple[str, ...] = ()


def upstream_outputs(pipeline: Pipeline, runs: Mapping[str, StageRun], stage: str) -> dict[str, Any]:
    """Outputs of the stages ``stage`` depends on, directly or not, that succeeded."""
    ancestors = pipeline.node(stage).ancestors
    return {name: run.output for name, run in runs.items() if name in ancestors and run.state is StageState.SUCCEEDED}


def assignment(pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], run: StageRun) -> Assignment:
    return Assignment(run=runs[run.stage], job=job, outputs=upstream_outputs(pipeline, runs, run.stage))


def claimed(run: StageRun, owner: str, lease_seconds: float, now: float) -> StageRun:
    """``run`` as the claim of its next attempt by ``owner``, starting ``now``."""
    return run.evolve(
        state=StageState.RUNNING,
        attempts=run.attempts + 1,
        lease_owner=owner,
        lease_until=now + lease_seconds,
        started_at=now,
        finished_at=None,
        duration=None,
        progress=0.0,
    )


def planned_claim(registry: Registry, item: Dispatch, owner: str, lease_seconds: float, now: float) -> StageRun | None:
    """The claim a worker means to make on a run its message described, made without
    reading the store; None when the message says too little or names what this
    installation does not run (the worker then reads)."""
    work = item.work
    if work is None or work.outputs is None or item.pipeline not in registry:
        return None
    if item.stage not in registry.get(item.pipeline).nodes:
        return None
    sent = StageRun.ready(
        item.run_id, job_id=work.job_id, stage=item.stage, queue=item.queue, attempts=work.attempts, available_at=now
    )
    return claimed(sent, owner, lease_seconds, now)


def first_stage_work(registry: Registry, item: Dispatch) -> Dispatch:
    """The store's dispatch knows no outputs: a stage that depends on none needs none."""
    if item.work is None or item.pipeline not in registry:
        return item
    node = registry.get(item.pipeline).nodes.get(item.stage)
    if node is None or node.ancestors:
        return item
    return replace(item, work=replace(item.work, outputs={}))


def with_work(pipeline: Pipeline, job: Job, runs: Mapping[str, StageRun], item: Dispatch) -> Dispatch:
    """A run a settlement made ready, with what its worker needs (all in the settlement's hands)."""
    run = runs[item.stage]
    outputs = upstream_outputs(pipeline, runs, item.stage)
    return replace(item, work=StageWork(job.id, run.attempts, job.input, outputs, job.tenant))
