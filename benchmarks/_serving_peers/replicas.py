"""``serving.py --kill-replica``: one of two Lepton replicas that share a port (SO_REUSEPORT: the
kernel spreads connections between them) is killed with SIGKILL under load; every failed request
is counted, and the time until a new replica is ready again is measured.

What restarts it:
- by default, the control plane's deployment supervisor: a throwaway ``lepton up`` on loopback,
  the model registered, ``deployments.create(replicas=2)`` with its inference token (the default;
  the load sends it), and the supervisor restarts the crashed replica with its backoff (1 s after
  a first crash).
- with ``--standalone``, two ``python -m lepton.serving --reuse-port`` processes and this script
  as the supervisor: it polls the victim's process and starts a new one the moment it exited (no
  backoff). That measures the data plane alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    row = data["x"][0]
    body = ('{"inputs": [[' + ", ".join(str(float(v)) for v in row) + "]]}").encode()
    seconds = args.seconds if args.quick else max(args.seconds, SECONDS)
    kill_at = min(KILL_AT_S, seconds / 3)
    with _supervised(workdir, data) if not args.standalone else _standalone(workdir) as pair:
        url, headers, kill_and_restart, restarted_by = pair
        print(
            f"two replicas at {url}; load c={CONCURRENCY} for {seconds:.0f} s, SIGKILL one "
            f"at {kill_at:.0f} s; restarted by {restarted_by}",
            flush=True,
        )
        outcome: dict[str, load.Load] = {}
        runner = threading.Thread(
            target=lambda: outcome.update(
                result=load.run(client, url, body, CONCURRENCY, seconds, headers)
            )
        )
        runner.start()
        time.sleep(kill_at)
        restarted_s = kill_and_restart()
        runner.join()
    result = outcome["result"]
    total = result.requests + result.errors
    rate = result.errors / total if total else 1.0
    print(
        f"requests {total}, failed {result.errors} ({100 * rate:.3f}%), replica ready again "
        f"{restarted_s:.2f} s after the kill; target < 0.1%: {'met' if rate < TARGET else 'MISSED'}"
    )
    return {
        "mode": "kill-replica",
        "client": load.client_name(client),
        "restarted_by": restarted_by,
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


Pair = tuple[str, dict[str, str], Callable[[], float], str]


@contextmanager
def _supervised(workdir: Path, data: dict[str, Any]) -> Iterator[Pair]:
    from training import Server as ControlPlane

    home = workdir / "home"
    home.mkdir()
    plane = ControlPlane(home)
    try:
        api = plane.client
        api.models.register("bench-lr", data["models"]["lr"])
        created = api.deployments.create("bench-lr", replicas=2, wait_timeout_s=START_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {created.token}"}

        def kill_and_restart() -> float:
            victim = api.deployments.get(created.name).replica_states[0]
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
            while time.monotonic() - killed < START_TIMEOUT_S:
                states = api.deployments.get(created.name).replica_states
                back = [r for r in states if r.id == victim.id and r.pid not in (None, victim.pid)]
                if back and back[0].state == "ready":
                    return time.monotonic() - killed
                time.sleep(0.05)
            raise RuntimeError(f"replica {victim.id} was not restarted in {START_TIMEOUT_S} s")

        yield created.url + "/predict", headers, kill_and_restart, "the deployment supervisor"
        api.deployments.delete(created.name)
    finally:
        plane.stop()


@contextmanager
def _standalone(workdir: Path) -> Iterator[Pair]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    argv = [sys.executable, "-m", "lepton.serving", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--model-dir", str(workdir / "lr"), "--public", "--reuse-port"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    env["LEPTON_HOME"] = str(workdir / "lepton-home")

    def replica(n: int) -> Server:
        server = Server(argv, env, workdir, workdir / f"replica-{n}.log", url)
        server.wait_line("ready http", START_TIMEOUT_S)
        return server

    replicas = [replica(0), replica(1)]

    def kill_and_restart() -> float:
        victim = replicas[0]
        os.killpg(victim.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        while victim.process.poll() is None:  # a supervisor's view: wait for the exit
            time.sleep(0.01)
        victim.stop()
        replicas[0] = replica(2)
        return time.monotonic() - killed

    try:
        yield url, {}, kill_and_restart, "this script (standalone: restart on exit, no backoff)"
    finally:
        for server in replicas:
            server.stop()
