"""Jobs, their metrics, the model registry; version numbers that are never reused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE datasets SET last_version = (SELECT COALESCE(MAX(version), 0) "
        "FROM dataset_versions WHERE dataset_versions.dataset_id = datasets.id)"
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("dataset_version_id", sa.String(32), sa.ForeignKey("dataset_versions.id")),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("created_by", sa.String(32)),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_fix", sa.Text()),
        sa.Column("result_json", sa.Text()),
        sa.Column("environment_json", sa.Text()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("token_id", sa.String(32)),
        sa.Column("checkpoint_digest", sa.String(64)),
    )
    op.create_index("ix_jobs_workspace_id", "jobs", ["workspace_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_job_metrics_job_id_id", "job_metrics", ["job_id", "id"])
    op.create_table(
        "models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_models_workspace_name"),
    )
    op.create_index("ix_models_workspace_id", "models", ["workspace_id"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("flavour", sa.String(16), nullable=False),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("signature_json", sa.Text(), nullable=False),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("leaderboard_json", sa.Text(), nullable=False),
        sa.Column("environment_json", sa.Text()),
        sa.Column("dataset_version_id", sa.String(32), sa.ForeignKey("dataset_versions.id")),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_number"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_model_id", "model_versions")
    op.drop_table("model_versions")
    op.drop_index("ix_models_workspace_id", "models")
    op.drop_table("models")
    op.drop_index("ix_job_metrics_job_id_id", "job_metrics")
    op.drop_table("job_metrics")
    op.drop_index("ix_jobs_state", "jobs")
    op.drop_index("ix_jobs_workspace_id", "jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("last_version")
