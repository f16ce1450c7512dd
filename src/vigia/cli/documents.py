"""`vigia docs`: add documents, search them, show one, delete one, re-embed them."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from vigia import constants, media
from vigia.api.schemas import DocumentPageModel, document_detail_model, document_model
from vigia.app import Vigia
from vigia.cli import render
from vigia.cli.running import follow_job
from vigia.cli.support import (
    ApiKeyOption,
    AsJson,
    DataDir,
    Limit,
    Url,
    client_of,
    console,
    either,
    errors,
    fail,
    local_actor,
    locally,
    run,
    settings_of,
)
from vigia.client import Client
from vigia.exceptions import VigiaError
from vigia.store.documents import DocumentFilter

PIPELINE = "document_ingest"
docs_app = typer.Typer(help="Documents: add, search, show, list, delete, reindex.", no_args_is_help=True)

Language = Annotated[str | None, typer.Option("--lang", help="Only documents in this language (es or en).")]
DocType = Annotated[str | None, typer.Option("--type", help="Only documents of this type (oficio, lab_report...).")]


@docs_app.command("add")
def docs_add(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="PDFs or images.")],
    language: Annotated[
        str | None, typer.Option("--language", help="The documents' language, es or en (default: detected).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Show live progress until each job ends.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Ingest documents: one job each; with --follow, their progress and results.

    With --url they go to that server; without, into the local store, for `vigia serve` or
    `vigia worker` to run."""
    if language not in (None, "es", "en"):
        raise fail("--language is es or en", 2)
    job_input = {"language": language} if language else {}
    settings = settings_of(data_dir, url=url, api_key=api_key)
    client = client_of(settings)
    failed = 0
    if client is not None:
        with client:
            for path in files:
                try:
                    job = client.submit(PIPELINE, job_input, file=path)
                except VigiaError as error:
                    errors.print(f"[red]error:[/] {path.name}: {error.message}")
                    failed += 1
                    continue
                console.print(f"{path.name}: job {job['id']}")
                if follow:
                    failed += run(functools.partial(follow_job, client, PIPELINE, job))
        raise typer.Exit(1 if failed else 0)

    async def local(vigia: Vigia) -> int:
        pipeline = vigia.registry.get(PIPELINE)
        refused = 0
        for path in files:
            data = path.read_bytes()
            media_type = media.sniff(data[: media.SNIFF_BYTES])
            try:
                if media_type not in pipeline.accepts:
                    raise VigiaError(f"the file's content is {media_type or 'of an unknown type'}, not a PDF or image")
                ref = vigia.blobs.put_bytes(data, media_type, path.name)
                if pipeline.check_file is not None:
                    await asyncio.to_thread(pipeline.check_file, vigia.blobs.path(ref), media_type, vigia.settings)
                job = await vigia.submit(PIPELINE, {**job_input, "file": ref.to_input()})
            except VigiaError as error:
                errors.print(f"[red]error:[/] {path.name}: {error.message}")
                refused += 1
                continue
            console.print(f"{path.name}: job {job.id}")
            if follow:
                await render.follow_progress(
                    console, PIPELINE, pipeline.execution_order, job.state.value, vigia.events(job.id, poll=0.2)
                )
                done = await vigia.get_job(job.id)
                console.print_json(render.as_json(done.result))
        return refused

    raise typer.Exit(1 if locally(settings, local) else 0)


@docs_app.command("list")
def docs_list(
    doc_type: DocType = None,
    language: Language = None,
    limit: Limit = 20,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """List documents, newest first."""

    async def local(vigia: Vigia) -> dict[str, Any]:
        where = DocumentFilter(vigia_tenant(vigia), doc_type, language)
        rows = await asyncio.to_thread(vigia.documents.list_documents, where, limit=limit)
        page = DocumentPageModel(documents=[document_model(row) for row in rows], next_cursor=None)
        return page.model_dump(mode="json")

    def remote(client: Client) -> dict[str, Any]:
        return client.documents(type=doc_type, lang=language, limit=limit)

    page = either(settings_of(data_dir, url=url, api_key=api_key), remote, local)
    if as_json:
        console.print_json(render.as_json(page))
        return
    table = Table(show_edge=False)
    for column in ("id", "title", "type", "lang", "date", "pages", "status"):
        table.add_column(column, no_wrap=column == "id")
    for item in page["documents"]:
        table.add_row(
            item["id"],
            render.short(item["title"] or item["filename"] or "-", 60),
            item["document_type"] or "-",
            item["language"] or "-",
            item["date"] or "-",
            str(item["page_count"]),
            render.styled(item["status"]),
        )
    console.print(table if page["documents"] else "no documents")


@docs_app.command("show")
def docs_show(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    pages: Annotated[bool, typer.Option("--pages", help="Print each page's text too.")] = False,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Show a document: its metadata with sources, and how each page was read."""

    async def local(vigia: Vigia) -> dict[str, Any]:
        row = await asyncio.to_thread(vigia.documents.get, document_id, None)
        found = await asyncio.to_thread(vigia.documents.pages, row.id)
        counts = await asyncio.to_thread(vigia.documents.chunk_counts, row.id)
        return document_detail_model(row, found, counts).model_dump(mode="json")

    body = either(settings_of(data_dir, url=url, api_key=api_key), lambda client: client.document(document_id), local)
    if as_json:
        console.print_json(render.as_json(body))
        return
    console.print(render.document_detail(body))
    if pages:
        for page in body["pages"]:
            console.rule(f"page {page['number']} ({page['method']})")
            console.print(page["text"], markup=False, highlight=False)


@docs_app.command("search")
def docs_search(
    query: Annotated[str, typer.Argument(help="Words, a question or a reference number.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many results.")] = 5,
    doc_type: DocType = None,
    language: Language = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Search the documents by meaning and by words (hybrid ranking)."""
    if not query.strip():
        raise fail("the query is empty", 2)

    async def local(vigia: Vigia) -> dict[str, Any]:
        from vigia.workloads.documents.embeddings import ModelUnavailable, embedder  # noqa: PLC0415 -- PyTorch
        from vigia.workloads.documents.search import Searcher  # noqa: PLC0415 -- NumPy (the documents extra)

        problem: list[str] = []

        def model() -> Any:
            try:
                return embedder(vigia.settings.doc_embedding_model)
            except ModelUnavailable as error:
                problem[:] = [f"the embedding model is not available: {error}"]
                return None

        searcher = Searcher(vigia.documents, model)
        where = DocumentFilter(vigia_tenant(vigia), doc_type, language)
        results = await asyncio.to_thread(searcher.search, where, query, k=k)
        return {"results": [result.to_dict() for result in results], "vector_search": problem[0] if problem else "ok"}

    def remote(client: Client) -> dict[str, Any]:
        return client.search_documents(query, k=k, type=doc_type, lang=language)

    found = either(settings_of(data_dir, url=url, api_key=api_key), remote, local)
    if as_json:
        console.print_json(render.as_json(found))
        return
    if found["vector_search"] != "ok":
        errors.print(f"[yellow]note:[/] keyword ranking only: {found['vector_search']}")
    if not found["results"]:
        console.print("nothing found")
    for rank, result in enumerate(found["results"], start=1):
        console.print(
            f"[bold]{rank}.[/] document {result['document_id']} page {result['page']}  "
            f"[dim]score {result['score']:.4f} (keyword {_score(result['keyword_score'])}, "
            f"vector {_score(result['vector_score'])})[/]"
        )
        console.print("   " + render.marked(result["snippet"]))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@docs_app.command("delete")
def docs_delete(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = None,
    api_key: ApiKeyOption = None,
    data_dir: DataDir = None,
) -> None:
    """Delete a document with its pages, chunks and vectors (audited)."""
    if not yes and not typer.confirm(f"Delete document {document_id} for good?", default=False):
        raise typer.Exit(1)

    async def local(vigia: Vigia) -> None:
        row = await asyncio.to_thread(vigia.documents.delete, document_id, vigia_tenant(vigia), local_actor())
        if await asyncio.to_thread(vigia.documents.references, row.sha256) == 0:
            await asyncio.to_thread(vigia.blobs.delete, row.sha256)

    either(settings_of(data_dir, url=url, api_key=api_key), lambda client: client.delete_document(document_id), local)
    console.print(f"deleted document {document_id}")


@docs_app.command("reindex")
def docs_reindex(data_dir: DataDir = None) -> None:
    """Embed again every chunk without a vector of this installation's model.

    After the model changed, or for documents whose embeddings degraded. Runs here, on the
    local store (or the one VIGIA_DATABASE_URL names)."""

    async def local(vigia: Vigia) -> int:
        from vigia.workloads.documents import embeddings  # noqa: PLC0415 -- PyTorch: only for a reindex

        try:
            model = await asyncio.to_thread(embeddings.embedder, vigia.settings.doc_embedding_model)
        except embeddings.ModelUnavailable as error:
            raise VigiaError(str(error)) from None
        total = 0
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bars:
            bar = bars.add_task("documents", total=None)
            while stale := await asyncio.to_thread(vigia.documents.stale_documents, model.identity):
                for document_id in stale:
                    chunks = await asyncio.to_thread(vigia.documents.chunks, document_id)
                    vectors = await asyncio.to_thread(model.encode, [chunk.text for chunk in chunks])
                    written = {
                        chunk.ordinal: embeddings.to_bytes(vector)
                        for chunk, vector in zip(chunks, vectors, strict=True)
                    }
                    await asyncio.to_thread(vigia.documents.set_embeddings, document_id, written, model.identity)
                    total += 1
                    bars.update(bar, completed=total)
        return total

    count = locally(settings_of(data_dir), local)
    console.print(f"re-embedded {count} document(s)")


def vigia_tenant(vigia: Vigia) -> str:
    """The tenant the local commands act for: the one jobs submitted locally belong to."""
    return constants.DEFAULT_TENANT


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app, name="docs")
