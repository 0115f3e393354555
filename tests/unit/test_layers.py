"""The layers of docs/architecture.md, checked on the source: routes hold no business rules (they
import no store model, no SQLAlchemy and no other route), nothing outside the control plane
opens the database, and only the control plane reaches the metadata store's models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lepton

SRC = Path(lepton.__file__).parent


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((SRC / folder).rglob("*.py"))


def _offending(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports(path) if m.startswith(prefixes))


ROUTES = [p for p in modules("server/routes") if p.name != "__init__.py"]  # it mounts them


@pytest.mark.parametrize("path", ROUTES, ids=lambda p: p.name)
def test_a_route_module_imports_no_store_and_no_other_route(path: Path) -> None:
    others = tuple(f"lepton.server.routes.{p.stem}" for p in ROUTES if p != path)
    assert not _offending(path, ("lepton.store", "sqlalchemy", *others))


@pytest.mark.parametrize(
    "folder", ["jobs", "registry", "serving", "photon", "client", "cli", "explain", "algorithms"]
)
def test_code_outside_the_control_plane_never_opens_the_database(folder: str) -> None:
    offending = {
        str(p.relative_to(SRC)): bad
        for p in modules(folder)
        if (bad := _offending(p, ("sqlalchemy", "lepton.store.models", "lepton.store.db")))
    }
    assert offending == {}


@pytest.mark.parametrize("folder", ["jobs", "registry", "serving", "photon", "explain", "gateway"])
def test_code_that_runs_in_jobs_and_replicas_imports_no_control_plane(folder: str) -> None:
    offending = {
        str(p.relative_to(SRC)): bad
        for p in modules(folder)
        if (bad := _offending(p, ("lepton.server", "lepton.control")))
    }
    assert offending == {}


def test_only_the_control_plane_and_the_store_reach_store_models() -> None:
    allowed = ("control/", "store/")
    offending = {
        str(p.relative_to(SRC)): bad
        for p in SRC.rglob("*.py")
        if not str(p.relative_to(SRC)).startswith(allowed)
        and (bad := _offending(p, ("lepton.store.models",)))
    }
    assert offending == {}
