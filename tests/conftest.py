"""Shared fixtures: a control plane in-process on a temporary home, and tokens to call it with.

``api`` is a Starlette ``TestClient`` inside the app's lifespan, so the database is migrated and
the ``default`` workspace bootstrapped exactly as ``lepton up`` does it. ``platform`` creates
further workspaces and tokens through the API itself, never by writing rows behind its back.

Running every migration on a fresh file takes ~0.25 s, and ~200 unit tests make an app: that was
a third of the unit folder. So the real ``migrate`` runs once per session on a template file
(``migrated_db``), and each home that ``make_app`` serves starts from a copy of it: the lifespan
still runs ``migrate``, which finds the schema at head, and still bootstraps, since the template
holds no rows. The few apps built with ``create_app`` directly (module-scoped ones in test
modules) still migrate an empty file, as ``lepton up`` does on a first start.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from lepton.client import Client
from lepton.control.plane import Control
from lepton.control.workspaces import FirstStart
from lepton.executors.base import Launch, ProcessState
from lepton.server.app import create_app
from lepton.settings import Settings
from lepton.store.db import make_engine, migrate

# Starlette's TestClient warns on import when it runs on httpx rather than httpx2, and pytest turns
# warnings into errors. The SDK is built on httpx, so that is the pairing we test; the module is
# imported once here and cached for every test module that imports it after.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Started:
    """What the app's lifespan handed to ``on_start``."""

    state: Control | None = None
    first: FirstStart | None = None


@dataclass(frozen=True)
class Platform:
    """Makes workspaces and tokens through the API, as their admins would."""

    api: TestClient
    admin: str
    """Bearer token of the bootstrap admin of ``default``."""

    def workspace(self, name: str) -> str:
        """Create workspace ``name`` as the default admin; returns its admin token."""
        r = self.api.post("/api/v1/workspaces", json={"name": name}, headers=bearer(self.admin))
        assert r.status_code == 201, r.text
        token: str = r.json()["admin_token"]["token"]
        return token

    def token_info(
        self,
        admin: str,
        *,
        role: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Create a token with ``admin``'s rights; returns the whole creation answer."""
        body: dict[str, Any] = {"name": name or (role or (scope or "t").replace(":", "-"))}
        body |= {
            k: v for k, v in (("role", role), ("scope", scope), ("expires_in", expires_in)) if v
        }
        r = self.api.post("/api/v1/tokens", json=body, headers=bearer(admin))
        assert r.status_code == 201, r.text
        info: dict[str, Any] = r.json()
        return info

    def token(self, admin: str, **kwargs: Any) -> str:
        """Like :meth:`token_info`, but only the bearer string."""
        token: str = self.token_info(admin, **kwargs)["token"]
        return token

    def client(self, token: str | None) -> Client:
        """The SDK, sending through the in-process app."""
        settings = Settings(home=Path("/nonexistent/lepton-tests"))  # no credentials file
        return Client(url=str(self.api.base_url), token=token, http=self.api, settings=settings)


class StubExecutor:
    """An executor that starts nothing: it records each launch, and every process it "started"
    runs until the test says otherwise. A test plays the runner with the launch's token."""

    cpu_slots, gpu_slots = 1, 0

    def __init__(self) -> None:
        self.launches: list[Launch] = []
        self.swept: list[dict[str, int]] = []

    def cpu_cost(self, cpus: float) -> float:
        return 1.0

    def submit(self, launch: Launch) -> int:
        self.launches.append(launch)
        return 4000 + len(self.launches)

    def status(self, job_id: str, handle: int) -> ProcessState:
        return ProcessState(alive=True)

    def cancel(self, job_id: str, handle: int) -> None:
        pass

    def attach(self, job_id: str, handle: int) -> bool:
        return True

    def reap(self) -> None:
        pass

    def sweep(self, running: Mapping[str, int]) -> list[str]:
        self.swept.append(dict(running))
        return []


@pytest.fixture
def stub_executor() -> StubExecutor:
    return StubExecutor()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh home; nothing is read from the environment."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def started() -> Started:
    return Started()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file that the real :func:`migrate` brought to head, once per session."""
    path = tmp_path_factory.mktemp("migrated") / "lepton.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        with engine.connect() as connection:
            # Fold the WAL into the file, so that the file alone is the whole database.
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    beside = sorted(p.name for p in path.parent.iterdir() if p != path)
    assert not beside, f"the template database left {beside} beside it"
    return path


@pytest.fixture
def make_app(started: Started, migrated_db: Path) -> Callable[[Settings], FastAPI]:
    """Build an app whose lifespan reports into ``started``. A home with no database yet (and no
    ``database_url``) gets a copy of ``migrated_db``, as if an earlier start had migrated it."""

    def make(settings: Settings) -> FastAPI:
        database = settings.home / "lepton.db"
        if settings.database == f"sqlite:///{database}" and not database.exists():
            settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # as open_context does
            shutil.copyfile(migrated_db, database)

        def on_start(state: Control, first: FirstStart | None) -> None:
            started.state, started.first = state, first

        # No scheduler in-process: unit tests start no job processes.
        return create_app(settings, on_start=on_start, run_jobs=False)

    return make


@pytest.fixture
def app(make_app: Callable[[Settings], FastAPI], settings: Settings) -> FastAPI:
    return make_app(settings)


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    """A client of the running app (lifespan entered, so the store is migrated)."""
    with TestClient(app) as tc:
        yield tc


@pytest.fixture
def admin_token(api: TestClient, started: Started) -> str:
    """The bootstrap admin token of workspace ``default``."""
    assert started.first is not None, "the lifespan did not bootstrap a fresh home"
    return started.first.token


@pytest.fixture(scope="session")
def platform_class() -> type[Platform]:
    """The ``Platform`` helper itself, for modules that build a longer-lived one."""
    return Platform


@pytest.fixture
def platform(api: TestClient, admin_token: str) -> Platform:
    return Platform(api=api, admin=admin_token)


@pytest.fixture
def control(platform: Platform, started: Started) -> Control:
    """The services of the running app (its lifespan entered and bootstrapped)."""
    assert started.state is not None
    return started.state


@pytest.fixture
def admin_client(platform: Platform) -> Client:
    """The SDK as the bootstrap admin of ``default``."""
    return platform.client(platform.admin)
