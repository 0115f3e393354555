"""``python -m lepton.gateway``: the gateway process.

It listens, prints ``ready http://HOST:PORT`` once it accepts, and keeps two loops with the
control plane (``--control``, authenticated by ``LEPTON_GATEWAY_SECRET``):

- the table: ``GET /api/v1/gateway/routes?after=VERSION&wait_s=20`` answers as soon as the
  table differs from ``VERSION`` (a replica became ready, one drained, a deployment appeared),
  so a held request goes on within one supervisor pass of its replica's ``ready`` line. While
  the control plane cannot be reached the last table stays in force: replicas keep being served.
- the load: every ``--report-s`` (1 s), and at once when a request is held for a deployment
  with no ready replica, ``POST /api/v1/gateway/load`` with each deployment's requests in
  flight (time-averaged and peak), held requests, and cumulative answers by status and latency
  (total and per track: stable, canary). The supervisor scales and judges canaries on it.

``/metrics`` (Prometheus) and ``/healthz`` are the gateway's own; everything else is a
deployment's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

import httpx

from lepton.gateway.proxy import ClientConnection, Gateway
from lepton.gateway.table import Route, Table
from lepton.serving.metrics import LATENCY_BUCKETS

__all__ = ["main", "render_metrics"]

log = logging.getLogger("lepton.gateway")

SECRET_ENV = "LEPTON_GATEWAY_SECRET"
WAIT_S = 20.0
DEMAND_EVERY_S = 0.2


def render_metrics(table: Table, clients: int, routes: list[Route] | None = None) -> bytes:
    """The gateway's counters as Prometheus text, per deployment (of ``routes``, or all)."""
    lines = [
        "# HELP lepton_gateway_connections Client connections open.",
        "# TYPE lepton_gateway_connections gauge",
        f"lepton_gateway_connections {clients}",
    ]
    families = {
        "lepton_gateway_requests_total": ("counter", "Answers by status."),
        "lepton_gateway_request_seconds": ("histogram", "Time to answer, held time included."),
        "lepton_gateway_in_flight": ("gauge", "Requests being answered."),
        "lepton_gateway_waiting": ("gauge", "Requests held for a replica to start."),
        "lepton_gateway_held_total": ("counter", "Requests that were held for a replica."),
        "lepton_gateway_retries_total": ("counter", "Requests sent again to another replica."),
        "lepton_gateway_replicas": ("gauge", "Ready replicas in the table."),
    }
    body: dict[str, list[str]] = {name: [] for name in families}
    for route in table.by_id.values() if routes is None else routes:
        label = f'deployment="{route.name}"'
        for status, n in sorted(route.total.status.items()):
            body["lepton_gateway_requests_total"].append(
                f'lepton_gateway_requests_total{{{label},status="{status}"}} {n}'
            )
        running = 0
        for bound, n in zip([*LATENCY_BUCKETS, float("inf")], route.total.buckets, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            body["lepton_gateway_request_seconds"].append(
                f'lepton_gateway_request_seconds_bucket{{{label},le="{le}"}} {running}'
            )
        body["lepton_gateway_request_seconds"] += [
            f"lepton_gateway_request_seconds_sum{{{label}}} {route.total.latency_sum:.6f}",
            f"lepton_gateway_request_seconds_count{{{label}}} {running}",
        ]
        body["lepton_gateway_in_flight"].append(
            f"lepton_gateway_in_flight{{{label}}} {route.inflight}"
        )
        body["lepton_gateway_waiting"].append(f"lepton_gateway_waiting{{{label}}} {route.waiting}")
        body["lepton_gateway_held_total"].append(
            f"lepton_gateway_held_total{{{label}}} {route.held}"
        )
        body["lepton_gateway_retries_total"].append(
            f"lepton_gateway_retries_total{{{label}}} {route.retries}"
        )
        body["lepton_gateway_replicas"].append(
            f"lepton_gateway_replicas{{{label}}} {len(route.upstreams)}"
        )
    for name, (kind, text) in families.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *body[name]]
    return ("\n".join(lines) + "\n").encode()


class Process:
    def __init__(self, control: str, secret: str, report_s: float, metrics_token: str = "") -> None:
        self.control = control.rstrip("/")
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.report_s = report_s
        self.table = Table()
        self.gateway = Gateway(
            self.table,
            demand=self.demand,
            metrics=lambda routes: render_metrics(self.table, self.gateway.clients, routes),
            metrics_token=metrics_token,
        )
        self.http = httpx.AsyncClient(timeout=WAIT_S + 10, headers=self.headers)
        self._wake = asyncio.Event()
        self._last_report = time.monotonic()
        self._last_demand = 0.0

    def demand(self, route: Route) -> None:
        """A request is held: report now (at most every ``DEMAND_EVERY_S``)."""
        now = time.monotonic()
        if now - self._last_demand >= DEMAND_EVERY_S:
            self._last_demand = now
            self._wake.set()

    async def follow(self) -> None:
        """Keep the table current."""
        failures = 0
        while True:
            try:
                answer = await self.http.get(
                    f"{self.control}/api/v1/gateway/routes",
                    params={"after": self.table.version, "wait_s": WAIT_S},
                )
                answer.raise_for_status()
                data = answer.json()
                if data["version"] != self.table.version:
                    self.table.update(data["version"], data["deployments"])
                failures = 0
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("cannot read the routing table from %s: %s", self.control, exc)
                await asyncio.sleep(min(5.0, 0.2 * failures))

    async def report(self) -> None:
        """Send the load every ``report_s``, or sooner on demand."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.report_s)
            self._wake.clear()
            now = time.monotonic()
            elapsed, self._last_report = now - self._last_report, now
            routes = [route.load(now, elapsed) for route in self.table.by_id.values()]
            if not routes:
                continue
            try:
                answer = await self.http.post(
                    f"{self.control}/api/v1/gateway/load",
                    json={"interval_s": elapsed, "deployments": routes},
                    timeout=5.0,
                )
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                log.debug("cannot report load: %s", exc)


async def orphaned(parent: int, stop: asyncio.Event) -> None:
    """Stop once ``parent`` (the control plane that started the gateway) has ended."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the control plane (pid %d) has ended; stopping", parent)
    stop.set()


async def run(
    host: str,
    port: int,
    control: str,
    secret: str,
    report_s: float,
    parent: int = 0,
    metrics_token: str = "",
) -> None:
    process = Process(control, secret, report_s, metrics_token)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(process.gateway),
        host,
        port,
        backlog=4096,
        reuse_address=True,
    )
    bound = server.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"ready http://{shown}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(process.follow()), asyncio.create_task(process.report())]
    if parent:
        tasks.append(asyncio.create_task(orphaned(parent, stop)))
    await stop.wait()
    server.close()
    process.table.close()
    for task in tasks:
        task.cancel()
    await process.http.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--control", required=True, help="the control plane's URL")
    parser.add_argument("--report-s", type=float, default=1.0)
    parser.add_argument("--parent", type=int, default=0, help="exit when this process ends")
    args = parser.parse_args(argv)
    from lepton.settings import Settings

    settings = Settings.from_env()
    secret = settings.gateway_secret
    if not secret:
        print(f"lepton.gateway: {SECRET_ENV} is not set", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # httpx logs every request at INFO: a long poll and a load report a second, forever.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import uvloop

    try:
        uvloop.run(
            run(
                args.host,
                args.port,
                args.control,
                secret,
                args.report_s,
                args.parent,
                settings.gateway_metrics_token,
            )
        )
    except OSError as exc:
        print(f"lepton.gateway: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
        return 2
    return 0
