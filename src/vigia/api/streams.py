"""Live progress: Server-Sent Events and a WebSocket per job, both resumable, and one
stream of every job of the key's tenant (what a dashboard's job list follows).

The per-job streams send the stored events after the client's last sequence number first,
then live ones, and end after the job's final event. A slow client only slows itself: the
bus never waits for it, and what it missed is read back from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from vigia import constants
from vigia.api.auth import App, Reader, websocket_key
from vigia.api.errors import ERRORS, status_of
from vigia.api.schemas import event_model
from vigia.app import Vigia
from vigia.exceptions import VigiaError
from vigia.job import MAX_SEQ, Event

router = APIRouter(tags=["events"])

#: Events queued for one client before its reader waits (the bus never does).
CLIENT_BUFFER = 100
_DONE = object()
_QUIET = object()
_STOPPING = object()
_GONE = object()


async def _next(
    queue: asyncio.Queue[object],
    stopping: asyncio.Event,
    timeout: float | None,
    client_gone: asyncio.Future[None] | None = None,
) -> object:
    """The next queued item, or _STOPPING (server shutting down), _GONE (client left) or
    _QUIET (nothing for ``timeout`` seconds), whichever comes first."""
    getter = asyncio.ensure_future(queue.get())
    stop = asyncio.ensure_future(stopping.wait())
    waiting: set[asyncio.Future[Any]] = {getter, stop}
    if client_gone is not None:
        waiting.add(client_gone)
    try:
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if stopping.is_set():
        return _STOPPING
    if client_gone is not None and client_gone.done():
        return _GONE
    return _QUIET


class _Failed:
    """The event source failed: the stream must say so, not pretend the job ended."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _pump(events: AsyncIterator[Event], queue: asyncio.Queue[object]) -> None:
    end: object = _DONE
    try:
        async for event in events:
            await queue.put(event)
    except Exception as error:
        end = _Failed(error)
    finally:
        # Never wait here: when the reader has gone, nobody will make room.
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(end)


@router.get(
    "/jobs/{job_id}/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "The job's events"}},
    summary="Follow a job (Server-Sent Events)",
)
async def job_events(
    job_id: str,
    request: Request,
    key: Reader,
    vigia: App,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ, description="Resume after this sequence number.")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Each event's `id` is its sequence number, so a reconnecting client (which sends
    `Last-Event-ID`) resumes where it stopped. The stream ends after the job's final event."""
    await vigia.get_job(job_id, key.tenant)
    resume = after if after is not None else _sequence(last_event_id)

    stopping: asyncio.Event = request.app.state.stopping

    async def stream() -> AsyncIterator[str]:
        queue: asyncio.Queue[object] = asyncio.Queue(CLIENT_BUFFER)
        pump = asyncio.create_task(_pump(vigia.events(job_id, resume), queue))
        try:
            yield "retry: 2000\n\n"
            while True:
                item = await _next(queue, stopping, constants.SSE_HEARTBEAT_SECONDS)
                if item is _QUIET:
                    yield ": still here\n\n"
                    continue
                if item is _DONE or item is _STOPPING or isinstance(item, _Failed):
                    # A client that reconnects later resumes from its Last-Event-ID (a store
                    # failure ends the stream without a final event, so the client does).
                    return
                assert isinstance(item, Event)
                data = json.dumps(event_model(item).model_dump(), separators=(",", ":"))
                yield f"id: {item.seq}\nevent: {item.type.value}\ndata: {data}\n\n"
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


#: Jobs whose tenant the tenant-wide stream remembers (a job's tenant never changes).
TENANT_CACHE_SIZE = 10_000


class _TenantOf:
    """The tenant of a job, read from the store once per job and remembered."""

    def __init__(self, vigia: Vigia) -> None:
        self._vigia = vigia
        self._known: dict[str, str | None] = {}

    async def __call__(self, job_id: str) -> str | None:
        if job_id not in self._known:
            if len(self._known) >= TENANT_CACHE_SIZE:
                self._known.clear()
            self._known[job_id] = await self._vigia.tenant_of(job_id)
        return self._known[job_id]


@router.get(
    "/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "Live events"}},
    summary="Follow every job of the tenant (Server-Sent Events)",
)
async def tenant_events(request: Request, key: Reader, vigia: App) -> StreamingResponse:
    """Live events of every job of the key's tenant, as they happen in this server (a job
    list's badges and bars). It does not replay the past: a client that reconnects reads
    the jobs it shows again (`GET /jobs`), then follows from there; events that a worker in
    another process wrote without a shared bus arrive through that re-read. Each event's
    `id` is `<job id>:<sequence number>`; the stream never ends by itself."""
    stopping: asyncio.Event = request.app.state.stopping
    tenant_of = _TenantOf(vigia)

    async def stream() -> AsyncIterator[str]:
        with vigia.bus.subscribe(None) as subscription:
            yield "retry: 2000\n\n"
            while not stopping.is_set():
                event = await subscription.get(timeout=constants.SSE_HEARTBEAT_SECONDS)
                if subscription.overflowed:
                    # Events were dropped: tell the client to read its jobs again.
                    subscription.overflowed = False
                    subscription.drain()
                    yield "event: resync\ndata: {}\n\n"
                    continue
                if event is None:
                    yield ": still here\n\n"
                    continue
                if await tenant_of(event.job_id) != key.tenant:
                    continue
                data = json.dumps(event_model(event).model_dump(), separators=(",", ":"))
                yield f"id: {event.job_id}:{event.seq}\nevent: {event.type.value}\ndata: {data}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _sequence(text: str | None) -> int:
    try:
        return min(MAX_SEQ, max(0, int(text))) if text else 0
    except ValueError:
        return 0


@router.websocket("/ws/jobs/{job_id}")
async def job_socket(websocket: WebSocket, job_id: str, after: int = 0) -> None:
    """The job's events as JSON messages, after sequence number `after`; the server closes
    the socket (1000) after the final event. Authenticate with `Authorization: Bearer`,
    `X-API-Key` or an `api_key` query parameter. Close codes: 4401 no valid key, 4404 no
    such job, 1011 the store failed."""
    vigia: Vigia = websocket.app.state.vigia
    try:
        key = await websocket_key(websocket)
        await vigia.get_job(job_id, key.tenant)
    except VigiaError as error:
        # Accepted first: a socket closed during the handshake reaches a real client as a
        # bare HTTP 403, and the documented close code would never arrive.
        await websocket.accept()
        await websocket.close(code=4000 + status_of(error), reason=error.message[:120])
        return
    await websocket.accept()
    queue: asyncio.Queue[object] = asyncio.Queue(CLIENT_BUFFER)
    pump = asyncio.create_task(_pump(vigia.events(job_id, min(MAX_SEQ, max(0, after))), queue))
    listener = asyncio.create_task(_until_disconnect(websocket))
    stopping: asyncio.Event = websocket.app.state.stopping
    try:
        while True:
            item = await _next(queue, stopping, None, listener)
            if item is _GONE:
                return
            if item is _STOPPING:
                await websocket.close(code=1001, reason="server shutting down")
                return
            if item is _DONE:
                await websocket.close(code=1000)
                return
            if isinstance(item, _Failed):
                await websocket.close(code=1011, reason="the job store failed: reconnect with ?after=")
                return
            assert isinstance(item, Event)
            await websocket.send_json(event_model(item).model_dump())
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        # Cancelled, not awaited: this handler may itself be cancelled (the client left),
        # and waiting here would turn that into an error on the way out.
        for task in (pump, listener):
            task.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
