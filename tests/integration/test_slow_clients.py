"""A slow or vanished listener must not slow the workers, grow memory, or miss events."""

from __future__ import annotations

import asyncio
import time

from vigia import EventType, JobState, Pipeline, Settings, StageContext, Vigia
from vigia.events import SUBSCRIPTION_BUFFER, LocalEventBus
from vigia.job import Event

chatty = Pipeline("t_chatty")
PROGRESS_CALLS = 3 * SUBSCRIPTION_BUFFER


@chatty.stage()
async def talk(ctx: StageContext) -> dict[str, int]:
    for number in range(1, PROGRESS_CALLS + 1):
        ctx.progress(number / PROGRESS_CALLS, f"step {number}")
        if number % 100 == 0:
            await asyncio.sleep(0)  # let the settle loop write what has gathered
    return {"calls": PROGRESS_CALLS}


def _event(seq: int) -> Event:
    return Event("0" * 32, seq, EventType.STAGE_PROGRESS, JobState.RUNNING, "talk", 1.0, None, time.time())


def test_a_listener_that_never_reads_holds_a_bounded_buffer_and_is_told_it_overflowed() -> None:
    async def scenario() -> tuple[int, bool, float]:
        bus = LocalEventBus()
        subscription = bus.subscribe("0" * 32)
        began = time.perf_counter()
        for seq in range(1, 5 * SUBSCRIPTION_BUFFER + 1):
            bus.publish([_event(seq)])
        elapsed = time.perf_counter() - began
        size = subscription._queue.qsize()
        overflowed = subscription.overflowed
        subscription.close()
        return size, overflowed, elapsed

    size, overflowed, elapsed = asyncio.run(scenario())
    assert size == SUBSCRIPTION_BUFFER
    assert overflowed is True
    assert elapsed < 5  # publishing never waited for the reader (generous: shared machines)


def test_workers_finish_while_a_reader_stalls_and_the_reader_still_gets_every_event(tmp_path) -> None:
    async def scenario() -> tuple[JobState, list[int], int]:
        vigia = Vigia.from_settings(Settings(data_dir=tmp_path, poll_interval=0.05), pipelines=[chatty])
        await vigia.start()
        try:
            job = await vigia.submit("t_chatty", {})
            events = vigia.events(job.id)
            first = await anext(events)
            # The reader stalls while the job runs to its end: the workers must not wait for it.
            finished = await vigia.wait(job.id, timeout=60)
            seen = [first.seq] + [event.seq async for event in events]
            subscribers_left = vigia.bus.subscriber_count  # type: ignore[attr-defined]
            return finished.state, seen, subscribers_left
        finally:
            await vigia.stop()
            vigia.close()

    state, seen, subscribers_left = asyncio.run(scenario())
    assert state is JobState.SUCCEEDED
    # More events than the subscription holds: the reader must have caught up from the store.
    assert len(seen) > SUBSCRIPTION_BUFFER
    assert seen == list(range(1, len(seen) + 1)), "every event once, in order, none missing"
    assert subscribers_left == 0
