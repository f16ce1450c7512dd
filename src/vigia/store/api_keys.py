"""API keys in the job store's database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigia.access import ApiKey, IssuedKey, Role, matches, parse
from vigia.audit import AuditDraft
from vigia.exceptions import VigiaError
from vigia.store.database import Database
from vigia.store.oversight import append_audit
from vigia.store.schema import api_keys


class KeyNotFound(VigiaError):
    """No API key has that id."""

    code = "key_not_found"


class ApiKeyStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def create(
        self, issued: IssuedKey, *, tenant: str, role: Role, name: str, now: float, actor: str = "system"
    ) -> ApiKey:
        with self._database.writing() as connection:
            connection.execute(
                api_keys.insert().values(
                    id=issued.id,
                    tenant=tenant,
                    role=role.value,
                    name=name,
                    secret_hash=issued.secret_hash,
                    created_at=now,
                )
            )
            _audit(connection, "key.created", actor, now, tenant, issued.id, role, database=self._database)
        return ApiKey(issued.id, tenant, role, name, now, None)

    def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key this plaintext is, or None."""
        parsed = parse(plaintext)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._database.reading() as connection:
            row = connection.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked_at is not None or not matches(secret, row.secret_hash):
            return None
        return ApiKey.from_row(row._mapping)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        with self._database.reading() as connection:
            return [ApiKey.from_row(row._mapping) for row in connection.execute(query)]

    def revoke(self, key_id: str, now: float, actor: str = "system") -> ApiKey:
        with self._database.writing() as connection:
            revoked = connection.execute(
                api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
            ).rowcount
            row = connection.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is not None and revoked:
                key = ApiKey.from_row(row._mapping)
                _audit(
                    connection,
                    "key.revoked",
                    actor,
                    now,
                    key.tenant,
                    key.id,
                    key.role,
                    database=self._database,
                )
        if row is None:
            raise KeyNotFound(f"no API key {key_id!r}", key_id=key_id)
        return ApiKey.from_row(row._mapping)

    def count(self) -> int:
        with self._database.reading() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)


def _audit(
    connection: Connection,
    action: str,
    actor: str,
    now: float,
    tenant: str,
    key_id: str,
    role: Role,
    *,
    database: Database,
) -> None:
    details = {"key_id": key_id, "role": role.value}
    append_audit(
        connection,
        [AuditDraft(action, actor, now, tenant, None, None, details)],
        row_locks=database.row_locks,
        key=database.audit_chain_key,
    )
