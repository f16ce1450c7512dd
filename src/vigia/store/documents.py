"""The document workload's store: documents, their pages and chunks, the chunks' vectors,
and keyword search over them (SQLite FTS5 with bm25(), PostgreSQL full-text with ts_rank_cd).

Every read and write names a tenant: a document of another tenant is not found. Vectors are
written with an increasing sequence number per tenant, and deletions are counted, so that a
searcher holding a tenant's vectors in memory reads only what is new (see `vigia.workloads.
documents.search`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vigia.audit import AuditDraft
from vigia.exceptions import DocumentNotFound
from vigia.job import is_job_id, new_job_id
from vigia.store import oversight
from vigia.store.database import Database
from vigia.store.jobs import upload_names
from vigia.store.schema import document_chunks, document_index, document_pages, documents

#: Keyword candidates read per search before fusion.
KEYWORD_CANDIDATES = 50
#: Chunks a keyword search ranks, about, at most (see `DocumentStore.keyword_search`):
#: SQLite's bm25() takes about 1 µs a chunk, PostgreSQL's ts_rank_cd() 15 µs (it reads
#: each chunk's compressed tsvector).
KEYWORD_BUDGET = 4000
KEYWORD_BUDGET_POSTGRES = 500
#: Phrases whose chunk counts a store remembers.
KEYWORD_SIZES_KEPT = 10_000
#: The database's own full-text objects (migration 0005), outside `schema.metadata`: SQLite's
#: FTS5 table (and the tables FTS5 makes for itself, named after it), PostgreSQL's column and index.
KEYWORD_INDEX_TABLE = "vigia_document_chunks_fts"
KEYWORD_INDEX_COLUMN = "search_vector"
KEYWORD_INDEX_INDEX = "ix_vigia_document_chunks_search"


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: str
    tenant: str
    sha256: str
    job_id: str | None
    filename: str | None
    media_type: str
    size: int
    title: str | None
    doc_type: str | None
    language: str | None
    doc_date: str | None
    page_count: int
    details: Mapping[str, Any] | None
    status: str
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        return cls(**{field.name: row[field.name] for field in dataclasses.fields(cls)})


@dataclass(frozen=True, slots=True)
class PageRow:
    number: int
    method: str
    ocr_confidence: float | None
    reason: str | None
    text: str


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: int
    document_id: str
    ordinal: int
    page_start: int
    page_end: int
    start_offset: int
    end_offset: int
    text: str


@dataclass(frozen=True, slots=True)
class NewChunk:
    ordinal: int
    page_start: int
    page_end: int
    start_offset: int
    end_offset: int
    text: str
    folded: str


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    tenant: str
    doc_type: str | None = None
    language: str | None = None
    #: ISO dates (the document's date of issue), inclusive.
    date_from: str | None = None
    date_to: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class VectorRows:
    """Vectors of a tenant written after some sequence number, with what filters need."""

    chunk_ids: list[int]
    vectors: list[bytes]
    seqs: list[int]
    document_ids: list[str]
    doc_types: list[str | None]
    languages: list[str | None]
    doc_dates: list[str | None]
    job_ids: list[str | None]


#: A keyword query: (connection, filter, phrases, limit, every phrase?, lowest chunk id) -> ranking.
_KeywordQuery = Callable[[Connection, DocumentFilter, list[list[str]], int, bool, int | None], list[tuple[int, float]]]


class DocumentStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.dialect = database.engine.dialect.name
        # How many chunks hold a phrase (keyword search's plan), while the chunks are as they
        # were: the lowest and highest chunk id and the deletions counted.
        self._sizes: dict[str, int] = {}
        self._sizes_version: tuple[Any, ...] | None = None
        self._span: tuple[int, int] | None = None

    # --- writing --------------------------------------------------------------------------

    def find(self, tenant: str, sha256: str) -> DocumentRow | None:
        with self._database.reading() as connection:
            row = connection.execute(
                sa.select(documents).where(documents.c.tenant == tenant, documents.c.sha256 == sha256)
            ).first()
        return None if row is None else DocumentRow.from_row(row._mapping)

    def save(
        self,
        *,
        tenant: str,
        sha256: str,
        job_id: str | None,
        media_type: str,
        size: int,
        fields: Mapping[str, Any],
        details: Mapping[str, Any],
        pages: Sequence[PageRow],
        chunks: Sequence[NewChunk],
        status: str,
    ) -> str:
        """Write a document, its pages and chunks (replacing an earlier save of the file by the tenant); its id."""

        def work(connection: Connection) -> str:
            now = time.time()
            existing = connection.execute(
                sa.select(documents.c.id).where(documents.c.tenant == tenant, documents.c.sha256 == sha256)
            ).scalar()
            values = {
                "job_id": job_id,
                "filename": None,  # the name is the job's (see `_named`): never copied here
                "media_type": media_type,
                "size": size,
                "title": fields.get("title"),
                "doc_type": fields.get("doc_type"),
                "language": fields.get("language"),
                "doc_date": fields.get("doc_date"),
                "page_count": len(pages),
                "details": dict(details),
                "status": status,
                "updated_at": now,
            }
            if existing is None:
                document_id = new_job_id(now)
                connection.execute(
                    documents.insert().values(id=document_id, tenant=tenant, sha256=sha256, created_at=now, **values)
                )
            else:
                document_id = str(existing)
                connection.execute(documents.update().where(documents.c.id == document_id).values(**values))
                connection.execute(document_pages.delete().where(document_pages.c.document_id == document_id))
                removed = connection.execute(
                    document_chunks.delete().where(document_chunks.c.document_id == document_id)
                ).rowcount
                if removed:
                    self._bump(connection, tenant, deletions=1)
            if pages:
                connection.execute(
                    document_pages.insert(),
                    [{"document_id": document_id, **dataclasses.asdict(page)} for page in pages],
                )
            if chunks:
                connection.execute(
                    document_chunks.insert(),
                    [{"document_id": document_id, "tenant": tenant, **dataclasses.asdict(chunk)} for chunk in chunks],
                )
            return document_id

        return self._database.transact(work)

    def set_embeddings(self, document_id: str, vectors: Mapping[int, bytes], model: str) -> int:
        """Write the vectors of a document's chunks (by ordinal); how many were written."""

        def work(connection: Connection) -> int:
            tenant = connection.execute(sa.select(documents.c.tenant).where(documents.c.id == document_id)).scalar()
            if tenant is None:
                raise DocumentNotFound(f"no document {document_id!r}", document_id=document_id)
            generation = self._bump(connection, str(tenant), generation=1)
            if not vectors:
                return 0
            statement = (
                document_chunks.update()
                .where(
                    document_chunks.c.document_id == sa.bindparam("_document"),
                    document_chunks.c.ordinal == sa.bindparam("_ordinal"),
                )
                .values(embedding=sa.bindparam("_embedding"), embedding_model=model, embedding_seq=generation)
            )
            connection.execute(
                statement,
                [
                    {"_document": document_id, "_ordinal": ordinal, "_embedding": vector}
                    for ordinal, vector in vectors.items()
                ],
            )
            return len(vectors)

        return self._database.transact(work)

    def finish(self, document_id: str, *, status: str, details: Mapping[str, Any]) -> None:
        with self._database.writing() as connection:
            connection.execute(
                documents.update()
                .where(documents.c.id == document_id)
                .values(status=status, details=dict(details), updated_at=time.time())
            )

    def delete(self, document_id: str, tenant: str, actor: str) -> DocumentRow:
        """Delete a document with its pages, chunks and vectors, audited; the row it was."""

        def work(connection: Connection) -> DocumentRow:
            row = connection.execute(
                sa.select(documents).where(documents.c.id == document_id, documents.c.tenant == tenant)
            ).first()
            if row is None:
                raise DocumentNotFound(f"no document {document_id!r}", document_id=document_id)
            # Children first: SQLite enforces the foreign keys without cascading unless told.
            connection.execute(document_chunks.delete().where(document_chunks.c.document_id == document_id))
            connection.execute(document_pages.delete().where(document_pages.c.document_id == document_id))
            connection.execute(documents.delete().where(documents.c.id == document_id))
            self._bump(connection, tenant, deletions=1)
            details = {"document_id": document_id, "sha256": row.sha256, "pages": row.page_count}
            oversight.append_audit(
                connection,
                [AuditDraft("document.deleted", actor, time.time(), tenant, row.job_id, None, details)],
                row_locks=self._database.row_locks,
                key=self._database.audit_chain_key,
            )
            return DocumentRow.from_row(row._mapping)

        return self._database.transact(work)

    def references(self, sha256: str) -> int:
        """How many documents (of any tenant) are of this file."""
        with self._database.reading() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).where(documents.c.sha256 == sha256)) or 0)

    def _bump(self, connection: Connection, tenant: str, *, generation: int = 0, deletions: int = 0) -> int:
        """Add to the tenant's counters (creating them); the new generation."""
        query = sa.select(document_index).where(document_index.c.tenant == tenant)
        if self._database.row_locks:
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(
                        document_index.insert().values(tenant=tenant, generation=generation, deletions=deletions)
                    )
                return generation
            except sa.exc.IntegrityError:  # another transaction made it meanwhile
                row = connection.execute(query).one()
        connection.execute(
            document_index.update()
            .where(document_index.c.tenant == tenant)
            .values(generation=row.generation + generation, deletions=row.deletions + deletions)
        )
        return int(row.generation + generation)

    # --- reading --------------------------------------------------------------------------

    def get(self, document_id: str, tenant: str | None) -> DocumentRow:
        if not is_job_id(document_id):
            raise DocumentNotFound(f"no document {document_id[:40]!r}", document_id=document_id[:40])
        query = sa.select(documents).where(documents.c.id == document_id)
        if tenant is not None:
            query = query.where(documents.c.tenant == tenant)
        with self._database.reading() as connection:
            row = connection.execute(query).first()
            if row is None:
                raise DocumentNotFound(f"no document {document_id!r}", document_id=document_id)
            return _named(connection, [DocumentRow.from_row(row._mapping)])[0]

    def pages(self, document_id: str) -> list[PageRow]:
        with self._database.reading() as connection:
            rows = connection.execute(
                sa.select(document_pages)
                .where(document_pages.c.document_id == document_id)
                .order_by(document_pages.c.number)
            )
            return [PageRow(row.number, row.method, row.ocr_confidence, row.reason, row.text) for row in rows]

    def chunk_counts(self, document_id: str) -> tuple[int, int]:
        """(chunks, chunks with a vector)."""
        with self._database.reading() as connection:
            total, embedded = connection.execute(
                sa.select(sa.func.count(), sa.func.count(document_chunks.c.embedding)).where(
                    document_chunks.c.document_id == document_id
                )
            ).one()
        return int(total), int(embedded)

    def chunks(self, document_id: str) -> list[ChunkRow]:
        with self._database.reading() as connection:
            rows = connection.execute(
                sa.select(*_CHUNK_COLUMNS)
                .where(document_chunks.c.document_id == document_id)
                .order_by(document_chunks.c.ordinal)
            )
            return [ChunkRow(*row) for row in rows]

    def chunks_by_id(self, chunk_ids: Iterable[int]) -> dict[int, ChunkRow]:
        wanted = sorted(set(chunk_ids))
        if not wanted:
            return {}
        with self._database.reading() as connection:
            rows = connection.execute(sa.select(*_CHUNK_COLUMNS).where(document_chunks.c.id.in_(wanted)))
            return {row.id: ChunkRow(*row) for row in rows}

    def list_documents(self, where: DocumentFilter, *, limit: int = 50, cursor: str | None = None) -> list[DocumentRow]:
        query = _filtered(sa.select(documents), where)
        if cursor:
            query = query.where(documents.c.id < cursor)
        with self._database.reading() as connection:
            rows = connection.execute(query.order_by(documents.c.id.desc()).limit(limit))
            return _named(connection, [DocumentRow.from_row(row._mapping) for row in rows])

    def keyword_search(
        self, where: DocumentFilter, terms: Sequence[Sequence[str]], limit: int = KEYWORD_CANDIDATES
    ) -> list[tuple[int, float]]:
        """Chunk ids and scores (higher is better) of chunks matching ``terms`` (each a phrase
        of folded tokens, letters and digits only), best first: those holding every phrase
        first, then, when they are fewer than ``limit``, those holding any.

        Ranking costs about a microsecond a chunk matched, and words common in an archive
        match most of it, so a search ranks about `KEYWORD_BUDGET` chunks a part at most:
        the "any phrase" part ranks the chunks holding the rarest phrases that fit the
        budget (phrases in many chunks weigh little in bm25), then, if too few, the newest
        chunks holding any; a part matching more than the budget even so ranks the newest
        chunks matched (its words say little; vectors decide). Below the budget, as in any
        archive of a few thousand chunks, ranking is exact."""
        phrases = [[token for token in phrase if token.isalnum()] for phrase in terms]
        phrases = [phrase for phrase in phrases if phrase]
        if not phrases:
            return []
        search = self._keyword_sqlite if self.dialect == "sqlite" else self._keyword_postgres
        with self._database.reading() as connection:
            sizes = self._keyword_sizes(connection, phrases)
            # As many as hold every phrase, if phrases came independently of each other.
            chunks = max(1, (self._span[1] - self._span[0] + 1) if self._span else 1)
            holding = min(*sizes, int(chunks * math.prod(size / chunks for size in sizes)))
            found = self._keyword_bounded(connection, search, where, phrases, limit, holding, every=True)
            if len(found) < limit and len(phrases) > 1:
                # Fewer chunks hold every phrase than asked for: the others, ranked after them.
                rarest = sorted(zip(sizes, range(len(phrases)), strict=True))
                chosen, matched = [phrases[rarest[0][1]]], rarest[0][0]
                for size, index in rarest[1:]:
                    if matched + size > self._keyword_budget:
                        break
                    chosen.append(phrases[index])
                    matched += size
                parts = [(chosen, matched)] + ([(phrases, sum(sizes))] if len(chosen) < len(phrases) else [])
                for part, size in parts:
                    seen = {chunk_id for chunk_id, _ in found}
                    anyof = self._keyword_bounded(connection, search, where, part, limit, size, every=False)
                    found += [item for item in anyof if item[0] not in seen]
                    if len(found) >= limit:
                        break
        return found[:limit]

    @property
    def _keyword_budget(self) -> int:
        return KEYWORD_BUDGET if self.dialect == "sqlite" else KEYWORD_BUDGET_POSTGRES

    def _keyword_bounded(
        self,
        connection: Connection,
        search: _KeywordQuery,
        where: DocumentFilter,
        phrases: list[list[str]],
        limit: int,
        matched: int,
        *,
        every: bool,
    ) -> list[tuple[int, float]]:
        """``search`` over the newest chunks only when about ``matched`` chunks (of every
        tenant) would match, more than the budget; over eight times as many, then all of them,
        if that finds too few (as when another tenant's chunks are the newest, or a filter
        leaves few)."""
        if matched <= self._keyword_budget or self._span is None:
            return search(connection, where, phrases, limit, every, None)
        first, last = self._span
        for budget in (self._keyword_budget, 8 * self._keyword_budget):
            if budget >= matched:
                break
            found = search(connection, where, phrases, limit, every, last - (last - first + 1) * budget // matched)
            if len(found) >= limit:
                return found
        return search(connection, where, phrases, limit, every, None)

    def _keyword_sizes(self, connection: Connection, phrases: list[list[str]]) -> list[int]:
        """How many chunks (of every tenant) hold each phrase, remembered until a chunk is
        added or deleted."""
        # Each its own query: SQLite reads min() alone, or max(), from the index, not both.
        first = connection.scalar(sa.select(sa.func.min(document_chunks.c.id)))
        last = connection.scalar(sa.select(sa.func.max(document_chunks.c.id)))
        deletions = connection.scalar(sa.select(sa.func.coalesce(sa.func.sum(document_index.c.deletions), 0)))
        version = (first, last, deletions)
        if version != self._sizes_version or len(self._sizes) > KEYWORD_SIZES_KEPT:
            self._sizes, self._sizes_version = {}, version
            self._span = None if first is None else (int(first), int(last))
        known, sizes = self._sizes, []
        for phrase in phrases:
            key = " ".join(phrase)
            size = known.get(key)
            if size is None:
                if self.dialect == "sqlite":
                    sql = "SELECT count(*) FROM vigia_document_chunks_fts WHERE vigia_document_chunks_fts MATCH :match"
                    size = int(connection.execute(sa.text(sql), {"match": f'"{key}"'}).scalar() or 0)
                else:  # counting visits every chunk matched; the planner's estimate (ANALYZE's) is enough
                    sql = "EXPLAIN (FORMAT JSON) SELECT 1 FROM vigia_document_chunks WHERE search_vector @@ to_tsquery('simple', :query)"  # noqa: E501
                    plan: Any = connection.execute(sa.text(sql), {"query": " <-> ".join(phrase)}).scalar()
                    size = int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])
                known[key] = size
            sizes.append(size)
        return sizes

    def _keyword_sqlite(
        self, connection: Connection, where: DocumentFilter, phrases: list[list[str]], limit: int, every: bool,
        lowest: int | None,
    ) -> list[tuple[int, float]]:  # fmt: skip
        match = (" AND " if every else " OR ").join('"' + " ".join(phrase) + '"' for phrase in phrases)
        joins, conditions, parameters = _filter_sql(where)
        newest = "" if lowest is None else " AND vigia_document_chunks_fts.rowid >= :lowest"
        sql = (
            "SELECT c.id, -bm25(vigia_document_chunks_fts) AS score FROM vigia_document_chunks_fts "
            "JOIN vigia_document_chunks c ON c.id = vigia_document_chunks_fts.rowid"
            f"{joins} WHERE vigia_document_chunks_fts MATCH :match{newest} AND {conditions} "
            "ORDER BY bm25(vigia_document_chunks_fts) LIMIT :limit"
        )
        rows = connection.execute(sa.text(sql), {**parameters, "match": match, "limit": limit, "lowest": lowest})
        return [(int(chunk_id), float(score)) for chunk_id, score in rows]

    def _keyword_postgres(
        self, connection: Connection, where: DocumentFilter, phrases: list[list[str]], limit: int, every: bool,
        lowest: int | None,
    ) -> list[tuple[int, float]]:  # fmt: skip
        query = (" & " if every else " | ").join("(" + " <-> ".join(phrase) + ")" for phrase in phrases)
        joins, conditions, parameters = _filter_sql(where)
        newest = "" if lowest is None else " AND c.id >= :lowest"
        sql = (
            "SELECT c.id, ts_rank_cd(c.search_vector, q) AS score "
            "FROM vigia_document_chunks c CROSS JOIN to_tsquery('simple', :query) q"
            f"{joins} WHERE c.search_vector @@ q{newest} AND {conditions} ORDER BY score DESC, c.id LIMIT :limit"
        )
        rows = connection.execute(sa.text(sql), {**parameters, "query": query, "limit": limit, "lowest": lowest})
        return [(int(chunk_id), float(score)) for chunk_id, score in rows]

    def index_state(self, tenant: str) -> tuple[int, int]:
        """(generation, deletions) of a tenant's vectors."""
        with self._database.reading() as connection:
            row = connection.execute(
                sa.select(document_index.c.generation, document_index.c.deletions).where(
                    document_index.c.tenant == tenant
                )
            ).first()
        return (int(row.generation), int(row.deletions)) if row is not None else (0, 0)

    def vectors_after(self, tenant: str, seq: int) -> VectorRows:
        """The tenant's vectors written after ``seq``, with their documents' attributes."""
        query = (
            sa.select(
                document_chunks.c.id,
                document_chunks.c.embedding,
                document_chunks.c.embedding_seq,
                documents.c.id,
                documents.c.doc_type,
                documents.c.language,
                documents.c.doc_date,
                documents.c.job_id,
            )
            .join(documents, documents.c.id == document_chunks.c.document_id)
            .where(document_chunks.c.tenant == tenant, document_chunks.c.embedding_seq > seq)
        )
        found = VectorRows([], [], [], [], [], [], [], [])
        with self._database.reading() as connection:
            for row in connection.execute(query):
                found.chunk_ids.append(int(row[0]))
                found.vectors.append(bytes(row[1]))
                found.seqs.append(int(row[2]))
                found.document_ids.append(row[3])
                found.doc_types.append(row[4])
                found.languages.append(row[5])
                found.doc_dates.append(row[6])
                found.job_ids.append(row[7])
        return found

    def stale_documents(self, model: str, limit: int = 100) -> list[str]:
        """Documents with a chunk whose vector is missing or was made by another model."""
        query = (
            sa.select(document_chunks.c.document_id)
            .where(
                sa.or_(
                    document_chunks.c.embedding.is_(None),
                    document_chunks.c.embedding_model != model,
                    document_chunks.c.embedding_model.is_(None),
                )
            )
            .group_by(document_chunks.c.document_id)
            .order_by(document_chunks.c.document_id)
            .limit(limit)
        )
        with self._database.reading() as connection:
            return list(connection.scalars(query))


_CHUNK_COLUMNS = (
    document_chunks.c.id,
    document_chunks.c.document_id,
    document_chunks.c.ordinal,
    document_chunks.c.page_start,
    document_chunks.c.page_end,
    document_chunks.c.start_offset,
    document_chunks.c.end_offset,
    document_chunks.c.text,
)


def _filtered(query: sa.Select[Any], where: DocumentFilter) -> sa.Select[Any]:
    query = query.where(documents.c.tenant == where.tenant)
    if where.doc_type is not None:
        query = query.where(documents.c.doc_type == where.doc_type)
    if where.language is not None:
        query = query.where(documents.c.language == where.language)
    if where.date_from is not None:
        query = query.where(documents.c.doc_date >= where.date_from)
    if where.date_to is not None:
        query = query.where(documents.c.doc_date <= where.date_to)
    if where.job_id is not None:
        query = query.where(documents.c.job_id == where.job_id)
    return query


def _filter_sql(where: DocumentFilter) -> tuple[str, str, dict[str, Any]]:
    """The join and conditions of a keyword query (raw SQL: the full-text parts are)."""
    conditions = ["c.tenant = :tenant"]
    parameters: dict[str, Any] = {"tenant": where.tenant}
    for column, value, operator in (
        ("doc_type", where.doc_type, "="),
        ("language", where.language, "="),
        ("doc_date", where.date_from, ">="),
        ("doc_date", where.date_to, "<="),
        ("job_id", where.job_id, "="),
    ):
        if value is not None:
            name = f"f_{column}_{len(parameters)}"
            conditions.append(f"d.{column} {operator} :{name}")
            parameters[name] = value
    joins = " JOIN vigia_documents d ON d.id = c.document_id" if len(conditions) > 1 else ""
    return joins, " AND ".join(conditions), parameters


def _named(connection: Connection, rows: list[DocumentRow]) -> list[DocumentRow]:
    """The rows with the file name their job was given: the client's name (which may be a
    patient's) is kept with the job only, never copied to the document."""
    names = upload_names(connection, [row.job_id for row in rows if row.job_id])
    return [dataclasses.replace(row, filename=names.get(row.job_id or "")) for row in rows]
