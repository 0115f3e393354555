"""Deploying through the CLI as a user does: ``lepton deploy`` prints a curl example that works,
``lepton deployment list|show|logs|scale|update|history|rollback|rm``, ``--public`` shown as
such, and a photon pushed with ``lepton photon push`` and served with ``lepton deploy --photon``.

Every deployment a test makes is removed by that test (``rm`` waits until its replicas have
stopped), so no replica outlives the module's server.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import httpx
import pytest

from lepton import Client
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import Cli, Result, ServerProcess


def _process_tests() -> ModuleType:
    # The model these tests deploy is made by the integration tests' helper; load that module
    # under a name of its own (as conftest.py loads the integration conftest).
    path = Path(__file__).parents[1] / "integration" / "test_deployments_process.py"
    spec = importlib.util.spec_from_file_location("lepton_deployment_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _process_tests()
register_model = _helpers.register_model
predicted = _helpers.predicted

# Replicas start in seconds, but several per test on a loaded 2-core machine outlast the
# suite's 120 s default.
pytestmark = pytest.mark.timeout(600)

TIMEOUT = 180  # deploy waits for replicas that import scikit-learn on a loaded 2-core machine


def ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    assert "Traceback" not in result.err + result.out, result.err
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    client = Client(server.url, server.token, settings=Settings(home=Path("/nonexistent")))
    register_model(client)
    register_model(client, flip=True)
    with _helpers.cleanup(client):  # kills any replica a failed test left behind
        yield client
    client.close()


def curl_of(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.strip().startswith("curl "))
    return shlex.split(line)


def call(curl: list[str]) -> httpx.Response:
    """Send the request a printed curl command describes."""
    url = next(part for part in curl if part.startswith("http://"))
    headers = dict(curl[i + 1].split(": ", 1) for i, part in enumerate(curl) if part == "-H")
    body = curl[curl.index("-d") + 1]
    return httpx.post(url, content=body, headers=headers, timeout=30)


def test_deploy_prints_a_curl_example_that_works_and_rm_revokes_it(
    lepton: Cli, client: Client
) -> None:
    deployed = ok(lepton("deploy", "clf@1", "--replicas", "2", timeout=TIMEOUT))

    assert "Inference token (shown only now" in deployed.out
    assert "Ready: 2 of 2 replica(s)." in deployed.out
    curl = curl_of(deployed.out)
    assert any(part.startswith("Authorization: Bearer lep_") for part in curl)
    answer = call(curl)
    assert answer.status_code == 200, answer.text
    # an example row with every one of the model's columns
    assert set(json.loads(curl[curl.index("-d") + 1])["rows"][0]) == set(_helpers.ROW)

    listed = ok(lepton("deployment", "list")).out
    assert re.search(r"clf\s+│\s+ready\s+│\s+clf@1\s+│\s+2/2", listed), listed
    shown = flat(ok(lepton("deployment", "show", "clf")).out)
    assert "2 of 2 ready, generation 1" in shown and "deployment:" in shown
    assert "[" in ok(lepton("deployment", "logs", "clf")).out  # replica-tagged lines

    ok(lepton("deployment", "rm", "clf", timeout=TIMEOUT))

    assert client.deployments.list() == []
    # The example goes through the gateway, which no longer knows the deployment.
    assert "/d/clf/predict" in " ".join(curl)
    gone = call(curl_of(deployed.out))
    assert gone.status_code == 404 and "no deployment answers at /d/clf/predict" in gone.text
    missing = lepton("deployment", "show", "clf")
    assert missing.code == 4 and "lepton deployment list" in missing.err


def test_scale_update_and_rollback_roll_between_versions(lepton: Cli, client: Client) -> None:
    ok(lepton("deploy", "clf@1", "--name", "rolling", "--public", timeout=TIMEOUT))
    try:
        ok(lepton("deployment", "scale", "rolling", "2"))
        updated = ok(lepton("deployment", "update", "rolling", "--model", "clf@2", timeout=TIMEOUT))
        assert "generation 2 serving clf@2" in flat(updated.out)
        assert "Rolled: 2 of 2 replica(s) ready." in updated.out
        deployment = client.deployments.get("rolling")

        def answer() -> object:
            r = httpx.post(f"{deployment.url}/predict", json={"rows": [_helpers.ROW]}, timeout=30)
            assert r.status_code == 200, r.text
            return predicted(r.json())

        assert answer() == 0  # version 2 flips the classes

        history = flat(ok(lepton("deployment", "history", "rolling")).out)
        assert re.search(r"2 \* │ clf@2 │ updated model", history), history
        assert re.search(r"1 │ clf@1 │ created", history), history
        back = flat(ok(lepton("deployment", "rollback", "rolling", timeout=TIMEOUT)).out)
        assert "rolled back to generation 1; generation 3 serving clf@1" in back
        assert "Rolled back: 2 of 2 replica(s) ready." in back
        assert "lepton deployment history rolling" in back
        assert answer() == 1

        missing = lepton("deployment", "rollback", "rolling", "--to", "9")
        assert missing.code == 4 and "Traceback" not in missing.err
        assert "no generation 9; its revisions are generations 1, 2, 3" in flat(missing.err)
        assert "lepton deployment history rolling" in flat(missing.err)
    finally:
        ok(lepton("deployment", "rm", "rolling", timeout=TIMEOUT))


def test_a_public_deployment_is_shown_as_public_everywhere(lepton: Cli) -> None:
    deployed = ok(lepton("deploy", "clf", "--name", "open", "--public", timeout=TIMEOUT))
    try:
        assert "PUBLIC" in deployed.out and "Bearer" not in deployed.out
        assert call(curl_of(deployed.out)).status_code == 200
        assert re.search(r"open\s+│.*PUBLIC", ok(lepton("deployment", "list")).out)
        assert "PUBLIC" in ok(lepton("deployment", "show", "open")).out
    finally:
        ok(lepton("deployment", "rm", "open", timeout=TIMEOUT))


def test_deploying_an_unknown_model_says_how_to_find_one(lepton: Cli) -> None:
    result = lepton("deploy", "lung")

    assert result.code == 4
    assert "model 'lung' does not exist" in flat(result.err) and "lepton model list" in result.err


def test_a_pushed_photon_deploys_and_answers(lepton: Cli, tmp_path: Path) -> None:
    source = tmp_path / "echo"
    source.mkdir()
    (source / "echo.py").write_text(
        "from lepton.photon import Photon\n\n\n"
        "class Echo(Photon):\n"
        "    @Photon.handler\n"
        "    def shout(self, text: str) -> str:\n"
        "        return text.upper()\n"
    )

    pushed = ok(lepton("photon", "push", str(source), "-m", "echo.py:Echo"))
    assert "Pushed photon echo@1" in pushed.out
    assert "echo.py:Echo" in ok(lepton("photon", "list")).out

    deployed = ok(lepton("deploy", "--photon", "echo", "--public", timeout=TIMEOUT))
    try:
        curl = curl_of(deployed.out)
        url = next(part for part in curl if part.startswith("http://"))
        assert url.endswith("/shout")
        r = httpx.post(url, json={"text": "hi"}, timeout=30)
        assert r.status_code == 200 and "HI" in r.text
        refused = lepton("photon", "rm", "echo")
        assert refused.code == 5 and "served by deployment" in flat(refused.err)
    finally:
        ok(lepton("deployment", "rm", "echo", timeout=TIMEOUT))
    ok(lepton("photon", "rm", "echo"))


def test_autoscaling_and_a_canary_from_the_cli(lepton: Cli, client: Client) -> None:
    deployed = ok(
        lepton(
            "deploy",
            "clf@1",
            "--name",
            "tide",
            "--public",
            "--min-replicas",
            "0",
            "--max-replicas",
            "3",
            "--target-inflight",
            "4",
            "--idle-timeout",
            "600",
            timeout=TIMEOUT,
        )
    )
    try:
        assert "/d/tide" in deployed.out and "its own port" in deployed.out
        shown = flat(ok(lepton("deployment", "show", "tide")).out)
        assert "autoscaling" in shown and "0 to 3 replicas" in shown  # a table cell wraps
        settings = json.loads(ok(lepton("deployment", "show", "tide", "--json")).out)
        assert settings["autoscaling"]["idle_timeout_s"] == 600
        assert settings["gateway_url"].endswith("/d/tide")
        refused = lepton("deployment", "update", "tide", "--min-replicas", "4")
        assert refused.code == 2 and "min_replicas (4) is above max_replicas (3)" in flat(
            refused.err
        )
        trial = flat(
            ok(lepton("deployment", "update", "tide", "--model", "clf@2", "--canary", "10")).out
        )
        assert "canary generation 2 serving clf@2 for 10% of the gateway's requests" in trial
        assert "lepton deployment promote tide" in trial
        shown = flat(ok(lepton("deployment", "show", "tide")).out)
        assert "canary" in shown and "generation 2 serving" in shown
        dropped = flat(ok(lepton("deployment", "rollback", "tide", timeout=TIMEOUT)).out)
        assert "canary generation 2 dropped; generation 1 serves clf@1" in dropped
        assert client.deployments.get("tide").canary is None
    finally:
        ok(lepton("deployment", "rm", "tide", timeout=TIMEOUT))
