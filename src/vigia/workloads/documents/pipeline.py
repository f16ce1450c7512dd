"""The document ingestion pipeline (`document_ingest`), with the progress milestones its
users know: store 10 %, extract 20 %, clean 30 %, chunk 40 %, metadata 50 %, save 60 %,
embeddings 60–90 % (per batch), finalise 100 %.

    store ─ extract ─ clean ─ chunk ─ metadata ─ save ─ embed ─ finalise
    (documents queue; embed on the embeddings queue)

Metadata and embeddings are not critical: when they fail the document is saved all the
same, degraded, and keyword search finds it. A file the tenant has already ingested is the
same document: the job says so and does no work again.

Heavy libraries (NumPy, OpenCV, PDFium, Tesseract's wrapper, PyTorch) are imported by the
stages that use them, so that loading the pipeline (every process does) costs little.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vigia.blobs import BlobRef
from vigia.config import Settings
from vigia.context import StageContext
from vigia.exceptions import InvalidInput, Permanent
from vigia.pipeline import Pipeline, Severity, Stage
from vigia.retry import RetryPolicy
from vigia.store.documents import DocumentStore, NewChunk, PageRow
from vigia.workloads.documents import metadata as reading
from vigia.workloads.documents.chunking import DEFAULT_OVERLAP
from vigia.workloads.documents.chunking import chunk as make_chunks
from vigia.workloads.documents.cleaning import CleanText, clean_pages, index_text

NAME = "document_ingest"
DOCUMENTS_QUEUE = "documents"
EMBEDDINGS_QUEUE = "embeddings"
ACCEPTS = ("application/pdf", "image/jpeg", "image/png", "image/tiff")
#: Vectors written to the store per transaction while embedding.
EMBED_WRITE_BATCH = 64
#: Input fields a job may carry besides its file.
INPUT_FIELDS = {"file", "language", "title"}


def validate(job_input: Any) -> None:
    if not isinstance(job_input, dict):
        raise InvalidInput("the input must be an object with the document's file", field="input")
    unknown = set(job_input) - INPUT_FIELDS
    if unknown:
        raise InvalidInput(f"unknown input fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if "file" not in job_input:
        raise InvalidInput("a document job needs its file (multipart field 'file')", field="file")
    language = job_input.get("language")
    if language is not None and language not in ("es", "en"):
        raise InvalidInput("language must be 'es' or 'en' (or left out: it is detected)", field="language")
    title = job_input.get("title")
    if title is not None and (not isinstance(title, str) or not 0 < len(title) <= 200):
        raise InvalidInput("title must be a text of 1 to 200 characters", field="title")


def check_file(path: Path, media_type: str, settings: Settings) -> None:
    """At submission: a corrupt, encrypted or empty PDF, or an image that does not decode,
    is a 422; more pages than VIGIA_DOC_MAX_PAGES a 413."""
    from vigia.workloads.documents import extraction  # noqa: PLC0415 -- PDFium and Pillow: only for a document

    extraction.check_file(path, media_type, max_pages=settings.doc_max_pages)


def _settings(ctx: StageContext) -> Settings:
    return ctx.settings or Settings()


def _store(ctx: StageContext) -> DocumentStore:
    return DocumentStore(ctx.require_database())


def _tenant(ctx: StageContext) -> str:
    if ctx.tenant is None:
        raise Permanent("this stage keeps documents per tenant, but its job's tenant is not known here")
    return ctx.tenant


def _duplicate(ctx: StageContext) -> str | None:
    return (ctx.outputs.get("store") or {}).get("duplicate_of")


def store(ctx: StageContext) -> dict[str, Any]:
    """The upload is in blob storage: check it again (a worker may see another file than
    the API did), and find whether this tenant has this file already."""
    from vigia.workloads.documents import extraction  # noqa: PLC0415 -- PDFium and Pillow

    ref = BlobRef.from_input(ctx.input["file"])
    path = ctx.require_files().path(ref)
    try:
        pages = extraction.check_file(path, ref.media_type, max_pages=_settings(ctx).doc_max_pages)
    except InvalidInput as error:
        raise Permanent(error.message) from None
    existing = _store(ctx).find(_tenant(ctx), ref.sha256)
    duplicate = existing.id if existing is not None and existing.status in ("indexed", "degraded") else None
    ctx.progress(1.0, "duplicate of a stored document" if duplicate else f"{pages} page(s)")
    return {
        "sha256": ref.sha256,
        "media_type": ref.media_type,
        "size": ref.size,
        "pages": pages,
        "duplicate_of": duplicate,
    }


def extract(ctx: StageContext) -> dict[str, Any]:
    """Each page's text: its text layer where good, OCR where not, in parallel."""
    if _duplicate(ctx):
        return {"skipped": "duplicate"}
    from vigia.workloads.documents import extraction  # noqa: PLC0415 -- PDFium, OpenCV, Tesseract

    settings = _settings(ctx)
    ref = BlobRef.from_input(ctx.input["file"])
    workers = settings.doc_ocr_workers or os.cpu_count() or 1
    reader = extraction.Reader(
        workers=workers,
        timeout=settings.doc_ocr_timeout,
        progress=lambda done, total, message: ctx.progress(done / max(total, 1), message),
        cancelled=lambda: ctx.cancelled,
    )
    found = reader.read(ctx.require_files().path(ref), ref.media_type, language=ctx.input.get("language"))
    ctx.raise_if_cancelled()
    read = [page for page in found.pages if page.method in ("text_layer", "ocr", "empty")]
    if not read:
        reasons = "; ".join(sorted({page.reason or "unreadable" for page in found.pages}))
        raise Permanent(f"no page of the document could be read: {reasons}")
    return {
        "language": found.language,
        "language_source": found.language_source,
        "methods": found.methods,
        "pages": [page.to_dict() for page in found.pages],
    }


def clean(ctx: StageContext) -> dict[str, Any]:
    """Normalised text, words joined across line ends, repeated headers and footers gone."""
    if _duplicate(ctx):
        return {"skipped": "duplicate"}

    cleaned = clean_pages([page["text"] for page in ctx.outputs["extract"]["pages"]])
    return {"text": cleaned.text, "page_spans": cleaned.page_spans, "removed_lines": cleaned.removed_lines}


def _clean_text(ctx: StageContext) -> CleanText:

    done = ctx.outputs["clean"]
    return CleanText(done["text"], tuple(tuple(span) for span in done["page_spans"]), tuple(done["removed_lines"]))


def chunk(ctx: StageContext) -> dict[str, Any]:
    """Chunks on sentence boundaries, 100 characters of overlap, each with its pages."""
    if _duplicate(ctx):
        return {"skipped": "duplicate"}

    chunks = make_chunks(_clean_text(ctx), size=_settings(ctx).doc_chunk_size, overlap=DEFAULT_OVERLAP)
    return {
        "size": _settings(ctx).doc_chunk_size,
        "overlap": DEFAULT_OVERLAP,
        "chunks": [
            {"start": item.start, "end": item.end, "page_start": item.page_start, "page_end": item.page_end}
            for item in chunks
        ],
    }


def metadata(ctx: StageContext) -> dict[str, Any]:
    """Title, type, dates, reference numbers, keywords: each with where it came from."""
    if _duplicate(ctx):
        return {"skipped": "duplicate"}

    extracted = ctx.outputs["extract"]
    found = reading.extract(_clean_text(ctx), language=extracted["language"], page_count=len(extracted["pages"]))
    if ctx.input.get("title"):
        found["title"] = {"value": ctx.input["title"], "source": None, "how": "given with the job"}
    return found


def save(ctx: StageContext) -> dict[str, Any]:
    """The document, its pages and chunks in the store: keyword search finds it from now."""
    if (duplicate := _duplicate(ctx)) is not None:
        return {"document_id": duplicate, "duplicate": True}

    stored = ctx.outputs["store"]
    extracted = ctx.outputs["extract"]
    text = ctx.outputs["clean"]["text"]
    found = ctx.outputs.get("metadata")
    chunks = [
        NewChunk(index, item["page_start"], item["page_end"], item["start"], item["end"], piece, index_text(piece))
        for index, item in enumerate(ctx.outputs["chunk"]["chunks"])
        if (piece := text[item["start"] : item["end"]])
    ]
    pages = [
        PageRow(page["number"], page["method"], page["ocr_confidence"], page["reason"], page["text"])
        for page in extracted["pages"]
    ]
    fields = _fields(found, extracted["language"])
    details = {
        "metadata": found,
        "methods": extracted["methods"],
        "language_source": extracted["language_source"],
        "degraded": [] if found is not None else ["metadata"],
        "chunk_size": ctx.outputs["chunk"]["size"],
    }
    document_id = _store(ctx).save(
        tenant=_tenant(ctx),
        sha256=stored["sha256"],
        job_id=ctx.job_id,
        media_type=stored["media_type"],
        size=stored["size"],
        fields=fields,
        details=details,
        pages=pages,
        chunks=chunks,
        status="indexing",
    )
    ctx.progress(1.0, f"{len(chunks)} chunks saved")
    return {"document_id": document_id, "duplicate": False, "chunks": len(chunks)}


def _fields(found: dict[str, Any] | None, language: str | None) -> dict[str, Any]:
    """The metadata values kept as columns (for filters and listings)."""
    found = found or {}

    def value(name: str) -> Any:
        item = found.get(name)
        return item.get("value") if isinstance(item, dict) else None

    return {
        "title": value("title"),
        "doc_type": value("document_type"),
        "language": language,
        "doc_date": value("date"),
    }


def embed(ctx: StageContext) -> dict[str, Any]:
    """A vector per chunk from the local model, in batches, each batch written as it is made."""
    saved = ctx.outputs["save"]
    if saved.get("duplicate"):
        return {"skipped": "duplicate"}
    from vigia.workloads.documents import embeddings  # noqa: PLC0415 -- PyTorch: ~10 s to import, once per process

    store_ = _store(ctx)
    chunks = store_.chunks(saved["document_id"])
    try:
        model = embeddings.embedder(_settings(ctx).doc_embedding_model)
    except embeddings.ModelUnavailable as error:
        raise Permanent(str(error)) from None
    written = 0
    for start in range(0, len(chunks), EMBED_WRITE_BATCH):
        ctx.raise_if_cancelled()
        batch = chunks[start : start + EMBED_WRITE_BATCH]

        def progress(done: int, total: int, before: int = start) -> None:
            ctx.progress((before + done) / max(len(chunks), 1), f"embedded {before + done}/{len(chunks)} chunks")

        vectors = model.encode([item.text for item in batch], progress=progress)
        written += store_.set_embeddings(
            saved["document_id"],
            {item.ordinal: embeddings.to_bytes(vector) for item, vector in zip(batch, vectors, strict=True)},
            model.identity,
        )
    return {"chunks": written, "model": model.identity}


def finalise(ctx: StageContext) -> dict[str, Any]:
    """The document's status (indexed, or degraded with what is missing), and the job's result."""
    saved = ctx.outputs["save"]
    document_id = saved["document_id"]
    store_ = _store(ctx)
    document = store_.get(document_id, _tenant(ctx))
    if saved.get("duplicate"):
        return {
            "document_id": document_id,
            "duplicate": True,
            "title": document.title,
            "page_count": document.page_count,
            "status": document.status,
        }
    degraded = [name for name in ("metadata", "embed") if name not in ctx.outputs]
    details = dict(document.details or {})
    details["degraded"] = degraded
    if "embed" in ctx.outputs:
        details["embedding_model"] = ctx.outputs["embed"]["model"]
    status = "degraded" if degraded else "indexed"
    store_.finish(document_id, status=status, details=details)
    extracted = ctx.outputs["extract"]
    confidences = [page["ocr_confidence"] for page in extracted["pages"] if page["ocr_confidence"] is not None]
    return {
        "document_id": document_id,
        "duplicate": False,
        "status": status,
        "title": document.title,
        "document_type": document.doc_type,
        "language": document.language,
        "page_count": document.page_count,
        "methods": extracted["methods"],
        "ocr_confidence": round(sum(confidences) / len(confidences), 1) if confidences else None,
        "chunks": saved.get("chunks", 0),
        "degraded": degraded,
    }


pipeline = Pipeline(
    NAME,
    version="1",
    description="Ingests a PDF or an image: text (OCR where needed), metadata, chunks, embeddings, search.",
    accepts=ACCEPTS,
    validate_input=validate,
    check_file=check_file,
    stages=[
        Stage("store", store, queue=DOCUMENTS_QUEUE, weight=10, timeout=120, severity=Severity.MEDIUM),
        # In a process of its own in embedded mode: rendering and reading pages is CPU work,
        # and a document past its hour is killed rather than left running.
        Stage(
            "extract",
            extract,
            queue=DOCUMENTS_QUEUE,
            weight=10,
            timeout=3600,
            severity=Severity.MEDIUM,
            run_in="process",
        ),
        Stage("clean", clean, queue=DOCUMENTS_QUEUE, weight=10, timeout=300),
        Stage("chunk", chunk, queue=DOCUMENTS_QUEUE, weight=10, timeout=300),
        Stage("metadata", metadata, queue=DOCUMENTS_QUEUE, weight=10, timeout=300, critical=False),
        Stage("save", save, queue=DOCUMENTS_QUEUE, weight=10, timeout=300),
        Stage(
            "embed",
            embed,
            queue=EMBEDDINGS_QUEUE,
            weight=30,
            timeout=3600,
            critical=False,
            severity=Severity.LOW,
            retry=RetryPolicy(max_attempts=2),
        ),
        Stage("finalise", finalise, queue=DOCUMENTS_QUEUE, weight=10, timeout=120),
    ],
)
