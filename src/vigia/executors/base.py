"""The executor interface the app drives, whatever runs the stages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Executor(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop taking work; give running stages the grace period, then hand them back."""

    def wake(self, queues: Iterable[str] = ()) -> None:
        """New work may be ready (a submission, a retry): look now rather than at the next poll."""

    def job_cancelled(self, job_id: str) -> None:
        """The job was cancelled: stages of it running here should see `ctx.cancelled`."""
