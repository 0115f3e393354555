"""What a deployment's row (or one of its revisions) says, apart from the service that changes
it: the settings its replicas start from and their environment, the revision a change writes,
the autoscaling settings an update sets, its gateway address, and the state its replicas add up
to. Functions of rows (and a session where they read one), shared by the service, its views and
the supervisor.
"""

from __future__ import annotations

import builtins
import json
import re
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lepton.control.workspaces import DEFAULT_WORKSPACE
from lepton.errors import Conflict, InvalidRequest
from lepton.names import fits
from lepton.schemas import (
    DEPLOYMENT_NAME_PATTERN,
    Autoscaling,
    DeploymentState,
    DeploymentUpdate,
    ReplicaState,
)
from lepton.store.models import (
    DeploymentRevisionRow,
    DeploymentRow,
    ModelRow,
    ModelVersionRow,
    PhotonRow,
    ReplicaRow,
    WorkspaceRow,
)

ROLLING_FIELDS = (
    "max_batch_size",
    "max_wait_ms",
    "timeout_s",
    "max_rows",
    "cpus",
    "memory_mb",
    "gpus",
)
"""Settings a replica reads at start: changing one rolls the deployment to a new generation."""

SPEC_COLUMNS = (
    "model_version_id",
    "photon_id",
    "source_ref",
    *ROLLING_FIELDS,
    "env_json",
    "secrets_json",
)
"""What a revision keeps of its generation: everything that generation's replicas start from."""


def deployment_env(row: DeploymentRow | DeploymentRevisionRow) -> dict[str, str]:
    """The variables the deployment's replicas get (or a revision's got)."""
    env: dict[str, str] = json.loads(row.env_json) if row.env_json else {}
    return env


def deployment_secrets(row: DeploymentRow | DeploymentRevisionRow) -> builtins.list[str]:
    """The secrets the deployment's replicas get (or a revision's got), by name (``NAME`` or
    ``ENV=NAME``)."""
    refs: builtins.list[str] = json.loads(row.secrets_json) if row.secrets_json else []
    return refs


def revision_of(
    row: DeploymentRow,
    reason: str,
    created_by: str | None,
    now: datetime,
    generation: int | None = None,
) -> DeploymentRevisionRow:
    """The revision of the generation ``row`` now describes (or of ``generation``, a canary's,
    with what ``row`` describes)."""
    return DeploymentRevisionRow(
        deployment_id=row.id,
        generation=generation or row.generation,
        reason=reason,
        created_at=now,
        created_by=created_by,
        **{column: getattr(row, column) for column in SPEC_COLUMNS},
    )


def settings_of(row: DeploymentRow | DeploymentRevisionRow) -> dict[str, Any]:
    """The fields a deployment's view and a revision's share: the reference as asked for, and
    what the replicas are started with."""
    return {
        "requested": row.source_ref,
        **{field: getattr(row, field) for field in ROLLING_FIELDS},
        "env": deployment_env(row),
        "secrets": deployment_secrets(row),
    }


def spec_of(row: DeploymentRow | DeploymentRevisionRow) -> tuple[Any, ...]:
    """What the replicas of a generation run: equal specs serve the same."""
    fields = tuple(getattr(row, field) for field in ROLLING_FIELDS)
    return (
        row.model_version_id,
        row.photon_id,
        *fields,
        deployment_env(row),
        deployment_secrets(row),
    )


def still_available(session: Session, revision: DeploymentRevisionRow) -> bool:
    """Whether what a revision served is still there to serve again."""
    if revision.photon_id is not None:
        return True  # deleting a photon clears the revision's photon_id
    version = session.get(ModelVersionRow, revision.model_version_id or "")
    return version is not None and version.artifact_digest is not None


def photon_ref(session: Session, photon_id: str | None) -> str | None:
    found = session.get(PhotonRow, photon_id) if photon_id else None
    return f"{found.name}@{found.version}" if found else None


def load_sources(
    session: Session, revisions: builtins.list[DeploymentRevisionRow]
) -> builtins.list[Any]:
    """The model versions, models and photons a page of revisions names, in three queries, so
    the views find them in the session."""
    version_ids = {r.model_version_id for r in revisions if r.model_version_id}
    photon_ids = {r.photon_id for r in revisions if r.photon_id}
    versions = list(
        session.scalars(select(ModelVersionRow).where(ModelVersionRow.id.in_(version_ids)))
    )
    models = list(
        session.scalars(select(ModelRow).where(ModelRow.id.in_({v.model_id for v in versions})))
    )
    photons = list(session.scalars(select(PhotonRow).where(PhotonRow.id.in_(photon_ids))))
    return [*versions, *models, *photons]


def default_name(name: str) -> str:
    """A model or photon name made fit for a deployment (dashes for ``_`` and ``.``)."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]
    if not fits(DEPLOYMENT_NAME_PATTERN, cleaned):
        raise InvalidRequest(
            f"'{name}' does not make a deployment name", fix="pass --name with letters and digits"
        )
    return cleaned


AUTOSCALING_FIELDS = (
    "target_inflight",
    "scale_down_delay_s",
    "idle_timeout_s",
    "hold_timeout_s",
    "canary_error_margin",
    "canary_latency_margin",
    "canary_window_s",
)
"""Settings an update changes in place: no replica restarts for them."""


def set_autoscaling(row: DeploymentRow, body: DeploymentUpdate) -> None:
    for field in AUTOSCALING_FIELDS:
        value = getattr(body, field)
        if value is not None:
            setattr(row, field, value)
    if body.min_replicas is None and body.max_replicas is None:
        return
    low = body.min_replicas if body.min_replicas is not None else row.min_replicas
    high = body.max_replicas if body.max_replicas is not None else row.max_replicas
    if high is None:
        raise InvalidRequest(
            f"deployment '{row.name}' does not autoscale yet: min_replicas alone has no ceiling",
            fix="give max_replicas too (lepton deployment update NAME --min-replicas N "
            "--max-replicas M)",
        )
    low = 1 if low is None else low
    if low > high:
        raise InvalidRequest(
            f"min_replicas ({low}) is above max_replicas ({high})",
            fix="give a min_replicas at most max_replicas",
        )
    row.min_replicas, row.max_replicas = low, high
    row.replicas = max(low, min(high, row.replicas))


def gateway_url_of(base: str | None, session: Session, row: DeploymentRow) -> str | None:
    if base is None:
        return None
    workspace = session.get(WorkspaceRow, row.workspace_id)
    if workspace is None or workspace.name == DEFAULT_WORKSPACE:
        return f"{base}/d/{row.name}"
    return f"{base}/w/{workspace.name}/d/{row.name}"


def autoscaling_of(row: DeploymentRow) -> Autoscaling | None:
    if row.max_replicas is None:
        return None
    return Autoscaling(
        min_replicas=row.min_replicas or 0,
        max_replicas=row.max_replicas,
        target_inflight=row.target_inflight,
        scale_down_delay_s=row.scale_down_delay_s,
        idle_timeout_s=row.idle_timeout_s,
        hold_timeout_s=row.hold_timeout_s,
        last_decision=row.scale_reason,
        decided_at=row.scaled_at,
    )


def next_generation(session: Session, row: DeploymentRow) -> int:
    """A generation number no revision has (a canary that was rolled back kept its own)."""
    highest = session.scalar(
        select(func.max(DeploymentRevisionRow.generation)).where(
            DeploymentRevisionRow.deployment_id == row.id
        )
    )
    return max(row.generation, highest or 0) + 1


def initial_replicas(replicas: int, low: int | None, high: int | None) -> int:
    """The replicas to start with: ``replicas``, within the autoscaling bounds (at least one,
    so a new deployment answers at once even when it may scale to zero)."""
    if high is None:
        return replicas
    return max(1, low or 0, min(high, replicas))


def allocate_port(session: Session, host: str) -> int:
    """A port the kernel says is free on ``host`` and no deployment holds."""
    taken = set(session.scalars(select(DeploymentRow.port)))
    for _ in range(50):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port
    raise Conflict("no free port for the deployment's replicas", fix="free some ports and retry")


def summary(row: DeploymentRow, replicas: builtins.list[ReplicaRow], ready: int) -> DeploymentState:
    if row.state == "deleting":
        return DeploymentState.deleting
    # An older generation still running, draining or not, still answers some requests with
    # what it serves: the update is not done until it is gone.
    trial = row.canary_generation
    if any(r.generation not in (row.generation, trial) for r in replicas):
        return DeploymentState.updating
    replicas = [r for r in replicas if r.generation == row.generation]  # a canary is apart
    active = [r for r in replicas if r.state != ReplicaState.draining]
    crashed = any(r.state == ReplicaState.crashed for r in active)
    if row.replicas == 0 and not replicas:  # the last one drained too
        return DeploymentState.idle
    if ready >= row.replicas and not crashed:
        return DeploymentState.ready
    if ready == 0:
        return DeploymentState.failing if crashed or row.error_message else DeploymentState.starting
    return DeploymentState.degraded if crashed else DeploymentState.starting


def crash_message(replicas: builtins.list[ReplicaRow], ready: int) -> str | None:
    """With no replica ready, the latest crash says why."""
    if ready:
        return None
    crashed = [r for r in replicas if r.state == ReplicaState.crashed and r.last_error]
    return f"replica {crashed[-1].id} {crashed[-1].last_error}" if crashed else None
