"""Jobs, stage runs and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Document, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vigia_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("pipeline_version", sa.String(50), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
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
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_vigia_jobs_idempotency"),
    )
    op.create_index("ix_vigia_jobs_tenant_id", "vigia_jobs", ["tenant", "id"])
    op.create_index("ix_vigia_jobs_tenant_state_id", "vigia_jobs", ["tenant", "state", "id"])
    op.create_index("ix_vigia_jobs_tenant_pipeline_id", "vigia_jobs", ["tenant", "pipeline", "id"])
    op.create_index("ix_vigia_jobs_state_id", "vigia_jobs", ["state", "id"])
    op.create_index("ix_vigia_jobs_state_finished", "vigia_jobs", ["state", "finished_at"])

    op.create_table(
        "vigia_stage_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", Timestamp, nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", Timestamp),
        sa.Column("started_at", Timestamp),
        sa.Column("finished_at", Timestamp),
        sa.Column("duration", sa.Float),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("output", Document),
        sa.UniqueConstraint("job_id", "stage", name="uq_vigia_stage_runs_job_stage"),
    )
    op.create_index(
        "ix_vigia_stage_runs_claim",
        "vigia_stage_runs",
        ["queue", "state", sa.text("priority DESC"), "available_at"],
    )
    op.create_index("ix_vigia_stage_runs_lease", "vigia_stage_runs", ["state", "lease_until"])

    op.create_table(
        "vigia_events",
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


def downgrade() -> None:
    op.drop_table("vigia_events")
    op.drop_table("vigia_stage_runs")
    op.drop_table("vigia_jobs")
