"""A failure in a photon author's code, told as the error and the line of theirs that raised it.

Importing a photon (``lepton photon push`` and ``run`` do, to read its handlers) and its
``init()`` run the author's code. What goes wrong there is their mistake, not ours, so it is an
:class:`~lepton.errors.InvalidRequest` (exit 2) that names the error and their line, never a
traceback through importlib and the serving stack (19 frames for one bad import).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

from lepton.errors import InvalidRequest

__all__ = ["Where", "author_line", "import_failure", "run_failure"]

_LEPTON = Path(__file__).resolve().parents[1]
_INSTALLED = frozenset({"site-packages", "dist-packages"})
# Modules whose pip name differs from their import name, among those photons import most.
_PIP_NAMES = {
    "PIL": "pillow",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
}


@dataclass(frozen=True)
class Where:
    """A line of the author's code."""

    file: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}" + (f": {self.code}" if self.code else "")


def _is_author(filename: str, folder: Path) -> bool:
    path = Path(filename)
    if not path.is_absolute() or _INSTALLED & set(path.parts):
        return False  # "<frozen importlib._bootstrap>", or an installed package
    resolved = path.resolve()
    return resolved.is_relative_to(folder) and not resolved.is_relative_to(_LEPTON)


def author_line(exc: BaseException, folder: Path) -> Where | None:
    """The deepest line of ``exc``'s traceback in a file under ``folder`` (the photon's own
    code, not Lepton's or an installed package's), or None when the author's code is not in it."""
    folder = folder.resolve()
    if isinstance(exc, SyntaxError) and exc.filename and _is_author(exc.filename, folder):
        file = Path(exc.filename).resolve().relative_to(folder).as_posix()
        return Where(file, exc.lineno or 0, (exc.text or "").strip())
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if _is_author(frame.filename, folder):
            file = Path(frame.filename).resolve().relative_to(folder).as_posix()
            return Where(file, frame.lineno or 0, (frame.line or "").strip())
    return None


def _what(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def import_failure(exc: Exception, path: Path, class_name: str) -> InvalidRequest:
    """Importing the photon's file ``path`` raised ``exc``: which import (or line) failed and
    how to fix it."""
    where = author_line(exc, path.parent)
    at = f", at {where}" if where else ""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        pip = _PIP_NAMES.get(top, top)
        return InvalidRequest(
            f"{path.name} imports {exc.name!r}, which is not installed{at}",
            fix=f"pip install {pip}, and add {pip!r} to {class_name}.requirement_dependency "
            "(push and run import the photon with this Python, and install nothing for it); "
            f"if {top} is a module of yours, put it beside {path.name}",
        )
    if isinstance(exc, ImportError):
        # "... from 'numpy' (/venv/.../numpy/__init__.py)": the installed file says nothing here.
        message = re.sub(r" \((/|unknown location)[^)]*\)$", "", str(exc))
        package = exc.name or "the package"
        return InvalidRequest(
            f"{path.name}: {message}{at}",
            fix=f"check the name; if another version of {package} has it, install that version "
            f"and pin it in {class_name}.requirement_dependency (e.g. '{package}>=X.Y')",
        )
    place = f"{where.file} line {where.line}" if where else path.name
    return InvalidRequest(
        f"importing {path.name} failed with {_what(exc)}{at}", fix=f"fix {place} and try again"
    )


def run_failure(exc: Exception, folder: Path, doing: str) -> InvalidRequest | None:
    """``doing`` (e.g. ``Echo.init()``) raised ``exc``: the error and the author's line that
    raised it, or None when no line of the author's code (under ``folder``) is in the traceback,
    which makes it Lepton's bug and its traceback worth showing."""
    where = author_line(exc, folder)
    if where is None:
        return None
    return InvalidRequest(
        f"{doing} failed with {_what(exc)}, at {where}",
        fix=f"fix {where.file} line {where.line} and run it again",
    )
