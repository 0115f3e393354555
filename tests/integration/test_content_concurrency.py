"""Stored bytes under concurrency, with real control-plane processes.

- Two control planes on one PostgreSQL database and one blob store push and delete the same
  contents at once: no answer is a 5xx, every push reads back its exact bytes, and once both
  are idle every referenced object is stored and readable and nothing unreferenced is left.
- A 1 GiB upload being stored does not hold up a small push: the small one finishes first.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from lepton.store.blobs import BlobStore
from lepton.store.db import make_engine, make_sessionmaker
from lepton.store.models import BlobObjectRow, ContentRefRow

if TYPE_CHECKING:
    from conftest import ServerFactory

POSTGRES_ENV = "LEPTON_TEST_POSTGRES_URL"
WORKERS_PER_SERVER = 2
ROUNDS = 8  # per worker: ~5 requests each, so ~160 requests over both servers
CONTENTS = 3  # few distinct contents, so the servers keep writing and erasing the same objects
TIMEOUT = httpx.Timeout(120.0)


@pytest.fixture
def shared_database() -> Iterator[str]:
    """A fresh schema of the test PostgreSQL, as a URL both servers use."""
    base = os.environ.get(POSTGRES_ENV, "")
    if not base:
        pytest.skip(
            f"{POSTGRES_ENV} is not set; needs PostgreSQL (.ci/run starts one): "
            f"export {POSTGRES_ENV}=$(scripts/postgres.sh start /tmp/lepton-pg 54329)"
        )
    schema = f"shared_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-c search_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def csv_bytes(k: int) -> bytes:
    return ("x,y\n" + "".join(f"{i * (k + 1)},{i % 2}\n" for i in range(30))).encode()


def photon_bytes(k: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("echo.py", f"class Echo:\n    VARIANT = {k}\n")
        archive.writestr("manifest.json", json.dumps({"entry": "echo.py:Echo"}))
    return buffer.getvalue()


def _work(url: str, token: str, worker: int, failures: list[str]) -> None:
    """Push, read back and delete datasets, photons and uploads, all drawn from few contents."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT) as http:

        def check(response: httpx.Response, what: str) -> httpx.Response:
            if response.status_code >= 500 or response.status_code not in (200, 201, 204):
                failures.append(f"{what}: {response.status_code} {response.text[:300]}")
            return response

        for round_ in range(ROUNDS):
            k = (worker + round_) % CONTENTS
            name = f"w{worker}"
            body = csv_bytes(k)
            pushed = check(
                http.post(
                    f"/api/v1/datasets/{name}/versions",
                    params={"source_name": "data.csv"},
                    content=body,
                ),
                "dataset push",
            )
            if pushed.status_code in (200, 201):
                version = pushed.json()["version"]
                back = check(http.get(f"/api/v1/datasets/{name}/versions/{version}/source"), "pull")
                if back.status_code == 200 and back.content != body:
                    failures.append(f"{name}@v{version} read back other bytes")
                if round_ % 2:
                    check(http.delete(f"/api/v1/datasets/{name}/versions/{version}"), "rm")
            package = photon_bytes(k)
            check(http.post("/api/v1/photons", params={"name": name}, content=package), "photon")
            if round_ % 2 == 0:
                check(http.delete(f"/api/v1/photons/{name}"), "photon rm")
            check(http.post("/api/v1/blobs", content=body), "upload")


def test_two_control_planes_sharing_a_store_never_lose_or_leak_bytes(
    servers: ServerFactory, shared_database: str, tmp_path: Path
) -> None:
    storage = tmp_path / "shared-blobs"
    key = base64.b64encode(os.urandom(32)).decode()
    env = {
        "LEPTON_DATABASE_URL": shared_database,
        "LEPTON_STORAGE_URL": str(storage),
        "LEPTON_ENCRYPTION_KEY": key,
    }
    first = servers("a", env=env)
    second = servers("b", env=env)  # finds the workspace the first one made
    token = first.token
    failures: list[str] = []

    jobs = [(s.url, w) for s in (first, second) for w in range(WORKERS_PER_SERVER)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [
            pool.submit(_work, url, token, index, failures) for index, (url, _) in enumerate(jobs)
        ]
        for future in futures:
            future.result(timeout=600)

    assert failures == []
    engine = make_engine(shared_database)
    try:
        with make_sessionmaker(engine)() as session:
            referenced = set(session.scalars(select(ContentRefRow.digest)))
            objects = set(session.scalars(select(BlobObjectRow.digest)))
    finally:
        engine.dispose()
    store = BlobStore(str(storage), base64.b64decode(key))
    stored = set(store.digests())
    assert referenced, "the workload left nothing referenced: it tested nothing"
    assert referenced <= stored, f"referenced but erased: {sorted(referenced - stored)}"
    assert stored == referenced, f"left behind, unreferenced: {sorted(stored - referenced)}"
    assert objects == referenced
    for digest in referenced:  # whole and decryptable, not only present
        assert store.read_bytes(digest)


GIB = 1 << 30


def big_photon(path: Path) -> Path:
    """A photon package of 1 GiB: its source and a big stored (uncompressed) weights file."""
    block = os.urandom(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("big.py", "class Big:\n    pass\n")
        archive.writestr("manifest.json", json.dumps({"entry": "big.py:Big", "name": "big"}))
        with archive.open("weights.bin", "w", force_zip64=True) as f:
            for _ in range(GIB // len(block)):
                f.write(block)
    return path


def test_a_one_gib_upload_does_not_hold_up_a_small_push(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers()
    package = big_photon(tmp_path / "big.zip")
    headers = {"Authorization": f"Bearer {server.token}"}
    sent = threading.Event()
    finished: dict[str, float] = {}

    def body() -> Iterator[bytes]:
        with package.open("rb") as f:
            while chunk := f.read(4 << 20):
                yield chunk
        sent.set()  # the server now checks the package and stores its 1 GiB

    def push_big() -> int:
        with httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT) as http:
            r = http.post("/api/v1/photons", content=body())
        finished["big"] = time.monotonic()
        return r.status_code

    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(push_big)
        assert sent.wait(timeout=300), "the 1 GiB body was never sent"
        with httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT) as http:
            small = http.post(
                "/api/v1/datasets/small/versions",
                params={"source_name": "small.csv"},
                content=csv_bytes(0),
            )
            finished["small"] = time.monotonic()
            assert small.status_code == 201, small.text
            blob = http.post("/api/v1/blobs", content=b"a small upload")
            finished["blob"] = time.monotonic()
            assert blob.status_code == 201, blob.text
        assert big.result(timeout=600) == 201

    # Ordering, not durations: the small writes landed while the big one was being stored.
    assert finished["small"] < finished["big"]
    assert finished["blob"] < finished["big"]
    with httpx.Client(base_url=server.url, headers=headers, timeout=TIMEOUT) as http:
        photon = http.get("/api/v1/photons/big").json()
    assert photon["size"] == package.stat().st_size
