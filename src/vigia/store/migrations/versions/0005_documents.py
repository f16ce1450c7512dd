"""Documents, their pages and chunks (the document workload), and their keyword index.

The keyword index is not in `vigia.store.schema`'s metadata: it is the database's own
full-text machinery, different on each. SQLite: an FTS5 table over the chunks' folded text
(kept in step by triggers), ranked with bm25(). PostgreSQL: a stored tsvector column of it
('simple' configuration: the text is folded already) with a GIN index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Document, Timestamp

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE vigia_document_chunks_fts USING fts5("
    "folded, content='vigia_document_chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER vigia_document_chunks_ai AFTER INSERT ON vigia_document_chunks BEGIN "
    "INSERT INTO vigia_document_chunks_fts(rowid, folded) VALUES (new.id, new.folded); END",
    "CREATE TRIGGER vigia_document_chunks_ad AFTER DELETE ON vigia_document_chunks BEGIN "
    "INSERT INTO vigia_document_chunks_fts(vigia_document_chunks_fts, rowid, folded) "
    "VALUES ('delete', old.id, old.folded); END",
    "CREATE TRIGGER vigia_document_chunks_au AFTER UPDATE OF folded ON vigia_document_chunks BEGIN "
    "INSERT INTO vigia_document_chunks_fts(vigia_document_chunks_fts, rowid, folded) "
    "VALUES ('delete', old.id, old.folded); "
    "INSERT INTO vigia_document_chunks_fts(rowid, folded) VALUES (new.id, new.folded); END",
]
POSTGRES_FTS = [
    "ALTER TABLE vigia_document_chunks ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', folded)) STORED",
    "CREATE INDEX ix_vigia_document_chunks_search ON vigia_document_chunks USING gin (search_vector)",
]


def upgrade() -> None:
    op.create_table(
        "vigia_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(32)),
        sa.Column("filename", sa.String(255)),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("doc_type", sa.String(50)),
        sa.Column("language", sa.String(8)),
        sa.Column("doc_date", sa.String(10)),
        sa.Column("page_count", sa.Integer, nullable=False),
        sa.Column("details", Document),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("tenant", "sha256", name="uq_vigia_documents_tenant_sha256"),
    )
    op.create_index("ix_vigia_documents_tenant_id", "vigia_documents", ["tenant", "id"])
    op.create_index("ix_vigia_documents_sha256", "vigia_documents", ["sha256"])
    op.create_table(
        "vigia_document_pages",
        sa.Column(
            "document_id", sa.String(32), sa.ForeignKey("vigia_documents.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("ocr_confidence", sa.Float),
        sa.Column("reason", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "vigia_document_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "document_id", sa.String(32), sa.ForeignKey("vigia_documents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("page_start", sa.Integer, nullable=False),
        sa.Column("page_end", sa.Integer, nullable=False),
        sa.Column("start_offset", sa.Integer, nullable=False),
        sa.Column("end_offset", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("folded", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary),
        sa.Column("embedding_model", sa.String(200)),
        sa.Column("embedding_seq", sa.BigInteger),
        sa.UniqueConstraint("document_id", "ordinal", name="uq_vigia_document_chunks_ordinal"),
    )
    op.create_index("ix_vigia_document_chunks_tenant_seq", "vigia_document_chunks", ["tenant", "embedding_seq"])
    op.create_table(
        "vigia_document_index",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("deletions", sa.BigInteger, nullable=False),
    )
    for statement in SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS vigia_document_chunks_fts")
    op.drop_table("vigia_document_index")
    op.drop_table("vigia_document_chunks")
    op.drop_table("vigia_document_pages")
    op.drop_table("vigia_documents")
