"""API keys and batches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Timestamp

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vigia_api_keys",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp),
    )
    op.create_table(
        "vigia_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("pipeline", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_vigia_batches_tenant_id", "vigia_batches", ["tenant", "id"])
    op.add_column("vigia_jobs", sa.Column("batch_id", sa.String(32)))
    op.create_index("ix_vigia_jobs_batch_id", "vigia_jobs", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_vigia_jobs_batch_id", "vigia_jobs")
    with op.batch_alter_table("vigia_jobs") as batch:
        batch.drop_column("batch_id")
    op.drop_table("vigia_batches")
    op.drop_table("vigia_api_keys")
