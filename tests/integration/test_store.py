"""The SQL job store against real databases: SQLite and PostgreSQL, a fresh one per test.

Jobs go through `Coordinator`, the only writer the executors use, so these tests exercise
the SQL the engine really runs. Stage functions are never called here: a test plays the
worker by claiming stage runs and settling their outcomes itself.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vigia.audit import AuditDraft, chain_key, verify
from vigia.coordinator import Assignment, Coordinator
from vigia.exceptions import IdempotencyConflict, InvalidInput, JobNotFound, SchemaOutOfDate
from vigia.job import Event, EventType, JobState, StageRun, StageState
from vigia.orchestrator import StageOutcome
from vigia.pipeline import Pipeline, Stage
from vigia.registry import Registry
from vigia.store import JobFilter, bulk, migrations
from vigia.store.base import StageWork
from vigia.store.database import Database
from vigia.store.documents import KEYWORD_INDEX_COLUMN, KEYWORD_INDEX_INDEX, KEYWORD_INDEX_TABLE
from vigia.store.jobs import SQLJobStore
from vigia.store.oversight import OversightStore
from vigia.store.schema import events as events_table
from vigia.store.schema import metadata
from vigia.store.schema import stage_runs as stage_runs_table

#: Where the fake clock starts (November 2026): far from the real time, on purpose.
START = 1_795_000_000.0


def _never_run(ctx: Any) -> None:
    raise AssertionError("store tests never run a stage")


#: fetch ─┬─ merge ── report        (scan runs on its own queue)
#: scan ──┘
PIPELINE = Pipeline(
    "store_test",
    version="7",
    stages=[
        Stage("fetch", _never_run, after=()),
        Stage("scan", _never_run, after=(), queue="images"),
        Stage("merge", _never_run, after=("fetch", "scan")),
        Stage("report", _never_run),
    ],
)
#: A one-stage pipeline on a queue of its own.
OTHER = Pipeline("other_test", stages=[Stage("only", _never_run, queue="other")])

ALL_QUEUES = {"default": 100, "images": 100, "other": 100}


class Clock:
    """Time that moves only when a test says so; passed to `Coordinator` as its clock."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coordinator(store: SQLJobStore, clock: Clock) -> Coordinator:
    # rand=0 takes the jitter out of retry delays: the first retry waits exactly 1 s.
    return Coordinator(store, Registry([PIPELINE, OTHER]), clock=clock, rand=lambda: 0.0)


def runs_by_stage(store: SQLJobStore, job_id: str) -> dict[str, StageRun]:
    return {run.stage: run for run in store.get_runs(job_id)}


def outcome_of(assignment: Assignment, now: float, output: Any = None, **changes: Any) -> StageOutcome:
    run = assignment.run
    values: dict[str, Any] = {
        "run_id": run.id,
        "job_id": run.job_id,
        "stage": run.stage,
        "attempt": run.attempts,
        "status": "succeeded",
        "started_at": run.started_at,
        "finished_at": now,
        "output": output,
    }
    values.update(changes)
    return StageOutcome(**values)


def event_summary(events: list[Event]) -> list[tuple[int, str, str | None]]:
    return [(event.seq, event.type.value, event.stage) for event in events]


# --- schema and migrations ------------------------------------------------------------------


def schema_differences(store: SQLJobStore) -> list[Any]:
    with store.database.engine.connect() as connection:
        # The version table is Alembic's bookkeeping, not part of `metadata`: naming it
        # keeps it out of the comparison. Server defaults are compared too; none differ
        # today (neither the schema nor the migration declares one), so none are ignored.
        context = MigrationContext.configure(
            connection,
            opts={"version_table": migrations.VERSION_TABLE, "compare_type": True, "compare_server_default": True},
        )
        return [difference for difference in compare_metadata(context, metadata) if not _keyword_index(difference)]


def _keyword_index(difference: Any) -> bool:
    """The document store's full-text objects, which no SQLAlchemy table declares."""
    kind, target = difference[0], difference[-1]
    if kind == "remove_table":
        return str(target.name).startswith(KEYWORD_INDEX_TABLE)
    if kind == "remove_index":
        return bool(target.name == KEYWORD_INDEX_INDEX)
    if kind == "remove_column":
        return bool(target.name == KEYWORD_INDEX_COLUMN)
    return False


def test_migrations_build_exactly_the_declared_schema(store: SQLJobStore) -> None:
    assert schema_differences(store) == []
    tables = {
        name for name in sa.inspect(store.database.engine).get_table_names() if not name.startswith(KEYWORD_INDEX_TABLE)
    }
    assert tables == {*metadata.tables, migrations.VERSION_TABLE}


def test_schema_comparison_notices_a_missing_index(store: SQLJobStore) -> None:
    """The comparison above can fail: drop an index the schema declares and it says so."""
    with store.database.engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_vigia_stage_runs_claim"))
    differences = schema_differences(store)
    assert [(kind, index.name) for kind, index in differences] == [("add_index", "ix_vigia_stage_runs_claim")]


def test_check_refuses_an_empty_database_and_passes_after_upgrade(store_url: str) -> None:
    store = SQLJobStore(Database(store_url))
    try:
        with pytest.raises(SchemaOutOfDate, match="vigia db upgrade"):
            store.database.check()
        store.database.upgrade()
        store.database.check()
    finally:
        store.database.close()


def test_upgrade_twice_changes_nothing(store: SQLJobStore, coordinator: Coordinator) -> None:
    submitted = coordinator.submit("store_test", {"n": 1})
    store.database.upgrade()
    store.database.check()
    with store.database.engine.connect() as connection:
        assert migrations.current_revision(connection) == migrations.head_revision()
        versions = connection.execute(sa.text(f"SELECT version_num FROM {migrations.VERSION_TABLE}")).all()
    assert [row.version_num for row in versions] == [migrations.head_revision()]
    assert store.get_job(submitted.job.id) == submitted.job
    assert schema_differences(store) == []


# --- submission and idempotency -----------------------------------------------------------


def test_submit_stores_a_queued_job_with_its_stage_runs(store: SQLJobStore, coordinator: Coordinator) -> None:
    job_input = {"patient": "pz-0042", "note": "úlcera en talón — estadio 2", "tags": ["a", None, 3.5]}
    submitted = coordinator.submit("store_test", job_input, tenant="acme", priority=3)

    assert submitted.created is True
    job = store.get_job(submitted.job.id, tenant="acme")
    assert job == submitted.job
    assert (job.state, job.tenant, job.pipeline, job.pipeline_version) == (JobState.QUEUED, "acme", "store_test", "7")
    assert (job.priority, job.progress, job.last_seq, job.created_at) == (3, 0.0, 1, START)
    assert job.input == job_input
    assert (job.started_at, job.finished_at, job.result, job.current_stage) == (None, None, None, None)

    events = store.events_after(job.id)
    assert events == submitted.events
    assert event_summary(events) == [(1, "job.queued", None)]
    assert events[0].state is JobState.QUEUED

    runs = runs_by_stage(store, job.id)
    assert {name: (run.state, run.queue) for name, run in runs.items()} == {
        "fetch": (StageState.QUEUED, "default"),
        "scan": (StageState.QUEUED, "images"),
        "merge": (StageState.PENDING, "default"),
        "report": (StageState.PENDING, "default"),
    }
    for run in runs.values():
        assert (run.priority, run.attempts, run.lease_owner, run.output, run.available_at) == (3, 0, None, None, START)


def test_same_idempotency_key_and_input_returns_the_same_job(store: SQLJobStore, coordinator: Coordinator) -> None:
    first = coordinator.submit("store_test", {"a": 1, "b": [1, 2]}, tenant="acme", idempotency_key="k-1")
    # The same input with its keys in another order is the same input.
    again = coordinator.submit("store_test", {"b": [1, 2], "a": 1}, tenant="acme", idempotency_key="k-1")

    assert (again.created, again.job.id, again.events) == (False, first.job.id, [])
    assert store.count_jobs(JobFilter(tenant="acme")) == 1
    assert len(store.events_after(first.job.id)) == 1


def test_same_idempotency_key_with_another_input_conflicts(store: SQLJobStore, coordinator: Coordinator) -> None:
    first = coordinator.submit("store_test", {"a": 1}, tenant="acme", idempotency_key="k-1")

    with pytest.raises(IdempotencyConflict) as conflict:
        coordinator.submit("store_test", {"a": 2}, tenant="acme", idempotency_key="k-1")
    assert conflict.value.details["job_id"] == first.job.id
    with pytest.raises(IdempotencyConflict):
        coordinator.submit("other_test", {"a": 1}, tenant="acme", idempotency_key="k-1")
    assert store.count_jobs(JobFilter()) == 1


def test_another_tenant_may_reuse_an_idempotency_key(store: SQLJobStore, coordinator: Coordinator) -> None:
    acme = coordinator.submit("store_test", {"a": 1}, tenant="acme", idempotency_key="shared")
    globex = coordinator.submit("store_test", {"a": 2}, tenant="globex", idempotency_key="shared")

    assert globex.created is True
    assert globex.job.id != acme.job.id
    assert store.get_job(globex.job.id, tenant="globex").input == {"a": 2}
    assert store.count_jobs(JobFilter(tenant="acme")) == 1
    assert store.count_jobs(JobFilter(tenant="globex")) == 1


NOT_STORABLE = {
    # PostgreSQL's JSONB cannot hold NUL; refusing it everywhere keeps the backends alike.
    "nul": {"text": "page 1\x00page 2"},
    # JSON allows the escape "\\ud800", but a lone surrogate is not text UTF-8 can encode.
    "lone-surrogate": {"text": "\ud800"},
    "nan": {"score": float("nan")},
}


@pytest.mark.parametrize("job_input", NOT_STORABLE.values(), ids=NOT_STORABLE.keys())
def test_submit_refuses_input_the_store_cannot_hold(
    store: SQLJobStore, coordinator: Coordinator, job_input: Any
) -> None:
    with pytest.raises(InvalidInput):
        coordinator.submit("store_test", job_input)
    assert store.count_jobs(JobFilter()) == 0


def test_concurrent_submissions_with_one_key_make_one_job(store: SQLJobStore) -> None:
    others = [SQLJobStore(Database(store.database.url)) for _ in range(3)]
    try:
        coordinators = [Coordinator(each, Registry([PIPELINE])) for each in [store, *others]]
        start = threading.Barrier(len(coordinators))

        def submit(coordinator: Coordinator) -> tuple[str, bool]:
            start.wait()
            submitted = coordinator.submit("store_test", {"a": 1}, tenant="acme", idempotency_key="race")
            return submitted.job.id, submitted.created

        with ThreadPoolExecutor(len(coordinators)) as pool:
            results = list(pool.map(submit, coordinators))
    finally:
        for each in others:
            each.database.close()

    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert store.count_jobs(JobFilter()) == 1


# --- claiming -----------------------------------------------------------------------------


PRIORITIES = [("low-old", 0), ("mid", 5), ("lowest", -1), ("top", 10), ("low-new", 0)]


def submit_by_priority(coordinator: Coordinator, clock: Clock) -> dict[str, str]:
    """Jobs one second apart with the priorities above; returns their names by job id."""
    names = {}
    for name, priority in PRIORITIES:
        names[coordinator.submit("store_test", {"name": name}, priority=priority).job.id] = name
        clock.advance(1)
    return names


def test_claim_takes_higher_priority_first_then_older(coordinator: Coordinator, clock: Clock) -> None:
    names = submit_by_priority(coordinator, clock)

    def claimed(limit: int) -> set[str]:
        return {names[assignment.job.id] for assignment in coordinator.claim({"images": limit}, "worker-1", 30)[0]}

    assert claimed(2) == {"top", "mid"}
    assert claimed(1) == {"low-old"}
    assert claimed(10) == {"low-new", "lowest"}
    assert claimed(10) == set()


def test_claim_returns_runs_in_priority_order(coordinator: Coordinator, clock: Clock) -> None:
    names = submit_by_priority(coordinator, clock)

    assignments, _ = coordinator.claim({"images": 10}, "worker-1", 30)

    assert [names[assignment.job.id] for assignment in assignments] == ["top", "mid", "low-old", "low-new", "lowest"]


def test_claim_marks_runs_running_and_numbers_events_per_job(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    one = coordinator.submit("store_test", {"n": 1}).job
    two = coordinator.submit("store_test", {"n": 2}).job
    now = clock.advance(5)

    assignments, claim_events = coordinator.claim({"default": 10, "images": 10}, "worker-1", 30)

    assert sorted((a.job.id, a.run.stage) for a in assignments) == sorted(
        (job.id, stage) for job in (one, two) for stage in ("fetch", "scan")
    )
    for assignment in assignments:
        stored = runs_by_stage(store, assignment.job.id)[assignment.run.stage]
        assert stored == assignment.run
        assert (stored.state, stored.attempts, stored.lease_owner) == (StageState.RUNNING, 1, "worker-1")
        assert (stored.lease_until, stored.started_at) == (now + 30, now)
        assert assignment.outputs == {}

    for job in (one, two):
        events = store.events_after(job.id)
        assert [event.seq for event in events] == [1, 2, 3, 4]
        assert [event.type for event in events] == [
            EventType.JOB_QUEUED,
            EventType.JOB_STARTED,
            EventType.STAGE_STARTED,
            EventType.STAGE_STARTED,
        ]
        assert {event.stage for event in events[2:]} == {"fetch", "scan"}
        assert all(event.state is JobState.RUNNING for event in events[1:])
        assert sorted(event_summary([e for e in claim_events if e.job_id == job.id])) == event_summary(events[1:])
        stored_job = store.get_job(job.id)
        assert (stored_job.state, stored_job.started_at, stored_job.last_seq) == (JobState.RUNNING, now, 4)
        assert stored_job.current_stage in {"fetch", "scan"}
        # Pending stages were not touched.
        assert runs_by_stage(store, job.id)["merge"].state is StageState.PENDING


def test_a_claimed_run_is_not_claimed_again(store: SQLJobStore, coordinator: Coordinator, clock: Clock) -> None:
    first_job = coordinator.submit("store_test", {"n": 1}).job
    first, _ = coordinator.claim({"default": 10}, "worker-1", 30)
    second_job = coordinator.submit("store_test", {"n": 2}).job
    clock.advance(1)

    second, _ = coordinator.claim({"default": 10}, "worker-2", 30)
    third, events = coordinator.claim({"default": 10}, "worker-3", 30)

    assert [(a.job.id, a.run.stage) for a in first] == [(first_job.id, "fetch")]
    assert [(a.job.id, a.run.stage) for a in second] == [(second_job.id, "fetch")]
    assert (third, events) == ([], [])
    assert runs_by_stage(store, first_job.id)["fetch"].lease_owner == "worker-1"
    assert runs_by_stage(store, first_job.id)["fetch"].attempts == 1
    # A message naming a run somebody already holds gets nothing to run either.
    assert coordinator.assignment_for(first[0].run.id, "worker-4", 30) is None


# --- settling -------------------------------------------------------------------------------

FETCHED = {
    "text": "Paciente con úlcera por presión en sacro; señal ✓ 😀",
    "numbers": [1, 2.5, -3, 12345678901234567890],
    "nothing": None,
    "flags": {"urgent": True, "seen": False},
    "empty": {},
}
SCANNED = ["α", None, [], {"nested": [None, {"deep": "ñ"}]}]


def test_settled_stages_unlock_the_next_one_and_keep_their_outputs(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    claimed = {a.run.stage: a for a in coordinator.claim({"default": 10, "images": 10}, "worker-1", 30)[0]}
    now = clock.advance(2)

    after_fetch = coordinator.settle([outcome_of(claimed["fetch"], now, FETCHED)])
    assert after_fetch.ready == []
    assert runs_by_stage(store, job.id)["merge"].state is StageState.PENDING
    assert coordinator.claim({"default": 10}, "worker-1", 30)[0] == []

    after_scan = coordinator.settle([outcome_of(claimed["scan"], now, SCANNED)])
    runs = runs_by_stage(store, job.id)
    assert [(item.run_id, item.queue, item.stage) for item in after_scan.ready] == [
        (runs["merge"].id, "default", "merge")
    ]
    assert runs["merge"].state is StageState.QUEUED
    fetch, scan = runs["fetch"], runs["scan"]
    assert (fetch.state, fetch.output, fetch.finished_at) == (StageState.SUCCEEDED, FETCHED, now)
    assert (scan.state, scan.output, scan.lease_owner) == (StageState.SUCCEEDED, SCANNED, None)
    assert event_summary(after_fetch.events + after_scan.events) == [
        (5, "stage.succeeded", "fetch"),
        (6, "stage.succeeded", "scan"),
    ]

    (merge,), _ = coordinator.claim({"default": 10}, "worker-2", 30)
    assert (merge.run.stage, merge.outputs) == ("merge", {"fetch": FETCHED, "scan": SCANNED})
    coordinator.settle([outcome_of(merge, clock.advance(1), None)])

    (report,), _ = coordinator.claim({"default": 10}, "worker-2", 30)
    assert report.outputs == {"fetch": FETCHED, "scan": SCANNED, "merge": None}
    finished = coordinator.settle([outcome_of(report, clock.advance(1), "informe listo ✓")])

    assert [item.id for item in finished.finished] == [job.id]
    done = store.get_job(job.id)
    assert (done.state, done.progress, done.current_stage) == (JobState.SUCCEEDED, 100.0, None)
    assert done.result == "informe listo ✓"
    assert runs_by_stage(store, job.id)["merge"].output is None
    assert [event.seq for event in store.events_after(job.id)] == list(range(1, done.last_seq + 1))
    assert store.events_after(job.id)[-1].type is EventType.JOB_FINISHED


def test_a_duplicate_outcome_changes_nothing(store: SQLJobStore, coordinator: Coordinator, clock: Clock) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    claimed = {a.run.stage: a for a in coordinator.claim({"default": 10, "images": 10}, "worker-1", 30)[0]}
    outcome = outcome_of(claimed["fetch"], clock.advance(2), FETCHED)
    coordinator.settle([outcome])
    before = (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id))
    clock.advance(60)

    duplicate = coordinator.settle([outcome])

    assert (duplicate.events, duplicate.ready, duplicate.finished) == ([], [], [])
    assert (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id)) == before


# --- claims made in memory (distributed workers) ------------------------------------------


def test_assignment_for_writes_nothing_and_settle_writes_claim_and_outcome_at_once(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    fetch_id = runs_by_stage(store, job.id)["fetch"].id
    before = (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id))

    assignment = coordinator.assignment_for(fetch_id, "worker-1", 30)

    assert assignment is not None
    run = assignment.run
    assert (run.state, run.attempts, run.lease_owner, run.lease_until) == (
        StageState.RUNNING,
        1,
        "worker-1",
        START + 30,
    )
    assert (assignment.job.input, assignment.outputs) == ({"n": 1}, {})
    assert (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id)) == before

    settled = coordinator.settle([outcome_of(assignment, clock.advance(1), FETCHED)], claims=[run])

    assert settled.refused == set()
    stored = runs_by_stage(store, job.id)["fetch"]
    assert (stored.state, stored.attempts, stored.started_at, stored.output) == (
        StageState.SUCCEEDED,
        1,
        START,
        FETCHED,
    )
    assert event_summary(settled.events) == [
        (2, "job.started", None),
        (3, "stage.started", "fetch"),
        (4, "stage.succeeded", "fetch"),
    ]
    assert store.get_job(job.id).started_at == START


def test_a_second_delivery_of_the_same_run_is_refused_and_changes_nothing(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    fetch_id = runs_by_stage(store, job.id)["fetch"].id
    first = coordinator.assignment_for(fetch_id, "worker-1", 30)
    second = coordinator.assignment_for(fetch_id, "worker-2", 30)  # read before the first settles
    assert first is not None and second is not None
    coordinator.settle([outcome_of(first, clock.advance(1), "first")], claims=[first.run])
    before = (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id))

    late = coordinator.settle([outcome_of(second, clock.advance(1), "second")], claims=[second.run])

    assert late.refused == {fetch_id}
    assert (late.events, late.ready) == ([], [])
    assert (store.get_job(job.id), store.get_runs(job.id), store.events_after(job.id)) == before
    assert coordinator.assignment_for(fetch_id, "worker-3", 30) is None


def test_a_claim_written_early_holds_the_lease_and_a_cancel_refuses_an_unwritten_one(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    runs = runs_by_stage(store, job.id)
    fetch = coordinator.assignment_for(runs["fetch"].id, "worker-1", 30)
    scan = coordinator.assignment_for(runs["scan"].id, "worker-2", 30)
    assert fetch is not None and scan is not None

    # A long stage: its keeper writes the claim before the outcome.
    early = coordinator.settle(claims=[fetch.run])
    assert early.refused == set()
    stored = runs_by_stage(store, job.id)["fetch"]
    assert (stored.state, stored.lease_owner, stored.lease_until) == (StageState.RUNNING, "worker-1", START + 30)
    assert store.renew_leases([stored.id], "worker-1", START + 60) == (set(), set())

    coordinator.cancel(job.id)
    refused = coordinator.settle([outcome_of(scan, clock.advance(1), SCANNED)], claims=[scan.run])
    assert refused.refused == {scan.run.id}
    assert runs_by_stage(store, job.id)["scan"].state is StageState.CANCELLED
    # The claimed one learns of the cancel from its lease renewal and reports back.
    assert store.renew_leases([stored.id], "worker-1", START + 90) == (set(), {stored.id})
    coordinator.settle([outcome_of(fetch, clock.advance(1), status="cancelled")])
    assert runs_by_stage(store, job.id)["fetch"].state is StageState.CANCELLED


def test_dispatches_carry_what_the_worker_needs_and_a_planned_claim_settles_like_a_read_one(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    taken = {item.stage: item for item in coordinator.take_for_dispatch()}
    # First stages need no outputs: their message says all; later ones are not ready yet.
    assert set(taken) == {"fetch", "scan"}
    assert taken["fetch"].work == StageWork(job.id, 0, {"n": 1}, {}, job.tenant)

    fetch = coordinator.planned_claim(taken["fetch"], "worker-1", 30)
    scan = coordinator.planned_claim(taken["scan"], "worker-2", 30)
    assert fetch is not None and scan is not None
    assert (fetch.state, fetch.attempts, fetch.lease_owner, fetch.lease_until) == (
        StageState.RUNNING,
        1,
        "worker-1",
        START + 30,
    )
    done = [
        StageOutcome(claim.id, job.id, claim.stage, 1, "succeeded", START, clock.advance(1), output)
        for claim, output in ((fetch, FETCHED), (scan, SCANNED))
    ]
    settled = coordinator.settle(done, claims=[fetch, scan], dispatching=True)

    assert settled.refused == set()
    # The join became ready, with both upstream outputs in its message.
    assert [(item.stage, item.work) for item in settled.ready] == [
        ("merge", StageWork(job.id, 0, {"n": 1}, {"fetch": FETCHED, "scan": SCANNED}, job.tenant))
    ]
    assert runs_by_stage(store, job.id)["merge"].dispatched_at == clock.now
    # A second message for fetch, planned from what the first said, is refused.
    again = coordinator.planned_claim(taken["fetch"], "worker-3", 30)
    assert again is not None
    late = coordinator.settle([replace(done[0], output="late")], claims=[again])
    assert late.refused == {fetch.id}
    assert runs_by_stage(store, job.id)["fetch"].output == FETCHED
    # A message for a pipeline or stage this installation does not know: read the store.
    unknown = replace(taken["fetch"], stage="vanished")
    assert coordinator.planned_claim(unknown, "worker-1", 30) is None
    assert coordinator.planned_claim(replace(taken["fetch"], work=None), "worker-1", 30) is None


def test_a_stale_claim_refused_beside_a_later_attempt_does_not_drop_that_attempt(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("other_test", None).job
    [first] = coordinator.take_for_dispatch()
    claimed = coordinator.planned_claim(first, "worker-a", 30)
    stale = coordinator.planned_claim(first, "worker-b", 30)  # a resend of the first message
    assert claimed is not None and stale is not None
    failed = StageOutcome(claimed.id, job.id, "only", 1, "failed", START, clock.advance(0.1), error_type="E",
                          error_message="x", retryable=True)  # fmt: skip
    coordinator.settle([failed], claims=[claimed])
    clock.advance(5)  # past the retry's delay
    [second] = coordinator.take_for_dispatch()
    retried = coordinator.planned_claim(second, "worker-c", 30)
    assert retried is not None and retried.attempts == 2

    # The stale delivery's claim and outcome reach one settlement with the retry's.
    late = StageOutcome(stale.id, job.id, "only", 1, "succeeded", START, clock.now, "stale")
    good = StageOutcome(retried.id, job.id, "only", 2, "succeeded", clock.now, clock.advance(0.1), "good")
    settled = coordinator.settle([late, good], claims=[stale, retried])

    assert settled.refused == {stale.id}
    run = runs_by_stage(store, job.id)["only"]
    assert (run.state, run.attempts, run.output) == (StageState.SUCCEEDED, 2, "good")
    assert store.get_job(job.id).state is JobState.SUCCEEDED


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # bulk writes are PostgreSQL's
def test_bulk_writes_on_postgresql_refuse_a_value_too_long_rather_than_cut_it(
    store: SQLJobStore, coordinator: Coordinator
) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    run = runs_by_stage(store, job.id)["fetch"]
    with pytest.raises(sa.exc.DataError), store.database.engine.begin() as connection:
        bulk.update_rows(
            connection,
            stage_runs_table,
            stage_runs_table.c.id,
            ["lease_owner"],
            [{"id": run.id, "lease_owner": "w" * 101}],
        )
    with store.database.engine.begin() as connection:  # NULLs, a JSON document, an int among floats
        bulk.update_rows(
            connection,
            stage_runs_table,
            stage_runs_table.c.id,
            ["lease_owner", "output", "progress"],
            [{"id": run.id, "lease_owner": None, "output": {"a": [1, None]}, "progress": 1}],
        )
        bulk.insert_rows(
            connection,
            events_table,
            [
                {"job_id": job.id, "seq": 90 + n, "type": "job.queued", "state": "queued", "stage": None, "progress": n,
                 "message": None, "created_at": START, "stage_progress": None}
                for n in (0, 1)
            ],
        )  # fmt: skip
    stored = runs_by_stage(store, job.id)["fetch"]
    assert (stored.lease_owner, stored.output, stored.progress) == (None, {"a": [1, None]}, 1.0)
    assert [(event.seq, event.progress, event.stage) for event in store.events_after(job.id, 89)] == [
        (90, 0.0, None),
        (91, 1.0, None),
    ]


def test_assignment_for_a_job_of_an_unregistered_pipeline_fails_the_job(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    job = coordinator.submit("other_test", None).job
    elsewhere = Coordinator(store, Registry([PIPELINE]), clock=clock)

    assert elsewhere.assignment_for(runs_by_stage(store, job.id)["only"].id, "worker-1", 30) is None

    failed = store.get_job(job.id)
    assert (failed.state, failed.error_type) == (JobState.FAILED, "PipelineUnavailable")


# --- leases -------------------------------------------------------------------------------


def test_reap_takes_back_a_run_whose_lease_expired(store: SQLJobStore, coordinator: Coordinator, clock: Clock) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    (fetch,), _ = coordinator.claim({"default": 10}, "worker-1", 30)

    clock.advance(29)
    assert coordinator.reap().events == []
    assert runs_by_stage(store, job.id)["fetch"].state is StageState.RUNNING

    now = clock.advance(2)
    reaped = coordinator.reap()

    run = runs_by_stage(store, job.id)["fetch"]
    assert (run.state, run.error_type, run.attempts) == (StageState.RETRYING, "LeaseExpired", 1)
    assert (run.lease_owner, run.lease_until, run.finished_at) == (None, None, now)
    assert "worker-1" in (run.error_message or "")
    assert run.available_at == now + 1.0  # first retry of the default policy, without jitter
    assert event_summary(reaped.events) == [(4, "stage.retrying", "fetch")]
    assert store.get_job(job.id).state is JobState.RUNNING
    assert coordinator.reap().events == []

    assert coordinator.claim({"default": 10}, "worker-2", 30)[0] == []  # not due yet
    clock.advance(1)
    (again,), _ = coordinator.claim({"default": 10}, "worker-2", 30)
    assert (again.run.id, again.run.attempts, again.run.lease_owner) == (fetch.run.id, 2, "worker-2")


def test_renew_leases_reports_lost_and_cancelled_runs(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    reaped_job = coordinator.submit("store_test", {"n": "reaped"}).job
    (reaped,), _ = coordinator.claim({"default": 10}, "worker-1", 5)
    clock.advance(1)
    kept_job = coordinator.submit("store_test", {"n": "kept"}).job
    cancelled_job = coordinator.submit("store_test", {"n": "cancelled"}).job
    mine = {a.job.id: a.run.id for a in coordinator.claim({"default": 10}, "worker-1", 60)[0]}
    coordinator.submit("store_test", {"n": "theirs"})
    (theirs,), _ = coordinator.claim({"default": 10}, "worker-2", 60)
    cancelled, _ = coordinator.cancel(cancelled_job.id)
    now = clock.advance(10)
    assert [event.stage for event in coordinator.reap().events] == ["fetch"]
    assert runs_by_stage(store, reaped_job.id)["fetch"].state is StageState.RETRYING

    kept, doomed = mine[kept_job.id], mine[cancelled_job.id]
    lost, cancelled_ids = store.renew_leases([kept, doomed, theirs.run.id, reaped.run.id, 10**9], "worker-1", now + 60)

    assert cancelled.state is JobState.CANCELLED
    assert lost == {theirs.run.id, reaped.run.id, 10**9}
    assert cancelled_ids == {doomed}
    assert runs_by_stage(store, kept_job.id)["fetch"].lease_until == now + 60
    assert runs_by_stage(store, cancelled_job.id)["fetch"].lease_until == now + 60
    assert runs_by_stage(store, theirs.job.id)["fetch"].lease_until == START + 1 + 60
    assert runs_by_stage(store, theirs.job.id)["fetch"].lease_owner == "worker-2"
    assert store.renew_leases([], "worker-1", now + 60) == (set(), set())


# --- reading ------------------------------------------------------------------------------


def test_events_after_returns_later_events_in_order(store: SQLJobStore, coordinator: Coordinator, clock: Clock) -> None:
    job = coordinator.submit("store_test", {"n": 1}).job
    coordinator.submit("store_test", {"n": 2})  # its events must not show up
    assignments, _ = coordinator.claim({"default": 10, "images": 10}, "worker-1", 30)
    claimed = {a.run.stage: a for a in assignments if a.job.id == job.id}
    clock.advance(1)
    coordinator.settle([outcome_of(claimed["fetch"], clock(), {"ok": True})])
    coordinator.settle([outcome_of(claimed["scan"], clock(), {"ok": True})])
    events = store.events_after(job.id)
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
    assert all(event.job_id == job.id for event in events)

    assert [event.seq for event in store.events_after(job.id, 2)] == [3, 4, 5, 6]
    assert store.events_after(job.id, 2) == events[2:]
    assert [event.seq for event in store.events_after(job.id, 3, limit=2)] == [4, 5]
    assert store.events_after(job.id, 6) == []
    assert list(store.iter_events(job.id, 4)) == events[4:]
    assert store.events_after("0" * 32) == []


def submit_listing_jobs(coordinator: Coordinator, clock: Clock) -> dict[str, Any]:
    """Thirteen jobs for "acme" one second apart, alternating pipelines, plus two for "globex"."""
    acme = []
    for number in range(13):
        pipeline = "store_test" if number % 2 == 0 else "other_test"
        acme.append(coordinator.submit(pipeline, {"n": number}, tenant="acme").job)
        clock.advance(1)
    globex = []
    for number in range(2):
        globex.append(coordinator.submit("store_test", {"n": number}, tenant="globex").job)
        clock.advance(1)
    return {"acme": acme, "globex": globex}


def all_pages(store: SQLJobStore, where: JobFilter, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = store.list_jobs(where, limit=limit, cursor=cursor)
        pages.append([job.id for job in page.jobs])
        if page.next_cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not move"
        cursor = page.next_cursor


def test_list_jobs_pages_through_every_job_once_newest_first(
    store: SQLJobStore, coordinator: Coordinator, clock: Clock
) -> None:
    acme_ids = [job.id for job in submit_listing_jobs(coordinator, clock)["acme"]]
    newest_first = list(reversed(acme_ids))

    pages = all_pages(store, JobFilter(tenant="acme"), limit=5)

    assert [len(page) for page in pages] == [5, 5, 3]
    assert [job_id for page in pages for job_id in page] == newest_first
    assert all_pages(store, JobFilter(tenant="acme"), limit=13) == [newest_first]
    assert all_pages(store, JobFilter(tenant="acme"), limit=100) == [newest_first]
    assert [len(page) for page in all_pages(store, JobFilter(), limit=4)] == [4, 4, 4, 3]
    created = [job.created_at for job in store.list_jobs(JobFilter(tenant="acme"), limit=100).jobs]
    assert created == sorted(created, reverse=True)


def test_list_jobs_filters(store: SQLJobStore, coordinator: Coordinator, clock: Clock) -> None:
    jobs = submit_listing_jobs(coordinator, clock)
    acme = jobs["acme"]
    # Every "other_test" job starts running; one "store_test" job is cancelled.
    coordinator.claim({"other": 100}, "worker-1", 30)
    coordinator.cancel(acme[4].id)

    def listed(limit: int = 3, **where: Any) -> list[str]:
        return [job_id for page in all_pages(store, JobFilter(tenant="acme", **where), limit) for job_id in page]

    def newest_first(selected: list[Any]) -> list[str]:
        return [job.id for job in reversed(selected)]

    assert listed(pipeline="other_test") == newest_first(acme[1::2])
    assert listed(pipeline="store_test") == newest_first(acme[0::2])
    assert listed(states=(JobState.RUNNING,)) == newest_first(acme[1::2])
    assert listed(states=(JobState.CANCELLED,)) == [acme[4].id]
    assert listed(states=(JobState.QUEUED, JobState.CANCELLED)) == newest_first(acme[0::2])
    assert listed(pipeline="store_test", states=(JobState.QUEUED,)) == newest_first(acme[0:4:2] + acme[6::2])
    # created_after includes its bound, created_before excludes it.
    assert listed(created_after=START + 3) == newest_first(acme[3:])
    assert listed(created_before=START + 8) == newest_first(acme[:8])
    assert listed(created_after=START + 3, created_before=START + 8) == newest_first(acme[3:8])
    assert listed(created_after=START + 2.5, created_before=START + 7.5) == newest_first(acme[3:8])
    assert listed(pipeline="other_test", created_after=START + 3, created_before=START + 8) == newest_first(acme[3:8:2])
    assert listed(created_after=START + 100) == []
    assert store.count_jobs(JobFilter(tenant="acme", pipeline="other_test")) == 6
    assert [job.id for job in store.list_jobs(JobFilter(tenant="globex")).jobs] == newest_first(jobs["globex"])


def test_get_job_of_another_tenant_is_not_found(store: SQLJobStore, coordinator: Coordinator) -> None:
    job = coordinator.submit("store_test", {"n": 1}, tenant="acme").job

    assert store.get_job(job.id, tenant="acme").id == job.id
    assert store.get_job(job.id).id == job.id
    with pytest.raises(JobNotFound):
        store.get_job(job.id, tenant="globex")
    with pytest.raises(JobNotFound):
        coordinator.cancel(job.id, tenant="globex")
    with pytest.raises(JobNotFound):
        store.get_job("f" * 32)
    assert store.get_job(job.id).state is JobState.QUEUED


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_claims_never_share_a_run(postgres_url: str) -> None:
    stores = [SQLJobStore(Database(postgres_url)), SQLJobStore(Database(postgres_url))]
    try:
        stores[0].database.upgrade()
        registry = Registry([PIPELINE])
        submitter = Coordinator(stores[0], registry)
        job_ids = [submitter.submit("store_test", {"n": n}, priority=n % 3).job.id for n in range(50)]
        expected = {runs_by_stage(stores[0], job_id)["fetch"].id for job_id in job_ids}
        start = threading.Barrier(2)
        lock = threading.Lock()
        taken: list[int] = []

        def claim_all(store: SQLJobStore, owner: str) -> list[int]:
            coordinator = Coordinator(store, registry)
            mine: list[int] = []
            start.wait()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assignments, _ = coordinator.claim({"default": 2}, owner, 60)
                mine.extend(a.run.id for a in assignments)
                with lock:
                    taken.extend(a.run.id for a in assignments)
                    if len(taken) >= len(expected):
                        break
            return mine

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(claim_all, store, f"worker-{n}") for n, store in enumerate(stores)]
            claimed = [future.result() for future in futures]

        assert not set(claimed[0]) & set(claimed[1])
        assert sorted(claimed[0] + claimed[1]) == sorted(expected)
        owners: Counter[str | None] = Counter()
        for job_id in job_ids:
            run = runs_by_stage(stores[0], job_id)["fetch"]
            assert (run.state, run.attempts) == (StageState.RUNNING, 1)
            owners[run.lease_owner] += 1
            assert [event.seq for event in stores[0].events_after(job_id)] == [1, 2, 3]
        assert owners == Counter({"worker-0": len(claimed[0]), "worker-1": len(claimed[1])})
    finally:
        for store in stores:
            store.database.close()


@pytest.mark.postgres
def test_branches_settled_at_once_release_their_join(postgres_url: str) -> None:
    """Two workers settle the two branches of one job at the same moment: whichever waits
    for the other's lock must see that branch finished, or the join is never released."""
    store = SQLJobStore(Database(postgres_url))
    store.database.upgrade()
    holder = sa.create_engine(store.database.engine.url)
    try:
        coordinator = Coordinator(store, Registry([PIPELINE]))
        job = coordinator.submit("store_test", {"n": 1}).job
        claimed = {a.run.stage: a for a in coordinator.claim({"default": 10, "images": 10}, "worker-1", 60)[0]}
        with ThreadPoolExecutor(2) as pool, holder.connect() as connection:
            # Hold the job's lock so that both settlements start and wait for it.
            connection.execute(sa.text("SELECT id FROM vigia_jobs WHERE id = :id FOR UPDATE"), {"id": job.id})
            try:
                futures = [
                    pool.submit(coordinator.settle, [outcome_of(claimed[stage], time.time())])
                    for stage in ("fetch", "scan")
                ]
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _lock_waiters(connection) < 2:
                    time.sleep(0.02)
                assert _lock_waiters(connection) == 2
            finally:
                connection.rollback()
            ready = [item.stage for future in futures for item in future.result().ready]

        assert ready == ["merge"]
        assert runs_by_stage(store, job.id)["merge"].state is StageState.QUEUED
    finally:
        holder.dispose()
        store.database.close()


def _lock_waiters(connection: sa.Connection) -> int:
    # Statistics are read once per transaction: clear them to see the waiters of now.
    connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
    query = (
        "SELECT wait_event_type, wait_event FROM pg_stat_activity"
        " WHERE state = 'active' AND datname = current_database() AND pid <> pg_backend_pid()"
    )
    return len(connection.execute(sa.text(query)).all())


def test_audit_entries_with_awkward_numbers_verify_after_a_round_trip(store: SQLJobStore) -> None:
    # What JSONB gives back otherwise than it was given: -0.0 as 0, 1e16 as an integer.
    details = {"delta": -0.0, "big": 1e16, "huge": 1e20, "whole": 1.0, "tenth": 0.1, "n": [3, 2.5, -0.0]}
    store.database.audit_chain_key = key = chain_key(b"k" * 32)
    store.transact(
        lambda unit: unit.append_audit([AuditDraft("check.numbers", "test", START, "t", None, None, details)])
    )
    entries = list(OversightStore(store.database).audit_entries())
    assert [entry.action for entry in entries] == ["check.numbers"]
    assert verify(entries, key=key).ok, verify(entries, key=key)


# --- sharing a queue between tenants ------------------------------------------------------


def tenants_of(coordinator: Coordinator, assignments: list[Assignment]) -> list[str]:
    return [assignment.job.tenant for assignment in assignments]


def test_free_slots_go_to_the_tenant_with_the_fewest_running(coordinator: Coordinator, clock: Clock) -> None:
    # One tenant's backlog first, then another's: first come would give "busy" every slot.
    for n in range(6):
        coordinator.submit("store_test", {"name": f"busy-{n}"}, tenant="busy")
        clock.advance(1)
    for n in range(2):
        coordinator.submit("store_test", {"name": f"quiet-{n}"}, tenant="quiet")
        clock.advance(1)
    first, _ = coordinator.claim({"images": 2}, "worker-1", 30)
    assert sorted(tenants_of(coordinator, first)) == ["busy", "quiet"]
    second, _ = coordinator.claim({"images": 2}, "worker-1", 30)
    assert sorted(tenants_of(coordinator, second)) == ["busy", "quiet"]
    # Nobody else waits: the rest go to the one tenant left.
    rest, _ = coordinator.claim({"images": 10}, "worker-1", 30)
    assert tenants_of(coordinator, rest) == ["busy"] * 4


def test_a_tenant_cap_keeps_slots_free_for_the_next_tenant(store: SQLJobStore, clock: Clock) -> None:
    coordinator = Coordinator(store, Registry([PIPELINE, OTHER]), clock=clock, rand=lambda: 0.0, tenant_cap=2)
    for n in range(6):
        coordinator.submit("store_test", {"name": f"busy-{n}"}, tenant="busy")
        clock.advance(1)
    claimed, _ = coordinator.claim({"images": 8}, "worker-1", 30)
    assert tenants_of(coordinator, claimed) == ["busy", "busy"]  # two, though eight slots are free
    assert coordinator.claim({"images": 8}, "worker-1", 30)[0] == []
    coordinator.submit("store_test", {"name": "late"}, tenant="quiet")
    late, _ = coordinator.claim({"images": 8}, "worker-1", 30)
    assert tenants_of(coordinator, late) == ["quiet"]  # at once, though it came last
    # One of busy's finishes: busy gets the slot back.
    coordinator.settle([outcome_of(claimed[0], clock.advance(1), {"ok": True})])
    again, _ = coordinator.claim({"images": 8}, "worker-1", 30)
    assert tenants_of(coordinator, again) == ["busy"]


def test_dispatching_to_workers_holds_a_tenant_at_its_cap(store: SQLJobStore, clock: Clock) -> None:
    """Distributed mode: what is sent to the broker counts, since a worker takes it in order."""
    coordinator = Coordinator(store, Registry([PIPELINE, OTHER]), clock=clock, rand=lambda: 0.0, tenant_cap=2)
    for n in range(5):
        coordinator.submit("store_test", {"name": f"busy-{n}"}, tenant="busy")
        clock.advance(1)
    coordinator.submit("store_test", {"name": "late"}, tenant="quiet")
    sent = coordinator.take_for_dispatch(100)
    per_queue: dict[str, list[str]] = {}
    for item in sent:
        assert item.work is not None
        per_queue.setdefault(item.queue, []).append(item.work.tenant)
    # The pipeline starts with a stage on each of two queues: the cap holds on each.
    assert len(per_queue) == 2 and all(sorted(tenants) == ["busy", "busy", "quiet"] for tenants in per_queue.values())
    assert coordinator.take_for_dispatch(100) == []  # busy has two in the broker already
