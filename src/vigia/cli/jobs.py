"""`vigia jobs list|purge`, `vigia status` and `vigia pipelines`: what there is, how it goes,
and retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Annotated, Any

import typer
from rich.progress import Progress, TextColumn

from vigia import retention, wiring
from vigia.api.schemas import JobPageModel, job_model
from vigia.app import Vigia
from vigia.cli import render
from vigia.cli.running import job_status
from vigia.cli.support import (
    ApiKeyOption,
    AsJson,
    DataDir,
    Limit,
    Url,
    client_of,
    console,
    either,
    epoch,
    errors,
    fail,
    local_actor,
    locally,
    settings_of,
)
from vigia.client import Client
from vigia.exceptions import VigiaError
from vigia.expiry import Expiry
from vigia.job import JobState
from vigia.store.base import JobFilter

jobs_app = typer.Typer(help="Jobs: list them (see one with `vigia status`).", no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Only these states (repeatable).")] = None,
    limit: Limit = 20,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List the newest jobs."""
    states = tuple(state or ())

    async def listed(vigia: Vigia) -> dict[str, Any]:
        page = await vigia.list_jobs(JobFilter(pipeline=pipeline, states=states), limit=limit)
        return JobPageModel(jobs=[job_model(job) for job in page.jobs], next_cursor=page.next_cursor).model_dump(
            mode="json"
        )

    def remote(client: Client) -> dict[str, Any]:
        return client.jobs(pipeline=pipeline, state=[s.value for s in states], limit=limit)

    page = either(settings_of(data_dir, url=url, api_key=api_key), remote, listed)
    console.print(render.as_json(page) if as_json else render.jobs_table(page))


def status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Show a job: state, progress, each stage, and its result."""

    def remote(client: Client) -> dict[str, Any]:
        body = client.job(job_id)
        code, answer = client.result(job_id)
        return {**body, "result": answer.get("result") if code == 200 else None}

    async def local(vigia: Vigia) -> dict[str, Any]:
        return await job_status(vigia, job_id)

    body = either(settings_of(data_dir, url=url, api_key=api_key), remote, local)
    if as_json:
        console.print_json(render.as_json(body))
        return
    console.print(render.job_detail(body))
    if body["result"] is not None:
        console.print(render.as_json(body["result"]))


def pipelines(
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List the registered pipelines and their stage graphs."""
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    try:
        if client is None:  # what this installation's processes load: no store needed
            described = [pipeline.describe() for pipeline in wiring.registry_for(settings)]
        else:
            with client:
                described = client.pipelines()
    except VigiaError as error:
        raise fail(error.message) from None
    if as_json:
        console.print_json(render.as_json(described))
        return
    for item in described:
        console.print(f"[bold]{item['name']}[/] v{item['version']}  {item['description']}")
        for stage in item["stages"]:
            after = ", ".join(stage["depends_on"]) or "start"
            flags = "" if stage["critical"] else " [yellow](non-critical)[/]"
            console.print(
                f"  {stage['name']:<16} after {after:<28} queue {stage['queue']:<18} "
                f"timeout {stage['timeout']:g}s, {stage['max_attempts']} attempts{flags}"
            )


@jobs_app.command("purge")
def jobs_purge(
    before: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Purge finished jobs that finished before this time (UTC unless given), whatever the retention."
        ),
    ] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's jobs.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Purge finished jobs past their retention (VIGIA_JOB_RETENTION_DAYS, a pipeline's
    VIGIA_PIPELINE_RETENTION_DAYS) or finished before --before, with their events, outputs,
    reviews and the files nothing else names. Dead jobs and jobs with a waiting review stay.
    In batches, each one audited; works on the job store this machine is configured for."""
    settings = settings_of(data_dir)
    expiry = Expiry.of(settings, time.time(), before=epoch(before), pipeline=pipeline)
    if expiry.before is None and settings.job_retention_days is None and not settings.pipeline_retention_days:
        raise fail("no retention is configured (VIGIA_JOB_RETENTION_DAYS): give --before to purge anyway")

    async def purged(vigia: Vigia) -> retention.Purged | int:
        if dry_run:
            return await asyncio.to_thread(vigia.coordinator.count_expired, expiry)
        with Progress(TextColumn("purging"), TextColumn("{task.completed:,} jobs"), console=errors) as shown:
            task = shown.add_task("purge", total=None)

            def report(progress: retention.Purged) -> None:
                shown.update(task, completed=progress.jobs)

            return await asyncio.to_thread(
                retention.purge, vigia.coordinator, vigia.blobs, expiry, actor=local_actor(), progress=report
            )

    outcome = locally(settings, purged)
    if isinstance(outcome, int):
        console.print(f"{outcome:,} finished jobs would be purged")
    else:
        console.print(
            f"purged {outcome.jobs:,} jobs and {outcome.files:,} files in {outcome.batches:,} batches"
            f" ({outcome.seconds:.1f} s)"
        )


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.add_typer(jobs_app, name="jobs")
    app.command()(pipelines)
