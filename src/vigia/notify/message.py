"""A notification: what people are told, by whom it is sent (urgency, role), and what it is about.

Built by Vigía from fixed wording, ids and short codes, never from a patient's free text.
The coordinator writes one per channel into a job of the notification pipeline; channels
render and deliver it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Self

from vigia.escalation import Urgency

FieldValue = str | int | float | bool | None

URGENCY_PREFIX: Mapping[Urgency, str] = MappingProxyType(
    {Urgency.CRITICAL: "🚨 URGENT", Urgency.HIGH: "⚠️ ATTENTION", Urgency.NORMAL: "ℹ️ INFO"}
)

#: Seconds a caller waits before sending a failed (retryable) notification again.
DEFAULT_RETRY_DELAY: Mapping[Urgency, float] = MappingProxyType(
    {Urgency.CRITICAL: 5.0, Urgency.HIGH: 15.0, Urgency.NORMAL: 30.0}
)


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to the people of one role."""

    #: Unique per notification and kept across retries, so that receivers can de-duplicate.
    id: str
    subject: str
    text: str
    urgency: Urgency
    role: str
    job_id: str | None = None
    review_id: str | None = None
    #: Short structured facts (pipeline, stage, severity), shown one per line.
    fields: Mapping[str, FieldValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A copy the caller cannot change behind the frozen message's back.
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def with_id(self, message_id: str) -> Message:
        return replace(self, id=message_id)

    def rendered(self) -> str:
        """The message as plain text: urgency prefix and subject, the text, then one line per field."""
        lines = [f"{URGENCY_PREFIX[self.urgency]} {self.subject}"]
        if self.text:
            lines.append(self.text)
        lines.extend(f"{key}: {'-' if value is None else value}" for key, value in self.fields.items())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (a notification job's input, a webhook's body)."""
        return {
            "id": self.id,
            "subject": self.subject,
            "text": self.text,
            "urgency": self.urgency.value,
            "role": self.role,
            "job_id": self.job_id,
            "review_id": self.review_id,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """The message `to_dict` wrote; `ValueError`, `KeyError` or `TypeError` for anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("not a message")
        return cls(
            id=str(data["id"]),
            subject=str(data["subject"]),
            text=str(data.get("text") or ""),
            urgency=Urgency(data["urgency"]),
            role=str(data["role"]),
            job_id=data.get("job_id"),
            review_id=data.get("review_id"),
            fields=dict(data.get("fields") or {}),
        )
