"""Deployments: serve a model version (by number or alias) or a photon on replicas.

This service writes the desired state only; the supervisor (``lepton.control.supervisor``)
starts, watches, rolls and drains the replica processes. Creating a deployment mints an
inference token scoped to it (``deployment:<id>``), returned once, unless it is explicitly
public. Which changes roll the replicas, and what a deployment keeps from being deleted (the
model version or photon it serves), are decided here.
"""

from __future__ import annotations

import builtins
import hmac
import json
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.models import ModelService
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.photons import PhotonService
from lepton.control.secrets import SecretService
from lepton.control.tokens import Principal, TokenService
from lepton.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from lepton.schemas import (
    DEPLOYMENT_NAME_PATTERN,
    Deployment,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentState,
    DeploymentUpdate,
    LogChunk,
    Replica,
    ReplicaState,
    env_and_secrets_overlap,
    secret_ref,
)
from lepton.settings import Settings
from lepton.store.models import (
    DeploymentRow,
    ModelVersionRow,
    PhotonRow,
    ReplicaRow,
)

__all__ = ["DeploymentService", "deployment_env", "deployment_secrets", "replica_url"]

ROLLING_FIELDS = ("max_batch_size", "max_wait_ms", "timeout_s")
"""Settings a replica reads at start: changing one rolls the deployment to a new generation."""


@dataclass(frozen=True)
class _Source:
    """What a deployment serves, resolved: exactly one of a model version and a photon."""

    requested: str
    name: str
    model_version: ModelVersionRow | None = None
    photon: PhotonRow | None = None


def replica_url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DeploymentService:
    def __init__(
        self,
        ctx: Context,
        tokens: TokenService,
        models: ModelService,
        photons: PhotonService,
        secrets: SecretService,
    ) -> None:
        self.ctx = ctx
        self.tokens = tokens
        self.models = models
        self.photons = photons
        self.secrets = secrets
        self._key: bytes | None = None
        models.users.append(self._serving_version)
        photons.users.append(self._serving_photons)
        secrets.users.append(self._using_secret)

    def deployment_row(self, session: Session, principal: Principal, name: str) -> DeploymentRow:
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

    def list(self, principal: Principal, page: PageRequest) -> Page[Deployment]:
        query = select(DeploymentRow).where(DeploymentRow.workspace_id == principal.workspace_id)
        with self.ctx.sessions() as session:
            return paged(
                session, query, [DeploymentRow.name], page, lambda r: self.view(session, r)
            )

    def get(self, principal: Principal, name: str) -> Deployment:
        with self.ctx.sessions() as session:
            return self.view(session, self.deployment_row(session, principal, name))

    def console_bearer(self, deployment_id: str) -> str:
        """The bearer the control plane itself calls a deployment's replicas with (the
        console's try-it form). Derived from the control plane's key, never stored; replicas
        get only its hash, so a replica cannot mint it for another deployment."""
        if self._key is None:
            from lepton.store.crypto import load_or_create_key

            self._key = load_or_create_key(self.ctx.settings)
        mac = hmac.new(self._key, b"lepton-console-call:" + deployment_id.encode(), "sha256")
        return "lepc_" + mac.hexdigest()

    def call(
        self,
        principal: Principal,
        name: str,
        path: str,
        body: dict[str, Any],
        query: dict[str, str] | None = None,
    ) -> Any:
        """POST ``body`` to ``path`` (``/predict``, ``/explain``) on the deployment's replicas,
        as the control plane; returns the replica's JSON answer.

        Raises:
            ServiceUnavailable: no replica answers.
            LeptonError: the replica's own refusal (a bad input), with its message.
        """
        import httpx

        deployment = self.get(principal, name)
        headers = (
            {}
            if deployment.public
            else {"Authorization": f"Bearer {self.console_bearer(deployment.id)}"}
        )
        try:
            answer = httpx.post(
                deployment.url + path,
                json=body,
                params=query or {},
                headers=headers,
                timeout=deployment.timeout_s + 5,
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"deployment '{name}' does not answer at {deployment.url} ({type(exc).__name__})",
                fix=f"wait until it is ready: lepton deployment show {name}",
            ) from None
        data = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if answer.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            message = str(error.get("message") or f"the replica answered HTTP {answer.status_code}")
            kind = InvalidRequest if answer.status_code < 500 else ServiceUnavailable
            raise kind(message, fix=str(error.get("fix") or ""))
        return data

    def create(self, principal: Principal, body: DeploymentCreate) -> DeploymentCreated:
        """Serve a model version or a photon. The answer holds the inference token (unless
        public): it is shown only here."""
        with self.ctx.sessions() as session:
            source = self._resolve(session, principal, body.model, body.photon)
            self.secrets.require(session, principal, body.secrets)
            name = body.name or _default_name(source.name)
            existing = session.scalars(
                select(DeploymentRow).where(
                    DeploymentRow.workspace_id == principal.workspace_id,
                    DeploymentRow.name == name,
                )
            ).first()
            if existing is not None:
                if existing.state == "deleting":
                    raise Conflict(
                        f"deployment '{name}' is still being deleted (its replicas are draining)",
                        fix="try again in a few seconds, or pick another --name",
                    )
                raise Conflict(
                    f"deployment '{name}' already exists (serving {existing.source_ref})",
                    fix=f"update it: lepton deployment update {name} --model REF; "
                    "or pick another --name",
                )
            now = self.ctx.clock()
            row = DeploymentRow(
                id=uuid.uuid4().hex[:12],
                workspace_id=principal.workspace_id,
                name=name,
                model_version_id=source.model_version.id if source.model_version else None,
                photon_id=source.photon.id if source.photon else None,
                source_ref=source.requested,
                replicas=body.replicas,
                max_batch_size=body.max_batch_size,
                max_wait_ms=body.max_wait_ms,
                timeout_s=body.timeout_s,
                public=body.public,
                env_json=json.dumps(body.env) if body.env else None,
                secrets_json=json.dumps(body.secrets) if body.secrets else None,
                port=_allocate_port(session, self.ctx.settings.host),
                state="active",
                generation=1,
                created_at=now,
                updated_at=now,
                created_by=principal.token_id,
            )
            bearer = None
            if not body.public:
                token, bearer = self.tokens.mint(
                    session,
                    workspace_id=principal.workspace_id,
                    name=f"{name[:50]}-inference",
                    role=None,
                    scope=f"deployment:{row.id}",
                    created_by=principal.token_id,
                )
                row.token_id = token.id
            session.add(row)
            session.commit()
            view = self.view(session, row)
        self.ctx.wake("deployments")
        return DeploymentCreated(**view.model_dump(), token=bearer)

    def update(self, principal: Principal, name: str, body: DeploymentUpdate) -> Deployment:
        """Scale (``replicas``: no restart), or roll to a new model version, photon, batching,
        variables or secrets: a new replica is ready before an old one drains."""
        with self.ctx.sessions() as session:
            row = self.deployment_row(session, principal, name)
            if row.state == "deleting":
                raise Conflict(f"deployment '{row.name}' is being deleted", fix="deploy it again")
            changes = body.model_dump(exclude_none=True)
            if not changes:
                raise InvalidRequest(
                    "the update changes nothing",
                    fix="give replicas, model, photon, max_batch_size, max_wait_ms, timeout_s, "
                    "env or secrets",
                )
            rolls = False
            if body.model is not None or body.photon is not None:
                source = self._resolve(session, principal, body.model, body.photon)
                new_model = source.model_version.id if source.model_version else None
                new_photon = source.photon.id if source.photon else None
                if (new_model, new_photon) != (row.model_version_id, row.photon_id):
                    row.model_version_id, row.photon_id = new_model, new_photon
                    rolls = True
                row.source_ref = source.requested
            for field in ROLLING_FIELDS:
                value = changes.get(field)
                if value is not None and value != getattr(row, field):
                    setattr(row, field, value)
                    rolls = True
            if body.env is not None or body.secrets is not None:
                rolls |= self._set_environment(session, principal, row, body)
            if body.replicas is not None:
                row.replicas = body.replicas
            if rolls:
                row.generation += 1
                row.error_message = None
            row.updated_at = self.ctx.clock()
            session.commit()
            view = self.view(session, row)
        self.ctx.wake("deployments")
        return view

    def _set_environment(
        self, session: Session, principal: Principal, row: DeploymentRow, body: DeploymentUpdate
    ) -> bool:
        """Replace the variables and secrets the replicas get; True when they changed."""
        env = body.env if body.env is not None else deployment_env(row)
        secrets = body.secrets if body.secrets is not None else deployment_secrets(row)
        both = env_and_secrets_overlap(env, secrets)
        if both:
            raise InvalidRequest(
                f"{', '.join(both)} would be set by both env and secrets",
                fix="drop one of the two in the update",
            )
        self.secrets.require(session, principal, secrets)
        if (env, secrets) == (deployment_env(row), deployment_secrets(row)):
            return False
        row.env_json = json.dumps(env) if env else None
        row.secrets_json = json.dumps(secrets) if secrets else None
        return True

    def delete(self, principal: Principal, name: str) -> Deployment:
        """Revoke the inference token now and drain every replica; the deployment is gone once
        they have stopped (``state: deleting`` until then)."""
        with self.ctx.sessions() as session:
            row = self.deployment_row(session, principal, name)
            row.state = "deleting"
            row.updated_at = self.ctx.clock()
            self.tokens.revoke_in(session, row.token_id)
            session.commit()
            view = self.view(session, row)
        self.ctx.wake("deployments")
        return view

    def logs(self, principal: Principal, name: str, offset: int) -> LogChunk:
        """The replicas' output, each line tagged with its replica id, and the supervisor's
        events, from ``offset``, with the secret values given to the replicas masked; follow by
        asking again."""
        from lepton.control.logs import read_log
        from lepton.control.workdir import deployment_log

        with self.ctx.sessions() as session:
            row = self.deployment_row(session, principal, name)
            deployment_id, ended = row.id, row.state == "deleting"
            masker = self.secrets.masker("deployment", row.id, row.secret_mask)
        path = deployment_log(self.ctx.settings.home, deployment_id)
        return read_log(path, offset, ended=ended, masker=masker)

    # --- what it serves -----------------------------------------------------------------------

    def _resolve(
        self, session: Session, principal: Principal, model: str | None, photon: str | None
    ) -> _Source:
        if (model is None) == (photon is None):
            raise InvalidRequest(
                "a deployment serves either a model or a photon; "
                + ("both were given" if model else "neither was given"),
                fix="lepton deploy heart@production, or lepton deploy --photon NAME",
            )
        if model is not None:
            found, row = self.models.resolve(session, principal, model)
            if row.artifact_digest is None:
                raise Conflict(
                    f"model version {found.name}@{row.version} was deleted; nothing to serve",
                    fix=f"deploy another version: lepton model show {found.name}",
                )
            return _Source(requested=model, name=found.name, model_version=row)
        assert photon is not None
        row_p = self.photons.photon_row(session, principal, photon)
        return _Source(requested=photon, name=row_p.name, photon=row_p)

    def _serving_version(self, session: Session, row: ModelVersionRow) -> builtins.list[str]:
        names = session.scalars(
            select(DeploymentRow.name)
            .where(DeploymentRow.model_version_id == row.id)
            .order_by(DeploymentRow.name)
        )
        return [f"deployment {name}" for name in names]

    def _using_secret(self, session: Session, workspace_id: str, name: str) -> builtins.list[str]:
        rows = session.scalars(
            select(DeploymentRow)
            .where(
                DeploymentRow.workspace_id == workspace_id,
                DeploymentRow.secrets_json.is_not(None),
                DeploymentRow.state != "deleting",
            )
            .order_by(DeploymentRow.name)
        )
        return [
            f"deployment {row.name}"
            for row in rows
            if any(secret_ref(ref)[1] == name for ref in deployment_secrets(row))
        ]

    def _serving_photons(
        self, session: Session, rows: builtins.list[PhotonRow]
    ) -> builtins.list[str]:
        names = session.scalars(
            select(DeploymentRow.name)
            .where(DeploymentRow.photon_id.in_([r.id for r in rows]))
            .order_by(DeploymentRow.name)
        )
        return [f"deployment {name}" for name in names]

    # --- views --------------------------------------------------------------------------------

    def view(self, session: Session, row: DeploymentRow) -> Deployment:
        replicas = list(
            session.scalars(
                select(ReplicaRow)
                .where(ReplicaRow.deployment_id == row.id)
                .order_by(ReplicaRow.created_at, ReplicaRow.id)
            )
        )
        photon = None
        if row.photon_id is not None:
            found = session.get(PhotonRow, row.photon_id)
            photon = f"{found.name}@{found.version}" if found else None
        ready = sum(
            r.state == ReplicaState.ready and r.generation == row.generation for r in replicas
        )
        return Deployment(
            name=row.name,
            id=row.id,
            url=replica_url(self.ctx.settings, row.port),
            public=row.public,
            state=_summary(row, replicas, ready),
            source="photon" if row.photon_id else "model",
            model=self.models.ref(session, row.model_version_id),
            photon=photon,
            requested=row.source_ref,
            replicas=row.replicas,
            ready_replicas=ready,
            generation=row.generation,
            max_batch_size=row.max_batch_size,
            max_wait_ms=row.max_wait_ms,
            timeout_s=row.timeout_s,
            env=deployment_env(row),
            secrets=deployment_secrets(row),
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


def deployment_env(row: DeploymentRow) -> dict[str, str]:
    """The variables the deployment's replicas get."""
    env: dict[str, str] = json.loads(row.env_json) if row.env_json else {}
    return env


def deployment_secrets(row: DeploymentRow) -> builtins.list[str]:
    """The secrets the deployment's replicas get, by name (``NAME`` or ``ENV=NAME``)."""
    refs: builtins.list[str] = json.loads(row.secrets_json) if row.secrets_json else []
    return refs


def _default_name(name: str) -> str:
    """A model or photon name made fit for a deployment (dashes for ``_`` and ``.``)."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]
    if not re.match(DEPLOYMENT_NAME_PATTERN, cleaned):
        raise InvalidRequest(
            f"'{name}' does not make a deployment name", fix="pass --name with letters and digits"
        )
    return cleaned


def _allocate_port(session: Session, host: str) -> int:
    """A port the kernel says is free on ``host`` and no deployment holds."""
    taken = set(session.scalars(select(DeploymentRow.port)))
    for _ in range(50):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port
    raise Conflict("no free port for the deployment's replicas", fix="free some ports and retry")


def _summary(
    row: DeploymentRow, replicas: builtins.list[ReplicaRow], ready: int
) -> DeploymentState:
    if row.state == "deleting":
        return DeploymentState.deleting
    # An older generation still running, draining or not, still answers some requests with
    # what it serves: the update is not done until it is gone.
    if any(r.generation != row.generation for r in replicas):
        return DeploymentState.updating
    active = [r for r in replicas if r.state != ReplicaState.draining]
    crashed = any(r.state == ReplicaState.crashed for r in active)
    if ready >= row.replicas and not crashed:
        return DeploymentState.ready
    if ready == 0:
        return DeploymentState.failing if crashed or row.error_message else DeploymentState.starting
    return DeploymentState.degraded if crashed else DeploymentState.starting


def _crash_message(replicas: builtins.list[ReplicaRow], ready: int) -> str | None:
    """With no replica ready, the latest crash says why."""
    if ready:
        return None
    crashed = [r for r in replicas if r.state == ReplicaState.crashed and r.last_error]
    return f"replica {crashed[-1].id} {crashed[-1].last_error}" if crashed else None
