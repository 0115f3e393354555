"""A deployment's row limit per request: the most rows one /predict or /explain may carry.

- ``deployments.max_rows`` and ``deployment_revisions.max_rows``: an integer, 100,000 for the
  deployments and revisions that exist (the default a new deployment gets too). It is one of
  the settings a replica starts with, so a revision keeps it for a rollback.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("deployments", "deployment_revisions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("max_rows", sa.Integer(), nullable=False, server_default="100000")
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("max_rows")
