"""SIGKILL mid-burst: every acknowledged write survives, and nothing half-written does.

The burst is 200 concurrent writes (blob uploads of 1 KiB to 2 MiB, and every tenth a token
creation) from 32 threads. The server is killed once 60 have been acknowledged *and* a
deliberately stalled upload has left a partial object in ``blobs/tmp``, so the kill always lands
mid-write: acknowledged writes, writes in flight and writes never started all exist.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import ServerProcess

KiB = 1024
WRITES = 200
WORKERS = 32
KILL_AFTER_ACKS = 60
STALLED = 4  # uploads that send a first part, then wait for the kill: in flight for sure
# 60 s: the 60 acknowledgements take ~2 s on 2 cores; the bound only stops a hung server.
WAIT_FOR_KILL_S = 60.0


@dataclass
class Write:
    index: int
    kind: str  # "blob" or "token"
    payload: bytes = b""
    stalled: bool = False

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass
class Ledger:
    """What the client was told. Only a 2xx answer counts as acknowledged."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size
    tokens: dict[str, str] = field(default_factory=dict)  # token id -> bearer
    unexpected: list[str] = field(default_factory=list)  # any answer that is not 2xx
    failed: int = 0  # no answer: connection refused or reset by the kill
    enough: threading.Event = field(default_factory=threading.Event)

    @property
    def acknowledged(self) -> int:
        return len(self.blobs) + len(self.tokens)

    def ack(self, write: Write, answer: httpx.Response) -> None:
        with self.lock:
            if not answer.is_success:
                self.unexpected.append(f"write {write.index}: {answer.status_code} {answer.text}")
            elif write.kind == "blob":
                body = answer.json()
                assert body["digest"] == write.digest, body  # the server hashed what it got
                self.blobs[write.digest] = len(write.payload)
            else:
                body = answer.json()
                self.tokens[body["id"]] = body["token"]
            if self.acknowledged >= KILL_AFTER_ACKS:
                self.enough.set()

    def fail(self) -> None:
        with self.lock:
            self.failed += 1


def make_writes(rng: random.Random) -> list[Write]:
    writes = []
    for i in range(WRITES):
        if i % 10 == 9:
            writes.append(Write(i, "token"))
            continue
        # Log-uniform 1 KiB .. 2 MiB: many small writes and some large ones (~60 MiB in all).
        size = int(2 ** rng.uniform(10, 21))
        writes.append(Write(i, "blob", rng.randbytes(size), stalled=i < STALLED))
    return writes


def stalled_body(payload: bytes, release: threading.Event) -> Iterator[bytes]:
    yield payload[: len(payload) // 2]
    release.wait(WAIT_FOR_KILL_S)
    yield payload[len(payload) // 2 :]


def send(http: httpx.Client, write: Write, ledger: Ledger, release: threading.Event) -> None:
    try:
        if write.kind == "token":
            answer = http.post("/api/v1/tokens", json={"name": f"burst-{write.index}"})
        else:
            body = stalled_body(write.payload, release) if write.stalled else write.payload
            answer = http.post(
                "/api/v1/blobs",
                content=body,
                headers={"Content-Type": "application/octet-stream"},
            )
    except httpx.TransportError:
        ledger.fail()
        return
    ledger.ack(write, answer)


def wait_for(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):
        if condition():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return False


def temp_objects(home: Path) -> list[Path]:
    tmp = home / "blobs" / "tmp"
    return [p for p in tmp.rglob("*") if p.is_file()] if tmp.exists() else []


@pytest.mark.timeout(240)
def test_sigkill_mid_burst_loses_no_acknowledged_write_and_leaves_no_debris(
    server: ServerProcess,
) -> None:
    rng = random.Random(20261125)
    writes = make_writes(rng)
    attempted = {w.digest for w in writes if w.kind == "blob"}
    ledger = Ledger()
    release = threading.Event()
    headers = {"Authorization": f"Bearer {server.token}"}
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)

    with (
        httpx.Client(base_url=server.url, headers=headers, timeout=60, limits=limits) as http,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        futures = [pool.submit(send, http, w, ledger, release) for w in writes]
        try:
            acked = ledger.enough.wait(WAIT_FOR_KILL_S)
            partial = wait_for(lambda: temp_objects(server.home), WAIT_FOR_KILL_S)
            server.kill()
        finally:
            release.set()
        for future in futures:
            future.result(timeout=WAIT_FOR_KILL_S)

    assert acked, f"only {ledger.acknowledged} writes were acknowledged before the deadline"
    assert partial, "no upload was in flight when the server was killed"
    assert ledger.unexpected == []
    # The kill landed mid-burst: some writes were never acknowledged.
    assert ledger.failed > 0
    assert ledger.acknowledged + ledger.failed == WRITES
    debris = temp_objects(server.home)
    assert debris  # the crash left partial uploads behind; the restart must clear them

    server.start()

    assert temp_objects(server.home) == []
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        listing = http.get("/api/v1/blobs")
        assert listing.status_code == 200
        listed = {b["digest"]: b["size"] for b in listing.json()}
        # Every acknowledged blob is listed, with its size ...
        assert {d: listed.get(d) for d in ledger.blobs} == ledger.blobs
        # ... and no row names bytes that were never sent.
        assert set(listed) <= attempted
        # Every listed blob downloads whole and hashes to its name: no row without its bytes.
        for digest, size in listed.items():
            answer = http.get(f"/api/v1/blobs/{digest}")
            assert answer.status_code == 200, (digest, answer.text)
            assert len(answer.content) == size
            assert hashlib.sha256(answer.content).hexdigest() == digest
        # Every acknowledged token still authenticates.
        for token_id, bearer in ledger.tokens.items():
            status = http.get("/api/v1/status", headers={"Authorization": f"Bearer {bearer}"})
            assert status.status_code == 200, (token_id, status.text)
            assert status.json()["token"]["id"] == token_id
