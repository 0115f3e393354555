"""Where the workers of a data-parallel job meet: rank 0's store address, per attempt.

- ``jobs.rendezvous``: JSON ``{"attempt": N, "address": "host:port"}`` written by rank 0 of
  attempt N when it opens its ``torch.distributed`` store, read by the other workers of that
  attempt. NULL for every job that exists (they ran on one worker).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("rendezvous", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("rendezvous")
