"""Blob storage in an S3-compatible bucket, against moto's standalone server (a real HTTP
server speaking the S3 protocol): the store itself, a 50 MB upload streamed in bounded
memory, and the workloads that keep files (a case's photo replaced by its stripped copy, a
document read from a local copy) running on it in embedded mode."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import psutil
import pytest

from tests import document_corpus
from tests.harness import API, MILD_CASE, harness
from vigia.blobs import BlobRef
from vigia.blobs_s3 import S3BlobStore, parse_url
from vigia.exceptions import ConfigurationError, PayloadTooLarge, StoreUnavailable, UnsupportedMediaType
from vigia.workloads.pressure_injury import samples

pytestmark = pytest.mark.timeout(300)


def objects(url: str) -> dict[str, int]:
    bucket, prefix = parse_url(url)
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in listed.get("Contents", [])}


async def stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def test_the_store_keeps_reads_replaces_and_deletes_by_content(s3_blob_url: str, tmp_path: Path) -> None:
    store = S3BlobStore(s3_blob_url, tmp_path / "cache")
    photo = samples.photo("erythema.jpg")
    ref = store.put_bytes(photo, "image/jpeg", "C:\\fotos\\María Pérez.jpg")
    assert ref.sha256 == hashlib.sha256(photo).hexdigest() and ref.filename == "María Pérez.jpg"
    assert store.put_bytes(photo, "image/jpeg") == BlobRef(ref.sha256, ref.size, "image/jpeg", None)  # same key
    _, prefix = parse_url(s3_blob_url)
    key = f"{prefix}/{ref.sha256[:2]}/{ref.sha256[2:4]}/{ref.sha256}"
    assert objects(s3_blob_url) == {key: len(photo)}  # no file name in the bucket
    assert store.read(ref) == photo
    local = store.path(ref)
    assert local.read_bytes() == photo and local.parent == tmp_path / "cache"

    stripped = store.replace(ref, b"\xff\xd8stripped", "image/jpeg")
    assert store.read(ref) == b"\xff\xd8stripped"  # another job holding the upload finds its file
    assert store.path(ref).read_bytes() == b"\xff\xd8stripped"
    assert key not in objects(s3_blob_url) and key + ".replaced" in objects(s3_blob_url)
    assert store.delete(stripped.sha256) and not store.delete(stripped.sha256)
    assert store.delete(ref.sha256) is False  # the original was gone already; its marker goes now
    assert objects(s3_blob_url) == {}
    with pytest.raises(FileNotFoundError):
        store.read(ref)


def test_a_50_mb_upload_is_streamed_in_bounded_memory_and_a_bad_one_leaves_nothing(
    s3_blob_url: str, tmp_path: Path
) -> None:
    store = S3BlobStore(s3_blob_url, tmp_path / "cache")
    data = b"%PDF-1.7\n" + os.urandom(50 * 2**20)
    digest = hashlib.sha256(data).hexdigest()
    process = psutil.Process()
    start = process.memory_info().rss
    peak = start

    async def upload() -> BlobRef:
        nonlocal peak

        async def measured() -> AsyncIterator[bytes]:
            nonlocal peak
            async for chunk in stream(data):
                peak = max(peak, process.memory_info().rss)
                yield chunk

        task = asyncio.create_task(
            store.put(measured(), accepts=["application/pdf"], max_bytes=60 * 2**20, filename="big.pdf")
        )
        while not task.done():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.01)
        return await task

    ref = asyncio.run(upload())
    rise = (peak - start) / 2**20
    print(f"50 MB upload to S3: RSS rise {rise:.0f} MB")
    assert ref.sha256 == digest and ref.size == len(data)
    assert list(objects(s3_blob_url).values()) == [len(data)]
    assert rise < 40, f"memory rose by {rise:.0f} MB"  # the test's own 50 MB are held before the start
    assert not [entry for entry in (tmp_path / "cache").iterdir()], "the spooled upload stayed behind"

    for bad, error in (
        (b"%PDF-1.7\n" + b"x" * 2000, PayloadTooLarge),
        (b"GIF89a" + b"x" * 2000, UnsupportedMediaType),
    ):
        with pytest.raises(error):
            asyncio.run(store.put(stream(bad, 500), accepts=["application/pdf"], max_bytes=1000, filename=None))
    assert len(objects(s3_blob_url)) == 1


def test_the_local_cache_keeps_within_its_size(s3_blob_url: str, tmp_path: Path) -> None:
    store = S3BlobStore(s3_blob_url, tmp_path / "cache", cache_bytes=3000)
    refs = [store.put_bytes(bytes([n]) * 1000, "application/pdf") for n in range(5)]
    for ref in refs:
        store.path(ref)
    kept = sorted(entry.name for entry in (tmp_path / "cache").iterdir())
    assert len(kept) == 3 and refs[-1].sha256 in kept
    assert store.path(refs[0]).read_bytes() == bytes([0]) * 1000  # fetched again when asked


def test_a_bad_url_and_an_unreachable_server_are_said_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):
        S3BlobStore("https://bucket/prefix", tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        S3BlobStore("s3://nowhere/jobs", tmp_path).put_bytes(b"%PDF-1.7", "application/pdf")


def test_the_workloads_run_on_s3_in_embedded_mode(s3_blob_url: str, sqlite_url: str, tmp_path: Path) -> None:
    with harness(sqlite_url, tmp_path, blob_url=s3_blob_url, max_upload_bytes=30 * 2**20) as api:
        photo = samples.photo("erythema.jpg")
        case = api.submit_file("pressure_injury_case", photo, "María Pérez.jpg", MILD_CASE)
        pdf = document_corpus.text_pdf(document_corpus.corpus(1, seed=5)[0])
        document = api.submit_file("document_ingest", pdf, "oficio.pdf")
        case_job = api.wait(case["id"], timeout=180)
        document_job = api.wait(document["id"], timeout=180)
        assert case_job["state"] in ("succeeded", "degraded"), case_job
        assert document_job["state"] in ("succeeded", "degraded"), document_job
        served = api.client.get(f"{API}/jobs/{case['id']}/file", headers=api.headers())
        assert served.status_code == 200
    stored = objects(s3_blob_url)
    original = hashlib.sha256(photo).hexdigest()
    # The upload replaced by its stripped copy (what the API serves), the document kept.
    assert any(key.endswith(original + ".replaced") for key in stored)
    assert not any(key.endswith(original) for key in stored)
    assert any(key.endswith(hashlib.sha256(served.content).hexdigest()) for key in stored)
    assert any(key.endswith(hashlib.sha256(pdf).hexdigest()) for key in stored)
    assert not (tmp_path / "data" / "blobs").exists() or not any((tmp_path / "data" / "blobs").rglob("*"))
    assert io.BytesIO(served.content).read(2) == b"\xff\xd8"
