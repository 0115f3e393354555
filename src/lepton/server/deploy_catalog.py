"""Deployments' and photons' store side: lookups within the caller's workspace, what a
deployment serves, ports, and the views the API answers with."""

from __future__ import annotations

import json
import re
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.refs import parse_ref, version_number
from lepton.schemas import Deployment, DeploymentState, Photon, Replica, ReplicaState
from lepton.server.auth import Principal
from lepton.settings import Settings
from lepton.store.models import (
    DeploymentRow,
    ModelRow,
    ModelVersionRow,
    PhotonRow,
    ReplicaRow,
    utcnow,
)

__all__ = [
    "Source",
    "allocate_port",
    "deployment_view",
    "get_deployment",
    "get_photon",
    "photon_view",
    "record_photon",
    "resolve_source",
]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def get_deployment(session: Session, principal: Principal, name: str) -> DeploymentRow:
    row = session.scalars(
        select(DeploymentRow).where(
            DeploymentRow.workspace_id == principal.workspace_id, DeploymentRow.name == name
        )
    ).first()
    if row is None:
        raise NotFound(
            f"deployment '{name}' does not exist in workspace '{principal.workspace}'",
            fix="list them: lepton deployment list",
        )
    return row


@dataclass(frozen=True)
class Source:
    """What a deployment serves, resolved: exactly one of a model version and a photon."""

    requested: str
    name: str
    """The model's or photon's name: the deployment's default name."""
    model_version: ModelVersionRow | None = None
    photon: PhotonRow | None = None


def resolve_source(
    session: Session, principal: Principal, model: str | None, photon: str | None
) -> Source:
    if (model is None) == (photon is None):
        raise InvalidRequest(
            "a deployment serves either a model or a photon; "
            + ("both were given" if model else "neither was given"),
            fix="lepton deploy heart@production, or lepton deploy --photon NAME",
        )
    if model is not None:
        from lepton.server.model_catalog import get_model_version

        name, version = parse_ref(model)
        found, row = get_model_version(session, principal, name, version)
        if row.artifact_digest is None:
            raise Conflict(
                f"model version {found.name}@{row.version} was deleted; nothing to serve",
                fix=f"deploy another version: lepton model show {found.name}",
            )
        return Source(requested=model, name=found.name, model_version=row)
    assert photon is not None
    row_p = get_photon(session, principal, photon)
    return Source(requested=photon, name=row_p.name, photon=row_p)


def get_photon(session: Session, principal: Principal, ref: str) -> PhotonRow:
    """A photon by ``name``, ``name@N`` (``latest``) or the sha256 of its package."""
    query = select(PhotonRow).where(PhotonRow.workspace_id == principal.workspace_id)
    if _DIGEST.match(ref):
        row = session.scalars(
            query.where(PhotonRow.digest == ref).order_by(PhotonRow.version.desc())
        ).first()
        shown = f"with digest {ref}"
    else:
        name, version = parse_ref(ref)
        query = query.where(PhotonRow.name == name)
        number = version_number(version, example=f"{name}@1")
        query = (
            query.order_by(PhotonRow.version.desc())
            if number is None
            else query.where(PhotonRow.version == number)
        )
        row = session.scalars(query.limit(1)).first()
        shown = f"'{ref}'"
    if row is None:
        raise NotFound(
            f"no photon {shown} in workspace '{principal.workspace}'",
            fix="list them with `lepton photon list`, or push one: lepton photon push DIR",
        )
    return row


def record_photon(
    session: Session,
    principal: Principal,
    *,
    name: str,
    digest: str,
    size: int,
    entry: str,
    manifest: dict[str, object],
) -> tuple[PhotonRow, bool]:
    """The photon version holding ``digest`` under ``name``: the existing one, or a new number.
    Returns it and whether it is new."""
    for _attempt in range(10):
        same = session.scalars(
            select(PhotonRow).where(
                PhotonRow.workspace_id == principal.workspace_id,
                PhotonRow.name == name,
                PhotonRow.digest == digest,
            )
        ).first()
        if same is not None:
            return same, False
        last = session.scalar(
            select(func.max(PhotonRow.version)).where(
                PhotonRow.workspace_id == principal.workspace_id, PhotonRow.name == name
            )
        )
        row = PhotonRow(
            id=uuid.uuid4().hex,
            workspace_id=principal.workspace_id,
            name=name,
            version=(last or 0) + 1,
            digest=digest,
            size=size,
            entry=entry,
            manifest_json=json.dumps(manifest),
            created_at=utcnow(),
            created_by=principal.token_id,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # a concurrent push took the number
            session.rollback()
            continue
        return row, True
    raise Conflict(f"could not number a new version of photon '{name}'", fix="push again")


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


def replica_url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def photon_view(row: PhotonRow) -> Photon:
    return Photon(
        name=row.name,
        version=row.version,
        ref=f"{row.name}@{row.version}",
        digest=row.digest,
        size=row.size,
        entry=row.entry,
        manifest=json.loads(row.manifest_json),
        created_at=row.created_at,
    )


def deployment_view(session: Session, settings: Settings, row: DeploymentRow) -> Deployment:
    replicas = list(
        session.scalars(
            select(ReplicaRow)
            .where(ReplicaRow.deployment_id == row.id)
            .order_by(ReplicaRow.created_at, ReplicaRow.id)
        )
    )
    model = photon = None
    if row.model_version_id is not None:
        version = session.get(ModelVersionRow, row.model_version_id)
        owner = session.get(ModelRow, version.model_id) if version else None
        model = f"{owner.name}@{version.version}" if owner and version else None
    if row.photon_id is not None:
        found = session.get(PhotonRow, row.photon_id)
        photon = f"{found.name}@{found.version}" if found else None
    ready = sum(r.state == ReplicaState.ready and r.generation == row.generation for r in replicas)
    return Deployment(
        name=row.name,
        id=row.id,
        url=replica_url(settings, row.port),
        public=row.public,
        state=_summary(row, replicas, ready),
        source="photon" if row.photon_id else "model",
        model=model,
        photon=photon,
        requested=row.source_ref,
        replicas=row.replicas,
        ready_replicas=ready,
        generation=row.generation,
        max_batch_size=row.max_batch_size,
        max_wait_ms=row.max_wait_ms,
        timeout_s=row.timeout_s,
        token_id=row.token_id,
        error=row.error_message or _crash_message(replicas, ready),
        replica_states=[
            Replica(
                id=r.id,
                generation=r.generation,
                state=ReplicaState(r.state),
                pid=r.pid,
                restarts=r.restarts,
                last_error=r.last_error,
                restart_at=r.restart_at,
                started_at=r.started_at,
                ready_at=r.ready_at,
            )
            for r in replicas
        ],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _summary(row: DeploymentRow, replicas: list[ReplicaRow], ready: int) -> DeploymentState:
    if row.state == "deleting":
        return DeploymentState.deleting
    active = [r for r in replicas if r.state != ReplicaState.draining]
    if any(r.generation != row.generation for r in active):
        return DeploymentState.updating
    crashed = any(r.state == ReplicaState.crashed for r in active)
    if ready >= row.replicas and not crashed:
        return DeploymentState.ready
    if ready == 0:
        return DeploymentState.failing if crashed or row.error_message else DeploymentState.starting
    return DeploymentState.degraded if crashed else DeploymentState.starting


def _crash_message(replicas: list[ReplicaRow], ready: int) -> str | None:
    """With no replica ready, the latest crash says why."""
    if ready:
        return None
    crashed = [r for r in replicas if r.state == ReplicaState.crashed and r.last_error]
    return f"replica {crashed[-1].id} {crashed[-1].last_error}" if crashed else None
