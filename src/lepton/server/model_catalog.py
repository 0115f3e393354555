"""The model registry's store side: registering versions with their lineage, resolving
references (``3``, ``latest``, an alias), aliases, deletion, descriptions and evaluations.

A deleted version stays as a tombstone row (``deleted_at`` set, artifact digest cleared), so its
number is never reused, lineage through it stays whole, and asking for it says it was deleted.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.errors import Conflict, InvalidRequest, LeptonError, NotFound, PermissionDenied
from lepton.refs import parse_ref, version_number
from lepton.schemas import (
    MODEL_ALIAS_PATTERN,
    EvaluateSpec,
    Evaluation,
    EvaluationRecord,
    Model,
    ModelRegister,
    ModelVersion,
)
from lepton.server.auth import Principal
from lepton.store.content import erase_unreferenced
from lepton.store.models import (
    BlobRow,
    DatasetRow,
    DatasetVersionRow,
    JobRow,
    ModelAliasRow,
    ModelEvaluationRow,
    ModelRow,
    ModelVersionRow,
    utcnow,
)

if TYPE_CHECKING:
    from lepton.server.state import ServerState

__all__ = [
    "VERSION_USERS",
    "check_evaluate",
    "dataset_ref",
    "delete_alias",
    "delete_version",
    "evaluation_view",
    "evaluations_of",
    "explanation_plot",
    "get_model",
    "get_model_version",
    "job_model_version",
    "model_view",
    "record_evaluation",
    "record_job_evaluation",
    "register_version",
    "resolve_ref",
    "set_alias",
    "version_view",
]

_ALIAS = re.compile(MODEL_ALIAS_PATTERN)
_NUMBER = re.compile(r"^v?\d+$")


def _is_alias(text: str) -> bool:
    return text != "latest" and _ALIAS.match(text) is not None and not _NUMBER.match(text)


def _deployments(session: Session, row: ModelVersionRow) -> list[str]:
    from lepton.store.models import DeploymentRow

    names = session.scalars(
        select(DeploymentRow.name)
        .where(DeploymentRow.model_version_id == row.id)
        .order_by(DeploymentRow.name)
    )
    return [f"deployment {name}" for name in names]


VERSION_USERS: list[Callable[[Session, ModelVersionRow], list[str]]] = [_deployments]
"""Checks that name what still uses a version (``deployment web``). Deleting it is refused
while any answers, even when forced: a replica restarting would find no artifact. Aliases are
checked apart, since forcing removes them."""


def get_model(session: Session, principal: Principal, name: str) -> ModelRow:
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


def get_model_version(
    session: Session,
    principal: Principal,
    name: str,
    version: str,
    *,
    include_deleted: bool = False,
) -> tuple[ModelRow, ModelVersionRow]:
    """Resolve ``version`` of model ``name``: a number (``3``, ``v3``), ``latest`` (the newest
    version not deleted) or an alias (``production``).

    Raises:
        NotFound: no such model, version or alias; or the version was deleted (the message says
            when), unless ``include_deleted``.
    """
    model = get_model(session, principal, name)
    live = ModelVersionRow.deleted_at.is_(None)
    if _is_alias(version):
        row = session.get(ModelVersionRow, _alias_row(session, model, version).version_id)
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
            f"model '{name}' has no version {version}", fix=f"list them: lepton model show {name}"
        )
    if row.deleted_at is not None and not include_deleted:
        raise NotFound(
            f"{name}@{row.version} was deleted on {row.deleted_at:%Y-%m-%d %H:%M} UTC; "
            "its artifact and evaluations are gone",
            fix=f"use another version: lepton model show {name}",
        )
    return model, row


def resolve_ref(
    session: Session, principal: Principal, ref: str
) -> tuple[ModelRow, ModelVersionRow]:
    """``heart@3``, ``heart@production`` or ``heart`` (latest) → the model and its version."""
    name, version = parse_ref(ref)
    return get_model_version(session, principal, name, version)


def register_version(
    session: Session,
    principal: Principal,
    body: ModelRegister,
    *,
    name: str,
    job: JobRow | None,
    dataset_version_id: str | None,
    environment: dict[str, str] | None,
) -> tuple[ModelRow, ModelVersionRow]:
    """A new version of model ``name`` (created if needed). The caller has stored the artifact.
    A parent reference that does not resolve is refused before anything is written."""
    parent_id = resolve_ref(session, principal, body.parent)[1].id if body.parent else None
    explanations = _explanations_json(session, principal, body.explanations)
    for _attempt in range(10):
        model = session.scalars(
            select(ModelRow).where(
                ModelRow.workspace_id == principal.workspace_id, ModelRow.name == name
            )
        ).first()
        if model is None:
            model = ModelRow(
                id=uuid.uuid4().hex,
                workspace_id=principal.workspace_id,
                name=name,
                created_at=utcnow(),
            )
            session.add(model)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                continue
        number = model.last_version + 1
        model.last_version = number
        row = ModelVersionRow(
            id=uuid.uuid4().hex,
            model_id=model.id,
            version=number,
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
            created_at=utcnow(),
            created_by=principal.token_id,
            description=body.description,
            parent_id=parent_id,
            explanations_json=explanations,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # a concurrent registration took the number
            session.rollback()
            continue
        return model, row
    raise Conflict(f"could not number a new version of model '{name}'", fix="register again")


def _explanations_json(
    session: Session, principal: Principal, explanations: dict[str, Any] | None
) -> str | None:
    """The global explanation as stored: either a reason it was not computed, or a summary of
    a known kind whose plot (if any) is a blob of the workspace."""
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
    plot = explanations.get("plot")
    if plot is not None and session.get(BlobRow, (principal.workspace_id, str(plot))) is None:
        raise NotFound(
            f"the explanation plot ({plot}) was not uploaded to this workspace",
            fix="upload the PNG first (POST /api/v1/blobs); the SDK does this for you",
        )
    return json.dumps(explanations, sort_keys=True)


def explanation_plot(row: ModelVersionRow) -> str | None:
    """The blob digest of a version's global explanation plot, if one was recorded."""
    if not row.explanations_json:
        return None
    plot = json.loads(row.explanations_json).get("plot")
    return str(plot) if plot else None


# --- aliases -------------------------------------------------------------------------------


def _aliases(session: Session, model_id: str, version_id: str | None = None) -> list[str]:
    query = select(ModelAliasRow.alias).where(ModelAliasRow.model_id == model_id)
    if version_id is not None:
        query = query.where(ModelAliasRow.version_id == version_id)
    return sorted(session.scalars(query))


def set_alias(
    session: Session, principal: Principal, name: str, version: str, alias: str
) -> tuple[ModelRow, ModelVersionRow]:
    """Point ``alias`` at ``name@version``; moving an existing alias is one UPDATE, so a reader
    sees the old version or the new one, never neither."""
    get_model(session, principal, name)  # an unknown model is a 404 before any other complaint
    if not _is_alias(alias):
        raise InvalidRequest(
            f"{alias!r} cannot be an alias: aliases start with a letter and hold a-z, 0-9, "
            "'-' and '_', and 'latest' and version numbers such as v3 are taken",
            fix="pick a name such as production or staging",
        )
    if not _NUMBER.match(version):
        raise InvalidRequest(
            f"an alias points at a version number, not at {version!r}",
            fix=f"lepton model alias {name}@3 {alias}",
        )
    model, row = get_model_version(session, principal, name, version)
    for _attempt in range(5):
        existing = session.get(ModelAliasRow, (model.id, alias))
        if existing is not None:
            existing.version_id, existing.updated_at = row.id, utcnow()
            existing.updated_by = principal.token_id
        else:
            session.add(
                ModelAliasRow(
                    model_id=model.id,
                    alias=alias,
                    version_id=row.id,
                    updated_at=utcnow(),
                    updated_by=principal.token_id,
                )
            )
        try:
            session.commit()
        except IntegrityError:  # another request created it first: update theirs instead
            session.rollback()
            continue
        return model, row
    raise Conflict(f"could not set alias {alias} of model {name}", fix="try again")


def delete_alias(session: Session, principal: Principal, name: str, alias: str) -> None:
    model = get_model(session, principal, name)
    session.delete(_alias_row(session, model, alias))
    session.commit()


def _alias_row(session: Session, model: ModelRow, alias: str) -> ModelAliasRow:
    row = session.get(ModelAliasRow, (model.id, alias))
    if row is None:
        known = ", ".join(_aliases(session, model.id)) or "none"
        raise NotFound(
            f"model '{model.name}' has no alias '{alias}' (its aliases: {known})",
            fix=f"set one: lepton model alias {model.name}@N {alias}",
        )
    return row


# --- deletion ------------------------------------------------------------------------------


def delete_version(
    state: ServerState,
    session: Session,
    principal: Principal,
    model: ModelRow,
    row: ModelVersionRow,
    *,
    force: bool,
) -> None:
    """Delete a version: its evaluations and aliases go, its row stays as a tombstone, and the
    artifact and plot bytes that nothing else refers to are erased."""
    ref = f"{model.name}@{row.version}"
    serving = [user for check in VERSION_USERS for user in check(session, row)]
    if serving:
        raise Conflict(
            f"{ref} is in use by {', '.join(serving)}",
            fix="delete or redeploy those first (lepton deployment rm NAME); --force does not "
            "delete a version a deployment serves",
        )
    users = [f"alias {a}" for a in _aliases(session, model.id, row.id)]
    if users and not force:
        raise Conflict(
            f"{ref} is in use by {', '.join(users)}",
            fix=f"move or delete those first, or pass --force (lepton model rm {ref} --force)",
        )
    for alias in session.scalars(select(ModelAliasRow).where(ModelAliasRow.version_id == row.id)):
        session.delete(alias)
    digests: list[str] = []
    evaluations = session.scalars(
        select(ModelEvaluationRow).where(ModelEvaluationRow.model_version_id == row.id)
    )
    for evaluation in evaluations:
        digests.extend(json.loads(evaluation.result_json).get("plots", {}).values())
        session.delete(evaluation)
    if row.artifact_digest is not None:
        digests.append(row.artifact_digest)
    plot = explanation_plot(row)
    if plot is not None:
        digests.append(plot)
    row.artifact_digest = None
    row.explanations_json = None  # its plot goes with the artifact
    row.deleted_at, row.deleted_by = utcnow(), principal.token_id
    session.flush()
    for digest in set(digests):
        if not _workspace_uses(session, principal.workspace_id, digest):
            blob = session.get(BlobRow, (principal.workspace_id, digest))
            if blob is not None:
                session.delete(blob)
    session.commit()
    with state.content_lock:
        erase_unreferenced(session, state.blobs, digests)


def _workspace_uses(session: Session, workspace_id: str, digest: str) -> bool:
    """Whether a live version (its artifact or explanation plot) or an evaluation of the
    workspace still refers to ``digest``."""
    versions = session.scalars(
        select(ModelVersionRow.id)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(ModelRow.workspace_id == workspace_id)
        .where(
            (ModelVersionRow.artifact_digest == digest)
            | ModelVersionRow.explanations_json.contains(digest)
        )
        .limit(1)
    ).first()
    if versions is not None:
        return True
    plots = session.scalars(
        select(ModelEvaluationRow.id)
        .join(ModelVersionRow, ModelVersionRow.id == ModelEvaluationRow.model_version_id)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(ModelRow.workspace_id == workspace_id)
        .where(ModelEvaluationRow.result_json.contains(digest))
        .limit(1)
    ).first()
    return plots is not None


# --- evaluations ---------------------------------------------------------------------------


def record_evaluation(
    session: Session,
    principal: Principal,
    row: ModelVersionRow,
    result: dict[str, Any],
    *,
    job: JobRow | None,
    dataset_version_id: str | None,
    split: str | None,
) -> ModelEvaluationRow:
    """Attach an evaluation to a version. Its plot digests must be blobs of the workspace."""
    plots = result.get("plots", {})
    if not isinstance(plots, dict):
        raise InvalidRequest("result.plots must map plot names to blob digests", fix="")
    for name, digest in plots.items():
        if session.get(BlobRow, (principal.workspace_id, str(digest))) is None:
            raise NotFound(
                f"plot {name!r} ({digest}) was not uploaded to this workspace",
                fix="upload the PNG first (POST /api/v1/blobs)",
            )
    evaluation = ModelEvaluationRow(
        id=uuid.uuid4().hex,
        model_version_id=row.id,
        job_id=job.id if job else None,
        dataset_version_id=dataset_version_id,
        split=split,
        result_json=json.dumps(result, sort_keys=True),
        created_at=utcnow(),
        created_by=principal.token_id,
    )
    session.add(evaluation)
    session.commit()
    return evaluation


def evaluations_of(session: Session, row: ModelVersionRow) -> list[ModelEvaluationRow]:
    """A version's evaluations, oldest first."""
    return list(
        session.scalars(
            select(ModelEvaluationRow)
            .where(ModelEvaluationRow.model_version_id == row.id)
            .order_by(ModelEvaluationRow.created_at, ModelEvaluationRow.id)
        )
    )


def evaluation_view(
    session: Session, model: ModelRow, row: ModelVersionRow, evaluation: ModelEvaluationRow
) -> Evaluation:
    return Evaluation(
        id=evaluation.id,
        model_version=f"{model.name}@{row.version}",
        dataset_version=dataset_ref(session, evaluation.dataset_version_id),
        split=evaluation.split,
        job=evaluation.job_id,
        result=json.loads(evaluation.result_json),
        created_at=evaluation.created_at,
    )


# --- views ---------------------------------------------------------------------------------


def dataset_ref(session: Session, version_id: str | None) -> str | None:
    """``name@vN`` of a dataset version id, or None when it is gone."""
    if not version_id:
        return None
    dv = session.get(DatasetVersionRow, version_id)
    ds = session.get(DatasetRow, dv.dataset_id) if dv else None
    return f"{ds.name}@v{dv.version}" if dv and ds else None


def version_view(session: Session, model: ModelRow, row: ModelVersionRow) -> ModelVersion:
    env: Any = json.loads(row.environment_json) if row.environment_json else None
    parent = session.get(ModelVersionRow, row.parent_id) if row.parent_id else None
    parent_model = session.get(ModelRow, parent.model_id) if parent else None
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
        dataset_version=dataset_ref(session, row.dataset_version_id),
        job=row.job_id,
        environment=env,
        created_at=row.created_at,
        description=row.description,
        parent=f"{parent_model.name}@{parent.version}" if parent and parent_model else None,
        aliases=_aliases(session, model.id, row.id),
    )


def model_view(session: Session, model: ModelRow) -> Model:
    live = (ModelVersionRow.model_id == model.id) & ModelVersionRow.deleted_at.is_(None)
    count = session.scalar(select(func.count()).select_from(ModelVersionRow).where(live))
    latest = session.scalars(
        select(ModelVersionRow).where(live).order_by(ModelVersionRow.version.desc()).limit(1)
    ).first()
    aliases = session.execute(
        select(ModelAliasRow.alias, ModelVersionRow.version)
        .join(ModelVersionRow, ModelVersionRow.id == ModelAliasRow.version_id)
        .where(ModelAliasRow.model_id == model.id)
        .order_by(ModelAliasRow.alias)
    )
    return Model(
        name=model.name,
        created_at=model.created_at,
        versions=count or 0,
        latest=version_view(session, model, latest) if latest else None,
        aliases={alias: number for alias, number in aliases},
    )


def check_evaluate(
    session: Session, principal: Principal, spec: EvaluateSpec, dataset: DatasetVersionRow
) -> tuple[EvaluateSpec, LeptonError | None]:
    """The spec with its model reference pinned to ``name@N`` (an alias is resolved when the
    job is submitted, so moving it later does not change what is evaluated), and the reason the
    job cannot work, if there is one. An unknown model is refused outright (404)."""
    from lepton.data.columns import unknown_column

    model, row = resolve_ref(session, principal, spec.model)
    pinned = spec.model_copy(update={"model": f"{model.name}@{row.version}"})
    names = [str(c["name"]) for c in json.loads(dataset.schema_json)]
    target = spec.target or json.loads(row.signature_json).get("outputs", {}).get("target")
    target = target or dataset.target
    try:
        if row.task not in ("classification", "regression"):
            raise InvalidRequest(
                f"{pinned.model} is a {row.task} model; evaluate jobs cover classification and "
                "regression",
                fix=f"see its held-out metrics: lepton model show {pinned.model}",
            )
        if not target:
            raise InvalidRequest(
                "neither the model nor the dataset names a target column",
                fix=f"pass --target with one of: {', '.join(names[:20])}",
            )
        for column, where in [(target, "--target"), *((s, "--slice") for s in spec.slices)]:
            if column not in names:
                raise unknown_column(column, names, where=where, use=f"pass {where} {{}}")
    except LeptonError as exc:
        return pinned, exc
    return pinned, None


def job_model_version(
    session: Session, principal: Principal, job: JobRow
) -> tuple[ModelRow, ModelVersionRow]:
    """The version an evaluate job evaluates."""
    if job.kind != "evaluate":
        raise NotFound(f"job {job.id} is a {job.kind} job; it evaluates no model", fix="")
    return resolve_ref(session, principal, str(json.loads(job.spec_json)["model"]))


def record_job_evaluation(
    session: Session, principal: Principal, job: JobRow, body: EvaluationRecord
) -> Evaluation:
    """Record an evaluation a job computed: of the model it registered (train) or of the model
    it was asked to evaluate (evaluate); no other."""
    model, row = resolve_ref(session, principal, body.model_version)
    allowed = row.job_id == job.id or (
        job.kind == "evaluate" and job_model_version(session, principal, job)[1].id == row.id
    )
    if not allowed:
        raise PermissionDenied(
            f"job {job.id} may record evaluations of its own model only, not {body.model_version}",
            fix="",
        )
    split = body.split if row.job_id == job.id else None
    evaluation = record_evaluation(
        session,
        principal,
        row,
        body.result,
        job=job,
        dataset_version_id=job.dataset_version_id,
        split=split,
    )
    return evaluation_view(session, model, row, evaluation)
