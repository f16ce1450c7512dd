"""API-key authentication and role checks, as FastAPI dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request, WebSocket
from starlette.datastructures import Headers

from vigia.access import ApiKey, Permission
from vigia.app import Vigia
from vigia.exceptions import PermissionDenied, Unauthenticated

#: How long a verified key is trusted without asking the store again: a key revoked (by
#: `vigia keys revoke`, another process) stops working within this time. One lookup per key
#: per second is nothing to the store; a revoked key honoured for long is a hole.
KEY_CACHE_SECONDS = 1.0
KEY_CACHE_SIZE = 1000


class KeyCache:
    """Recently verified keys, by a hash of the presented key (never the key itself)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._clock = clock

    def get(self, fingerprint: str) -> ApiKey | None:
        entry = self._entries.get(fingerprint)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def put(self, fingerprint: str, key: ApiKey) -> None:
        if len(self._entries) >= KEY_CACHE_SIZE:
            self._entries.clear()
        self._entries[fingerprint] = (key, self._clock() + KEY_CACHE_SECONDS)

    def forget(self, fingerprint: str) -> None:
        self._entries.pop(fingerprint, None)


def presented_key(headers: Headers, query: Mapping[str, str] | None = None) -> str | None:
    authorization = headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return headers.get("x-api-key") or (query or {}).get("api_key")


async def authenticate(vigia: Vigia, cache: KeyCache, plaintext: str | None) -> ApiKey:
    if not plaintext:
        raise Unauthenticated()
    fingerprint = hashlib.sha256(plaintext.encode()).hexdigest()
    key = cache.get(fingerprint)
    if key is not None:
        return key
    key = await asyncio.to_thread(vigia.keys.authenticate, plaintext)
    if key is None:
        cache.forget(fingerprint)
        raise Unauthenticated("the API key is not valid or has been revoked")
    cache.put(fingerprint, key)
    return key


async def vigia_of(request: Request) -> Vigia:
    # async on purpose: FastAPI runs plain-function dependencies in a thread pool.
    vigia: Vigia = request.app.state.vigia
    return vigia


async def current_key(request: Request) -> ApiKey:
    return await authenticate(request.app.state.vigia, request.app.state.key_cache, presented_key(request.headers))


async def websocket_key(websocket: WebSocket) -> ApiKey:
    state = websocket.app.state
    return await authenticate(state.vigia, state.key_cache, presented_key(websocket.headers, websocket.query_params))


def require(permission: Permission) -> Callable[..., Awaitable[ApiKey]]:
    async def check(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if not key.can(permission):
            raise PermissionDenied(
                f"a {key.role.value} key may not {permission.value}", role=key.role.value, needs=permission.value
            )
        return key

    return check


Reader = Annotated[ApiKey, Depends(require(Permission.READ))]
Submitter = Annotated[ApiKey, Depends(require(Permission.SUBMIT))]
Reviewer = Annotated[ApiKey, Depends(require(Permission.REVIEW))]
Admin = Annotated[ApiKey, Depends(require(Permission.ADMIN))]
App = Annotated[Vigia, Depends(vigia_of)]
