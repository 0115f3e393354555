"""The model registry: versions with their lineage, references (``3``, ``latest``, an alias),
aliases, descriptions, evaluations, model cards, and deletion.

A deleted version stays as a tombstone row (``deleted_at`` set, artifact digest cleared), so its
number is never reused, lineage through it stays whole, and asking for it says it was deleted.
A version references its artifact and explanation plot, an evaluation its plots; deleting the
version releases them, and bytes no one else uses are erased.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.control.content import Content
from lepton.control.context import Context
from lepton.control.datasets import DatasetService
from lepton.control.named import named_row
from lepton.control.numbering import newest_versions, next_number
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.names import fits
from lepton.refs import parse_ref, version_number
from lepton.schemas import (
    MODEL_ALIAS_PATTERN,
    Evaluation,
    Model,
    ModelRegister,
    ModelVersion,
)
from lepton.store.models import (
    DatasetVersionRow,
    JobRow,
    ModelAliasRow,
    ModelEvaluationRow,
    ModelRow,
    ModelVersionRow,
)

__all__ = ["Lineage", "ModelService", "UserCheck"]

_NUMBER = r"^v?[0-9]+$"

UserCheck = Callable[[Session, ModelVersionRow], builtins.list[str]]
"""Names what serves a version (``deployment web``): deleting it is refused while any answers,
even when forced, since a replica restarting would find no artifact."""


def _is_alias(text: str) -> bool:
    return text != "latest" and fits(MODEL_ALIAS_PATTERN, text) and not fits(_NUMBER, text)


def owner(version_id: str) -> tuple[str, str]:
    return ("model_version", version_id)


def evaluation_owner(evaluation_id: str) -> tuple[str, str]:
    return ("evaluation", evaluation_id)


Lineage = tuple[JobRow | None, str | None, dict[str, str] | None]
"""What a registration records of where the model came from: job, dataset version, environment."""


class ModelService:
    def __init__(self, ctx: Context, content: Content, datasets: DatasetService) -> None:
        self.ctx = ctx
        self.content = content
        self.datasets = datasets
        self.users: builtins.list[UserCheck] = []
        datasets.users.append(self._dataset_users)
        datasets.unlinks.append(self._dataset_unlink)

    # --- lookups ------------------------------------------------------------------------------

    def model_row(self, session: Session, principal: Principal, name: str) -> ModelRow:
        row = session.scalars(
            select(ModelRow).where(
                ModelRow.workspace_id == principal.workspace_id, ModelRow.name == name
            )
        ).first()
        if row is None:
            raise NotFound(
                f"model '{name}' does not exist in workspace '{principal.workspace}'",
                fix="list the models with `lepton model list`, or train one: lepton train DATASET",
            )
        return row

    def version_row(
        self,
        session: Session,
        principal: Principal,
        name: str,
        version: str,
        *,
        include_deleted: bool = False,
    ) -> tuple[ModelRow, ModelVersionRow]:
        """Resolve ``version`` of model ``name``: a number (``3``, ``v3``), ``latest`` (the
        newest version not deleted) or an alias (``production``).

        Raises:
            NotFound: no such model, version or alias; or the version was deleted (the message
                says when), unless ``include_deleted``.
        """
        model = self.model_row(session, principal, name)
        live = ModelVersionRow.deleted_at.is_(None)
        if _is_alias(version):
            row = session.get(ModelVersionRow, self._alias_row(session, model, version).version_id)
        else:
            number = version_number(version, example=f"{name}@1 or {name}@production")
            query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
            if number is None:
                query = query.where(live).order_by(ModelVersionRow.version.desc()).limit(1)
            else:
                query = query.where(ModelVersionRow.version == number)
            row = session.scalars(query).first()
        if row is None:
            raise NotFound(
                f"model '{name}' has no version {version}",
                fix=f"list them: lepton model show {name}",
            )
        if row.deleted_at is not None and not include_deleted:
            raise NotFound(
                f"{name}@{row.version} was deleted on {row.deleted_at:%Y-%m-%d %H:%M} UTC; "
                "its artifact and evaluations are gone",
                fix=f"use another version: lepton model show {name}",
            )
        return model, row

    def resolve(
        self, session: Session, principal: Principal, ref: str
    ) -> tuple[ModelRow, ModelVersionRow]:
        """``heart@3``, ``heart@production`` or ``heart`` (latest) → the model and version."""
        name, version = parse_ref(ref)
        return self.version_row(session, principal, name, version)

    def ref(self, session: Session, version_id: str | None) -> str | None:
        """``name@N`` of a version id, or None."""
        row = session.get(ModelVersionRow, version_id) if version_id else None
        model = session.get(ModelRow, row.model_id) if row else None
        return f"{model.name}@{row.version}" if row and model else None

    # --- reading ------------------------------------------------------------------------------

    def list(self, principal: Principal, page: PageRequest) -> Page[Model]:
        query = select(ModelRow).where(ModelRow.workspace_id == principal.workspace_id)
        loaded = _Loaded()
        with self.ctx.sessions() as session:
            return paged(
                session,
                query,
                [ModelRow.name],
                page,
                lambda r: self._model_view(session, r, loaded),
                prefetch=lambda rows: self._load_models(session, rows, loaded),
            )

    def get(self, principal: Principal, name: str) -> Model:
        with self.ctx.sessions() as session:
            return self._model_view(session, self.model_row(session, principal, name))

    def versions(self, principal: Principal, name: str, page: PageRequest) -> Page[ModelVersion]:
        with self.ctx.sessions() as session:
            model = self.model_row(session, principal, name)
            query = select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.deleted_at.is_(None)
            )
            loaded = _Loaded()
            return paged(
                session,
                query,
                [ModelVersionRow.version],
                page,
                lambda r: self.version_view(session, model, r, loaded),
                prefetch=lambda rows: self._load_versions(session, [model.id], rows, loaded),
            )

    def version(self, principal: Principal, name: str, version: str) -> ModelVersion:
        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            return self.version_view(session, model, row)

    def open_artifact(
        self, principal: Principal, name: str, version: str
    ) -> tuple[Iterator[bytes], str]:
        """The packed model (a zip of safe files; no pickle), verified as it streams."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
            digest = row.artifact_digest
        assert digest is not None  # version_row never answers a deleted version
        return self.ctx.blobs.open(digest), digest

    def evaluations(
        self, principal: Principal, name: str, version: str
    ) -> builtins.list[Evaluation]:
        """Evaluations of a version, oldest first: the held-out split at training, then jobs."""
        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            return [
                self._evaluation_view(session, model, row, e) for e in self._evals(session, row)
            ]

    def explanation(self, principal: Principal, name: str, version: str) -> dict[str, Any]:
        """The global explanation recorded at registration (what drives the model over a sample
        of held-out rows), or ``{"not_computed": reason}``.

        Raises:
            NotFound: none was recorded (a version registered without one).
        """
        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            if not row.explanations_json:
                raise NotFound(
                    f"model {model.name}@{row.version} has no global explanation",
                    fix="register it from a job (lepton.save_model) or with a background sample",
                )
            found: dict[str, Any] = json.loads(row.explanations_json)
            return found

    def card(self, principal: Principal, name: str, version: str, *, html: bool) -> str:
        """The model card, rendered from recorded facts only."""
        from lepton.registry.card import render_html, render_markdown

        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            facts = self.facts(session, model, row)
            plot = _explanation_plot(row)
        if not html:
            return render_markdown(facts)
        digests = [d for e in facts.get("evaluations", []) for d in e.get("plots", {}).values()]
        images = {d: self.ctx.blobs.read_bytes(d) for d in [*digests, plot] if d}
        return render_html(facts, images)

    # --- registering --------------------------------------------------------------------------

    def register(self, principal: Principal, name: str, body: ModelRegister) -> ModelVersion:
        """Register a model trained elsewhere: its packed artifact (uploaded first) must hold
        safe files only, which is checked entry by entry before anything is recorded."""
        return self.register_version(principal, name, body, (None, None, None))

    def register_version(
        self, principal: Principal, name: str, body: ModelRegister, lineage: Lineage
    ) -> ModelVersion:
        """A new version of ``name`` (created if needed) with its lineage; the artifact and the
        plots must be uploads of the workspace. Nothing is recorded unless all of it checks."""
        job, dataset_version_id, environment = lineage
        explanations = _explanations_json(body.explanations)
        plot = json.loads(explanations).get("plot") if explanations else None
        with self.ctx.sessions() as session:  # everything that can refuse, before any write
            if not self.content.uploaded(session, principal.workspace_id, body.artifact_digest):
                raise NotFound(
                    f"artifact {body.artifact_digest} was not uploaded to this workspace",
                    fix="upload the packed model first (POST /api/v1/blobs); the SDK does this",
                )
            if plot and not self.content.uploaded(session, principal.workspace_id, str(plot)):
                raise NotFound(
                    f"the explanation plot ({plot}) was not uploaded to this workspace",
                    fix="upload the PNG first (POST /api/v1/blobs); the SDK does this for you",
                )
            parent_id = self.resolve(session, principal, body.parent)[1].id if body.parent else None
        self._check_artifact(body.artifact_digest)
        model = named_row(self.ctx, ModelRow, principal.workspace_id, name)
        with self.ctx.sessions() as session:
            row_id = uuid.uuid4().hex
            roles = {"artifact": body.artifact_digest}
            if plot:
                roles["explanation-plot"] = str(plot)
            for role, digest in sorted(roles.items()):
                self.content.refer(
                    session,
                    digest,
                    workspace_id=principal.workspace_id,
                    owner=owner(row_id),
                    role=role,
                )
            row = ModelVersionRow(
                id=row_id,
                model_id=model.id,
                version=next_number(session, "model_version", model.id),
                flavour=body.flavour,
                algorithm=body.algorithm,
                task=body.task,
                artifact_digest=body.artifact_digest,
                signature_json=json.dumps(body.signature),
                metrics_json=json.dumps(body.metrics),
                params_json=json.dumps(body.params),
                leaderboard_json=json.dumps(body.leaderboard),
                environment_json=json.dumps(environment) if environment else None,
                dataset_version_id=dataset_version_id,
                job_id=job.id if job else None,
                created_at=self.ctx.clock(),
                created_by=principal.token_id,
                description=body.description,
                parent_id=parent_id,
                explanations_json=explanations,
            )
            session.add(row)
            session.commit()
            return self.version_view(session, model, row)

    def _check_artifact(self, digest: str) -> None:
        """Unpack a stored artifact into scratch space, refusing anything not a safe file."""
        from lepton.registry.artifacts import unpack

        with self.ctx.spool() as work:
            archive = self.datasets.fetch(digest, work / "model.zip")
            unpack(archive, work / "model")

    def describe(
        self, principal: Principal, name: str, version: str, text: str | None
    ) -> ModelVersion:
        """Set the intended-use text the model card quotes (the only field that may change)."""
        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            row.description = text or None
            session.commit()
            return self.version_view(session, model, row)

    # --- aliases ------------------------------------------------------------------------------

    def set_alias(self, principal: Principal, name: str, version: str, alias: str) -> ModelVersion:
        """Point ``alias`` at ``name@version``; moving an existing alias is one UPDATE, so a
        reader sees the old version or the new one, never neither."""
        with self.ctx.sessions() as session:
            self.model_row(session, principal, name)  # an unknown model is a 404 first
            if not _is_alias(alias):
                raise InvalidRequest(
                    f"{alias!r} cannot be an alias: aliases start with a letter and hold a-z, "
                    "0-9, '-' and '_', and 'latest' and version numbers such as v3 are taken",
                    fix="pick a name such as production or staging",
                )
            if not fits(_NUMBER, version):
                raise InvalidRequest(
                    f"an alias points at a version number, not at {version!r}",
                    fix=f"lepton model alias {name}@3 {alias}",
                )
            model, row = self.version_row(session, principal, name, version)
            for _attempt in range(5):
                existing = session.get(ModelAliasRow, (model.id, alias))
                if existing is not None:
                    existing.version_id, existing.updated_at = row.id, self.ctx.clock()
                    existing.updated_by = principal.token_id
                else:
                    session.add(
                        ModelAliasRow(
                            model_id=model.id,
                            alias=alias,
                            version_id=row.id,
                            updated_at=self.ctx.clock(),
                            updated_by=principal.token_id,
                        )
                    )
                try:
                    session.commit()
                except IntegrityError:  # another request created it first: update theirs
                    session.rollback()
                    continue
                return self.version_view(session, model, row)
        raise Conflict(f"could not set alias {alias} of model {name}", fix="try again")

    def delete_alias(self, principal: Principal, name: str, alias: str) -> None:
        with self.ctx.sessions() as session:
            model = self.model_row(session, principal, name)
            session.delete(self._alias_row(session, model, alias))
            session.commit()

    def _aliases(
        self, session: Session, model_id: str, version_id: str | None = None
    ) -> builtins.list[str]:
        query = select(ModelAliasRow.alias).where(ModelAliasRow.model_id == model_id)
        if version_id is not None:
            query = query.where(ModelAliasRow.version_id == version_id)
        return sorted(session.scalars(query))

    def _alias_row(self, session: Session, model: ModelRow, alias: str) -> ModelAliasRow:
        row = session.get(ModelAliasRow, (model.id, alias))
        if row is None:
            known = ", ".join(self._aliases(session, model.id)) or "none"
            raise NotFound(
                f"model '{model.name}' has no alias '{alias}' (its aliases: {known})",
                fix=f"set one: lepton model alias {model.name}@N {alias}",
            )
        return row

    # --- deletion -----------------------------------------------------------------------------

    def delete_version(self, principal: Principal, name: str, version: str, *, force: bool) -> str:
        """Delete a version: its evaluations and aliases go, its row stays as a tombstone, and
        the artifact and plot bytes nothing else uses are erased. Returns ``name@N``."""
        with self.ctx.sessions() as session:
            model, row = self.version_row(session, principal, name, version)
            ref = f"{model.name}@{row.version}"
            serving = [user for check in self.users for user in check(session, row)]
            if serving:
                raise Conflict(
                    f"{ref} is in use by {', '.join(serving)}",
                    fix="delete or redeploy those first (lepton deployment rm NAME); --force "
                    "does not delete a version a deployment serves",
                )
            aliases = [f"alias {a}" for a in self._aliases(session, model.id, row.id)]
            if aliases and not force:
                raise Conflict(
                    f"{ref} is in use by {', '.join(aliases)}",
                    fix=f"move or delete those first, or pass --force (lepton model rm {ref} --force)",
                )
            for alias in session.scalars(
                select(ModelAliasRow).where(ModelAliasRow.version_id == row.id)
            ):
                session.delete(alias)
            released = self.content.release(session, owner(row.id))
            for evaluation in self._evals(session, row):
                released += self.content.release(session, evaluation_owner(evaluation.id))
                session.delete(evaluation)
            row.artifact_digest = None
            row.explanations_json = None  # its plot goes with the artifact
            row.deleted_at, row.deleted_by = self.ctx.clock(), principal.token_id
            session.commit()
        self.content.erase(released)
        return ref

    def _dataset_users(self, session: Session, row: DatasetVersionRow) -> builtins.list[str]:
        versions = session.execute(
            select(ModelRow.name, ModelVersionRow.version)
            .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
            .where(ModelVersionRow.dataset_version_id == row.id)
        )
        return [f"model {name}@{version}" for name, version in versions]

    def _dataset_unlink(self, session: Session, row: DatasetVersionRow) -> None:
        for version in session.scalars(
            select(ModelVersionRow).where(ModelVersionRow.dataset_version_id == row.id)
        ):
            version.dataset_version_id = None

    # --- evaluations --------------------------------------------------------------------------

    def record_evaluation(
        self,
        principal: Principal,
        row: ModelVersionRow,
        result: dict[str, Any],
        *,
        job: JobRow | None,
        split: str | None,
    ) -> Evaluation:
        """Attach an evaluation to a version. Its plot digests must be uploads of the workspace."""
        plots = result.get("plots", {})
        if not isinstance(plots, dict):
            raise InvalidRequest(
                "result.plots must map plot names to blob digests",
                fix='upload each plot (POST /blobs) and send {"plots": {"roc": DIGEST}}',
            )
        with self.ctx.sessions() as session:
            evaluation_id = uuid.uuid4().hex
            for name, digest in sorted(plots.items()):
                if not self.content.uploaded(session, principal.workspace_id, str(digest)):
                    raise NotFound(
                        f"plot {name!r} ({digest}) was not uploaded to this workspace",
                        fix="upload the PNG first (POST /api/v1/blobs)",
                    )
                self.content.refer(
                    session,
                    str(digest),
                    workspace_id=principal.workspace_id,
                    owner=evaluation_owner(evaluation_id),
                    role=f"plot:{name}"[:64],
                )
            evaluation = ModelEvaluationRow(
                id=evaluation_id,
                model_version_id=row.id,
                job_id=job.id if job else None,
                dataset_version_id=job.dataset_version_id if job else None,
                split=split,
                result_json=json.dumps(result, sort_keys=True),
                created_at=self.ctx.clock(),
                created_by=principal.token_id,
            )
            session.add(evaluation)
            session.commit()
            model = session.get(ModelRow, row.model_id)
            assert model is not None
            return self._evaluation_view(session, model, row, evaluation)

    def _evals(self, session: Session, row: ModelVersionRow) -> builtins.list[ModelEvaluationRow]:
        return list(
            session.scalars(
                select(ModelEvaluationRow)
                .where(ModelEvaluationRow.model_version_id == row.id)
                .order_by(ModelEvaluationRow.created_at, ModelEvaluationRow.id)
            )
        )

    # --- views --------------------------------------------------------------------------------

    def _evaluation_view(
        self,
        session: Session,
        model: ModelRow,
        row: ModelVersionRow,
        evaluation: ModelEvaluationRow,
    ) -> Evaluation:
        return Evaluation(
            id=evaluation.id,
            model_version=f"{model.name}@{row.version}",
            dataset_version=self.datasets.ref(session, evaluation.dataset_version_id),
            split=evaluation.split,
            job=evaluation.job_id,
            result=json.loads(evaluation.result_json),
            created_at=evaluation.created_at,
        )

    def version_view(
        self,
        session: Session,
        model: ModelRow,
        row: ModelVersionRow,
        loaded: _Loaded | None = None,
    ) -> ModelVersion:
        """``loaded``: what a page prefetched (:meth:`_load_versions`), so a page of versions
        costs the same few queries however long it is."""
        if loaded is None:
            aliases = self._aliases(session, model.id, row.id)
        else:
            aliases = sorted(a for a, vid, _ in loaded.aliases.get(model.id, []) if vid == row.id)
        env: Any = json.loads(row.environment_json) if row.environment_json else None
        return ModelVersion(
            model=model.name,
            version=row.version,
            ref=f"{model.name}@{row.version}",
            flavour=row.flavour,
            algorithm=row.algorithm,
            task=row.task,
            artifact_digest=row.artifact_digest or "",
            signature=json.loads(row.signature_json),
            metrics=json.loads(row.metrics_json),
            params=json.loads(row.params_json),
            leaderboard=json.loads(row.leaderboard_json),
            dataset_version=self.datasets.ref(session, row.dataset_version_id),
            job=row.job_id,
            environment=env,
            created_at=row.created_at,
            description=row.description,
            parent=self.ref(session, row.parent_id),
            aliases=aliases,
        )

    def _model_view(
        self, session: Session, model: ModelRow, loaded: _Loaded | None = None
    ) -> Model:
        if loaded is None:
            loaded = _Loaded()
            self._load_models(session, [model], loaded)
        latest = loaded.latest.get(model.id)
        return Model(
            name=model.name,
            created_at=model.created_at,
            versions=loaded.counts.get(model.id, 0),
            latest=self.version_view(session, model, latest, loaded) if latest else None,
            aliases={alias: number for alias, _, number in loaded.aliases.get(model.id, [])},
        )

    def _load_models(self, session: Session, models: Sequence[ModelRow], loaded: _Loaded) -> None:
        """Counts, newest versions and aliases of a page of models, and what those versions refer
        to: a few queries for the whole page."""
        ids = [m.id for m in models]
        if not ids:
            return
        counts, rows = newest_versions(
            session,
            ModelVersionRow.model_id,
            ModelVersionRow.version,
            ids,
            ModelVersionRow.deleted_at.is_(None),
        )
        loaded.counts.update(counts)
        loaded.latest.update((r.model_id, r) for r in rows)
        self._load_versions(session, ids, rows, loaded)

    def _load_versions(
        self,
        session: Session,
        model_ids: Sequence[str],
        rows: Sequence[ModelVersionRow],
        loaded: _Loaded,
    ) -> None:
        """The aliases of ``model_ids`` and what ``rows`` refer to (datasets, parents), so the
        views answer from the session."""
        for alias, version_id, model_id, number in session.execute(
            select(
                ModelAliasRow.alias,
                ModelAliasRow.version_id,
                ModelAliasRow.model_id,
                ModelVersionRow.version,
            )
            .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id)
            .where(ModelAliasRow.model_id.in_(model_ids))
            .order_by(ModelAliasRow.alias)
        ):
            loaded.aliases.setdefault(model_id, []).append((alias, version_id, number))
        loaded.held += self.datasets.load_refs(session, (r.dataset_version_id for r in rows))
        parents = {r.parent_id for r in rows if r.parent_id}
        if parents:
            found = list(
                session.scalars(select(ModelVersionRow).where(ModelVersionRow.id.in_(parents)))
            )
            owners = {r.model_id for r in found} - set(model_ids)
            if owners:
                found += session.scalars(select(ModelRow).where(ModelRow.id.in_(owners)))
            loaded.held += found

    def facts(self, session: Session, model: ModelRow, row: ModelVersionRow) -> dict[str, Any]:
        """Everything the registry recorded about ``row``, as the model card's one input
        (:mod:`lepton.registry.card`): a fact not recorded is absent, never None or a guess."""
        from lepton.registry.facts import dataset_facts, present

        view = self.version_view(session, model, row)
        facts: dict[str, Any] = {
            "model": present(
                {
                    "name": model.name,
                    "version": row.version,
                    "ref": view.ref,
                    "flavour": row.flavour,
                    "algorithm": row.algorithm,
                    "task": row.task,
                    "registered_at": row.created_at.isoformat(),
                    "aliases": view.aliases,
                    "parent": view.parent,
                    "job": row.job_id,
                }
            ),
            "signature": view.signature,
            "params": view.params,
            "metrics": view.metrics,
            "leaderboard": view.leaderboard,
        }
        if row.description:
            facts["intended_use"] = row.description
        if view.environment:
            facts["environment"] = view.environment
        version = (
            session.get(DatasetVersionRow, row.dataset_version_id)
            if row.dataset_version_id
            else None
        )
        if version is not None:
            dataset = self.datasets.version_view(
                session, self.datasets.dataset_of(session, version), version
            )
            facts["dataset"] = dataset_facts(
                dataset,
                json.loads(version.profile_json),
                json.loads(version.pii_json),
                version.content_hash,
            )
        evaluations = []
        for evaluation in self._evals(session, row):
            entry = json.loads(evaluation.result_json)
            entry["dataset"] = self.datasets.ref(session, evaluation.dataset_version_id)
            entry["split"] = evaluation.split
            entry["job"] = evaluation.job_id
            entry["recorded_at"] = evaluation.created_at.isoformat()
            evaluations.append(present(entry))
        if evaluations:
            facts["evaluations"] = evaluations
        if row.explanations_json:
            facts["explanations"] = json.loads(row.explanations_json)
        return present(facts)


def _explanations_json(explanations: dict[str, Any] | None) -> str | None:
    """The global explanation as stored: a reason it was not computed, or a summary of a known
    kind (its plot, if any, is checked as an upload by the caller)."""
    if explanations is None:
        return None
    fix = "send the dict lepton.explain.global_explanation returned, or {not_computed: reason}"
    if "not_computed" in explanations:
        if not isinstance(explanations["not_computed"], str) or len(explanations) != 1:
            raise InvalidRequest("explanations.not_computed must be the reason, alone", fix=fix)
    elif explanations.get("kind") not in ("tabular", "image", "text"):
        raise InvalidRequest(
            f"explanations.kind is {explanations.get('kind')!r}; allowed are tabular, image, text",
            fix=fix,
        )
    return json.dumps(explanations, sort_keys=True)


def _explanation_plot(row: ModelVersionRow) -> str | None:
    if not row.explanations_json:
        return None
    plot = json.loads(row.explanations_json).get("plot")
    return str(plot) if plot else None


@dataclass
class _Loaded:
    """What a page of models or versions refers to, loaded once for the page."""

    counts: dict[str, int] = field(default_factory=dict)
    latest: dict[str, ModelVersionRow] = field(default_factory=dict)
    aliases: dict[str, builtins.list[tuple[str, str, int]]] = field(default_factory=dict)
    """Model id to ``(alias, version id, version number)``, by alias."""
    held: builtins.list[Any] = field(default_factory=list)
    """Rows the views read through ``session.get``: the session holds them only weakly."""
