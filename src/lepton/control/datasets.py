"""Datasets: pushes (streamed, parsed, profiled, then stored), versions, transforms, stored
splits, and deletion with the bytes no one else uses.

A push is spooled to a private work folder (hashed on the way in), read into a canonical
Parquet table, profiled and scanned; only when all of that succeeded are both blobs staged
(outside any lock) and the version recorded with its references in one transaction. A bad file
therefore leaves nothing behind, and a big push never holds up another.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.control.content import Content
from lepton.control.context import Context
from lepton.control.named import named_row
from lepton.control.numbering import newest_versions, next_number
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.data.ingest import Analysis
from lepton.errors import Conflict, NotFound
from lepton.refs import parse_ref, version_number
from lepton.schemas import (
    AnonymizeStep,
    Column,
    Dataset,
    DatasetVersion,
    DatasetVersionDetail,
    PIIReport,
    Profile,
    Split,
    SplitSpec,
    TransformRequest,
    TransformSpec,
)
from lepton.store.models import DatasetRow, DatasetVersionRow, SplitRow

__all__ = ["DatasetService", "UserCheck"]

UserCheck = Callable[[Session, DatasetVersionRow], builtins.list[str]]
"""Names what still reads a dataset version (``job 1a2b``, ``model heart@2``)."""


@dataclass(frozen=True)
class _NewVersion:
    content_hash: str
    format: str
    source_name: str
    source: Path
    table: Path
    analysis: Analysis
    parent_id: str | None = None
    transform: TransformSpec | None = None


def owner(version_id: str) -> tuple[str, str]:
    return ("dataset_version", version_id)


def split_owner(version_id: str, spec_hash: str) -> tuple[str, str]:
    return ("split", f"{version_id}/{spec_hash}")


class DatasetService:
    def __init__(self, ctx: Context, content: Content) -> None:
        self.ctx = ctx
        self.content = content
        self.users: builtins.list[UserCheck] = []
        """Checks other services add: what reads a version (deleting it needs ``force``)."""
        self.unlinks: builtins.list[Callable[[Session, DatasetVersionRow], None]] = []
        """What other services do when a version their rows link to is deleted anyway."""

    # --- lookups ------------------------------------------------------------------------------

    def dataset_row(self, session: Session, principal: Principal, name: str) -> DatasetRow:
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

    def version_row(
        self, session: Session, principal: Principal, name: str, version: str
    ) -> tuple[DatasetRow, DatasetVersionRow]:
        """The dataset and one version: ``3``, ``v3`` or ``latest``."""
        dataset = self.dataset_row(session, principal, name)
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

    def resolve(self, session: Session, principal: Principal, ref: str) -> DatasetVersionRow:
        """``heart@v2`` or ``heart`` (latest) → the version row."""
        name, version = parse_ref(ref)
        return self.version_row(session, principal, name, version)[1]

    def dataset_of(self, session: Session, row: DatasetVersionRow) -> DatasetRow:
        dataset = session.get(DatasetRow, row.dataset_id)
        assert dataset is not None  # dataset_versions.dataset_id is a foreign key
        return dataset

    def ref(self, session: Session, version_id: str | None) -> str | None:
        """``name@vN`` of a dataset version id, or None when it is gone."""
        if not version_id:
            return None
        row = session.get(DatasetVersionRow, version_id)
        dataset = session.get(DatasetRow, row.dataset_id) if row else None
        return f"{dataset.name}@v{row.version}" if row and dataset else None

    def load_refs(self, session: Session, version_ids: Iterable[str | None]) -> builtins.list[Any]:
        """Load the versions (and their datasets) behind ``version_ids`` into ``session`` in
        two queries, so :meth:`ref` answers each from the session without another. The
        session holds its rows weakly: keep the list returned while the refs are read."""
        wanted = {v for v in version_ids if v}
        if not wanted:
            return []
        rows: builtins.list[Any] = list(
            session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.id.in_(wanted)))
        )
        parents = {r.dataset_id for r in rows}
        if parents:
            rows += session.scalars(select(DatasetRow).where(DatasetRow.id.in_(parents)))
        return rows

    # --- reading ------------------------------------------------------------------------------

    def list(self, principal: Principal, page: PageRequest) -> Page[Dataset]:
        """The workspace's datasets with their newest version."""
        query = select(DatasetRow).where(DatasetRow.workspace_id == principal.workspace_id)
        counts: dict[str, int] = {}
        latest: dict[str, DatasetVersionRow] = {}
        held: builtins.list[Any] = []  # the prefetched parents, alive while the views are made

        def prefetch(rows: builtins.list[DatasetRow]) -> None:
            found, newest = newest_versions(
                session,
                DatasetVersionRow.dataset_id,
                DatasetVersionRow.version,
                [r.id for r in rows],
            )
            counts.update(found)
            latest.update((r.dataset_id, r) for r in newest)
            held.extend(self.load_refs(session, (r.parent_id for r in newest)))

        with self.ctx.sessions() as session:
            return paged(
                session,
                query,
                [DatasetRow.name],
                page,
                lambda r: self._dataset_view(session, r, counts.get(r.id, 0), latest.get(r.id)),
                prefetch=prefetch,
            )

    def get(self, principal: Principal, name: str) -> Dataset:
        with self.ctx.sessions() as session:
            return self._one_view(session, self.dataset_row(session, principal, name))

    def versions(self, principal: Principal, name: str, page: PageRequest) -> Page[DatasetVersion]:
        with self.ctx.sessions() as session:
            dataset = self.dataset_row(session, principal, name)
            query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset.id)
            return paged(
                session,
                query,
                [DatasetVersionRow.version],
                page,
                lambda r: self.version_view(session, dataset, r),
            )

    def version(self, principal: Principal, name: str, version: str) -> DatasetVersionDetail:
        """A version with its schema, profile and PII report."""
        with self.ctx.sessions() as session:
            dataset, row = self.version_row(session, principal, name, version)
            return self.detail_view(session, dataset, row)

    def open_source(
        self, principal: Principal, name: str, version: str
    ) -> tuple[Iterator[bytes], str, int]:
        """The exact bytes that were pushed: a verified stream, their digest and size."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
            digest, size = row.source_digest, row.source_size
        return self.ctx.blobs.open(digest), digest, size

    def open_table(
        self, principal: Principal, name: str, version: str
    ) -> tuple[Iterator[bytes], str]:
        """The canonical table as Parquet, and its digest."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
            digest = row.data_digest
        return self.ctx.blobs.open(digest), digest

    def fetch(self, digest: str, path: Path) -> Path:
        """Write a stored blob to a local file (verified as it streams)."""
        with path.open("wb") as f:
            for chunk in self.ctx.blobs.open(digest):
                f.write(chunk)
        return path

    # --- pushing ------------------------------------------------------------------------------

    async def push(
        self,
        principal: Principal,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        source_name: str,
        fmt: str | None,
        target: str | None,
    ) -> DatasetVersionDetail:
        """A new version from a streamed body; content already stored as a version of this
        dataset answers that version (``created: false``)."""
        with self.ctx.spool() as work:
            source = work / "source"
            hasher = hashlib.sha256()
            with source.open("wb") as f:
                async for chunk in chunks:
                    hasher.update(chunk)
                    await anyio.to_thread.run_sync(f.write, chunk)
            return await anyio.to_thread.run_sync(
                lambda: self._ingest(
                    principal, name, source, source_name, fmt, target, hasher.hexdigest()
                )
            )

    def _ingest(
        self,
        principal: Principal,
        name: str,
        source: Path,
        source_name: str,
        fmt: str | None,
        target: str | None,
        content_hash: str,
    ) -> DatasetVersionDetail:
        from lepton.data.ingest import ingest

        with self.ctx.sessions() as session:
            existing = self._find_by_content(session, principal, name, content_hash)
            if existing is not None:
                dataset = self.dataset_row(session, principal, name)
                return self.detail_view(session, dataset, existing, created=False)
        result = ingest(source, source_name, source.parent, fmt=fmt, target=target)
        new = _NewVersion(
            content_hash=content_hash,
            format=result.format,
            source_name=source_name,
            source=source,
            table=result.table,
            analysis=result.analysis,
        )
        return self._record(principal, name, new)

    def transform(
        self, principal: Principal, name: str, version: str, body: TransformRequest
    ) -> DatasetVersionDetail:
        """A new version from this one with the steps applied; it records its parent and the
        steps (an anonymisation salt only as a fingerprint)."""
        import pyarrow.parquet as pq

        from lepton.data.ingest import analyse
        from lepton.data.transforms import apply_transform, hashed_columns

        with self.ctx.sessions() as session:
            _, parent = self.version_row(session, principal, name, version)
            parent_id, parent_digest, parent_target = parent.id, parent.data_digest, parent.target
            parent_pii = PIIReport.model_validate_json(parent.pii_json)
        hashed = hashed_columns(parent_pii.columns_hashed, body.steps)
        with self.ctx.spool() as work:
            source = self.fetch(parent_digest, work / "parent.parquet")
            out = work / "data.parquet"
            apply_transform(source, body.steps, out)
            names = pq.ParquetFile(out).schema_arrow.names
            analysis = analyse(
                out,
                parent_target if parent_target in names else None,
                [c for c in hashed if c in names],
            )
            digest = hashlib.sha256()
            with out.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            new = _NewVersion(
                content_hash=digest.hexdigest(),
                format="parquet",
                source_name=f"{name}-transformed.parquet",
                source=out,
                table=out,
                analysis=analysis,
                parent_id=parent_id,
                transform=TransformSpec(steps=[_redact(step) for step in body.steps]),
            )
            return self._record(principal, name, new)

    def _record(self, principal: Principal, name: str, new: _NewVersion) -> DatasetVersionDetail:
        """Stage both blobs (no lock), then in one transaction: the dataset, the next number,
        the version row, and its references."""
        source = self.content.stage_file(new.source)
        table = source if new.table == new.source else self.content.stage_file(new.table)
        with source, table:
            dataset = named_row(self.ctx, DatasetRow, principal.workspace_id, name)
            with self.ctx.sessions() as session:
                existing = self._find_by_content(session, principal, name, new.content_hash)
                if existing is not None:  # a concurrent push of the same bytes got there first
                    return self.detail_view(session, dataset, existing, created=False)
                row_id = uuid.uuid4().hex
                writers = [source] if table is source else [source, table]
                roles = ["source"] if table is source else ["source", "data"]
                infos = self.content.claim(
                    session,
                    writers,
                    workspace_id=principal.workspace_id,
                    owner=owner(row_id),
                    roles=roles,
                )
                if table is source:
                    self.content.refer(
                        session,
                        infos[0].digest,
                        workspace_id=principal.workspace_id,
                        owner=owner(row_id),
                        role="data",
                        uploaded=False,
                    )
                analysis = new.analysis
                row = DatasetVersionRow(
                    id=row_id,
                    dataset_id=dataset.id,
                    version=next_number(session, "dataset_version", dataset.id),
                    content_hash=new.content_hash,
                    format=new.format,
                    source_name=new.source_name[:256],
                    source_digest=infos[0].digest,
                    source_size=infos[0].size,
                    data_digest=infos[-1].digest,
                    rows=analysis.rows,
                    schema_json=json.dumps([c.model_dump(mode="json") for c in analysis.columns]),
                    profile_json=analysis.profile.model_dump_json(),
                    pii_json=analysis.pii.model_dump_json(),
                    target=analysis.target,
                    parent_id=new.parent_id,
                    transform_json=new.transform.model_dump_json() if new.transform else None,
                    created_at=self.ctx.clock(),
                    created_by=principal.token_id,
                )
                session.add(row)
                session.commit()
                return self.detail_view(session, dataset, row)

    def _find_by_content(
        self, session: Session, principal: Principal, name: str, content_hash: str
    ) -> DatasetVersionRow | None:
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

    # --- splits ---------------------------------------------------------------------------------

    def split(self, principal: Principal, name: str, version: str, spec: SplitSpec) -> Split:
        """The train/validation/test assignment for ``spec``: computed once, then stored with the
        version so every later request (every job) gets the same rows."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
        return _split_view(self.ensure_split(row, spec))

    def splits(self, principal: Principal, name: str, version: str) -> builtins.list[Split]:
        """The splits stored with a version (every one a job or a user asked for), oldest
        first."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
            stored = session.scalars(
                select(SplitRow)
                .where(SplitRow.version_id == row.id)
                .order_by(SplitRow.created_at, SplitRow.spec_hash)
            )
            return [_split_view(s) for s in stored]

    def ensure_split(self, row: DatasetVersionRow, spec: SplitSpec) -> SplitRow:
        """The stored split of a version for ``spec``, computing and storing it the first time."""
        from lepton.data.splits import make_split

        spec_json = spec.model_dump_json()
        spec_hash = hashlib.sha256(spec_json.encode()).hexdigest()
        with self.ctx.sessions() as session:
            stored = session.get(SplitRow, (row.id, spec_hash))
            if stored is not None:
                return stored
        columns = [Column.model_validate(c) for c in json.loads(row.schema_json)]
        with self.ctx.spool() as work:
            table = self.fetch(row.data_digest, work / "data.parquet")
            result = make_split(table, columns, spec, row.target)
        buffer = io.BytesIO()
        np.save(buffer, result.assignment.astype(np.uint8), allow_pickle=False)
        with self.content.stage() as writer:
            writer.write(buffer.getvalue())
            with self.ctx.sessions() as session:
                dataset = session.get(DatasetRow, row.dataset_id)
                assert dataset is not None
                info = self.content.claim(
                    session,
                    [writer],
                    workspace_id=dataset.workspace_id,
                    owner=split_owner(row.id, spec_hash),
                    roles=["assignment"],
                )[0]
                stored = session.get(SplitRow, (row.id, spec_hash))
                if stored is None:
                    stored = SplitRow(
                        version_id=row.id,
                        spec_hash=spec_hash,
                        spec_json=spec_json,
                        strategy=result.strategy,
                        counts_json=json.dumps(result.counts),
                        digest=info.digest,
                        created_at=self.ctx.clock(),
                    )
                    session.add(stored)
                try:
                    session.commit()
                except IntegrityError:  # a concurrent request stored the same split
                    session.rollback()
                    found = session.get(SplitRow, (row.id, spec_hash))
                    assert found is not None
                    return found
                return stored

    def open_split(
        self, principal: Principal, name: str, version: str, digest: str
    ) -> Iterator[bytes]:
        """A stored split's per-row assignment as ``.npy`` (uint8: 0 train, 1 validation,
        2 test)."""
        with self.ctx.sessions() as session:
            _, row = self.version_row(session, principal, name, version)
            found = session.scalars(
                select(SplitRow).where(SplitRow.version_id == row.id, SplitRow.digest == digest)
            ).first()
            if found is None:
                raise NotFound(
                    f"{name}@v{row.version} has no split {digest}",
                    fix="create it with POST .../splits (lepton dataset split)",
                )
        return self.ctx.blobs.open(digest)

    # --- deleting -------------------------------------------------------------------------------

    def delete(self, principal: Principal, name: str, *, force: bool = False) -> Dataset:
        """Delete every version of a dataset (newest first, so parents go last), then the
        dataset. Without ``force`` it refuses while a job or model uses one of the versions."""
        with self.ctx.sessions() as session:
            dataset = self.dataset_row(session, principal, name)
            view = self._one_view(session, dataset)
            rows = list(
                session.scalars(
                    select(DatasetVersionRow)
                    .where(DatasetVersionRow.dataset_id == dataset.id)
                    .order_by(DatasetVersionRow.version.desc())
                )
            )
            if not force:
                used = [
                    f"v{r.version}: {', '.join(u)}" for r in rows if (u := self._users(session, r))
                ]
                if used:
                    raise Conflict(
                        f"dataset '{name}' is in use ({'; '.join(used)})",
                        fix=f"pass --force to delete it anyway (lepton dataset rm {name} --force)",
                    )
            released: builtins.list[str] = []
            for row in rows:
                released += self._delete_version(session, dataset, row, force=True)
            session.delete(dataset)
            session.commit()
        self.content.erase(released)
        return view

    def delete_version(
        self, principal: Principal, name: str, version: str, *, force: bool = False
    ) -> DatasetVersion:
        """Delete one version and erase its bytes (unless another version shares them)."""
        with self.ctx.sessions() as session:
            dataset, row = self.version_row(session, principal, name, version)
            view = self.version_view(session, dataset, row)
            released = self._delete_version(session, dataset, row, force=force)
            session.commit()
        self.content.erase(released)
        return view

    def _users(self, session: Session, row: DatasetVersionRow) -> builtins.list[str]:
        return [user for check in self.users for user in check(session, row)]

    def _delete_version(
        self, session: Session, dataset: DatasetRow, row: DatasetVersionRow, *, force: bool
    ) -> builtins.list[str]:
        """Delete a version's rows and references in ``session``; returns the digests to erase
        once committed. Its users and derived versions keep their records but lose the link."""
        ref = f"{dataset.name}@v{row.version}"
        users = self._users(session, row)
        if users and not force:
            raise Conflict(
                f"{ref} is used by {', '.join(users)}",
                fix=f"pass --force to delete it anyway; they keep their record but lose the "
                f"link (lepton dataset rm {ref} --force)",
            )
        children = list(
            session.scalars(select(DatasetVersionRow).where(DatasetVersionRow.parent_id == row.id))
        )
        if children and not force:
            names = ", ".join(f"{dataset.name}@v{c.version}" for c in children)
            raise Conflict(
                f"{ref} has derived versions: {names}",
                fix=f"delete those first, or pass --force to keep them without a parent "
                f"(lepton dataset rm {ref} --force)",
            )
        for unlink in self.unlinks:
            unlink(session, row)
        for child in children:
            child.parent_id = None
        released = self.content.release(session, owner(row.id))
        for split in session.scalars(select(SplitRow).where(SplitRow.version_id == row.id)):
            released += self.content.release(session, split_owner(row.id, split.spec_hash))
            session.delete(split)
        session.flush()
        session.delete(row)
        session.flush()
        return released

    # --- views ----------------------------------------------------------------------------------

    def version_view(
        self, session: Session, dataset: DatasetRow, row: DatasetVersionRow, *, created: bool = True
    ) -> DatasetVersion:
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
            parent=self.ref(session, row.parent_id),
            transform=TransformSpec.model_validate_json(row.transform_json)
            if row.transform_json
            else None,
            created_at=row.created_at,
            created=created,
        )

    def detail_view(
        self, session: Session, dataset: DatasetRow, row: DatasetVersionRow, *, created: bool = True
    ) -> DatasetVersionDetail:
        base = self.version_view(session, dataset, row, created=created)
        return DatasetVersionDetail(
            **base.model_dump(by_alias=True),
            profile=Profile.model_validate_json(row.profile_json),
            pii=PIIReport.model_validate_json(row.pii_json),
        )

    def _one_view(self, session: Session, dataset: DatasetRow) -> Dataset:
        counts, newest = newest_versions(
            session, DatasetVersionRow.dataset_id, DatasetVersionRow.version, [dataset.id]
        )
        return self._dataset_view(
            session, dataset, counts.get(dataset.id, 0), newest[0] if newest else None
        )

    def _dataset_view(
        self,
        session: Session,
        dataset: DatasetRow,
        versions: int,
        latest: DatasetVersionRow | None,
    ) -> Dataset:
        return Dataset(
            name=dataset.name,
            created_at=dataset.created_at,
            versions=versions,
            latest=self.version_view(session, dataset, latest) if latest else None,
        )


def _redact(step: object) -> object:
    # A recorded salt would let anyone who reads the metadata reverse the hashes by guessing.
    if isinstance(step, AnonymizeStep) and step.salt is not None:
        fingerprint = hashlib.sha256(step.salt.encode()).hexdigest()[:12]
        return step.model_copy(update={"salt": f"sha256:{fingerprint}"})
    return step


def _split_view(row: SplitRow) -> Split:
    return Split(
        spec=SplitSpec.model_validate_json(row.spec_json),
        strategy=row.strategy,
        counts=json.loads(row.counts_json),
        digest=row.digest,
    )
