"""Severity policies and escalation decisions, by value."""

from __future__ import annotations

from typing import Any

import pytest

from vigia.escalation import (
    EscalationRequest,
    Policies,
    Review,
    ReviewKind,
    ReviewStatus,
    Urgency,
    for_failure,
    for_request,
    for_result,
)
from vigia.exceptions import ConfigurationError, InvalidInput, InvalidTransition, PipelineDefinitionError
from vigia.pipeline import EscalationRule, Pipeline, Severity, Stage


def _noop(ctx: Any) -> None:
    return None


def pipeline_with(severity: Severity, **stage_options: Any) -> Pipeline:
    return Pipeline("p", stages=[Stage("s", _noop, severity=severity, **stage_options)])


@pytest.mark.parametrize(
    ("severity", "attempt", "final", "escalates"),
    [
        (Severity.CRITICAL, 1, False, True),  # at once
        (Severity.CRITICAL, 2, True, False),  # already escalated at the first failure
        (Severity.HIGH, 1, False, False),
        (Severity.HIGH, 2, False, True),
        (Severity.HIGH, 1, True, True),  # a permanent error before the second failure
        (Severity.MEDIUM, 2, False, False),
        (Severity.MEDIUM, 3, False, True),
        (Severity.MEDIUM, 4, True, False),
        (Severity.LOW, 1, True, False),
        (Severity.LOW, 4, True, False),
    ],
)
def test_failures_escalate_per_severity_policy(severity: Severity, attempt: int, final: bool, escalates: bool) -> None:
    draft = for_failure(Policies(), pipeline_with(severity), "s", attempt, final=final, error_type="OSError")

    assert (draft is not None) is escalates
    if draft is not None:
        assert (draft.kind, draft.severity, draft.stage) == (ReviewKind.FAILURE, severity, "s")
        assert "OSError" in draft.reason


def test_default_policies_match_the_spec() -> None:
    policies = Policies()
    retries = {severity: policies[severity].retries for severity in Severity}
    assert retries == {Severity.CRITICAL: 1, Severity.HIGH: 2, Severity.MEDIUM: 3, Severity.LOW: 3}
    assert policies[Severity.CRITICAL].urgency is Urgency.CRITICAL and policies[Severity.CRITICAL].notify
    assert policies.retry_policy(Stage("s", _noop, severity=Severity.HIGH)).max_attempts == 3


def test_a_stage_names_who_reviews_its_failures() -> None:
    draft = for_failure(
        Policies(), pipeline_with(Severity.CRITICAL, escalate_to="specialists"), "s", 1, final=False, error_type="E"
    )
    assert draft is not None and draft.role == "specialists"


def test_policies_from_json_change_the_defaults_and_refuse_nonsense() -> None:
    policies = Policies.from_json('{"HIGH": {"escalate_after": 1, "role": "specialists", "urgency": "critical"}}')
    assert (policies[Severity.HIGH].escalate_after, policies[Severity.HIGH].role) == (1, "specialists")
    assert policies[Severity.HIGH].urgency is Urgency.CRITICAL
    assert policies[Severity.LOW].escalate_after is None
    for text, problem in [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"grave": {}}', "not a severity"),
        ('{"low": {"retries": -1}}', "retries >= 0"),
        ('{"low": {"escalate_after": 0}}', "at least 1"),
        ('{"low": {"colour": "red"}}', "unknown fields"),
        ('{"low": {"urgency": "soon"}}', "'low'"),
    ]:
        with pytest.raises(ConfigurationError, match=problem):
            Policies.from_json(text)


def test_result_rules_match_and_a_rule_that_raises_escalates() -> None:
    pipeline = pipeline_with(Severity.MEDIUM)
    pipeline.escalate_when(EscalationRule("s", lambda out: out["confidence"] < 0.6, "confidence below 0.60"))
    pipeline.escalate_when(EscalationRule("s", lambda out: out["grade"] == 4, "stage 4", severity=Severity.CRITICAL))

    assert for_result(Policies(), pipeline, "s", {"confidence": 0.9, "grade": 2}) == []
    [low] = for_result(Policies(), pipeline, "s", {"confidence": 0.3, "grade": 2})
    assert (low.kind, low.reason, low.urgency) == (ReviewKind.RESULT, "confidence below 0.60", Urgency.HIGH)
    broken = for_result(Policies(), pipeline, "s", {"grade": 4})  # no confidence: the first rule raises
    assert [draft.reason for draft in broken] == [
        "confidence below 0.60 (the rule could not be checked: KeyError)",
        "stage 4",
    ]
    assert broken[1].urgency is Urgency.CRITICAL


def test_rules_are_checked_when_declared() -> None:
    pipeline = pipeline_with(Severity.LOW)
    with pytest.raises(PipelineDefinitionError, match="unknown stage"):
        pipeline.escalate_when(EscalationRule("nope", lambda out: True, "x"))
    with pytest.raises(PipelineDefinitionError, match="one short line"):
        pipeline.escalate_when(EscalationRule("s", lambda out: True, "x" * 200))
    with pytest.raises(PipelineDefinitionError, match="urgency"):
        pipeline.escalate_when(EscalationRule("s", lambda out: True, "x", urgency="whenever"))


def test_a_stage_request_takes_its_policy_defaults() -> None:
    draft = for_request(Policies(), "s", EscalationRequest("please look", Severity.CRITICAL))
    assert (draft.kind, draft.role, draft.urgency) == (ReviewKind.REQUEST, "medical_team", Urgency.CRITICAL)


def test_reviews_go_open_acknowledged_resolved_only() -> None:
    review = Review(
        "r1", "t", "j", "s", ReviewKind.RESULT, "why", Severity.HIGH, "role", Urgency.HIGH, ReviewStatus.OPEN, 1.0
    )
    taken = review.transition(ReviewStatus.ACKNOWLEDGED, "k1", 2.0)
    assert (taken.status, taken.acknowledged_by, taken.acknowledged_at) == (ReviewStatus.ACKNOWLEDGED, "k1", 2.0)
    with pytest.raises(InvalidTransition):
        taken.transition(ReviewStatus.ACKNOWLEDGED, "k2", 3.0)
    with pytest.raises(InvalidInput, match="needs a note"):
        taken.transition(ReviewStatus.RESOLVED, "k2", 3.0, "  ")
    done = review.transition(ReviewStatus.RESOLVED, "k2", 3.0, "checked")  # straight from open
    assert (done.status, done.acknowledged_by, done.resolved_by, done.resolution) == (
        ReviewStatus.RESOLVED,
        "k2",
        "k2",
        "checked",
    )
    with pytest.raises(InvalidTransition):
        done.transition(ReviewStatus.RESOLVED, "k3", 4.0, "again")
