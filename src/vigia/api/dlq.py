"""The dead-letter queue: dead jobs with their last error, statistics, retries, purges."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from vigia.api.auth import Admin, App, Reader
from vigia.api.bodies import body_schema, json_body
from vigia.api.errors import ERRORS
from vigia.api.schemas import DeadPageModel, DeadStatisticsModel, IsoDateTime, JobModel, dead_model, job_model
from vigia.exceptions import InvalidInput
from vigia.store.base import DeadFilter

router = APIRouter(tags=["dead-letter queue"])


class DeadFilterModel(BaseModel):
    """Which dead jobs: every field narrows the selection."""

    pipeline: str | None = None
    stage: str | None = Field(default=None, description="The stage that failed.")
    error_type: str | None = None
    died_after: IsoDateTime | None = None
    died_before: IsoDateTime | None = None


def dead_filter_query(
    pipeline: str | None = None,
    stage: Annotated[str | None, Query(description="The stage that failed.")] = None,
    error_type: str | None = None,
    died_after: IsoDateTime | None = None,
    died_before: IsoDateTime | None = None,
) -> DeadFilterModel:
    """The dead-job filter from query parameters."""
    return DeadFilterModel(
        pipeline=pipeline, stage=stage, error_type=error_type, died_after=died_after, died_before=died_before
    )


DeadQuery = Annotated[DeadFilterModel, Depends(dead_filter_query)]


class CountModel(BaseModel):
    count: int


def _epoch(moment: dt.datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def _filter(tenant: str, chosen: DeadFilterModel) -> DeadFilter:
    return DeadFilter(
        tenant=tenant,
        pipeline=chosen.pipeline,
        stage=chosen.stage,
        error_type=chosen.error_type,
        died_after=_epoch(chosen.died_after),
        died_before=_epoch(chosen.died_before),
    )


@router.get("/dlq", response_model=DeadPageModel, responses=ERRORS, summary="Dead jobs")
async def list_dead(
    key: Reader,
    vigia: App,
    chosen: DeadQuery,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$")] = None,
) -> DeadPageModel:
    """Jobs whose critical stage exhausted its retries, newest first, with the stage that
    failed and its last error."""
    found = await vigia.list_dead(_filter(key.tenant, chosen), limit=limit + 1, cursor=cursor)
    more = len(found) > limit
    found = found[:limit]
    return DeadPageModel(
        jobs=[dead_model(item) for item in found], next_cursor=found[-1].job.id if more and found else None
    )


@router.get("/dlq/statistics", response_model=DeadStatisticsModel, responses=ERRORS, summary="Dead jobs counted")
async def statistics(key: Reader, vigia: App, chosen: DeadQuery) -> DeadStatisticsModel:
    """Dead jobs by pipeline, by the stage that failed, by error type, and per hour of death
    (`hour` is the hour's start in epoch seconds)."""
    return DeadStatisticsModel(**await vigia.dlq_statistics(_filter(key.tenant, chosen)))


@router.post(
    "/dlq/retry",
    response_model=CountModel,
    responses=ERRORS,
    summary="Retry dead jobs",
    openapi_extra=body_schema(DeadFilterModel),
)
async def retry_dead(
    body: Annotated[DeadFilterModel, Depends(json_body(DeadFilterModel))], key: Admin, vigia: App
) -> CountModel:
    """Every dead job the filter selects resumes from the stage that failed; says how many."""
    return CountModel(count=await vigia.retry_dead(_filter(key.tenant, body), key.id))


@router.delete("/dlq", response_model=CountModel, responses=ERRORS, summary="Purge dead jobs")
async def purge(
    key: Admin,
    vigia: App,
    chosen: DeadQuery,
    everything: Annotated[bool, Query(alias="all", description="Purge with no filter at all.")] = False,
) -> CountModel:
    """Delete the dead jobs the filter selects, with their stages and events (the audit log
    keeps who purged what). Without any filter, `all=true` is required."""
    if not everything and not chosen.model_dump(exclude_none=True):
        raise InvalidInput("name what to purge (pipeline, stage, error_type, died_after, died_before) or pass all=true")
    return CountModel(count=await vigia.purge_dead(_filter(key.tenant, chosen), key.id))


@router.post(
    "/jobs/{job_id}/retry", status_code=202, response_model=JobModel, responses=ERRORS, summary="Retry a dead job"
)
async def retry_job(job_id: str, key: Admin, vigia: App) -> JSONResponse:
    """Resume a dead or failed job from the stage that failed, keeping what earlier stages
    produced (`409` for a job in any other state)."""
    job = await vigia.retry(job_id, key.tenant, key.id)
    model = job_model(job)
    return JSONResponse(model.model_dump(), 202, headers={"Location": model.links["self"]})
