"""Datasets, their immutable versions, and stored splits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("workspace_id", "name", name="uq_datasets_workspace_name"),
    )
    op.create_index("ix_datasets_workspace_id", "datasets", ["workspace_id"])
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("source_name", sa.String(256), nullable=False),
        sa.Column("source_digest", sa.String(64), nullable=False),
        sa.Column("source_size", sa.BigInteger(), nullable=False),
        sa.Column("data_digest", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("schema_json", sa.Text(), nullable=False),
        sa.Column("profile_json", sa.Text(), nullable=False),
        sa.Column("pii_json", sa.Text(), nullable=False),
        sa.Column("target", sa.String(256)),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("dataset_versions.id")),
        sa.Column("transform_json", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
    )
    op.create_index("ix_dataset_versions_dataset_id", "dataset_versions", ["dataset_id"])
    op.create_index(
        "ix_dataset_versions_content", "dataset_versions", ["dataset_id", "content_hash"]
    )
    op.create_table(
        "dataset_splits",
        sa.Column(
            "version_id", sa.String(32), sa.ForeignKey("dataset_versions.id"), primary_key=True
        ),
        sa.Column("spec_hash", sa.String(64), primary_key=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("counts_json", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dataset_splits")
    op.drop_index("ix_dataset_versions_content", "dataset_versions")
    op.drop_index("ix_dataset_versions_dataset_id", "dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index("ix_datasets_workspace_id", "datasets")
    op.drop_table("datasets")
