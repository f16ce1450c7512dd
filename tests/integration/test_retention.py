"""Retention on a real store (SQLite and PostgreSQL): finished jobs past their pipeline's
cutoff go with their stage runs, events and reviews, a batch at a time, each batch audited;
dead jobs, recent ones, those of a pipeline kept longer and those with a review waiting
stay; a file goes once no job and no document names it, with what replaced it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.harness import API, MILD_CASE, Harness, harness
from vigia import retention
from vigia.blobs import BlobRef
from vigia.cli import app as cli_app
from vigia.escalation import ReviewStatus
from vigia.expiry import Expiry
from vigia.store.base import ReviewFilter
from vigia.workloads.pressure_injury import samples

DAY = 86_400


def submit_case(api: Harness, photo: bytes, name: str) -> str:
    return str(api.submit_file("pressure_injury_case", photo, name, MILD_CASE)["id"])


def submit(api: Harness, pipeline: str, job_input: dict[str, Any]) -> str:
    return str(api.submit(pipeline, job_input)["id"])


def age(api: Harness, job_ids: list[str], days: float) -> None:
    """As if these jobs had finished ``days`` ago."""
    engine = sa.create_engine(api.vigia.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE vigia_jobs SET finished_at = finished_at - :delta WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"delta": days * DAY, "ids": job_ids},
        )
    engine.dispose()


def counts(api: Harness, table: str, job_ids: list[str]) -> int:
    engine = sa.create_engine(api.vigia.settings.database_url)
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(f"SELECT count(*) FROM {table} WHERE job_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": job_ids},
        ).scalar_one()
    engine.dispose()
    return int(found)


def resolve_reviews(api: Harness, job_id: str) -> None:
    for review in api.vigia.oversight.list_reviews(ReviewFilter(job_id=job_id)):
        api.vigia.coordinator.review(review.id, ReviewStatus.RESOLVED, "test", note="seen")


def test_expired_jobs_go_with_what_hangs_off_them_and_files_nothing_else_names(store_url: str, tmp_path: Path) -> None:
    with harness(
        store_url,
        tmp_path,
        job_retention_days=30,
        pipeline_retention_days={"t_outcomes": 365},
        max_upload_bytes=30 * 2**20,
    ) as api:
        journal = str(tmp_path / "journal.txt")
        shared_photo, own_photo = samples.photo("erythema.jpg"), samples.photo("eschar.png")
        old_case = submit_case(api, shared_photo, "a.jpg")  # its photo also in a recent case
        old_own_case = submit_case(api, own_photo, "b.png")  # its photo in no other job
        waiting_case = submit_case(api, samples.photo("ulcer.jpg"), "c.jpg")  # its review waits
        recent_case = submit_case(api, shared_photo, "d.jpg")
        old_plain = [submit(api, "t_chaos", {"journal": journal, "pace": 0}) for _ in range(3)]
        recent_plain = submit(api, "t_chaos", {"journal": journal, "pace": 0})
        kept_longer = submit(api, "t_outcomes", {"mode": "ok"})
        dead = submit(api, "t_critical", {"patient_code": "PT-DEAD"})
        every = [old_case, old_own_case, waiting_case, recent_case, *old_plain, recent_plain, kept_longer, dead]
        states = {job_id: api.wait(job_id, timeout=120)["state"] for job_id in every}
        assert states[dead] == "dead" and states[old_plain[0]] == "succeeded", states
        for job_id in (old_case, old_own_case):
            resolve_reviews(api, job_id)
        assert api.vigia.oversight.list_reviews(ReviewFilter(job_id=waiting_case)), "a case without a model is reviewed"
        old = [old_case, old_own_case, waiting_case, *old_plain, kept_longer, dead]
        age(api, old, 40)
        blobs = api.vigia.blobs
        own_job = api.vigia.store.get_job(old_own_case)
        assert own_job is not None
        own_digest = own_job.input["file"]["sha256"]
        own_replacement = blobs.replacement_of(own_digest)
        assert own_replacement is not None  # the intake replaced it with the stripped copy

        expiry = Expiry.of(api.vigia.settings, time.time())
        assert api.vigia.coordinator.count_expired(expiry) == 5
        reports: list[int] = []
        purged = retention.purge(
            api.vigia.coordinator, blobs, expiry, batch=2, progress=lambda p: reports.append(p.jobs)
        )
        assert (purged.jobs, purged.batches) == (5, 3)
        assert reports == [2, 4, 5]
        gone = [old_case, old_own_case, *old_plain]
        for table in ("vigia_stage_runs", "vigia_events", "vigia_reviews", "vigia_job_files"):
            assert counts(api, table, gone) == 0, table
        for job_id in gone:
            assert api.client.get(f"{API}/jobs/{job_id}", headers=api.headers()).status_code == 404
        for job_id in (waiting_case, recent_case, recent_plain, kept_longer, dead):
            assert api.client.get(f"{API}/jobs/{job_id}", headers=api.headers()).status_code == 200, job_id
        # The photo only the purged case named went: its stripped copy (the upload itself was
        # replaced at intake) and the marker that led to it; the one a recent case still
        # names stayed.
        assert purged.files == 1
        assert blobs.replacement_of(own_digest) is None
        with pytest.raises(FileNotFoundError):
            blobs.read(BlobRef(own_replacement, 0, "image/png"))
        recent_photo = api.client.get(f"{API}/jobs/{recent_case}/file", headers=api.headers())
        assert recent_photo.status_code == 200
        entries = [entry for entry in api.vigia.oversight.audit_entries() if entry.action == "jobs.purged"]
        assert [entry.details["count"] for entry in entries] == [2, 2, 1]
        assert sorted(id for entry in entries for id in entry.details["job_ids"]) == sorted(gone)
        # Nothing left to purge: a second pass finds nothing and writes nothing.
        assert retention.purge(api.vigia.coordinator, blobs, expiry).jobs == 0
        assert len([entry for entry in api.vigia.oversight.audit_entries() if entry.action == "jobs.purged"]) == 3


def test_vigia_jobs_purge_counts_purges_and_refuses_without_a_retention(sqlite_url: str, tmp_path: Path) -> None:
    with harness(sqlite_url, tmp_path) as api:
        journal = str(tmp_path / "journal.txt")
        ids = [submit(api, "t_chaos", {"journal": journal, "pace": 0}) for _ in range(3)]
        for job_id in ids:
            assert api.wait(job_id)["state"] == "succeeded"
        age(api, ids[:2], 10)
    runner = CliRunner()
    environment = {"VIGIA_DATABASE_URL": sqlite_url, "VIGIA_PIPELINES": "tests.pipelines:ALL"}
    data = ["--data-dir", str(tmp_path / "data")]
    refused = runner.invoke(cli_app, ["jobs", "purge", *data], env=environment)
    assert refused.exit_code == 1 and "no retention is configured" in refused.output
    week_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 7 * DAY))
    counted = runner.invoke(cli_app, ["jobs", "purge", "--before", week_ago, "--dry-run", *data], env=environment)
    assert counted.exit_code == 0, counted.output
    assert "2 finished jobs would be purged" in counted.output
    done = runner.invoke(cli_app, ["jobs", "purge", *data], env={**environment, "VIGIA_JOB_RETENTION_DAYS": "5"})
    assert done.exit_code == 0, done.output
    assert "purged 2 jobs and 0 files in 1 batches" in done.output
    bad = runner.invoke(cli_app, ["jobs", "purge", *data], env={**environment, "VIGIA_JOB_RETENTION_DAYS": "-1"})
    # (`vigia`'s main turns it into one line on stderr and exit status 2.)
    assert bad.exit_code != 0 and "must be > 0 days" in str(bad.exception)
