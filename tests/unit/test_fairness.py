"""Sharing a queue's slots between tenants."""

from __future__ import annotations

from vigia.fairness import Candidate, share


def runs(tenant: str, first_id: int, count: int, priority: int = 0) -> list[Candidate]:
    return [Candidate(first_id + n, tenant, priority, float(first_id + n)) for n in range(count)]


def test_slots_alternate_between_tenants_oldest_first_within_each() -> None:
    waiting = [*runs("a", 1, 5), *runs("b", 100, 2)]
    assert share(waiting, 4, {}) == [1, 100, 2, 101]
    # A tenant already running gets the slot after those running less.
    assert share(waiting, 2, {"a": 3}) == [100, 101]


def test_priority_decides_among_the_least_served() -> None:
    waiting = [*runs("a", 1, 2), *runs("b", 10, 1, priority=5), *runs("c", 20, 1, priority=9)]
    assert share(waiting, 3, {}) == [20, 10, 1]


def test_a_cap_leaves_slots_free() -> None:
    waiting = runs("a", 1, 10)
    assert share(waiting, 8, {}, cap=3) == [1, 2, 3]
    assert share(waiting, 8, {"a": 3}, cap=3) == []
    assert share([*waiting, *runs("b", 50, 1)], 8, {"a": 3}, cap=3) == [50]
