"""What each replica of a deployment reserves: CPUs, memory and GPUs.

- ``deployments`` and ``deployment_revisions`` gain ``cpus`` (0: no reservation, what every
  replica had so far), ``memory_mb`` (NULL: the machine's default cap) and ``gpus`` (0). They are
  settings a replica starts with, so a revision keeps them for a rollback.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("deployments", "deployment_revisions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("cpus", sa.Float(), nullable=False, server_default="0"))
            batch.add_column(sa.Column("memory_mb", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("gpus", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("gpus", "memory_mb", "cpus"):
                batch.drop_column(column)
