"""The metadata store against real SQLite files and a real PostgreSQL server.

Each test runs on both backends. PostgreSQL needs ``LEPTON_TEST_POSTGRES_URL`` (``.ci/run``
sets it; ``scripts/postgres.sh start DIR PORT`` gives one locally); each test gets a schema of
its own, dropped afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, StatementError
from starlette.exceptions import StarletteDeprecationWarning

import lepton.store.db
from lepton.control.plane import Control
from lepton.control.workspaces import FirstStart
from lepton.errors import ConfigError
from lepton.server.app import create_app
from lepton.settings import Settings
from lepton.store.db import backend_name, make_engine, make_sessionmaker, migrate
from lepton.store.models import (
    AuditEventRow,
    Base,
    ContentRefRow,
    DeploymentRevisionRow,
    TokenRow,
    WorkspaceRow,
    utcnow,
)

# Starlette warns when its TestClient runs on httpx rather than httpx2; the SDK is built on httpx,
# so that is the pairing we test (as tests/conftest.py does, which may not be imported first).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

POSTGRES_ENV = "LEPTON_TEST_POSTGRES_URL"
# Every model has its table after migrating (the metadata comparison test checks the columns).
TABLES = {"alembic_version", *Base.metadata.tables}
# +05:30: a server set to local time must still hand back UTC, and a whole-hour zone could hide
# a conversion done twice.
SERVER_TIMEZONE = "Asia/Kolkata"


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(
            f"{POSTGRES_ENV} is not set; to run the PostgreSQL tests: "
            f"export {POSTGRES_ENV}=$(scripts/postgres.sh start /tmp/lepton-pg 54329)"
        )
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database, as a user would write it in ``LEPTON_DATABASE_URL``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'lepton.db'}"  # 'state' does not exist yet
        return
    base = _postgres_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"-c search_path={schema} -c TimeZone={SERVER_TIMEZONE}"
    url = make_url(base).update_query_dict({"options": options})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated(engine: Engine) -> Engine:
    migrate(engine)
    return engine


def add_workspace(engine: Engine, name: str) -> WorkspaceRow:
    with make_sessionmaker(engine)() as session:
        row = WorkspaceRow(id=uuid.uuid4().hex, name=name, created_at=utcnow())
        session.add(row)
        session.commit()
    return row


def audit_event(resource: str) -> AuditEventRow:
    return AuditEventRow(
        time=utcnow(),
        action="token.create",
        method="POST",
        resource=resource,
        outcome="success",
        status_code=201,
    )


def test_migrations_apply_on_an_empty_database_and_are_idempotent(engine: Engine) -> None:
    assert inspect(engine).get_table_names() == []
    migrate(engine)
    migrate(engine)  # every start of the control plane migrates: the second run is a no-op

    assert set(inspect(engine).get_table_names()) == TABLES
    head = ScriptDirectory(str(Path(lepton.store.db.__file__).with_name("migrations")))
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (
            head.get_current_head(),
        )
        # The migrations build exactly the schema the models describe.
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrating_again_keeps_the_rows(migrated: Engine) -> None:
    add_workspace(migrated, "default")
    migrate(migrated)  # a restart keeps the rows
    with make_sessionmaker(migrated)() as session:
        assert session.scalars(select(WorkspaceRow.name)).all() == ["default"]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls_use_the_psycopg_driver(scheme: str) -> None:
    engine = make_engine(f"{scheme}://lepton:secret@db.example:5432/lepton")  # never connects
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert (engine.url.host, engine.url.database) == ("db.example", "lepton")
        assert backend_name(engine) == "postgresql"
    finally:
        engine.dispose()


def test_sqlite_is_durable_and_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lepton.db'}")
    try:
        # Two connections at once: the pragmas hold on every pooled connection, not just one.
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragma = connection.exec_driver_sql
                assert pragma("PRAGMA journal_mode").scalar() == "wal"
                assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
                assert pragma("PRAGMA foreign_keys").scalar() == 1
                assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_timestamps_come_back_timezone_aware_utc(migrated: Engine) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    written = datetime(2026, 3, 1, 9, 15, 30, 123456, tzinfo=ist)
    with make_sessionmaker(migrated)() as session:
        session.add(WorkspaceRow(id="w1", name="tz", created_at=written))
        session.commit()

    with make_sessionmaker(migrated)() as session:  # a fresh session reads from the database
        read = session.scalars(select(WorkspaceRow.created_at)).one()
    assert read.tzinfo is UTC
    assert read == written  # the same instant, to the microsecond
    assert read.hour == 3 and read.minute == 45


def test_naive_timestamps_are_refused(migrated: Engine) -> None:
    with make_sessionmaker(migrated)() as session:
        session.add(WorkspaceRow(id="w1", name="naive", created_at=datetime(2026, 3, 1, 9, 15)))
        with pytest.raises(StatementError, match="timezone-aware"):
            session.commit()


def test_workspace_names_are_unique(migrated: Engine) -> None:
    add_workspace(migrated, "team")
    with pytest.raises(IntegrityError):
        add_workspace(migrated, "team")
    with make_sessionmaker(migrated)() as session:
        assert session.scalar(select(func.count()).select_from(WorkspaceRow)) == 1


@pytest.mark.parametrize("row_type", [TokenRow, ContentRefRow])
def test_rows_need_what_they_refer_to(migrated: Engine, row_type: type[Base]) -> None:
    # A token needs its workspace; a reference to stored bytes needs the object's row, the row
    # erasers lock (lepton.control.content).
    if row_type is TokenRow:
        row: Base = TokenRow(
            id="t1", workspace_id="missing", name="ci", role="viewer", secret_hash="0" * 64
        )
    else:
        row = ContentRefRow(
            digest="0" * 64, owner_kind="upload", owner_id="w", role="upload", workspace_id="w"
        )
    with make_sessionmaker(migrated)() as session:
        session.add(row)
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        assert session.scalar(select(func.count()).select_from(row_type)) == 0


def test_audit_ids_increase(migrated: Engine) -> None:
    sessions = make_sessionmaker(migrated)
    ids = []
    for n in range(5):
        with sessions() as session:  # one commit per event, as the audit middleware does
            event = audit_event(f"token/{n}")
            session.add(event)
            session.commit()
            ids.append(event.id)
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 5
    with sessions() as session:
        newest_first = session.scalars(
            select(AuditEventRow.resource).order_by(AuditEventRow.id.desc())
        ).all()
    assert newest_first == [f"token/{n}" for n in reversed(range(5))]


def test_concurrent_writers_all_land(migrated: Engine) -> None:
    # 8 threads x 25 commits: more writers than a 2-core machine runs at once, so SQLite's
    # single writer lock is contended and must queue (busy_timeout), never fail.
    threads, per_thread = 8, 25
    sessions = make_sessionmaker(migrated)
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            start.wait(timeout=60)
            for n in range(per_thread):
                with sessions() as session:
                    session.add(audit_event(f"worker/{worker}/{n}"))
                    session.commit()
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    with sessions() as session:
        ids = session.scalars(select(AuditEventRow.id)).all()
        resources = set(session.scalars(select(AuditEventRow.resource)))
    assert len(ids) == len(set(ids)) == threads * per_thread
    assert resources == {f"worker/{w}/{n}" for w in range(threads) for n in range(per_thread)}


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("not a database url", "sqlite:////path/to/lepton.db"),
        ("mysql://lepton@localhost/lepton", "postgresql://"),
    ],
)
def test_bad_urls_raise_config_error_with_a_fix(url: str, fix: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_engine(url)
    assert fix in raised.value.fix
    assert raised.value.message  # says what was wrong, not only how to fix it


def test_control_plane_runs_on_the_store(database_url: str, tmp_path: Path) -> None:
    started: list[tuple[Control, FirstStart | None]] = []
    settings = Settings(home=tmp_path / "home", database_url=database_url)

    with TestClient(
        create_app(settings, on_start=lambda *s: started.append(s), run_jobs=False)
    ) as client:
        state, first = started[0]
        assert backend_name(state.ctx.engine) == make_url(database_url).get_backend_name()
        assert first is not None  # an empty store: bootstrap made the workspace and a token
        auth = {"Authorization": f"Bearer {first.token}"}

        tokens = client.get("/api/v1/tokens", headers=auth)
        assert tokens.status_code == 200, tokens.text
        assert [(t["name"], t["role"], t["workspace"]) for t in tokens.json()] == [
            ("admin", "admin", "default")
        ]

        created = client.post("/api/v1/tokens", headers=auth, json={"name": "ci"})
        assert created.status_code == 201, created.text
        assert created.json()["role"] == "viewer"
        assert created.json()["token"].startswith(f"lep_{created.json()['id']}_")

        listed = client.get("/api/v1/tokens", headers=auth).json()
        assert [t["name"] for t in listed] == ["admin", "ci"]
        assert all(
            datetime.fromisoformat(t["created_at"]).utcoffset() == timedelta(0) for t in listed
        )

        viewer = {"Authorization": f"Bearer {created.json()['token']}"}
        assert client.get("/api/v1/workspaces", headers=viewer).status_code == 200

        audit = client.get("/api/v1/audit", headers=auth, params={"action": "token.create"})
        assert [e["resource"] for e in audit.json()] == [f"token/{created.json()['id']}"]

    # A restart on the same store finds the workspace: no second bootstrap, tokens still valid.
    with TestClient(
        create_app(settings, on_start=lambda *s: started.append(s), run_jobs=False)
    ) as client:
        assert started[1][1] is None
        assert client.get("/api/v1/tokens", headers=auth).status_code == 200


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from lepton.store import db

    config = Config()
    config.set_main_option("script_location", str(db._MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_migration_0007_records_every_existing_use_of_stored_bytes(engine: Engine) -> None:
    """A store of the earlier schema, with bytes used in each of the places it kept them,
    comes out with one reference per use, an object row per digest, and its numbering kept."""
    _upgrade(engine, "0006")
    d = {name: hex_char * 64 for name, hex_char in zip("abcdefgh", "abcdef01", strict=True)}
    now = utcnow()
    rows = [
        "INSERT INTO workspaces (id, name, created_at) VALUES ('w', 'default', :now)",
        "INSERT INTO blobs (workspace_id, digest, size, created_at) VALUES ('w', :a, 10, :now)",
        "INSERT INTO datasets (id, workspace_id, name, created_at, last_version) "
        "VALUES ('ds', 'w', 'heart', :now, 3)",
        "INSERT INTO dataset_versions (id, dataset_id, version, content_hash, format, "
        "source_name, source_digest, source_size, data_digest, rows, schema_json, profile_json, "
        "pii_json, created_at) VALUES ('dv', 'ds', 3, 'h', 'csv', 'heart.csv', :b, 20, :c, 1, "
        "'[]', '{}', '{}', :now)",
        "INSERT INTO dataset_splits (version_id, spec_hash, spec_json, strategy, counts_json, "
        "digest, created_at) VALUES ('dv', 's1', '{}', 'random', '{}', :d, :now)",
        "INSERT INTO models (id, workspace_id, name, created_at, last_version) "
        "VALUES ('m', 'w', 'heart', :now, 5)",
        "INSERT INTO model_versions (id, model_id, version, flavour, algorithm, task, "
        "artifact_digest, signature_json, metrics_json, params_json, leaderboard_json, "
        "created_at, explanations_json) VALUES ('mv', 'm', 5, 'sklearn', 'forest', "
        "'classification', :a, '{}', '{}', '{}', '[]', :now, :explanations)",
        "INSERT INTO model_evaluations (id, model_version_id, result_json, created_at) "
        "VALUES ('ev', 'mv', :result, :now)",
        "INSERT INTO photons (id, workspace_id, name, version, digest, size, entry, "
        "manifest_json, created_at) VALUES ('p', 'w', 'echo', 4, :f, 30, 'e.py:E', '{}', :now)",
        "INSERT INTO jobs (id, workspace_id, kind, state, spec_json, attempts, max_retries, "
        "created_at, checkpoint_digest, cancel_requested) VALUES ('j', 'w', 'train', "
        "'running', '{}', 1, 0, :now, :g, false)",
    ]
    values = {
        **d,
        "now": now,
        "explanations": json.dumps({"kind": "tabular", "plot": d["h"]}),
        "result": json.dumps({"plots": {"roc": d["e"]}}),
    }
    with engine.begin() as connection:
        for statement in rows:
            connection.execute(text(statement), values)

    migrate(engine)

    with engine.connect() as connection:
        refs = {
            tuple(r)
            for r in connection.execute(
                text("SELECT owner_kind, owner_id, role, digest FROM content_refs")
            )
        }
        objects = {
            r[0]: r[1] for r in connection.execute(text("SELECT digest, size FROM blob_objects"))
        }
        counters = {
            tuple(r) for r in connection.execute(text("SELECT kind, key, last FROM counters"))
        }
    assert refs == {
        ("upload", "w", "upload", d["a"]),
        ("dataset_version", "dv", "source", d["b"]),
        ("dataset_version", "dv", "data", d["c"]),
        ("split", "dv/s1", "assignment", d["d"]),
        ("model_version", "mv", "artifact", d["a"]),
        ("model_version", "mv", "explanation-plot", d["h"]),
        ("evaluation", "ev", "plot:roc", d["e"]),
        ("photon", "p", "package", d["f"]),
        ("job", "j", "checkpoint", d["g"]),
    }
    assert set(objects) == set(d.values())
    assert objects[d["a"]] == 10 and objects[d["b"]] == 20 and objects[d["c"]] is None
    assert counters == {
        ("dataset_version", "ds", 3),
        ("model_version", "m", 5),
        ("photon", "w/echo", 4),
    }


def test_migration_0008_keeps_deployments_and_jobs_and_adds_secrets(engine: Engine) -> None:
    """Deployments and jobs of the earlier schema come out with no variables, secrets or
    masked values; the new table holds one secret per workspace and name."""
    _upgrade(engine, "0007")
    now = utcnow()
    rows = [
        "INSERT INTO workspaces (id, name, created_at) VALUES ('w', 'default', :now)",
        "INSERT INTO jobs (id, workspace_id, kind, state, spec_json, attempts, max_retries, "
        "created_at, cancel_requested) VALUES ('j', 'w', 'script', 'succeeded', '{}', 1, 0, "
        ":now, false)",
        "INSERT INTO deployments (id, workspace_id, name, source_ref, replicas, max_batch_size, "
        "max_wait_ms, timeout_s, public, port, state, generation, created_at, updated_at) "
        "VALUES ('d', 'w', 'web', 'echo', 1, 64, 0, 30, true, 9000, 'active', 3, :now, :now)",
    ]
    with engine.begin() as connection:
        for statement in rows:
            connection.execute(text(statement), {"now": now})

    migrate(engine)

    with engine.connect() as connection:
        deployment = connection.execute(
            text("SELECT name, generation, env_json, secrets_json, secret_mask FROM deployments")
        ).one()
        job = connection.execute(text("SELECT id, secret_mask FROM jobs")).one()
    assert tuple(deployment) == ("web", 3, None, None, None)
    assert tuple(job) == ("j", None)
    secret = {"id": "s1", "ws": "w", "name": "HF_TOKEN", "sealed": b"\x00sealed", "now": now}
    insert = text(
        "INSERT INTO secrets (id, workspace_id, name, ciphertext, created_at, updated_at) "
        "VALUES (:id, :ws, :name, :sealed, :now, :now)"
    )
    with engine.begin() as connection:
        connection.execute(insert, secret)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert, {**secret, "id": "s2"})


def test_migration_0009_records_the_generation_each_deployment_runs(engine: Engine) -> None:
    """Each deployment of the earlier schema gets one revision, of its current generation; the
    revisions go with their deployment and hold up no deletion of what they name."""
    _upgrade(engine, "0008")
    created, changed = utcnow() - timedelta(days=2), utcnow() - timedelta(hours=1)
    insert = text(
        "INSERT INTO deployments (id, workspace_id, name, photon_id, source_ref, replicas, "
        "max_batch_size, max_wait_ms, timeout_s, public, port, state, generation, env_json, "
        "secrets_json, created_at, updated_at, created_by) VALUES (:id, 'w', :id, 'p', :ref, 1, "
        "8, 2.5, 30, true, :port, 'active', :gen, :env, :secrets, :created, :changed, 'tok')"
    )
    times = {"now": created, "created": created, "changed": changed}
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO workspaces (id, name, created_at) VALUES ('w', 'default', :now)"),
            times,
        )
        connection.execute(
            text(
                "INSERT INTO photons (id, workspace_id, name, version, digest, size, entry, "
                "manifest_json, created_at) VALUES ('p', 'w', 'echo', 1, :d, 3, 'e.py:E', '{}', "
                ":now)"
            ),
            {**times, "d": "f" * 64},
        )
        web = {"id": "web", "ref": "echo", "port": 9000, "gen": 3, "env": '{"MODE": "fast"}'}
        connection.execute(insert, {**times, **web, "secrets": '["API_KEY"]'})
        new = {"id": "new", "ref": "echo@1", "port": 9001, "gen": 1, "env": None}
        connection.execute(insert, {**times, **new, "secrets": None})

    migrate(engine)

    with make_sessionmaker(engine)() as session:
        revisions = {r.deployment_id: r for r in session.scalars(select(DeploymentRevisionRow))}
        found = {
            key: (r.generation, r.photon_id, r.source_ref, r.max_batch_size, r.max_wait_ms,
                  r.env_json, r.secrets_json, r.reason, r.created_at, r.created_by)
            for key, r in revisions.items()
        }  # fmt: skip
    assert found == {
        "web": (3, "p", "echo", 8, 2.5, '{"MODE": "fast"}', '["API_KEY"]',
                "recorded at upgrade; earlier generations were not kept", changed, None),
        "new": (1, "p", "echo@1", 8, 2.5, None, None, "created", created, "tok"),
    }  # fmt: skip
    with engine.begin() as connection:
        connection.execute(text("UPDATE deployments SET photon_id = NULL"))
        connection.execute(text("DELETE FROM photons WHERE id = 'p'"))  # ON DELETE SET NULL
        connection.execute(text("DELETE FROM deployments WHERE id = 'web'"))  # ON DELETE CASCADE
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT deployment_id, photon_id FROM deployment_revisions")
        ).all()
    assert [tuple(r) for r in left] == [("new", None)]
