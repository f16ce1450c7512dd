"""The files each job's input names (for retention), filled in for the jobs already stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vigia.blobs import digests_in

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Jobs read per statement while filling the table in.
BATCH = 2000


def upgrade() -> None:
    op.create_table(
        "vigia_job_files",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("vigia_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
    )
    op.create_index("ix_vigia_job_files_sha256", "vigia_job_files", ["sha256"])
    connection = op.get_bind()
    jobs = sa.table("vigia_jobs", sa.column("id", sa.String), sa.column("input", sa.JSON))
    files = sa.table("vigia_job_files", sa.column("job_id", sa.String), sa.column("sha256", sa.String))
    after = ""
    while True:
        rows = connection.execute(
            sa.select(jobs.c.id, jobs.c.input).where(jobs.c.id > after).order_by(jobs.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        named = [{"job_id": job_id, "sha256": digest} for job_id, value in rows for digest in digests_in(value)]
        if named:
            connection.execute(files.insert(), named)
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_vigia_job_files_sha256", table_name="vigia_job_files")
    op.drop_table("vigia_job_files")
