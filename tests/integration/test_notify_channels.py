"""Channels against real local servers: an HTTP receiver for Slack and webhooks, aiosmtpd for e-mail."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from vigia.notify import (
    URGENCY_PREFIX,
    Channel,
    DeliveryFailed,
    EmailChannel,
    LogChannel,
    Message,
    Routing,
    SlackChannel,
    Urgency,
    WebhookChannel,
    verify_signature,
)

SECRET = "s3cret-signing-key"
# The part of a Slack webhook URL that is its credential: never in an error message.
SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"
TEXT = "Review the stage output of job j-1 (ñandú)."


def make_message(urgency: Urgency = Urgency.HIGH, *, job_id: str | None = "job-1") -> Message:
    return Message(
        id="msg-0001",
        subject="Escalation waiting",
        text=TEXT,
        urgency=urgency,
        role="medical_team",
        job_id=job_id,
        review_id="rev-9",
        fields={"pipeline": "pressure_injury", "stage": "grade", "severity": 3},
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- HTTP receiver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What a local HTTP server received, and how it answers the next requests."""

    url: str
    status: int = 200
    answer: bytes = b"ok"
    #: Hold each answer until the test ends (or 5 s): makes the client time out.
    stall: bool = False
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


class _ReceiverServer(ThreadingHTTPServer):
    # Handler threads are joined on close, so no request outlives its test.
    daemon_threads = False

    def __init__(self, receiver_factory: Callable[[int], Receiver]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver_factory(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {key.lower(): value for key, value in self.headers.items()}
        receiver.requests.append(Request(self.path, headers, body))
        if receiver.stall:
            receiver.released.wait(5)
        try:
            self.send_response(receiver.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(receiver.answer)))
            self.end_headers()
            self.wfile.write(receiver.answer)
        except OSError:
            pass  # The client gave up waiting: the timeout test.

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Keep the test output to the tests.


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _ReceiverServer(lambda port: Receiver(url=f"http://127.0.0.1:{port}{SECRET_PATH}"))
    # A short poll interval: shutdown() waits for the loop to look up.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="http-receiver")
    thread.start()
    try:
        yield server.receiver
    finally:
        server.receiver.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


def http_channels(url: str) -> list[Channel]:
    return [SlackChannel("oncall", url), WebhookChannel("pager", url, SECRET)]


# --- Slack ------------------------------------------------------------------------------


@pytest.mark.parametrize("urgency", list(Urgency))
def test_slack_posts_the_rendered_message_with_the_urgency_prefix(receiver: Receiver, urgency: Urgency) -> None:
    SlackChannel("oncall", receiver.url).send(make_message(urgency))

    [request] = receiver.requests
    assert request.path == SECRET_PATH
    assert request.headers["content-type"] == "application/json"
    text = json.loads(request.body)["text"]
    assert text.startswith(f"{URGENCY_PREFIX[urgency]} Escalation waiting\n")
    assert TEXT in text
    assert "pipeline: pressure_injury" in text
    assert "severity: 3" in text


def test_slack_error_names_the_reason_slack_gave(receiver: Receiver) -> None:
    receiver.status, receiver.answer = 404, b"channel_not_found"

    with pytest.raises(DeliveryFailed) as failure:
        SlackChannel("oncall", receiver.url).send(make_message())

    assert str(failure.value) == "slack channel 'oncall': HTTP 404 (channel_not_found)"
    assert failure.value.code == "delivery_failed"


# --- Signed webhooks --------------------------------------------------------------------


def test_webhook_posts_a_signed_json_body_the_receiver_can_verify(receiver: Receiver) -> None:
    before = time.time()
    WebhookChannel("pager", receiver.url, SECRET).send(make_message())

    [request] = receiver.requests
    timestamp, signature = request.headers["x-vigia-timestamp"], request.headers["x-vigia-signature"]
    assert verify_signature(SECRET, timestamp, request.body, signature)
    assert signature.startswith("sha256=")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-vigia-message-id"] == "msg-0001"
    body = json.loads(request.body.decode("utf-8"))
    assert body == {
        "id": "msg-0001",
        "subject": "Escalation waiting",
        "text": TEXT,
        "urgency": "high",
        "role": "medical_team",
        "job_id": "job-1",
        "review_id": "rev-9",
        "fields": {"pipeline": "pressure_injury", "stage": "grade", "severity": 3},
        "sent_at": body["sent_at"],
    }
    assert before <= body["sent_at"] <= time.time()
    assert int(timestamp) == int(body["sent_at"])
    # Compact UTF-8, not \u escapes: the bytes signed are the bytes a receiver reads.
    assert "ñandú".encode() in request.body
    assert b", " not in request.body


def test_webhook_signature_fails_with_a_wrong_secret_a_changed_body_or_a_stale_timestamp(
    receiver: Receiver,
) -> None:
    WebhookChannel("pager", receiver.url, SECRET).send(make_message())
    [request] = receiver.requests
    timestamp, signature = request.headers["x-vigia-timestamp"], request.headers["x-vigia-signature"]
    sent = int(timestamp)

    assert not verify_signature("another-secret", timestamp, request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body.replace(b"high", b"normal"), signature)
    assert not verify_signature(SECRET, str(sent + 1), request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body, signature, now=sent + 301)
    assert not verify_signature(SECRET, timestamp, request.body, signature, now=sent - 301)
    assert verify_signature(SECRET, timestamp, request.body, signature, now=sent + 299)
    assert not verify_signature(SECRET, "not-a-number", request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body, "sha256=ñ")


# --- How HTTP failures are classified ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (404, False), (400, False), (403, False), (410, False), (302, False)],
)
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_http_status_decides_whether_a_retry_can_help(
    receiver: Receiver, kind: str, status: int, retryable: bool
) -> None:
    receiver.status, receiver.answer = status, b"<html>some long error page from a proxy</html>"
    channel = next(channel for channel in http_channels(receiver.url) if channel.kind == kind)

    with pytest.raises(DeliveryFailed) as failure:
        channel.send(make_message())

    assert failure.value.retryable is retryable
    assert str(failure.value) == f"{kind} channel '{channel.name}': HTTP {status}"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_closed_port_is_retryable_and_the_error_keeps_the_url_secret(kind: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    channel = next(channel for channel in http_channels(url) if channel.kind == kind)

    with pytest.raises(DeliveryFailed) as failure:
        channel.send(make_message())

    assert failure.value.retryable is True
    assert "ConnectError" in str(failure.value)
    assert "secret" not in str(failure.value)
    assert TEXT not in str(failure.value)


@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_receiver_slower_than_the_timeout_is_retryable(receiver: Receiver, kind: str) -> None:
    receiver.stall = True
    channel = next(channel for channel in http_channels(receiver.url) if channel.kind == kind)

    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failure:
        channel.send(make_message(), timeout=0.3)

    assert time.monotonic() - started < 3
    assert failure.value.retryable is True
    assert str(failure.value) == f"{kind} channel '{channel.name}': timed out after 0.3s"


# --- E-mail -----------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and answers as told."""

    #: Recipients refused at RCPT, with the reply they get.
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 Message accepted for delivery"
    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.received.append(envelope)
        return self.data_reply

    def only_email(self) -> EmailMessage:
        [envelope] = self.received
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class SmtpServer:
    port: int
    mailbox: Mailbox


StartSmtp = Callable[..., SmtpServer]


@pytest.fixture
def start_smtp() -> Iterator[StartSmtp]:
    """Starts aiosmtpd servers on 127.0.0.1 (aiosmtpd options as keywords); all stop at the end."""
    with ExitStack() as running:

        def start(mailbox: Mailbox | None = None, **options: Any) -> SmtpServer:
            mailbox = mailbox or Mailbox()
            port = closed_port()
            controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
            controller.start()
            running.callback(controller.stop)
            return SmtpServer(port, mailbox)

        yield start


def email_channel(port: int, **options: Any) -> EmailChannel:
    recipients = options.pop("recipients", ["ward-7@clinic.example", "oncall@hospital.example"])
    return EmailChannel(
        "wards", host="127.0.0.1", port=port, sender="vigia@clinic.example", recipients=recipients, **options
    )


def test_email_is_delivered_with_urgency_in_the_subject_and_vigia_headers(start_smtp: StartSmtp) -> None:
    server = start_smtp()
    message = make_message(Urgency.CRITICAL)

    email_channel(server.port).send(message)

    [envelope] = server.mailbox.received
    assert envelope.mail_from == "vigia@clinic.example"
    assert envelope.rcpt_tos == ["ward-7@clinic.example", "oncall@hospital.example"]
    received = server.mailbox.only_email()
    assert received["Subject"] == "[CRITICAL] Escalation waiting"
    assert received["From"] == "vigia@clinic.example"
    assert received["To"] == "ward-7@clinic.example, oncall@hospital.example"
    assert received["X-Vigia-Urgency"] == "critical"
    assert received["X-Vigia-Role"] == "medical_team"
    assert received["X-Vigia-Message-Id"] == "msg-0001"
    assert received["X-Vigia-Job"] == "job-1"
    assert received["Message-ID"].endswith("@clinic.example>")
    # SMTP carries lines ending in CRLF.
    assert received.get_content().replace("\r\n", "\n").rstrip("\n") == message.rendered()


def test_email_without_a_job_has_no_job_header(start_smtp: StartSmtp) -> None:
    server = start_smtp()

    email_channel(server.port).send(make_message(Urgency.NORMAL, job_id=None))

    received = server.mailbox.only_email()
    assert "X-Vigia-Job" not in received
    assert received["Subject"] == "[NORMAL] Escalation waiting"


def test_a_refused_recipient_is_not_retryable(start_smtp: StartSmtp) -> None:
    server = start_smtp(Mailbox(refuse={"ward-7@clinic.example": "550 no such user"}))

    with pytest.raises(DeliveryFailed) as failure:
        email_channel(server.port, recipients=["ward-7@clinic.example"]).send(make_message())

    assert failure.value.retryable is False
    assert str(failure.value) == "email channel 'wards': all recipients refused (550)"
    assert server.mailbox.received == []


def test_a_temporarily_refused_recipient_is_retryable(start_smtp: StartSmtp) -> None:
    # Greylisting: "try again later" at RCPT is the commonest temporary refusal.
    server = start_smtp(Mailbox(refuse={"ward-7@clinic.example": "450 greylisted, try again later"}))

    with pytest.raises(DeliveryFailed) as failure:
        email_channel(server.port, recipients=["ward-7@clinic.example"]).send(make_message())

    assert failure.value.retryable is True


def test_one_refused_recipient_among_several_is_delivered_with_a_warning(
    start_smtp: StartSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_smtp(Mailbox(refuse={"oncall@hospital.example": "550 no such user"}))

    with caplog.at_level(logging.WARNING, logger="vigia.notifications"):
        email_channel(server.port).send(make_message())

    [envelope] = server.mailbox.received
    assert envelope.rcpt_tos == ["ward-7@clinic.example"]
    [record] = caplog.records
    assert record.getMessage() == "notification.recipients_refused"
    assert record.__dict__["refused"] == 1
    assert record.__dict__["refused_domains"] == ["hospital.example"]
    assert record.__dict__["notification_id"] == "msg-0001"


@pytest.mark.parametrize(("reply", "retryable"), [("451 local error, try later", True), ("554 rejected", False)])
def test_a_data_reply_decides_whether_a_retry_can_help(start_smtp: StartSmtp, reply: str, retryable: bool) -> None:
    server = start_smtp(Mailbox(data_reply=reply))

    with pytest.raises(DeliveryFailed) as failure:
        email_channel(server.port).send(make_message())

    assert failure.value.retryable is retryable
    assert str(failure.value) == f"email channel 'wards': server replied {reply[:3]}"
    assert TEXT not in str(failure.value)


def test_an_smtp_server_that_is_not_there_is_retryable() -> None:
    with pytest.raises(DeliveryFailed) as failure:
        email_channel(closed_port()).send(make_message(), timeout=2)

    assert failure.value.retryable is True
    assert "ConnectionRefusedError" in str(failure.value)


def test_an_smtp_server_that_never_greets_is_retryable_after_the_timeout() -> None:
    with socket.socket() as silent:
        # Listening but never accepting: the connection opens, the greeting never comes.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(DeliveryFailed) as failure:
            email_channel(silent.getsockname()[1]).send(make_message(), timeout=0.3)

    assert time.monotonic() - started < 3
    assert failure.value.retryable is True


@dataclass
class NurseOnly:
    """An aiosmtpd authenticator that lets one user in and remembers every attempt."""

    attempts: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __call__(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((data.login, data.password))
        # handled=False: aiosmtpd itself answers a failure with "535 credentials invalid".
        return AuthResult(success=(data.login, data.password) == (b"nurse", b"p@ss:w/rd"), handled=False)


def test_email_logs_in_with_the_credentials_of_the_smtp_url(start_smtp: StartSmtp) -> None:
    # No TLS in these tests, so the server must accept a login in clear text. (Not
    # auth_required: aiosmtpd warns about that without TLS, and the warning fails the test.)
    nurse_only = NurseOnly()
    server = start_smtp(authenticator=nurse_only, auth_require_tls=False)
    channels = json.dumps(
        {
            "wards": {
                "type": "email",
                "smtp": f"smtp://nurse:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}",
                "from": "vigia@clinic.example",
                "to": ["ward-7@clinic.example"],
            }
        }
    )
    routing = Routing.from_config(channels, json.dumps({"medical_team": ["wards"]}))

    [channel] = routing.channels_for("medical_team")
    channel.send(make_message())

    assert nurse_only.attempts == [(b"nurse", b"p@ss:w/rd")]
    assert server.mailbox.only_email()["To"] == "ward-7@clinic.example"


def test_refused_credentials_are_not_retryable(start_smtp: StartSmtp) -> None:
    server = start_smtp(authenticator=NurseOnly(), auth_require_tls=False)

    with pytest.raises(DeliveryFailed) as failure:
        email_channel(server.port, username="nurse", password="wrong").send(make_message())

    assert failure.value.retryable is False
    assert str(failure.value) == "email channel 'wards': authentication refused (535)"
    assert "wrong" not in str(failure.value)
    assert server.mailbox.received == []


# --- Log --------------------------------------------------------------------------------


@pytest.mark.parametrize(("urgency", "level"), [(Urgency.CRITICAL, logging.ERROR), (Urgency.HIGH, logging.WARNING)])
def test_log_channel_writes_one_structured_line(caplog: pytest.LogCaptureFixture, urgency: Urgency, level: int) -> None:
    with caplog.at_level(logging.INFO, logger="vigia.notifications"):
        LogChannel().send(make_message(urgency))

    [record] = caplog.records
    assert record.name == "vigia.notifications"
    assert record.levelno == level
    assert record.getMessage() == "notification"
    extras = {key: record.__dict__[key] for key in ("role", "urgency", "job_id", "review_id", "notification_id")}
    assert extras == {
        "role": "medical_team",
        "urgency": urgency.value,
        "job_id": "job-1",
        "review_id": "rev-9",
        "notification_id": "msg-0001",
    }
    assert record.__dict__["subject"] == "Escalation waiting"
    # The log line carries the subject and ids, never the text.
    assert all(TEXT not in str(value) for value in record.__dict__.values())


def test_log_channel_of_a_normal_message_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vigia.notifications"):
        LogChannel("audit").send(make_message(Urgency.NORMAL))

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.__dict__["urgency"] == "normal"
