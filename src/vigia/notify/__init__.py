"""Notifications to people: a message, channels that deliver it, and routing from roles to channels.

`message` holds what is said; `channels` the ways it reaches people (Slack, signed webhook,
e-mail, log); `routing` reads VIGIA_NOTIFY_CHANNELS and VIGIA_NOTIFY_ROUTES into a
`Routing`; `pipeline` is the built-in pipeline that delivers them as jobs. None of the
first three retries or schedules: the caller decides what a `DeliveryFailed` leads to.

The names below are imported on first use (PEP 562): the coordinator needs `Message`
without the HTTP and SMTP clients the channels bring.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigia.escalation import Urgency
    from vigia.notify.channels import (
        Channel,
        DeliveryFailed,
        EmailChannel,
        LogChannel,
        SlackChannel,
        WebhookChannel,
        verify_signature,
    )
    from vigia.notify.message import DEFAULT_RETRY_DELAY, URGENCY_PREFIX, Message
    from vigia.notify.routing import Routing

_WHERE = {
    "DEFAULT_RETRY_DELAY": "vigia.notify.message",
    "URGENCY_PREFIX": "vigia.notify.message",
    "Message": "vigia.notify.message",
    "Channel": "vigia.notify.channels",
    "DeliveryFailed": "vigia.notify.channels",
    "EmailChannel": "vigia.notify.channels",
    "LogChannel": "vigia.notify.channels",
    "SlackChannel": "vigia.notify.channels",
    "WebhookChannel": "vigia.notify.channels",
    "verify_signature": "vigia.notify.channels",
    "Routing": "vigia.notify.routing",
    "Urgency": "vigia.escalation",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vigia.notify' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_RETRY_DELAY",
    "URGENCY_PREFIX",
    "Channel",
    "DeliveryFailed",
    "EmailChannel",
    "LogChannel",
    "Message",
    "Routing",
    "SlackChannel",
    "Urgency",
    "WebhookChannel",
    "verify_signature",
]
