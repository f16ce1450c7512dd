"""Signed checkpoints of the audit chain, kept outside the database.

The chain in the store is keyed (see `vigia.audit`), so an entry cannot be changed and the
rest recomputed without the key. What a writer of the store can still do without it is cut:
drop the newest entries and move the head back, or drop the oldest and move the start as a
retention prune would. Checkpoints close that: every so often (and at each prune) the watch
appends the chain's head, signed, to a file the database cannot rewrite, and verification
holds the store to every checkpoint it finds. Each line is JSON:
``{"kind": "head"|"retention", "seq", "hash", "at", "sig"}``; ``sig`` is an HMAC-SHA256 over
the rest with the chain's key.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD = "head"
RETENTION = "retention"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    #: "head": the chain's last entry then; "retention": the last entry a prune removed
    #: (the entry the chain now starts after).
    kind: str
    seq: int
    hash: str
    at: float

    def _message(self) -> bytes:
        content = {"kind": self.kind, "seq": self.seq, "hash": self.hash, "at": repr(float(self.at))}
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: bytes) -> dict[str, Any]:
        signature = hmac.new(key, self._message(), hashlib.sha256).hexdigest()
        return {"kind": self.kind, "seq": self.seq, "hash": self.hash, "at": self.at, "sig": signature}

    def signature_ok(self, key: bytes, signature: str) -> bool:
        return hmac.compare_digest(hmac.new(key, self._message(), hashlib.sha256).hexdigest(), signature)


@dataclass(frozen=True, slots=True)
class Reading:
    """The checkpoints of a file, and its lines that are not valid checkpoints."""

    checkpoints: list[Checkpoint]
    problems: list[str]


class AnchorFile:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = Path(path)
        self._key = key

    def append(self, checkpoint: Checkpoint) -> None:
        """One line, appended under a lock (several processes may write), synced to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(checkpoint.signed(self._key), separators=(",", ":")) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            os.write(descriptor, line.encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def last(self) -> Checkpoint | None:
        checkpoints = self.read().checkpoints
        return checkpoints[-1] if checkpoints else None

    def read(self) -> Reading:
        checkpoints: list[Checkpoint] = []
        problems: list[str] = []
        for number, line in self._lines():
            try:
                value = json.loads(line)
                checkpoint = Checkpoint(str(value["kind"]), int(value["seq"]), str(value["hash"]), float(value["at"]))
                signature = str(value["sig"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"anchor line {number} is not a checkpoint")
                continue
            if not checkpoint.signature_ok(self._key, signature):
                problems.append(f"anchor line {number} (entry {checkpoint.seq}) has a bad signature: forged or altered")
                continue
            checkpoints.append(checkpoint)
        return Reading(checkpoints, problems)

    def _lines(self) -> Iterator[tuple[int, str]]:
        try:
            with self.path.open(encoding="utf-8", errors="replace") as lines:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield number, line
        except FileNotFoundError:
            return


def against_store(
    checkpoints: list[Checkpoint], *, first_seq: int, first_prev_hash: str, last_seq: int, hashes: dict[int, str]
) -> list[str]:
    """What the store contradicts: each checkpoint must still hold. ``hashes`` are the
    stored entries' hashes by sequence number (those the checkpoints name)."""
    problems = []
    retained_to = max((point.seq for point in checkpoints if point.kind == RETENTION), default=0)
    for point in checkpoints:
        if point.kind == RETENTION:
            continue
        if point.seq > last_seq:
            problems.append(
                f"entry {point.seq} was the head at {_when(point.at)}, but the chain now ends at {last_seq}: "
                f"entries {last_seq + 1}–{point.seq} were removed from the end"
            )
        elif point.seq >= first_seq:
            stored = hashes.get(point.seq)
            if stored is None:
                problems.append(f"entry {point.seq} (checkpointed at {_when(point.at)}) is missing")
            elif stored != point.hash:
                problems.append(f"entry {point.seq} is not the one checkpointed at {_when(point.at)}: rewritten")
        elif point.seq == first_seq - 1 and point.hash != first_prev_hash:
            problems.append(f"the chain's start does not follow entry {point.seq} as checkpointed: rewritten")
    if first_seq > 1:
        anchored = [point for point in checkpoints if point.kind == RETENTION and point.seq == first_seq - 1]
        if not anchored:
            problems.append(
                f"entries 1–{first_seq - 1} are gone without a signed retention checkpoint"
                + (f" (the last one covers up to {retained_to})" if retained_to else "")
                + ": deleted, not pruned"
            )
        elif anchored[-1].hash != first_prev_hash:
            problems.append(f"the chain's start does not match the retention checkpoint of entry {first_seq - 1}")
    return problems


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
