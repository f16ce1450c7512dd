"""API keys: who may do what, for which tenant. Keys are stored only as hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

KEY_PREFIX = "vigia"
_KEY = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


class Role(StrEnum):
    VIEWER = "viewer"  # reads jobs, results and events
    SUBMITTER = "submitter"  # also submits and cancels jobs
    REVIEWER = "reviewer"  # also acts on human-review items
    ADMIN = "admin"  # everything, including retries, purges and keys


class Permission(StrEnum):
    READ = "read"
    SUBMIT = "submit"
    REVIEW = "review"
    ADMIN = "admin"


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.SUBMITTER: frozenset({Permission.READ, Permission.SUBMIT}),
    Role.REVIEWER: frozenset({Permission.READ, Permission.REVIEW}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    role: Role
    name: str
    created_at: float
    revoked_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        values = {field.name: row[field.name] for field in dataclasses.fields(cls)}
        values["role"] = Role(values["role"])
        return cls(**values)

    def can(self, permission: Permission) -> bool:
        return self.revoked_at is None and permission in ROLE_PERMISSIONS[self.role]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "role": self.role.value,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``plaintext`` is shown once and never stored."""

    id: str
    plaintext: str
    secret_hash: str


def issue() -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret))


def parse(plaintext: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY.match(plaintext.strip())
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 cannot be brute-forced, and it keeps the
    # check on every request cheap (no deliberately slow password hash needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
