"""Blob storage in an S3-compatible bucket (AWS S3, MinIO, Ceph...): `VIGIA_BLOB_URL=
s3://bucket/prefix`. The endpoint, region and credentials come from boto3's usual sources
(`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`..., a
profile, an instance role).

Content-addressed as the local store: `<prefix>/<2 hex>/<2 hex>/<sha256>`, a replacement
marker beside it. An upload is spooled to a local file while it is hashed and checked
(never whole in memory), then sent in parts; a stage that needs a file on disk (`path`)
gets a copy in a local cache, the least recently used copies dropped past its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from vigia.blobs import BlobRef, display_name, is_digest, spooled
from vigia.exceptions import ConfigurationError, InvalidInput, StoreUnavailable

#: Parts of 8 MB, two at a time: an upload holds about 16 MB of it in memory.
TRANSFER = TransferConfig(multipart_threshold=8 * 2**20, multipart_chunksize=8 * 2**20, max_concurrency=2)
#: Local copies kept for stages that read files from disk.
CACHE_BYTES = 2 * 2**30


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of an ``s3://bucket/prefix`` URL."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigurationError(f"VIGIA_BLOB_URL must look like s3://bucket/prefix, got {url!r}")
    return parsed.netloc, parsed.path.strip("/")


def _missing(error: botocore.exceptions.ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    def __init__(self, url: str, cache_dir: Path, *, client: Any = None, cache_bytes: int = CACHE_BYTES) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.cache_dir = Path(cache_dir)
        self.cache_bytes = cache_bytes
        self.client = client or boto3.client("s3")
        self._cache_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # To a stage's child process: the client and the lock are made again there.
        return {
            "url": f"s3://{self.bucket}/{self.prefix}",
            "cache_dir": self.cache_dir,
            "cache_bytes": self.cache_bytes,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["cache_dir"], cache_bytes=state["cache_bytes"])  # type: ignore[misc]

    def _key(self, sha256: str) -> str:
        if not is_digest(sha256):
            raise InvalidInput("not a file reference")
        name = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _marker_key(self, sha256: str) -> str:
        return self._key(sha256) + ".replaced"

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                return False
            raise StoreUnavailable(f"the blob store refused a request: {error}") from None
        except botocore.exceptions.BotoCoreError as error:  # no connection, no credentials
            raise StoreUnavailable(f"the blob store cannot be reached: {error}") from None
        return True

    # --- writing ---------------------------------------------------------------------------

    async def put(
        self, chunks: AsyncIterator[bytes], *, accepts: Iterable[str], max_bytes: int, filename: str | None
    ) -> BlobRef:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        async with spooled(chunks, self.cache_dir, accepts=accepts, max_bytes=max_bytes, filename=filename) as (
            ref,
            temporary,
        ):
            await asyncio.to_thread(self._upload_file, ref, temporary)
            return ref

    def _upload_file(self, ref: BlobRef, path: Path) -> None:
        key = self._key(ref.sha256)
        if self._exists(key):  # same content, same key: a repeat upload sends nothing
            return
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": ref.media_type}, Config=TRANSFER)

    def put_bytes(self, data: bytes, media_type: str, filename: str | None = None) -> BlobRef:
        ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data), media_type, display_name(filename))
        key = self._key(ref.sha256)
        if not self._exists(key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=media_type)
        return ref

    def replace(self, ref: BlobRef, data: bytes, media_type: str) -> BlobRef:
        # No file name (see LocalBlobStore.replace); the marker is written before the original goes.
        new = self.put_bytes(data, media_type)
        if new.sha256 == ref.sha256:
            return new
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._marker_key(ref.sha256),
            Body=json.dumps(new.to_input()).encode(),
            ContentType="application/json",
        )
        self.client.delete_object(Bucket=self.bucket, Key=self._key(ref.sha256))
        self._drop_cached(ref.sha256)
        return new

    def delete(self, sha256: str) -> bool:
        key = self._key(sha256)
        existed = self._exists(key)
        self.client.delete_object(Bucket=self.bucket, Key=self._marker_key(sha256))
        self.client.delete_object(Bucket=self.bucket, Key=key)
        self._drop_cached(sha256)
        return existed

    # --- reading ---------------------------------------------------------------------------

    def replacement_of(self, sha256: str) -> str | None:
        try:
            marker = self.client.get_object(Bucket=self.bucket, Key=self._marker_key(sha256))
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                return None
            raise
        return BlobRef.from_input(json.loads(marker["Body"].read())).sha256

    def _current(self, ref: BlobRef) -> BlobRef:
        """``ref``, or what replaced it."""
        if self._exists(self._key(ref.sha256)):
            return ref
        try:
            marker = self.client.get_object(Bucket=self.bucket, Key=self._marker_key(ref.sha256))
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                raise FileNotFoundError(f"no blob {ref.sha256}") from None
            raise
        return BlobRef.from_input(json.loads(marker["Body"].read()))

    def read(self, ref: BlobRef) -> bytes:
        current = self._current(ref)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(current.sha256))["Body"]
        except botocore.exceptions.ClientError as error:
            if _missing(error):
                raise FileNotFoundError(f"no blob {current.sha256}") from None
            raise
        return bytes(body.read())

    def path(self, ref: BlobRef) -> Path:
        """A local copy of the blob (or of what replaced it), fetched once into the cache."""
        current = self._current(ref)
        cached = self.cache_dir / current.sha256
        if cached.exists():
            with contextlib.suppress(FileNotFoundError):
                os.utime(cached)  # recently used: the last to be dropped
            return cached
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=".download-")
        os.close(handle)
        try:
            self.client.download_file(self.bucket, self._key(current.sha256), temporary, Config=TRANSFER)
            os.replace(temporary, cached)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        self._trim_cache(keep=cached)
        return cached

    def _drop_cached(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.cache_dir / sha256).unlink()

    def _trim_cache(self, keep: Path) -> None:
        with self._cache_lock:
            copies = [
                (entry.stat().st_mtime, entry.stat().st_size, entry)
                for entry in self.cache_dir.iterdir()
                if is_digest(entry.name) and entry != keep
            ]
            total = sum(size for _, size, _ in copies) + keep.stat().st_size
            for _, size, entry in sorted(copies):
                if total <= self.cache_bytes:
                    break
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                total -= size
