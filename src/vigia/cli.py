"""The `vigia` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from vigia import cli_oversight, constants, terminal
from vigia.app import Vigia
from vigia.cli_support import (
    ApiKeyOption,
    DataDir,
    Url,
    client_of,
    console,
    errors,
    fail,
    run,
    settings_of,
)
from vigia.client import Client
from vigia.config import Settings
from vigia.exceptions import VigiaError
from vigia.job import Event, JobState
from vigia.keys import Role, issue
from vigia.store.base import JobFilter
from vigia.store.keys import SQLKeyStore
from vigia.store.sqlalchemy import SQLJobStore

T = TypeVar("T")

#: Seconds between the interpreter's thread switches in `vigia serve` (Python's default: 0.005).
SERVER_SWITCH_INTERVAL = 0.001

app = typer.Typer(
    name="vigia",
    help="Run long clinical and document AI pipelines in the background.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Job store administration.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (on the local job store).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _parse_input(input_json: str | None) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(input_json, parse_constant=refuse) if input_json is not None else None
    except (ValueError, RecursionError) as error:
        reason = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise fail(f"--input is not valid JSON: {reason}", 2) from None


async def _events_of(iterator: Iterator[Event]) -> AsyncIterator[Event]:
    """An HTTP event stream (blocking) as an async iterator, read in a thread."""
    done = object()
    while True:
        event = await asyncio.to_thread(next, iterator, done)
        if event is done:
            return
        assert isinstance(event, Event)
        yield event


def _finished_well(final: Event | None) -> bool:
    return final is not None and final.state in (JobState.SUCCEEDED, JobState.DEGRADED)


# --- running --------------------------------------------------------------------------


@app.command()
def demo(
    data_dir: DataDir = None,
    text: Annotated[bool, typer.Option("--text", help="Run the small text-statistics pipeline instead.")] = False,
    pace: Annotated[float, typer.Option(help="--text: seconds per progress step.")] = 0.08,
    flaky: Annotated[bool, typer.Option(help="--text: make one stage fail its first attempt.")] = True,
) -> None:
    """Run the pressure-injury workload on its sample cases in this process, with live
    progress, then show each case's triage and escalations, and exit (`--text`: the
    text-statistics pipeline)."""
    if text:
        raise typer.Exit(run(lambda: _text_demo(data_dir, pace, flaky)))
    raise typer.Exit(run(lambda: _pressure_injury_demo(data_dir)))


async def _text_demo(data_dir: Path | None, pace: float, flaky: bool) -> int:
    from vigia.workloads.demo import pipeline

    vigia = Vigia.from_settings(settings_of(data_dir), pipelines=[pipeline])
    async with vigia:
        job = await vigia.submit(pipeline.name, {"pace": pace, "flaky": flaky})
        console.print(
            f"submitted job [bold]{job.id}[/] to pipeline [bold]{pipeline.name}[/] "
            f"(store: {vigia.settings.database_url})"
        )
        await terminal.follow_progress(
            console, pipeline.name, pipeline.execution_order, job.state.value, vigia.events(job.id)
        )
        job = await vigia.get_job(job.id)
        console.print(terminal.job_detail(job, await vigia.get_runs(job.id)))
        if job.result is not None:
            console.print(terminal.as_json(job.result))
        return 0 if job.state in (JobState.SUCCEEDED, JobState.DEGRADED) else 1


async def _pressure_injury_demo(data_dir: Path | None) -> int:
    from vigia.store.base import ReviewFilter
    from vigia.workloads.pressure_injury import pipeline, samples

    vigia = Vigia.from_settings(settings_of(data_dir))
    async with vigia:
        model = vigia.settings.pi_model
        console.print(
            f"pressure-injury cases (store: {vigia.settings.database_url}); detection model: "
            + (str(model) if model else "[yellow]none[/] (set VIGIA_PI_MODEL): every case goes to human review")
        )
        finished = []
        for case in samples.cases():
            media_type = "image/png" if case.photo.endswith(".png") else "image/jpeg"
            photo = vigia.blobs.put_bytes(case.photo_bytes(), media_type, case.photo)
            job = await vigia.submit(pipeline.name, {**case.input, "file": photo.to_input()})
            console.print(f"\n[bold]{case.name}[/] ({case.note}): job {job.id}")
            await terminal.follow_progress(
                console, pipeline.name, pipeline.execution_order, job.state.value, vigia.events(job.id)
            )
            finished.append((case, await vigia.get_job(job.id)))
        console.print()
        failed = 0
        for case, job in finished:
            reviews = await vigia.list_reviews(ReviewFilter(job_id=job.id))
            console.print(terminal.case_summary(case.name, job, reviews))
            failed += job.state not in (JobState.SUCCEEDED, JobState.DEGRADED)
        console.print(
            "\nNotifications go to the log unless VIGIA_NOTIFY_CHANNELS and VIGIA_NOTIFY_ROUTES say otherwise; "
            "see them with `vigia jobs --pipeline vigia.notify`, reviews with `vigia reviews`."
        )
        return 1 if failed else 0


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = constants.DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = constants.DEFAULT_PORT,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Embedded workers: concurrent stage runs per queue.")
    ] = None,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="Serve the API only.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Serve the HTTP API (and the dashboard) with embedded workers in this process."""
    from vigia.api import create_app
    from vigia.api.server import Server

    settings = settings_of(data_dir, concurrency=workers)
    try:
        vigia = Vigia.from_settings(settings)
        _ensure_local_key(vigia, host)
    except VigiaError as error:
        raise fail(error.message) from None
    server = Server(create_app(vigia, workers=not no_workers), host=host, port=port)
    # Requests hop between the event loop and the store's writer thread; a short switch
    # interval lets the loop take the interpreter back promptly after each hop.
    sys.setswitchinterval(SERVER_SWITCH_INTERVAL)
    console.print(f"Vigía serving http://{host}:{port}/api/v1  (docs: /api/v1/docs, store: {settings.database_url})")
    try:
        server.run()
    finally:
        vigia.close()


def _ensure_local_key(vigia: Vigia, host: str) -> None:
    """On first start on loopback, create an admin key so that the local user can work."""
    if vigia.keys.count() > 0:
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        errors.print("[yellow]warning:[/] no API keys exist: create one with `vigia keys create`")
        return
    issued = issue()
    vigia.keys.create(issued, tenant=constants.DEFAULT_TENANT, role=Role.ADMIN, name="local admin", now=time.time())
    key_file = vigia.settings.local_key_file
    key_file.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as output:
        output.write(issued.plaintext + "\n")
    console.print(f"created a local admin API key (shown once; also saved to {key_file}):\n  {issued.plaintext}")


@app.command()
def worker(
    data_dir: DataDir = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to work on (default: all).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Concurrent stage runs per queue.")] = None,
    pool: Annotated[str, typer.Option(help="Distributed mode: Celery pool (prefork, threads or solo).")] = "prefork",
) -> None:
    """Run stages of jobs until stopped (Ctrl-C or SIGTERM: graceful).

    Embedded mode: works on the local job store. Distributed mode (VIGIA_BROKER_URL set):
    a Celery worker on the given queues, with the job store at VIGIA_DATABASE_URL."""
    settings = settings_of(
        data_dir,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()) if queues else None,
        concurrency=concurrency,
    )
    if settings.distributed:
        from vigia.executors.celery import run_worker
        from vigia.registry import Registry

        try:
            from vigia.app import oversight_for

            registry = Registry.discover(settings.pipelines)
            oversight_for(settings, registry)  # checks the oversight settings; registers vigia.notify
            served = list(settings.queues or registry.queues or [constants.DEFAULT_QUEUE])
            run_worker(settings, registry, queues=served, concurrency=settings.concurrency, pool=pool)
        except VigiaError as error:
            raise fail(error.message) from None
        return

    async def main() -> None:
        vigia = Vigia.from_settings(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with vigia:
            served = ", ".join(settings.queues or vigia.registry.queues)
            console.print(f"worker on {settings.database_url}, queues: {served}")
            await stop.wait()
            console.print("stopping: waiting for running stages")

    run(main)


# --- jobs -----------------------------------------------------------------------------


@app.command()
def submit(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (see `vigia pipelines`).")],
    file: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, readable=True, help="A file for the job (with --url).")
    ] = None,
    input_json: Annotated[str | None, typer.Option("--input", help="Job input as JSON.")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Show live progress until the job ends.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key and input: the same job.")] = None,
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Higher runs first.")] = 0,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Submit a job; with --follow, draw its progress per stage until it ends."""
    job_input = _parse_input(input_json)
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    if client is None and file is not None:
        raise fail("a file can only be sent to a server: give --url (files go to its blob storage)", 2)

    async def remote(client: Client) -> int:
        job = await asyncio.to_thread(
            client.submit, pipeline, job_input, file=file, priority=priority, idempotency_key=idempotency_key
        )
        console.print(job["id"])
        if not follow:
            return 0
        stages = [stage["name"] for stage in (await asyncio.to_thread(client.pipeline, pipeline))["stages"]]
        events = _events_of(client.events(job["id"]))
        final = await terminal.follow_progress(console, pipeline, stages, job["state"], events)
        return _report(final, await asyncio.to_thread(client.result, job["id"]))

    async def local() -> int:
        vigia = Vigia.from_settings(settings)
        await vigia.start(workers=False)
        try:
            job = await vigia.submit(pipeline, job_input, idempotency_key=idempotency_key, priority=priority)
            console.print(job.id)
            if not follow:
                return 0
            # The stages run in another process (`vigia worker` or `vigia serve`): read its
            # events from the store, often.
            stages = vigia.registry.get(pipeline).execution_order
            final = await terminal.follow_progress(
                console, pipeline, stages, job.state.value, vigia.events(job.id, poll=0.2)
            )
            done = await vigia.get_job(job.id)
            return _report(final, (200, {"result": done.result}))
        finally:
            await vigia.stop()
            vigia.close()

    if client is None:
        raise typer.Exit(run(local))
    with client:
        raise typer.Exit(run(lambda: remote(client)))


def _report(final: Event | None, result: tuple[int, dict[str, Any]]) -> int:
    _, body = result
    if _finished_well(final):
        console.print(terminal.as_json(body.get("result")))
        return 0
    error = body.get("error", {})
    errors.print(f"[red]job {final.state.value if final else 'unknown'}:[/] {error.get('message') or final}")
    return 1


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Show a job: state, progress, each stage, and its result."""
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    if client is not None:
        with client:
            try:
                body = client.job(job_id)
            except VigiaError as error:
                raise fail(error.message) from None
        if as_json:
            console.print_json(terminal.as_json(body))
        else:
            console.print(terminal.remote_job_detail(body))
        return

    async def main() -> None:
        vigia = Vigia.from_settings(settings)
        try:
            job = await vigia.get_job(job_id)
            runs = await vigia.get_runs(job_id)
        finally:
            vigia.close()
        if as_json:
            summary = {**job.summary(), "stages": [run.summary() for run in runs], "result": job.result}
            console.print_json(terminal.as_json(summary))
        else:
            console.print(terminal.job_detail(job, runs))
            if job.result is not None:
                console.print(terminal.as_json(job.result))

    run(main)


@app.command()
def jobs(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Only these states (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List the newest jobs."""
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    if client is not None:
        with client:
            try:
                body = client.jobs(pipeline=pipeline, state=[s.value for s in state or ()], limit=limit)
            except VigiaError as error:
                raise fail(error.message) from None
        if as_json:
            console.print_json(terminal.as_json(body))
        else:
            console.print(terminal.remote_jobs_table(body))
        return

    async def main() -> None:
        vigia = Vigia.from_settings(settings)
        try:
            page = await vigia.list_jobs(JobFilter(pipeline=pipeline, states=tuple(state or ())), limit=limit)
        finally:
            vigia.close()
        if as_json:
            console.print_json(terminal.as_json([job.summary() for job in page.jobs]))
        else:
            console.print(terminal.jobs_table(page.jobs))

    run(main)


@app.command()
def pipelines(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List the registered pipelines and their stage graphs."""
    from vigia.registry import Registry

    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    try:
        if client is not None:
            with client:
                described = client.pipelines()
        else:
            described = [pipeline.describe() for pipeline in Registry.discover(settings.pipelines)]
    except VigiaError as error:
        raise fail(error.message) from None
    if as_json:
        console.print_json(terminal.as_json(described))
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


# --- administration -------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Create or migrate the job store's schema to this version."""
    settings = settings_of(data_dir)
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        store = SQLJobStore(settings.database_url)
        store.upgrade()
        store.check()
        store.close()
    except VigiaError as error:
        raise fail(error.message) from None
    console.print(f"job store at {settings.database_url} is up to date")


def _key_store(data_dir: Path | None) -> tuple[SQLJobStore, SQLKeyStore]:
    settings = settings_of(data_dir)
    try:
        store = SQLJobStore(settings.database_url)
        store.check()
    except VigiaError as error:
        raise fail(f"{error.message} (is {settings.database_url} right? `vigia db upgrade` creates it)") from None
    return store, SQLKeyStore(store)


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    tenant: Annotated[str, typer.Option(help="Whose jobs the key sees.")] = constants.DEFAULT_TENANT,
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it: it is shown this once and stored only as a hash."""
    store, keys = _key_store(data_dir)
    issued = issue()
    try:
        key = keys.create(
            issued,
            tenant=tenant,
            role=role,
            name=name or f"{role.value} key",
            now=time.time(),
            actor=cli_oversight.local_actor(),
        )
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        store.close()
    errors.print(f"created key {key.id} ({key.role.value}, tenant {key.tenant}); keep it now, it is not shown again:")
    print(issued.plaintext)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None, data_dir: DataDir = None
) -> None:
    """List API keys (never their secrets)."""
    store, keys = _key_store(data_dir)
    try:
        found = keys.list(tenant)
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        store.close()
    console.print(terminal.keys_table(found))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `vigia keys list`).")], data_dir: DataDir = None
) -> None:
    """Revoke an API key: servers refuse it at once, or within 5 s if they just verified it."""
    store, keys = _key_store(data_dir)
    try:
        key = keys.revoke(key_id, time.time(), actor=cli_oversight.local_actor())
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        store.close()
    console.print(f"revoked key {key.id} ({key.role.value}, tenant {key.tenant})")


cli_oversight.register(app)


def main() -> None:
    try:
        level = Settings.from_env().log_level.upper()
    except VigiaError as error:
        errors.print(f"[red]error:[/] {error.message}")
        raise SystemExit(2) from None
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app()


if __name__ == "__main__":
    main()
