"""uvicorn, run the way `vigia serve` needs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vigia.api.application import request_stop
from vigia.api.errors import error_body


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, its own 400 (a request it cannot parse, before any app sees
    it) in the API's error shape instead of plain text."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body("malformed_request", f"the HTTP request cannot be read: {msg}")).encode()
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class Server(uvicorn.Server):
    """Ends live event streams when asked to stop (uvicorn would otherwise wait for every
    client following a long job), and exits with status 0 on SIGTERM (uvicorn re-raises the
    signal after its graceful shutdown, so the process would die of it)."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning", http=JsonErrorsProtocol))
        self._app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # What startup built (modules, the app, its pipelines and models) lives as long as
        # the process: moved out of the collector's sight, it is no longer walked by every
        # full collection, which otherwise stopped all requests for about 40 ms each time.
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):  # no loop running yet: no stream to end
            request_stop(self._app, asyncio.get_running_loop())
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)
