"""Packed models: a zip of safe files only (JSON, safetensors, skops, ONNX, text, and Keras's
zip format, which Keras loads in safe mode).

Packing and unpacking both refuse anything else, and a file that looks like a pickle whatever its
name, so an artifact can be loaded without running code.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from lepton.errors import InvalidRequest

__all__ = ["SAFE_SUFFIXES", "check_safe_file", "pack", "read_config", "unpack"]

SAFE_SUFFIXES = frozenset({".json", ".safetensors", ".skops", ".onnx", ".txt", ".md", ".keras"})
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_MAX_ENTRY = 8 * 1024**3  # 8 GiB: a packed model beyond this is not one we made


def check_safe_file(name: str, head: bytes) -> None:
    """Refuse a file by its suffix or its first bytes."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SAFE_SUFFIXES:
        raise InvalidRequest(
            f"model file {name!r} has suffix {suffix or '(none)'}; allowed are "
            f"{', '.join(sorted(SAFE_SUFFIXES))}",
            fix="save models with safetensors (PyTorch), skops (scikit-learn) or ONNX, never pickle",
        )
    if (
        head.startswith(_PICKLE_MAGIC)
        or (suffix == ".json" and head[:1] not in (b"{", b"["))
        or (suffix == ".keras" and not head.startswith(b"PK\x03\x04"))  # a zip, never HDF5/pickle
    ):
        raise InvalidRequest(
            f"model file {name!r} is not what its name says (it looks like a pickle or binary)",
            fix="save models with safetensors (PyTorch), skops (scikit-learn) or ONNX, never pickle",
        )


def pack(directory: Path, target: Path) -> str:
    """Zip every file of ``directory`` (sorted, fixed timestamps) into ``target``; returns the
    sha256 of the zip."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise InvalidRequest(f"{directory} holds no model files", fix="save the model first")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            name = path.relative_to(directory).as_posix()
            with path.open("rb") as f:
                check_safe_file(name, f.read(16))
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, archive.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    digest = hashlib.sha256()
    with target.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(archive_path: Path, directory: Path) -> Path:
    """Extract a packed model, checking every entry's name, size and first bytes."""
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile:
        raise InvalidRequest(
            "the model artifact is not a zip archive", fix="register models through Lepton"
        ) from None
    with archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or info.is_dir():
                if info.is_dir():
                    continue
                raise InvalidRequest(
                    f"model artifact entry {info.filename!r} escapes its folder",
                    fix="pack the artifact with relative paths inside one folder",
                )
            if info.file_size > _MAX_ENTRY:
                raise InvalidRequest(
                    f"model artifact entry {info.filename!r} is too large "
                    f"(over {_MAX_ENTRY // 2**30} GiB)",
                    fix="keep each file of a model artifact under that size, e.g. by sharding",
                )
            target = directory.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as dst:
                head = src.read(16)
                check_safe_file(info.filename, head)
                dst.write(head)
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    return directory


def read_config(directory: Path) -> dict[str, Any]:
    """The model's ``config.json``."""
    path = directory / "config.json"
    if not path.exists():
        raise InvalidRequest(
            "the model artifact has no config.json",
            fix="register the model through lepton.register or the SDK, which write it",
        )
    config: dict[str, Any] = json.loads(path.read_text())
    return config
