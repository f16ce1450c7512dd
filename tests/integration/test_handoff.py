"""The handoff of finished attempts from pool processes to settlers, on a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
import redis

from vigia.escalation import EscalationRequest, NotificationRequest, Urgency
from vigia.exceptions import StoreUnavailable
from vigia.executors.celery.handoff import (
    FINISHED_KEY,
    HEARTBEAT_PREFIX,
    SETTLING_PREFIX,
    Finished,
    Handoff,
    decode,
    encode,
    settle_batches,
)
from vigia.job import StageRun, StageState
from vigia.orchestrator import ProgressReport, StageOutcome
from vigia.pipeline import Severity


def finished(run_id: int, *, claim: bool = False) -> Finished:
    outcome = StageOutcome(run_id, f"job-{run_id}", "s", 1, "succeeded", 10.0, 11.5, output={"n": run_id})
    planned = StageRun(
        run_id, f"job-{run_id}", "s", StageState.RUNNING, "default", 0, 1, 10.0, "w:h:1:x", 40.0, 10.0, None, None,
        0.0, None, None, None,
    )  # fmt: skip
    return Finished(outcome, (), planned if claim else None)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_a_finished_attempt_survives_the_trip_through_json() -> None:
    outcome = StageOutcome(
        7,
        "job-7",
        "grade",
        2,
        "failed",
        100.0,
        101.25,
        output=None,
        error_type="ValueError",
        error_message="bad photo",
        retryable=True,
        retry_after=3.0,
        escalations=(EscalationRequest("looks like stage 4", Severity.CRITICAL, "wound_care", Urgency.CRITICAL),),
        decisions=(("graded", {"grade": 4, "confidence": 0.91}),),
        notifications=(NotificationRequest("nurse", Urgency.HIGH, "turn the patient", "every 2 h"),),
    )
    reports = (ProgressReport(7, "job-7", "grade", 2, 0.5, "half"), ProgressReport(7, "job-7", "grade", 2, 0.9))
    original = Finished(outcome, reports, finished(7, claim=True).claim)
    assert decode(encode(original)) == original
    assert decode(encode(finished(8))) == finished(8)


def test_a_settler_takes_a_batch_keeps_it_until_done_and_a_dead_settlers_batch_is_rescued(
    client: redis.Redis,
) -> None:
    handoff = Handoff(client)
    for run_id in range(5):
        handoff.push(finished(run_id, claim=run_id % 2 == 0))

    first = handoff.take("a", limit=3)
    assert [decode(item).outcome.run_id for item in first] == [0, 1, 2]
    assert client.llen(FINISHED_KEY) == 2
    # Not done yet (a crash, a store error): the same batch again, nothing new taken.
    assert handoff.take("a", limit=3) == first
    handoff.done("a")
    assert [decode(item).outcome.run_id for item in handoff.take("a", limit=3)] == [3, 4]
    assert client.llen(FINISHED_KEY) == 0

    # "a" still holds 3 and 4. With a heartbeat it is alive: left alone; without, rescued.
    handoff.beat("a")
    assert handoff.rescue() == 0
    client.delete(HEARTBEAT_PREFIX + "a")
    assert handoff.rescue() == 2
    assert client.exists(SETTLING_PREFIX + "a") == 0
    assert [decode(item).outcome.run_id for item in handoff.take("b", limit=10)] == [3, 4]
    # Nothing waiting: an empty batch after the wait.
    handoff.done("b")
    assert handoff.take("b", limit=10, wait=1) == []


def test_settling_drops_what_cannot_be_read_or_settled_and_keeps_a_batch_the_store_could_not_take(
    client: redis.Redis,
) -> None:
    handoff = Handoff(client)
    handoff.push(finished(1))
    client.rpush(FINISHED_KEY, b"{not json")
    handoff.push(finished(2))
    handoff.push(finished(3))

    calls: list[list[int]] = []
    outage = {"left": 1}
    stop = threading.Event()

    def settle(batch: Sequence[Finished]) -> None:
        run_ids = [item.outcome.run_id for item in batch]
        calls.append(run_ids)
        if outage["left"]:
            outage["left"] -= 1
            raise StoreUnavailable("the database is restarting")
        if 2 in run_ids:
            raise ValueError("this one cannot be stored")
        if run_ids == [3]:
            stop.set()

    settle_batches(handoff, "s", settle, stop.is_set, pause_after_error=0.01)

    # The outage kept the batch (the unreadable item left out), which was tried again whole,
    # then item by item: 2 dropped, 1 and 3 settled.
    assert calls == [[1, 2, 3], [1, 2, 3], [1], [2], [3]]
    assert client.llen(FINISHED_KEY) == 0
    assert client.llen(SETTLING_PREFIX + "s") == 0


def test_a_lingering_take_gathers_what_arrives_meanwhile_into_one_batch(client: redis.Redis) -> None:
    handoff = Handoff(client)
    handoff.push(finished(1))
    late = threading.Timer(0.02, lambda: [handoff.push(finished(run_id)) for run_id in (2, 3)])
    late.start()
    try:
        batch = handoff.take("s", limit=10, linger=0.3)
    finally:
        late.join()
    assert [decode(item).outcome.run_id for item in batch] == [1, 2, 3]
    handoff.done("s")
    # Without lingering, what was not there yet waits for the next batch.
    handoff.push(finished(4))
    late = threading.Timer(0.1, lambda: handoff.push(finished(5)))
    late.start()
    try:
        assert [decode(item).outcome.run_id for item in handoff.take("s", limit=10)] == [4]
    finally:
        late.join()


def test_a_settler_told_to_stop_still_settles_what_waits(client: redis.Redis) -> None:
    handoff = Handoff(client)
    for run_id in (1, 2, 3):
        handoff.push(finished(run_id))
    settled: list[int] = []

    settle_batches(handoff, "s", lambda batch: settled.extend(item.outcome.run_id for item in batch), lambda: True)

    assert settled == [1, 2, 3]
    assert client.llen(FINISHED_KEY) == 0
