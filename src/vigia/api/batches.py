"""Batches: many jobs of one pipeline in one request, followed as one."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from vigia.api.auth import App, Reader, Submitter
from vigia.api.bodies import body_schema, json_body
from vigia.api.errors import ERRORS
from vigia.api.jobs import submittable_pipeline
from vigia.api.schemas import API_PREFIX, BatchModel, BatchRequest, BatchSubmittedModel, batch_model, job_model
from vigia.exceptions import InvalidInput

router = APIRouter(tags=["batches"])


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchSubmittedModel,
    responses=ERRORS,
    summary="Submit a batch",
    openapi_extra=body_schema(BatchRequest),
)
async def submit_batch(
    body: Annotated[BatchRequest, Depends(json_body(BatchRequest))], key: Submitter, vigia: App
) -> JSONResponse:
    """Store one job per input, all or none (one bad input refuses the whole batch)."""
    if submittable_pipeline(vigia, body.pipeline).accepts and any(
        isinstance(item, dict) and "file" in item for item in body.inputs
    ):
        raise InvalidInput("'file' is set by uploading a file, not in a batch's inputs", field="inputs")
    batch_id, jobs = await vigia.submit_batch(
        body.pipeline, body.inputs, tenant=key.tenant, priority=body.priority, actor=key.id
    )
    model = BatchSubmittedModel(id=batch_id, jobs=[job_model(job) for job in jobs])
    return JSONResponse(model.model_dump(), 202, headers={"Location": f"{API_PREFIX}/batches/{batch_id}"})


@router.get("/batches/{batch_id}", response_model=BatchModel, responses=ERRORS, summary="A batch's progress")
async def get_batch(batch_id: str, key: Reader, vigia: App) -> BatchModel:
    """Counts of the batch's jobs by state and their mean progress."""
    batch = await vigia.get_batch(batch_id, key.tenant)
    job_ids = await asyncio.to_thread(vigia.store.batch_job_ids, batch_id)
    return batch_model(batch, job_ids)
