"""Deployments: serve a model version (by number or alias) or a photon on replicas.

This service writes the desired state only; the supervisor (``lepton.control.supervisor``)
starts, watches, rolls and drains the replica processes. Creating a deployment mints an
inference token scoped to it (``deployment:<id>``), returned once, unless it is explicitly
public. Which changes roll the replicas, and what a deployment keeps from being deleted (the
model version or photon it serves), are decided here. Each generation's spec is kept as a
revision, so a rollback writes an earlier one again as a new generation.
"""

from __future__ import annotations

import builtins
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.deployment_rows import (
    ROLLING_FIELDS,
    SPEC_COLUMNS,
    allocate_port,
    autoscaling_of,
    crash_message,
    default_name,
    deployment_env,
    deployment_secrets,
    gateway_url_of,
    initial_replicas,
    load_sources,
    next_generation,
    photon_ref,
    revision_of,
    set_autoscaling,
    settings_of,
    spec_of,
    still_available,
    summary,
)
from lepton.control.models import ModelService
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.photons import PhotonService
from lepton.control.secrets import SecretService
from lepton.control.tokens import Principal, TokenService
from lepton.control.traffic import KEEP_MINUTES
from lepton.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from lepton.schemas import (
    Canary,
    Deployment,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentRevision,
    DeploymentTraffic,
    DeploymentUpdate,
    LogChunk,
    Replica,
    ReplicaState,
    env_and_secrets_overlap,
    secret_ref,
)
from lepton.settings import Settings
from lepton.store.models import (
    DeploymentRevisionRow,
    DeploymentRow,
    ModelVersionRow,
    PhotonRow,
    ReplicaRow,
    TokenRow,
)

__all__ = ["DeploymentService", "deployment_env", "deployment_secrets", "replica_url"]


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

    def token_hashes(self, session: Session, row: DeploymentRow) -> builtins.list[str]:
        """The sha256 digests a deployment's replicas (and the gateway) accept: its inference
        token's and the console's; none when it is public or its token was revoked."""
        if row.public or row.token_id is None:
            return []
        token = session.get(TokenRow, row.token_id)
        if token is None or token.revoked_at is not None:
            return []
        from lepton.serving.auth import token_hash

        return [token.secret_hash, token_hash(self.console_bearer(row.id))]

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
            name = body.name or default_name(source.name)
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
                replicas=initial_replicas(body.replicas, body.min_replicas, body.max_replicas),
                min_replicas=(
                    (body.min_replicas if body.min_replicas is not None else 1)
                    if body.max_replicas is not None
                    else None
                ),
                max_replicas=body.max_replicas,
                target_inflight=body.target_inflight,
                scale_down_delay_s=body.scale_down_delay_s,
                idle_timeout_s=body.idle_timeout_s,
                hold_timeout_s=body.hold_timeout_s,
                max_batch_size=body.max_batch_size,
                max_wait_ms=body.max_wait_ms,
                timeout_s=body.timeout_s,
                max_rows=body.max_rows,
                cpus=body.cpus,
                memory_mb=body.memory_mb,
                gpus=body.gpus,
                public=body.public,
                env_json=json.dumps(body.env) if body.env else None,
                secrets_json=json.dumps(body.secrets) if body.secrets else None,
                port=allocate_port(session, self.ctx.settings.host),
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
            session.flush()  # its revision refers to it; no relationship orders the inserts
            session.add(revision_of(row, "created", principal.token_id, now))
            session.commit()
            view = self.view(session, row)
        self.ctx.wake("deployments")
        return DeploymentCreated(**view.model_dump(), token=bearer)

    def update(self, principal: Principal, name: str, body: DeploymentUpdate) -> Deployment:
        """Scale (``replicas``: no restart), or roll to a new model version, photon, batching,
        variables or secrets: a new replica is ready before an old one drains. With ``canary``
        the change runs beside the serving version instead, for that share of the gateway's
        traffic, until it is promoted or rolled back."""
        if body.canary is not None:
            return self._change(
                principal,
                name,
                lambda session, row: self._start_canary(session, principal, row, body),
            )
        return self._change(
            principal, name, lambda session, row: self._apply_update(session, principal, row, body)
        )

    def rollback(
        self, principal: Principal, name: str, generation: int | None = None
    ) -> Deployment:
        """Roll back to the revision before the current generation, or to ``generation``'s: a
        new generation with that revision's model version or photon, batching, variables and
        secrets, rolled out as an update is (the replica count stays). The rollback is itself
        a revision, so rolling back again undoes it."""

        def apply(session: Session, row: DeploymentRow) -> str | None:
            if row.canary_generation is not None and generation is None:
                self.end_canary(session, row)  # the canary goes; what serves stays
                return None
            return self._apply_revision(session, principal, row, generation)

        return self._change(principal, name, apply)

    def promote(self, principal: Principal, name: str) -> Deployment:
        """Make the canary the serving version: its replicas stay, and the old generation's
        are replaced one by one as in an update."""

        def apply(session: Session, row: DeploymentRow) -> None:
            if row.canary_generation is None:
                raise Conflict(
                    f"deployment '{row.name}' has no canary to promote",
                    fix=f"start one: lepton deployment update {row.name} --model REF --canary 10",
                )
            revision = session.get(DeploymentRevisionRow, (row.id, row.canary_generation))
            if revision is None:
                self.end_canary(session, row)
                raise Conflict(
                    f"the canary of deployment '{row.name}' has no revision left",
                    fix="start another canary",
                )
            self._check_available(session, row, revision)
            for column in SPEC_COLUMNS:
                setattr(row, column, getattr(revision, column))
            row.generation = revision.generation
            row.canary_generation = row.canary_share = None
            row.error_message = None

        return self._change(principal, name, apply)

    def end_canary(self, session: Session, row: DeploymentRow) -> None:
        """Drop the canary: its replicas are drained by the supervisor (their generation is
        neither the serving one nor the canary's any more)."""
        row.canary_generation = row.canary_share = None

    def _start_canary(
        self, session: Session, principal: Principal, row: DeploymentRow, body: DeploymentUpdate
    ) -> None:
        if row.canary_generation is not None:
            raise Conflict(
                f"deployment '{row.name}' has a canary on trial already (generation "
                f"{row.canary_generation})",
                fix=f"lepton deployment promote {row.name}, or lepton deployment rollback "
                f"{row.name}, first",
            )
        serving = {column: getattr(row, column) for column in SPEC_COLUMNS}
        reason = self._apply_update(session, principal, row, body)
        if reason is None:
            raise InvalidRequest(
                f"a canary needs a change from what deployment '{row.name}' serves",
                fix="give the model (or photon, or a setting the replicas start with) to try: "
                f"lepton deployment update {row.name} --model REF --canary 10",
            )
        generation = next_generation(session, row)
        share = body.canary or 0.0
        session.add(
            revision_of(
                row,
                f"canary: {reason} ({share:g}%)",
                principal.token_id,
                self.ctx.clock(),
                generation=generation,
            )
        )
        for column, value in serving.items():  # what serves stays; the change is the canary's
            setattr(row, column, value)
        row.canary_generation = generation
        row.canary_share = share

    def revisions(
        self, principal: Principal, name: str, page: PageRequest
    ) -> Page[DeploymentRevision]:
        """What each generation of the deployment served, newest first."""
        held: builtins.list[Any] = []  # the prefetched sources, alive while the views are made
        with self.ctx.sessions() as session:
            row = self.deployment_row(session, principal, name)
            query = select(DeploymentRevisionRow).where(
                DeploymentRevisionRow.deployment_id == row.id
            )
            return paged(
                session,
                query,
                [DeploymentRevisionRow.generation],
                page,
                lambda r: self._revision_view(session, r, row.generation),
                descending=True,
                prefetch=lambda rows: held.extend(load_sources(session, rows)),
            )

    def _change(
        self,
        principal: Principal,
        name: str,
        apply: Callable[[Session, DeploymentRow], str | None],
    ) -> Deployment:
        """Change a deployment's desired state in one transaction. When ``apply`` returns why
        (its change rolls the replicas), a new generation begins and is recorded as a revision."""
        with self.ctx.sessions() as session:
            row = self.deployment_row(session, principal, name)
            # Locked on PostgreSQL (SQLite has one writer anyway): two changes at once would
            # otherwise both number their generation N + 1.
            session.refresh(row, with_for_update=True)
            if row.state == "deleting":
                raise Conflict(f"deployment '{row.name}' is being deleted", fix="deploy it again")
            reason = apply(session, row)
            now = self.ctx.clock()
            if reason is not None:
                if row.canary_generation is not None:
                    raise Conflict(
                        f"deployment '{row.name}' has a canary on trial (generation "
                        f"{row.canary_generation}); a change that rolls waits for it",
                        fix=f"lepton deployment promote {row.name}, or lepton deployment "
                        f"rollback {row.name}, first",
                    )
                row.generation = next_generation(session, row)
                row.error_message = None
                session.add(revision_of(row, reason, principal.token_id, now))
            row.updated_at = now
            session.commit()
            view = self.view(session, row)
        self.ctx.wake("deployments")
        return view

    def _apply_update(
        self, session: Session, principal: Principal, row: DeploymentRow, body: DeploymentUpdate
    ) -> str | None:
        """Set what ``body`` changes; says which settings changed when that rolls."""
        changes = body.model_dump(exclude_none=True)
        if not changes:
            raise InvalidRequest(
                "the update changes nothing",
                fix="give replicas, model, photon, max_batch_size, max_wait_ms, timeout_s, "
                "max_rows, cpus, memory_mb, gpus, env or secrets",
            )
        changed: builtins.list[str] = []
        if body.model is not None or body.photon is not None:
            source = self._resolve(session, principal, body.model, body.photon)
            new_model = source.model_version.id if source.model_version else None
            new_photon = source.photon.id if source.photon else None
            if (new_model, new_photon) != (row.model_version_id, row.photon_id):
                row.model_version_id, row.photon_id = new_model, new_photon
                changed.append("model" if new_model else "photon")
            row.source_ref = source.requested
        for field in ROLLING_FIELDS:
            value = changes.get(field)
            if value is not None and value != getattr(row, field):
                setattr(row, field, value)
                changed.append(field)
        if body.env is not None or body.secrets is not None:
            env = body.env if body.env is not None else deployment_env(row)
            secrets = body.secrets if body.secrets is not None else deployment_secrets(row)
            changed += self._set_environment(session, principal, row, env, secrets)
        if body.replicas is not None:
            row.replicas = body.replicas
            row.min_replicas = row.max_replicas = None  # a fixed count: autoscaling is off
        set_autoscaling(row, body)
        return f"updated {', '.join(changed)}" if changed else None

    def _apply_revision(
        self, session: Session, principal: Principal, row: DeploymentRow, generation: int | None
    ) -> str:
        """Set what an earlier revision served; refused when that is gone or changes nothing."""
        revision = self._revision_row(session, row, generation)
        self._check_available(session, row, revision)
        if spec_of(revision) == spec_of(row):
            raise Conflict(
                f"generation {revision.generation} of deployment '{row.name}' serves what "
                f"generation {row.generation} serves now; there is nothing to roll back",
                fix=f"pick another generation: lepton deployment history {row.name}",
            )
        self.secrets.require(session, principal, deployment_secrets(revision))
        for column in SPEC_COLUMNS:
            setattr(row, column, getattr(revision, column))
        return f"rolled back to generation {revision.generation}"

    def _revision_row(
        self, session: Session, row: DeploymentRow, generation: int | None
    ) -> DeploymentRevisionRow:
        """The revision to roll back to: ``generation``'s, or the newest before the current."""
        history = f"lepton deployment history {row.name}"
        if generation is None:
            found = session.scalars(
                select(DeploymentRevisionRow)
                .where(
                    DeploymentRevisionRow.deployment_id == row.id,
                    DeploymentRevisionRow.generation < row.generation,
                )
                .order_by(DeploymentRevisionRow.generation.desc())
                .limit(1)
            ).first()
            if found is None:
                raise Conflict(
                    f"deployment '{row.name}' has no revision before generation "
                    f"{row.generation}, the one it runs now",
                    fix=f"roll forward instead: lepton deployment update {row.name} --model REF",
                )
            return found
        if generation == row.generation:
            raise Conflict(
                f"generation {generation} is the one deployment '{row.name}' runs now",
                fix=f"pick an earlier one: {history}",
            )
        found = session.get(DeploymentRevisionRow, (row.id, generation))
        if found is None:
            kept = session.scalars(
                select(DeploymentRevisionRow.generation)
                .where(DeploymentRevisionRow.deployment_id == row.id)
                .order_by(DeploymentRevisionRow.generation)
            )
            raise NotFound(
                f"deployment '{row.name}' has no generation {generation}; its revisions are "
                f"generations {', '.join(str(g) for g in kept)}",
                fix=f"pick one of those: {history}",
            )
        return found

    def _check_available(
        self, session: Session, row: DeploymentRow, revision: DeploymentRevisionRow
    ) -> None:
        """Refuse a revision whose model version or photon has been deleted since."""
        if still_available(session, revision):
            return
        model = self.models.ref(session, revision.model_version_id)
        other = (
            f"--model {model.partition('@')[0]}@N" if model else "--model REF (or --photon NAME)"
        )
        raise Conflict(
            f"generation {revision.generation} of deployment '{row.name}' served "
            f"{model or revision.source_ref}, which has been deleted since",
            fix=f"roll back to another generation (lepton deployment history {row.name}), or "
            f"serve another: lepton deployment update {row.name} {other}",
        )

    def _set_environment(
        self,
        session: Session,
        principal: Principal,
        row: DeploymentRow,
        env: dict[str, str],
        secrets: builtins.list[str],
    ) -> builtins.list[str]:
        """Replace the variables and secrets the replicas get; says which of them changed."""
        both = env_and_secrets_overlap(env, secrets)
        if both:
            raise InvalidRequest(
                f"{', '.join(both)} would be set by both env and secrets",
                fix="drop one of the two in the update",
            )
        self.secrets.require(session, principal, secrets)
        changed = [
            name
            for name, new, old in (
                ("env", env, deployment_env(row)),
                ("secrets", secrets, deployment_secrets(row)),
            )
            if new != old
        ]
        row.env_json = json.dumps(env) if env else None
        row.secrets_json = json.dumps(secrets) if secrets else None
        return changed

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

    def traffic(self, principal: Principal, name: str, minutes: int = 60) -> DeploymentTraffic:
        """Requests, errors, refusals and latency percentiles over the last ``minutes``, in
        10-second windows summed over the replicas, from their own reports; kept in memory for
        an hour (``lepton.control.traffic``)."""
        if not 1 <= minutes <= KEEP_MINUTES:
            raise InvalidRequest(
                f"minutes must be 1 to {KEEP_MINUTES}, got {minutes}",
                fix=f"ask for at most the {KEEP_MINUTES} minutes kept: minutes={KEEP_MINUTES}",
            )
        with self.ctx.sessions() as session:
            deployment_id = self.deployment_row(session, principal, name).id
        return self.ctx.traffic.traffic(deployment_id, name, minutes=minutes, now=self.ctx.clock())

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
        photon = photon_ref(session, row.photon_id)
        ready = sum(
            r.state == ReplicaState.ready and r.generation == row.generation for r in replicas
        )
        return Deployment(
            name=row.name,
            id=row.id,
            url=replica_url(self.ctx.settings, row.port),
            public=row.public,
            state=summary(row, replicas, ready),
            source="photon" if row.photon_id else "model",
            model=self.models.ref(session, row.model_version_id),
            photon=photon,
            replicas=row.replicas,
            ready_replicas=ready,
            generation=row.generation,
            gateway_url=gateway_url_of(self.ctx.gateway_url, session, row),
            autoscaling=autoscaling_of(row),
            canary=self._canary_view(session, row, replicas),
            token_id=row.token_id,
            error=row.error_message or crash_message(replicas, ready),
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
            **settings_of(row),
        )

    def _canary_view(
        self, session: Session, row: DeploymentRow, replicas: builtins.list[ReplicaRow]
    ) -> Canary | None:
        if row.canary_generation is None:
            return None
        revision = session.get(DeploymentRevisionRow, (row.id, row.canary_generation))
        return Canary(
            generation=row.canary_generation,
            share=row.canary_share or 0.0,
            model=self.models.ref(session, revision.model_version_id) if revision else None,
            photon=photon_ref(session, revision.photon_id) if revision else None,
            ready_replicas=sum(
                r.state == ReplicaState.ready and r.generation == row.canary_generation
                for r in replicas
            ),
            error_margin=row.canary_error_margin,
            latency_margin=row.canary_latency_margin,
            window_s=row.canary_window_s,
        )

    def _revision_view(
        self, session: Session, revision: DeploymentRevisionRow, current: int
    ) -> DeploymentRevision:
        return DeploymentRevision(
            generation=revision.generation,
            current=revision.generation == current,
            reason=revision.reason,
            model=self.models.ref(session, revision.model_version_id),
            photon=photon_ref(session, revision.photon_id),
            available=still_available(session, revision),
            created_at=revision.created_at,
            created_by=revision.created_by,
            **settings_of(revision),
        )
