"""The control plane's side of the gateway: the routing table it serves, the load it hears,
and the gateway process it keeps running.

- ``ctx.gateway_load`` (:mod:`lepton.control.load`) keeps what the gateway reports.
- :class:`GatewayService`: the table (``GET /api/v1/gateway/routes``), long-polled: it answers
  as soon as the table's version differs from the gateway's; and the reports
  (``POST /api/v1/gateway/load``). Both are for the gateway alone: it authenticates with the
  secret the control plane gave it when it started it (``LEPTON_GATEWAY_SECRET``), never a
  workspace token.
- :func:`keep_gateway`: the control plane's lifespan starts ``python -m lepton.gateway`` on
  ``LEPTON_GATEWAY_PORT`` (8710; 0: any free port; -1: no gateway), restarts it if it ends, and
  stops it when the control plane stops. The gateway is data plane (it never opens the store),
  but it lives with the control plane: it also ends if its parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from lepton.control.context import Context
from lepton.control.deployments import DeploymentService
from lepton.control.workspaces import DEFAULT_WORKSPACE
from lepton.schemas import ReplicaState
from lepton.store.models import DeploymentRow, ReplicaRow, WorkspaceRow

__all__ = ["GatewayService", "keep_gateway"]

log = logging.getLogger("lepton.gateway")

POLL_S = 0.1


class GatewayService:
    """The table and the reports, for the gateway process."""

    def __init__(self, ctx: Context, deployments: DeploymentService) -> None:
        self.ctx = ctx
        self.deployments = deployments
        self.secret = secrets.token_urlsafe(32)

    @property
    def url(self) -> str | None:
        """Where the gateway listens, once it said so."""
        return self.ctx.gateway_url

    @url.setter
    def url(self, value: str | None) -> None:
        self.ctx.gateway_url = value

    def is_gateway(self, bearer: str | None) -> bool:
        """Whether ``bearer`` is the secret of the gateway this control plane started."""
        return bearer is not None and hmac.compare_digest(bearer.encode(), self.secret.encode())

    def table(self) -> dict[str, Any]:
        """Every deployment the gateway serves: its keys (``name`` in the default workspace,
        ``workspace/name`` always), accepted token hashes (None: public), ready replicas with
        their track, and how long to hold a request; ``version`` changes with any of it."""
        entries = []
        with self.ctx.sessions() as session:
            workspaces = dict(session.execute(select(WorkspaceRow.id, WorkspaceRow.name)).all())
            rows = list(
                session.scalars(select(DeploymentRow).where(DeploymentRow.state == "active"))
            )
            replicas: dict[str, list[ReplicaRow]] = {}
            for replica in session.scalars(
                select(ReplicaRow).where(ReplicaRow.state == ReplicaState.ready)
            ):
                replicas.setdefault(replica.deployment_id, []).append(replica)
            for row in sorted(rows, key=lambda r: r.id):
                workspace = workspaces.get(row.workspace_id, "")
                keys = [f"{workspace}/{row.name}"]
                if workspace == DEFAULT_WORKSPACE:
                    keys.insert(0, row.name)
                ready = [r for r in replicas.get(row.id, []) if r.url and _serves(row, r)]
                listed = [
                    {"url": r.url, "track": _track(row, r)}
                    for r in sorted(ready, key=lambda r: r.id)
                ]
                canary = any(r["track"] == "canary" for r in listed)
                entries.append(
                    {
                        "id": row.id,
                        "name": row.name,
                        "keys": keys,
                        "token_hashes": (
                            None if row.public else self.deployments.token_hashes(session, row)
                        ),
                        "retry_posts": row.photon_id is None,
                        "hold_timeout_s": row.hold_timeout_s,
                        "timeout_s": row.timeout_s,
                        # With no replica and a reason none will start (its model was
                        # deleted), the gateway answers 503 at once instead of holding.
                        "error": None if listed else row.error_message,
                        "canary_share": (row.canary_share or 0.0) if canary else 0.0,
                        "replicas": listed,
                    }
                )
        version = hashlib.sha256(orjson.dumps(entries)).hexdigest()[:16]
        return {"version": version, "deployments": entries}

    async def wait_for_change(self, after: str, wait_s: float) -> dict[str, Any]:
        """The table, as soon as its version is not ``after`` (or after ``wait_s``)."""
        deadline = time.monotonic() + wait_s
        while True:
            table = await asyncio.to_thread(self.table)
            if table["version"] != after or time.monotonic() >= deadline:
                return table
            await asyncio.sleep(POLL_S)

    def report(self, body: dict[str, Any]) -> None:
        entries = body.get("deployments")
        if not isinstance(entries, list):
            return
        if self.ctx.gateway_load.record(float(body.get("interval_s", 1.0)), entries):
            self.ctx.wake("deployments")  # a request is held: start a replica now


def _serves(row: DeploymentRow, replica: ReplicaRow) -> bool:
    """Whether a ready replica gets requests: the serving generation's, older ones until a roll
    has drained them, and the canary's; not a dropped canary's (newer than what serves)."""
    return replica.generation <= row.generation or replica.generation == row.canary_generation


def _track(row: DeploymentRow, replica: ReplicaRow) -> str:
    if row.canary_generation is not None and replica.generation == row.canary_generation:
        return "canary"
    return "stable"


# --- the process -----------------------------------------------------------------------------


def gateway_log(home: Path) -> Path:
    return home / "gateway" / "gateway.log"


async def keep_gateway(ctx: Context, service: GatewayService) -> None:
    """Run the gateway until cancelled: start it, learn its address from its ready line,
    start it again (after 1, 2, 4 ... 30 s) when it ends."""
    settings = ctx.settings
    if settings.gateway_port < 0:
        return
    path = gateway_log(settings.home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    failures = 0
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            offset = path.stat().st_size if path.exists() else 0
            with path.open("ab") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "lepton.gateway",
                        "--host",
                        settings.host,
                        "--port",
                        str(settings.gateway_port),
                        "--control",
                        settings.local_url,
                        "--parent",
                        str(os.getpid()),
                    ],
                    env={
                        **{k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")},
                        "LEPTON_GATEWAY_SECRET": service.secret,
                        "LEPTON_GATEWAY_METRICS_TOKEN": settings.gateway_metrics_token,
                    },
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started = time.monotonic()
            while proc.poll() is None:
                if service.url is None:
                    service.url = _ready_url(path, offset)
                    if service.url is not None:
                        log.info("gateway at %s", service.url)
                await asyncio.sleep(0.2)
            service.url = None
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            delay = min(30.0, 2.0 ** max(0, failures - 1))
            log.warning(
                "the gateway exited with code %s; starting it again in %.0f s (its log: %s)",
                proc.returncode,
                delay,
                path,
            )
            await asyncio.sleep(delay)
    finally:
        service.url = None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 5)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)


def _ready_url(path: Path, offset: int) -> str | None:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            for line in f:
                if line.startswith(b"ready http"):
                    url = line.split()[1].decode()
                    # Listening on every address: show the one this machine reaches it at.
                    for wildcard in ("0.0.0.0", "[::]"):
                        url = url.replace(f"//{wildcard}:", "//127.0.0.1:")
                    return url
    except OSError:
        return None
    return None
