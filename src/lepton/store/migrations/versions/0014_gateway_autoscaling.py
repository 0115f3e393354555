"""The gateway, autoscaling and canaries.

- ``replicas`` gain ``url``: the replica's own address (``--own-port``), which the gateway
  sends requests to; NULL until it is ready, and for replicas started before this version
  (they are reached through the deployment's shared port only).
- ``deployments`` gain the autoscaling settings (``min_replicas`` and ``max_replicas``, NULL:
  a fixed ``replicas``; ``target_inflight`` per replica; ``scale_down_delay_s``, the quiet
  period; ``idle_timeout_s`` before scaling to zero; ``hold_timeout_s``, how long the gateway
  holds a request for a replica to start), the last scaling decision (``scaled_at``,
  ``scale_reason``), and the canary (``canary_generation`` and ``canary_share``, NULL: none;
  ``canary_error_margin``, ``canary_latency_margin`` and ``canary_window_s``, its judgement).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEPLOYMENT_COLUMNS = (
    ("min_replicas", sa.Integer(), None),
    ("max_replicas", sa.Integer(), None),
    ("target_inflight", sa.Float(), "8"),
    ("scale_down_delay_s", sa.Float(), "60"),
    ("idle_timeout_s", sa.Float(), "300"),
    ("hold_timeout_s", sa.Float(), "60"),
    ("scaled_at", UTCDateTime(), None),
    ("scale_reason", sa.Text(), None),
    ("canary_generation", sa.Integer(), None),
    ("canary_share", sa.Float(), None),
    ("canary_error_margin", sa.Float(), "0.05"),
    ("canary_latency_margin", sa.Float(), "2"),
    ("canary_window_s", sa.Float(), "30"),
)


def upgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("url", sa.String(200), nullable=True))
    with op.batch_alter_table("deployments") as batch:
        for name, kind, default in DEPLOYMENT_COLUMNS:
            batch.add_column(
                sa.Column(name, kind, nullable=default is None, server_default=default)
            )


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        for name, _, _ in reversed(DEPLOYMENT_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("replicas") as batch:
        batch.drop_column("url")
