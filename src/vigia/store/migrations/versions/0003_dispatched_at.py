"""When a distributed executor sent each stage run to its queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.store.schema import Timestamp

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vigia_stage_runs", sa.Column("dispatched_at", Timestamp))


def downgrade() -> None:
    with op.batch_alter_table("vigia_stage_runs") as batch:
        batch.drop_column("dispatched_at")
