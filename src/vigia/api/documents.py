"""Documents the document workload ingested: list, one with its pages, its file, delete, and
hybrid search. Submitting one is a job like any other (`POST /pipelines/document_ingest/jobs`
with the file); its result names the document."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from vigia.api.auth import Admin, App, Reader
from vigia.api.errors import ERRORS
from vigia.api.schemas import (
    ChunkModel,
    ChunkPageModel,
    DocumentDetailModel,
    DocumentPageModel,
    SearchModel,
    SearchResultModel,
    document_detail_model,
    document_model,
)
from vigia.app import Vigia
from vigia.blobs import BlobRef
from vigia.exceptions import DocumentNotFound, InvalidInput
from vigia.store.documents import DocumentFilter, DocumentRow

log = logging.getLogger("vigia.api")

router = APIRouter(tags=["documents"])

#: How long a search waits for the embedding model to finish loading (first search after a
#: start) before it answers with keyword ranking alone.
MODEL_WAIT_SECONDS = 60.0
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A date, YYYY-MM-DD.")]


async def document_detail(vigia: Vigia, row: DocumentRow) -> DocumentDetailModel:
    pages = await asyncio.to_thread(vigia.documents.pages, row.id)
    counts = await asyncio.to_thread(vigia.documents.chunk_counts, row.id)
    return document_detail_model(row, pages, counts)


class Embeddings:
    """The embedding model of this API process, loaded once, in the background."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._loaded = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self.problem: str | None = None
        self._model: Any = None

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="vigia-embeddings", daemon=True).start()

    def _load(self) -> None:
        try:
            from vigia.workloads.documents.embeddings import embedder  # noqa: PLC0415 -- PyTorch: ~10 s, in this thread only

            self._model = embedder(self.directory)
        except Exception as error:  # no model installed, or it does not load: keyword search only
            self.problem = f"the embedding model is not available: {error}"[:300]
            log.warning("embeddings.unavailable", extra={"error_type": type(error).__name__})
        finally:
            self._loaded.set()

    def get(self, wait: float) -> Any:
        self.start()
        if not self._loaded.wait(wait) and self.problem is None:
            return None
        return self._model


def searcher_of(request: Request, vigia: Vigia) -> tuple[Any, Embeddings]:
    state = request.app.state
    if getattr(state, "searcher", None) is None:
        from vigia.workloads.documents.search import Searcher  # noqa: PLC0415 -- NumPy (the documents extra), on first search

        embeddings = getattr(state, "embeddings", None) or Embeddings(vigia.settings.doc_embedding_model)
        state.embeddings = embeddings
        state.searcher = Searcher(vigia.documents, lambda: embeddings.get(MODEL_WAIT_SECONDS))
    return state.searcher, state.embeddings


def _where(tenant: str, doc_type: str | None, lang: str | None, date_from: str | None, date_to: str | None,
           job_id: str | None) -> DocumentFilter:  # fmt: skip
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("date_from is after date_to", field="date_from")
    return DocumentFilter(tenant, doc_type, lang, date_from, date_to, job_id)


@router.get("/documents/search", response_model=SearchModel, responses=ERRORS, summary="Search documents")
async def search(
    request: Request,
    key: Reader,
    vigia: App,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words, a question, a reference number.")],
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    type: Annotated[str | None, Query(max_length=50, description="A document type (see a document's).")] = None,
    lang: Annotated[str | None, Query(pattern="^(es|en)$")] = None,
    date_from: Day = None,
    date_to: Day = None,
    job_id: Annotated[str | None, Query(max_length=32)] = None,
) -> SearchModel:
    """The best chunks of this tenant's documents: keyword ranking and vector similarity
    fused (reciprocal rank fusion), each with its page and a highlighted snippet."""
    if not q.strip():
        raise InvalidInput("the query is empty", field="q")
    searcher, embeddings = searcher_of(request, vigia)
    where = _where(key.tenant, type, lang, date_from, date_to, job_id)
    results = await asyncio.to_thread(searcher.search, where, q, k=k)
    status = "ok" if embeddings.problem is None else embeddings.problem
    return SearchModel(results=[SearchResultModel(**result.to_dict()) for result in results], vector_search=status)


@router.get("/documents", response_model=DocumentPageModel, responses=ERRORS, summary="List documents")
async def list_documents(
    key: Reader,
    vigia: App,
    type: Annotated[str | None, Query(max_length=50)] = None,
    lang: Annotated[str | None, Query(pattern="^(es|en)$")] = None,
    date_from: Day = None,
    date_to: Day = None,
    job_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=32, pattern="^[0-9a-f]{32}$")] = None,
) -> DocumentPageModel:
    """Newest first; `next_cursor` gives the next (older) page."""
    where = _where(key.tenant, type, lang, date_from, date_to, job_id)
    found = await asyncio.to_thread(vigia.documents.list_documents, where, limit=limit + 1, cursor=cursor)
    more = len(found) > limit
    found = found[:limit]
    return DocumentPageModel(
        documents=[document_model(row) for row in found], next_cursor=found[-1].id if more and found else None
    )


@router.get("/documents/{document_id}", response_model=DocumentDetailModel, responses=ERRORS, summary="A document")
async def get_document(document_id: str, key: Reader, vigia: App) -> DocumentDetailModel:
    """Its metadata (each field with where it came from), its pages with their text, how
    each was read and the OCR confidence, and its chunk count."""
    row = await asyncio.to_thread(vigia.documents.get, document_id, key.tenant)
    return await document_detail(vigia, row)


@router.get(
    "/documents/{document_id}/chunks", response_model=ChunkPageModel, responses=ERRORS, summary="A document's chunks"
)
async def get_chunks(
    document_id: str,
    key: Reader,
    vigia: App,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ChunkPageModel:
    """The chunks search ranks, in order, with their pages and offsets in the cleaned text."""
    await asyncio.to_thread(vigia.documents.get, document_id, key.tenant)
    chunks = await asyncio.to_thread(vigia.documents.chunks, document_id)
    return ChunkPageModel(
        chunks=[ChunkModel.model_validate(chunk, from_attributes=True) for chunk in chunks[offset : offset + limit]],
        total=len(chunks),
    )


@router.get(
    "/documents/{document_id}/file",
    response_class=FileResponse,
    responses={**ERRORS, 200: {"content": {"application/pdf": {}, "image/*": {}}, "description": "The file"}},
    summary="A document's file",
)
async def get_file(document_id: str, key: Reader, vigia: App) -> FileResponse:
    row = await asyncio.to_thread(vigia.documents.get, document_id, key.tenant)
    path = vigia.blobs.path(BlobRef(row.sha256, row.size, row.media_type, row.filename))
    if not path.exists():
        raise DocumentNotFound(f"the file of document {document_id!r} is no longer stored", document_id=document_id)
    extension = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}
    name = row.filename or f"{row.id}{extension.get(row.media_type, '')}"
    return FileResponse(path, media_type=row.media_type, filename=name)


@router.delete("/documents/{document_id}", status_code=204, responses=ERRORS, summary="Delete a document")
async def delete_document(document_id: str, key: Admin, vigia: App) -> None:
    """The document, its pages, chunks and vectors, and its file when no other document is
    of the same file. Audited."""
    row = await asyncio.to_thread(vigia.documents.delete, document_id, key.tenant, key.id)
    if await asyncio.to_thread(vigia.documents.references, row.sha256) == 0:
        await asyncio.to_thread(vigia.blobs.delete, row.sha256)
