"""One record of stored bytes in use, and one numbering helper.

- ``blob_objects``: a row per stored object, the row writers and erasers lock.
- ``content_refs``: every use of an object by its owner. It replaces the ``blobs`` table (a
  workspace's uploads become ``upload`` references) and the scans over digest columns and JSON
  text that found the rest; it is backfilled from all of them here.
- ``counters``: the last number of each numbered series. Datasets' and models' ``last_version``
  move here; photons, numbered ``max + 1`` until now, start from their highest number.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lepton.store.models import UTCDateTime, utcnow

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    objects = op.create_table(
        "blob_objects",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    refs = op.create_table(
        "content_refs",
        sa.Column("digest", sa.String(64), sa.ForeignKey("blob_objects.digest"), primary_key=True),
        sa.Column("owner_kind", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(160), primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_content_refs_owner", "content_refs", ["owner_kind", "owner_id"])
    op.create_index("ix_content_refs_workspace_digest", "content_refs", ["workspace_id", "digest"])
    counters = op.create_table(
        "counters",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    connection = op.get_bind()
    found = _existing_refs(connection)
    sizes: dict[str, int | None] = {}
    for digest, _kind, _owner, _role, _ws, size in found:
        sizes[digest] = sizes.get(digest) or size
    now = utcnow()
    if sizes:
        op.bulk_insert(
            objects, [{"digest": d, "size": s, "created_at": now} for d, s in sorted(sizes.items())]
        )
    unique = {(d, k, o, r): ws for d, k, o, r, ws, _ in found}
    if unique:
        op.bulk_insert(
            refs,
            [
                {
                    "digest": d,
                    "owner_kind": k,
                    "owner_id": o,
                    "role": r,
                    "workspace_id": ws,
                    "created_at": now,
                }
                for (d, k, o, r), ws in sorted(unique.items())
            ],
        )
    numbered = [
        {"kind": "dataset_version", "key": i, "last": n}
        for i, n in connection.execute(sa.text("SELECT id, last_version FROM datasets"))
    ]
    numbered += [
        {"kind": "model_version", "key": i, "last": n}
        for i, n in connection.execute(sa.text("SELECT id, last_version FROM models"))
    ]
    numbered += [
        {"kind": "photon", "key": f"{ws}/{name}", "last": n}
        for ws, name, n in connection.execute(
            sa.text(
                "SELECT workspace_id, name, MAX(version) FROM photons GROUP BY workspace_id, name"
            )
        )
    ]
    if numbered:
        op.bulk_insert(counters, numbered)
    # A plain column: SQLite (3.35+) and PostgreSQL drop it in place, no table rebuild.
    op.execute("ALTER TABLE datasets DROP COLUMN last_version")
    op.execute("ALTER TABLE models DROP COLUMN last_version")
    op.drop_table("blobs")


Ref = tuple[str, str, str, str, str, int | None]


def _existing_refs(connection: sa.Connection) -> list[Ref]:
    """Every use of stored bytes the earlier schema recorded, in its several places."""
    q = connection.execute
    found: list[Ref] = [
        (d, "upload", ws, "upload", ws, size)
        for ws, d, size in q(sa.text("SELECT workspace_id, digest, size FROM blobs"))
    ]
    for vid, ws, source, size, data in q(
        sa.text(
            "SELECT v.id, d.workspace_id, v.source_digest, v.source_size, v.data_digest "
            "FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
        )
    ):
        found.append((source, "dataset_version", vid, "source", ws, size))
        found.append((data, "dataset_version", vid, "data", ws, None))
    for vid, spec_hash, digest, ws in q(
        sa.text(
            "SELECT s.version_id, s.spec_hash, s.digest, d.workspace_id FROM dataset_splits s "
            "JOIN dataset_versions v ON v.id = s.version_id JOIN datasets d ON d.id = v.dataset_id"
        )
    ):
        found.append((digest, "split", f"{vid}/{spec_hash}", "assignment", ws, None))
    for vid, ws, artifact, explanations in q(
        sa.text(
            "SELECT v.id, m.workspace_id, v.artifact_digest, v.explanations_json "
            "FROM model_versions v JOIN models m ON m.id = v.model_id"
        )
    ):
        if artifact:
            found.append((artifact, "model_version", vid, "artifact", ws, None))
        plot = json.loads(explanations).get("plot") if explanations else None
        if plot:
            found.append((str(plot), "model_version", vid, "explanation-plot", ws, None))
    for eid, ws, result in q(
        sa.text(
            "SELECT e.id, m.workspace_id, e.result_json FROM model_evaluations e "
            "JOIN model_versions v ON v.id = e.model_version_id JOIN models m ON m.id = v.model_id"
        )
    ):
        for name, digest in (json.loads(result).get("plots") or {}).items():
            found.append((str(digest), "evaluation", eid, f"plot:{name}"[:64], ws, None))
    for pid, ws, digest, size in q(sa.text("SELECT id, workspace_id, digest, size FROM photons")):
        found.append((digest, "photon", pid, "package", ws, size))
    for jid, ws, checkpoint in q(
        sa.text(
            "SELECT id, workspace_id, checkpoint_digest FROM jobs "
            "WHERE checkpoint_digest IS NOT NULL"
        )
    ):
        found.append((checkpoint, "job", jid, "checkpoint", ws, None))
    return found


def downgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id"), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO blobs (workspace_id, digest, size, created_at) "
        "SELECT r.workspace_id, r.digest, COALESCE(o.size, 0), r.created_at FROM content_refs r "
        "JOIN blob_objects o ON o.digest = r.digest WHERE r.owner_kind = 'upload'"
    )
    for table in ("datasets", "models"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
            )
    op.execute(
        "UPDATE datasets SET last_version = COALESCE((SELECT last FROM counters c WHERE "
        "c.kind = 'dataset_version' AND c.key = datasets.id), 0)"
    )
    op.execute(
        "UPDATE models SET last_version = COALESCE((SELECT last FROM counters c WHERE "
        "c.kind = 'model_version' AND c.key = models.id), 0)"
    )
    op.drop_table("counters")
    op.drop_index("ix_content_refs_workspace_digest", "content_refs")
    op.drop_index("ix_content_refs_owner", "content_refs")
    op.drop_table("content_refs")
    op.drop_table("blob_objects")
