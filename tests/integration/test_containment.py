"""User code is contained, with real processes: a script job and a photon replica each try to
read the encryption key, the credentials file, the database, another job's folder and the
invoking user's home, and look for the control plane's secrets in their environment. All of it
fails, and the same script still trains and registers its model."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pandas as pd
import pytest

from lepton import Client
from lepton.schemas import JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

JOB_TIMEOUT_S = 150.0
SECRET_ENV = {
    "LEPTON_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    "AWS_SECRET_ACCESS_KEY": "aws-secret-of-the-control-plane",
}

# Reads everything it must not, and says what it got, as one JSON line.
PROBE = """
import json, os, pathlib

def probe(home, other_job):
    targets = {
        "key": home / "encryption.key",
        "credentials": home / "credentials.json",
        "database": home / "lepton.db",
        "other job": other_job,
        "user home": pathlib.Path(USER_HOME),
        "user's file": pathlib.Path(USER_HOME) / ".lepton-containment-probe",
    }
    found = {}
    for what, path in targets.items():
        try:
            found[what] = sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()[:40].hex()
        except OSError as exc:
            found[what] = None
    secrets = sorted(
        k for k, v in os.environ.items()
        if k in ("LEPTON_ENCRYPTION_KEY", "LEPTON_DATABASE_URL", "AWS_SECRET_ACCESS_KEY")
        or "aws-secret-of-the-control-plane" in v
    )
    return {"found": found, "secrets": secrets, "uid": os.getuid()}
"""


def _runtime_in_home() -> set[str]:
    """What of the user's home a contained Python is shown: the interpreter's own folders
    (a pyenv or venv there), read-only, and nothing else."""
    home = Path.home().resolve()
    shown = set()
    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path):
        real = Path(path).resolve() if path else home
        if real != home and real.is_relative_to(home):
            shown.add(real.relative_to(home).parts[0])
    return shown


def _leaks(report: dict[str, object]) -> dict[str, object]:
    found = report["found"]
    assert isinstance(found, dict)
    if isinstance(found["user home"], list):
        found["user home"] = sorted(set(found["user home"]) - _runtime_in_home())
    leaked = {what: got for what, got in found.items() if got not in (None, [])}
    if report["secrets"]:
        leaked["environment"] = report["secrets"]
    return leaked


@pytest.fixture(autouse=True)
def users_file() -> Iterator[None]:
    """A private file in the invoking user's home, which user code must not read."""
    path = Path.home() / ".lepton-containment-probe"
    path.write_text("the user's own secret")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture
def server(servers: ServerFactory) -> ServerProcess:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it")
    return servers(env={**SECRET_ENV, "LEPTON_SANDBOX": "required"})


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, settings=Settings(home=Path("/nonexistent"))) as c:
        yield c


def test_lepton_up_says_which_containment_is_active(server: ServerProcess) -> None:
    assert "bubblewrap sandbox" in server.output


def test_a_script_job_sees_no_secret_and_still_registers_its_model(
    client: Client, server: ServerProcess, tmp_path: Path
) -> None:
    other = server.home / "jobs" / "someone-else"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("another job's private file")
    script = tmp_path / "train.py"
    script.write_text(
        PROBE.replace("USER_HOME", repr(str(Path.home())))
        + textwrap.dedent(
            f"""
            import lepton
            from sklearn.linear_model import LogisticRegression

            report = probe(pathlib.Path({str(server.home)!r}), pathlib.Path({str(other)!r}))
            print("PROBE " + json.dumps(report), flush=True)
            frame = lepton.load_dataset()
            X, y = frame.drop(columns="label"), frame["label"]
            lepton.save_model(LogisticRegression().fit(X, y))
            """
        )
    )
    frame = pd.DataFrame(
        {"a": range(60), "b": [i % 3 for i in range(60)], "label": ["yes", "no"] * 30}
    )
    client.datasets.push(frame, name="toy", target="label")

    job = client.jobs.run_script(script, dataset="toy")
    done = client.jobs.wait(job.id, timeout_s=JOB_TIMEOUT_S)

    log = client.jobs.logs(job.id, 0).text
    assert done.state == JobState.succeeded, log
    line = next(x for x in log.splitlines() if x.startswith("PROBE "))
    report = json.loads(line.removeprefix("PROBE "))
    assert _leaks(report) == {}
    assert report["uid"] == 65534
    registered = [m.latest for m in client.models.list() if m.latest and m.latest.job == job.id]
    assert len(registered) == 1, "the contained job registered no model"


def test_a_photon_replica_sees_no_secret(
    client: Client, server: ServerProcess, tmp_path: Path
) -> None:
    other = server.home / "jobs" / "someone-else"
    other.mkdir(parents=True, exist_ok=True)
    (other / "notes.txt").write_text("private")
    folder = tmp_path / "prober"
    folder.mkdir()
    (folder / "prober.py").write_text(
        PROBE.replace("USER_HOME", repr(str(Path.home())))
        + textwrap.dedent(
            f"""
            from lepton.photon import Photon


            class Prober(Photon):
                @Photon.handler
                def report(self) -> dict:
                    return probe(pathlib.Path({str(server.home)!r}), pathlib.Path({str(other)!r}))
            """
        )
    )
    client.photons.push(folder, entry="prober.py:Prober", name="prober")
    created = client.deployments.create(photon="prober", public=True, wait_timeout_s=120)
    try:
        answer = httpx.post(f"{created.url}/report", json={}, timeout=30)
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert _leaks(report) == {}
        assert report["uid"] == 65534
    finally:
        client.deployments.delete(created.name)


def test_required_refuses_to_start_without_a_sandbox(
    servers: ServerFactory, tmp_path: Path
) -> None:
    # A PATH without bwrap stands for a machine without bubblewrap.
    bare = tmp_path / "bin"
    bare.mkdir()
    server = servers("bare", start=False, env={"LEPTON_SANDBOX": "required", "PATH": str(bare)})
    proc = server.launch()
    assert proc.wait(timeout=60) != 0
    server.wait()
    assert "bubblewrap" in server.errors + server.output
    assert "Traceback" not in server.errors
