"""Retry policy as a strategy that returns a decision, never sleeps itself."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from vigia import constants
from vigia.exceptions import LeaseExpired, Permanent, PipelineDefinitionError, Retry, StageTimeout


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to run the stage again, and after how many seconds."""

    retry: bool
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a stage is attempted and how long to wait between attempts.

    The delay before attempt n+1 is ``base_delay * factor ** (n - 1)``, capped at
    ``max_delay``, then reduced by a random share of at most ``jitter`` so that stages
    that failed together do not come back together.
    """

    max_attempts: int = 3
    base_delay: float = constants.DEFAULT_RETRY_BASE_DELAY
    factor: float = constants.DEFAULT_RETRY_FACTOR
    max_delay: float = constants.DEFAULT_RETRY_MAX_DELAY
    jitter: float = constants.DEFAULT_RETRY_JITTER
    #: Exception types worth retrying. `Retry`, timeouts and lost leases always are;
    #: `Permanent` never is.
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise PipelineDefinitionError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise PipelineDefinitionError(f"{name} must be a finite number >= 0, got {value}")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise PipelineDefinitionError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise PipelineDefinitionError(f"jitter must be between 0 and 1, got {self.jitter}")

    def backoff(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``rand`` is a number in [0, 1): passed in so that decisions stay pure and testable.
        """
        try:
            delay = min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1))
        except OverflowError:  # a steep factor: the cap applied long ago
            delay = self.max_delay
        return delay * (1.0 - self.jitter * rand)

    def is_retryable(self, error_type: type[BaseException]) -> bool:
        if issubclass(error_type, Permanent):
            return False
        if issubclass(error_type, (Retry, StageTimeout, LeaseExpired)):
            return True
        return issubclass(error_type, self.retry_on)

    def decide(
        self, attempt: int, *, retryable: bool, requested_delay: float | None = None, rand: float | None = None
    ) -> RetryDecision:
        """What to do after attempt number ``attempt`` failed."""
        if not retryable or attempt >= self.max_attempts:
            return RetryDecision(retry=False)
        if requested_delay is not None:
            return RetryDecision(retry=True, delay=max(0.0, requested_delay))
        return RetryDecision(retry=True, delay=self.backoff(attempt, random.random() if rand is None else rand))
