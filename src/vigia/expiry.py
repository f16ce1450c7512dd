"""When a finished job has outlived its retention (pure): `VIGIA_JOB_RETENTION_DAYS`, a
pipeline's own `VIGIA_PIPELINE_RETENTION_DAYS`, or an explicit date (`vigia jobs purge
--before`). See `vigia.retention` for the purge itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vigia.config import Settings
from vigia.job import JobState

#: The states retention purges: finished, and not in the dead-letter queue.
FINISHED_STATES = (JobState.SUCCEEDED, JobState.DEGRADED, JobState.FAILED, JobState.CANCELLED)
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Expiry:
    """When finished jobs expire: before ``before`` for every pipeline (``--before``), else
    ``retention_days`` ago, or a pipeline's own days in ``per_pipeline``; None keeps them.
    With ``pipeline``, that pipeline's jobs only."""

    now: float
    retention_days: float | None = None
    per_pipeline: Mapping[str, float] = field(default_factory=dict)
    before: float | None = None
    pipeline: str | None = None

    @classmethod
    def of(cls, settings: Settings, now: float, *, before: float | None = None, pipeline: str | None = None) -> Expiry:
        return cls(now, settings.job_retention_days, settings.pipeline_retention_days, before, pipeline)

    def cutoffs(self) -> dict[str, float | None]:
        """The pipelines with a cutoff of their own (None: kept), each mentioned once."""
        if self.before is not None:
            return {} if self.pipeline is None else {self.pipeline: self.before}
        own = {name: self.now - days * DAY for name, days in self.per_pipeline.items()}
        if self.pipeline is not None:
            return {self.pipeline: own.get(self.pipeline, self._general_cutoff())}
        return dict(own)

    def _general_cutoff(self) -> float | None:
        if self.before is not None:
            return self.before
        return None if self.retention_days is None else self.now - self.retention_days * DAY

    def default_cutoff(self) -> float | None:
        """The cutoff of the pipelines without one of their own (None: kept)."""
        if self.pipeline is not None:
            return None  # the one pipeline is among `cutoffs`
        return self._general_cutoff()

    def describe(self) -> dict[str, object]:
        return {
            "before": self.before,
            "retention_days": self.retention_days,
            "per_pipeline": dict(self.per_pipeline),
            "pipeline": self.pipeline,
        }
