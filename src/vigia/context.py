"""What a stage sees while it runs: its input, earlier outputs, progress and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from vigia.exceptions import StageCancelled

ProgressCallback = Callable[[float, str | None], None]
#: Progress messages are short status lines, not documents.
MAX_PROGRESS_MESSAGE = 500


class StageContext:
    """Handed to every stage function.

    ``input`` is the job's input; ``outputs`` holds the outputs of the stages this one
    depends on, directly or not (a failed non-critical stage is simply absent).
    """

    __slots__ = ("_cancelled", "_report", "attempt", "input", "job_id", "outputs", "stage")

    def __init__(
        self,
        *,
        job_id: str,
        stage: str,
        attempt: int,
        input: Any,
        outputs: Mapping[str, Any],
        report: ProgressCallback | None = None,
    ) -> None:
        self.job_id = job_id
        self.stage = stage
        self.attempt = attempt
        self.input = input
        self.outputs = outputs
        self._report = report
        self._cancelled = threading.Event()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this stage is, from 0.0 to 1.0, with an optional short message.

        Thread-safe and cheap: call it as often as the work allows. Messages must not
        contain patient data; they are shown to users and stored with the job's events.
        """
        if self._report is not None:
            if message is not None:
                message = str(message).replace("\x00", "\ufffd")[:MAX_PROGRESS_MESSAGE]
            self._report(float(fraction), message)

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or this attempt was abandoned: stop promptly."""
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise StageCancelled()

    def cancel(self) -> None:
        """Called by the executor, never by stages."""
        self._cancelled.set()
