"""Executors run stage runs: in this process (embedded) or on Celery workers (distributed)."""

from vigia.executors.base import Executor

__all__ = ["Executor"]
