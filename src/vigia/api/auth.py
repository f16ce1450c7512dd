"""API-key authentication and role checks, as FastAPI dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, WebSocket

from vigia.app import Vigia
from vigia.exceptions import PermissionDenied, Unauthenticated
from vigia.keys import ApiKey, Permission


def vigia_of(request: Request) -> Vigia:
    vigia: Vigia = request.app.state.vigia
    return vigia


def presented_key(headers: dict[str, str] | object, query: dict[str, str] | None = None) -> str | None:
    get = getattr(headers, "get")  # noqa: B009  # Headers and dicts alike
    authorization: str = get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return get("x-api-key") or (query or {}).get("api_key")


async def authenticate(vigia: Vigia, plaintext: str | None) -> ApiKey:
    if not plaintext:
        raise Unauthenticated()
    key = await asyncio.to_thread(vigia.keys.authenticate, plaintext)
    if key is None:
        raise Unauthenticated("the API key is not valid or has been revoked")
    return key


async def current_key(request: Request) -> ApiKey:
    return await authenticate(vigia_of(request), presented_key(request.headers))


async def websocket_key(websocket: WebSocket) -> ApiKey:
    vigia: Vigia = websocket.app.state.vigia
    return await authenticate(vigia, presented_key(websocket.headers, dict(websocket.query_params)))


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
Admin = Annotated[ApiKey, Depends(require(Permission.ADMIN))]
App = Annotated[Vigia, Depends(vigia_of)]
