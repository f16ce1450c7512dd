"""The job store's tables. Migrations under `migrations/` build exactly this schema."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

#: JSON documents: JSONB on PostgreSQL, JSON text elsewhere. SQL NULL (not JSON null) for None.
Document = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
#: Times are epoch seconds: cheap to compare and the same on every database.
Timestamp = sa.Float(precision=53).with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")

jobs = sa.Table(
    "vigia_jobs",
    metadata,
    # Time-ordered ids: ordering by id is ordering by submission, which keeps listings on
    # one index.
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("pipeline", sa.String(100), nullable=False),
    sa.Column("pipeline_version", sa.String(50), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("current_stage", sa.String(100)),
    sa.Column("input", Document),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("result", Document),
    sa.Column("error_type", sa.String(200)),
    sa.Column("error_message", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False, default=0),
    sa.Column("batch_id", sa.String(32)),
    sa.UniqueConstraint("tenant", "idempotency_key", name="uq_vigia_jobs_idempotency"),
    sa.Index("ix_vigia_jobs_tenant_id", "tenant", "id"),
    sa.Index("ix_vigia_jobs_tenant_state_id", "tenant", "state", "id"),
    sa.Index("ix_vigia_jobs_tenant_pipeline_id", "tenant", "pipeline", "id"),
    # Listings across tenants (administrators, monitoring) by state.
    sa.Index("ix_vigia_jobs_state_id", "state", "id"),
    sa.Index("ix_vigia_jobs_batch_id", "batch_id"),
    # Retention and monitoring scan finished jobs by time.
    sa.Index("ix_vigia_jobs_state_finished", "state", "finished_at"),
)

stage_runs = sa.Table(
    "vigia_stage_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stage", sa.String(100), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("queue", sa.String(100), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("available_at", Timestamp, nullable=False),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_until", Timestamp),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("duration", sa.Float),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("error_type", sa.String(200)),
    sa.Column("error_message", sa.Text),
    sa.Column("output", Document),
    sa.Column("dispatched_at", Timestamp),
    sa.UniqueConstraint("job_id", "stage", name="uq_vigia_stage_runs_job_stage"),
    # The reaper looks for running stage runs whose lease has expired.
    sa.Index("ix_vigia_stage_runs_lease", "state", "lease_until"),
)

# Workers claim per queue and state, highest priority first, oldest first within a priority:
# the index gives rows in exactly that order, so a claim reads only the rows it takes.
sa.Index(
    "ix_vigia_stage_runs_claim",
    stage_runs.c.queue,
    stage_runs.c.state,
    stage_runs.c.priority.desc(),
    stage_runs.c.available_at,
)

events = sa.Table(
    "vigia_events",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(100)),
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("stage_progress", sa.Float),
)

api_keys = sa.Table(
    "vigia_api_keys",
    metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # SHA-256 of the secret part; the key itself is shown once and never stored.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp),
)

batches = sa.Table(
    "vigia_batches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("pipeline", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_vigia_batches_tenant_id", "tenant", "id"),
)

reviews = sa.Table(
    "vigia_reviews",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stage", sa.String(100)),
    # failure (a stage failed often enough), result (a rule on a stage's output), request (a
    # stage asked for a human itself).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("role", sa.String(100), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("acknowledged_at", Timestamp),
    sa.Column("acknowledged_by", sa.String(100)),
    sa.Column("resolved_at", Timestamp),
    sa.Column("resolved_by", sa.String(100)),
    sa.Column("resolution", sa.Text),
    sa.Index("ix_vigia_reviews_tenant_status_id", "tenant", "status", "id"),
    sa.Index("ix_vigia_reviews_status_id", "status", "id"),
    sa.Index("ix_vigia_reviews_job_id", "job_id"),
)

# The audit log outlives the jobs it names (its own retention), so no foreign keys.
audit_log = sa.Table(
    "vigia_audit",
    metadata,
    # The place in the hash chain, given under the lock of `audit_head`: gap-free.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("tenant", sa.String(100)),
    sa.Column("job_id", sa.String(32)),
    # A keyed hash of the patient identifier, never the identifier.
    sa.Column("subject", sa.String(64)),
    sa.Column("details", Document),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_vigia_audit_at", "at"),
    sa.Index("ix_vigia_audit_job_id", "job_id"),
)

# One row: the end of the chain (locked by each writer: entries are chained in commit order)
# and where it begins after retention removed older entries.
audit_head = sa.Table(
    "vigia_audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("first_seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("first_prev_hash", sa.String(64), nullable=False),
    # Entries from this one on are keyed (HMAC); those before, of an older version, are not.
    sa.Column("keyed_from", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, server_default="1"),
)

# Alerts now pending or firing, one per rule and key; their history is in the audit log.
alerts = sa.Table(
    "vigia_alerts",
    metadata,
    sa.Column("rule", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("since", Timestamp, nullable=False),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("notified_at", Timestamp),
)

# --- the document workload ---------------------------------------------------------------

documents = sa.Table(
    "vigia_documents",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(100), nullable=False),
    # The file's content hash: a tenant's same file is one document.
    sa.Column("sha256", sa.String(64), nullable=False),
    # The job that ingested it (kept when the job is purged: no foreign key).
    sa.Column("job_id", sa.String(32)),
    sa.Column("filename", sa.String(255)),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("doc_type", sa.String(50)),
    sa.Column("language", sa.String(8)),
    # The date of issue, ISO 8601 (compares as text).
    sa.Column("doc_date", sa.String(10)),
    sa.Column("page_count", sa.Integer, nullable=False),
    # Each field with where it came from, the extraction methods, what degraded.
    sa.Column("details", Document),
    # "indexed", or "degraded" (metadata or embeddings missing: keyword search still finds it).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("tenant", "sha256", name="uq_vigia_documents_tenant_sha256"),
    sa.Index("ix_vigia_documents_tenant_id", "tenant", "id"),
    sa.Index("ix_vigia_documents_sha256", "sha256"),
)

document_pages = sa.Table(
    "vigia_document_pages",
    metadata,
    sa.Column("document_id", sa.String(32), sa.ForeignKey("vigia_documents.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    # text_layer, ocr, empty or failed
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("ocr_confidence", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("text", sa.Text, nullable=False),
)

document_chunks = sa.Table(
    "vigia_document_chunks",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.String(32), sa.ForeignKey("vigia_documents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant", sa.String(100), nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("page_start", sa.Integer, nullable=False),
    sa.Column("page_end", sa.Integer, nullable=False),
    # Offsets in the document's cleaned text.
    sa.Column("start_offset", sa.Integer, nullable=False),
    sa.Column("end_offset", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    # The text as the keyword index holds it: lower-case tokens without accents, spaced.
    sa.Column("folded", sa.Text, nullable=False),
    # float32 little-endian; NULL until embedded (or when embedding degraded).
    sa.Column("embedding", sa.LargeBinary),
    sa.Column("embedding_model", sa.String(200)),
    # When the vector was written, in the tenant's index generations: searchers load what is newer.
    sa.Column("embedding_seq", sa.BigInteger),
    sa.UniqueConstraint("document_id", "ordinal", name="uq_vigia_document_chunks_ordinal"),
    sa.Index("ix_vigia_document_chunks_tenant_seq", "tenant", "embedding_seq"),
)

# Per tenant, counters searchers compare with what they hold in memory.
document_index = sa.Table(
    "vigia_document_index",
    metadata,
    sa.Column("tenant", sa.String(100), primary_key=True),
    # Bumped by every vector written (each gets the new value as its `embedding_seq`).
    sa.Column("generation", sa.BigInteger, nullable=False),
    # Bumped by every deletion: a searcher then reloads the tenant's vectors whole.
    sa.Column("deletions", sa.BigInteger, nullable=False),
)

# --- monitoring history --------------------------------------------------------------------

#: Queue depths as the watch saw them, one row per queue per check: what a chart of the last
#: hour draws, surviving a restart of the server.
queue_samples = sa.Table(
    "vigia_queue_samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("queue", sa.String(100), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("consumers", sa.Integer, nullable=False),
    sa.Index("ix_vigia_queue_samples_at", "at"),
)

# The files (blob content hashes) each job's input names: retention deletes a blob once no
# job and no document names it any more, without reading every job's input to find out.
job_files = sa.Table(
    "vigia_job_files",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Index("ix_vigia_job_files_sha256", "sha256"),
)
