"""Severity policies and escalation to human review: pure decisions, no I/O.

A stage's severity sets how often it is tried and when its failures go to a person: the
defaults are those of SPEC §4 (CRITICAL: one retry, escalated at the first failure, always
notified; HIGH: two retries, escalated after two failures; MEDIUM: three and three; LOW:
three retries, never escalated). A pipeline may also escalate on its *results* (a rule on
a stage's output), and a stage may ask for a person itself (`ctx.escalate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from vigia.exceptions import ConfigurationError, InvalidInput, InvalidTransition
from vigia.pipeline import EscalationRule, Pipeline, Severity, Stage
from vigia.retry import RetryPolicy


class Urgency(StrEnum):
    """How fast a person must look: sets a notification's prefix and its retry delay."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"


class ReviewKind(StrEnum):
    FAILURE = "failure"  # a stage failed as often as its policy tolerates
    RESULT = "result"  # a pipeline's rule matched a stage's output
    REQUEST = "request"  # a stage asked for a person itself


class ReviewStatus(StrEnum):
    OPEN = "open"  # nobody has looked yet
    ACKNOWLEDGED = "acknowledged"  # somebody is on it
    RESOLVED = "resolved"  # done, with a note


#: The role told when nobody configured another.
DEFAULT_ROLE = "medical_team"


@dataclass(frozen=True, slots=True)
class SeverityPolicy:
    #: Attempts after the first one.
    retries: int
    #: Escalate once a stage has failed this many times (None: never).
    escalate_after: int | None
    urgency: Urgency
    role: str = DEFAULT_ROLE
    #: Send a notification with the review item (CRITICAL's is mandatory).
    notify: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigurationError(f"a severity policy needs retries >= 0, got {self.retries}")
        if self.escalate_after is not None and self.escalate_after < 1:
            raise ConfigurationError(f"escalate_after must be at least 1 (or null), got {self.escalate_after}")


DEFAULT_POLICIES: Mapping[Severity, SeverityPolicy] = {
    Severity.CRITICAL: SeverityPolicy(retries=1, escalate_after=1, urgency=Urgency.CRITICAL),
    Severity.HIGH: SeverityPolicy(retries=2, escalate_after=2, urgency=Urgency.HIGH),
    Severity.MEDIUM: SeverityPolicy(retries=3, escalate_after=3, urgency=Urgency.NORMAL),
    Severity.LOW: SeverityPolicy(retries=3, escalate_after=None, urgency=Urgency.NORMAL, notify=False),
}


@dataclass(frozen=True, slots=True)
class Policies:
    """The policy of each severity (the defaults, with any configured changes)."""

    by_severity: Mapping[Severity, SeverityPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))

    def __getitem__(self, severity: Severity) -> SeverityPolicy:
        return self.by_severity[severity]

    def retry_policy(self, stage: Stage) -> RetryPolicy:
        """The stage's own policy, or the one its severity gives."""
        if stage.retry is not None:
            return stage.retry
        return RetryPolicy(max_attempts=self[stage.severity].retries + 1)

    @classmethod
    def from_json(cls, text: str | None) -> Policies:
        """Defaults changed by ``VIGIA_SEVERITY_POLICIES``, e.g.
        ``{"high": {"escalate_after": 1, "role": "specialists"}, "low": {"retries": 5}}``."""
        policies = dict(DEFAULT_POLICIES)
        if not text:
            return cls(policies)
        try:
            changes = json.loads(text)
        except ValueError as error:
            raise ConfigurationError(f"VIGIA_SEVERITY_POLICIES is not JSON: {error}") from None
        if not isinstance(changes, dict):
            raise ConfigurationError("VIGIA_SEVERITY_POLICIES must be a JSON object of severity -> changes")
        for name, change in changes.items():
            try:
                severity = Severity(str(name).lower())
            except ValueError:
                raise ConfigurationError(f"VIGIA_SEVERITY_POLICIES: {name!r} is not a severity") from None
            if not isinstance(change, dict):
                raise ConfigurationError(f"VIGIA_SEVERITY_POLICIES: the changes for {name!r} must be an object")
            unknown = set(change) - {"retries", "escalate_after", "urgency", "role", "notify"}
            if unknown:
                raise ConfigurationError(f"VIGIA_SEVERITY_POLICIES: unknown fields for {name!r}: {sorted(unknown)}")
            try:
                values: dict[str, Any] = dict(change)
                if "urgency" in values:
                    values["urgency"] = Urgency(values["urgency"])
                policies[severity] = replace(policies[severity], **values)
            except (ValueError, TypeError) as error:
                raise ConfigurationError(f"VIGIA_SEVERITY_POLICIES: {name!r}: {error}") from None
        return cls(policies)


@dataclass(frozen=True, slots=True)
class EscalationDraft:
    """A human-review item to open (with its notification), decided by the orchestrator."""

    stage: str | None
    kind: ReviewKind
    reason: str
    severity: Severity
    role: str
    urgency: Urgency
    notify: bool = True


@dataclass(frozen=True, slots=True)
class EscalationRequest:
    """A stage's own call for a person (`StageContext.escalate`)."""

    reason: str
    severity: Severity = Severity.HIGH
    role: str | None = None
    urgency: Urgency | None = None


@dataclass(frozen=True, slots=True)
class NotificationRequest:
    """A stage's message for a role (`StageContext.notify`), without a review item."""

    role: str
    urgency: Urgency
    subject: str
    text: str = ""


def for_failure(
    policies: Policies, pipeline: Pipeline, stage_name: str, attempt: int, *, final: bool, error_type: str | None
) -> EscalationDraft | None:
    """Escalate when a stage reaches its policy's number of failures, or fails for good
    before reaching it (a permanent error); at most once per run of attempts."""
    stage = pipeline.node(stage_name).stage
    policy = policies[stage.severity]
    if policy.escalate_after is None:
        return None
    if attempt != policy.escalate_after and not (final and attempt < policy.escalate_after):
        return None
    times = "once" if attempt == 1 else f"{attempt} times"
    ending = "; no attempts left" if final else "; retrying"
    return EscalationDraft(
        stage=stage_name,
        kind=ReviewKind.FAILURE,
        reason=f"stage {stage_name!r} ({stage.severity.value}) failed {times}: {error_type or 'error'}{ending}",
        severity=stage.severity,
        role=stage.escalate_to or policy.role,
        urgency=policy.urgency,
        notify=policy.notify,
    )


def for_result(policies: Policies, pipeline: Pipeline, stage_name: str, output: Any) -> list[EscalationDraft]:
    """The pipeline's rules on this stage's output that match. A rule that raises counts as
    matching: when a check on a clinical result cannot be made, a person makes it."""
    drafts = []
    for rule in pipeline.escalations:
        if rule.stage != stage_name:
            continue
        reason = rule.reason
        try:
            matched = bool(rule.when(output))
        except Exception as error:  # the rule's own failure: escalate rather than stay silent
            matched, reason = True, f"{rule.reason} (the rule could not be checked: {type(error).__name__})"
        if matched:
            policy = policies[rule.severity]
            drafts.append(
                EscalationDraft(
                    stage=stage_name,
                    kind=ReviewKind.RESULT,
                    reason=reason,
                    severity=rule.severity,
                    role=rule.role or policy.role,
                    urgency=Urgency(rule.urgency) if rule.urgency else policy.urgency,
                )
            )
    return drafts


def for_request(policies: Policies, stage_name: str, request: EscalationRequest) -> EscalationDraft:
    policy = policies[request.severity]
    return EscalationDraft(
        stage=stage_name,
        kind=ReviewKind.REQUEST,
        reason=request.reason,
        severity=request.severity,
        role=request.role or policy.role,
        urgency=request.urgency or policy.urgency,
    )


#: Longest resolution note a reviewer may write.
MAX_RESOLUTION = 4000


@dataclass(frozen=True, slots=True)
class Review:
    """A human-review item: a job someone must look at, and why."""

    id: str
    tenant: str
    job_id: str
    stage: str | None
    kind: ReviewKind
    reason: str
    severity: Severity
    role: str
    urgency: Urgency
    status: ReviewStatus
    created_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Review:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["kind"] = ReviewKind(values["kind"])
        values["severity"] = Severity(values["severity"])
        values["urgency"] = Urgency(values["urgency"])
        values["status"] = ReviewStatus(values["status"])
        return cls(**values)

    def transition(self, status: ReviewStatus, actor: str, now: float, note: str | None = None) -> Review:
        """This review acknowledged or resolved by ``actor``; `InvalidTransition` when it
        cannot go there from where it is."""
        if status is ReviewStatus.ACKNOWLEDGED and self.status is ReviewStatus.OPEN:
            return replace(self, status=status, acknowledged_at=now, acknowledged_by=actor)
        if status is ReviewStatus.RESOLVED and self.status is not ReviewStatus.RESOLVED:
            text = (note or "").strip()
            if not text:
                raise InvalidInput("resolving a review needs a note saying what was decided", field="note")
            if len(text) > MAX_RESOLUTION:
                raise InvalidInput(f"the note is longer than {MAX_RESOLUTION} characters", field="note")
            return replace(
                self,
                status=status,
                acknowledged_at=self.acknowledged_at or now,
                acknowledged_by=self.acknowledged_by or actor,
                resolved_at=now,
                resolved_by=actor,
                resolution=text,
            )
        raise InvalidTransition(
            f"review {self.id} is {self.status.value}: it cannot become {status.value}",
            review_id=self.id,
            status=self.status.value,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "job_id": self.job_id,
            "stage": self.stage,
            "kind": self.kind.value,
            "reason": self.reason,
            "severity": self.severity.value,
            "role": self.role,
            "urgency": self.urgency.value,
            "status": self.status.value,
            "created_at": self.created_at,
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class Safeguards:
    """The clinical safeguards the coordinator applies around every outcome: the severity
    policies (retries, escalation), who is told over which channels, and how patients are
    pseudonymised in the audit log."""

    policies: Policies = field(default_factory=Policies)
    #: Channel names for a role (notification jobs go one per channel); none: no notification.
    channels_for: Callable[[str], list[str]] = lambda role: []
    #: The built-in pipeline that delivers notifications (None: nothing is sent).
    notification_pipeline: Pipeline | None = None
    #: Patient identifier -> pseudonym; None leaves audit entries without a subject.
    pseudonymise: Callable[[str], str] | None = None

    def subject_of(self, pipeline: Pipeline | None, job_input: Any) -> str | None:
        """The pseudonym of the job's patient, from the input field its pipeline names."""
        if pipeline is None or pipeline.subject_field is None or self.pseudonymise is None:
            return None
        if not isinstance(job_input, Mapping):
            return None
        identifier = job_input.get(pipeline.subject_field)
        if identifier is None or isinstance(identifier, dict | list):
            return None
        return self.pseudonymise(str(identifier))


__all__ = [
    "DEFAULT_POLICIES",
    "EscalationDraft",
    "EscalationRequest",
    "EscalationRule",
    "NotificationRequest",
    "Policies",
    "Review",
    "ReviewKind",
    "ReviewStatus",
    "Safeguards",
    "SeverityPolicy",
    "Urgency",
    "for_failure",
    "for_request",
    "for_result",
]
