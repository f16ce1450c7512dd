"""The `vigia` command."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from vigia import terminal
from vigia.app import Vigia
from vigia.config import Settings
from vigia.exceptions import VigiaError
from vigia.job import JobState
from vigia.store.base import JobFilter
from vigia.store.sqlalchemy import SQLJobStore

T = TypeVar("T")

app = typer.Typer(
    name="vigia",
    help="Run long clinical and document AI pipelines in the background.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Job store administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded store lives (default: VIGIA_DATA_DIR or ./.vigia)."),
]


def _settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    return Settings.from_env(data_dir=data_dir, **overrides)


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine, turning Vigía's errors into one line and exit status 1."""
    try:
        return asyncio.run(main())
    except VigiaError as error:
        errors.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        errors.print("interrupted")
        raise typer.Exit(130) from None


@app.command()
def demo(
    data_dir: DataDir = None,
    pace: Annotated[float, typer.Option(help="Seconds per progress step, so the bars can be watched.")] = 0.08,
    flaky: Annotated[bool, typer.Option(help="Make one stage fail its first attempt, to show a retry.")] = True,
) -> None:
    """Run the demo pipeline end to end in this process, with live progress, and exit."""
    from vigia.workloads.demo import pipeline

    async def main() -> int:
        vigia = Vigia.from_settings(_settings(data_dir), pipelines=[pipeline])
        async with vigia:
            job = await vigia.submit(pipeline.name, {"pace": pace, "flaky": flaky})
            console.print(
                f"submitted job [bold]{job.id}[/] to pipeline [bold]{pipeline.name}[/] "
                f"(store: {vigia.settings.database_url})"
            )
            await terminal.follow_progress(console, pipeline, job, vigia.events(job.id))
            job = await vigia.get_job(job.id)
            console.print(terminal.job_detail(job, await vigia.get_runs(job.id)))
            if job.result is not None:
                console.print(terminal.as_json(job.result))
            return 0 if job.state in (JobState.SUCCEEDED, JobState.DEGRADED) else 1

    raise typer.Exit(_run(main))


@app.command()
def worker(
    data_dir: DataDir = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to work on (default: all).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Concurrent stage runs per queue.")] = None,
) -> None:
    """Run stages of jobs in the job store until stopped (Ctrl-C or SIGTERM: graceful)."""
    settings = _settings(
        data_dir,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()) if queues else None,
        concurrency=concurrency,
    )
    if settings.distributed:
        errors.print("[red]error:[/] VIGIA_BROKER_URL is set, but this version runs stages only in embedded mode")
        raise typer.Exit(2)

    async def main() -> None:
        vigia = Vigia.from_settings(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with vigia:
            queues = ", ".join(settings.queues or vigia.registry.queues)
            console.print(f"worker on {settings.database_url}, queues: {queues}")
            await stop.wait()
            console.print("stopping: waiting for running stages")

    _run(main)


@app.command()
def submit(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (see `vigia pipelines`).")],
    input_json: Annotated[str | None, typer.Option("--input", help="Job input as JSON.")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Show live progress until the job ends.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key and input: the same job.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Store a job in the local job store; a running `vigia worker` runs it."""
    try:
        job_input = json.loads(input_json) if input_json is not None else None
    except json.JSONDecodeError as error:
        errors.print(f"[red]error:[/] --input is not valid JSON: {error}")
        raise typer.Exit(2) from None

    async def main() -> int:
        vigia = Vigia.from_settings(_settings(data_dir))
        await vigia.start(workers=False)
        try:
            job = await vigia.submit(pipeline, job_input, idempotency_key=idempotency_key, priority=priority)
            console.print(job.id)
            if not follow:
                return 0
            # The stages run in another process: read its events from the store, often.
            events = vigia.events(job.id, poll=0.2)
            final = await terminal.follow_progress(console, vigia.registry.get(pipeline), job, events)
            return 0 if final is not None and final.state in (JobState.SUCCEEDED, JobState.DEGRADED) else 1
        finally:
            vigia.close()

    raise typer.Exit(_run(main))


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Show a job: state, progress, each stage, and its result."""

    async def main() -> None:
        vigia = Vigia.from_settings(_settings(data_dir))
        try:
            job = await vigia.get_job(job_id)
            runs = await vigia.get_runs(job_id)
        finally:
            vigia.close()
        if as_json:
            console.print_json(
                terminal.as_json({**job.summary(), "stages": [r.summary() for r in runs], "result": job.result})
            )
        else:
            console.print(terminal.job_detail(job, runs))
            if job.result is not None:
                console.print(terminal.as_json(job.result))

    _run(main)


@app.command()
def jobs(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Only these states (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    data_dir: DataDir = None,
) -> None:
    """List the newest jobs."""

    async def main() -> None:
        vigia = Vigia.from_settings(_settings(data_dir))
        try:
            page = await vigia.list_jobs(JobFilter(pipeline=pipeline, states=tuple(state or ())), limit=limit)
        finally:
            vigia.close()
        console.print(terminal.jobs_table(page.jobs))

    _run(main)


@app.command()
def pipelines(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False, data_dir: DataDir = None
) -> None:
    """List the registered pipelines and their stage graphs."""
    from vigia.registry import Registry

    try:
        registry = Registry.discover(_settings(data_dir).pipelines)
    except VigiaError as error:
        errors.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(1) from None
    described = [pipeline.describe() for pipeline in registry]
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


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Create or migrate the job store's schema to this version."""
    settings = _settings(data_dir)
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        store = SQLJobStore(settings.database_url)
        store.upgrade()
        store.check()
        store.close()
    except VigiaError as error:
        errors.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(1) from None
    console.print(f"job store at {settings.database_url} is up to date")


def main() -> None:
    logging.basicConfig(
        level=Settings.from_env().log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    app()


if __name__ == "__main__":
    main()
