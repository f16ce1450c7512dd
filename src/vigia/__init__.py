"""Vigía: long clinical and document AI pipelines, run in the background, reliably.

The names below are imported on first use (PEP 562), so that a module defining a pipeline
(`from vigia.pipeline import Pipeline`) does not load the store, the HTTP client and the
metrics library that `Vigia` brings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigia.app import Vigia
    from vigia.config import Settings
    from vigia.context import StageContext
    from vigia.exceptions import Permanent, Retry, Skip, VigiaError
    from vigia.job import Event, EventType, Job, JobState, StageRun, StageState
    from vigia.pipeline import Pipeline, Severity, Stage
    from vigia.registry import Registry
    from vigia.retry import RetryPolicy

__version__ = "0.1.0"

_WHERE = {
    "Vigia": "vigia.app",
    "Settings": "vigia.config",
    "StageContext": "vigia.context",
    "Permanent": "vigia.exceptions",
    "Retry": "vigia.exceptions",
    "Skip": "vigia.exceptions",
    "VigiaError": "vigia.exceptions",
    "Event": "vigia.job",
    "EventType": "vigia.job",
    "Job": "vigia.job",
    "JobState": "vigia.job",
    "StageRun": "vigia.job",
    "StageState": "vigia.job",
    "Pipeline": "vigia.pipeline",
    "Severity": "vigia.pipeline",
    "Stage": "vigia.pipeline",
    "Registry": "vigia.registry",
    "RetryPolicy": "vigia.retry",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vigia' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found at once next time
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


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
