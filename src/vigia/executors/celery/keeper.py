"""The keeper of a worker process's running stage runs: one thread, whatever their number.

A stage that ends within `KEEPER_INTERVAL` never meets it: its claim is written with its
outcome. One that runs longer has its claim written by the keeper (so that the store shows
it running, and who holds it), then its progress and its lease every interval; a refused
claim, a lost lease or a cancelled job cancels it. One thread per process rather than one
per stage run: starting and joining a thread per task cost more than a no-op stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vigia.context import StageContext
from vigia.coordinator import Coordinator
from vigia.events import EventBus
from vigia.exceptions import StoreError
from vigia.job import StageRun
from vigia.orchestrator import ProgressReport

log = logging.getLogger("vigia.keeper")

#: How often a running stage's progress is written, its lease renewed, cancellation checked.
KEEPER_INTERVAL = 0.25


@dataclass(eq=False)
class Held:
    """A stage run being run in this process: the claim it means to make, and its context."""

    claim: StageRun
    context: StageContext
    take_reports: Callable[[], list[ProgressReport]]
    due: float = field(default_factory=lambda: time.monotonic() + KEEPER_INTERVAL)
    claimed: bool = False
    finished: bool = False
    #: Held by the keeper while it writes for this run, so that the run ends only after.
    lock: threading.Lock = field(default_factory=threading.Lock)


class Keeper:
    def __init__(self, coordinator: Coordinator, bus: EventBus, owner: str, lease_seconds: float) -> None:
        self.coordinator = coordinator
        self.bus = bus
        self.owner = owner
        self.lease_seconds = lease_seconds
        # By the Held itself: with a threads pool, two deliveries of one run may both be here.
        self._held: dict[int, Held] = {}
        self._guard = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, held: Held) -> None:
        with self._guard:
            self._held[id(held)] = held
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._keep, name="vigia-keeper", daemon=True)
                self._thread.start()
            # Not woken: it looks every interval anyway, and nothing is due before then.
            # Waking it for each run cost two thread switches per no-op stage.

    def release(self, held: Held) -> bool:
        """The stage run ended: stop keeping it. True when its claim is already written."""
        with held.lock:
            held.finished = True
        with self._guard:
            self._held.pop(id(held), None)
        return held.claimed

    def _keep(self) -> None:
        while True:
            with self._guard:
                # Asleep until the first run is due (most stage runs end before theirs), or
                # an interval while it keeps nothing: a run held meanwhile is due after that.
                first = min((held.due for held in self._held.values()), default=time.monotonic() + KEEPER_INTERVAL)
                self._guard.wait(max(first - time.monotonic(), 0.0))
                now = time.monotonic()
                due = [held for held in self._held.values() if held.due <= now]
            for held in due:
                with held.lock:
                    if not held.finished:
                        try:
                            self._keep_one(held)
                        except Exception as error:  # one run's trouble must not stop the keeping of all
                            log.exception("keeper.failed", extra={"error": str(error), "run_id": held.claim.id})
                        held.due = time.monotonic() + KEEPER_INTERVAL

    def _keep_one(self, held: Held) -> None:
        try:
            if not held.claimed:
                settled = self.coordinator.settle([], held.take_reports(), [held.claim])
                self.bus.publish(settled.events)
                if settled.refused:  # taken by another delivery, or the job ended
                    held.context.cancel()
                    held.finished = True
                    return
                held.claimed = True
                return
            if reports := held.take_reports():
                self.bus.publish(self.coordinator.settle([], reports).events)
            lost, cancelled = self.coordinator.store.renew_leases(
                [held.claim.id], self.owner, time.time() + self.lease_seconds
            )
        except StoreError as error:
            log.warning("keeper.failed", extra={"error": str(error), "run_id": held.claim.id})
            return
        if lost or cancelled:
            held.context.cancel()
