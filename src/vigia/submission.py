"""What a submission is: the request, its answer, and the job it creates (the coordinator
writes it). Pure: no store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vigia import constants, orchestrator
from vigia.exceptions import InvalidInput
from vigia.job import Event, EventType, Job, JobState, new_job_id
from vigia.pipeline import Pipeline
from vigia.serialization import NotStorable, to_storable
from vigia.store.base import NewJob


@dataclass(frozen=True, slots=True)
class JobRequest:
    pipeline: str
    input: Any
    tenant: str = constants.DEFAULT_TENANT
    idempotency_key: str | None = None
    priority: int = 0
    #: Who submits, for the audit log (an API key's id).
    actor: str = constants.SYSTEM_ACTOR


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    events: list[Event]
    #: False when an idempotency key matched an earlier submission.
    created: bool


def input_fingerprint(pipeline: str, job_input: Any) -> str:
    canonical = json.dumps([pipeline, job_input], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def checked_input(pipeline: Pipeline, job_input: Any) -> tuple[Any, str]:
    """The input as it will be stored, checked by the pipeline, and its fingerprint;
    `InvalidInput` when it cannot be stored or the pipeline refuses it."""
    try:
        job_input = to_storable(job_input)
    except NotStorable as error:
        raise InvalidInput(f"the job input {error}") from None
    if pipeline.validate_input is not None:
        pipeline.validate_input(job_input)
    return job_input, input_fingerprint(pipeline.name, job_input)


def new_job(
    pipeline: Pipeline,
    job_input: Any,
    fingerprint: str,
    *,
    tenant: str,
    priority: int,
    now: float,
    idempotency_key: str | None = None,
    batch_id: str | None = None,
) -> tuple[NewJob, Submitted]:
    """A job to insert, and how its submission is answered once it is."""
    job = Job.queued(
        new_job_id(now),
        tenant=tenant,
        pipeline=pipeline.name,
        pipeline_version=pipeline.version,
        priority=priority,
        input=job_input,
        input_hash=fingerprint,
        created_at=now,
        idempotency_key=idempotency_key,
        batch_id=batch_id,
    )
    event = Event(job.id, job.last_seq, EventType.JOB_QUEUED, JobState.QUEUED, None, 0.0, None, now)
    new = NewJob(
        id=job.id,
        tenant=tenant,
        pipeline=pipeline.name,
        pipeline_version=pipeline.version,
        priority=priority,
        input=job_input,
        input_hash=fingerprint,
        idempotency_key=idempotency_key,
        runs=orchestrator.plan_job(pipeline),
        created_at=now,
        batch_id=batch_id,
    )
    return new, Submitted(job, [event], created=True)
