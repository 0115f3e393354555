"""Datasets: push (streamed), versions, show, pull, transform, split, delete.

A push is spooled to a private work folder (the upload is hashed on the way in), read into a
canonical Parquet table, profiled and scanned; only when all of that succeeded are the bytes
stored and the version recorded. A bad file therefore leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lepton.errors import NotFound
from lepton.schemas import (
    DATASET_NAME_PATTERN,
    AnonymizeStep,
    Dataset,
    DatasetVersion,
    DatasetVersionDetail,
    Split,
    SplitSpec,
    TransformRequest,
    TransformSpec,
)
from lepton.server.auth import Principal, require
from lepton.server.catalog import (
    NewVersion,
    dataset_view,
    delete_dataset,
    delete_version,
    detail_view,
    ensure_split,
    fetch_blob,
    find_by_content,
    get_dataset,
    get_version,
    record_version,
    version_view,
)
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import ServerState, db_session, get_state
from lepton.server.transfer import BYTES_RESPONSE, UPLOAD_BODY, body_chunks, stream_blob
from lepton.store.models import DatasetRow, DatasetVersionRow, SplitRow

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)

DatasetName = Annotated[
    str, PathParam(pattern=DATASET_NAME_PATTERN, description="Dataset name.", max_length=63)
]
VersionParam = Annotated[str, PathParam(description="`3`, `v3` or `latest`.", max_length=12)]
Format = Literal["csv", "tsv", "parquet", "jsonl", "npz", "idx", "image-folder"]


def _workdir(state: ServerState) -> Path:
    path = state.work_dir() / uuid.uuid4().hex
    path.mkdir(mode=0o700)
    return path


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
    state: ServerState = Depends(get_state),
) -> DatasetVersionDetail:
    """Push a new version from the raw request body. Content already stored as a version of
    this dataset returns that version (HTTP 200, `created: false`)."""
    request.state.audit_resource = f"dataset/{dataset_name}"
    work = _workdir(state)
    try:
        source = work / "source"
        hasher = hashlib.sha256()
        with source.open("wb") as f:
            async for chunk in body_chunks(request, state.settings.max_upload_bytes):
                hasher.update(chunk)
                await run_in_threadpool(f.write, chunk)
        detail = await run_in_threadpool(
            _ingest,
            state,
            principal,
            dataset_name,
            source,
            source_name,
            format,
            target,
            hasher.hexdigest(),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not detail.created:
        response.status_code = 200
    request.state.audit_resource = f"dataset/{detail.ref}"
    return detail


def _ingest(
    state: ServerState,
    principal: Principal,
    name: str,
    source: Path,
    source_name: str,
    fmt: str | None,
    target: str | None,
    content_hash: str,
) -> DatasetVersionDetail:
    from lepton.data.ingest import ingest

    with state.sessions() as session:
        existing = find_by_content(session, principal, name, content_hash)
        if existing is not None:
            dataset = get_dataset(session, principal, name)
            return detail_view(session, dataset, existing, created=False)
    result = ingest(source, source_name, source.parent, fmt=fmt, target=target)
    new = NewVersion(
        content_hash=content_hash,
        format=result.format,
        source_name=source_name,
        source=source,
        table=result.table,
        analysis=result.analysis,
    )
    return _record(state, principal, name, new)


def _record(
    state: ServerState, principal: Principal, name: str, new: NewVersion
) -> DatasetVersionDetail:
    row, created = record_version(state, principal, name, new)
    with state.sessions() as session:
        dataset = get_dataset(session, principal, name)
        return detail_view(session, dataset, row, created=created)


@router.get("", name="dataset.list")
def list_datasets(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Dataset]:
    """The workspace's datasets with their newest version."""
    rows = session.scalars(
        select(DatasetRow)
        .where(DatasetRow.workspace_id == principal.workspace_id)
        .order_by(DatasetRow.name)
    )
    return [dataset_view(session, row) for row in rows]


@router.get("/{dataset_name}", name="dataset.get")
def get_dataset_route(
    dataset_name: DatasetName,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Dataset:
    return dataset_view(session, get_dataset(session, principal, dataset_name))


@router.delete("/{dataset_name}", name="dataset.delete")
def delete_dataset_route(
    dataset_name: DatasetName,
    force: bool = Query(False, description="Delete even if jobs or models use it."),
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Dataset:
    """Delete a dataset, all its versions and their stored bytes."""
    dataset = get_dataset(session, principal, dataset_name)
    view = dataset_view(session, dataset)
    delete_dataset(state, session, dataset, force=force)
    return view


@router.get("/{dataset_name}/versions", name="dataset.versions")
def list_versions(
    dataset_name: DatasetName,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[DatasetVersion]:
    dataset = get_dataset(session, principal, dataset_name)
    rows = session.scalars(
        select(DatasetVersionRow)
        .where(DatasetVersionRow.dataset_id == dataset.id)
        .order_by(DatasetVersionRow.version)
    )
    return [version_view(session, dataset, row) for row in rows]


@router.get("/{dataset_name}/versions/{version}", name="dataset.version")
def get_version_route(
    dataset_name: DatasetName,
    version: VersionParam,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> DatasetVersionDetail:
    """A version with its schema, profile and PII report."""
    dataset, row = get_version(session, principal, dataset_name, version)
    return detail_view(session, dataset, row)


@router.delete("/{dataset_name}/versions/{version}", name="dataset.version_delete")
def delete_version_route(
    dataset_name: DatasetName,
    version: VersionParam,
    force: bool = Query(False, description="Delete even if other versions derive from it."),
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> DatasetVersion:
    """Delete one version and erase its bytes (unless another version shares them)."""
    dataset, row = get_version(session, principal, dataset_name, version)
    view = version_view(session, dataset, row)
    delete_version(state, session, dataset, row, force)
    return view


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
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The exact bytes that were pushed (the ETag is their sha256)."""
    _, row = get_version(session, principal, dataset_name, version)
    return stream_blob(state, row.source_digest, row.source_size)


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
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The canonical table as Parquet."""
    _, row = get_version(session, principal, dataset_name, version)
    return stream_blob(state, row.data_digest)


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
    state: ServerState = Depends(get_state),
) -> DatasetVersionDetail:
    """Make a new version from this one by applying the steps; it records its parent and the
    steps (salts of `anonymize` are recorded only as a fingerprint)."""
    import pyarrow.parquet as pq

    from lepton.data.ingest import analyse
    from lepton.data.transforms import apply_transform

    with state.sessions() as session:
        _, parent = get_version(session, principal, dataset_name, version)
        parent_id, parent_digest, parent_target = parent.id, parent.data_digest, parent.target
    work = _workdir(state)
    try:
        source = fetch_blob(state, parent_digest, work / "parent.parquet")
        out = work / "data.parquet"
        apply_transform(source, body.steps, out)
        names = pq.ParquetFile(out).schema_arrow.names
        analysis = analyse(out, parent_target if parent_target in names else None)
        digest = hashlib.sha256()
        with out.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        new = NewVersion(
            content_hash=digest.hexdigest(),
            format="parquet",
            source_name=f"{dataset_name}-transformed.parquet",
            source=out,
            table=out,
            analysis=analysis,
            parent_id=parent_id,
            transform=TransformSpec(steps=[_redact(step) for step in body.steps]),
        )
        detail = _record(state, principal, dataset_name, new)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not detail.created:
        response.status_code = 200
    request.state.audit_resource = f"dataset/{detail.ref}"
    return detail


def _redact(step: object) -> object:
    # A recorded salt would let anyone who reads the metadata reverse the hashes by guessing.
    if isinstance(step, AnonymizeStep) and step.salt is not None:
        fingerprint = hashlib.sha256(step.salt.encode()).hexdigest()[:12]
        return step.model_copy(update={"salt": f"sha256:{fingerprint}"})
    return step


@router.post("/{dataset_name}/versions/{version}/splits", name="dataset.split")
def split_version(
    dataset_name: DatasetName,
    version: VersionParam,
    spec: SplitSpec,
    principal: Principal = Depends(require("write")),
    state: ServerState = Depends(get_state),
) -> Split:
    """The train/validation/test assignment for `spec`: computed once, then stored with the
    version so every later request (every job) gets the same rows."""
    with state.sessions() as session:
        _, row = get_version(session, principal, dataset_name, version)
    return _split_view(ensure_split(state, row, spec))


def _split_view(row: SplitRow) -> Split:
    return Split(
        spec=SplitSpec.model_validate_json(row.spec_json),
        strategy=row.strategy,
        counts=json.loads(row.counts_json),
        digest=row.digest,
    )


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
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """A stored split's per-row assignment as a NumPy `.npy` file (uint8: 0 train, 1
    validation, 2 test)."""
    _, row = get_version(session, principal, dataset_name, version)
    found = session.scalars(
        select(SplitRow).where(SplitRow.version_id == row.id, SplitRow.digest == split_digest)
    ).first()
    if found is None:
        raise NotFound(
            f"{dataset_name}@v{row.version} has no split {split_digest}",
            fix="create it with POST .../splits (lepton dataset split)",
        )
    return stream_blob(state, found.digest)
