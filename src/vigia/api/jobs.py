"""Jobs: submit (JSON or a file), status, result, list, cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile

from vigia import constants
from vigia.access import Permission
from vigia.api.auth import App, Reader, Submitter
from vigia.api.bodies import parse_json, read_model
from vigia.api.errors import ERRORS, error_body
from vigia.api.schemas import (
    API_PREFIX,
    ErrorResponse,
    IsoDateTime,
    JobDetailModel,
    JobModel,
    JobPageModel,
    JobResultModel,
    PendingResultModel,
    SubmitRequest,
    job_detail_model,
    job_model,
)
from vigia.app import Vigia
from vigia.blobs import BlobRef
from vigia.exceptions import InvalidInput, JobFileNotFound, PermissionDenied, UnsupportedMediaType
from vigia.job import JobState, StageRun, StageState
from vigia.pipeline import Pipeline
from vigia.store.base import JobFilter

router = APIRouter(tags=["jobs"])

UPLOAD_CHUNK = 256 * 1024
_WHOLE = re.compile(r"-?[0-9]{1,4}")

_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SubmitRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The job's file."},
                        "input": {"type": "string", "description": "The rest of the input, as a JSON object."},
                        "priority": {"type": "integer", "default": 0},
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


def submittable_pipeline(vigia: Vigia, name: str) -> Pipeline:
    """The pipeline a client may submit jobs to by this name (every one but the built-in
    notifications, whose jobs only escalations and alerts make)."""
    pipeline = vigia.registry.get(name)
    if pipeline.name == constants.NOTIFY_PIPELINE:
        raise InvalidInput("vigia.notify is built in: its jobs are made by escalations and alerts", pipeline=name)
    return pipeline


@router.post(
    "/pipelines/{name}/jobs",
    status_code=202,
    response_model=JobModel,
    responses={**ERRORS, 200: {"model": JobModel, "description": "An earlier job with the same Idempotency-Key"}},
    openapi_extra=_SUBMIT_BODY,
    summary="Submit a job",
)
async def submit(
    name: str,
    request: Request,
    key: Submitter,
    vigia: App,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Store a job and answer at once with `202 Accepted`; its stages run in the background.

    Send the input as JSON (`{"input": ..., "priority": 0}`), or as `multipart/form-data`
    with a `file` (its type is read from its content and must be one the pipeline accepts)
    and, optionally, the rest of the input as a JSON object in `input`. The same
    `Idempotency-Key` with the same input returns the first job (`200`); with a different
    input it is a `409`."""
    pipeline = submittable_pipeline(vigia, name)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        job_input, priority = await _multipart_input(request, pipeline, vigia)
    elif content_type == "application/json":
        body = read_model(SubmitRequest, await request.body())
        job_input, priority = body.input, body.priority
        if pipeline.accepts and isinstance(job_input, dict) and "file" in job_input:
            # File references come only from uploads: a client must not name a stored blob.
            raise InvalidInput("'file' is set by uploading a file (multipart), not in JSON", field="input.file")
    else:
        raise UnsupportedMediaType("send the job as application/json or multipart/form-data", received=content_type)
    submitted = await vigia.submit_job(
        pipeline.name, job_input, tenant=key.tenant, idempotency_key=idempotency_key, priority=priority, actor=key.id
    )
    model = job_model(submitted.job)
    headers = {"Location": model.links["self"]}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(model.model_dump(), 202 if submitted.created else 200, headers=headers)


async def _multipart_input(request: Request, pipeline: Pipeline, vigia: Vigia) -> tuple[Any, int]:
    if not pipeline.accepts:
        raise UnsupportedMediaType(f"pipeline {pipeline.name!r} takes no file: send its input as JSON")
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the form has no file: send it in a part named 'file'", field="file")
        extra = form.get("input")
        job_input: Any = {}
        if isinstance(extra, str) and extra.strip():
            job_input = parse_json(extra, "input")
        if not isinstance(job_input, dict):
            raise InvalidInput("with a file, 'input' must be a JSON object", field="input")
        priority_text = form.get("priority")
        if isinstance(priority_text, str) and priority_text:
            # ASCII digits only: int() would take " 5", "+5" and "٥".
            if not _WHOLE.fullmatch(priority_text):
                raise InvalidInput("'priority' must be a whole number", field="priority")
            priority = int(priority_text)
        else:
            priority = 0
        if not -100 <= priority <= 100:
            raise InvalidInput("'priority' must be between -100 and 100", field="priority")

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await upload.read(UPLOAD_CHUNK):
                yield chunk

        ref = await vigia.blobs.put(
            chunks(), accepts=pipeline.accepts, max_bytes=vigia.settings.max_upload_bytes, filename=upload.filename
        )
        if pipeline.check_file is not None:
            await asyncio.to_thread(pipeline.check_file, vigia.blobs.path(ref), ref.media_type, vigia.settings)
        return {**job_input, "file": ref.to_input()}, priority
    finally:
        await form.close()


@router.get("/jobs/{job_id}", response_model=JobDetailModel, responses=ERRORS, summary="A job's status")
async def get_job(job_id: str, key: Reader, vigia: App) -> JobDetailModel:
    """State, overall progress, current stage, and each stage's state, attempts, timings and error."""
    job = await vigia.get_job(job_id, key.tenant)
    runs = await vigia.get_runs(job.id)
    reviews = (await vigia.reviews_of([job.id])).get(job.id, [])
    pipeline = vigia.registry.get(job.pipeline) if job.pipeline in vigia.registry else None
    return job_detail_model(job, runs, reviews, pipeline)


@router.get(
    "/jobs/{job_id}/result",
    response_model=JobResultModel,
    responses={
        **ERRORS,
        202: {"model": PendingResultModel, "description": "Not finished yet"},
        409: {"model": ErrorResponse, "description": "The job failed or is dead"},
        410: {"model": ErrorResponse, "description": "The job was cancelled"},
    },
    summary="A job's result",
)
async def get_result(job_id: str, key: Reader, vigia: App) -> JSONResponse:
    """`200` with the result once the job succeeded (or finished degraded); `202` while it
    runs; `409` if it failed or is dead (with its error); `410` if it was cancelled."""
    job = await vigia.get_job(job_id, key.tenant)
    if job.state in (JobState.SUCCEEDED, JobState.DEGRADED):
        runs = await vigia.get_runs(job.id)
        degraded = [run.stage for run in runs if run.state in (StageState.FAILED, StageState.SKIPPED)]
        body = JobResultModel(id=job.id, state=job.state.value, result=job.result, degraded_stages=degraded)
        return JSONResponse(body.model_dump())
    if not job.state.is_terminal:
        pending = PendingResultModel(
            id=job.id, state=job.state.value, progress=job.progress, current_stage=job.current_stage
        )
        headers = {"Retry-After": "1", "Location": f"{API_PREFIX}/jobs/{job.id}"}
        return JSONResponse(pending.model_dump(), 202, headers=headers)
    details = {"job_id": job.id, "state": job.state.value, "error_type": job.error_type}
    if job.state is JobState.CANCELLED:
        return JSONResponse(error_body("job_cancelled", "the job was cancelled: it has no result", details), 410)
    message = f"the job is {job.state.value}: {job.error_type}: {job.error_message}"
    return JSONResponse(error_body(f"job_{job.state.value}", message, details), 409)


@router.get(
    "/jobs/{job_id}/file",
    response_class=FileResponse,
    responses={**ERRORS, 200: {"content": {"image/jpeg": {}, "image/png": {}, "application/pdf": {}}}},
    summary="A job's file, as processed",
)
async def get_file(job_id: str, key: Reader, vigia: App) -> FileResponse:
    """The file the job works on, as its stages left it: for a pressure-injury case, the
    photo stripped of its metadata and turned upright once intake has run (the upload is
    gone by then). `404` for a job without a file."""
    job = await vigia.get_job(job_id, key.tenant)
    ref = _processed_file(job.input, await vigia.get_runs(job.id))
    if ref is None:
        raise JobFileNotFound(f"job {job.id} has no file", job_id=job.id)
    try:
        path = await asyncio.to_thread(_existing_path, vigia, ref)
    except FileNotFoundError:
        raise JobFileNotFound(f"job {job.id}'s file is no longer stored", job_id=job.id) from None
    # No file name: the client's name may carry a patient's, and a download needs none.
    return FileResponse(path, media_type=ref.media_type, headers={"Cache-Control": "private, max-age=300"})


def _processed_file(job_input: Any, runs: list[StageRun]) -> BlobRef | None:
    for run in runs:
        if isinstance(run.output, dict) and isinstance(run.output.get("photo"), dict):
            return BlobRef.from_input(run.output["photo"])
    if isinstance(job_input, dict) and isinstance(job_input.get("file"), dict):
        return BlobRef.from_input(job_input["file"])
    return None


def _existing_path(vigia: Vigia, ref: BlobRef) -> Path:
    path = vigia.blobs.path(ref)
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


@router.get("/jobs", response_model=JobPageModel, responses=ERRORS, summary="List jobs")
async def list_jobs(
    key: Reader,
    vigia: App,
    pipeline: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="Repeat for several states.")] = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    id_prefix: Annotated[
        str | None, Query(max_length=32, pattern="^[0-9a-fA-F]{1,32}$", description="Jobs whose id starts so.")
    ] = None,
    batch: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$", description="A batch's jobs.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$")] = None,
) -> JobPageModel:
    """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
    where = JobFilter(
        tenant=key.tenant,
        pipeline=pipeline,
        states=tuple(state or ()),
        created_after=_epoch(created_after),
        created_before=_epoch(created_before),
        id_prefix=id_prefix.lower() if id_prefix else None,
        batch_id=batch,
    )
    page = await vigia.list_jobs(where, limit=limit, cursor=cursor)
    return JobPageModel(jobs=[job_model(job) for job in page.jobs], next_cursor=page.next_cursor)


def _epoch(moment: dt.datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


@router.post("/jobs/{job_id}/cancel", response_model=JobModel, responses=ERRORS, summary="Cancel a job")
async def cancel_job(job_id: str, key: Submitter, vigia: App) -> JobModel:
    """Nothing more of the job is dispatched; running stages are told to stop. `409` if the
    job has already finished. A notification (a page to clinicians) only an admin may stop."""
    job = await vigia.get_job(job_id, key.tenant)
    if job.pipeline == constants.NOTIFY_PIPELINE and not key.can(Permission.ADMIN):
        raise PermissionDenied(
            "only an admin key may cancel a notification", role=key.role.value, needs=Permission.ADMIN.value
        )
    return job_model(await vigia.cancel(job_id, key.tenant, key.id))
