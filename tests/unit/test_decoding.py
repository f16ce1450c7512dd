"""The decode budget a worker process shares between every stage that decodes images."""

from __future__ import annotations

import threading

import pytest

from vigia.workloads.decoding import DecodeBudget, OverBudget


def test_one_image_larger_than_the_whole_budget_is_refused_at_once() -> None:
    budget = DecodeBudget(100)
    with pytest.raises(OverBudget, match="the scan decodes to 0 megapixels, over this worker's budget"):
        budget.take(101, "the scan")
    assert budget.held == 0


def test_an_image_waits_until_the_pixels_it_needs_are_given_back() -> None:
    budget = DecodeBudget(100)
    entered = threading.Event()

    def second() -> None:
        with budget.hold(60):
            entered.set()

    first = budget.take(60)
    waiting = threading.Thread(target=second)
    waiting.start()
    # The second cannot start while the first holds 60 of 100.
    assert not entered.wait(0.2)
    first.release()
    waiting.join(10)
    assert entered.is_set()
    assert budget.held == 0 and budget.peak == 60


def test_a_hold_released_twice_gives_its_pixels_back_once() -> None:
    budget = DecodeBudget(100)
    taken = budget.take(40)
    other = budget.take(30)
    taken.release()
    taken.release()
    assert budget.held == 30
    other.release()
    assert budget.held == 0 and budget.peak == 70
