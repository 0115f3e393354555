"""A deployment's traffic with real processes: ``lepton up`` supervising two replicas that
report their counters every 0.5 s on their output; the traffic API shows exactly what they
answered, and the deployment log shows none of the report lines."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from test_deployments_process import ROW, cleanup, client_for, register_model, wait_for

if TYPE_CHECKING:
    from conftest import ServerFactory

pytestmark = pytest.mark.timeout(600)

PREDICTIONS = 30
INTERVAL_S = 0.5


def test_the_traffic_api_counts_exactly_what_the_replicas_answered(
    servers: ServerFactory,
) -> None:
    server = servers("traffic", env={"LEPTON_TRAFFIC_INTERVAL_S": str(INTERVAL_S)})
    client = client_for(server)
    register_model(client)
    with cleanup(client), client:
        created = client.deployments.create("clf", replicas=2)
        url, auth = created.url, {"Authorization": f"Bearer {created.token}"}
        # A connection per request, so the kernel spreads them over both replicas.
        for _ in range(PREDICTIONS):
            r = httpx.post(f"{url}/predict", json={"rows": [ROW]}, headers=auth, timeout=30)
            assert r.status_code == 200, r.text
        refused = [
            httpx.post(f"{url}/predict", json={"rows": [ROW]}, timeout=30),  # no token
            httpx.post(f"{url}/predict", json={"rows": [{"x0": "high"}]}, headers=auth),
            httpx.post(f"{url}/predict", content=b"{not json", headers=auth),
        ]
        assert [r.status_code // 100 for r in refused] == [4, 4, 4], [r.text for r in refused]

        def counted() -> bool:
            return client.deployments.traffic("clf").totals.requests >= PREDICTIONS + 3

        wait_for(counted, "the replicas' reports to reach the control plane", timeout=60)
        time.sleep(4 * INTERVAL_S)  # later reports must not count anything twice
        traffic = client.deployments.traffic("clf")

        totals = traffic.totals
        assert (totals.requests, totals.rejected, totals.errors) == (PREDICTIONS + 3, 3, 0)
        assert sum(totals.codes.values()) == 3 and totals.codes["unauthenticated"] == 1
        assert sum(p.requests for p in traffic.points) == PREDICTIONS + 3
        assert totals.p50_ms is not None and totals.p99_ms is not None
        assert 0 < totals.p50_ms <= totals.p99_ms
        assert 1 <= traffic.replicas_reporting <= 2
        log = client.deployments.logs("clf").text
        assert "ready http://" in log and "lepton-traffic" not in log

        shown = subprocess.run(
            [str(Path(sys.executable).parent / "lepton"), "deployment", "show", "clf"],
            env=server.env(COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "requests/s, p95 " in shown and " ms, 3 rejected (last minute)" in shown, shown

        client.deployments.delete("clf")
