"""Vigía: long clinical and document AI pipelines, run in the background, reliably."""

from vigia.app import Vigia
from vigia.config import Settings
from vigia.context import StageContext
from vigia.exceptions import Permanent, Retry, Skip, VigiaError
from vigia.job import Event, EventType, Job, JobState, StageRun, StageState
from vigia.pipeline import Pipeline, Severity, Stage
from vigia.registry import Registry
from vigia.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "Event",
    "EventType",
    "Job",
    "JobState",
    "Permanent",
    "Pipeline",
    "Registry",
    "Retry",
    "RetryPolicy",
    "Settings",
    "Severity",
    "Skip",
    "Stage",
    "StageContext",
    "StageRun",
    "StageState",
    "Vigia",
    "VigiaError",
]
