"""Notification channels: a message, and the ways it reaches people (Slack, webhook, e-mail, log).

A channel delivers one `Message` or raises `DeliveryFailed`, whose ``retryable`` tells the
caller whether sending the same message again later can succeed (the caller owns retries;
`DEFAULT_RETRY_DELAY` suggests how long to wait). A channel holds no connection between
sends, so one instance may be used from several threads at once.

Messages are built by Vigía from fixed wording, ids and short codes, never from a patient's
free text; they are still treated as data: errors and log lines name the channel and the
cause, never the message text.

Webhook receivers check that a request comes from this Vigía with `verify_signature`. Each
request carries::

    X-Vigia-Timestamp: 1718000000
    X-Vigia-Signature: sha256=<hex HMAC-SHA256(secret, b"1718000000." + raw body)>
    X-Vigia-Message-Id: <message id: the same on every retry of one notification>

A receiver verifies the raw body bytes, exactly as received and before parsing them::

    if not verify_signature(secret, request.headers["X-Vigia-Timestamp"], body,
                            request.headers["X-Vigia-Signature"]):
        return 401
    # then de-duplicate on X-Vigia-Message-Id: a retried notification has the same id

The signature covers the timestamp, and a timestamp older (or newer) than five minutes is
rejected, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from vigia.escalation import Urgency
from vigia.exceptions import ConfigurationError, VigiaError
from vigia.notify.message import Message

log = logging.getLogger("vigia.notifications")

#: How long a channel waits for the other end, in seconds, unless the caller says otherwise.
DEFAULT_TIMEOUT = 10.0


class DeliveryFailed(VigiaError):
    """The notification could not be delivered."""

    code = "delivery_failed"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        #: Whether sending the same message again later can succeed.
        self.retryable = retryable


class Channel(Protocol):
    """A way to reach people. Read-only attributes, so frozen dataclasses qualify too."""

    @property
    def name(self) -> str:
        """The name routes use to refer to this channel."""
        ...

    @property
    def kind(self) -> str:
        """What the channel is: slack, webhook, email or log."""
        ...

    def send(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Deliver the message, or raise `DeliveryFailed`."""
        ...

    def describe(self) -> dict[str, object]:
        """The channel's kind and target for listings, with every secret left out."""
        ...


# --- HTTP: Slack and signed webhooks ----------------------------------------------------

# A response body that is a short code (Slack answers "invalid_token", "channel_is_archived")
# helps whoever reads the error; anything longer is the other end's business, not ours.
_REASON_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _url_host(url: str) -> str:
    """The host (and port, when given) of a URL: what may be shown of a secret-bearing URL."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _post(channel: Channel, url: str, *, content: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST once; 2xx is delivered, anything else is translated into `DeliveryFailed`."""
    label = f"{channel.kind} channel {channel.name!r}"
    try:
        # A client per send: nothing to close or share between threads, and notifications
        # are too rare for connection reuse to matter.
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, content=content, headers=dict(headers))
    except httpx.TimeoutException:
        raise DeliveryFailed(f"{label}: timed out after {timeout:g}s", retryable=True) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        raise DeliveryFailed(f"{label}: invalid URL ({type(error).__name__})", retryable=False) from None
    except httpx.RequestError as error:
        # The exception's text never holds the URL for these errors, but it is cheap to be sure:
        # a Slack webhook's path is its secret.
        cause = " ".join(str(error).replace(url, _url_host(url)).split())[:200]
        raise DeliveryFailed(f"{label}: {type(error).__name__}: {cause}", retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    body = response.text.strip()
    reason = f"HTTP {status}" + (f" ({body})" if _REASON_CODE.match(body) else "")
    # 429 and 5xx are the other end's passing trouble; any other answer (a bad or revoked
    # URL, a redirect we do not follow) will be the same next time.
    raise DeliveryFailed(f"{label}: {reason}", retryable=status == 429 or status >= 500)


class SlackChannel:
    """A Slack incoming webhook: posts the rendered message as the text of a chat message."""

    kind = "slack"

    def __init__(self, name: str, webhook_url: str) -> None:
        self.name = name
        self._url = webhook_url

    def send(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        body = json.dumps({"text": message.rendered()}, ensure_ascii=False).encode("utf-8")
        _post(self, self._url, content=body, headers={"Content-Type": "application/json"}, timeout=timeout)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "target": _url_host(self._url)}

    def __repr__(self) -> str:
        return f"SlackChannel({self.name!r}, host={_url_host(self._url)!r})"


def _signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None, tolerance: float = 300.0
) -> bool:
    """Whether a webhook request was signed with ``secret`` less than ``tolerance`` seconds ago.

    ``timestamp`` and ``signature`` are the X-Vigia-Timestamp and X-Vigia-Signature headers,
    ``body`` the raw request body. Compares in constant time.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    expected = _signature(secret, str(sent), body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


class WebhookChannel:
    """A signed JSON POST to any HTTP endpoint (a paging system, a hospital integration engine)."""

    kind = "webhook"

    def __init__(self, name: str, url: str, secret: str) -> None:
        self.name = name
        self._url = url
        self._secret = secret

    def send(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        sent_at = time.time()
        timestamp = str(int(sent_at))
        # Serialised once: the signature covers exactly the bytes that are sent.
        payload = {**message.to_dict(), "sent_at": sent_at}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Vigia-Timestamp": timestamp,
            "X-Vigia-Signature": _signature(self._secret, timestamp, body),
            "X-Vigia-Message-Id": message.id,
        }
        _post(self, self._url, content=body, headers=headers, timeout=timeout)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "target": _url_host(self._url)}

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, host={_url_host(self._url)!r})"


# --- E-mail -----------------------------------------------------------------------------


def _header(value: str) -> str:
    # A line break in a header would let a value add headers of its own.
    return " ".join(value.split())


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(">").lower() or "?"


def _smtp_failure(label: str, error: smtplib.SMTPException) -> DeliveryFailed:
    """Translate an SMTP error: 4xx replies are temporary, 5xx and refused credentials are not."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return DeliveryFailed(f"{label}: authentication refused ({error.smtp_code})", retryable=False)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        # Every recipient refused. A 4xx refusal (greylisting, a full mailbox) is temporary.
        temporary = all(400 <= code < 500 for code in codes)
        return DeliveryFailed(f"{label}: all recipients refused ({', '.join(map(str, codes))})", retryable=temporary)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return DeliveryFailed(f"{label}: server disconnected", retryable=True)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return DeliveryFailed(f"{label}: not supported by the server ({error})", retryable=False)
    if isinstance(error, smtplib.SMTPResponseException):
        code = error.smtp_code
        what = "sender refused" if isinstance(error, smtplib.SMTPSenderRefused) else "server replied"
        # smtplib reports -1 when the reply could not be read: a broken connection, temporary.
        return DeliveryFailed(f"{label}: {what} {code}", retryable=not 500 <= code < 600)
    return DeliveryFailed(f"{label}: {type(error).__name__}: {error}", retryable=False)


class EmailChannel:
    """E-mail through an SMTP server, optionally over TLS (STARTTLS or implicit) with a login."""

    kind = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
    ) -> None:
        if not recipients:
            raise ConfigurationError(f"email channel {name!r} has no recipients")
        if starttls and use_ssl:
            raise ConfigurationError(f"email channel {name!r}: STARTTLS and implicit TLS exclude each other")
        self.name = name
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = tuple(recipients)
        self._username = username
        self._password = password
        self._starttls = starttls
        self._use_ssl = use_ssl

    def send(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        label = f"email channel {self.name!r}"
        email = self._email(message)
        try:
            refused = self._deliver(email, timeout)
        except smtplib.SMTPException as error:
            raise _smtp_failure(label, error) from None
        except ssl.SSLCertVerificationError as error:
            # Retrying will meet the same certificate: a configuration problem.
            raise DeliveryFailed(
                f"{label}: TLS certificate rejected ({error.verify_message})", retryable=False
            ) from None
        except TimeoutError:
            raise DeliveryFailed(f"{label}: timed out after {timeout:g}s", retryable=True) from None
        except OSError as error:
            cause = error.strerror or str(error) or type(error).__name__
            raise DeliveryFailed(f"{label}: {type(error).__name__}: {cause}", retryable=True) from None
        if refused:
            # Others received it, so sending again would repeat it to them: delivered, with a
            # warning that some addresses need fixing.
            log.warning(
                "notification.recipients_refused",
                extra={
                    "channel": self.name,
                    "notification_id": message.id,
                    "refused": len(refused),
                    "refused_domains": sorted({_domain(address) for address in refused}),
                },
            )

    def _email(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = _header(f"[{message.urgency.upper()}] {message.subject}")
        email["From"] = self._sender
        email["To"] = ", ".join(self._recipients)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = make_msgid(domain=_domain(self._sender))
        email["X-Vigia-Urgency"] = message.urgency.value
        email["X-Vigia-Role"] = _header(message.role)
        email["X-Vigia-Message-Id"] = _header(message.id)
        if message.job_id:
            email["X-Vigia-Job"] = _header(message.job_id)
        email.set_content(message.rendered())
        return email

    def _deliver(self, email: EmailMessage, timeout: float) -> dict[str, tuple[int, bytes]]:
        """Send through one new SMTP session; returns the recipients the server refused."""
        smtp: smtplib.SMTP
        if self._use_ssl:
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=timeout)
        with smtp:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username is not None:
                smtp.login(self._username, self._password or "")
            return smtp.send_message(email, from_addr=self._sender, to_addrs=list(self._recipients))

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": f"{self._host}:{self._port}",
            "recipient_domains": sorted({_domain(address) for address in self._recipients}),
        }

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, host={self._host!r}, port={self._port})"


# --- Log --------------------------------------------------------------------------------


class LogChannel:
    """One log line per notification, on the "vigia.notifications" logger: always available."""

    kind = "log"

    def __init__(self, name: str = "log") -> None:
        self.name = name

    def send(self, message: Message, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        # logging hands a failing handler's error to Handler.handleError, never to the caller.
        level = logging.ERROR if message.urgency is Urgency.CRITICAL else logging.WARNING
        log.log(
            level,
            "notification",
            extra={
                "role": message.role,
                "urgency": message.urgency.value,
                "job_id": message.job_id,
                "review_id": message.review_id,
                "notification_id": message.id,
                "subject": message.subject,
            },
        )

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "target": log.name}

    def __repr__(self) -> str:
        return f"LogChannel({self.name!r})"
