"""Finished attempts handed from worker pool processes to settlers, over Redis.

A pool process that finished a stage does not write its outcome to the store itself: it
pushes it onto a Redis list and takes its next task at once. Settlers (each `vigia worker`'s
housekeeping process) take what waits there in batches and settle each batch in one
transaction, then send the stage runs that became ready. One transaction per batch rather
than one per stage run is what lets the store keep up with Celery.

Nothing is lost on the way: a settler moves what it takes onto a list of its own and
deletes it only after the store committed; the list of a settler that died (its heartbeat
expired) is moved back for another. A duplicate settlement changes nothing: the
coordinator refuses an outcome for an attempt that is no longer running. And should Redis
itself lose the list, the store still says the run was sent (or leased) and not finished:
it is sent again (or reaped) and runs once more, as after any lost message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import redis

from vigia.escalation import EscalationRequest, NotificationRequest, Urgency
from vigia.exceptions import StoreUnavailable, TransientConflict
from vigia.job import StageRun
from vigia.orchestrator import ProgressReport, StageOutcome
from vigia.pipeline import Severity

log = logging.getLogger("vigia.handoff")

#: The list pool processes push finished attempts onto.
FINISHED_KEY = "vigia:finished"
#: Each settler's list of what it took and has not committed yet.
SETTLING_PREFIX = "vigia:settling:"
#: A settler refreshes its heartbeat this often; one silent for `HEARTBEAT_TTL` is dead.
HEARTBEAT_PREFIX = "vigia:settler:"
#: Well under a stage run's lease (30 s by default), so that a dead settler's batch is
#: settled by another before the reaper takes the runs back as lost.
HEARTBEAT_TTL = 10
#: At most this many finished attempts per transaction.
SETTLE_BATCH = 200
#: How long a stopping settler goes on settling what is already waiting.
DRAIN_SECONDS = 5.0
#: How long a busy settler waits for more after the first item of a batch.
LINGER = 0.02
#: Errors that say "not now" rather than "not this item": the batch is kept and tried again.
_WAIT_FOR = (StoreUnavailable, TransientConflict)

# Moves up to ARGV[1] items from the head of KEYS[1] to the tail of KEYS[2], in one step.
_TAKE_MORE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt as its pool process hands it over: its outcome, the progress it reported
    since its keeper last wrote, and its claim when the keeper has not written it yet."""

    outcome: StageOutcome
    reports: tuple[ProgressReport, ...] = ()
    claim: StageRun | None = None


def encode(finished: Finished) -> bytes:
    claim, outcome = finished.claim, finished.outcome
    # JSON has no tuples; the decoder rebuilds them (and the enums) field by field. Shallow
    # copies: `asdict` would copy the whole output first, only for it to be serialised.
    return json.dumps(
        {
            "outcome": {
                **_fields(outcome),
                "escalations": [_fields(item) for item in outcome.escalations],
                "notifications": [_fields(item) for item in outcome.notifications],
            },
            "reports": [_fields(report) for report in finished.reports],
            "claim": None if claim is None else {**_fields(claim), "state": claim.state.value},
        },
        separators=(",", ":"),
    ).encode()


def _fields(instance: Any) -> dict[str, Any]:
    return {field.name: getattr(instance, field.name) for field in fields(instance)}


def decode(data: bytes) -> Finished:
    raw = json.loads(data)
    outcome = raw["outcome"]
    outcome["escalations"] = tuple(
        EscalationRequest(
            reason=item["reason"],
            severity=Severity(item["severity"]),
            role=item["role"],
            urgency=None if item["urgency"] is None else Urgency(item["urgency"]),
        )
        for item in outcome["escalations"]
    )
    outcome["decisions"] = tuple((action, details) for action, details in outcome["decisions"])
    outcome["notifications"] = tuple(
        NotificationRequest(**{**item, "urgency": Urgency(item["urgency"])}) for item in outcome["notifications"]
    )
    return Finished(
        StageOutcome(**outcome),
        tuple(ProgressReport(**report) for report in raw["reports"]),
        None if raw["claim"] is None else StageRun.from_row(raw["claim"]),
    )


class Handoff:
    """The Redis side: pool processes `push`, settlers `take` and then `done`."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._take_more = client.register_script(_TAKE_MORE)
        #: Settlers (of this process) known to hold nothing on their own lists.
        self._settled: set[str] = set()

    def push(self, finished: Finished) -> None:
        self.client.rpush(FINISHED_KEY, encode(finished))

    def take(
        self, settler: str, *, limit: int = SETTLE_BATCH, wait: int | None = 1, linger: float = 0.0
    ) -> list[bytes]:
        """What this settler took and has not finished, or else up to ``limit`` waiting
        items (waiting up to ``wait`` seconds for the first, not at all with None, then
        ``linger`` seconds for more to arrive), moved onto its own list."""
        mine = SETTLING_PREFIX + settler
        if settler not in self._settled:  # it has not finished all it took (or just started)
            left = cast(list[bytes], self.client.lrange(mine, 0, -1))
            if left:
                return left
        self._settled.discard(settler)
        if wait is None:
            first = cast(bytes | None, self.client.lmove(FINISHED_KEY, mine, "LEFT", "RIGHT"))
        else:
            first = cast(bytes | None, self.client.blmove(FINISHED_KEY, mine, wait, "LEFT", "RIGHT"))
        if first is None:
            self._settled.add(settler)
            return []
        if limit == 1:
            return [first]
        if linger:
            time.sleep(linger)
        return [first, *cast(list[bytes], self._take_more(keys=[FINISHED_KEY, mine], args=[limit - 1]))]

    def done(self, settler: str) -> None:
        self.client.delete(SETTLING_PREFIX + settler)
        self._settled.add(settler)

    def beat(self, settler: str) -> None:
        self.client.set(HEARTBEAT_PREFIX + settler, "1", ex=HEARTBEAT_TTL)

    def rescue(self) -> int:
        """Move the lists of settlers whose heartbeat expired back onto the shared list."""
        moved = 0
        for key in self.client.scan_iter(match=SETTLING_PREFIX + "*", count=100):
            settler = key.decode()[len(SETTLING_PREFIX) :]
            if self.client.exists(HEARTBEAT_PREFIX + settler):
                continue
            while self.client.lmove(key, FINISHED_KEY, "LEFT", "RIGHT") is not None:
                moved += 1
        return moved


def settle_batches(
    handoff: Handoff,
    settler: str,
    settle: Callable[[Sequence[Finished]], None],
    should_stop: Callable[[], bool],
    *,
    pause_after_error: float = 1.0,
    drain_seconds: float = DRAIN_SECONDS,
) -> None:
    """Until ``should_stop`` (and then what waits, for up to ``drain_seconds``): take
    batches and settle them. What failed for want of the store or Redis is kept and tried
    again; see `_settle_or_drop` for what cannot be settled at all."""
    next_beat = 0.0
    busy = False
    drain_until: float | None = None
    while True:
        if drain_until is None and should_stop():
            # Settle what is already waiting (the last tasks of a stopping worker), briefly.
            drain_until = time.monotonic() + drain_seconds
        if drain_until is not None and time.monotonic() >= drain_until:
            return
        try:
            if time.monotonic() >= next_beat:
                handoff.beat(settler)
                if handoff.rescue():
                    log.warning("handoff.rescued", extra={"settler": settler})
                next_beat = time.monotonic() + HEARTBEAT_TTL / 3
            # Under load, a moment's wait gathers a bigger batch: one transaction settles
            # more, at the cost of a few milliseconds per stage.
            draining = drain_until is not None
            taken = handoff.take(settler, linger=0.0 if draining or not busy else LINGER, wait=None if draining else 1)
            busy = len(taken) > 1
            if not taken:
                if draining:
                    return
                continue
            _settle_or_drop(settle, _readable(taken))
            handoff.done(settler)
        except (*_WAIT_FOR, redis.RedisError) as error:
            log.warning("handoff.waiting", extra={"error": str(error), "error_type": type(error).__name__})
            time.sleep(pause_after_error)
        except Exception as error:  # a bug must not stop settling for good: say it, go on
            log.exception("handoff.failed", extra={"error": str(error), "error_type": type(error).__name__})
            time.sleep(pause_after_error)


def _settle_or_drop(settle: Callable[[Sequence[Finished]], None], batch: Sequence[Finished]) -> None:
    """Settle the batch; should the store refuse it, item by item, so that one bad item
    (logged and dropped) does not hold up the rest."""
    try:
        settle(batch)
    except _WAIT_FOR:
        raise
    except Exception as error:
        log.error("handoff.batch_failed", extra={"error": str(error), "error_type": type(error).__name__})
        for item in batch:
            try:
                settle([item])
            except _WAIT_FOR:
                raise
            except Exception as item_error:
                log.error("handoff.item_dropped", extra={"run_id": item.outcome.run_id, "error": str(item_error)})


def _readable(taken: Sequence[bytes]) -> list[Finished]:
    batch: list[Finished] = []
    for data in taken:
        try:
            batch.append(decode(data))
        except (ValueError, KeyError, TypeError) as error:
            log.error("handoff.unreadable", extra={"error": str(error), "item": data[:200].decode(errors="replace")})
    return batch
