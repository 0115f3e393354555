"""benchmarks/serving.py keeps working: its quick mode runs Lepton's replica runtime, the no-op
ceiling and FastAPI side by side, and writes the report the full run writes.

No timing is asserted (these machines are shared and noisy); what is asserted is what a reader of
the report relies on: every server was timed, answered the in-process predictions, and Lepton
failed no request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "serving.py"
CLIENTS = [
    "asyncio",
    pytest.param(
        "wrk",
        marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
    ),
]


def run_quick(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path / "serving.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--seconds", "1", "--json", str(out), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", CLIENTS)
def test_quick_run_reports_every_server(tmp_path: Path, client: str) -> None:
    done, report = run_quick(tmp_path, "--client", client)

    assert report["quick"] is True
    assert report["client"].startswith(client)
    assert f"load generator: {report['client']}" in done.stdout
    rows = {(r["server"], r["model"]): r for r in report["servers"]}
    assert set(rows) == {
        ("lepton/defaults", "lr"),
        ("lepton/defaults", "rf"),
        ("fastapi/1 worker", "lr"),
        ("fastapi/1 worker", "rf"),
        ("noop", "lr"),
    }
    for (server, model), row in rows.items():
        assert row["status"] == "ok", (server, model, row["status"])
        assert set(row["levels"]) == {"1", "32"}
        for level in row["levels"].values():
            assert level["requests"] > 0
            assert level["p50_ms"] <= level["p99_ms"]
        if server != "noop":
            assert row["predictions_match"] is True
    for model in ("lr", "rf"):
        lepton = rows[("lepton/defaults", model)]
        assert [level["errors"] for level in lepton["levels"].values()] == [0, 0]
        # Every ratio the report prints is there, for both levels and both ceilings.
        for level in ("1", "32"):
            assert {
                "vs noop",
                "vs fastapi/1 worker",
                "of in-process",
                "of combined ceiling",
                "cpu per request, fastapi/1 worker / lepton",
            } <= set(report["ratios"][model][level])
        assert set(report["in_process"][model]["rows_per_s"]) == {"1", "64", "256"}
    assert "ahead of every peer at every level" in report["targets"]
    assert "Targets:" in done.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("mode", "restarter"),
    [([], "the deployment supervisor"), (["--standalone"], "this script")],
    ids=["supervisor", "standalone"],
)
def test_kill_replica_counts_failed_requests(
    tmp_path: Path, mode: list[str], restarter: str
) -> None:
    done, report = run_quick(
        tmp_path, "--kill-replica", *mode, "--client", "asyncio", "--seconds", "6"
    )

    assert report["mode"] == "kill-replica"
    assert report["requests"] > 0
    assert 0 <= report["failed"] <= report["requests"]
    assert report["failed_fraction"] == pytest.approx(report["failed"] / report["requests"])
    # Only the killed replica's connections may fail: the other one carries the load.
    assert report["failed_fraction"] < 0.05
    assert report["restart_to_ready_s"] > 0
    assert report["restarted_by"].startswith(restarter)
    assert "replica ready again" in done.stdout


@pytest.mark.timeout(300)
def test_the_gateway_section_times_each_path_and_the_cold_start(tmp_path: Path) -> None:
    done, report = run_quick(tmp_path, "--gateway", "--client", "asyncio")

    gateway = report["gateway"]
    assert report["mode"] == "gateway" and "fake" in gateway["control_plane"]
    assert {"direct", "gateway"} <= set(gateway["paths"])  # haproxy too where it is installed
    if "haproxy" not in gateway["paths"]:
        assert "haproxy: not installed (apt-get install haproxy); skipped" in done.stdout
    assert set(gateway["levels"]) == {"1", "32"}
    for level in gateway["levels"].values():
        assert set(level) == set(gateway["paths"])
        assert all(row["errors"] == 0 and row["rps"] > 0 for row in level.values()), level
    # The gateway answered everything it was sent (checks and warm-ups included) and the held
    # requests of the cold starts were answered, not refused.
    assert set(gateway["gateway_counters"]["status"]) == {"200"}
    cold = gateway["cold_start"]
    assert cold["runs"] == 2 and len(cold["samples"]) == 2
    for sample in cold["samples"]:
        assert 0 < sample["spawn_to_ready_s"] < sample["first_answer_s"]
    assert "gateway >= 0.7 of direct at c=32" in done.stdout
