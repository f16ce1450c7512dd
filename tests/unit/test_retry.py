"""RetryPolicy: backoff arithmetic, retry decisions and which errors are worth retrying."""

from __future__ import annotations

import math

import pytest

from vigia import constants
from vigia.exceptions import (
    LeaseExpired,
    Permanent,
    PipelineDefinitionError,
    Retry,
    Skip,
    StageControl,
    StageTimeout,
)
from vigia.retry import RetryDecision, RetryPolicy

# --- backoff ------------------------------------------------------------------------------


def test_backoff_grows_exponentially_from_the_base_delay() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=2.0, factor=3.0, max_delay=1_000.0, jitter=0.0)

    delays = [policy.backoff(attempt, rand=0.0) for attempt in range(1, 6)]

    assert delays == [2.0, 6.0, 18.0, 54.0, 162.0]


def test_default_policy_backoff_uses_the_documented_defaults() -> None:
    policy = RetryPolicy()

    assert policy.max_attempts == 3
    assert policy.backoff(1, rand=0.0) == constants.DEFAULT_RETRY_BASE_DELAY
    assert policy.backoff(2, rand=0.0) == constants.DEFAULT_RETRY_BASE_DELAY * constants.DEFAULT_RETRY_FACTOR
    assert policy.backoff(3, rand=0.0) == constants.DEFAULT_RETRY_BASE_DELAY * constants.DEFAULT_RETRY_FACTOR**2


def test_backoff_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, factor=2.0, max_delay=10.0, jitter=0.0)

    assert policy.backoff(4, rand=0.0) == 8.0
    assert policy.backoff(5, rand=0.0) == 10.0  # 16 capped
    assert policy.backoff(6, rand=0.0) == 10.0
    assert policy.backoff(60, rand=0.0) == 10.0


def test_backoff_for_a_huge_attempt_number_stays_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, factor=2.0, max_delay=30.0, jitter=0.0)

    assert policy.backoff(10_000, rand=0.0) == 30.0


def test_backoff_with_a_steep_factor_is_capped_instead_of_overflowing() -> None:
    # The policy accepts any finite factor >= 1, so backoff must not blow up for one.
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, factor=1e6, max_delay=60.0, jitter=0.0)

    assert policy.backoff(100, rand=0.0) == 60.0


def test_zero_base_delay_means_immediate_retries() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.0, factor=2.0, max_delay=10.0, jitter=0.5)

    assert policy.backoff(1, rand=0.0) == 0.0
    assert policy.backoff(4, rand=0.9) == 0.0


def test_jitter_rand_zero_gives_the_full_delay() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=4.0, factor=2.0, max_delay=100.0, jitter=0.25)

    assert policy.backoff(1, rand=0.0) == 4.0
    assert policy.backoff(2, rand=0.0) == 8.0


def test_jitter_reduces_the_delay_proportionally_to_rand() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=4.0, factor=2.0, max_delay=100.0, jitter=0.25)

    assert policy.backoff(1, rand=0.5) == pytest.approx(3.5)
    assert policy.backoff(2, rand=0.5) == pytest.approx(7.0)


def test_jitter_rand_close_to_one_approaches_delay_times_one_minus_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=4.0, factor=2.0, max_delay=100.0, jitter=0.25)
    almost_one = math.nextafter(1.0, 0.0)

    delay = policy.backoff(1, rand=almost_one)

    assert delay == pytest.approx(3.0)
    assert 3.0 <= delay < 4.0


@pytest.mark.parametrize("rand", [0.0, 0.1, 0.25, 0.5, 0.75, 0.99, math.nextafter(1.0, 0.0)])
def test_jittered_delay_stays_within_bounds(rand: float) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=10.0, factor=2.0, max_delay=100.0, jitter=0.4)

    delay = policy.backoff(2, rand=rand)

    assert 20.0 * (1 - 0.4) <= delay <= 20.0


def test_jitter_applies_after_the_cap() -> None:
    policy = RetryPolicy(max_attempts=50, base_delay=1.0, factor=2.0, max_delay=10.0, jitter=0.2)

    assert policy.backoff(20, rand=0.5) == pytest.approx(9.0)


def test_no_jitter_ignores_rand() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=3.0, factor=2.0, max_delay=100.0, jitter=0.0)

    assert policy.backoff(2, rand=0.0) == policy.backoff(2, rand=0.9) == 6.0


def test_full_jitter_can_bring_the_delay_close_to_zero() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=8.0, factor=2.0, max_delay=100.0, jitter=1.0)

    assert policy.backoff(1, rand=0.5) == pytest.approx(4.0)
    assert policy.backoff(1, rand=math.nextafter(1.0, 0.0)) == pytest.approx(0.0, abs=1e-9)


# --- decide -------------------------------------------------------------------------------


def test_decide_retries_until_max_attempts_is_reached() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, factor=2.0, max_delay=100.0, jitter=0.0)

    assert policy.decide(1, retryable=True, rand=0.0) == RetryDecision(retry=True, delay=1.0)
    assert policy.decide(2, retryable=True, rand=0.0) == RetryDecision(retry=True, delay=2.0)
    assert policy.decide(3, retryable=True, rand=0.0) == RetryDecision(retry=False)
    assert policy.decide(4, retryable=True, rand=0.0).retry is False


def test_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1)

    decision = policy.decide(1, retryable=True, rand=0.0)

    assert decision.retry is False
    assert decision.delay == 0.0


def test_decide_never_retries_a_non_retryable_failure() -> None:
    policy = RetryPolicy(max_attempts=10)

    decision = policy.decide(1, retryable=False, rand=0.0)

    assert decision == RetryDecision(retry=False, delay=0.0)


def test_decide_uses_rand_for_the_jittered_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, factor=2.0, max_delay=100.0, jitter=0.25)

    decision = policy.decide(2, retryable=True, rand=0.5)

    assert decision.retry is True
    assert decision.delay == pytest.approx(2.0 * (1 - 0.25 * 0.5))


def test_decide_without_rand_still_stays_within_jitter_bounds() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=10.0, factor=2.0, max_delay=100.0, jitter=0.5)

    for _ in range(50):
        decision = policy.decide(1, retryable=True)
        assert decision.retry is True
        assert 5.0 <= decision.delay <= 10.0


def test_decide_honours_the_requested_delay() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, factor=2.0, max_delay=100.0, jitter=0.25)

    decision = policy.decide(1, retryable=True, requested_delay=42.0, rand=0.9)

    assert decision == RetryDecision(retry=True, delay=42.0)


def test_requested_delay_of_zero_and_negative_means_now() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=5.0)

    assert policy.decide(1, retryable=True, requested_delay=0.0, rand=0.0).delay == 0.0
    assert policy.decide(1, retryable=True, requested_delay=-3.0, rand=0.0) == RetryDecision(retry=True, delay=0.0)


def test_requested_delay_does_not_grant_extra_attempts() -> None:
    policy = RetryPolicy(max_attempts=2)

    assert policy.decide(2, retryable=True, requested_delay=1.0, rand=0.0).retry is False


def test_requested_delay_does_not_make_a_failure_retryable() -> None:
    policy = RetryPolicy(max_attempts=5)

    assert policy.decide(1, retryable=False, requested_delay=1.0, rand=0.0).retry is False


# --- is_retryable -------------------------------------------------------------------------


class _MyPermanent(Permanent):
    pass


@pytest.mark.parametrize(
    "retry_on",
    [(Exception,), (Permanent,), (StageControl,), (BaseException,)],
)
def test_permanent_is_never_retryable(retry_on: tuple[type[BaseException], ...]) -> None:
    policy = RetryPolicy(retry_on=retry_on)

    assert policy.is_retryable(Permanent) is False
    assert policy.is_retryable(_MyPermanent) is False


@pytest.mark.parametrize("error_type", [Retry, StageTimeout, LeaseExpired])
@pytest.mark.parametrize("retry_on", [(Exception,), (KeyError,), ()])
def test_retry_timeout_and_lost_lease_are_always_retryable(
    error_type: type[BaseException], retry_on: tuple[type[BaseException], ...]
) -> None:
    policy = RetryPolicy(retry_on=retry_on)

    assert policy.is_retryable(error_type) is True


def test_retry_on_filters_ordinary_errors() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError, TimeoutError))

    assert policy.is_retryable(ConnectionError) is True
    assert policy.is_retryable(ConnectionResetError) is True  # a subclass
    assert policy.is_retryable(TimeoutError) is True
    assert policy.is_retryable(ValueError) is False
    assert policy.is_retryable(KeyError) is False


def test_default_retry_on_covers_ordinary_exceptions_only() -> None:
    policy = RetryPolicy()

    assert policy.is_retryable(ValueError) is True
    assert policy.is_retryable(RuntimeError) is True
    assert policy.is_retryable(KeyboardInterrupt) is False
    assert policy.is_retryable(SystemExit) is False


def test_empty_retry_on_retries_only_the_engine_errors() -> None:
    policy = RetryPolicy(retry_on=())

    assert policy.is_retryable(ValueError) is False
    assert policy.is_retryable(Retry) is True


def test_skip_follows_retry_on_like_any_other_error() -> None:
    # Skip is handled by the engine before retries come into play; the policy has no special case.
    assert RetryPolicy(retry_on=(ValueError,)).is_retryable(Skip) is False


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"base_delay": -0.5}, "base_delay"),
        ({"base_delay": math.nan}, "base_delay"),
        ({"base_delay": math.inf}, "base_delay"),
        ({"max_delay": -1.0}, "max_delay"),
        ({"max_delay": math.nan}, "max_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"factor": 0.5}, "factor"),
        ({"factor": 0.0}, "factor"),
        ({"factor": math.nan}, "factor"),
        ({"factor": math.inf}, "factor"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": math.nan}, "jitter"),
    ],
)
def test_invalid_policy_is_a_definition_error_naming_the_field(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(PipelineDefinitionError) as raised:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

    assert named in str(raised.value)


def test_boundary_values_are_valid() -> None:
    policy = RetryPolicy(max_attempts=1, base_delay=0.0, factor=1.0, max_delay=0.0, jitter=1.0)

    assert policy.backoff(3, rand=0.0) == 0.0
    assert RetryPolicy(jitter=0.0).jitter == 0.0


def test_factor_one_gives_constant_delay() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=5.0, factor=1.0, max_delay=100.0, jitter=0.0)

    assert [policy.backoff(attempt, rand=0.0) for attempt in (1, 2, 7)] == [5.0, 5.0, 5.0]
