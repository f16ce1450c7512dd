"""The SQLite job store finds its rows through indexes, not by reading whole tables.

With a few thousand jobs stored, every statement the store really issues (captured from
the engine while calling the public methods) is run again under ``EXPLAIN QUERY PLAN``.
SQLite has no statistics here (nobody runs ``ANALYZE`` on an embedded store), so these
are the plans users get.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from vigia.coordinator import Coordinator
from vigia.job import Event, EventType, JobState, new_job_id
from vigia.orchestrator import StageOutcome, plan_job
from vigia.pipeline import Pipeline, Stage
from vigia.registry import Registry
from vigia.store import JobFilter, NewJob
from vigia.store.database import Database
from vigia.store.jobs import SQLJobStore
from vigia.submission import input_fingerprint

JOBS = 3000
START = 1_795_000_000.0
TABLES = ("vigia_jobs", "vigia_stage_runs", "vigia_events")
#: A plan line reading a whole table: "SCAN vigia_jobs", not "SCAN vigia_jobs USING INDEX …".
FULL_SCAN = re.compile(r"^SCAN (?:TABLE )?(vigia_\w+)(?: AS \w+)?$")


def _never_run(ctx: Any) -> None:
    raise AssertionError("index tests never run a stage")


PIPELINE = Pipeline(
    "index_test",
    stages=[
        Stage("fetch", _never_run, after=()),
        Stage("scan", _never_run, after=(), queue="images"),
        Stage("merge", _never_run, after=("fetch", "scan")),
    ],
)
OTHER = Pipeline("index_other", stages=[Stage("only", _never_run, queue="other")])


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Populated:
    store: SQLJobStore
    coordinator: Coordinator
    clock: Clock
    job_ids: list[str]


@pytest.fixture
def populated(sqlite_url: str) -> Iterator[Populated]:
    """A store with JOBS jobs of two tenants and pipelines; some running, some cancelled."""
    store = SQLJobStore(Database(sqlite_url))
    clock = Clock()
    try:
        store.database.upgrade()
        coordinator = Coordinator(store, Registry([PIPELINE, OTHER]), clock=clock, rand=lambda: 0.0)
        job_ids = []
        with store.unit_of_work() as unit:
            for number in range(JOBS):
                now = clock.advance(0.5)
                pipeline = PIPELINE if number % 3 else OTHER
                job_id = new_job_id(now)
                queued = Event(job_id, 1, EventType.JOB_QUEUED, JobState.QUEUED, None, 0.0, None, now)
                new = NewJob(
                    id=job_id,
                    tenant="acme" if number % 4 else "globex",
                    pipeline=pipeline.name,
                    pipeline_version=pipeline.version,
                    priority=number % 5,
                    input={"n": number},
                    input_hash=input_fingerprint(pipeline.name, {"n": number}),
                    idempotency_key=f"key-{number}",
                    runs=plan_job(pipeline),
                    created_at=now,
                )
                unit.insert_jobs([new], [queued])
                job_ids.append(job_id)
        assert store.count_jobs(JobFilter()) == JOBS
        claimed, _ = coordinator.claim({"other": 300}, "worker-0", 30)
        coordinator.settle([succeeded(assignment.run, clock.advance(1)) for assignment in claimed[:150]])
        for job_id in job_ids[1:200:2]:
            if store.get_job(job_id).state is JobState.QUEUED:
                coordinator.cancel(job_id)
        yield Populated(store, coordinator, clock, job_ids)
    finally:
        store.database.close()


def succeeded(run: Any, now: float) -> StageOutcome:
    return StageOutcome(run.id, run.job_id, run.stage, run.attempts, "succeeded", run.started_at, now, {"ok": True})


@dataclass(frozen=True)
class Planned:
    sql: str
    plan: list[str]

    @property
    def full_scans(self) -> list[str]:
        return [line for line in self.plan if FULL_SCAN.match(line)]

    def __str__(self) -> str:
        return f"{self.sql}\n    " + "\n    ".join(self.plan)


@contextmanager
def capturing(store: SQLJobStore) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the store sends to SQLite while the block runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        seen.append((statement, parameters[0] if many else parameters))

    sa.event.listen(store.database.engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(store.database.engine, "before_cursor_execute", listener)


def planned(store: SQLJobStore, action: Callable[[], Any]) -> list[Planned]:
    """Run ``action`` and explain each query it made (not inserts, pragmas or BEGINs)."""
    with capturing(store) as seen:
        action()
    explained = []
    with store.database.engine.connect() as connection:
        for statement, parameters in seen:
            if not re.match(r"\s*(SELECT|UPDATE|DELETE)\b", statement, re.IGNORECASE):
                continue
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            explained.append(Planned(" ".join(statement.split()), [row[3] for row in rows]))
    return explained


def touching(statements: list[Planned], table: str) -> list[Planned]:
    return [item for item in statements if re.search(rf"\b{table}\b", item.sql)]


def assert_no_full_scan(statements: list[Planned]) -> None:
    scanning = [item for item in statements if item.full_scans]
    assert not scanning, "full table scans:\n" + "\n".join(map(str, scanning))


def test_a_full_scan_is_noticed(populated: Populated) -> None:
    """The check below can fail: a query on a column no index starts with reads the table."""
    store = populated.store

    def unindexed() -> None:
        with store.database.engine.connect() as connection:
            connection.execute(sa.text("SELECT id FROM vigia_jobs WHERE input_hash = :hash"), {"hash": "0" * 64}).all()

    (statement,) = planned(store, unindexed)
    assert statement.full_scans == ["SCAN vigia_jobs"]


LISTINGS = {
    "tenant": JobFilter(tenant="acme"),
    "tenant-pipeline": JobFilter(tenant="acme", pipeline="index_other"),
    "tenant-state": JobFilter(tenant="acme", states=(JobState.RUNNING,)),
    "tenant-states": JobFilter(tenant="acme", states=(JobState.QUEUED, JobState.CANCELLED)),
    "tenant-created": JobFilter(tenant="acme", created_after=START + 300, created_before=START + 900),
    "tenant-everything": JobFilter(
        tenant="globex",
        pipeline="index_test",
        states=(JobState.QUEUED,),
        created_after=START + 100,
        created_before=START + 1200,
    ),
    "all-tenants": JobFilter(),
    "all-tenants-state": JobFilter(states=(JobState.CANCELLED,)),
    "all-tenants-created": JobFilter(created_after=START + 300),
}


@pytest.mark.parametrize("where", LISTINGS.values(), ids=LISTINGS.keys())
def test_list_jobs_uses_an_index(populated: Populated, where: JobFilter) -> None:
    store = populated.store

    def list_two_pages_and_count() -> None:
        first = store.list_jobs(where, limit=20)
        assert first.next_cursor is not None
        store.list_jobs(where, limit=20, cursor=first.next_cursor)
        store.count_jobs(where)

    statements = planned(store, list_two_pages_and_count)

    assert len(touching(statements, "vigia_jobs")) == 3
    assert_no_full_scan(statements)


def test_get_job_and_its_events_use_the_primary_key(populated: Populated) -> None:
    store = populated.store
    job_id = populated.job_ids[JOBS // 2]

    def read_one_job() -> None:
        store.get_job(job_id, tenant="acme" if (JOBS // 2) % 4 else "globex")
        store.get_job(job_id)
        store.get_runs(job_id)
        store.events_after(job_id, 0)

    statements = planned(store, read_one_job)

    assert len(statements) == 4
    assert_no_full_scan(statements)
    for statement in touching(statements, "vigia_jobs"):
        assert any(re.match(r"SEARCH vigia_jobs USING .*\(id=\?\)", line) for line in statement.plan), str(statement)


def test_claim_uses_indexes(populated: Populated) -> None:
    coordinator = populated.coordinator
    claimed: list[Any] = []

    statements = planned(
        populated.store,
        lambda: claimed.extend(coordinator.claim({"default": 8, "images": 8, "other": 8}, "worker-1", 30)[0]),
    )

    assert len(claimed) == 24
    # One statement reads the candidates of every queue, each queue and state along the
    # claim index in its order (no sort of a queue's backlog).
    [candidates] = [item for item in statements if item.sql.startswith("SELECT anon_1.id")]
    along_index = [line for line in candidates.plan if "USING INDEX ix_vigia_stage_runs_claim" in line]
    assert len(along_index) == 6, candidates.plan
    assert not any("TEMP B-TREE FOR ORDER BY" in line for line in candidates.plan), candidates.plan
    assert_no_full_scan(statements)


def test_claimed_runs_are_updated_through_the_primary_key(populated: Populated) -> None:
    """Marking the chosen runs as running names them by id: reading every claimable run of
    every queue to find them makes each claim as slow as the backlog is deep."""
    coordinator = populated.coordinator

    statements = planned(populated.store, lambda: coordinator.claim({"default": 4}, "worker-1", 30))

    updates = [item for item in statements if item.sql.startswith("UPDATE vigia_stage_runs")]
    assert len(updates) == 1
    assert any("INTEGER PRIMARY KEY (rowid=?)" in line for line in updates[0].plan), str(updates[0])


def test_lease_and_lifecycle_statements_use_indexes(populated: Populated) -> None:
    store, coordinator, clock = populated.store, populated.coordinator, populated.clock
    assignments, _ = coordinator.claim({"default": 4, "images": 4}, "worker-1", 30)
    run_ids = [assignment.run.id for assignment in assignments]
    some_job = populated.job_ids[-1]

    def lifecycle() -> None:
        store.renew_leases(run_ids, "worker-1", clock.now + 60)
        coordinator.settle([succeeded(assignments[0].run, clock.advance(1))])
        assert coordinator.assignment_for(run_ids[0], "worker-2", 30) is None
        clock.advance(120)
        assert coordinator.reap().events
        coordinator.cancel(some_job)
        again = coordinator.submit("index_test", {"n": 1}, tenant="acme", idempotency_key="key-1")
        assert (again.created, again.job.id) == (False, populated.job_ids[1])

    statements = planned(store, lifecycle)

    assert len(statements) >= 12
    assert_no_full_scan(statements)
