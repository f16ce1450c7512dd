"""Notifications to people: channels that deliver a message, and routing from roles to channels.

`channels` holds the message and the channels (Slack, signed webhook, e-mail, log);
`routing` reads VIGIA_NOTIFY_CHANNELS and VIGIA_NOTIFY_ROUTES into a `Routing`. Neither
retries nor schedules: the caller decides what a `DeliveryFailed` leads to.
"""

from vigia.escalation import Urgency
from vigia.notify.channels import (
    DEFAULT_RETRY_DELAY,
    URGENCY_PREFIX,
    Channel,
    DeliveryFailed,
    EmailChannel,
    LogChannel,
    Message,
    SlackChannel,
    WebhookChannel,
    verify_signature,
)
from vigia.notify.routing import Routing

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
