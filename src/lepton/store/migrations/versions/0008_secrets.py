"""Workspace secrets, and the variables and secrets a deployment's replicas get.

- ``secrets``: one row per workspace and name, the value sealed (AES-256-GCM under the control
  plane's key, workspace id and name as associated data). Nothing is backfilled: there were none.
- ``deployments.env_json`` / ``secrets_json``: what its replicas get (secrets by name only);
  NULL, read as none, for the deployments made before.
- ``jobs.secret_mask`` / ``deployments.secret_mask``: the values given to a job or to a
  deployment's replicas, sealed, so their logs are served with those values masked even after
  the secret changes or is deleted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
        # Also the index of a workspace's list, which pages by name.
        sa.UniqueConstraint("workspace_id", "name", name="uq_secrets_workspace_name"),
    )
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("env_json", sa.Text()))
        batch.add_column(sa.Column("secrets_json", sa.Text()))
        batch.add_column(sa.Column("secret_mask", sa.LargeBinary()))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("secret_mask", sa.LargeBinary()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("secret_mask")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("secret_mask")
        batch.drop_column("secrets_json")
        batch.drop_column("env_json")
    op.drop_table("secrets")
