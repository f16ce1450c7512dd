"""Human-review items, the hash-chained audit log and its head, alerts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Document, Timestamp

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "vigia_reviews",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stage", sa.String(100)),
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
    )
    op.create_index("ix_vigia_reviews_tenant_status_id", "vigia_reviews", ["tenant", "status", "id"])
    op.create_index("ix_vigia_reviews_status_id", "vigia_reviews", ["status", "id"])
    op.create_index("ix_vigia_reviews_job_id", "vigia_reviews", ["job_id"])
    op.create_table(
        "vigia_audit",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("tenant", sa.String(100)),
        sa.Column("job_id", sa.String(32)),
        sa.Column("subject", sa.String(64)),
        sa.Column("details", Document),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_vigia_audit_at", "vigia_audit", ["at"])
    op.create_index("ix_vigia_audit_job_id", "vigia_audit", ["job_id"])
    head = op.create_table(
        "vigia_audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", BigId, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("first_seq", BigId, nullable=False),
        sa.Column("first_prev_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH, "first_seq": 1, "first_prev_hash": GENESIS_HASH}]
    )
    op.create_table(
        "vigia_alerts",
        sa.Column("rule", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("since", Timestamp, nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("notified_at", Timestamp),
    )


def downgrade() -> None:
    for table in ("vigia_alerts", "vigia_audit_head", "vigia_audit", "vigia_reviews"):
        op.drop_table(table)
