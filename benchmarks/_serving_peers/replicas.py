"""``serving.py --kill-replica``: two Lepton replicas share one port (SO_REUSEPORT, so the kernel
spreads connections between them); one is killed with SIGKILL under load and restarted; every
failed request is counted.

What restarts it: in this standalone mode the benchmark itself plays the supervisor. It polls the
replica's process, and the moment it has exited it starts a new one with the same arguments (no
backoff, since this is the first crash). The control plane's deployment supervisor does the same
job in ``lepton deploy``; this measures the data plane: how many requests a crash costs while the
other replica carries the load.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import load
from process import START_TIMEOUT_S, Server
from startup import free_port

CONCURRENCY = 64
SECONDS = 15.0
KILL_AT_S = 5.0
TARGET = 0.001  # under 0.1% of requests may fail


def kill_replica(
    args: Any, client: str, workdir: Path, train: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    data = train(workdir)
    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    argv = [sys.executable, "-m", "lepton.serving", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--model-dir", str(workdir / "lr"), "--public", "--reuse-port"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    env["LEPTON_HOME"] = str(workdir / "lepton-home")
    body = ('{"inputs": [[' + ", ".join(str(float(v)) for v in data["x"][0]) + "]]}").encode()
    seconds = args.seconds if args.quick else max(args.seconds, SECONDS)
    kill_at = min(KILL_AT_S, seconds / 3)

    def replica(n: int) -> Server:
        server = Server(argv, env, workdir, workdir / f"replica-{n}.log", url)
        server.wait_line("ready http", START_TIMEOUT_S)
        return server

    replicas = [replica(0), replica(1)]
    print(
        f"two replicas on port {port}; load c={CONCURRENCY} for {seconds:.0f} s, "
        f"SIGKILL replica 0 at {kill_at:.0f} s",
        flush=True,
    )
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(result=load.run(client, url, body, CONCURRENCY, seconds))
    )
    try:
        runner.start()
        time.sleep(kill_at)
        victim = replicas[0]
        os.killpg(victim.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        while victim.process.poll() is None:  # the supervisor's view: wait for the exit
            time.sleep(0.01)
        victim.stop()
        replicas[0] = replica(2)
        restarted_s = time.monotonic() - killed
        runner.join()
    finally:
        for server in replicas:
            server.stop()
    result: load.Load = outcome["result"]
    total = result.requests + result.errors
    rate = result.errors / total if total else 1.0
    print(
        f"requests {total}, failed {result.errors} ({100 * rate:.3f}%), "
        f"replica ready again {restarted_s:.2f} s after the kill; target < 0.1%: "
        f"{'met' if rate < TARGET else 'MISSED'}"
    )
    return {
        "mode": "kill-replica",
        "client": load.client_name(client),
        "restarted_by": "the benchmark script (standalone supervisor: restart on exit, no backoff)",
        "concurrency": CONCURRENCY,
        "seconds": result.seconds,
        "killed_at_s": kill_at,
        "requests": total,
        "failed": result.errors,
        "failed_fraction": rate,
        "restart_to_ready_s": restarted_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "target": {"failed_fraction_below": TARGET, "met": rate < TARGET},
    }
