"""Serving: photons (packaged services), deployments and their observed replicas.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "photons",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.String(256), nullable=False),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.UniqueConstraint("workspace_id", "name", "version", name="uq_photons_version"),
    )
    op.create_index("ix_photons_workspace_id", "photons", ["workspace_id"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("model_version_id", sa.String(32), sa.ForeignKey("model_versions.id")),
        sa.Column("photon_id", sa.String(32), sa.ForeignKey("photons.id")),
        sa.Column("source_ref", sa.String(160), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("max_batch_size", sa.Integer(), nullable=False),
        sa.Column("max_wait_ms", sa.Float(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("token_id", sa.String(32)),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
        sa.UniqueConstraint("workspace_id", "name", name="uq_deployments_workspace_name"),
    )
    op.create_index("ix_deployments_workspace_id", "deployments", ["workspace_id"])
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deployment_id", sa.String(32), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("restart_at", UTCDateTime()),
        sa.Column("log_offset", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("ready_at", UTCDateTime()),
    )
    op.create_index("ix_replicas_deployment_id", "replicas", ["deployment_id"])


def downgrade() -> None:
    op.drop_index("ix_replicas_deployment_id", "replicas")
    op.drop_table("replicas")
    op.drop_index("ix_deployments_workspace_id", "deployments")
    op.drop_table("deployments")
    op.drop_index("ix_photons_workspace_id", "photons")
    op.drop_table("photons")
