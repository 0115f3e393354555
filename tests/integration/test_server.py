"""The control plane as a real process: first start, restarts, a busy port, SIGTERM, SDK, blobs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from lepton import AuthenticationError, Client
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

MiB = 1024 * 1024


def client(server: ServerProcess, token: str | None = None) -> Client:
    # Explicit url and token, and settings with no credentials file: nothing from the machine.
    settings = Settings(home=server.home.parent / "no-client-home")
    return Client(server.url, token or server.token, settings=settings)


def peak_rss_kib(pid: int) -> int | None:
    """The process's peak resident set (VmHWM), or ``None`` where /proc has no such line."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def test_first_start_prints_the_token_once_and_saves_it_owner_only(servers: ServerFactory) -> None:
    server = servers()
    token = server.token
    first_output = server.output
    saved = server.credentials_path.read_bytes()

    assert first_output.count(token) == 1
    assert stat.S_IMODE(server.credentials_path.stat().st_mode) == 0o600
    assert json.loads(saved) == {"url": server.url, "token": token}
    with client(server) as c:
        status = c.status()
    assert status.workspace == "default"
    assert status.token.role is not None and status.token.role.value == "admin"

    server.restart()

    assert token not in server.output
    assert "First start" not in server.output
    assert server.credentials_path.read_bytes() == saved
    with client(server) as c:
        assert c.status().token.id == status.token.id


def test_up_on_a_busy_port_fails_with_a_message_and_no_traceback(servers: ServerFactory) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = servers(start=False, port=squatter.getsockname()[1])
        server.launch()
        code = server.wait()

    assert code == 2  # ConfigError: bad input (cli/output.py)
    assert f"cannot listen on 127.0.0.1:{server.port}" in server.errors
    assert "--port" in server.errors  # the fix names the way out
    assert "Traceback" not in server.errors + server.output
    # It failed before bootstrapping: no admin token was minted and shown for nothing.
    assert "lep_" not in server.output
    assert not server.credentials_path.exists()


def test_sigterm_shuts_down_gracefully_and_keeps_the_data(server: ServerProcess) -> None:
    with client(server) as c:
        created = c.tokens.create("before-stop", role="editor")

    code = server.stop(signal.SIGTERM)

    # uvicorn shuts down, then re-raises the signal: "terminated by SIGTERM" is its clean exit.
    assert code in (0, -signal.SIGTERM), server.errors
    assert "Traceback" not in server.errors
    # The lifespan's shutdown ran: closing the last SQLite connection checkpoints the WAL into
    # the database and deletes it. A process that just died leaves lepton.db-wal behind.
    assert not (server.home / "lepton.db-wal").exists()
    # And the port is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))

    server.start()
    with client(server, created.token) as c:
        assert c.status().token.name == "before-stop"


def test_sdk_creates_and_revokes_tokens_and_a_revoked_token_is_told_so(
    server: ServerProcess,
) -> None:
    with client(server) as admin:
        status = admin.status()
        created = admin.tokens.create("ci", role="viewer", expires_in=3600)
        with client(server, created.token) as ci:
            assert ci.status().token.id == created.id
            revoked = admin.tokens.revoke(created.id)
            with pytest.raises(AuthenticationError, match="revoked"):
                ci.status()
        active = [t.id for t in admin.tokens.list()]
        everything = [t.id for t in admin.tokens.list(include_revoked=True)]

    assert status.workspace == "default"
    assert status.encrypted is True
    assert created.token.startswith(f"lep_{created.id}_")
    assert created.expires_at is not None
    assert revoked.revoked_at is not None
    assert created.id not in active
    assert status.token.id in active
    assert created.id in everything

    # The wire answer itself: 401 with the error body, and a message that says "revoked".
    answer = httpx.get(
        f"{server.url}/api/v1/status", headers={"Authorization": f"Bearer {created.token}"}
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == "unauthenticated"
    assert "revoked" in error["message"]
    assert error["fix"]


def test_a_20_mib_blob_streams_round_trip_and_is_encrypted_at_rest(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    with client(server) as c:
        blob = c.blobs.upload(source)
        target = c.blobs.download(digest, tmp_path / "back.bin")
        listed = {b.digest: b.size for b in c.blobs.list()}

    assert blob.digest == digest
    assert blob.size == len(data)
    assert listed == {digest: len(data)}
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest

    # Encryption at rest: no stretch of the plaintext appears in any stored file.
    stored = [p for p in (server.home / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [digest]
    ciphertext = stored[0].read_bytes()
    assert len(ciphertext) > len(data)  # a header and one tag per 1 MiB chunk
    for offset in (0, 1 * MiB + 17, 10 * MiB, len(data) - 64):
        assert data[offset : offset + 64] not in ciphertext
    assert not list((server.home / "blobs" / "tmp").iterdir())


def _chunks(seed: bytes, total: int) -> Iterator[bytes]:
    # Deterministic 1 MiB chunks made on the fly: the test itself never holds the blob.
    for i in range(total // MiB):
        yield hashlib.shake_256(seed + i.to_bytes(4, "big")).digest(MiB)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_server_memory_does_not_grow_with_the_blob_size(server: ServerProcess) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    peaks = []
    with client(server) as c:
        # 20 MiB first: it warms up the thread pool and allocator arenas (~20 MiB, once).
        for size in (20 * MiB, 60 * MiB):
            seed = os.urandom(8)
            expected = hashlib.sha256(b"".join(_chunks(seed, size))).hexdigest()
            blob = c.blobs.upload(_chunks(seed, size))
            got = hashlib.sha256()
            for chunk in c.blobs.open(blob.digest):
                got.update(chunk)
            assert (blob.digest, got.hexdigest()) == (expected, expected)
            peaks.append(peak_rss_kib(pid))

    # Streamed in 1 MiB chunks, 3x the bytes leave the peak where it was (measured: +4 KiB);
    # buffering the body or the answer would raise it by at least the 40 MiB difference.
    assert peaks[1] is not None and peaks[0] is not None
    assert peaks[1] - peaks[0] < 20 * 1024, peaks


def test_forty_uploads_in_flight_at_once_all_succeed(server: ServerProcess) -> None:
    # 40 > the 30 database connections the server pools: a request that held its connection
    # while its body streams in would starve the others (500 after the 30 s pool timeout).
    n = 40
    release = threading.Event()
    payloads = [os.urandom(256 * 1024) for _ in range(n)]

    def body(payload: bytes) -> Iterator[bytes]:
        yield payload[:1024]
        release.wait(60)
        yield payload[1024:]

    def upload(payload: bytes) -> httpx.Response:
        return http.post(
            "/api/v1/blobs",
            content=body(payload),
            headers={"Content-Type": "application/octet-stream"},
        )

    headers = {"Authorization": f"Bearer {server.token}"}
    limits = httpx.Limits(max_connections=n)
    tmp = server.home / "blobs" / "tmp"
    with (
        httpx.Client(base_url=server.url, headers=headers, timeout=90, limits=limits) as http,
        ThreadPoolExecutor(n) as pool,
    ):
        futures = [pool.submit(upload, p) for p in payloads]
        try:
            # Bounded: every upload has its first part on disk, or 10 s have passed.
            deadline = time.monotonic() + 10
            for _ in range(200):
                if len(list(tmp.iterdir())) >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            release.set()
        answers = [f.result(timeout=120) for f in futures]

    assert [a.status_code for a in answers] == [201] * n, next(
        a.text for a in answers if a.status_code != 201
    )
    assert sorted(a.json()["digest"] for a in answers) == sorted(
        hashlib.sha256(p).hexdigest() for p in payloads
    )
