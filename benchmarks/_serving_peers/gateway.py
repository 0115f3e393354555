"""``serving.py --gateway``: the LR model through Lepton's gateway against the same two replicas
reached directly and through HAProxy, and the cold start of a deployment with no replica.

Two replicas (``python -m lepton.serving --reuse-port --own-port``) share one port, the way users
reach replicas without a gateway (the kernel spreads connections between them): ``direct``. Each
also listens on a port of its own, named on its ready line, where the proxies send:

- ``gateway``: ``python -m lepton.gateway``, Lepton's own asyncio/httptools proxy, at
  ``/d/lr/predict``. Its routing table comes from :class:`FakeControl`, a fake control plane in
  this script serving the two routes the gateway calls: the section measures the data path only.
- ``haproxy``, the mature proxy Lepton could drive instead (the engine comparison), when it is on
  PATH (``apt-get install haproxy``): HTTP mode, keep-alive to the servers, ``balance leastconn``,
  ``nbthread 1``, no logging.

Closed-loop load at concurrency 1, 32 and 256, the paths in turn at each level (their order
reversed from one level to the next); throughput, p50, p99, errors, the proxy's CPU per 1k
requests, and each proxy's ratio to direct. The gateway's own counters (answers by status,
retries) are read from its ``/metrics`` afterwards.

Cold start, ``COLD_RUNS`` times: with no replica in the table, a request is sent through the
gateway, which holds it and reports it; on that report a replica is started, and the moment it
prints its ready line the table lists it. Timed: request to answer, and within it the replica's
spawn to its ready line (the part a faster replica start would cut). Between a ready line and
the table that lists it, the real control plane takes up to one supervisor pass and one table
poll (``CONTROL_PLANE_S``); the measured figure excludes them and is shown with them added too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import load
from process import START_TIMEOUT_S, Server, post
from startup import free_port

LEVELS = (1, 32, 256)
COLD_RUNS = 10
QUICK_LEVELS = (1, 32)
QUICK_COLD_RUNS = 2  # --quick: the e2e test's check that the section works, not a figure
CONTROL_PLANE_S = 0.2  # the supervisor looks for a starting replica every 0.1 s, the table poll too
HOLD_TIMEOUT_S = 60.0
SECRET = "bench-gateway-secret"
DEPLOYMENT = "lr"
TARGET_RATIO = 0.7  # gateway / direct at c=32
TARGET_COLD_S = 2.0
HAPROXY_CONFIG = """\
# Written by benchmarks/serving.py --gateway. No "log" line anywhere: logging is off.
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    maxconn 8192
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance leastconn
{servers}
"""


# ----------------------------------------------------------------------------- control plane


class FakeControl:
    """The control plane as the gateway sees it, serving a table this script sets:
    ``GET /api/v1/gateway/routes?after=V&wait_s=S`` answers once the version is not ``V`` (or
    after ``S``), ``POST /api/v1/gateway/load`` answers 204 and sets :attr:`held` when a report
    counts a held request. Both want the gateway's secret. A context manager: leaving it stops
    the server."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0
        self._replicas: list[str] = []
        self._seen = ""  # the version the gateway last asked after: the one it has
        self._closed = False
        self.held = threading.Event()
        self._http = _ControlServer(("127.0.0.1", 0), _ControlHandler)
        self._http.control = self
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeControl:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()  # long polls in flight answer now
        self._http.shutdown()
        self._http.server_close()

    def set_replicas(self, urls: list[str]) -> str:
        """List ``urls`` as the deployment's ready replicas; the new version."""
        with self._changed:
            self._version += 1
            self._replicas = list(urls)
            self._changed.notify_all()
            return str(self._version)

    def wait_seen(self, version: str, timeout: float = 10.0) -> None:
        """Until the gateway holds ``version`` (it asks for what comes after it)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._seen == version, timeout):
                raise RuntimeError(f"the gateway did not take table {version} in {timeout:.0f} s")

    def table(self, after: str, wait_s: float) -> dict[str, Any]:
        """The table once its version is not ``after``, or after ``wait_s``."""
        with self._changed:
            if after == str(self._version):
                self._seen = after
                self._changed.notify_all()
            self._changed.wait_for(
                lambda: self._closed or after != str(self._version), min(wait_s, 60.0)
            )
            entry = {
                "id": "d1",
                "name": DEPLOYMENT,
                "keys": [DEPLOYMENT],
                "token_hashes": None,
                "retry_posts": True,
                "hold_timeout_s": HOLD_TIMEOUT_S,
                "timeout_s": 30,
                "error": None,
                "canary_share": 0,
                "replicas": [{"url": url, "track": "stable"} for url in self._replicas],
            }
            return {"version": str(self._version), "deployments": [entry]}

    def report(self, body: dict[str, Any]) -> None:
        if any(d.get("waiting", 0) > 0 for d in body.get("deployments", [])):
            self.held.set()


class _ControlServer(ThreadingHTTPServer):
    control: FakeControl

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A gateway that stopped during its long poll is no error; anything else is shown."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real control plane
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # gateway's delayed ACK (40 ms), and the cold start would time that.
    disable_nagle_algorithm = True

    def _allowed(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {SECRET}":
            return True
        self._answer(401, b'{"error": "not the gateway"}')
        return False

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/api/v1/gateway/routes":
            self._answer(404)
            return
        if self._allowed():
            query = parse_qs(parts.query)
            after = query.get("after", [""])[0]
            wait_s = float(query.get("wait_s", ["0"])[0])
            control = cast(_ControlServer, self.server).control
            self._answer(200, json.dumps(control.table(after, wait_s)).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/api/v1/gateway/load":
            self._answer(404)
            return
        if self._allowed():
            cast(_ControlServer, self.server).control.report(json.loads(body))
            self._answer(204)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per long poll and per report would bury the benchmark's output."""


# ----------------------------------------------------------------------------- processes


def clean_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEPTON_", "BENCH_"))}
    env.update(LEPTON_HOME=str(workdir / "lepton-home"), PYTHONUNBUFFERED="1")
    return env


def start_replica(workdir: Path, name: str, port: int) -> Server:
    """A replica of the LR model on ``port`` (shared: ``--reuse-port``) and on a port of its
    own; not waited for."""
    argv = [sys.executable, "-m", "lepton.serving", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--model-dir", str(workdir / "lr"), "--public", "--reuse-port", "--own-port"]
    url = f"http://127.0.0.1:{port}/predict"
    return Server(argv, clean_env(workdir), workdir, workdir / f"{name}.log", url)


def own_url(replica: Server, timeout: float, poll_s: float = 0.005) -> str:
    """The replica's own address, from ``ready http://H:P replica http://H:Q``, as soon as it
    prints it (read every ``poll_s``: the cold start times this)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in replica.log_path.read_bytes().splitlines():
            words = line.decode(errors="replace").split()
            if len(words) >= 4 and words[0] == "ready" and words[2] == "replica":
                return words[3]
        if replica.process.poll() is not None:
            raise RuntimeError(f"exited with {replica.process.returncode}: {replica.log_tail()}")
        time.sleep(poll_s)
    raise RuntimeError(f"no ready line after {timeout:.0f} s: {replica.log_tail()}")


def start_gateway(workdir: Path, control: FakeControl, stack: contextlib.ExitStack) -> Server:
    """``python -m lepton.gateway`` following ``control``; stopped when ``stack`` closes."""
    port = free_port()
    argv = [sys.executable, "-m", "lepton.gateway", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--control", control.url]
    env = clean_env(workdir) | {
        "LEPTON_GATEWAY_SECRET": SECRET,
        "LEPTON_GATEWAY_METRICS_TOKEN": SECRET,  # the scraper's token, to read /metrics
    }
    url = f"http://127.0.0.1:{port}/d/{DEPLOYMENT}/predict"
    gateway = Server(argv, env, workdir, workdir / "gateway.log", url)
    stack.callback(gateway.stop)
    gateway.wait_line("ready http", START_TIMEOUT_S)
    return gateway


def haproxy_version() -> str | None:
    """``HAProxy version 2.6.12-...`` when ``haproxy`` is on PATH, else None."""
    if shutil.which("haproxy") is None:
        return None
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[0] if out.stdout else "haproxy"
    return first.split(" - ")[0]


def start_haproxy(
    workdir: Path, servers: list[str], probe: bytes, stack: contextlib.ExitStack
) -> Server:
    """HAProxy in the foreground (``-db``) in front of ``servers``; stopped when ``stack``
    closes."""
    port = free_port()
    lines = [f"    server r{i} {urlsplit(url).netloc}" for i, url in enumerate(servers)]
    config = workdir / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers="\n".join(lines)))
    argv = ["haproxy", "-db", "-f", str(config)]
    url = f"http://127.0.0.1:{port}/predict"
    proxy = Server(argv, clean_env(workdir), workdir, workdir / "haproxy.log", url)
    stack.callback(proxy.stop)
    proxy.wait_ready(probe, {}, START_TIMEOUT_S)
    return proxy


def gateway_counters(gateway: Server) -> dict[str, Any]:
    """Answers by status, retries and held requests, from the gateway's ``/metrics``."""
    base = gateway.url.split("/d/", 1)[0]
    scrape = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {SECRET}"}
    )
    with urllib.request.urlopen(scrape, timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, Any] = {"status": {}, "retries": 0, "held": 0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("lepton_gateway_requests_total{"):
            out["status"][name.split('status="', 1)[1].split('"', 1)[0]] = int(value)
        elif name.startswith("lepton_gateway_retries_total{"):
            out["retries"] += int(value)
        elif name.startswith("lepton_gateway_held_total{"):
            out["held"] += int(value)
    return out


# ----------------------------------------------------------------------------- throughput


def measure(
    client: str,
    url: str,
    body: bytes,
    c: int,
    args: Any,
    proxy: Server | None,
    replicas: list[Server],
) -> dict[str, Any]:
    """One closed-loop level after a warm-up, with the CPU the proxy and the replicas spent."""
    load.run(client, url, body, c, args.warmup)
    proxy0 = proxy.cpu_seconds() if proxy else 0.0
    replicas0 = sum(r.cpu_seconds() for r in replicas)
    result = load.run(client, url, body, c, args.seconds)
    proxy_cpu = proxy.cpu_seconds() - proxy0 if proxy else None
    replicas_cpu = sum(r.cpu_seconds() for r in replicas) - replicas0
    done = result.as_dict()
    per_1k = 1e6 / result.requests if result.requests else None
    done["proxy_cpu_ms_per_1k"] = proxy_cpu * per_1k if per_1k and proxy_cpu is not None else None
    done["replicas_cpu_ms_per_1k"] = replicas_cpu * per_1k if per_1k else None
    return done


def compare(
    args: Any, client: str, workdir: Path, body: bytes, check: Callable[[Server], str | None]
) -> dict[str, Any]:
    """direct, gateway and (when installed) haproxy in front of the same two replicas."""
    version = haproxy_version()
    with contextlib.ExitStack() as stack:
        control = stack.enter_context(FakeControl())
        shared = free_port()
        replicas: list[Server] = []
        for i in range(2):
            replicas.append(start_replica(workdir, f"replica-{i}", shared))
            stack.callback(replicas[-1].stop)
        owns = [own_url(r, START_TIMEOUT_S) for r in replicas]
        control.set_replicas(owns)
        replicas[0].wait_ready(body, {}, START_TIMEOUT_S)
        gateway = start_gateway(workdir, control, stack)
        gateway.wait_ready(body, {}, START_TIMEOUT_S)  # 404 until its first table
        paths: dict[str, Server | None] = {"direct": None, "gateway": gateway}
        if version is None:
            print("  haproxy: not installed (apt-get install haproxy); skipped", flush=True)
        else:
            paths["haproxy"] = start_haproxy(workdir, owns, body, stack)
        for name, proxy in paths.items():
            problem = check(proxy or replicas[0])
            if problem:
                raise RuntimeError(f"{name} answers wrong predictions: {problem}")
        levels: dict[str, dict[str, Any]] = {}
        for i, c in enumerate(QUICK_LEVELS if args.quick else LEVELS):
            order = list(paths) if i % 2 == 0 else list(reversed(paths))
            levels[str(c)] = {}
            for name in order:
                proxy = paths[name]
                url = (proxy or replicas[0]).url
                r = measure(client, url, body, c, args, proxy, replicas)
                levels[str(c)][name] = r
                print(
                    f"  {name:8} c={c:<4} {r['rps']:8.0f} rps  p50 {r['p50_ms']:7.2f} ms"
                    f"  p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}",
                    flush=True,
                )
        counters = gateway_counters(gateway)
    return {
        "haproxy": version or "not installed",
        "paths": list(paths),
        "levels": levels,
        "ratios": {
            c: {
                f"{name} / direct": level[name]["rps"] / level["direct"]["rps"]
                for name in level
                if name != "direct" and level["direct"]["rps"]
            }
            for c, level in levels.items()
        },
        "gateway_counters": counters,
    }


# ----------------------------------------------------------------------------- cold start


def cold_once(
    workdir: Path, control: FakeControl, url: str, body: bytes, n: int
) -> dict[str, float]:
    """One cold start: the request held, the replica started on the gateway's report of it,
    listed the moment it is ready; the phases in seconds."""
    control.wait_seen(control.set_replicas([]))
    control.held.clear()
    answered: dict[str, Any] = {}

    def send() -> None:
        try:
            post(url, body, {}, timeout=HOLD_TIMEOUT_S + 10)
        except (urllib.error.URLError, OSError) as exc:
            answered["error"] = exc
        answered["at"] = time.perf_counter()

    sender = threading.Thread(target=send, daemon=True)
    sent = time.perf_counter()
    sender.start()
    if not control.held.wait(10.0):
        raise RuntimeError("the gateway did not report the held request in 10 s")
    spawned = time.perf_counter()
    replica = start_replica(workdir, f"cold-{n}", free_port())
    try:
        control.set_replicas([own_url(replica, START_TIMEOUT_S)])
        ready = time.perf_counter()
        sender.join(HOLD_TIMEOUT_S + 15)
        if "at" not in answered or "error" in answered:
            raise RuntimeError(f"the held request failed: {answered.get('error', 'no answer')}")
    finally:
        control.set_replicas([])
        replica.stop()
    return {
        "first_answer_s": answered["at"] - sent,
        "held_to_spawn_s": spawned - sent,
        "spawn_to_ready_s": ready - spawned,
        "ready_to_answer_s": answered["at"] - ready,
    }


def cold_start(workdir: Path, body: bytes, runs: int) -> dict[str, Any]:
    """``runs`` cold starts through one gateway; each phase's p50, min and max."""
    with contextlib.ExitStack() as stack:
        control = stack.enter_context(FakeControl())
        gateway = start_gateway(workdir, control, stack)
        samples = [cold_once(workdir, control, gateway.url, body, n) for n in range(runs)]
    out: dict[str, Any] = {"runs": runs, "control_plane_s": CONTROL_PLANE_S}
    for phase in samples[0]:
        values = [s[phase] for s in samples]
        out[phase] = {"p50": statistics.median(values), "min": min(values), "max": max(values)}
    first = out["first_answer_s"]
    out["first_answer_with_control_plane_s"] = {k: v + CONTROL_PLANE_S for k, v in first.items()}
    out["samples"] = samples
    return out


# ----------------------------------------------------------------------------- report


def print_tables(result: dict[str, Any]) -> None:
    print(
        "\nLR through a proxy, 2 replicas (the gateway's table comes from a fake control plane "
        "in this script: the data path only)"
    )
    for c, level in result["levels"].items():
        print(
            f"  c={c:<4} {'path':9} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'proxy cpu ms/1k':>15} {'x direct':>9}"
        )
        direct = level["direct"]["rps"]
        for name, r in level.items():
            cpu = r["proxy_cpu_ms_per_1k"]
            shown = f"{cpu:15.0f}" if cpu is not None else f"{'-':>15}"
            ratio = f"{r['rps'] / direct:9.2f}" if direct else f"{'-':>9}"
            print(
                f"         {name:9} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                f"{r['errors']:7d} {shown} {ratio}"
            )
    if result["haproxy"] == "not installed":
        print("  haproxy: not installed (apt-get install haproxy); skipped")
    else:
        print(f"  haproxy: {result['haproxy']}")
    counters = result["gateway_counters"]
    print(
        f"  the gateway answered (warm-ups and checks included): {counters['status']}, "
        f"retries {counters['retries']}"
    )
    cold = result["cold_start"]
    first, bound = cold["first_answer_s"], cold["first_answer_with_control_plane_s"]

    def spread(figure: dict[str, float], unit: str = "s") -> str:
        k = 1000 if unit == "ms" else 1
        p50, low, high = (k * figure[f] for f in ("p50", "min", "max"))
        return f"p50 {p50:.2f} {unit} (min {low:.2f}, max {high:.2f})"

    print(
        f"\nCold start through the gateway, {cold['runs']} runs (no replica -> first answer; the "
        "table is updated the moment the replica prints its ready line):"
    )
    print(f"  measured                          {spread(first)}")
    print(f"  + {CONTROL_PLANE_S:.1f} s control-plane bound        {spread(bound)}")
    print(f"  replica spawn to its ready line   {spread(cold['spawn_to_ready_s'])}")
    print(f"  request to the held report        {spread(cold['held_to_spawn_s'], 'ms')}")
    print(f"  ready line to the answer          {spread(cold['ready_to_answer_s'], 'ms')}")


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets for the gateway, each with the figures it was judged on."""
    ratio = result["ratios"].get("32", {}).get("gateway / direct")
    cold = result["cold_start"]
    bound = cold["first_answer_with_control_plane_s"]["p50"]
    return {
        f"gateway >= {TARGET_RATIO} of direct at c=32": {
            "met": ratio is not None and ratio >= TARGET_RATIO,
            "ratio": ratio,
        },
        f"cold start < {TARGET_COLD_S:g} s (p50, control-plane bound included)": {
            "met": bound < TARGET_COLD_S,
            "p50_s": bound,
            "measured_p50_s": cold["first_answer_s"]["p50"],
        },
    }


def gateway_path(
    args: Any, client: str, workdir: Path, body: bytes, check: Callable[[Server], str | None]
) -> dict[str, Any]:
    """The whole section: the three paths at each level, then the cold start; printed."""
    levels = QUICK_LEVELS if args.quick else LEVELS
    runs = QUICK_COLD_RUNS if args.quick else COLD_RUNS
    print(f"\ngateway: direct, gateway, haproxy at c={', '.join(map(str, levels))}", flush=True)
    result = compare(args, client, workdir, body, check)
    print(f"cold start: {runs} runs", flush=True)
    result["cold_start"] = cold_start(workdir, body, runs)
    result["control_plane"] = (
        "fake, in benchmarks/_serving_peers/gateway.py: it serves the routes table and takes the "
        "load reports; the figures are the gateway's data path only"
    )
    print_tables(result)
    result["targets"] = targets(result)
    return result
