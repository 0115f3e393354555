"""Safe persistence for scikit-learn models: skops with an allow-list, and JSON configs.

A skops file names every type it rebuilds; :func:`load_sklearn` reads those names before loading
and refuses the file when one falls outside scikit-learn, NumPy, SciPy and plain builtins. The
file is never unpickled, so a refused artifact runs none of its code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from lepton.errors import InvalidRequest

__all__ = ["is_allowed_type", "load_json", "load_sklearn", "save_json", "save_sklearn"]

ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
"""Modules whose types a model artifact may reference."""

DENIED_PREFIXES = (
    # File and network access, reachable as functions stored in, e.g., a FunctionTransformer.
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.lib.npyio",
    "numpy.lib._npyio",
    "numpy.lib.format",
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.testing",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "scipy.io",
)
"""Names under the allowed prefixes that are refused all the same."""

ALLOWED_BUILTINS = frozenset(
    f"builtins.{name}"
    for name in (
        *("bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list"),
        *("NoneType", "object", "range", "set", "slice", "str", "tuple", "type"),
    )
)
"""Builtin *types* only: ``builtins.eval`` and friends are functions, and stay refused."""


def is_allowed_type(name: str) -> bool:
    """Whether a model artifact may reference the type (or function) ``name``."""
    if name in ALLOWED_BUILTINS:
        return True
    return name.startswith(ALLOWED_PREFIXES) and not name.startswith(DENIED_PREFIXES)


def save_sklearn(obj: Any, path: Path) -> None:
    """Write a scikit-learn object to ``path`` with skops (never pickle)."""
    import skops.io as sio

    sio.dump(obj, path)


def load_sklearn(path: Path) -> Any:
    """Load a skops file written by :func:`save_sklearn`, trusting only allowed types.

    Raises:
        InvalidRequest: the file is missing, not a skops file, or references a type outside
            the allow-list (it is then not loaded at all).
    """
    import skops.io as sio

    if not path.is_file():
        raise InvalidRequest(
            f"model file {path} does not exist",
            fix="point at the directory that Model.save wrote",
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError):
        raise InvalidRequest(
            f"{path.name} is not a skops file; it was not loaded",
            fix="save the model again with lepton",
        ) from None
    refused = [name for name in untrusted if not is_allowed_type(name)]
    if refused:
        raise InvalidRequest(
            f"the artifact {path.name} references type {refused[0]}, which is not allowed; "
            "it was not loaded",
            fix="only scikit-learn, NumPy and SciPy types load; retrain the model with lepton",
        )
    return sio.load(path, trusted=untrusted)


def save_json(obj: Any, path: Path) -> None:
    """Write a small JSON config (sorted keys, so two saves of one model are byte-identical)."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_json(path: Path) -> dict[str, Any]:
    """Read a JSON object written by :func:`save_json`."""
    if not path.is_file():
        raise InvalidRequest(
            f"config file {path} does not exist",
            fix="point at the directory that Model.save wrote",
        )
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(
            f"{path} is not valid JSON ({exc})", fix="save the model again"
        ) from None
    if not isinstance(loaded, dict):
        raise InvalidRequest(
            f"{path} holds a {type(loaded).__name__}, not an object", fix="save the model again"
        )
    return loaded
