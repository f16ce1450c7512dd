"""Notifications are jobs of a built-in pipeline, ``vigia.notify``: one job per message and
channel, one stage on the ``notifications`` queue.

So they get everything jobs have, in both modes: they are stored and listed with their
delivery state, retried with the urgency's delay (5 s / 15 s / 30 s by default), run on
whichever worker serves the ``notifications`` queue, and one that finally fails is a
dead job (in the dead-letter queue, retryable) that keeps an alert firing until someone
deals with it, rather than vanishing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from vigia import constants
from vigia.context import StageContext
from vigia.escalation import Urgency
from vigia.exceptions import ConfigurationError, Permanent, Retry
from vigia.notify.channels import DeliveryFailed
from vigia.notify.message import DEFAULT_RETRY_DELAY, Message
from vigia.notify.routing import Routing
from vigia.pipeline import Pipeline, Severity, Stage
from vigia.retry import RetryPolicy

log = logging.getLogger("vigia.notifications")

NOTIFY_PIPELINE = constants.NOTIFY_PIPELINE
NOTIFICATIONS_QUEUE = constants.NOTIFICATIONS_QUEUE
#: Attempts per notification before it counts as undelivered.
DEFAULT_ATTEMPTS = 5
#: How long one delivery attempt may wait for the other end.
DELIVERY_TIMEOUT = 10.0


def notification_pipeline(
    routing: Routing,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delays: Mapping[Urgency, float] = DEFAULT_RETRY_DELAY,
    timeout: float = DELIVERY_TIMEOUT,
) -> Pipeline:
    """The pipeline that delivers notifications over ``routing``'s channels."""

    def deliver(ctx: StageContext) -> dict[str, Any]:
        """Send the message over its channel; retried after the urgency's delay."""
        spec = ctx.input or {}
        try:
            channel = routing.channel(str(spec.get("channel")))
            message = Message.from_dict(spec.get("message"))
        except (ConfigurationError, KeyError, TypeError, ValueError) as error:
            raise Permanent(f"notification cannot be sent: {error}") from None
        try:
            channel.send(message, timeout=timeout)
        except DeliveryFailed as failure:
            last = not failure.retryable or ctx.attempt >= attempts
            if last:
                # The job now fails for good: an alert fires (see `vigia.monitoring`).
                log.error(
                    "notification.undelivered",
                    extra={"notification_id": message.id, "channel": channel.name, "job_id": message.job_id},
                )
            if not failure.retryable:
                raise Permanent(failure.message) from None
            raise Retry(failure.message, after=retry_delays[message.urgency]) from None
        ctx.audit("notification.delivered", channel=channel.name, kind=channel.kind, urgency=message.urgency.value)
        return {"channel": channel.name, "kind": channel.kind, "delivered_at": time.time(), "attempts": ctx.attempt}

    return Pipeline(
        NOTIFY_PIPELINE,
        description="Delivers a notification over one channel (built in).",
        stages=[
            Stage(
                "deliver",
                deliver,
                after=(),
                queue=NOTIFICATIONS_QUEUE,
                # LOW: a notification that fails is never escalated itself (that would
                # notify about notifying); it raises an alert instead.
                severity=Severity.LOW,
                retry=RetryPolicy(max_attempts=attempts),
                timeout=timeout * 3,
            )
        ],
    )
