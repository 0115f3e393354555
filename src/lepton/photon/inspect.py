"""Photon packages as the control plane receives them: a zip of source files and a
``manifest.json``, checked before anything is stored and unpacked the same careful way.

Nothing in a package is imported or run here: the entry class is found by parsing its file.
Pickles are refused by name and by their first bytes, whatever the name, because loading one
runs code.
"""

from __future__ import annotations

import ast
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lepton.data.formats.archive import SafeZip
from lepton.data.formats.limits import Limits
from lepton.errors import InvalidRequest

__all__ = ["LIMITS", "PackageInfo", "extract_package", "inspect_package"]

# 10,000 files and 2 GiB: a service's source tree with a few bundled weights, not a dataset.
LIMITS = Limits(max_entries=10_000, max_uncompressed_bytes=2 * 1024**3)
_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pyc", ".pt", ".pth", ".ckpt", ".npy"})
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_NO_PICKLE_FIX = (
    "photons carry source and safe weights only: save weights with safetensors, skops or ONNX "
    "and load them in init()"
)


@dataclass(frozen=True)
class PackageInfo:
    manifest: dict[str, Any]
    entry: str
    """``file.py:Class`` (the manifest may give it as ``{"file", "class"}``)."""
    name: str | None
    """The name the manifest gives, if any."""


def _where(name: str) -> str:
    return f"photon package, entry {name!r}"


def inspect_package(path: Path) -> PackageInfo:
    """Check a package and return its manifest: a safe zip, a JSON manifest naming an entry
    ``file.py:Class`` whose file defines that class, and no pickle anywhere."""
    with SafeZip(path, "photon package", LIMITS) as archive:
        files = {info.filename: info for info in archive.files()}
        if "manifest.json" not in files:
            raise InvalidRequest(
                "the photon package has no manifest.json at its top level",
                fix="build it with `lepton photon push DIR -m file.py:Class`",
            )
        for name, info in files.items():
            _check_not_pickle(name, _head(archive, info))
        try:
            manifest = json.loads(archive.read(files["manifest.json"]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(
                f"the photon's manifest.json is not JSON: {exc}", fix="build the package again"
            ) from None
        if not isinstance(manifest, dict):
            raise InvalidRequest(
                "the photon's manifest.json is not a JSON object",
                fix="build the package again: lepton photon push DIR -m file.py:Class",
            )
        entry = _entry(manifest.get("entry"))
        module, cls = entry.split(":")
        if module not in files:
            raise InvalidRequest(
                f"the photon's entry file {module!r} is not in the package; it holds: "
                + ", ".join(sorted(files)[:20]),
                fix="push the folder that contains the entry file, with -m relative to it",
            )
        _check_defines(module, cls, archive.read(files[module]))
        _check_listed(manifest.get("files", []), files, archive)
        given = manifest.get("name")
        return PackageInfo(
            manifest=manifest, entry=entry, name=given if isinstance(given, str) else None
        )


def _entry(raw: object) -> str:
    """``file.py:Class`` from the manifest's ``{"file", "class"}`` (what ``build_package``
    writes) or the same as one string."""
    if isinstance(raw, dict):
        raw = f"{raw.get('file')}:{raw.get('class')}"
    if not isinstance(raw, str) or raw.count(":") != 1 or not raw.split(":")[0].endswith(".py"):
        raise InvalidRequest(
            f"the photon's manifest names entry {raw!r}; expected 'file.py:Class'",
            fix="push with -m file.py:Class naming the Photon subclass to serve",
        )
    return raw


def _check_listed(listed: object, files: dict[str, zipfile.ZipInfo], archive: SafeZip) -> None:
    """Every file the manifest lists is in the package with the bytes it hashed."""
    if not isinstance(listed, list):
        raise InvalidRequest("the photon's manifest 'files' is not a list", fix="build it again")
    for item in listed:
        path = item.get("path") if isinstance(item, dict) else None
        info = files.get(path) if isinstance(path, str) else None
        if info is None or hashlib.sha256(archive.read(info)).hexdigest() != item.get("sha256"):
            raise InvalidRequest(
                f"the photon's manifest lists {path!r}, which is missing from the package or "
                "does not match its sha256",
                fix="build the package again: lepton photon push DIR -m file.py:Class",
            )


def _check_not_pickle(name: str, head: bytes) -> None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _PICKLE_SUFFIXES or head.startswith(_PICKLE_MAGIC):
        raise InvalidRequest(
            f"{_where(name)} is a pickle (or a format that holds one); photons never carry pickles",
            fix=_NO_PICKLE_FIX,
        )


def _check_defines(module: str, cls: str, source: bytes) -> None:
    try:
        tree = ast.parse(source, filename=module)
    except (SyntaxError, ValueError) as exc:
        raise InvalidRequest(
            f"the photon's entry file {module!r} does not parse: {exc}",
            fix="fix the syntax error and push again",
        ) from None
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    if cls not in classes:
        raise InvalidRequest(
            f"the photon's entry file {module!r} defines no class {cls!r}; it defines: "
            + (", ".join(classes) or "no class"),
            fix=f"name one of its classes: -m {module}:CLASS",
        )


def extract_package(path: Path, directory: Path) -> Path:
    """Unpack a checked package into ``directory`` (entries were vetted by ``SafeZip``)."""
    with SafeZip(path, "photon package", LIMITS) as archive:
        for info in archive.files():
            target = directory.joinpath(*PurePosixPath(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
    return directory


def _head(archive: SafeZip, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as entry:
        return entry.read(16)
