"""The model registry: list models, show versions, download artifacts, register models trained
elsewhere, aliases, descriptions, deletion, evaluations and model cards."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.errors import NotFound
from lepton.schemas import (
    DATASET_NAME_PATTERN,
    Evaluation,
    Model,
    ModelAliasSet,
    ModelRegister,
    ModelVersion,
    ModelVersionUpdate,
)
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.model_catalog import (
    delete_alias,
    delete_version,
    evaluation_view,
    evaluations_of,
    explanation_plot,
    get_model,
    get_model_version,
    model_view,
    register_version,
    set_alias,
    version_view,
)
from lepton.server.state import ServerState, db_session, get_state
from lepton.store.models import BlobRow, ModelRow, ModelVersionRow

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=ERROR_RESPONSES)

ModelName = Annotated[str, PathParam(description="Model name.", max_length=63)]
ModelVersionParam = Annotated[
    str, PathParam(description="`3`, `latest` or an alias (`production`).", max_length=63)
]
AliasParam = Annotated[str, PathParam(description="Alias name (`production`).", max_length=63)]
_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "The packed model."}
}


@router.get("", name="model.list")
def list_models(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Model]:
    rows = session.scalars(
        select(ModelRow)
        .where(ModelRow.workspace_id == principal.workspace_id)
        .order_by(ModelRow.name)
    )
    return [model_view(session, row) for row in rows]


@router.get("/{model_name}", name="model.get")
def get_model_route(
    model_name: ModelName,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Model:
    return model_view(session, get_model(session, principal, model_name))


@router.post("/{model_name}/versions", name="model.register", status_code=201)
def register_model_version(
    model_name: Annotated[
        str, PathParam(description="Model name.", pattern=DATASET_NAME_PATTERN, max_length=63)
    ],
    body: ModelRegister,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> ModelVersion:
    """Register a model trained elsewhere: its packed artifact (uploaded first as a blob) must
    hold safe files only, which is checked here, entry by entry."""
    if session.get(BlobRow, (principal.workspace_id, body.artifact_digest)) is None:
        raise NotFound(
            f"artifact {body.artifact_digest} was not uploaded to this workspace",
            fix="upload the packed model first (POST /api/v1/blobs); the SDK does this for you",
        )
    check_artifact(state, body.artifact_digest)
    model, row = register_version(
        session,
        principal,
        body,
        name=model_name,
        job=None,
        dataset_version_id=None,
        environment=None,
    )
    request.state.audit_resource = f"model/{model.name}@{row.version}"
    return version_view(session, model, row)


def check_artifact(state: ServerState, digest: str) -> None:
    """Unpack a stored artifact into scratch space, refusing anything that is not a safe file."""
    from lepton.registry.artifacts import unpack
    from lepton.server.catalog import fetch_blob

    with tempfile.TemporaryDirectory(dir=state.work_dir()) as work:
        archive = fetch_blob(state, digest, Path(work) / "model.zip")
        unpack(archive, Path(work) / "model")


@router.get("/{model_name}/versions", name="model.versions")
def list_model_versions(
    model_name: ModelName,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[ModelVersion]:
    model = get_model(session, principal, model_name)
    rows = session.scalars(
        select(ModelVersionRow)
        .where(ModelVersionRow.model_id == model.id, ModelVersionRow.deleted_at.is_(None))
        .order_by(ModelVersionRow.version)
    )
    return [version_view(session, model, row) for row in rows]


@router.get("/{model_name}/versions/{version}", name="model.version")
def get_model_version_route(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> ModelVersion:
    model, row = get_model_version(session, principal, model_name, version)
    return version_view(session, model, row)


@router.get(
    "/{model_name}/versions/{version}/artifact",
    name="model.artifact",
    response_class=StreamingResponse,
    responses=_BYTES,
)
def model_artifact(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The packed model (a zip of safetensors/skops files and JSON; no pickle)."""
    _, row = get_model_version(session, principal, model_name, version)
    assert row.artifact_digest is not None  # get_model_version never answers a deleted one
    return StreamingResponse(
        state.blobs.open(row.artifact_digest),
        media_type="application/zip",
        headers={"ETag": f'"{row.artifact_digest}"'},
    )


@router.patch("/{model_name}/versions/{version}", name="model.version_update")
def update_model_version(
    model_name: ModelName,
    version: ModelVersionParam,
    body: ModelVersionUpdate,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
) -> ModelVersion:
    """Set the intended-use text the model card quotes (the only field that may change)."""
    model, row = get_model_version(session, principal, model_name, version)
    row.description = body.description or None
    session.commit()
    request.state.audit_resource = f"model/{model.name}@{row.version}"
    return version_view(session, model, row)


@router.delete("/{model_name}/versions/{version}", name="model.version_delete", status_code=204)
def delete_model_version(
    model_name: ModelName,
    version: ModelVersionParam,
    request: Request,
    force: Annotated[bool, Query(description="Delete even while aliases point at it.")] = False,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Response:
    """Delete a version: refused while an alias (or a deployment) uses it, unless forced. Its
    number is never reused; lineage keeps it as a deleted node."""
    model, row = get_model_version(session, principal, model_name, version)
    request.state.audit_resource = f"model/{model.name}@{row.version}"
    delete_version(state, session, principal, model, row, force=force)
    return Response(status_code=204)


@router.get("/{model_name}/aliases/{alias}", name="model.alias")
def get_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> ModelVersion:
    """The version an alias points at."""
    model, row = get_model_version(session, principal, model_name, alias)
    return version_view(session, model, row)


@router.put("/{model_name}/aliases/{alias}", name="model.alias_set")
def set_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    body: ModelAliasSet,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
) -> ModelVersion:
    """Point an alias at a version, creating or moving it in one step."""
    model, row = set_alias(session, principal, model_name, body.version, alias)
    request.state.audit_resource = f"model/{model.name}@{alias}"
    return version_view(session, model, row)


@router.delete("/{model_name}/aliases/{alias}", name="model.alias_delete", status_code=204)
def delete_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
) -> Response:
    delete_alias(session, principal, model_name, alias)
    request.state.audit_resource = f"model/{model_name}@{alias}"
    return Response(status_code=204)


@router.get("/{model_name}/versions/{version}/evaluations", name="model.evaluations")
def list_model_evaluations(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Evaluation]:
    """Evaluations of a version, oldest first: the held-out split at training, then jobs."""
    model, row = get_model_version(session, principal, model_name, version)
    return [evaluation_view(session, model, row, e) for e in evaluations_of(session, row)]


_CARD: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/markdown": {}, "text/html": {}},
        "description": "The model card: Markdown with YAML front matter, or one HTML page.",
    }
}


@router.get(
    "/{model_name}/versions/{version}/card",
    name="model.card",
    response_class=Response,
    responses=_CARD,
)
def model_card(
    model_name: ModelName,
    version: ModelVersionParam,
    format: Annotated[
        str, Query(pattern="^(markdown|html)$", description="`markdown` or `html`.")
    ] = "markdown",
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Response:
    """The model card, generated from recorded facts only. A deleted version has none."""
    from lepton.registry.card import render_html, render_markdown
    from lepton.registry.facts import version_facts

    model, row = get_model_version(session, principal, model_name, version)
    facts = version_facts(session, model, row)
    if format == "markdown":
        return PlainTextResponse(render_markdown(facts), media_type="text/markdown")
    digests = [d for e in facts.get("evaluations", []) for d in e.get("plots", {}).values()]
    plot = explanation_plot(row)
    images = {digest: state.blobs.read_bytes(digest) for digest in [*digests, plot] if digest}
    return HTMLResponse(render_html(facts, images))
