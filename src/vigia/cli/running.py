"""`vigia demo`, `vigia serve`, `vigia worker` and `vigia submit`: the commands that run jobs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from vigia import constants, media, wiring
from vigia.access import Role, issue
from vigia.api.schemas import job_detail_model
from vigia.app import Vigia
from vigia.cli import render
from vigia.cli.support import ApiKeyOption, DataDir, Url, client_of, console, errors, fail, run, settings_of
from vigia.client import Client
from vigia.exceptions import VigiaError
from vigia.job import Event, JobState
from vigia.store.base import ReviewFilter
from vigia.store.documents import DocumentFilter
from vigia.workloads import demo as text_demo
from vigia.workloads.pressure_injury import pipeline as pressure_injury
from vigia.workloads.pressure_injury import samples

#: Seconds between the interpreter's thread switches in `vigia serve` (Python's default: 0.005).
SERVER_SWITCH_INTERVAL = 0.001

Concurrency = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Concurrent stage runs per queue (default 8).")
]


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


def demo(
    data_dir: DataDir = None,
    text: Annotated[bool, typer.Option("--text", help="Run the small text-statistics pipeline instead.")] = False,
    pace: Annotated[float, typer.Option(help="--text: seconds per progress step.")] = 0.08,
    flaky: Annotated[bool, typer.Option(help="--text: make one stage fail its first attempt.")] = True,
    documents: Annotated[
        bool, typer.Option("--documents", help="Ingest the sample documents and search them instead.")
    ] = False,
    coding: Annotated[bool, typer.Option("--coding", help="Code the sample clinical notes instead.")] = False,
) -> None:
    """Run the sample cases end to end in this process, then exit.

    The pressure-injury workload's sample cases with live progress, then each case's triage
    and escalations; `--documents`: the sample documents ingested, then searched; `--coding`:
    the sample clinical notes coded, with their billed codes checked; `--text`: the small
    text-statistics pipeline."""
    if text:
        raise typer.Exit(run(lambda: _text_demo(data_dir, pace, flaky)))
    if documents:
        raise typer.Exit(run(lambda: _documents_demo(data_dir)))
    if coding:
        raise typer.Exit(run(lambda: _coding_demo(data_dir)))
    raise typer.Exit(run(lambda: _pressure_injury_demo(data_dir)))


#: What `vigia demo --documents` asks of the sample documents once they are in.
DEMO_QUERIES = (
    "mantenimiento de los locales escolares",
    "¿cuántos profesores se van a contratar?",
    "patient discharged after pneumonia",
    "expired antibiotics in the pharmacy",
)


async def _documents_demo(data_dir: Path | None) -> int:
    from vigia.workloads import documents  # noqa: PLC0415 -- its samples, only for this demo
    from vigia.workloads.documents.embeddings import embedder  # noqa: PLC0415 -- PyTorch: the documents extra
    from vigia.workloads.documents.search import Searcher  # noqa: PLC0415 -- NumPy: the documents extra

    vigia = Vigia.from_settings(settings_of(data_dir))
    pipeline = vigia.registry.get(documents.NAME)
    failed = 0
    async with vigia:
        console.print(f"sample documents (store: {vigia.settings.database_url})")
        for path in documents.samples():
            data = path.read_bytes()
            media_type = media.sniff(data[: media.SNIFF_BYTES]) or "application/octet-stream"
            ref = vigia.blobs.put_bytes(data, media_type, path.name)
            job = await vigia.submit(documents.NAME, {"file": ref.to_input()})
            console.print(f"\n[bold]{path.name}[/]: job {job.id}")
            await render.follow_progress(
                console, documents.NAME, pipeline.execution_order, job.state.value, vigia.events(job.id)
            )
            done = await vigia.get_job(job.id)
            if done.state not in (JobState.SUCCEEDED, JobState.DEGRADED):
                failed += 1
                continue
            result = done.result or {}
            console.print(
                f"  → {result.get('document_type') or 'document'}: {result.get('title') or '-'} "
                f"({result.get('language')}, {result.get('page_count')} page(s), {result.get('methods')}"
                + (f", OCR confidence {result['ocr_confidence']}" if result.get("ocr_confidence") else "")
                + (", [yellow]duplicate[/]" if result.get("duplicate") else "")
                + ")"
            )
        searcher = Searcher(vigia.documents, lambda: embedder(vigia.settings.doc_embedding_model))
        for query in DEMO_QUERIES:
            console.print(f"\n[bold]search:[/] {query}")
            where = DocumentFilter(constants.DEFAULT_TENANT)
            for rank, hit in enumerate(await asyncio.to_thread(searcher.search, where, query, k=2), start=1):
                document = await asyncio.to_thread(vigia.documents.get, hit.document_id, None)
                console.print(f"  {rank}. {document.filename} (page {hit.page}, score {hit.score:.4f})")
                console.print("     " + render.marked(hit.snippet))
    return 1 if failed else 0


async def _coding_demo(data_dir: Path | None) -> int:
    from vigia.workloads import coding  # noqa: PLC0415 -- its samples, only for this demo

    vigia = Vigia.from_settings(settings_of(data_dir))
    pipeline = vigia.registry.get(coding.NAME)
    billed = json.loads((coding.samples()[0].parent / "billed.json").read_text(encoding="utf-8"))
    failed = 0
    async with vigia:
        console.print(f"sample clinical notes (store: {vigia.settings.database_url})")
        for path in coding.samples():
            codes = billed.get(path.name, [])
            job = await vigia.submit(coding.NAME, {"text": path.read_text(encoding="utf-8"), "billed_codes": codes})
            console.print(f"\n[bold]{path.name}[/] (billed: {', '.join(codes) or 'nothing'}): job {job.id}")
            await render.follow_progress(
                console, coding.NAME, pipeline.execution_order, job.state.value, vigia.events(job.id)
            )
            done = await vigia.get_job(job.id)
            if done.state not in (JobState.SUCCEEDED, JobState.DEGRADED):
                failed += 1
                errors.print(f"[red]job {done.state.value}:[/] {done.error_message}")
                continue
            console.print(render.coding_report(done.result or {}))
    return 1 if failed else 0


async def _text_demo(data_dir: Path | None, pace: float, flaky: bool) -> int:
    pipeline = text_demo.pipeline
    vigia = Vigia.from_settings(settings_of(data_dir), pipelines=[pipeline])
    async with vigia:
        job = await vigia.submit(pipeline.name, {"pace": pace, "flaky": flaky})
        console.print(
            f"submitted job [bold]{job.id}[/] to pipeline [bold]{pipeline.name}[/] "
            f"(store: {vigia.settings.database_url})"
        )
        await render.follow_progress(
            console, pipeline.name, pipeline.execution_order, job.state.value, vigia.events(job.id)
        )
        body = await job_status(vigia, job.id)
        console.print(render.job_detail(body))
        if body["result"] is not None:
            console.print(render.as_json(body["result"]))
        return 0 if body["state"] in (JobState.SUCCEEDED, JobState.DEGRADED) else 1


async def _pressure_injury_demo(data_dir: Path | None) -> int:
    pipeline = pressure_injury
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
            await render.follow_progress(
                console, pipeline.name, pipeline.execution_order, job.state.value, vigia.events(job.id)
            )
            finished.append((case, await vigia.get_job(job.id)))
        console.print()
        failed = 0
        for case, job in finished:
            reviews = await vigia.list_reviews(ReviewFilter(job_id=job.id))
            console.print(render.case_summary(case.name, job, reviews))
            failed += job.state not in (JobState.SUCCEEDED, JobState.DEGRADED)
        console.print(
            "\nNotifications go to the log unless VIGIA_NOTIFY_CHANNELS and VIGIA_NOTIFY_ROUTES say otherwise; "
            "see them with `vigia jobs list --pipeline vigia.notify`, reviews with `vigia reviews list`."
        )
        return 1 if failed else 0


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = constants.DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = constants.DEFAULT_PORT,
    concurrency: Concurrency = None,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="Serve the API only.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Serve the HTTP API with embedded workers in this process.

    Distributed mode (VIGIA_BROKER_URL set): the API, dispatching to Celery workers."""
    from vigia.api import create_app  # noqa: PLC0415 -- FastAPI and uvicorn: only `serve` needs them (0.4 s)
    from vigia.api.server import Server  # noqa: PLC0415 -- as above

    settings = settings_of(data_dir, concurrency=concurrency)
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


def worker(
    data_dir: DataDir = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues to work on (default: all).")] = None,
    concurrency: Concurrency = None,
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
        from vigia.executors.celery import run_worker  # noqa: PLC0415 -- Celery only in distributed mode

        try:
            registry = wiring.registry_for(settings)
            wiring.safeguards_for(settings, registry)  # refuse to start on bad oversight settings
            served = wiring.served_queues(settings, registry)
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
            served = ", ".join(wiring.served_queues(settings, vigia.registry))
            console.print(f"worker on {settings.database_url}, queues: {served}")
            await stop.wait()
            console.print("stopping: waiting for running stages")

    run(main)


# --- jobs -----------------------------------------------------------------------------


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
    """Submit a job; --follow draws its progress per stage.

    With --url the job goes to that server (and may carry a FILE); without, into the local
    store, for `vigia serve` or `vigia worker` to run."""
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
        return await follow_job(client, pipeline, job)

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
            final = await render.follow_progress(
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


async def follow_job(
    client: Client, pipeline: str, job: dict[str, Any], show: Callable[[Any], None] | None = None
) -> int:
    """Draw a submitted job's progress from the server's events, then its result (as JSON,
    or as ``show`` prints it) or its error; the exit status (0: it succeeded, possibly degraded)."""
    stages = [stage["name"] for stage in (await asyncio.to_thread(client.pipeline, pipeline))["stages"]]
    events = _events_of(client.events(job["id"]))
    final = await render.follow_progress(console, pipeline, stages, job["state"], events)
    return _report(final, await asyncio.to_thread(client.result, job["id"]), show)


def _report(final: Event | None, result: tuple[int, dict[str, Any]], show: Callable[[Any], None] | None = None) -> int:
    _, body = result
    if _finished_well(final):
        if show is None:
            console.print(render.as_json(body.get("result")))
        else:
            show(body.get("result"))
        return 0
    error = body.get("error", {})
    errors.print(f"[red]job {final.state.value if final else 'unknown'}:[/] {error.get('message') or final}")
    return 1


async def job_status(vigia: Vigia, job_id: str) -> dict[str, Any]:
    """`GET /jobs/{id}` as the local store tells it, with the job's result."""
    job = await vigia.get_job(job_id)
    runs = await vigia.get_runs(job.id)
    reviews = (await vigia.reviews_of([job.id])).get(job.id, [])
    pipeline = vigia.registry.get(job.pipeline) if job.pipeline in vigia.registry else None
    return {**job_detail_model(job, runs, reviews, pipeline).model_dump(mode="json"), "result": job.result}


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(serve)
    app.command()(worker)
    app.command()(submit)
