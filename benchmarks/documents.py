"""The document workload measured: OCR quality against plain Tesseract, retrieval quality,
throughput against the bare libraries, and search latency over HTTP at 10k and 100k chunks.

    python benchmarks/documents.py [--only quality|retrieval|throughput|latency] [--postgres]

Everything comes from synthetic documents whose text is known (tests/document_corpus.py):
born-digital PDFs (text layer), clean scans (200 dpi, JPEG in a PDF, as office scanners
make them), degraded scans (turned 1.5–4°, blurred, noisy) and phone photos of pages.
Ratios compare figures taken in the same run, on this machine, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pypdfium2 as pdfium
import pytesseract
import sqlalchemy as sa
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests import document_corpus as corpus  # noqa: E402

from vigia import JobState, Settings, Vigia  # noqa: E402
from vigia.store.database import Database  # noqa: E402
from vigia.store.documents import DocumentStore, NewChunk, PageRow  # noqa: E402
from vigia.workloads.documents import embeddings, extraction  # noqa: E402
from vigia.workloads.documents.chunking import chunk  # noqa: E402
from vigia.workloads.documents.cleaning import clean_pages, index_text  # noqa: E402

ADMIN_DB = os.environ.get("VIGIA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WORKERS = os.cpu_count() or 2


def cer(truth: str, read: str) -> float:
    expected, got = " ".join(truth.split()), " ".join(read.split())
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    errors = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return errors / max(len(expected), 1)


def plain_tesseract(image: Image.Image, language: str) -> str:
    """What Tesseract alone reads: --psm 6, the right language, nothing done to the image."""
    model = {"es": "spa", "en": "eng"}[language]
    return str(pytesseract.image_to_string(image.convert("L"), lang=model, config="--psm 6", timeout=300))


def reader() -> extraction.Reader:
    return extraction.Reader(workers=WORKERS, timeout=300)


# --- OCR quality ------------------------------------------------------------------------------


def quality(count: int) -> None:
    docs = corpus.corpus(count, seed=101)
    rng = random.Random(5)
    ours: dict[str, list[float]] = defaultdict(list)
    theirs: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        for index, doc in enumerate(docs):
            digital = folder / f"{doc.key}.pdf"
            digital.write_bytes(corpus.text_pdf(doc, header=None, footer=False))
            for number, page in enumerate(reader().read(digital, "application/pdf").pages, start=1):
                ours["text layer"].append(cer(doc.page_text(number), page.text))
            for number, lines in enumerate(doc.pages, start=1):
                truth = "\n".join(lines)
                clean = corpus.page_image(lines)
                scan = folder / f"{doc.key}-{number}-scan.pdf"
                scan.write_bytes(corpus.image_pdf([clean]))
                [read] = reader().read(scan, "application/pdf", language=doc.language).pages
                ours["clean scan"].append(cer(truth, read.text))
                rendered = _render_first(scan)
                theirs["clean scan"].append(cer(truth, plain_tesseract(rendered, doc.language)))
                for condition, image in (
                    (
                        "degraded scan",
                        corpus.degrade(
                            clean,
                            angle=rng.choice([-1, 1]) * rng.uniform(1.5, 4.0),
                            blur=rng.uniform(0.8, 1.5),
                            noise=rng.uniform(20, 40),
                            seed=index * 10 + number,
                        ),
                    ),
                    ("phone photo", corpus.photographed(clean, seed=index * 10 + number)),
                ):
                    path = folder / f"{doc.key}-{number}-{condition.replace(' ', '-')}.png"
                    path.write_bytes(corpus.png(image))
                    [read] = reader().read(path, "image/png", language=doc.language).pages
                    ours[condition].append(cer(truth, read.text))
                    theirs[condition].append(cer(truth, plain_tesseract(image, doc.language)))
    print(f"\nOCR quality: {count} documents, character error rate (mean over pages; lower is better)")
    print(f"{'condition':<16}{'pages':>7}{'Vigía':>10}{'plain Tesseract':>18}{'Vigía vs plain':>17}")
    for condition in ("text layer", "clean scan", "degraded scan", "phone photo"):
        mine = statistics.fmean(ours[condition])
        if condition in theirs:
            plain = statistics.fmean(theirs[condition])
            change = f"{(mine - plain) / plain:+.0%}" if plain else "-"
            print(f"{condition:<16}{len(ours[condition]):>7}{mine:>10.2%}{plain:>18.2%}{change:>17}")
        else:
            print(f"{condition:<16}{len(ours[condition]):>7}{mine:>10.2%}{'-':>18}{'-':>17}")
    everything = [value for values in ours.values() for value in values]
    print(f"{'overall':<16}{len(everything):>7}{statistics.fmean(everything):>10.2%}")


def _render_first(path: Path) -> Image.Image:
    document = pdfium.PdfDocument(path)
    try:
        page = document[0]
        image: Image.Image = page.render(scale=extraction.OCR_DPI / 72, grayscale=True).to_pil()
        page.close()
        return image
    finally:
        document.close()


# --- retrieval quality ---------------------------------------------------------------------------


async def _ingest(vigia: Vigia, path: Path, media_type: str) -> dict[str, Any]:
    ref = vigia.blobs.put_bytes(path.read_bytes(), media_type, path.name)
    job = await vigia.submit("document_ingest", {"file": ref.to_input()})
    job = await vigia.wait(job.id, timeout=1800)
    if job.state not in (JobState.SUCCEEDED, JobState.DEGRADED):
        raise SystemExit(f"{path.name}: {job.state.value} {job.error_type}: {job.error_message}")
    return dict(job.result or {})


def retrieval(count: int) -> None:
    from vigia.store.documents import DocumentFilter  # noqa: PLC0415 -- only here
    from vigia.workloads.documents.search import Searcher  # noqa: PLC0415 -- only here

    docs = corpus.corpus(count, seed=202)

    async def run(directory: Path) -> dict[str, dict[str, list[int | None]]]:
        vigia = Vigia.from_settings(Settings(data_dir=directory / "data", concurrency=2))
        ranks: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
        async with vigia:
            owner: dict[str, str] = {}
            for index, doc in enumerate(docs):
                path = directory / f"{doc.key}.pdf"
                scanned = index % 4 == 3  # a quarter of the archive is scans
                pages = [corpus.page_image(lines) for lines in doc.pages]
                path.write_bytes(corpus.image_pdf(pages) if scanned else corpus.text_pdf(doc))
                owner[(await _ingest(vigia, path, "application/pdf"))["document_id"]] = doc.key
            searcher = Searcher(vigia.documents, embeddings.embedder)
            for doc in docs:
                for kind, (question, _) in zip(("meaning", "reference", "paraphrase"), doc.questions, strict=True):
                    found = searcher.search(DocumentFilter("default"), question, k=10)
                    keys = [owner[hit.document_id] for hit in found]
                    # A reference number has one right answer; a question about a subject,
                    # every document of that subject (they repeat every 8 per language).
                    right = (
                        {doc.key} if kind == "reference" else {other.key for other in docs if other.title == doc.title}
                    )
                    rank = next((position for position, key in enumerate(keys, start=1) if key in right), None)
                    ranks[doc.language][kind].append(rank)
        return ranks

    with tempfile.TemporaryDirectory() as directory:
        ranks = asyncio.run(run(Path(directory)))
    print(f"\nretrieval: {count} documents (a quarter scanned); per document a question naming its subject,")
    print("its reference number, and a paraphrase sharing few of its words; recall@5 and mean reciprocal rank")
    print("(subjects repeat every 8 documents per language: a question about one is right with any of them)")
    print(f"{'language':<10}{'queries':<12}{'n':>4}{'recall@5':>10}{'MRR':>8}")
    for language in sorted(ranks):
        for kind in ("meaning", "reference", "paraphrase", "all"):
            every = [rank for values in ranks[language].values() for rank in values]
            found = ranks[language][kind] if kind != "all" else every
            recall = sum(1 for rank in found if rank is not None and rank <= 5) / len(found)
            mrr = statistics.fmean(1 / rank if rank else 0.0 for rank in found)
            print(f"{language:<10}{kind:<12}{len(found):>4}{recall:>10.3f}{mrr:>8.3f}")


# --- throughput -----------------------------------------------------------------------------------


#: Rounds of the throughput comparison: each side's median is compared (a shared machine's
#: load comes and goes; one round of each side can differ from the next by 2x).
ROUNDS = 3


def throughput(rounds: int = ROUNDS) -> None:
    rng = random.Random(9)
    scanned_doc = corpus.spanish(3, rng, pages=1)
    scanned_doc.pages = [corpus.spanish(i, rng).pages[0] for i in range(8)]
    digital_doc = corpus.english(1, rng, pages=1)
    digital_doc.pages = [corpus.english(i, rng).pages[0] for i in range(40)]
    # Read by the worker before the document measured: a worker's first document pays for
    # what its process loads once (PyTorch and the model, the language detector), which the
    # bare libraries measured afterwards in this process find loaded.
    others = random.Random(10)
    warm_scan, warm_text = corpus.spanish(5, others), corpus.english(6, others)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        scanned = folder / "scanned.pdf"
        scanned.write_bytes(corpus.image_pdf([corpus.page_image(lines) for lines in scanned_doc.pages]))
        digital = folder / "digital.pdf"
        digital.write_bytes(corpus.text_pdf(digital_doc))
        (folder / "warm-scan.pdf").write_bytes(corpus.image_pdf([corpus.page_image(warm_scan.pages[0])]))
        (folder / "warm-text.pdf").write_bytes(corpus.text_pdf(warm_text))

        # OCR: whole jobs through the pipeline, then Tesseract alone on the same renders,
        # as many pages at once as the pipeline reads (one per core); the two in turn.
        renders = [_render(scanned, index) for index in range(len(scanned_doc.pages))]
        jobs, bares = [], []
        for number in range(rounds):
            jobs.append(_job_seconds(folder / f"ocr-run-{number}", scanned, folder / "warm-scan.pdf", language="es"))
            began = time.perf_counter()
            with ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(bare_tesseract, renders))
            bares.append(time.perf_counter() - began)
        seconds, bare = statistics.median(jobs), statistics.median(bares)
        pages = len(scanned_doc.pages)
        print(f"\nthroughput ({WORKERS} cores; medians of {rounds} rounds, each round's ratio in brackets)")
        print(f"OCR: {pages} scanned pages, pipeline {pages / seconds:.2f} pages/s (whole jobs), Tesseract alone"
              f" {pages / bare:.2f} pages/s, ratio {bare / seconds:.2f}x {_ratios(bares, jobs)}")  # fmt: skip

        # Born-digital: whole jobs (extraction, chunks, embeddings) against PDFium's text and
        # the model's encode of the same chunks.
        jobs, bares = [], []
        for number in range(rounds):
            job, result = _job_seconds(folder / f"digital-run-{number}", digital, folder / "warm-text.pdf", result=True)
            jobs.append(job)
            model = embeddings.embedder()
            began = time.perf_counter()
            document = pdfium.PdfDocument(digital)
            texts = [document[index].get_textpage().get_text_range() for index in range(len(document))]
            document.close()
            chunks = chunk(clean_pages(texts))
            model.encode([item.text for item in chunks])
            bares.append(time.perf_counter() - began)
        seconds, bare = statistics.median(jobs), statistics.median(bares)
        pages = len(digital_doc.pages)
        print(f"born-digital: {pages} pages, {result['chunks']} chunks; pipeline {pages / seconds:.1f} pages/s,"
              f" {result['chunks'] / seconds:.1f} chunks embedded/s; bare libraries {pages / bare:.1f} pages/s,"
              f" {len(chunks) / bare:.1f} chunks/s; ratio {bare / seconds:.2f}x {_ratios(bares, jobs)}")  # fmt: skip


def _ratios(bares: list[float], jobs: list[float]) -> str:
    return "[" + ", ".join(f"{bare / job:.2f}" for bare, job in zip(bares, jobs, strict=True)) + "]"


def bare_tesseract(image: Image.Image) -> str:
    """Tesseract alone on a page as the pipeline runs it: --psm 6, Spanish, one thread
    (``OMP_THREAD_LIMIT=1``, as the pipeline gives its Tesseract), the page piped in as a
    PNG, nothing done to it."""
    encoded = io.BytesIO()
    image.save(encoded, format="PNG", compress_level=1)
    done = subprocess.run(
        ["tesseract", "stdin", "stdout", "-l", "spa", "--psm", "6"],
        input=encoded.getvalue(),
        capture_output=True,
        timeout=300,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        check=True,
    )
    return done.stdout.decode()


def _render(path: Path, index: int) -> Image.Image:
    document = pdfium.PdfDocument(path)
    try:
        page = document[index]
        image: Image.Image = page.render(scale=extraction.OCR_DPI / 72, grayscale=True).to_pil()
        page.close()
        return image
    finally:
        document.close()


def _job_seconds(
    directory: Path, path: Path, warm_up: Path, *, language: str | None = None, result: bool = False
) -> Any:
    """Seconds the job reading ``path`` takes in a worker that has read ``warm_up`` first."""

    async def run() -> tuple[float, dict[str, Any]]:
        vigia = Vigia.from_settings(Settings(data_dir=directory, concurrency=2, poll_interval=0.05))
        async with vigia:
            await _ingest(vigia, warm_up, "application/pdf")
            ref = vigia.blobs.put_bytes(path.read_bytes(), "application/pdf", path.name)
            began = time.perf_counter()
            job = await vigia.submit(
                "document_ingest", {"file": ref.to_input(), **({"language": language} if language else {})}
            )
            job = await vigia.wait(job.id, timeout=3600)
            seconds = time.perf_counter() - began
            assert job.state is JobState.SUCCEEDED, (job.state, job.error_message)
            return seconds, dict(job.result or {})

    seconds, found = asyncio.run(run())
    return (seconds, found) if result else seconds


# --- search latency over HTTP -----------------------------------------------------------------------


SYLLABLES = [consonant + vowel for consonant in "bcdfglmnprstvz" for vowel in "aeiou"] + ["tra", "pre", "con", "des"]


class Vocabulary:
    """Words as an archive has them: function words everywhere, content words Zipf-distributed
    over a large vocabulary (a few common, most rare), so that a keyword query matches about
    what it would in a real archive rather than every chunk."""

    def __init__(self, size: int = 20_000, seed: int = 1) -> None:
        rng = random.Random(seed)
        text = " ".join(corpus.FILLER_ES + corpus.FILLER_EN)
        real = sorted({word.strip(".,;:¿?").lower() for word in text.split()})
        self.function = [word for word in real if len(word) <= 3]
        invented = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(size)}
        self.content = [word for word in real if len(word) > 3] + sorted(invented)
        weights = np.array([1 / (rank + 1) for rank in range(len(self.content))])
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def text(self, words: int) -> str:
        out = []
        for index in self.rng.choice(len(self.content), size=words, p=self.weights):
            if self.rng.random() < 0.4:
                out.append(self.function[int(self.rng.integers(len(self.function)))])
            out.append(self.content[int(index)])
        return " ".join(out)

    def query(self) -> str:
        picked = self.rng.choice(len(self.content), size=int(self.rng.integers(2, 6)), p=self.weights)
        return " ".join(self.content[int(index)] for index in picked)


def fill(url: str, chunks: int) -> None:
    """A tenant with ``chunks`` chunks (about 1,000 characters each) in documents of 50, and
    random unit vectors (a search's cost does not depend on what the vectors mean)."""
    rng = np.random.default_rng(1)
    vocabulary = Vocabulary()
    database = Database(url)
    database.upgrade()
    store = DocumentStore(database)
    per_document = 50
    for number in range(chunks // per_document):
        pieces = [vocabulary.text(110) for _ in range(per_document)]
        rows = [NewChunk(index, 1, 1, 0, len(piece), piece, index_text(piece)) for index, piece in enumerate(pieces)]
        document_id = store.save(
            tenant="default",
            sha256=secrets.token_hex(32),
            job_id=None,
            media_type="application/pdf",
            size=1000,
            fields={"title": f"filler {number}", "doc_type": "informe", "language": "es"},
            details={},
            pages=[PageRow(1, "text_layer", None, None, " ".join(pieces))],
            chunks=rows,
            status="indexed",
        )
        vectors = rng.normal(size=(per_document, embeddings.DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.set_embeddings(document_id, {i: embeddings.to_bytes(v) for i, v in enumerate(vectors)}, "random")
    if database.engine.dialect.name == "postgresql":  # as autovacuum does within a minute of such a load
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    database.close()


def latency(postgres: bool, sizes: tuple[int, ...], queries: int, runs: int = 1) -> None:
    """Each run a fresh server on the same filled store (the first search of each loads the
    model and the vectors, and is not counted); queries differ within a run, repeat across
    runs. On a shared machine runs differ: each is printed."""
    print("\nsearch over HTTP (`vigia serve`, one client, query embedding included):")
    print(f"{'store':<12}{'chunks':>9}{'run':>5}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for backend in ("sqlite", "postgres") if postgres else ("sqlite",):
        for size in sizes:
            with tempfile.TemporaryDirectory() as directory:
                folder = Path(directory)
                url, drop = _database(backend, folder)
                try:
                    fill(url, size)
                    for run in range(1, runs + 1):
                        timings = sorted(_serve_and_search(url, folder, queries))
                        p50, p90 = timings[len(timings) // 2], timings[int(len(timings) * 0.9) - 1]
                        p99 = timings[int(len(timings) * 0.99) - 1]
                        print(f"{backend:<12}{size:>9,}{run:>5}{p50:>9.1f}{p90:>9.1f}{p99:>9.1f}{timings[-1]:>9.1f}")
                finally:
                    drop()


def _database(backend: str, folder: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'vigia.db'}", lambda: None
    name = f"vigia_docs_{secrets.token_hex(4)}"
    admin = sa.create_engine(ADMIN_DB.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()

    return ADMIN_DB.rsplit("/", 1)[0] + f"/{name}", drop


def _serve_and_search(url: str, folder: Path, queries: int) -> list[float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VIGIA_DATABASE_URL": url, "VIGIA_DATA_DIR": str(folder)}
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "vigia.cli", "serve", "--port", str(port), "--no-workers"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        key_file = folder / "admin.key"
        deadline = time.monotonic() + 60
        while not key_file.exists() or not _up(base):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit((folder / "serve.log").read_text())
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        vocabulary = Vocabulary(seed=1)
        phrases = [vocabulary.query() for _ in range(queries)]
        timings = []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            client.get("/documents/search", params={"q": "warm up"}).raise_for_status()  # loads the model
            for _ in range(20):
                client.get("/documents/search", params={"q": phrases[0]})
            for phrase in phrases:
                began = time.perf_counter()
                response = client.get("/documents/search", params={"q": phrase})
                timings.append(1000 * (time.perf_counter() - began))
                response.raise_for_status()
                if response.json()["vector_search"] != "ok":
                    raise SystemExit(response.json())
        return timings
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=["quality", "retrieval", "throughput", "latency"])
    parser.add_argument("--documents", type=int, default=12, help="documents of the quality evaluation")
    parser.add_argument("--retrieval-documents", type=int, default=24)
    parser.add_argument("--postgres", action="store_true", help="measure search latency on PostgreSQL too")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=1, help="search runs (servers) per filled store")
    arguments = parser.parse_args()
    chosen = set(arguments.only or ["quality", "retrieval", "throughput", "latency"])
    if "quality" in chosen:
        quality(arguments.documents)
    if "retrieval" in chosen:
        retrieval(arguments.retrieval_documents)
    if "throughput" in chosen:
        throughput()
    if "latency" in chosen:
        sizes = tuple(int(size) for size in arguments.sizes.split(","))
        latency(arguments.postgres, sizes, arguments.queries, arguments.runs)


if __name__ == "__main__":
    main()
