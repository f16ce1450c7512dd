"""uvicorn, run the way `vigia serve` needs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from vigia.api.application import request_stop


class Server(uvicorn.Server):
    """Ends live event streams when asked to stop (uvicorn would otherwise wait for every
    client following a long job), and exits with status 0 on SIGTERM (uvicorn re-raises the
    signal after its graceful shutdown, so the process would die of it)."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):  # no loop running yet: no stream to end
            request_stop(self._app, asyncio.get_running_loop())
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)
