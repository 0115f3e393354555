"""A bounded chaos run: a mixed workload while the control plane is SIGKILLed and restarted.

Opt-in (``pytest -m chaos``, or ``LEPTON_CHAOS=1``; ``.ci/run`` sets it): about three minutes on
two cores. A client thread pushes small datasets, deletes some, submits train and script jobs
and calls a two-replica deployment, recording what the server acknowledged, while the control
plane is killed ``KILLS`` times (and restarted on the same home and port) and one replica is
killed. Afterwards:

- every acknowledged push is there with its rows, and every acknowledged delete is gone;
- no stored bytes without a reference, no temp objects, no spool folder;
- no zombie child of the control plane;
- every job ended or is running (none stuck queued with free slots), and they all end;
- the deployment serves, with every replica ready.

The figures (operations, kills, failures the client saw, debris found) are printed as one
``chaos:`` line.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pandas as pd
import pytest
from test_debris import zombies
from test_deployments_process import ROW, alive, cleanup, pids, register_model, wait_for

from lepton import Client
from lepton.errors import Conflict, LeptonError
from lepton.schemas import JobState
from lepton.server.app import open_control
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

KILLS = 3
SECONDS_BETWEEN_KILLS = (6.0, 10.0)
SETTLE_S = 240.0  # a bound on waits, not a measurement
SCRIPT = "import time, lepton\nfor step in range(4):\n    lepton.log(step, loss=1.0 / (step + 1))\n    time.sleep(0.5)\n"
ENDED = {JobState.succeeded, JobState.failed, JobState.cancelled}


@dataclass
class Ledger:
    """What the server acknowledged, and what the client saw fail."""

    pushed: dict[str, int] = field(default_factory=dict)  # ref -> rows
    deleted: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)  # a delete whose answer was lost
    refused: int = 0  # deletes of a dataset a job still reads (409), as they should be
    jobs: list[str] = field(default_factory=list)
    operations: int = 0
    predictions: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    def failed(self, what: str, exc: BaseException) -> None:
        # A refused connection, a cut answer or a 503 while the server is down or starting is
        # what a client sees across a kill; anything else is a bug.
        transient = isinstance(exc, httpx.TransportError) or (
            isinstance(exc, LeptonError)
            and exc.code in ("connection_failed", "unavailable", "overloaded")
        )
        if transient:
            self.failures[what] = self.failures.get(what, 0) + 1
        else:
            self.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")


def frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4))
    data = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    data["label"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    return data


def workload(client: Client, url: str, ledger: Ledger, stop: threading.Event, tmp: Path) -> None:
    rng = random.Random(20261202)
    script = tmp / "steps.py"
    script.write_text(SCRIPT)
    n = 0
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            n += 1
            ref = ""
            ledger.operations += 1
            what = rng.choice(["push", "push", "predict", "predict", "predict", "delete", "job"])
            try:
                if what == "push":
                    version = client.datasets.push(frame(n), name=f"d{n}", target="label")
                    ledger.pushed[version.ref] = version.rows
                elif what == "delete" and ledger.pushed:
                    # Not one whose delete was cut: it may be gone already (a NotFound now).
                    candidates = set(ledger.pushed) - ledger.deleted - ledger.uncertain
                    ref = rng.choice(sorted(candidates) or [""])
                    if ref:
                        ledger.uncertain.add(ref)
                        client.datasets.delete(ref.split("@")[0])
                        ledger.deleted.add(ref)
                        ledger.uncertain.discard(ref)
                elif what == "job":
                    live = set(ledger.pushed) - ledger.deleted - ledger.uncertain
                    if n % 3 == 0 and live:
                        job = client.jobs.train(
                            sorted(live)[-1], algorithm="logistic_regression", time_budget_s=30
                        )
                    else:
                        job = client.jobs.run_script(script)
                    ledger.jobs.append(job.id)
                else:
                    answer = http.post(f"{url}/predict", json={"rows": [ROW]})
                    if answer.status_code != 200:
                        raise httpx.TransportError(f"replica answered {answer.status_code}")
                    ledger.predictions += 1
            except Conflict:
                ledger.refused += 1
                ledger.uncertain.discard(ref)
            except (LeptonError, httpx.TransportError) as exc:
                ledger.failed(what, exc)
            except Exception as exc:  # a bug: recorded, and the test fails on it
                ledger.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            time.sleep(0.05)


def temp_objects(home: Path) -> int:
    tmp = home / "blobs" / "tmp"
    return sum(p.is_file() for p in tmp.rglob("*")) if tmp.exists() else 0


def unreferenced(home: Path) -> int:
    """Stored objects nothing refers to, in a stopped control plane's stores (erased)."""
    control = open_control(Settings(home=home))
    try:
        return control.content.sweep()
    finally:
        control.ctx.engine.dispose()


@pytest.fixture
def server(servers: ServerFactory) -> ServerProcess:
    return servers("chaos")


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, settings=Settings(home=Path("/nonexistent"))) as c:
        yield c


def test_a_control_plane_killed_under_a_mixed_workload_keeps_every_acknowledged_write(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    register_model(client)
    ledger = Ledger()
    stop = threading.Event()
    debris: dict[str, int] = {}
    with cleanup(client) as seen:
        created = client.deployments.create("clf", replicas=2, public=True)
        seen += pids(client.deployments.get("clf"))
        worker = threading.Thread(
            target=workload, args=(client, created.url, ledger, stop, tmp_path), daemon=True
        )
        worker.start()
        rng = random.Random(7)
        try:
            for kill in range(KILLS):
                time.sleep(rng.uniform(*SECONDS_BETWEEN_KILLS))
                replicas = pids(client.deployments.get("clf"))
                seen += replicas
                server.kill()
                spool = server.home / "work"
                debris[f"kill {kill + 1}"] = (
                    len(list(spool.iterdir())) if spool.exists() else 0
                ) + temp_objects(server.home)
                if kill == 1:  # one replica dies too, while nothing supervises it
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(replicas[0], signal.SIGKILL)
                server.start()
            time.sleep(rng.uniform(*SECONDS_BETWEEN_KILLS))
        finally:
            stop.set()
            worker.join(timeout=60)

        # Every job ends (the ones cut by a kill are retried or failed, none stuck).
        wait_for(
            lambda: all(client.jobs.get(j).state in ENDED for j in ledger.jobs),
            "every job to end",
            SETTLE_S,
        )
        jobs = [client.jobs.get(j) for j in ledger.jobs]
        wait_for(lambda: client.deployments.get("clf").state == "ready", "the deployment", SETTLE_S)
        after = client.deployments.get("clf")
        seen += pids(after)
        served = httpx.post(f"{created.url}/predict", json={"rows": [ROW]}, timeout=10)

        listed = {v.ref for d in client.datasets.list() for v in client.datasets.versions(d.name)}
        for ref, rows in ledger.pushed.items():
            if ref in ledger.deleted or ref in ledger.uncertain:
                continue
            assert client.datasets.get(ref).rows == rows, ref
        assert not (ledger.deleted & listed), "an acknowledged delete came back"
        assert server.proc is not None
        # A runner exits just after it reports its end, and is waited for on the next
        # scheduler pass (every 0.5 s): only a zombie that stays is one left behind.
        pid = server.proc.pid
        with contextlib.suppress(AssertionError):
            wait_for(lambda: zombies(pid) == [], "the last children to be waited for", 15)
        assert zombies(pid) == []
        spool = server.home / "work"
        in_flight = list(spool.iterdir()) if spool.exists() else []
        temp_left = temp_objects(server.home)
    server.stop()
    erased = unreferenced(server.home)

    states = {s.value: sum(j.state is s for j in jobs) for s in JobState}
    print(
        f"\nchaos: {ledger.operations} operations ({len(ledger.pushed)} pushes, "
        f"{len(ledger.deleted)} deletes, {ledger.refused} deletes refused while in use, "
        f"{len(ledger.jobs)} jobs, {ledger.predictions} "
        f"predictions), {KILLS} control-plane kills, 1 replica kill; failures seen by the "
        f"client: {ledger.failures or 'none'}; jobs: "
        f"{ {k: v for k, v in states.items() if v} }; debris: {debris}, "
        f"after settling: spool {len(in_flight)}, temp objects {temp_left}, unreferenced "
        f"objects {erased}; failed jobs: {[j.error for j in jobs if j.state is JobState.failed]}"
    )
    assert ledger.unexpected == []
    assert ledger.pushed and ledger.jobs and ledger.predictions
    assert served.status_code == 200
    assert after.ready_replicas == after.replicas == 2
    assert in_flight == [] and temp_left == 0
    assert erased == 0, f"{erased} stored objects had no reference"
    assert not any(alive(pid) for pid in set(seen))
