"""Model versions record the global explanation computed when they were registered.

A JSON column rather than a file in the artifact: the model card is rendered from the store's
facts alone, without fetching and unpacking the artifact. It is written once, with the row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("explanations_json", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("explanations_json")
