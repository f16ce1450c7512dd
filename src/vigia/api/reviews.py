"""Human-review items: list them, acknowledge one, resolve one with a note."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from vigia.api.auth import App, Reader, Reviewer
from vigia.api.bodies import body_schema, json_body
from vigia.api.errors import ERRORS
from vigia.api.schemas import ReviewModel, ReviewPageModel, review_model
from vigia.escalation import MAX_RESOLUTION, ReviewStatus
from vigia.store.base import ReviewFilter

router = APIRouter(tags=["reviews"])


class ResolveRequest(BaseModel):
    note: str = Field(min_length=1, max_length=MAX_RESOLUTION, description="What was decided.")


@router.get("/reviews", response_model=ReviewPageModel, responses=ERRORS, summary="Human-review items")
async def list_reviews(
    key: Reader,
    vigia: App,
    status: Annotated[list[ReviewStatus] | None, Query(description="Repeat for several.")] = None,
    role: str | None = None,
    job_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$")] = None,
) -> ReviewPageModel:
    """Newest first; by default every status. `next_cursor` gives the next (older) page."""
    where = ReviewFilter(tenant=key.tenant, statuses=tuple(status or ()), role=role, job_id=job_id)
    found = await vigia.list_reviews(where, limit=limit + 1, cursor=cursor)
    more = len(found) > limit
    found = found[:limit]
    return ReviewPageModel(
        reviews=[review_model(item) for item in found], next_cursor=found[-1].id if more and found else None
    )


@router.post("/reviews/{review_id}/acknowledge", response_model=ReviewModel, responses=ERRORS, summary="Take a review")
async def acknowledge(review_id: str, key: Reviewer, vigia: App) -> ReviewModel:
    """Say that you are looking at it (`409` unless it is open)."""
    return review_model(await vigia.review(review_id, ReviewStatus.ACKNOWLEDGED, key.id, tenant=key.tenant))


@router.post(
    "/reviews/{review_id}/resolve",
    response_model=ReviewModel,
    responses=ERRORS,
    summary="Resolve a review",
    openapi_extra=body_schema(ResolveRequest),
)
async def resolve(
    review_id: str, body: Annotated[ResolveRequest, Depends(json_body(ResolveRequest))], key: Reviewer, vigia: App
) -> ReviewModel:
    """Close it with a note saying what was decided (`409` if already resolved). The note
    stays with the review; the audit log records who resolved it and when."""
    review = await vigia.review(review_id, ReviewStatus.RESOLVED, key.id, tenant=key.tenant, note=body.note)
    return review_model(review)
