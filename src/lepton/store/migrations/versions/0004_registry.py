"""The registry: aliases, evaluations, and version fields for descriptions, derived versions
and deletion.

A deleted version keeps its row as a tombstone (``deleted_at`` set, ``artifact_digest``
cleared so its bytes can be erased): its number is never reused, lineage through it stays
whole, and asking for its card says it was deleted rather than that it never existed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column("artifact_digest", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("description", sa.Text()))
        batch.add_column(sa.Column("parent_id", sa.String(32)))
        batch.add_column(sa.Column("deleted_at", UTCDateTime()))
        batch.add_column(sa.Column("deleted_by", sa.String(32)))
        batch.create_foreign_key(
            "fk_model_versions_parent_id", "model_versions", ["parent_id"], ["id"]
        )
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(63), primary_key=True),
        sa.Column("version_id", sa.String(32), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(32)),
    )
    op.create_index("ix_model_aliases_version_id", "model_aliases", ["version_id"])
    op.create_table(
        "model_evaluations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "model_version_id", sa.String(32), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        # SET NULL: deleting a dataset version or a job keeps the evaluation, without the link.
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column(
            "dataset_version_id",
            sa.String(32),
            sa.ForeignKey("dataset_versions.id", ondelete="SET NULL"),
        ),
        sa.Column("split", sa.String(16)),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
    )
    op.create_index(
        "ix_model_evaluations_model_version_id", "model_evaluations", ["model_version_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_model_evaluations_model_version_id", "model_evaluations")
    op.drop_table("model_evaluations")
    op.drop_index("ix_model_aliases_version_id", "model_aliases")
    op.drop_table("model_aliases")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint("fk_model_versions_parent_id", type_="foreignkey")
        batch.drop_column("deleted_by")
        batch.drop_column("deleted_at")
        batch.drop_column("parent_id")
        batch.drop_column("description")
        batch.alter_column("artifact_digest", existing_type=sa.String(64), nullable=False)
