"""Queue depth samples kept by the watch, for the monitoring charts' last hour; and where
the audit chain becomes keyed (entries written before stay checkable as they were).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Timestamp

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vigia_queue_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("consumers", sa.Integer, nullable=False),
    )
    op.create_index("ix_vigia_queue_samples_at", "vigia_queue_samples", ["at"])
    with op.batch_alter_table("vigia_audit_head") as head:
        head.add_column(
            sa.Column(
                "keyed_from", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, server_default="1"
            )
        )
    # The entries already written were hashed without a key: keyed from the next one.
    op.execute("UPDATE vigia_audit_head SET keyed_from = last_seq + 1")


def downgrade() -> None:
    with op.batch_alter_table("vigia_audit_head") as head:
        head.drop_column("keyed_from")
    op.drop_index("ix_vigia_queue_samples_at", table_name="vigia_queue_samples")
    op.drop_table("vigia_queue_samples")
