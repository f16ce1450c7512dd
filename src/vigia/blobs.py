"""Blob storage for job files: content-addressed, so a job holds a reference, never bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

from vigia import media
from vigia.exceptions import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True, slots=True)
class BlobRef:
    sha256: str
    size: int
    media_type: str
    #: The name the client gave, for display only: never used as a path.
    filename: str | None = None

    def to_input(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "media_type": self.media_type, "filename": self.filename}

    @classmethod
    def from_input(cls, value: Any) -> Self:
        """The reference a job input holds (as `to_input` wrote it)."""
        if not isinstance(value, dict) or not _DIGEST.match(str(value.get("sha256", ""))):
            raise InvalidInput("not a file reference", value=str(value)[:100])
        return cls(value["sha256"], int(value["size"]), str(value["media_type"]), value.get("filename"))


def is_digest(text: str) -> bool:
    """Whether ``text`` is a content hash as blob references hold them (64 hex digits)."""
    return bool(_DIGEST.match(text))


def digests_in(value: Any) -> set[str]:
    """The content hashes of every file reference (as `BlobRef.to_input` writes them) in a
    JSON value, however deep."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            digest = item.get("sha256")
            if isinstance(digest, str) and is_digest(digest):
                found.add(digest)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def display_name(filename: str | None) -> str | None:
    """A client's file name made harmless to show: last path part, no control characters."""
    if not filename:
        return None
    name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or None


class BlobStore(Protocol):
    async def put(
        self, chunks: AsyncIterator[bytes], *, accepts: Iterable[str], max_bytes: int, filename: str | None
    ) -> BlobRef: ...

    def path(self, ref: BlobRef) -> Path: ...

    def read(self, ref: BlobRef) -> bytes:
        """The blob's bytes (those of its replacement, if it was replaced)."""

    def put_bytes(self, data: bytes, media_type: str, filename: str | None = None) -> BlobRef: ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob with this content hash (and any replacement marker); whether it was there."""

    def replacement_of(self, sha256: str) -> str | None:
        """The content hash of what replaced this blob, if it was replaced."""

    def replace(self, ref: BlobRef, data: bytes, media_type: str) -> BlobRef:
        """Store ``data`` in place of the blob ``ref`` names and delete the original (a photo
        stripped of its metadata replaces the upload). Reading ``ref`` afterwards gives the
        replacement, so that another job holding the same upload still finds its file."""


class LocalBlobStore:
    """Blobs in a local directory, at ``<root>/<2 hex>/<2 hex>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, ref: BlobRef) -> Path:
        if not _DIGEST.match(ref.sha256):
            raise InvalidInput("not a file reference")
        return self.root / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256

    def read(self, ref: BlobRef) -> bytes:
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError:
            replacement = self._replacement(ref)
            if replacement is None:
                raise
            return self.path(replacement).read_bytes()

    def put_bytes(self, data: bytes, media_type: str, filename: str | None = None) -> BlobRef:
        ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data), media_type, display_name(filename))
        target = self.path(ref)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".put-")
            try:
                with os.fdopen(handle, "wb") as output:
                    output.write(data)
                os.replace(temporary, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        return ref

    def replace(self, ref: BlobRef, data: bytes, media_type: str) -> BlobRef:
        # No file name: the stripped copy's reference goes into stage outputs, results and
        # the marker, and the client's name (maybe a patient's) stays with the job only.
        new = self.put_bytes(data, media_type)
        if new.sha256 == ref.sha256:
            return new
        marker = self._marker(ref)
        marker.write_text(json.dumps(new.to_input()))  # written before the original goes
        with contextlib.suppress(FileNotFoundError):
            self.path(ref).unlink()
        return new

    def delete(self, sha256: str) -> bool:
        ref = BlobRef(sha256, 0, "application/octet-stream")
        with contextlib.suppress(FileNotFoundError):
            self._marker(ref).unlink()
        try:
            self.path(ref).unlink()
        except FileNotFoundError:
            return False
        return True

    def replacement_of(self, sha256: str) -> str | None:
        replacement = self._replacement(BlobRef(sha256, 0, "application/octet-stream"))
        return None if replacement is None else replacement.sha256

    def _marker(self, ref: BlobRef) -> Path:
        return self.path(ref).with_name(ref.sha256 + ".replaced")

    def _replacement(self, ref: BlobRef) -> BlobRef | None:
        try:
            return BlobRef.from_input(json.loads(self._marker(ref).read_text()))
        except (FileNotFoundError, ValueError):
            return None

    async def put(
        self, chunks: AsyncIterator[bytes], *, accepts: Iterable[str], max_bytes: int, filename: str | None
    ) -> BlobRef:
        """Store a stream, checking its size as it comes and its type from its first bytes."""
        self.root.mkdir(parents=True, exist_ok=True)
        async with spooled(chunks, self.root, accepts=accepts, max_bytes=max_bytes, filename=filename) as (
            ref,
            temporary,
        ):
            target = self.path(ref)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)  # same content, same name: a repeat upload is harmless
            return ref


@contextlib.asynccontextmanager
async def spooled(
    chunks: AsyncIterator[bytes], directory: Path, *, accepts: Iterable[str], max_bytes: int, filename: str | None
) -> AsyncIterator[tuple[BlobRef, Path]]:
    """A stream written to a temporary file in ``directory`` (never held whole in memory),
    its size checked as it comes and its type from its first bytes: its reference and the
    file, removed on leaving unless the caller moved it."""
    accepted = set(accepts)
    digest = hashlib.sha256()
    size = 0
    head = b""
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as output:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"the file is larger than the {max_bytes:,}-byte limit", limit=max_bytes)
                if len(head) < media.SNIFF_BYTES:
                    head = (head + chunk)[: media.SNIFF_BYTES]
                    if len(head) >= media.SNIFF_BYTES:
                        _check_type(head, accepted)
                digest.update(chunk)
                output.write(chunk)
        if size == 0:
            raise InvalidInput("the file is empty", field="file")
        media_type = _check_type(head, accepted)
        yield BlobRef(digest.hexdigest(), size, media_type, display_name(filename)), Path(temporary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _check_type(head: bytes, accepted: set[str]) -> str:
    media_type = media.sniff(head)
    if media_type is None or media_type not in accepted:
        found = media_type or "an unknown type"
        raise UnsupportedMediaType(
            f"the file's content is {found}; this pipeline accepts {', '.join(sorted(accepted)) or 'no files'}",
            media_type=media_type,
            accepted=sorted(accepted),
        )
    return media_type
