"""Sharing a queue's slots between tenants: which of the ready stage runs go next.

A free slot goes to the tenant with the fewest stage runs in progress on the queue (ties:
priority, then age), so that one tenant's backlog cannot take every slot while another
waits; and, when an installation sets a cap (`VIGIA_TENANT_MAX_RUNNING`), no tenant holds
more than that many at once, even on an idle queue, so that slots stay free for the next
tenant to come. Pure: the store gives the candidates and the counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Candidates read per slot: enough for other tenants' runs to be among them.
LOOKAHEAD = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    run_id: int
    tenant: str
    priority: int
    available_at: float


def share(
    candidates: Sequence[Candidate], slots: int, in_progress: Mapping[str, int], cap: int | None = None
) -> list[int]:
    """The run ids to start, at most ``slots``, in the order they should start."""
    counts = dict(in_progress)
    waiting = sorted(candidates, key=lambda item: (-item.priority, item.available_at, item.run_id))
    chosen: list[int] = []
    while waiting and len(chosen) < slots:
        allowed = [item for item in waiting if cap is None or counts.get(item.tenant, 0) < cap]
        if not allowed:
            break
        # min() keeps the first of equals: among the least-served tenants, priority then age.
        best = min(allowed, key=lambda item: counts.get(item.tenant, 0))
        chosen.append(best.run_id)
        counts[best.tenant] = counts.get(best.tenant, 0) + 1
        waiting.remove(best)
    return chosen
