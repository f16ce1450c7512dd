"""Queueing arithmetic for the scaling advice, against figures worked out by hand and the
textbook's table."""

from __future__ import annotations

import math

import pytest

from vigia.scaling import QueueLoad, advise, erlang_c, keda_list_length, mean_wait


def test_erlang_c_with_one_slot_is_the_utilisation_and_matches_the_textbook_for_more() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    # Two slots at a = 1 (ρ = 0.5): C = 1/3; ten slots at a = 8: C ≈ 0.409 (Erlang C tables).
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=5e-4)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 0.0) == 0.0
    # Thousands of slots neither overflow nor lose the answer.
    assert 0 < erlang_c(2000, 1950.0) < 1


def test_the_mean_wait_is_the_m_m_1_formula_with_one_slot_and_infinite_when_overloaded() -> None:
    # λ = 0.5/s, S = 1 s: Wq = ρS/(1 − ρ) = 1 s.
    assert mean_wait(1, 0.5, 1.0) == pytest.approx(1.0)
    assert math.isinf(mean_wait(2, 3.0, 1.0))


def test_the_advice_is_the_fewest_workers_that_keep_the_wait_within_the_target() -> None:
    # 600 runs in 10 minutes (1/s) of 4 s each: 4 slots busy on average.
    load = QueueLoad("documents", arrivals=600, finished=590, mean_service_seconds=4.0, window_seconds=600)
    advice = advise(load, target_wait_seconds=2.0, slots_per_worker=2)
    assert advice.offered_load == pytest.approx(4.0)
    assert advice.expected_wait_seconds is not None and advice.expected_wait_seconds <= 2.0
    # One slot fewer would not do: the advice is the smallest that does.
    assert mean_wait(advice.slots_needed - 1, 1.0, 4.0) > 2.0
    assert advice.workers_needed == math.ceil(advice.slots_needed / 2)
    assert advice.keda_list_length == keda_list_length(2.0, 2, 4.0) == 1
    assert "λ = 60.00/min" in advice.reasoning and "Erlang C" in advice.reasoning


def test_limits_hold_the_advice_and_say_so() -> None:
    load = QueueLoad("coding", arrivals=36_000, finished=36_000, mean_service_seconds=2.0, window_seconds=3600)
    advice = advise(load, target_wait_seconds=1.0, slots_per_worker=2, max_workers=3)
    assert advice.workers_needed == 3
    assert advice.expected_wait_seconds is None  # 6 slots against 20 busy: the queue grows
    assert "held to 3" in advice.reasoning and "cannot keep up" in advice.reasoning


def test_without_a_finished_run_there_is_no_service_time_to_reason_from() -> None:
    advice = advise(
        QueueLoad("embeddings", arrivals=3, finished=0, mean_service_seconds=None, window_seconds=3600),
        target_wait_seconds=30,
        slots_per_worker=2,
        min_workers=2,
    )
    assert advice.workers_needed == 2 and advice.keda_list_length is None
    assert "no service time" in advice.reasoning


def test_a_backlog_per_replica_is_what_one_replica_clears_within_the_target() -> None:
    # 2 slots at 8 s a run clear 0.25 runs/s: 60 s of waiting is 15 runs.
    assert keda_list_length(60, 2, 8) == 15
    assert keda_list_length(1, 1, 100) == 1  # never zero
