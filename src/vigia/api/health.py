"""Liveness: the process answers."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["monitoring"])


@router.get("/health", summary="Alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}
