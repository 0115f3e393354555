"""``client.datasets``: push files, folders, DataFrames or arrays; read versions back.

Everything streams: a file is sent in 1 MiB chunks, a folder is zipped into a temporary file
first (one entry at a time), and downloads are written to disk as they arrive.
"""

from __future__ import annotations

import builtins
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lepton.client.bodies import checked
from lepton.client.client import CHUNK, Progress
from lepton.errors import InvalidRequest
from lepton.refs import parse_ref
from lepton.schemas import (
    Dataset,
    DatasetVersion,
    DatasetVersionDetail,
    Split,
    SplitSpec,
    TransformRequest,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from lepton.client.client import Client

__all__ = ["Datasets"]


def default_name(path: Path) -> str:
    """A dataset name from a file name: ``Heart Disease.csv`` → ``heart-disease``."""
    stem = path.name.split(".")[0]
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")
    return name[:63] or "dataset"


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    # -- push ------------------------------------------------------------------------------

    def push(
        self,
        data: str | os.PathLike[str] | pd.DataFrame | Mapping[str, np.ndarray] | tuple[Any, Any],
        *,
        name: str | None = None,
        target: str | None = None,
        format: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersionDetail:
        """Push a new version.

        Args:
            data: a file; a folder (an image folder with one sub-folder per class, or MNIST IDX
                files); a pandas DataFrame; a mapping of NumPy arrays; or an ``(X, y)`` pair.
            name: dataset name; defaults to the file's name.
            target: the target column; guessed when omitted.
            format: override the format the file name implies.
            progress: called with the number of bytes sent after each chunk.
        """
        with tempfile.TemporaryDirectory(prefix="lepton-push-") as tmp:
            path, source_name = _materialise(data, Path(tmp), name)
            name = name or default_name(Path(source_name))
            params = {"source_name": source_name, "format": format, "target": target}
            response = self._client.request(
                "POST",
                f"/api/v1/datasets/{name}/versions",
                params=params,
                content=_chunks(path, progress),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(path.stat().st_size),
                },
                # The server answers once the data is parsed, profiled and scanned: minutes for
                # tens of millions of rows, so the read has no deadline (connect and write do).
                timeout=httpx.Timeout(60, read=None),
            )
        return DatasetVersionDetail.model_validate(response.json())

    # -- read ------------------------------------------------------------------------------

    def list(self) -> list[Dataset]:
        data = self._client.collect("/api/v1/datasets")
        return [Dataset.model_validate(item) for item in data]

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        data = self._client.collect(f"/api/v1/datasets/{name}/versions")
        return [DatasetVersion.model_validate(item) for item in data]

    def get(self, ref: str) -> DatasetVersionDetail:
        """A version (``heart``, ``heart@v2``) with its schema, profile and PII report."""
        name, version = parse_ref(ref)
        data = self._client.request("GET", f"/api/v1/datasets/{name}/versions/{version}").json()
        return DatasetVersionDetail.model_validate(data)

    def pull(
        self, ref: str, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> Path:
        """Write the exact pushed bytes to ``path`` (verified against their sha256)."""
        version = self.get(ref)
        return self._client.download(
            f"/api/v1/datasets/{version.dataset}/versions/{version.version}/source",
            Path(path),
            digest=version.source_digest,
            progress=progress,
        )

    def to_pandas(self, ref: str) -> pd.DataFrame:
        """The version's table as a DataFrame (images stay encoded bytes)."""
        import pyarrow.parquet as pq

        version = self.get(ref)
        with tempfile.TemporaryDirectory(prefix="lepton-pull-") as tmp:
            path = self._client.download(
                f"/api/v1/datasets/{version.dataset}/versions/{version.version}/data",
                Path(tmp) / "data.parquet",
                digest=version.data_digest,
            )
            return pq.read_table(path).to_pandas()

    def to_numpy(
        self, ref: str, *, target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(X, y)``: images decode to ``(N, H, W[, C])`` uint8; tables give the numeric and
        boolean columns other than the target as float64. ``y`` is the target column (the
        version's target unless ``target`` names another), or ``None``."""
        from lepton.data.arrays import to_arrays

        version = self.get(ref)
        frame = self.to_pandas(ref)
        return to_arrays(
            frame, version.schema_, target or version.target, scale=False, channels="none"
        )

    # -- derive ----------------------------------------------------------------------------

    def transform(
        self, ref: str, steps: Sequence[Mapping[str, Any]] | TransformRequest
    ) -> DatasetVersionDetail:
        """A new version made by applying ``steps`` (e.g. ``[{"op": "drop", "columns": ["id"]}]``)."""
        name, version = parse_ref(ref)
        with checked("transform", fix="see lepton dataset transform --help"):
            body = (
                steps
                if isinstance(steps, TransformRequest)
                else TransformRequest.model_validate({"steps": list(steps)})
            )
        response = self._client.request(
            "POST",
            f"/api/v1/datasets/{name}/versions/{version}/transform",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return DatasetVersionDetail.model_validate(response.json())

    def split(self, ref: str, **spec: Any) -> Split:
        """The stored train/validation/test split for ``spec`` (see ``SplitSpec``)."""
        name, version = parse_ref(ref)
        with checked("split", fix="give shares between 0 and 1 that sum to 1, e.g. train=0.8"):
            body = SplitSpec.model_validate(spec).model_dump(mode="json")
        response = self._client.request(
            "POST", f"/api/v1/datasets/{name}/versions/{version}/splits", json=body
        )
        return Split.model_validate(response.json())

    def splits(self, ref: str) -> builtins.list[Split]:
        """The splits stored with a version, oldest first."""
        name, version = parse_ref(ref)
        response = self._client.request("GET", f"/api/v1/datasets/{name}/versions/{version}/splits")
        return [Split.model_validate(s) for s in response.json()]

    def split_assignment(self, ref: str, split: Split) -> np.ndarray:
        """The per-row assignment of a split: 0 train, 1 validation, 2 test."""
        import numpy as np

        name, version = parse_ref(ref)
        with tempfile.TemporaryDirectory(prefix="lepton-split-") as tmp:
            path = self._client.download(
                f"/api/v1/datasets/{name}/versions/{version}/splits/{split.digest}",
                Path(tmp) / "split.npy",
                digest=split.digest,
            )
            assignment: np.ndarray = np.load(path, allow_pickle=False)
            return assignment

    def delete(self, ref: str, *, force: bool = False) -> None:
        """Delete a version (``heart@v2``) or, for a bare name, the whole dataset."""
        name, version = parse_ref(ref, default="")
        if version:
            self._client.request(
                "DELETE",
                f"/api/v1/datasets/{name}/versions/{version}",
                params={"force": "true" if force else None},
            )
        else:
            self._client.request(
                "DELETE", f"/api/v1/datasets/{name}", params={"force": "true" if force else None}
            )


def _chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            if progress:
                progress(len(chunk))
            yield chunk


def _materialise(data: Any, tmp: Path, name: str | None) -> tuple[Path, str]:
    """A file to upload and the source name to report, for any accepted kind of ``data``."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir():
            return _zip_folder(path, tmp), f"{path.name}.zip"
        if not path.is_file():
            raise InvalidRequest(f"{path} does not exist", fix="check the path")
        return path, path.name
    base = name or "data"
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        path = tmp / f"{base}.parquet"
        data.to_parquet(path, index=False)
        return path, path.name
    import numpy as np

    if isinstance(data, tuple) and len(data) == 2:
        data = {"X": np.asarray(data[0]), "y": np.asarray(data[1])}
    if isinstance(data, Mapping):
        path = tmp / f"{base}.npz"
        arrays = {str(k): np.asarray(v) for k, v in data.items()}
        np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds wrongly
        return path, path.name
    raise InvalidRequest(
        f"cannot push a {type(data).__name__}",
        fix="push a file or folder path, a pandas DataFrame, a dict of NumPy arrays, or (X, y)",
    )


def _zip_folder(folder: Path, tmp: Path) -> Path:
    """Zip a folder entry by entry (images are already compressed, so store them)."""
    target = tmp / f"{folder.name}.zip"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise InvalidRequest(f"{folder} holds no files", fix="push a folder with data in it")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in files:
            archive.write(file, file.relative_to(folder).as_posix())
    return target
