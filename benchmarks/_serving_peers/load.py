"""Closed-loop HTTP load: ``wrk`` when it is installed, else a small asyncio client.

Both send the same POST with keep-alive from ``concurrency`` connections for ``seconds`` and
report the same figures. The asyncio client speaks HTTP/1.1 over raw streams (no httpx: a client
that costs more CPU than the server measures itself on 2 cores); a connection that fails is
counted and reopened, so a killed server shows up as errors, not as a stalled run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT_S = 10.0


@dataclass
class Load:
    """One closed-loop run. Errors are non-2xx answers plus failed or timed-out connections."""

    requests: int  # 2xx answers
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def client_name(client: str) -> str:
    if client == "wrk":
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()
        return first[0].split(" [")[0] if first else "wrk"
    return "asyncio (raw streams, uvloop)" if _has_uvloop() else "asyncio (raw streams)"


def run(
    client: str,
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> Load:
    """Drive ``url`` with ``client`` ("wrk" or "asyncio")."""
    if client == "wrk":
        return _run_wrk(url, body, concurrency, seconds, headers or {})
    return _run_asyncio(url, body, concurrency, seconds, headers or {})


# ---------------------------------------------------------------------------------------- wrk

_LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"completed\\":%%d,\\"us\\":%%d,\\"status\\":%%d,\\"socket\\":%%d,\\"p50\\":%%d,\\"p99\\":%%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _run_wrk(
    url: str, body: bytes, concurrency: int, seconds: float, headers: dict[str, str]
) -> Load:
    all_headers = {"Content-Type": "application/json", **headers}
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in all_headers.items())
    script = _LUA % {"body": body.decode(), "headers": lines}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        # One wrk thread: the second core belongs to the server under test.
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
        argv += [f"--timeout={int(REQUEST_TIMEOUT_S)}s", "-s", f.name, url]
        out = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=seconds + 60
        )
    finally:
        Path(f.name).unlink()
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line.removeprefix("WRKJSON "))
    # wrk counts a non-2xx answer among its completed requests and in errors.status.
    return Load(
        requests=r["completed"] - r["status"],
        errors=r["status"] + r["socket"],
        seconds=r["us"] / 1e6,
        p50_ms=r["p50"] / 1000,
        p99_ms=r["p99"] / 1000,
    )


# ------------------------------------------------------------------------------------ asyncio


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _run_asyncio(
    url: str, body: bytes, concurrency: int, seconds: float, headers: dict[str, str]
) -> Load:
    if _has_uvloop():
        import uvloop

        return uvloop.run(_drive(url, body, concurrency, seconds, headers))
    return asyncio.run(_drive(url, body, concurrency, seconds, headers))


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0


def _request_bytes(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    head = [
        f"POST /{path} HTTP/1.1",
        f"Host: {hostport}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return host, int(port or 80), ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response; returns its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip().lower()
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # body ends with the connection
        return status, False
    return status, fields.get("connection") != "close"


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: _Tally) -> None:
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.perf_counter() < deadline:
        try:
            if stream is None:
                stream = await asyncio.wait_for(
                    asyncio.open_connection(host, port), REQUEST_TIMEOUT_S
                )
            start = time.perf_counter()
            stream[1].write(request)
            status, keep = await asyncio.wait_for(_read_response(stream[0]), REQUEST_TIMEOUT_S)
            if 200 <= status < 300:
                tally.latencies.append(time.perf_counter() - start)
            else:
                tally.errors += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            tally.errors += 1
            keep = False
            await asyncio.sleep(0.001)  # a refused connect would otherwise spin
        if not keep and stream is not None:
            stream[1].close()
            stream = None
    if stream is not None:
        stream[1].close()


async def _drive(
    url: str, body: bytes, concurrency: int, seconds: float, headers: dict[str, str]
) -> Load:
    host, port, request = _request_bytes(url, body, headers)
    tally = _Tally()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(
        *(_connection(host, port, request, deadline, tally) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - start
    ordered = sorted(tally.latencies)
    return Load(
        requests=len(ordered),
        errors=tally.errors,
        seconds=elapsed,
        p50_ms=1000 * statistics.median(ordered) if ordered else float("nan"),
        p99_ms=1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        if ordered
        else float("nan"),
    )
