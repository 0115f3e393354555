"""The model registry: list models, show versions, download artifacts, register models trained
elsewhere, aliases, descriptions, deletion, evaluations and model cards. The rules are in
:mod:`lepton.control.models`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import (
    DATASET_NAME_PATTERN,
    MODEL_ALIAS_PATTERN,
    Evaluation,
    Model,
    ModelAliasSet,
    ModelRegister,
    ModelVersion,
    ModelVersionUpdate,
)
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control
from lepton.server.transfer import stream_bytes

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=ERROR_RESPONSES)

ModelName = Annotated[str, PathParam(description="Model name.", max_length=63)]
ModelVersionParam = Annotated[
    str,
    PathParam(
        description="`3`, `v3`, `latest` or an alias (`production`).",
        max_length=63,
        json_schema_extra={"pattern": rf"^(?:v?[0-9]{{1,9}}|latest|{MODEL_ALIAS_PATTERN[1:-1]})$"},
    ),
]
AliasParam = Annotated[
    str,
    PathParam(
        description="Alias name (`production`): starts with a letter; not `latest` or a "
        "version number.",
        max_length=63,
        # Lookaheads are ECMA regex, as OpenAPI's patterns are; the schema's own pattern is
        # checked by pydantic's Rust regex, which has none, so the route refuses these itself.
        json_schema_extra={"pattern": r"^(?!latest$)(?!v[0-9]+$)" + MODEL_ALIAS_PATTERN[1:]},
    ),
]
_BYTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "The packed model."}
}
_CARD: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/markdown": {}, "text/html": {}},
        "description": "The model card: Markdown with YAML front matter, or one HTML page.",
    }
}


@router.get("", name="model.list")
def list_models(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Model]:
    return page_response(request, response, control.models.list(principal, page))


@router.get("/{model_name}", name="model.get")
def get_model(
    model_name: ModelName,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Model:
    return control.models.get(principal, model_name)


@router.post("/{model_name}/versions", name="model.register", status_code=201)
def register_model_version(
    model_name: Annotated[
        str, PathParam(description="Model name.", pattern=DATASET_NAME_PATTERN, max_length=63)
    ],
    body: ModelRegister,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """Register a model trained elsewhere: its packed artifact (uploaded first as a blob) must
    hold safe files only, which is checked here, entry by entry."""
    version = control.models.register(principal, model_name, body)
    request.state.audit_resource = f"model/{version.ref}"
    return version


@router.get("/{model_name}/versions", name="model.versions")
def list_model_versions(
    model_name: ModelName,
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[ModelVersion]:
    found = control.models.versions(principal, model_name, page)
    return page_response(request, response, found)


@router.get("/{model_name}/versions/{version}", name="model.version")
def get_model_version(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    return control.models.version(principal, model_name, version)


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
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The packed model (a zip of safetensors/skops files and JSON; no pickle)."""
    chunks, digest = control.models.open_artifact(principal, model_name, version)
    return stream_bytes(chunks, digest, media_type="application/zip")


@router.patch("/{model_name}/versions/{version}", name="model.version_update")
def update_model_version(
    model_name: ModelName,
    version: ModelVersionParam,
    body: ModelVersionUpdate,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """Set the intended-use text the model card quotes (the only field that may change)."""
    updated = control.models.describe(principal, model_name, version, body.description)
    request.state.audit_resource = f"model/{updated.ref}"
    return updated


@router.delete("/{model_name}/versions/{version}", name="model.version_delete", status_code=204)
def delete_model_version(
    model_name: ModelName,
    version: ModelVersionParam,
    request: Request,
    force: Annotated[bool, Query(description="Delete even while aliases point at it.")] = False,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Response:
    """Delete a version: refused while an alias (or a deployment) uses it, unless forced. Its
    number is never reused; lineage keeps it as a deleted node."""
    request.state.audit_resource = f"model/{model_name}@{version}"
    ref = control.models.delete_version(principal, model_name, version, force=force)
    request.state.audit_resource = f"model/{ref}"
    return Response(status_code=204)


@router.get("/{model_name}/aliases/{alias}", name="model.alias")
def get_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """The version an alias points at."""
    return control.models.version(principal, model_name, alias)


@router.put("/{model_name}/aliases/{alias}", name="model.alias_set")
def set_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    body: ModelAliasSet,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """Point an alias at a version, creating or moving it in one step."""
    version = control.models.set_alias(principal, model_name, body.version, alias)
    request.state.audit_resource = f"model/{model_name}@{alias}"
    return version


@router.delete("/{model_name}/aliases/{alias}", name="model.alias_delete", status_code=204)
def delete_model_alias(
    model_name: ModelName,
    alias: AliasParam,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Response:
    control.models.delete_alias(principal, model_name, alias)
    request.state.audit_resource = f"model/{model_name}@{alias}"
    return Response(status_code=204)


@router.get("/{model_name}/versions/{version}/evaluations", name="model.evaluations")
def list_model_evaluations(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Evaluation]:
    """Evaluations of a version, oldest first: the held-out split at training, then jobs."""
    return control.models.evaluations(principal, model_name, version)


@router.get("/{model_name}/versions/{version}/explanation", name="model.explanation")
def get_model_explanation(
    model_name: ModelName,
    version: ModelVersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> dict[str, Any]:
    """The global explanation recorded at registration: mean absolute attributions over a
    sample of held-out rows (features, words, or saliency per class), with the method."""
    return control.models.explanation(principal, model_name, version)


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
    control: Control = Depends(get_control),
) -> Response:
    """The model card, generated from recorded facts only. A deleted version has none."""
    card = control.models.card(principal, model_name, version, html=format == "html")
    if format == "html":
        return HTMLResponse(card)
    return PlainTextResponse(card, media_type="text/markdown")
