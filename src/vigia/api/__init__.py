"""The HTTP API (FastAPI) under /api/v1, over a `Vigia` app: one module per resource,
`schemas` for the JSON shapes (which the command line prints too), `errors` for the one
error shape, `auth` for API keys, `application` for the app itself.

`create_app` and `request_stop` are imported on first use (PEP 562): a command that only
prints the API's shapes need not load FastAPI and every router.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigia.api.application import create_app, request_stop


def __getattr__(name: str) -> Any:
    if name in ("create_app", "request_stop"):
        return getattr(importlib.import_module("vigia.api.application"), name)
    raise AttributeError(f"module 'vigia.api' has no attribute {name!r}")


__all__ = ["create_app", "request_stop"]
