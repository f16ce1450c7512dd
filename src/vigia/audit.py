"""The audit log: append-only, each entry chained to the one before by a hash.

An entry says who (`actor`: an API key id, ``system``, a worker) did what (`action`), to
which job and pseudonymous patient (`subject`), with a few structured `details`. The
chain makes tampering evident: an entry's hash covers its content and the previous
entry's hash, so changing, removing or reordering any entry breaks every link after it,
and `verify` names the first broken one.

What never enters it: patient identifiers in clear (they are replaced by a keyed hash,
`Pseudonymiser`) and free text from clinical documents (details accept short codes,
numbers and flags only, see `check_details`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigia.exceptions import ConfigurationError, InvalidInput

#: The previous hash of the very first entry.
GENESIS_HASH = "0" * 64
#: Longest text a detail may hold: long enough for codes, states and reasons of our own
#: wording, too short for a paragraph of clinical narrative.
MAX_DETAIL_TEXT = 120
MAX_DETAIL_ITEMS = 50
MAX_DETAIL_DEPTH = 3


class InvalidAuditDetails(InvalidInput):
    """Audit details may hold only short codes, numbers and flags."""

    code = "invalid_audit_details"


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry before it has a place in the chain."""

    action: str
    actor: str
    at: float
    tenant: str | None = None
    job_id: str | None = None
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    tenant: str | None
    job_id: str | None
    subject: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AuditEntry:
        return cls(
            seq=int(row["seq"]),
            at=float(row["at"]),
            actor=row["actor"],
            action=row["action"],
            tenant=row["tenant"],
            job_id=row["job_id"],
            subject=row["subject"],
            details=row["details"] or {},
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "tenant": self.tenant,
            "job_id": self.job_id,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def chain_key(audit_key: bytes) -> bytes:
    """The key the chain is signed with, derived from the installation's audit key (kept in
    a file or VIGIA_AUDIT_KEY, never in the database): one who can write the store but does
    not hold it cannot recompute the chain after changing an entry."""
    return hmac.new(audit_key, b"vigia audit chain v1", hashlib.sha256).digest()


def entry_hash(prev_hash: str, seq: int, draft: AuditDraft, key: bytes | None = None) -> str:
    """HMAC-SHA256 with ``key`` (SHA-256 without: entries written before the chain was
    keyed) over the previous hash and the entry's content in canonical JSON."""
    content = [
        prev_hash,
        seq,
        repr(float(draft.at)),  # repr: the exact float, whatever JSON would round it to
        draft.actor,
        draft.action,
        draft.tenant,
        draft.job_id,
        draft.subject,
        _stable_numbers(draft.details),
    ]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if key is None:
        return hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _stable_numbers(value: Any) -> Any:
    """Numbers as they read back from any store: PostgreSQL's JSONB gives a whole float
    back as an integer when large (1e16) and drops the sign of -0.0, so whole floats are
    hashed as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _stable_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stable_numbers(item) for item in value]
    return value


def chain(prev_hash: str, last_seq: int, drafts: Iterable[AuditDraft], key: bytes | None) -> list[AuditEntry]:
    """Give drafts their places after the entry (``last_seq``, ``prev_hash``), signed with ``key``."""
    entries = []
    for draft in drafts:
        last_seq += 1
        digest = entry_hash(prev_hash, last_seq, draft, key)
        entries.append(
            AuditEntry(
                last_seq,
                draft.at,
                draft.actor,
                draft.action,
                draft.tenant,
                draft.job_id,
                draft.subject,
                dict(draft.details),
                prev_hash,
                digest,
            )
        )
        prev_hash = digest
    return entries


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    #: Sequence number of the first entry that does not fit the chain, if any.
    first_broken: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def verify(
    entries: Iterable[AuditEntry],
    *,
    first_prev_hash: str = GENESIS_HASH,
    first_seq: int = 1,
    key: bytes | None = None,
    keyed_from: int = 1,
) -> Verification:
    """Walk the chain in order; the first entry must follow ``first_prev_hash`` at
    ``first_seq`` (the genesis, or the anchor left by retention). Entries from
    ``keyed_from`` on are checked against ``key``; those before it were written unkeyed."""
    expected_prev, expected_seq, checked = first_prev_hash, first_seq, 0
    for entry in entries:
        if entry.seq != expected_seq:
            return Verification(checked, entry.seq, f"entry {expected_seq} is missing (found {entry.seq} after it)")
        if entry.prev_hash != expected_prev:
            return Verification(checked, entry.seq, "its previous hash does not match the entry before it")
        draft = AuditDraft(
            entry.action, entry.actor, entry.at, entry.tenant, entry.job_id, entry.subject, entry.details
        )
        signer = key if entry.seq >= keyed_from else None
        if signer is None and entry.seq >= keyed_from:
            return Verification(checked, entry.seq, "it is keyed and no audit key was given to check it")
        if entry_hash(entry.prev_hash, entry.seq, draft, signer) != entry.hash:
            return Verification(checked, entry.seq, "its content does not match its hash (changed after writing)")
        expected_prev, expected_seq, checked = entry.hash, entry.seq + 1, checked + 1
    return Verification(checked)


def export_lines(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """One JSON object per line, each entry with its hashes (JSON lines)."""
    for entry in entries:
        yield json.dumps(entry.to_dict(), separators=(",", ":"), ensure_ascii=False)


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """The details as they may be stored, or `InvalidAuditDetails` naming the problem."""
    if not isinstance(details, Mapping):
        raise InvalidAuditDetails("audit details must be a mapping of short keys to values")
    _check_value(details, "details", 0)
    checked: dict[str, Any] = json.loads(json.dumps(details, allow_nan=False))
    return checked


def _check_value(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAuditDetails(f"audit detail {where} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT or "\n" in value or "\r" in value:
            raise InvalidAuditDetails(
                f"audit detail {where} looks like free text (over {MAX_DETAIL_TEXT} characters or several "
                "lines): the audit log holds codes, numbers and flags, never document text"
            )
        return
    if depth >= MAX_DETAIL_DEPTH:
        raise InvalidAuditDetails(f"audit detail {where} is nested too deeply")
    if isinstance(value, Mapping):
        if len(value) > MAX_DETAIL_ITEMS:
            raise InvalidAuditDetails(f"audit detail {where} has too many entries")
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > 60:
                raise InvalidAuditDetails(f"audit detail {where} has a key that is not a short text")
            _check_value(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        if len(value) > MAX_DETAIL_ITEMS:
            raise InvalidAuditDetails(f"audit detail {where} has too many entries")
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
        return
    raise InvalidAuditDetails(f"audit detail {where} is a {type(value).__name__}, not JSON")


class Pseudonymiser:
    """Patient identifiers as keyed hashes: the same patient always gets the same pseudonym,
    which cannot be turned back into the identifier (nor checked against a guess) without
    the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigurationError("the pseudonymisation key must be at least 16 bytes")
        self._key = key

    def __call__(self, identifier: str) -> str:
        normalised = " ".join(str(identifier).split()).casefold()
        return "p_" + hmac.new(self._key, normalised.encode(), hashlib.sha256).hexdigest()[:32]


def load_or_create_key(path: Path) -> bytes:
    """The pseudonymisation key kept in ``path`` (hex), created (mode 0600) on first use."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            text = path.read_text().strip()
        else:
            try:
                os.write(descriptor, (text + "\n").encode())
            finally:
                os.close(descriptor)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigurationError(f"the pseudonymisation key in {path} is not hexadecimal") from None
