"""The document workload end to end in embedded mode: real PDFs and images made here, real
Tesseract, the real embedding model, through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from tests import document_corpus as corpus
from tests.harness import API, TERMINAL, Harness, assert_error, harness
from vigia.store import documents as document_store
from vigia.store import schema
from vigia.store.database import Database
from vigia.workloads import decoding
from vigia.workloads.documents import embeddings, extraction, ocr

pytestmark = pytest.mark.timeout(600)


def cer(truth: str, read: str) -> float:
    """Character error rate, whitespace-insensitive (lines may wrap differently)."""
    expected, got = " ".join(truth.split()), " ".join(read.split())
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    errors = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return errors / max(len(expected), 1)


@pytest.fixture(scope="module")
def docs() -> list[corpus.Doc]:
    if not ocr.available_models() >= {"spa", "eng"}:
        pytest.fail("Tesseract with the spa and eng models is needed (Debian: tesseract-ocr-spa, tesseract-ocr-eng)")
    return corpus.corpus(8, seed=3)


@pytest.fixture(scope="module")
def files(docs: list[corpus.Doc], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("documents")
    spanish, english = docs[0], docs[1]
    made = {
        "digital_es.pdf": corpus.text_pdf(spanish),
        "digital_en.pdf": corpus.text_pdf(english),
        "scanned_es.pdf": corpus.image_pdf([corpus.page_image(lines) for lines in spanish.pages]),
        "hidden_layer.pdf": corpus.image_pdf(
            [corpus.page_image(english.pages[0])], invisible_text=["garbled hidden words from another OCR"]
        ),
        "mixed.pdf": corpus.mixed_pdf(docs[2]),  # two pages
        "degraded_es.png": corpus.png(
            corpus.degrade(corpus.page_image(spanish.pages[0]), angle=3.0, blur=1.0, noise=30, seed=1)
        ),
        "photo_en.jpg": corpus.jpeg(corpus.photographed(corpus.page_image(english.pages[0]), seed=2)),
        "encrypted.pdf": corpus.encrypted_pdf(corpus.text_pdf(spanish)),
        "empty.pdf": corpus.empty_pdf(),
        "corrupt.pdf": b"%PDF-1.7\n" + b"\x00garbage" * 200,
        "notpng.png": b"\x89PNG\r\n\x1a\n" + b"not an image at all" * 10,
    }
    paths = {}
    for name, data in made.items():
        paths[name] = directory / name
        paths[name].write_bytes(data)
    return paths


def read(path: Path, media_type: str, *, language: str | None = None, timeout: float = 120) -> extraction.Extraction:
    return extraction.Reader(workers=2, timeout=timeout).read(path, media_type, language=language)


# --- extraction -------------------------------------------------------------------------------


def test_a_born_digital_pdf_is_read_from_its_text_layer_exactly(docs: list[corpus.Doc], files: dict[str, Path]) -> None:
    found = read(files["digital_es.pdf"], "application/pdf")
    assert [page.method for page in found.pages] == ["text_layer"] * len(docs[0].pages)
    assert found.language == "es"
    for number, page in enumerate(found.pages, start=1):
        lines = [line.strip() for line in page.text.splitlines()]
        truth = docs[0].pages[number - 1]
        # Every line drawn, exactly, in order (the running header and footer around them).
        start = lines.index(truth[0])
        assert lines[start : start + len(truth)] == truth


def test_a_scanned_pdf_is_ocrd_in_its_language_with_a_confidence(
    docs: list[corpus.Doc], files: dict[str, Path]
) -> None:
    found = read(files["scanned_es.pdf"], "application/pdf")
    assert found.language == "es"
    assert found.language_source == "ocr"
    for number, page in enumerate(found.pages, start=1):
        assert page.method == "ocr"
        assert page.ocr_confidence is not None and page.ocr_confidence > 80
        assert page.reason == "no text layer"
        assert cer(docs[0].page_text(number), page.text) < 0.01


def test_a_scan_under_an_invisible_text_layer_is_ocrd_again(docs: list[corpus.Doc], files: dict[str, Path]) -> None:
    [page] = read(files["hidden_layer.pdf"], "application/pdf").pages
    assert page.method == "ocr"
    assert "invisible" in (page.reason or "")
    assert "garbled hidden words" not in page.text
    assert cer(docs[1].page_text(1), page.text) < 0.02


def test_a_mixed_pdf_uses_the_text_layer_where_good_and_ocr_elsewhere(files: dict[str, Path]) -> None:
    found = read(files["mixed.pdf"], "application/pdf")
    assert [page.method for page in found.pages][:2] == ["text_layer", "ocr"]
    assert found.pages[0].ocr_confidence is None
    assert found.pages[1].ocr_confidence is not None


def test_a_degraded_scan_reads_better_prepared_than_raw(docs: list[corpus.Doc], files: dict[str, Path]) -> None:
    from PIL import Image  # noqa: PLC0415 -- with the extra

    truth = docs[0].page_text(1)
    [page] = read(files["degraded_es.png"], "image/png", language="es").pages
    with Image.open(files["degraded_es.png"]) as raw:
        plain = ocr.tesseract(raw.convert("L"), "spa", timeout=120)
    ours, theirs = cer(truth, page.text), cer(truth, plain.text)
    assert ours < theirs, (ours, theirs)
    assert any("deskewed" in step for step in page.steps), page.steps


def test_a_phone_photo_of_a_page_is_read(docs: list[corpus.Doc], files: dict[str, Path]) -> None:
    found = read(files["photo_en.jpg"], "image/jpeg")
    assert found.language == "en"
    assert cer(docs[1].page_text(1), found.pages[0].text) < 0.05


def test_a_page_that_takes_too_long_fails_alone_with_its_reason(files: dict[str, Path]) -> None:
    found = read(files["scanned_es.pdf"], "application/pdf", language="es", timeout=0.05)
    assert {page.method for page in found.pages} == {"failed"}
    assert "did not finish the page within 0.05 s" in (found.pages[0].reason or "")


def test_poster_sized_pages_are_read_within_the_decode_budget(tmp_path: Path) -> None:
    # Eight 60-inch pages: each renders to 40 megapixels (the cap), and four readers would
    # otherwise hold eight of them at once (320 megapixels, 664 MB above the start here).
    import pypdfium2 as pdfium  # noqa: PLC0415 -- with the documents extra

    poster = pdfium.PdfDocument.new()
    for _ in range(8):
        poster.new_page(72 * 60, 72 * 60)
    path = tmp_path / "posters.pdf"
    poster.save(str(path))
    budget = decoding.DecodeBudget(80_000_000)
    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    finished = threading.Event()

    def measure() -> None:
        nonlocal peak
        while not finished.wait(0.01):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=measure)
    sampler.start()
    try:
        found = extraction.Reader(workers=4, timeout=120, budget=budget).read(path, extraction.PDF, language="en")
    finally:
        finished.set()
        sampler.join()
    rise = (peak - start) / 2**20
    print(
        f"8 pages of 40 megapixels, 4 readers: {budget.peak / 1e6:.1f} megapixels held at most, RSS rise {rise:.0f} MB"
    )
    assert [page.method for page in found.pages] == ["empty"] * 8
    assert extraction.MAX_RENDER_PIXELS * 1.5 < budget.peak <= budget.pixels  # two at once, never three
    assert budget.held == 0  # every page's pixels given back
    assert rise < 500, f"memory rose by {rise:.0f} MB"


def test_the_frames_of_an_image_wait_for_the_budget_and_give_it_back_when_a_page_fails(tmp_path: Path) -> None:
    from PIL import Image  # noqa: PLC0415

    frames = [Image.new("L", (1200, 1000), 255) for _ in range(3)]
    path = tmp_path / "frames.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    budget = decoding.DecodeBudget(1_500_000)  # one frame at a time
    found = extraction.Reader(workers=2, timeout=0.001, budget=budget).read(path, "image/tiff", language="es")
    assert [page.method for page in found.pages] == ["failed"] * 3
    assert budget.peak == 1_200_000 and budget.held == 0
    with pytest.raises(decoding.OverBudget, match="page 1 decodes to 1 megapixels"):
        extraction.Reader(workers=2, timeout=120, budget=decoding.DecodeBudget(1_000_000)).read(
            path, "image/tiff", language="es"
        )


def test_an_engine_reads_page_after_page_as_tesseract_alone_does(docs: list[corpus.Doc]) -> None:
    from vigia.workloads.documents import preprocess  # noqa: PLC0415 -- OpenCV, with the extra

    pages = [preprocess.prepare(corpus.page_image(lines)).image for lines in docs[0].pages[:2]]
    with ocr.Engines() as engines, engines.engine("spa") as engine:
        for page in [*pages, *pages]:  # the same page again reads the same
            assert ocr.tesseract(page, "spa", timeout=120, engine=engine) == ocr.tesseract(page, "spa", timeout=120)


def test_an_engine_whose_tesseract_died_starts_another(docs: list[corpus.Doc]) -> None:
    page = corpus.page_image(docs[0].pages[0]).convert("1")
    with ocr.Engines() as engines, engines.engine("spa") as engine:
        first = ocr.tesseract(page, "spa", timeout=120, engine=engine)
        engine.close()  # as when a page overran its time limit
        assert ocr.tesseract(page, "spa", timeout=120, engine=engine) == first


@pytest.mark.parametrize(
    ("name", "problem"),
    [("encrypted.pdf", "encrypted"), ("empty.pdf", "no pages"), ("corrupt.pdf", "damaged or not a PDF")],
)
def test_pdfs_that_cannot_be_read_are_refused_with_why(files: dict[str, Path], name: str, problem: str) -> None:
    with pytest.raises(extraction.DocumentRefused, match=problem):
        extraction.check_pdf(files[name], max_pages=100)


def test_a_pdf_over_the_page_limit_is_too_large(files: dict[str, Path]) -> None:
    with pytest.raises(extraction.PayloadTooLarge, match="at most 1 are accepted"):
        extraction.check_pdf(files["mixed.pdf"], max_pages=1)


# --- the pipeline through the API -------------------------------------------------------------


@pytest.fixture
def documents_api(store_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(store_url, tmp_path, max_upload_bytes=20 * 1024 * 1024, doc_max_pages=5) as running:
        yield running


def upload(api: Harness, path: Path, who: str = "submitter", **fields: Any) -> Any:
    with path.open("rb") as handle:
        return api.client.post(
            f"{API}/pipelines/document_ingest/jobs",
            files={"file": (path.name, handle, "application/octet-stream")},
            data={"input": json.dumps(fields)} if fields else {},
            headers=api.headers(who),
        )


def ingest(api: Harness, path: Path, who: str = "submitter", **fields: Any) -> dict[str, Any]:
    response = upload(api, path, who, **fields)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 300
    while (job := api.job(job_id, who))["state"] not in TERMINAL:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["state"] in ("succeeded", "degraded"), job
    result = api.client.get(f"{API}/jobs/{job['id']}/result", headers=api.headers(who))
    assert result.status_code == 200, result.text
    return dict(result.json()["result"])


def search(api: Harness, query: str, who: str = "submitter", **filters: Any) -> list[dict[str, Any]]:
    response = api.client.get(f"{API}/documents/search", params={"q": query, **filters}, headers=api.headers(who))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["vector_search"] == "ok", body
    return list(body["results"])


def test_documents_are_ingested_found_by_meaning_and_by_number_deduplicated_and_deleted(
    documents_api: Harness, docs: list[corpus.Doc], files: dict[str, Path]
) -> None:
    api = documents_api
    spanish = ingest(api, files["digital_es.pdf"])
    english = ingest(api, files["digital_en.pdf"])
    assert spanish["status"] == "indexed" and spanish["degraded"] == []
    assert spanish["methods"] == {"text_layer": len(docs[0].pages)}
    assert spanish["language"] == "es" and english["language"] == "en"

    detail = api.client.get(f"{API}/documents/{spanish['document_id']}", headers=api.headers()).json()
    assert detail["document_type"] == docs[0].kind or detail["document_type"].startswith(docs[0].kind)
    assert detail["date"] == docs[0].date
    assert detail["chunks"] >= 1 and detail["chunks_embedded"] == detail["chunks"]
    # The client's file name is shown from the job; the document and its stages hold none.
    assert detail["filename"] == files["digital_es.pdf"].name
    assert api.vigia.documents.get(spanish["document_id"], None).filename == files["digital_es.pdf"].name
    with api.vigia.database.reading() as connection:
        stored = connection.execute(sa.select(schema.documents.c.filename)).scalars().all()
    assert set(stored) == {None}
    outputs = json.dumps([run.output for run in api.vigia.store.get_runs(detail["job_id"])])
    assert files["digital_es.pdf"].name not in outputs
    assert [page["method"] for page in detail["pages"]] == ["text_layer"] * len(docs[0].pages)
    chunks = api.client.get(f"{API}/documents/{spanish['document_id']}/chunks", headers=api.headers("viewer")).json()
    assert chunks["total"] == detail["chunks"] == len(chunks["chunks"])
    assert [chunk["ordinal"] for chunk in chunks["chunks"]] == sorted(chunk["ordinal"] for chunk in chunks["chunks"])
    assert all(1 <= chunk["page_start"] <= chunk["page_end"] <= len(docs[0].pages) for chunk in chunks["chunks"])
    assert any(docs[0].references[0] in chunk["text"] for chunk in chunks["chunks"])
    second = api.client.get(
        f"{API}/documents/{spanish['document_id']}/chunks", params={"offset": 1, "limit": 1}, headers=api.headers()
    ).json()
    assert second["chunks"] == chunks["chunks"][1:2] and second["total"] == chunks["total"]
    reference = detail["metadata"]["references"][0]
    assert reference["number"] == docs[0].references[0]
    assert reference["source"]["page"] == 1

    # By meaning, in Spanish, and by the exact reference number.
    question, _ = docs[0].questions[0]
    assert search(api, question)[0]["document_id"] == spanish["document_id"]
    by_number = search(api, docs[0].references[0])
    assert by_number[0]["document_id"] == spanish["document_id"]
    assert by_number[0]["keyword_score"] is not None
    assert "<mark>" in by_number[0]["snippet"]
    english_question, _ = docs[1].questions[0]
    assert search(api, english_question)[0]["document_id"] == english["document_id"]
    assert search(api, english_question, lang="es")[0]["document_id"] == spanish["document_id"]

    # The same file again is the same document.
    again = ingest(api, files["digital_es.pdf"])
    assert again == {**again, "document_id": spanish["document_id"], "duplicate": True}
    listed = api.client.get(f"{API}/documents", headers=api.headers()).json()["documents"]
    assert sorted(item["id"] for item in listed) == sorted([spanish["document_id"], english["document_id"]])

    file = api.client.get(f"{API}/documents/{spanish['document_id']}/file", headers=api.headers())
    assert file.status_code == 200 and file.content == files["digital_es.pdf"].read_bytes()

    # Deleting is for admins; it takes the chunks, the vectors and the file.
    assert_error(api.client.delete(f"{API}/documents/{spanish['document_id']}", headers=api.headers()), 403)
    deleted = api.client.delete(f"{API}/documents/{spanish['document_id']}", headers=api.headers("admin"))
    assert deleted.status_code == 204, deleted.text
    assert_error(api.client.get(f"{API}/documents/{spanish['document_id']}", headers=api.headers()), 404)
    assert all(result["document_id"] != spanish["document_id"] for result in search(api, docs[0].references[0]))
    assert api.client.get(f"{API}/documents/{spanish['document_id']}/file", headers=api.headers()).status_code == 404
    audited = [entry.action for entry in api.vigia.oversight.audit_entries()]
    assert "document.deleted" in audited


def test_another_tenant_sees_and_finds_none_of_the_documents(
    documents_api: Harness, docs: list[corpus.Doc], files: dict[str, Path]
) -> None:
    api = documents_api
    mine = ingest(api, files["digital_en.pdf"])
    other = api.client.get(f"{API}/documents/{mine['document_id']}", headers=api.headers("other"))
    assert_error(other, 404, "document_not_found")
    chunks = api.client.get(f"{API}/documents/{mine['document_id']}/chunks", headers=api.headers("other"))
    assert_error(chunks, 404, "document_not_found")
    assert api.client.get(f"{API}/documents", headers=api.headers("other")).json()["documents"] == []
    assert search(api, docs[1].references[0], who="other") == []
    # The other tenant's own copy of the same file is its own document.
    theirs = ingest(api, files["digital_en.pdf"], who="other")
    assert theirs["duplicate"] is False and theirs["document_id"] != mine["document_id"]


@pytest.mark.parametrize(
    ("name", "status", "mention"),
    [
        ("encrypted.pdf", 422, "encrypted"),
        ("empty.pdf", 422, "no pages"),
        ("corrupt.pdf", 422, "damaged"),
        ("notpng.png", 422, "cannot be read"),
        ("mixed.pdf", 200, ""),
    ],
)
def test_files_that_cannot_be_ingested_are_refused_at_submission(
    documents_api: Harness, files: dict[str, Path], name: str, status: int, mention: str
) -> None:
    response = upload(documents_api, files[name])
    if status == 200:
        assert response.status_code == 202, response.text
        return
    error = assert_error(response, status)
    assert mention in error["message"]


def test_a_document_over_the_page_limit_is_413_and_bad_inputs_are_422(
    sqlite_url: str, tmp_path: Path, files: dict[str, Path]
) -> None:
    with harness(sqlite_url, tmp_path, max_upload_bytes=20 * 1024 * 1024, doc_max_pages=1) as api:
        assert_error(upload(api, files["mixed.pdf"]), 413)
        assert "language" in assert_error(upload(api, files["digital_es.pdf"], language="fr"), 422)["message"]
        assert_error(upload(api, files["digital_es.pdf"], colour="blue"), 422)
        jobs = api.client.get(f"{API}/jobs", headers=api.headers()).json()["jobs"]
        assert jobs == []  # nothing was stored


def test_a_document_whose_embeddings_fail_is_degraded_and_found_by_keywords(
    sqlite_url: str, tmp_path: Path, docs: list[corpus.Doc], files: dict[str, Path]
) -> None:
    """The configured embedding model is a directory with no model in it: the embedding
    stage fails (non-critical), the document is saved degraded, keyword search finds it."""
    broken = tmp_path / "no-model"
    broken.mkdir()
    with harness(sqlite_url, tmp_path, max_upload_bytes=20 * 1024 * 1024, doc_embedding_model=broken) as api:
        result = ingest(api, files["digital_es.pdf"])
        assert result["status"] == "degraded"
        assert result["degraded"] == ["embed"]
        runs = {run["stage"]: run for run in api.job(result_job(api, result))["stages"]}
        assert runs["embed"]["state"] == "failed"
        assert "no-model" in (runs["embed"]["error_message"] or "")
        response = api.client.get(f"{API}/documents/search", params={"q": docs[0].references[0]}, headers=api.headers())
        body = response.json()
        assert body["vector_search"].startswith("the embedding model is not available")
        assert body["results"] and body["results"][0]["document_id"] == result["document_id"]
        assert body["results"][0]["vector_score"] is None


def result_job(api: Harness, result: dict[str, Any]) -> str:
    detail = api.client.get(f"{API}/documents/{result['document_id']}", headers=api.headers()).json()
    return str(detail["job_id"])


def test_reindex_re_embeds_what_another_model_made(sqlite_url: str, tmp_path: Path, files: dict[str, Path]) -> None:
    """Vectors recorded as made by an older model are made again by `vigia docs reindex`."""
    with harness(sqlite_url, tmp_path, max_upload_bytes=20 * 1024 * 1024) as api:
        result = ingest(api, files["digital_en.pdf"])
        engine = api.vigia.database.engine
        with engine.begin() as connection:  # as an older installation would have left them
            connection.execute(sa.text("UPDATE vigia_document_chunks SET embedding_model = 'old-model'"))
        env = {"VIGIA_DATABASE_URL": sqlite_url, "VIGIA_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
        command = [sys.executable, "-m", "vigia.cli", "docs", "reindex"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert "re-embedded 1 document(s)" in done.stdout
        with engine.connect() as connection:
            models = set(
                connection.execute(sa.text("SELECT DISTINCT embedding_model FROM vigia_document_chunks")).scalars()
            )
        assert models == {embeddings_identity()}
        found = search(api, "intravenous antibiotics", lang="en")
        assert found[0]["document_id"] == result["document_id"]


def embeddings_identity() -> str:
    return embeddings.embedder().identity


def test_a_keyword_search_past_its_budget_keeps_to_the_tenant_the_filters_and_the_rare_words(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Words in more chunks than a search ranks (`KEYWORD_BUDGET`, made small here): the
    newest chunks are ranked, another tenant's newer chunks are not taken for them, filters
    hold, and a rare word still finds its chunk first."""
    database = Database(store_url)
    database.upgrade()
    store = document_store.DocumentStore(database)
    owners: dict[str, tuple[str, str]] = {}  # chunk text's number -> (tenant, type)
    for tenant in ("mine", "theirs"):  # theirs second: their chunks are the newest
        for number in range(4):
            kind = "informe" if number % 2 else "oficio"
            texts = [f"comun frecuente palabra {tenant} {number} n{number}x{index}" for index in range(10)]
            if tenant == "mine" and number == 0:
                texts[3] += " singularisimo"
            store.save(
                tenant=tenant, sha256=f"{tenant}{number}".ljust(64, "0"), job_id=None,
                media_type="application/pdf", size=1, fields={"doc_type": kind}, details={},
                pages=[document_store.PageRow(1, "text_layer", None, None, " ".join(texts))],
                chunks=[document_store.NewChunk(i, 1, 1, 0, len(t), t, t) for i, t in enumerate(texts)],
                status="indexed",
            )  # fmt: skip
            for index in range(10):
                owners[f"n{number}x{index}:{tenant}"] = (tenant, kind)
    monkeypatch.setattr(document_store, "KEYWORD_BUDGET", 8)
    monkeypatch.setattr(document_store, "KEYWORD_BUDGET_POSTGRES", 8)
    if store.dialect == "postgresql":  # its chunk counts are the planner's estimates
        with database.engine.begin() as connection:
            connection.execute(sa.text("ANALYZE vigia_document_chunks"))

    def found(where: document_store.DocumentFilter, *words: str) -> list[tuple[str, str]]:
        ranked = store.keyword_search(where, [[word] for word in words], 15)
        chunks = store.chunks_by_id(chunk_id for chunk_id, _ in ranked)
        return [
            owners[f"{chunks[chunk_id].text.split()[5]}:{chunks[chunk_id].text.split()[3]}"] for chunk_id, _ in ranked
        ]

    common = found(document_store.DocumentFilter("mine"), "comun", "frecuente")
    assert len(common) == 15 and {tenant for tenant, _ in common} == {"mine"}
    typed = found(document_store.DocumentFilter("mine", doc_type="informe"), "comun", "frecuente")
    assert len(typed) == 15 and set(typed) == {("mine", "informe")}
    ranked = store.keyword_search(document_store.DocumentFilter("mine"), [["singularisimo"], ["comun"]], 15)
    first = store.chunks_by_id([ranked[0][0]])[ranked[0][0]]
    assert "singularisimo" in first.text and len(ranked) == 15
    assert store.keyword_search(document_store.DocumentFilter("theirs"), [["singularisimo"]], 15) == []
    database.close()
