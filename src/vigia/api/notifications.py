"""Notifications and their delivery state (each is a job of the built-in `vigia.notify`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from vigia import constants
from vigia.api.auth import App, Reader
from vigia.api.errors import ERRORS
from vigia.api.schemas import iso
from vigia.job import Job, JobState, StageRun
from vigia.store.base import JobFilter

router = APIRouter(tags=["notifications"])


#: How a notification job's state reads as a delivery state.
DELIVERY = {
    JobState.QUEUED: "pending",
    JobState.RUNNING: "sending",
    JobState.SUCCEEDED: "delivered",
    JobState.DEGRADED: "delivered",
    JobState.FAILED: "undelivered",
    JobState.DEAD: "undelivered",
    JobState.CANCELLED: "cancelled",
}


class NotificationModel(BaseModel):
    id: str = Field(description="The notification job's id (retry it like any dead job).")
    delivery: str = Field(description="pending, sending, delivered, undelivered or cancelled.")
    channel: str | None
    role: str | None
    urgency: str | None
    subject: str | None
    about_job: str | None = Field(description="The job the notification is about, if any.")
    review_id: str | None
    attempts: int
    last_error: str | None
    created_at: str | None
    finished_at: str | None


class NotificationPageModel(BaseModel):
    notifications: list[NotificationModel]
    next_cursor: str | None


def notification_model(job: Job, runs: list[StageRun]) -> NotificationModel:
    spec: dict[str, Any] = job.input if isinstance(job.input, dict) else {}
    found = spec.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    run = runs[0] if runs else None
    error = None
    if run is not None and run.error_type:
        error = f"{run.error_type}: {run.error_message}"
    return NotificationModel(
        id=job.id,
        delivery=DELIVERY[job.state],
        channel=spec.get("channel"),
        role=message.get("role"),
        urgency=message.get("urgency"),
        subject=message.get("subject"),
        about_job=message.get("job_id"),
        review_id=message.get("review_id"),
        attempts=run.attempts if run is not None else 0,
        last_error=error,
        created_at=iso(job.created_at),
        finished_at=iso(job.finished_at),
    )


@router.get("/notifications", response_model=NotificationPageModel, responses=ERRORS, summary="Notifications")
async def list_notifications(
    key: Reader,
    vigia: App,
    state: Annotated[list[JobState] | None, Query(description="Job states (dead = undelivered).")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$")] = None,
) -> NotificationPageModel:
    """Newest first, with their delivery state, attempts and last error."""
    where = JobFilter(tenant=key.tenant, pipeline=constants.NOTIFY_PIPELINE, states=tuple(state or ()))
    page = await vigia.list_jobs(where, limit=limit, cursor=cursor)
    listed = [notification_model(job, await vigia.get_runs(job.id)) for job in page.jobs]
    return NotificationPageModel(notifications=listed, next_cursor=page.next_cursor)
