"""A corpus of malformed files, made here, sent to both workloads that take files: each is
answered with a clear 4xx at submission (or, where only decoding can tell, a stage failure
with a clear message), nothing half-stored, and the process's memory bounded throughout."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import psutil
import pytest
from PIL import Image

from tests.harness import API, Harness, harness
from vigia.workloads.documents.embeddings import embedder
from vigia.workloads.pressure_injury import samples

pytestmark = pytest.mark.timeout(300)

LIMIT = 2_000_000
CASE = '{"patient_code": "PT-1", "braden": {"sensory_perception": 3, "moisture": 3, "activity": 3, "mobility": 3, "nutrition": 3, "friction_shear": 2}}'  # noqa: E501


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    real = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 80, 70)).save(real, "JPEG")
    data = bytearray(real.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)  # the frame header's size
    return bytes(data)


def pdf_claiming_pages(count: int) -> bytes:
    kids = " ".join(f"{3 + n} 0 R" for n in range(count))
    objects = [
        b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj",
        f"2 0 obj<</Type/Pages/Kids[{kids}]/Count {count}>>endobj".encode(),
    ]
    objects += [f"{3 + n} 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj".encode() for n in range(count)]
    return b"%PDF-1.4\n" + b"\n".join(objects) + b"\ntrailer<</Root 1 0 R>>\n%%EOF"


def corpus() -> list[tuple[str, str, bytes]]:
    photo = samples.photo("erythema.jpg")
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(png, "PNG")
    pdf = pdf_claiming_pages(1)
    return [
        ("zero bytes", "empty.jpg", b""),
        ("over the size limit", "big.jpg", photo + b"\0" * LIMIT),
        ("truncated JPEG", "cut.jpg", photo[: len(photo) // 3]),
        ("truncated PNG", "cut.png", png.getvalue()[:40]),
        ("truncated PDF", "cut.pdf", pdf[: len(pdf) // 2]),
        ("PNG bomb (60,000² in its header)", "bomb.png", png_header(60_000, 60_000)),
        ("JPEG claiming 30,000²", "bomb.jpg", jpeg_claiming(30_000, 30_000)),
        ("PDF claiming 10,000 pages", "pages.pdf", pdf_claiming_pages(10_000)),
        ("a PDF named .jpg", "photo.jpg", pdf),
        ("text named .png", "photo.png", b"hello, this is not an image at all" * 10),
        ("a polyglot: JPEG bytes after a PDF header", "poly.pdf", b"%PDF-1.4\n" + photo),
    ]


#: Files whose bytes are good for a pipeline whatever their name says: read by content.
GOOD_FOR = {"a PDF named .jpg": {"document_ingest"}}


@pytest.mark.parametrize("pipeline", ["pressure_injury_case", "document_ingest"])
def test_every_malformed_file_is_refused_clearly_in_bounded_memory(
    store_url: str, tmp_path: Path, pipeline: str
) -> None:
    process = psutil.Process()
    # The embedding model is loaded once per process (about 400 MB): before the measure, so
    # that what is measured is what the files cost.
    embedder().encode_one("a warm-up sentence")
    with harness(store_url, tmp_path, max_upload_bytes=LIMIT, doc_max_pages=50) as api:
        start = process.memory_info().rss
        peak = start
        answers = []
        for what, name, data in corpus():
            response = api.client.post(
                f"{API}/pipelines/{pipeline}/jobs",
                files={"file": (name, data, "application/octet-stream")},
                data={"input": CASE if pipeline == "pressure_injury_case" else "{}"},
                headers=api.headers(),
            )
            peak = max(peak, process.memory_info().rss)
            answers.append((what, response.status_code, response.json()))
            assert 400 <= response.status_code < 500 or response.status_code == 202, (what, response.text)
            body = response.json()
            if pipeline in GOOD_FOR.get(what, set()):
                assert response.status_code == 202, (what, body)
                assert api.wait(body["id"], timeout=120)["state"] in ("succeeded", "degraded"), what
            elif response.status_code == 202:
                job = api.wait(body["id"], timeout=120)
                peak = max(peak, process.memory_info().rss)
                assert job["state"] in ("failed", "dead"), (what, job)
                assert job["error_message"], (what, job)
            else:
                assert body["error"]["message"] and body["error"]["code"], (what, body)
        stored = _stored_jobs(api)
    rise = (peak - start) / 2**20
    print(f"{pipeline}: " + "; ".join(f"{what}: {status}" for what, status, _ in answers) + f"; RSS rise {rise:.0f} MB")
    assert rise < 400, f"memory rose by {rise:.0f} MB"
    accepted = [what for what, status, _ in answers if status == 202]
    assert stored == len(accepted)  # a refused file left no job behind


def _stored_jobs(api: Harness) -> int:
    return len(api.client.get(f"{API}/jobs", params={"limit": 200}, headers=api.headers()).json()["jobs"])
