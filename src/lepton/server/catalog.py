"""The dataset catalog: finding versions, recording new ones, and deleting them.

A new version is recorded in three steps: both blobs (the pushed bytes and the canonical table)
are committed to the blob store, then the rows, then the caller answers. Version numbers are
``max + 1`` per dataset; two concurrent pushes race on the unique constraint and the loser
retries with the next number.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.data.ingest import Analysis
from lepton.errors import Conflict, NotFound
from lepton.refs import version_number
from lepton.schemas import (
    Column,
    Dataset,
    DatasetVersion,
    DatasetVersionDetail,
    PIIReport,
    Profile,
    SplitSpec,
    TransformSpec,
)
from lepton.server.auth import Principal
from lepton.server.state import ServerState
from lepton.store.content import erase_unreferenced
from lepton.store.models import (
    DatasetRow,
    DatasetVersionRow,
    JobRow,
    ModelRow,
    ModelVersionRow,
    SplitRow,
    utcnow,
)

__all__ = [
    "NewVersion",
    "dataset_view",
    "delete_dataset",
    "delete_version",
    "detail_view",
    "ensure_split",
    "fetch_blob",
    "find_by_content",
    "get_dataset",
    "get_version",
    "record_version",
    "version_view",
]


def get_dataset(session: Session, principal: Principal, name: str) -> DatasetRow:
    row = session.scalars(
        select(DatasetRow).where(
            DatasetRow.workspace_id == principal.workspace_id, DatasetRow.name == name
        )
    ).first()
    if row is None:
        raise NotFound(
            f"dataset '{name}' does not exist in workspace '{principal.workspace}'",
            fix="list the datasets with `lepton dataset list`, or push one: "
            "lepton dataset push FILE --name " + name,
        )
    return row


def get_version(
    session: Session, principal: Principal, name: str, version: str
) -> tuple[DatasetRow, DatasetVersionRow]:
    """The dataset and one version: ``3``, ``v3`` or ``latest``."""
    dataset = get_dataset(session, principal, name)
    query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset.id)
    number = version_number(version, example=f"{name}@v1")
    if number is None:
        query = query.order_by(DatasetVersionRow.version.desc()).limit(1)
    else:
        query = query.where(DatasetVersionRow.version == number)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(
            f"dataset '{name}' has no version {version}",
            fix=f"list its versions: lepton dataset show {name}",
        )
    return dataset, row


def find_by_content(
    session: Session, principal: Principal, name: str, content_hash: str
) -> DatasetVersionRow | None:
    """The version of dataset ``name`` whose content hash is ``content_hash``, if any."""
    return session.scalars(
        select(DatasetVersionRow)
        .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
        .where(
            DatasetRow.workspace_id == principal.workspace_id,
            DatasetRow.name == name,
            DatasetVersionRow.content_hash == content_hash,
        )
        .order_by(DatasetVersionRow.version)
        .limit(1)
    ).first()


@dataclass(frozen=True)
class NewVersion:
    """Everything a new version records."""

    content_hash: str
    format: str
    source_name: str
    source: Path
    table: Path
    analysis: Analysis
    parent_id: str | None = None
    transform: TransformSpec | None = None


def record_version(
    state: ServerState, principal: Principal, name: str, new: NewVersion
) -> tuple[DatasetVersionRow, bool]:
    """Store both blobs, then the rows. Returns the version and whether it is new (False when a
    concurrent push of the same content got there first)."""
    with state.content_lock:
        source = state.blobs.put(_chunks(new.source))
        table = state.blobs.put(_chunks(new.table))
        for _attempt in range(10):
            with state.sessions() as session:
                existing = find_by_content(session, principal, name, new.content_hash)
                if existing is not None:
                    return existing, False
                dataset = _get_or_create_dataset(session, principal, name)
                number = dataset.last_version + 1
                dataset.last_version = number
                analysis = new.analysis
                row = DatasetVersionRow(
                    id=uuid.uuid4().hex,
                    dataset_id=dataset.id,
                    version=number,
                    content_hash=new.content_hash,
                    format=new.format,
                    source_name=new.source_name[:256],
                    source_digest=source.digest,
                    source_size=source.size,
                    data_digest=table.digest,
                    rows=analysis.rows,
                    schema_json=json.dumps([c.model_dump(mode="json") for c in analysis.columns]),
                    profile_json=analysis.profile.model_dump_json(),
                    pii_json=analysis.pii.model_dump_json(),
                    target=analysis.target,
                    parent_id=new.parent_id,
                    transform_json=new.transform.model_dump_json() if new.transform else None,
                    created_at=utcnow(),
                    created_by=principal.token_id,
                )
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # a concurrent push took this number; try the next
                    session.rollback()
                    continue
                return row, True
    raise Conflict(
        f"could not number a new version of '{name}': too many concurrent pushes",
        fix="push again",
    )


def _get_or_create_dataset(session: Session, principal: Principal, name: str) -> DatasetRow:
    query = select(DatasetRow).where(
        DatasetRow.workspace_id == principal.workspace_id, DatasetRow.name == name
    )
    row = session.scalars(query).first()
    if row is not None:
        return row
    row = DatasetRow(
        id=uuid.uuid4().hex, workspace_id=principal.workspace_id, name=name, created_at=utcnow()
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # created concurrently
        session.rollback()
        found = session.scalars(query).first()
        assert found is not None
        return found
    return row


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def ensure_split(state: ServerState, row: DatasetVersionRow, spec: SplitSpec) -> SplitRow:
    """The stored split of a version for ``spec``, computing and storing it the first time."""
    from lepton.data.splits import make_split

    spec_json = spec.model_dump_json()
    spec_hash = hashlib.sha256(spec_json.encode()).hexdigest()
    with state.sessions() as session:
        stored = session.get(SplitRow, (row.id, spec_hash))
        if stored is not None:
            return stored
    columns = [Column.model_validate(c) for c in json.loads(row.schema_json)]
    with tempfile.TemporaryDirectory(dir=state.work_dir()) as work:
        table = fetch_blob(state, row.data_digest, Path(work) / "data.parquet")
        result = make_split(table, columns, spec, row.target)
    buffer = io.BytesIO()
    np.save(buffer, result.assignment.astype(np.uint8), allow_pickle=False)
    with state.content_lock, state.sessions() as session:
        info = state.blobs.put_bytes(buffer.getvalue())
        stored = session.get(SplitRow, (row.id, spec_hash))
        if stored is None:
            stored = SplitRow(
                version_id=row.id,
                spec_hash=spec_hash,
                spec_json=spec_json,
                strategy=result.strategy,
                counts_json=json.dumps(result.counts),
                digest=info.digest,
                created_at=utcnow(),
            )
            session.add(stored)
            session.commit()
        return stored


def fetch_blob(state: ServerState, digest: str, path: Path) -> Path:
    """Write a stored blob to a local file (verified as it streams)."""
    with path.open("wb") as f:
        for chunk in state.blobs.open(digest):
            f.write(chunk)
    return path


def _users(session: Session, version_id: str) -> list[str]:
    """The jobs and model versions that read a dataset version."""
    jobs = session.scalars(select(JobRow.id).where(JobRow.dataset_version_id == version_id))
    models = session.execute(
        select(ModelRow.name, ModelVersionRow.version)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(ModelVersionRow.dataset_version_id == version_id)
    )
    return [f"model {name}@{version}" for name, version in models] + [
        f"job {job_id}" for job_id in jobs
    ]


def _children(session: Session, version_id: str) -> list[DatasetVersionRow]:
    return list(
        session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.parent_id == version_id))
    )


def delete_version(
    state: ServerState, session: Session, dataset: DatasetRow, row: DatasetVersionRow, force: bool
) -> None:
    """Delete a version and erase its bytes. Derived versions keep their data; with ``force``
    their parent link is cleared (their transform record still says what was applied)."""
    users = _users(session, row.id)
    if users and not force:
        raise Conflict(
            f"{dataset.name}@v{row.version} is used by {', '.join(users)}",
            fix=f"pass --force to delete it anyway; they keep their record but lose the link "
            f"(lepton dataset rm {dataset.name}@v{row.version} --force)",
        )
    for job in session.scalars(select(JobRow).where(JobRow.dataset_version_id == row.id)):
        job.dataset_version_id = None
    for model in session.scalars(
        select(ModelVersionRow).where(ModelVersionRow.dataset_version_id == row.id)
    ):
        model.dataset_version_id = None
    children = _children(session, row.id)
    if children and not force:
        names = ", ".join(f"{dataset.name}@v{c.version}" for c in children)
        raise Conflict(
            f"{dataset.name}@v{row.version} has derived versions: {names}",
            fix=f"delete those first, or pass --force to keep them without a parent "
            f"(lepton dataset rm {dataset.name}@v{row.version} --force)",
        )
    for child in children:
        child.parent_id = None
    digests = [row.source_digest, row.data_digest]
    for split in session.scalars(select(SplitRow).where(SplitRow.version_id == row.id)):
        digests.append(split.digest)
        session.delete(split)
    session.flush()
    session.delete(row)
    session.commit()
    with state.content_lock:
        erase_unreferenced(session, state.blobs, digests)


def delete_dataset(
    state: ServerState, session: Session, dataset: DatasetRow, *, force: bool = False
) -> int:
    """Delete every version of a dataset (newest first, so parents go last), then the dataset.
    Without ``force`` it refuses while a job or model uses one of the versions."""
    rows = list(
        session.scalars(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id == dataset.id)
            .order_by(DatasetVersionRow.version.desc())
        )
    )
    if not force:
        used = [f"v{row.version}: {', '.join(u)}" for row in rows if (u := _users(session, row.id))]
        if used:
            raise Conflict(
                f"dataset '{dataset.name}' is in use ({'; '.join(used)})",
                fix=f"pass --force to delete it anyway (lepton dataset rm {dataset.name} --force)",
            )
    for row in rows:
        delete_version(state, session, dataset, row, force=True)
    session.delete(dataset)
    session.commit()
    return len(rows)


def version_view(
    session: Session, dataset: DatasetRow, row: DatasetVersionRow, *, created: bool = True
) -> DatasetVersion:
    parent = session.get(DatasetVersionRow, row.parent_id) if row.parent_id else None
    parent_ref = None
    if parent is not None:
        parent_dataset = session.get(DatasetRow, parent.dataset_id)
        assert parent_dataset is not None
        parent_ref = f"{parent_dataset.name}@v{parent.version}"
    return DatasetVersion(
        dataset=dataset.name,
        version=row.version,
        ref=f"{dataset.name}@v{row.version}",
        format=row.format,
        source_name=row.source_name,
        source_digest=row.source_digest,
        source_size=row.source_size,
        data_digest=row.data_digest,
        rows=row.rows,
        schema_=[Column.model_validate(c) for c in json.loads(row.schema_json)],
        target=row.target,
        parent=parent_ref,
        transform=TransformSpec.model_validate_json(row.transform_json)
        if row.transform_json
        else None,
        created_at=row.created_at,
        created=created,
    )


def detail_view(
    session: Session, dataset: DatasetRow, row: DatasetVersionRow, *, created: bool = True
) -> DatasetVersionDetail:
    base = version_view(session, dataset, row, created=created)
    return DatasetVersionDetail(
        **base.model_dump(by_alias=True),
        profile=Profile.model_validate_json(row.profile_json),
        pii=PIIReport.model_validate_json(row.pii_json),
    )


def dataset_view(session: Session, dataset: DatasetRow) -> Dataset:
    versions = session.scalar(
        select(func.count()).where(DatasetVersionRow.dataset_id == dataset.id)
    )
    latest = session.scalars(
        select(DatasetVersionRow)
        .where(DatasetVersionRow.dataset_id == dataset.id)
        .order_by(DatasetVersionRow.version.desc())
        .limit(1)
    ).first()
    return Dataset(
        name=dataset.name,
        created_at=dataset.created_at,
        versions=versions or 0,
        latest=version_view(session, dataset, latest) if latest else None,
    )
