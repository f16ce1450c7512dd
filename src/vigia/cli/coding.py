"""`vigia coding`: code a clinical note and read its coding report."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

import typer

from vigia.app import Vigia
from vigia.cli import render
from vigia.cli.running import follow_job, job_status
from vigia.cli.support import (
    ApiKeyOption,
    AsJson,
    DataDir,
    Url,
    client_of,
    console,
    either,
    errors,
    fail,
    locally,
    run,
    settings_of,
)
from vigia.client import Client
from vigia.exceptions import VigiaError
from vigia.job import JobState

PIPELINE = "clinical_coding_report"
coding_app = typer.Typer(help="Clinical coding reports: code a note, show a report.", no_args_is_help=True)


def read_note(path: Path) -> str:
    """The note's text; a CLI error for a file that is not UTF-8 text."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise fail(f"{path.name} is a binary file, not a text note", 2)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")  # notes exported from Windows programs
        except UnicodeDecodeError:
            raise fail(f"{path.name} is not UTF-8 (or Windows-1252) text", 2) from None


def billed_list(billed: str | None) -> list[str] | None:
    return [code.strip() for code in billed.split(",") if code.strip()] if billed else None


@coding_app.command("report")
def coding_report(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The note, as text.")],
    billed: Annotated[
        str | None, typer.Option("--billed", help="The ICD-10-CM codes billed, comma-separated: I10,E11.9.")
    ] = None,
    language: Annotated[str | None, typer.Option("--language", help="es or en (default: detected).")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Show live progress, then the report.")] = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Submit a note for a coding report; with --follow, its progress and the report.

    With --url it goes to that server. Without, into the local store: with --follow it runs
    here and now; without, it waits there for `vigia serve` or `vigia worker`."""
    if language not in (None, "es", "en"):
        raise fail("--language is es or en", 2)
    job_input: dict[str, Any] = {"text": read_note(file)}
    if (codes := billed_list(billed)) is not None:
        job_input["billed_codes"] = codes
    if language:
        job_input["language"] = language
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    if client is not None:
        with client:
            try:
                job = client.submit(PIPELINE, job_input)
            except VigiaError as error:
                raise fail(error.message) from None
            console.print(f"{file.name}: job {job['id']}")
            if follow:
                shown = functools.partial(_show_result, as_json=as_json)
                raise typer.Exit(run(functools.partial(follow_job, client, PIPELINE, job, shown)))
        return
    if not follow:
        job_id = locally(settings, lambda vigia: _submitted(vigia, job_input))
        console.print(f"{file.name}: job {job_id} (queued in the local store for `vigia serve` or `vigia worker`)")
        return

    async def here() -> int:
        vigia = Vigia.from_settings(settings)
        async with vigia:  # its workers run the job in this process
            pipeline = vigia.registry.get(PIPELINE)
            job = await vigia.submit(PIPELINE, job_input)
            console.print(f"{file.name}: job {job.id}")
            await render.follow_progress(
                console, PIPELINE, pipeline.execution_order, job.state.value, vigia.events(job.id, poll=0.2)
            )
            done = await vigia.get_job(job.id)
        if done.state not in (JobState.SUCCEEDED, JobState.DEGRADED):
            errors.print(f"[red]job {done.state.value}:[/] {done.error_message}")
            return 1
        show(done.result or {}, as_json)
        return 0

    raise typer.Exit(run(here))


async def _submitted(vigia: Vigia, job_input: dict[str, Any]) -> str:
    return (await vigia.submit(PIPELINE, job_input)).id


def _show_result(result: Any, *, as_json: bool) -> None:
    show(result or {}, as_json)


@coding_app.command("show")
def coding_show(
    job_id: Annotated[str, typer.Argument(help="The coding job's id.")],
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Show a finished job's coding report."""

    async def local(vigia: Vigia) -> dict[str, Any]:
        return await job_status(vigia, job_id)

    def remote(client: Client) -> dict[str, Any]:
        return {**client.job(job_id), "result": client.result(job_id)[1].get("result")}

    body = either(settings_of(data_dir, url=url, api_key=api_key), remote, local)
    if body.get("pipeline") != PIPELINE:
        raise fail(f"job {job_id} is a {body.get('pipeline')} job, not a coding report", 2)
    if body.get("result") is None:
        raise fail(f"job {job_id} has no report ({body.get('state')})")
    show(body["result"], as_json)


def show(report: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        console.print_json(render.as_json(report))
    else:
        console.print(render.coding_report(report))


def register(app: typer.Typer) -> None:
    app.add_typer(coding_app, name="coding")
