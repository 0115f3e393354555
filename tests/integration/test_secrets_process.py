"""Secrets and variables reach user code, with real processes: a script job and a photon
replica, each contained as ``lepton up`` contains them (bubblewrap where it works), get the
values they name in their environment, and the logs the API serves show ``***`` where the
code printed a value."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from lepton import Client
from lepton.schemas import JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

JOB_TIMEOUT_S = 150.0
VALUE = "hf_live-9f8e7d6c5b4a"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, settings=Settings(home=Path("/nonexistent"))) as c:
        c.secrets.create("HF_TOKEN", VALUE)
        yield c


def test_a_script_job_sees_its_secret_and_its_served_log_shows_stars(
    client: Client, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import hashlib, os
            value = os.environ["HF_TOKEN"]
            print("token:", value, flush=True)
            print("alias sha:", hashlib.sha256(os.environ["MY_TOKEN"].encode()).hexdigest())
            print("mode:", os.environ["MODE"])
            """
        )
    )

    job = client.jobs.run_script(
        script, env={"MODE": "eval"}, secrets=["HF_TOKEN", "MY_TOKEN=HF_TOKEN"]
    )
    done = client.jobs.wait(job.id, timeout_s=JOB_TIMEOUT_S)

    log = "".join(text for _, text in client.jobs.follow(job.id, poll_s=0.1))
    assert done.state == JobState.succeeded, log
    assert "token: ***\n" in log and VALUE not in log
    assert f"alias sha: {_sha(VALUE)}\n" in log  # the process had the exact value
    assert "mode: eval\n" in log
    assert VALUE not in client.request("GET", f"/api/v1/jobs/{job.id}").text


def test_a_photon_replica_gets_its_variables_and_secrets(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "envy"
    folder.mkdir()
    (folder / "envy.py").write_text(
        textwrap.dedent(
            """
            import hashlib, os
            from lepton.photon import Photon


            class Envy(Photon):
                def init(self) -> None:
                    print("loaded with", os.environ["HF_TOKEN"], flush=True)

                @Photon.handler
                def report(self) -> dict:
                    return {
                        "mode": os.environ.get("MODE"),
                        "sha": hashlib.sha256(os.environ["TOKEN"].encode()).hexdigest(),
                    }
            """
        )
    )
    client.photons.push(folder, entry="envy.py:Envy", name="envy")

    created = client.deployments.create(
        photon="envy",
        public=True,
        env={"MODE": "serve"},
        secrets=["HF_TOKEN", "TOKEN=HF_TOKEN"],
        wait_timeout_s=120,
    )
    try:
        answer = httpx.post(f"{created.url}/report", json={}, timeout=30)
        log = client.deployments.logs(created.name).text
    finally:
        client.deployments.delete(created.name)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"mode": "serve", "sha": _sha(VALUE)}
    assert "loaded with ***" in log and VALUE not in log
