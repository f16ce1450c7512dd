"""Local servers that speak the real protocols of the outside services Vigía notifies: an
HTTP endpoint receiving signed webhooks (or Slack messages), and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from vigia.notify import verify_signature


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    #: Whether the webhook signature checked out with the receiver's secret.
    signed: bool
    #: When the request arrived (epoch seconds).
    arrived: float = 0.0

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    """Answers 500 to the first ``failures`` requests, then 200; records every request."""

    secret: str
    url: str = ""
    failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [delivery for index, delivery in enumerate(self.deliveries) if index >= self.failures]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {key.lower(): value for key, value in self.headers.items()}
        signed = verify_signature(
            receiver.secret, headers.get("x-vigia-timestamp", ""), body, headers.get("x-vigia-signature", "")
        )
        with receiver._lock:
            receiver.deliveries.append(Delivery(headers, body, signed, time.time()))
            failing = len(receiver.deliveries) <= receiver.failures
        status = 500 if failing else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = False

    def __init__(self, receiver: WebhookReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


@contextmanager
def webhook_receiver(secret: str, *, failures: int = 0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, failures=failures)
    server = _Server(receiver)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/vigia"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Mailbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox()
    with socket.socket() as probe:  # a free port: aiosmtpd's controller needs one named
        probe.bind(("127.0.0.1", 0))
        mailbox.port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
