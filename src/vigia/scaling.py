"""How many workers a queue needs: queueing arithmetic over what the store observed.

A queue is treated as an M/M/c system: stage runs arrive at rate λ (per second), each takes
a mean service time S on one worker slot, and c slots serve them. The offered load a = λS
is the number of slots busy on average; c must exceed it or the queue grows without bound.
Erlang's C formula gives the probability that a run has to wait at all, and the mean wait
of a run is C(c, a) · S / (c − a). The advice is the smallest c whose mean wait is within
the target, in whole workers of ``slots_per_worker`` slots each.

Real stage times are not exponential (OCR of a page varies less, a retry storm more): the
figure is a starting point that says its reasoning, not a promise. KEDA's `listLength` (the
messages per replica its Redis scaler aims at) follows from the same target: a replica of
``slots_per_worker`` slots clears ``slots_per_worker / S`` runs a second, so a backlog of
``target_wait · slots_per_worker / S`` per replica is what it clears within the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Beyond this many slots the search stops (the advice then says so).
MAX_SLOTS = 10_000


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """What the store saw of one queue over a window."""

    queue: str
    #: Stage runs that became ready on the queue in the window.
    arrivals: int
    #: Stage runs of the queue that finished in the window, and their mean duration.
    finished: int
    mean_service_seconds: float | None
    window_seconds: float

    @property
    def arrival_rate(self) -> float:
        """Runs per second."""
        return self.arrivals / self.window_seconds


@dataclass(frozen=True, slots=True)
class Advice:
    queue: str
    arrivals_per_minute: float
    mean_service_seconds: float | None
    #: Slots busy on average (λ·S).
    offered_load: float
    slots_needed: int
    workers_needed: int
    #: The mean wait with that many workers, and their utilisation.
    expected_wait_seconds: float | None
    utilisation: float | None
    keda_list_length: int | None
    reasoning: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "arrivals_per_minute": round(self.arrivals_per_minute, 3),
            "mean_service_seconds": None if self.mean_service_seconds is None else round(self.mean_service_seconds, 3),
            "offered_load": round(self.offered_load, 3),
            "slots_needed": self.slots_needed,
            "workers_needed": self.workers_needed,
            "expected_wait_seconds": None
            if self.expected_wait_seconds is None
            else round(self.expected_wait_seconds, 3),
            "utilisation": None if self.utilisation is None else round(self.utilisation, 3),
            "keda_list_length": self.keda_list_length,
            "reasoning": self.reasoning,
        }


def erlang_c(slots: int, offered_load: float) -> float:
    """The probability that an arriving run waits, with ``slots`` servers and offered load
    ``offered_load`` (< slots); computed by the recurrence on Erlang B, which neither
    overflows nor loses precision for thousands of slots."""
    if offered_load <= 0:
        return 0.0
    if offered_load >= slots:
        return 1.0
    blocking = 1.0  # Erlang B with 0 servers
    for servers in range(1, slots + 1):
        blocking = offered_load * blocking / (servers + offered_load * blocking)
    utilisation = offered_load / slots
    return blocking / (1 - utilisation + utilisation * blocking)


def mean_wait(slots: int, arrival_rate: float, service_seconds: float) -> float:
    """The mean time a run waits for a slot (seconds); infinite when the slots cannot keep up."""
    offered = arrival_rate * service_seconds
    if offered >= slots:
        return math.inf
    return erlang_c(slots, offered) * service_seconds / (slots - offered)


def keda_list_length(target_wait_seconds: float, slots_per_worker: int, service_seconds: float) -> int:
    """Messages waiting per replica that one replica clears within the target wait."""
    return max(1, math.floor(target_wait_seconds * slots_per_worker / service_seconds))


def advise(
    load: QueueLoad,
    *,
    target_wait_seconds: float,
    slots_per_worker: int,
    min_workers: int = 1,
    max_workers: int = 20,
) -> Advice:
    """The workers ``load`` needs for a mean wait within ``target_wait_seconds``."""
    if target_wait_seconds <= 0 or slots_per_worker < 1 or min_workers < 0 or max_workers < max(min_workers, 1):
        raise ValueError("the target wait must be > 0, slots per worker ≥ 1 and 0 ≤ min ≤ max workers")
    rate, service = load.arrival_rate, load.mean_service_seconds
    per_minute = rate * 60
    if service is None or load.finished == 0:
        return Advice(
            load.queue,
            per_minute,
            None,
            0.0,
            min_workers * slots_per_worker,
            min_workers,
            None,
            None,
            None,
            f"no stage run of {load.queue!r} finished in the last {load.window_seconds:g} s: no service time to "
            f"reason from; keep the minimum of {min_workers} worker(s)",
        )
    offered = rate * service
    slots = max(1, min_workers * slots_per_worker)
    while mean_wait(slots, rate, service) > target_wait_seconds and slots < MAX_SLOTS:
        slots += 1
    workers = math.ceil(slots / slots_per_worker)
    capped = min(max(workers, min_workers), max_workers)
    wait = mean_wait(capped * slots_per_worker, rate, service)
    utilisation = offered / (capped * slots_per_worker)
    reasoning = (
        f"{load.arrivals} runs in {load.window_seconds:g} s is λ = {per_minute:.2f}/min; mean service "
        f"S = {service:.2f} s over {load.finished} finished runs; offered load a = λS = {offered:.2f} busy slots. "
        f"M/M/c (Erlang C): {slots} slot(s) keep the mean wait within {target_wait_seconds:g} s, "
        f"{workers} worker(s) of {slots_per_worker} slot(s)"
    )
    if capped != workers:
        reasoning += f"; held to {capped} by the limits {min_workers}–{max_workers}"
    if math.isinf(wait):
        reasoning += f": {capped} worker(s) cannot keep up (utilisation {utilisation:.0%}), the queue grows"
    else:
        reasoning += f": mean wait {wait:.2f} s at {utilisation:.0%} utilisation"
    return Advice(
        load.queue,
        per_minute,
        service,
        offered,
        slots,
        capped,
        None if math.isinf(wait) else wait,
        utilisation,
        keda_list_length(target_wait_seconds, slots_per_worker, service),
        reasoning,
    )
