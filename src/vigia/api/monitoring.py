"""Health, readiness, the monitoring status and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from vigia import wiring
from vigia.api.auth import Admin, App
from vigia.api.errors import ERRORS
from vigia.api.schemas import MonitoringHistoryModel, MonitoringStatusModel
from vigia.exceptions import StoreError

router = APIRouter(tags=["monitoring"])


@router.get("/health", summary="Alive")
async def health() -> dict[str, str]:
    """The process answers (no check of anything else)."""
    return {"status": "ok"}


@router.get("/ready", summary="Ready to do work")
async def ready(vigia: App) -> JSONResponse:
    """`200` when the store answers, the broker answers (distributed mode) and every
    required queue has at least one worker; `503` with what is missing otherwise."""
    checks: dict[str, Any] = {}
    try:
        await asyncio.to_thread(vigia.database.check)
        checks["store"] = "ok"
    except StoreError as error:
        checks["store"] = error.message
    if vigia.settings.distributed:
        problem = await asyncio.to_thread(wiring.broker_problem, vigia.settings)
        checks["broker"] = "ok" if problem is None else f"the broker cannot be reached: {problem}"
    try:
        consumed = await asyncio.to_thread(vigia.watch.consumers)
    except Exception as error:  # the broker or a worker did not answer: not ready
        consumed, checks["workers"] = {}, f"workers could not be asked: {type(error).__name__}"
    missing = [queue for queue in vigia.watch.required_queues if not consumed.get(queue)]
    checks.setdefault("workers", "ok" if not missing else f"no worker for: {', '.join(missing)}")
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)


@router.get(
    "/monitoring/status",
    response_model=MonitoringStatusModel,
    responses=ERRORS,
    summary="Queues, workers, throughput, failures, timings, alerts",
)
async def status(key: Admin, vigia: App) -> MonitoringStatusModel:
    """Per queue the depth and consumers; throughput, failure rate and processing-time
    percentiles per pipeline over the last hour; the dead-letter and review counts; and the
    alerts now active (as last evaluated, with the rules applied to these facts). These are
    the whole installation's, every tenant's: admin keys only."""
    observation = await asyncio.to_thread(vigia.watch.observe)
    return MonitoringStatusModel.model_validate(observation.status())


@router.get(
    "/monitoring/history",
    response_model=MonitoringHistoryModel,
    responses=ERRORS,
    summary="The last hour, per minute",
)
async def history(key: Admin, vigia: App) -> MonitoringHistoryModel:
    """Per minute of the last hour: per pipeline the jobs finished and failed, the failure
    rate and the p95 processing time (null for a minute without jobs), read from the jobs
    themselves; per queue the deepest backlog and the consumers the watch's checks saw
    (every `VIGIA_MONITOR_INTERVAL` seconds; null before the first check of a minute).
    Kept in the store: a restarted server draws the same hour. Admin keys only."""
    return MonitoringHistoryModel.model_validate(await asyncio.to_thread(vigia.watch.trends))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(key: Admin, vigia: App) -> Response:
    """The same facts in Prometheus text format (scrape with an admin key as bearer token)."""
    observation = await asyncio.to_thread(vigia.watch.observe)
    return Response(observation.metrics(), media_type=CONTENT_TYPE_LATEST)
