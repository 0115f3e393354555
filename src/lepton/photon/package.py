"""Photon packages: the source files plus ``manifest.json``, zipped deterministically.

A package never holds a pickle (leptonai shipped a cloudpickled instance, so loading one ran
arbitrary code before any check). Loading a package imports its entry file, which is the
author's code by design, from a folder whose every file matched the manifest's hashes.

``build_package`` sorts the files, fixes timestamps and permissions, and writes the manifest
with sorted keys, so the same source gives the same bytes and the same content address.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from lepton.errors import InvalidRequest
from lepton.photon.failure import import_failure

__all__ = ["MANIFEST", "build_package", "load_class", "load_package"]

MANIFEST = "manifest.json"
FORMAT = 1
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache"})
_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pyc", ".joblib"})
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_MAX_FILES = 10_000
_DATE = (2020, 1, 1, 0, 0, 0)


def _split_entry(entry: str) -> tuple[str, str]:
    file, sep, cls = entry.rpartition(":")
    if not sep or not file.endswith(".py") or not cls.isidentifier():
        raise InvalidRequest(
            f"entry {entry!r} is not FILE.py:Class",
            fix="name the file and the class, e.g. app.py:Echo",
        )
    return file, cls


def load_class(path: Path, class_name: str) -> type[Any]:
    """Import ``path`` (its folder first on ``sys.path``) and return its class ``class_name``,
    which must be a :class:`~lepton.photon.Photon`."""
    from lepton.photon.photon import Photon

    path = path.resolve()
    if not path.is_file():
        raise InvalidRequest(f"no photon file {path}", fix="check the path given with -m")
    module_name = f"lepton_photon_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidRequest(f"{path} is not a Python file", fix="pass a .py file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the author's code: their error and line, not our traceback
        del sys.modules[module_name]
        raise import_failure(exc, path, class_name) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Photon)):
        found = sorted(
            n for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, Photon) and v is not Photon
        )  # fmt: skip
        raise InvalidRequest(
            f"{path.name} has no Photon subclass {class_name!r}",
            fix=f"photons in it: {', '.join(found) or 'none'}",
        )
    return cls


def _files(source: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in _SKIP_DIRS for part in rel.parts) or rel.as_posix() == MANIFEST:
            continue
        if path.is_symlink():
            raise InvalidRequest(f"{rel} is a symbolic link", fix="copy the file into the folder")
        if not path.is_file():
            continue
        with path.open("rb") as f:
            head = f.read(2)
        if path.suffix.lower() in _PICKLE_SUFFIXES or head in _PICKLE_MAGIC:
            raise InvalidRequest(
                f"{rel} is a pickle; packages never hold pickles",
                fix="save weights with safetensors or skops and load them in init()",
            )
        files.append(path)
        if len(files) > _MAX_FILES:
            raise InvalidRequest(f"{source} holds over {_MAX_FILES} files", fix="package less")
    return files


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_package(
    source_dir: Path, entry: str, *, out: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Zip ``source_dir`` with its manifest; returns the zip's path and the manifest.

    Args:
        source_dir: the folder holding the photon's code (and small data files).
        entry: ``FILE.py:Class``, the file relative to ``source_dir``.
        out: where to write the zip (default: a new temporary file, ``lepton-photon-*.zip``,
            which the caller removes).
    """
    source = Path(source_dir).resolve()
    file, class_name = _split_entry(entry)
    cls = load_class(source / file, class_name)
    files = _files(source)
    handlers = [
        {
            "name": attr,
            "path": spec.path,
            "method": spec.method,
            "max_batch_size": spec.max_batch_size,
            "max_wait_time": spec.max_wait_time,
            "timeout": spec.timeout,
        }
        for attr, spec in cls.handler_specs()
    ]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": class_name.lower(),
        "entry": {"file": PurePosixPath(file).as_posix(), "class": class_name},
        "requirements": list(cls.requirement_dependency),
        "system_dependencies": list(cls.system_dependency),
        "deployment_template": cls.deployment_template,
        "handlers": handlers,
        "python": ".".join(platform.python_version_tuple()[:2]),
        "files": [
            {
                "path": p.relative_to(source).as_posix(),
                "sha256": _digest(p),
                "size": p.stat().st_size,
            }
            for p in files
        ],
    }
    if out is None:
        # A file, not a folder holding one: removing the zip leaves nothing behind in /tmp.
        fd, name = tempfile.mkstemp(prefix="lepton-photon-", suffix=".zip")
        os.close(fd)
        target = Path(name)
    else:
        target = out
    try:
        _write_zip(target, source, files, manifest)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target, manifest


def _write_zip(target: Path, source: Path, files: list[Path], manifest: dict[str, Any]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo(MANIFEST, date_time=_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, json.dumps(manifest, sort_keys=True, indent=2).encode())


def _unzip(archive_path: Path, target: Path) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts:
                raise InvalidRequest(
                    f"package entry {info.filename!r} escapes its folder",
                    fix="push a package made by build_package (lepton photon push builds one)",
                )
            if info.is_dir():
                continue
            dest = target.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(archive.read(info))


def load_package(path: Path, entry: str | None = None) -> tuple[type[Any], dict[str, Any]]:
    """The Photon class of an unpacked package folder (or a package zip), and its manifest.

    Every file listed in the manifest is checked against its hash before anything is imported.
    A folder without a manifest needs ``entry`` (``FILE.py:Class``).
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        # The imported code may read its files at any time: the folder lives as long as this
        # process, and goes with it.
        folder = Path(tempfile.mkdtemp(prefix="lepton-photon-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _unzip(path, folder)
        path = folder
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        if entry is None or ":" not in entry:
            raise InvalidRequest(
                f"{path} has no {MANIFEST}", fix="pass --entry FILE.py:Class, or build a package"
            )
        file, class_name = _split_entry(entry)
        return load_class(path / file, class_name), {}
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    for item in manifest.get("files", []):
        file_path = path / item["path"]
        if not file_path.is_file() or _digest(file_path) != item["sha256"]:
            raise InvalidRequest(
                f"package file {item['path']} is missing or does not match the manifest",
                fix="fetch the package again",
            )
    class_name = manifest["entry"]["class"]
    if entry and entry.rpartition(":")[2] != class_name:
        raise InvalidRequest(
            f"the package's entry class is {class_name!r}, not {entry!r}",
            fix=f"pass --entry {class_name}",
        )
    return load_class(path / manifest["entry"]["file"], class_name), manifest
