"""Engine, sessions and migrations of the metadata store.

SQLite (the default) runs in WAL mode with ``synchronous=FULL``: readers never block the
writer, and a commit that returned is on disk, so a killed control plane loses no
acknowledged write. PostgreSQL is used when ``LEPTON_DATABASE_URL`` names one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lepton.errors import ConfigError

__all__ = ["backend_name", "make_engine", "make_sessionmaker", "migrate"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` onto the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``, with SQLite tuned for durability and concurrency."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise ConfigError(
            f"LEPTON_DATABASE_URL={url!r} is not a database URL",
            fix="use sqlite:////path/to/lepton.db or postgresql://user:pass@host:5432/db",
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend in ("sqlite", "postgresql") and driver not in ("pysqlite", "psycopg"):
        raise ConfigError(
            f"database URL driver {parsed.drivername!r} is not installed; Lepton ships psycopg 3 "
            "for PostgreSQL and Python's sqlite3",
            fix="drop the '+driver' part: postgresql://user:pass@host:5432/db "
            "or sqlite:////path/to/lepton.db",
        )
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(
                "an in-memory SQLite database would be empty in every thread of the server",
                fix="use a file: sqlite:////path/to/lepton.db (or leave LEPTON_DATABASE_URL unset)",
            )
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend != "postgresql":
        raise ConfigError(
            f"database backend {backend!r} is not supported",
            fix="use SQLite (the default) or a postgresql:// URL",
        )
    return create_engine(parsed, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")  # 30 s: a burst of writers queues, never fails
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def backend_name(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``."""
    return engine.dialect.name


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


@cache
def _script_heads() -> frozenset[str]:
    """The head revisions of the migrations this package ships (read once per process)."""
    return frozenset(ScriptDirectory.from_config(_config()).get_heads())


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (idempotent)."""
    config = _config()
    try:
        with engine.begin() as connection:
            # Already at head, as on every start but the first: return before Alembic's upgrade,
            # which loads env.py and every migration script again (~10 ms on 2 cores, per call).
            current = MigrationContext.configure(connection).get_current_heads()
            if frozenset(current) == _script_heads():
                return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}",
            fix="check LEPTON_DATABASE_URL and that the database server is running",
        ) from None
