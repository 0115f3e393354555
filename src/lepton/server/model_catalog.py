"""The model registry's store side: registering versions with their lineage, and lookups."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.errors import Conflict, NotFound
from lepton.refs import version_number
from lepton.schemas import Model, ModelRegister, ModelVersion
from lepton.server.auth import Principal
from lepton.store.models import (
    DatasetRow,
    DatasetVersionRow,
    JobRow,
    ModelRow,
    ModelVersionRow,
    utcnow,
)

__all__ = ["get_model", "get_model_version", "model_view", "register_version", "version_view"]


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
    session: Session, principal: Principal, name: str, version: str
) -> tuple[ModelRow, ModelVersionRow]:
    model = get_model(session, principal, name)
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
    number = version_number(version, example=f"{name}@1")
    if number is None:
        query = query.order_by(ModelVersionRow.version.desc()).limit(1)
    else:
        query = query.where(ModelVersionRow.version == number)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(
            f"model '{name}' has no version {version}", fix=f"list them: lepton model show {name}"
        )
    return model, row


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
    """A new version of model ``name`` (created if needed). The caller has stored the artifact."""
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
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # a concurrent registration took the number
            session.rollback()
            continue
        return model, row
    raise Conflict(f"could not number a new version of model '{name}'", fix="register again")


def version_view(session: Session, model: ModelRow, row: ModelVersionRow) -> ModelVersion:
    dataset_ref = None
    if row.dataset_version_id:
        dv = session.get(DatasetVersionRow, row.dataset_version_id)
        ds = session.get(DatasetRow, dv.dataset_id) if dv else None
        dataset_ref = f"{ds.name}@v{dv.version}" if dv and ds else None
    env: Any = json.loads(row.environment_json) if row.environment_json else None
    return ModelVersion(
        model=model.name,
        version=row.version,
        ref=f"{model.name}@{row.version}",
        flavour=row.flavour,
        algorithm=row.algorithm,
        task=row.task,
        artifact_digest=row.artifact_digest,
        signature=json.loads(row.signature_json),
        metrics=json.loads(row.metrics_json),
        params=json.loads(row.params_json),
        leaderboard=json.loads(row.leaderboard_json),
        dataset_version=dataset_ref,
        job=row.job_id,
        environment=env,
        created_at=row.created_at,
    )


def model_view(session: Session, model: ModelRow) -> Model:
    count = session.scalar(select(func.count()).where(ModelVersionRow.model_id == model.id))
    latest = session.scalars(
        select(ModelVersionRow)
        .where(ModelVersionRow.model_id == model.id)
        .order_by(ModelVersionRow.version.desc())
        .limit(1)
    ).first()
    return Model(
        name=model.name,
        created_at=model.created_at,
        versions=count or 0,
        latest=version_view(session, model, latest) if latest else None,
    )
