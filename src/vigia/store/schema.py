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
