"""The FastAPI app over a `Vigia` app: its routers, error handlers, limits and lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vigia import __version__, web
from vigia.api import (
    batches,
    dlq,
    documents,
    errors,
    identity,
    jobs,
    monitoring,
    notifications,
    pipelines,
    reviews,
    streams,
)
from vigia.api.auth import KeyCache
from vigia.api.limits import BodySizeLimit
from vigia.api.schemas import API_PREFIX
from vigia.app import Vigia


def create_app(vigia: Vigia, *, workers: bool = True) -> FastAPI:
    """The API for ``vigia``; its lifespan starts and stops the app (with embedded
    workers unless ``workers`` is false)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await vigia.start(workers=workers, watch=True)
        try:
            yield
        finally:
            await vigia.stop()

    app = FastAPI(
        title="Vigía",
        version=__version__,
        description="Run long clinical and document AI pipelines in the background.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.vigia = vigia
    app.state.key_cache = KeyCache()
    # Set when the server is asked to stop: live streams end, so that shutdown is not held
    # up by clients following long jobs (they resume from their last event elsewhere).
    app.state.stopping = asyncio.Event()
    errors.install(app)
    for module in (identity, jobs, batches, pipelines, streams, reviews, dlq, notifications, monitoring, documents):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(web.router)
    app.add_middleware(BodySizeLimit, multipart_limit=vigia.settings.max_upload_bytes + 64 * 1024)
    return app


def request_stop(app: FastAPI, loop: asyncio.AbstractEventLoop) -> None:
    """Tell ``app``'s live streams to end (safe to call from a signal handler)."""
    loop.call_soon_threadsafe(app.state.stopping.set)
