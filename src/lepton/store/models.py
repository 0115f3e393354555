"""SQLAlchemy models of the metadata store. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEventRow",
    "Base",
    "BlobObjectRow",
    "ContentRefRow",
    "CounterRow",
    "DatasetRow",
    "DatasetVersionRow",
    "DeploymentRevisionRow",
    "DeploymentRow",
    "JobMetricRow",
    "JobRow",
    "ModelAliasRow",
    "ModelEvaluationRow",
    "ModelRow",
    "ModelVersionRow",
    "PhotonRow",
    "ReplicaRow",
    "SecretRow",
    "SplitRow",
    "TokenRow",
    "UTCDateTime",
    "WorkspaceRow",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out; SQLite would otherwise drop the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # the column type guarantees it
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class WorkspaceRow(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    scope: Mapped[str | None] = mapped_column(String(80))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(32))


class SecretRow(Base):
    """A workspace secret: its value sealed with the control plane's key (AES-256-GCM), the
    workspace id and name bound in as associated data. No API answers the value."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_secrets_workspace_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_workspace_id_id", "workspace_id", "id"),)

    # BigInteger on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[str | None] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_token_id: Mapped[str | None] = mapped_column(String(32))
    actor_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    resource: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)


class BlobObjectRow(Base):
    """One stored object of the blob store, by digest: the row that writers and erasers lock.

    A writer locks it (creating it if needed) before it moves new bytes into place and adds its
    reference, in one transaction; an eraser locks it, checks that no reference is left, and
    deletes the bytes and the row, in one transaction. So an erase never races a new reference,
    across any number of control-plane processes (``lepton.control.content``).
    """

    __tablename__ = "blob_objects"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    """Plaintext bytes; unknown (None) for objects recorded before sizes were kept."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContentRefRow(Base):
    """One use of stored bytes: the single record of which objects are in use.

    ``owner_kind`` and ``owner_id`` name the user (``dataset_version``/id with roles ``source``
    and ``data``, ``split``, ``model_version`` (``artifact``, ``explanation-plot``),
    ``evaluation``, ``photon``, ``job`` (``checkpoint``), and ``upload``: the workspace's own
    uploads, owner id the workspace). Written in the owner's transaction; an object with no row
    here is erased.
    """

    __tablename__ = "content_refs"
    __table_args__ = (
        Index("ix_content_refs_owner", "owner_kind", "owner_id"),
        Index("ix_content_refs_workspace_digest", "workspace_id", "digest"),
    )

    digest: Mapped[str] = mapped_column(ForeignKey("blob_objects.digest"), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CounterRow(Base):
    """The last number given in one numbered series (a dataset's versions, a model's, a photon
    name's); numbers are taken by one atomic upsert and never reused after a delete."""

    __tablename__ = "counters"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_datasets_workspace_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetVersionRow(Base):
    """An immutable version: the pushed bytes, the canonical table, and what ingest found."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
        Index("ix_dataset_versions_content", "dataset_id", "content_hash"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(256))
    source_digest: Mapped[str] = mapped_column(String(64))
    source_size: Mapped[int] = mapped_column(BigInteger)
    data_digest: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    schema_json: Mapped[str] = mapped_column(Text)
    profile_json: Mapped[str] = mapped_column(Text)
    pii_json: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_versions.id"))
    transform_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class SplitRow(Base):
    """A deterministic train/validation/test assignment of a version's rows, kept so every job
    on that version sees the same rows."""

    __tablename__ = "dataset_splits"

    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    spec_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)
    strategy: Mapped[str] = mapped_column(String(16))
    counts_json: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobRow(Base):
    """A unit of compute. The spec is immutable; state, attempts and outcome change."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    spec_json: Mapped[str] = mapped_column(Text)
    dataset_version_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_versions.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_fix: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[str | None] = mapped_column(Text)
    environment_json: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    pid: Mapped[int | None] = mapped_column(Integer)
    token_id: Mapped[str | None] = mapped_column(String(32))
    checkpoint_digest: Mapped[str | None] = mapped_column(String(64))
    rendezvous: Mapped[str | None] = mapped_column(String(300))
    """Where a data-parallel attempt's workers meet: ``{"attempt": N, "address": ...}``."""
    secret_mask: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The secret values given to the job's attempts, sealed: its log is served with them masked,
    even after a secret changes or goes."""


class JobMetricRow(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    batch: Mapped[str | None] = mapped_column(String(32))
    """The id of the batch it came in: a batch sent again is not stored twice."""


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_models_workspace_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersionRow(Base):
    """An immutable registered model: a safe-format artifact with its signature, metrics and
    lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flavour: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(32))
    artifact_digest: Mapped[str | None] = mapped_column(String(64))
    """Cleared when the version is deleted, so its bytes can be erased."""
    signature_json: Mapped[str] = mapped_column(Text)
    metrics_json: Mapped[str] = mapped_column(Text)
    params_json: Mapped[str] = mapped_column(Text)
    leaderboard_json: Mapped[str] = mapped_column(Text)
    environment_json: Mapped[str | None] = mapped_column(Text)
    dataset_version_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_versions.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    """The intended use, in the user's words; the model card quotes it."""
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.id", name="fk_model_versions_parent_id")
    )
    """The version this one was derived from (an optimised or fine-tuned variant)."""
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A deleted version stays as a tombstone: its number is never reused, lineage stays whole."""
    deleted_by: Mapped[str | None] = mapped_column(String(32))
    explanations_json: Mapped[str | None] = mapped_column(Text)
    """The global explanation computed at registration (or why it was not); set once."""


class ModelAliasRow(Base):
    """A movable name for one version of a model (``production``); moving it is one UPDATE."""

    __tablename__ = "model_aliases"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(32))


class ModelEvaluationRow(Base):
    """Metrics, slices and plot digests of a model version on a dataset: the held-out split at
    training time, or an ``evaluate`` job."""

    __tablename__ = "model_evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    dataset_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL")
    )
    split: Mapped[str | None] = mapped_column(String(16))
    result_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class PhotonRow(Base):
    """An immutable packaged service: a zip of source files and a manifest, never a pickle.
    Pushing the same bytes under the same name again returns the existing version."""

    __tablename__ = "photons"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", "version", name="uq_photons_version"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    """Blob of the package (sha256 of the zip): its content address."""
    size: Mapped[int] = mapped_column(BigInteger)
    entry: Mapped[str] = mapped_column(String(256))
    manifest_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class DeploymentRow(Base):
    """Desired state of a served model version or photon; the supervisor converges to it."""

    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_deployments_workspace_name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    model_version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"))
    """Lineage: the model version served (None for a photon)."""
    photon_id: Mapped[str | None] = mapped_column(ForeignKey("photons.id"))
    source_ref: Mapped[str] = mapped_column(String(160))
    """What the user asked for (``heart@production``), kept to show beside the resolved version."""
    replicas: Mapped[int] = mapped_column(Integer)
    max_batch_size: Mapped[int] = mapped_column(Integer)
    max_wait_ms: Mapped[float] = mapped_column(Float)
    timeout_s: Mapped[float] = mapped_column(Float)
    max_rows: Mapped[int] = mapped_column(Integer, default=100_000)
    cpus: Mapped[float] = mapped_column(Float, default=0)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    public: Mapped[bool] = mapped_column(default=False)
    token_id: Mapped[str | None] = mapped_column(String(32))
    """The ``deployment:<id>`` inference token; None when public."""
    port: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    """``active``, or ``deleting`` until the supervisor has drained every replica."""
    generation: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped by an update or a rollback (each recorded in ``deployment_revisions``); replicas
    of older generations are replaced one by one."""
    env_json: Mapped[str | None] = mapped_column(Text)
    """Variables the replicas get (JSON object); None for none."""
    secrets_json: Mapped[str | None] = mapped_column(Text)
    """Secrets the replicas get, by name (JSON list of ``NAME`` or ``ENV=NAME``); never values."""
    secret_mask: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The secret values given to its replicas, sealed, masked when its log is served."""
    error_message: Mapped[str | None] = mapped_column(Text)
    min_replicas: Mapped[int | None] = mapped_column(Integer)
    """Autoscaling's floor (0: scale to zero); None with ``max_replicas``: a fixed count."""
    max_replicas: Mapped[int | None] = mapped_column(Integer)
    """Autoscaling's ceiling; None: ``replicas`` is fixed (set by the user)."""
    target_inflight: Mapped[float] = mapped_column(Float, default=8)
    """Requests in flight per replica the autoscaler aims at."""
    scale_down_delay_s: Mapped[float] = mapped_column(Float, default=60)
    """How long the load must have asked for fewer replicas before any goes."""
    idle_timeout_s: Mapped[float] = mapped_column(Float, default=300)
    """With ``min_replicas`` 0: how long without a request before the last replica goes."""
    hold_timeout_s: Mapped[float] = mapped_column(Float, default=60)
    """How long the gateway holds a request while no replica is ready."""
    scaled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scale_reason: Mapped[str | None] = mapped_column(Text)
    """The autoscaler's last decision and why."""
    canary_generation: Mapped[int | None] = mapped_column(Integer)
    """The generation on trial beside ``generation``; None: no canary."""
    canary_share: Mapped[float | None] = mapped_column(Float)
    """Percent of the gateway's requests the canary gets."""
    canary_error_margin: Mapped[float] = mapped_column(Float, default=0.05)
    """The canary is rolled back when its error rate passes the stable one's by this much."""
    canary_latency_margin: Mapped[float] = mapped_column(Float, default=2)
    """... or its p99 passes the stable one's times this."""
    canary_window_s: Mapped[float] = mapped_column(Float, default=30)
    """The window both are judged over."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class DeploymentRevisionRow(Base):
    """What one generation of a deployment served: written when the deployment is created and
    by every change that rolls its replicas (not by scaling), so a rollback can write it again.

    Its rows go with the deployment's row (``CASCADE``). History never holds anything else up:
    deleting a photon or a model version it names leaves the revision with None there, and a
    rollback to it is refused, saying so."""

    __tablename__ = "deployment_revisions"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    """The first column of the primary key: also the index a deployment's history is read by."""
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    photon_id: Mapped[str | None] = mapped_column(ForeignKey("photons.id", ondelete="SET NULL"))
    source_ref: Mapped[str] = mapped_column(String(160))
    max_batch_size: Mapped[int] = mapped_column(Integer)
    max_wait_ms: Mapped[float] = mapped_column(Float)
    timeout_s: Mapped[float] = mapped_column(Float)
    max_rows: Mapped[int] = mapped_column(Integer, default=100_000)
    cpus: Mapped[float] = mapped_column(Float, default=0)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    env_json: Mapped[str | None] = mapped_column(Text)
    secrets_json: Mapped[str | None] = mapped_column(Text)
    """By name, as on the deployment; never values."""
    reason: Mapped[str] = mapped_column(Text)
    """Why this generation began: ``created``, ``updated model``, ``rolled back to generation 2``."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32))


class ReplicaRow(Base):
    """Observed state of one replica process, written by the supervisor only."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    """``starting``, ``ready``, ``draining`` or ``crashed``."""
    pid: Mapped[int | None] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Crashes since it was last stable: the exponent of the restart backoff."""
    last_error: Mapped[str | None] = mapped_column(Text)
    restart_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    log_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bytes of the replica's own output already copied into the deployment's log."""
    url: Mapped[str | None] = mapped_column(String(200))
    """The replica's own address (from its ready line): where the gateway sends requests."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
