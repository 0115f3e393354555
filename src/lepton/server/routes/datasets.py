"""Datasets: push (streamed), versions, show, pull, transform, split, delete. The rules, and
why a bad file stores nothing, are in :mod:`lepton.control.datasets`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import (
    DATASET_NAME_PATTERN,
    Dataset,
    DatasetVersion,
    DatasetVersionDetail,
    Split,
    SplitSpec,
    TransformRequest,
)
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control
from lepton.server.transfer import BYTES_RESPONSE, UPLOAD_BODY, body_chunks, stream_bytes

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)

DatasetName = Annotated[
    str, PathParam(pattern=DATASET_NAME_PATTERN, description="Dataset name.", max_length=63)
]
VersionParam = Annotated[
    str,
    PathParam(
        description="`3`, `v3` or `latest`.",
        max_length=12,
        # Stated for generated clients; the route checks it itself, to say how to write one.
        json_schema_extra={"pattern": r"^(?:v?[0-9]{1,9}|latest)$"},
    ),
]
Format = Literal["csv", "tsv", "parquet", "jsonl", "npz", "idx", "image-folder"]


@router.post(
    "/{dataset_name}/versions",
    name="dataset.push",
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={200: {"model": DatasetVersionDetail, "description": "Identical content exists."}},
)
async def push_version(
    dataset_name: DatasetName,
    request: Request,
    response: Response,
    source_name: str = Query(
        ..., min_length=1, max_length=256, description="File name it came from (sets the format)."
    ),
    format: Format | None = Query(None, description="Override the format the name implies."),
    target: str | None = Query(None, max_length=256, description="Target column."),
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> DatasetVersionDetail:
    """Push a new version from the raw request body. Content already stored as a version of
    this dataset returns that version (HTTP 200, `created: false`)."""
    request.state.audit_resource = f"dataset/{dataset_name}"
    chunks = body_chunks(request, control.ctx.settings.max_upload_bytes)
    detail = await control.datasets.push(
        principal, dataset_name, chunks, source_name=source_name, fmt=format, target=target
    )
    if not detail.created:
        response.status_code = 200
    request.state.audit_resource = f"dataset/{detail.ref}"
    return detail


@router.get("", name="dataset.list")
def list_datasets(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Dataset]:
    """The workspace's datasets with their newest version."""
    return page_response(request, response, control.datasets.list(principal, page))


@router.get("/{dataset_name}", name="dataset.get")
def get_dataset(
    dataset_name: DatasetName,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Dataset:
    return control.datasets.get(principal, dataset_name)


@router.delete("/{dataset_name}", name="dataset.delete")
def delete_dataset(
    dataset_name: DatasetName,
    force: bool = Query(False, description="Delete even if jobs or models use it."),
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Dataset:
    """Delete a dataset, all its versions and their stored bytes."""
    return control.datasets.delete(principal, dataset_name, force=force)


@router.get("/{dataset_name}/versions", name="dataset.versions")
def list_versions(
    dataset_name: DatasetName,
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[DatasetVersion]:
    found = control.datasets.versions(principal, dataset_name, page)
    return page_response(request, response, found)


@router.get("/{dataset_name}/versions/{version}", name="dataset.version")
def get_version(
    dataset_name: DatasetName,
    version: VersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> DatasetVersionDetail:
    """A version with its schema, profile and PII report."""
    return control.datasets.version(principal, dataset_name, version)


@router.delete("/{dataset_name}/versions/{version}", name="dataset.version_delete")
def delete_version(
    dataset_name: DatasetName,
    version: VersionParam,
    force: bool = Query(False, description="Delete even if other versions derive from it."),
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> DatasetVersion:
    """Delete one version and erase its bytes (unless another version shares them)."""
    return control.datasets.delete_version(principal, dataset_name, version, force=force)


@router.get(
    "/{dataset_name}/versions/{version}/source",
    name="dataset.pull",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def pull_source(
    dataset_name: DatasetName,
    version: VersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The exact bytes that were pushed (the ETag is their sha256)."""
    chunks, digest, size = control.datasets.open_source(principal, dataset_name, version)
    return stream_bytes(chunks, digest, size)


@router.get(
    "/{dataset_name}/versions/{version}/data",
    name="dataset.data",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def pull_table(
    dataset_name: DatasetName,
    version: VersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The canonical table as Parquet."""
    chunks, digest = control.datasets.open_table(principal, dataset_name, version)
    return stream_bytes(chunks, digest)


@router.post(
    "/{dataset_name}/versions/{version}/transform", name="dataset.transform", status_code=201
)
def transform_version(
    dataset_name: DatasetName,
    version: VersionParam,
    body: TransformRequest,
    request: Request,
    response: Response,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> DatasetVersionDetail:
    """Make a new version from this one by applying the steps; it records its parent and the
    steps (salts of `anonymize` are recorded only as a fingerprint)."""
    detail = control.datasets.transform(principal, dataset_name, version, body)
    if not detail.created:
        response.status_code = 200
    request.state.audit_resource = f"dataset/{detail.ref}"
    return detail


@router.post("/{dataset_name}/versions/{version}/splits", name="dataset.split")
def split_version(
    dataset_name: DatasetName,
    version: VersionParam,
    spec: SplitSpec,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Split:
    """The train/validation/test assignment for `spec`: computed once, then stored with the
    version so every later request (every job) gets the same rows."""
    return control.datasets.split(principal, dataset_name, version, spec)


@router.get("/{dataset_name}/versions/{version}/splits", name="dataset.splits")
def list_splits(
    dataset_name: DatasetName,
    version: VersionParam,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Split]:
    """The splits stored with the version, oldest first: each one a job trained on or a
    user asked for."""
    return control.datasets.splits(principal, dataset_name, version)


@router.get(
    "/{dataset_name}/versions/{version}/splits/{split_digest}",
    name="dataset.split_assignment",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def split_assignment(
    dataset_name: DatasetName,
    version: VersionParam,
    split_digest: str,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """A stored split's per-row assignment as a NumPy `.npy` file (uint8: 0 train, 1
    validation, 2 test)."""
    chunks = control.datasets.open_split(principal, dataset_name, version, split_digest)
    return stream_bytes(chunks, split_digest)
