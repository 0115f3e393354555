"""Metric batches sent twice are stored once.

- ``job_metrics.batch``: the id a runner gives each batch of metric points it sends. A runner
  whose answer was cut (the control plane restarted) sends the same batch again; the points of a
  batch whose id is already the job's last are not stored a second time. NULL for the points
  that exist, and for clients that send no id.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:
        batch.add_column(sa.Column("batch", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:
        batch.drop_column("batch")
