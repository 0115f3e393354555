"""A deployment's revision history, so that a rollback knows what earlier generations served.

- ``deployment_revisions``: one row per generation of a deployment: the model version or
  photon, the reference as asked for, batching, timeout, variables and secret names (never
  values), why it began and who began it. Keyed by deployment and generation; the rows go with
  their deployment (``ON DELETE CASCADE``), and a photon or model version deleted later leaves
  NULL behind (``ON DELETE SET NULL``) rather than being held up by history.
- Backfilled with the generation each existing deployment runs now, so a rollback has at least
  that one: earlier generations were never recorded. A deployment still at generation 1 gets
  its creation (time, author, ``created``); a later one gets its last change time and no author
  (``updated_at`` also moves on a scale, so the time is when it last changed at all).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILLED = "recorded at upgrade; earlier generations were not kept"


def upgrade() -> None:
    op.create_table(
        "deployment_revisions",
        sa.Column(
            "deployment_id",
            sa.String(32),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column(
            "model_version_id",
            sa.String(32),
            sa.ForeignKey("model_versions.id", ondelete="SET NULL"),
        ),
        sa.Column("photon_id", sa.String(32), sa.ForeignKey("photons.id", ondelete="SET NULL")),
        sa.Column("source_ref", sa.String(160), nullable=False),
        sa.Column("max_batch_size", sa.Integer(), nullable=False),
        sa.Column("max_wait_ms", sa.Float(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("env_json", sa.Text()),
        sa.Column("secrets_json", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32)),
    )
    op.execute(
        sa.text(
            "INSERT INTO deployment_revisions (deployment_id, generation, model_version_id, "
            "photon_id, source_ref, max_batch_size, max_wait_ms, timeout_s, env_json, "
            "secrets_json, reason, created_at, created_by) "
            "SELECT id, generation, model_version_id, photon_id, source_ref, max_batch_size, "
            "max_wait_ms, timeout_s, env_json, secrets_json, "
            "CASE WHEN generation = 1 THEN 'created' ELSE :backfilled END, "
            "CASE WHEN generation = 1 THEN created_at ELSE updated_at END, "
            "CASE WHEN generation = 1 THEN created_by END "
            "FROM deployments"
        ).bindparams(backfilled=BACKFILLED)
    )


def downgrade() -> None:
    op.drop_table("deployment_revisions")
