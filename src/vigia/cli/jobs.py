"""`vigia jobs list`, `vigia status` and `vigia pipelines`: what there is and how it goes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vigia import wiring
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
    fail,
    settings_of,
)
from vigia.client import Client
from vigia.exceptions import VigiaError
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


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.add_typer(jobs_app, name="jobs")
    app.command()(pipelines)
