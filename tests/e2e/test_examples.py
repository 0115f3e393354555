"""Every script in examples/ runs, in its quick mode, against a real control plane, prints what
its steps promise, and leaves no deployment behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lepton import Client

if TYPE_CHECKING:
    from conftest import Cli, ServerProcess

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))

# What each script must print: one pattern per step a user would look for.
PROMISES = {
    "train.py": [r"test accuracy \d\.\d{4}"],
    "quickstart.py": [
        r"trained breast-cancer@\d+: \w+, test accuracy \d\.\d{4}",
        r"curl -X POST http://127\.0\.0\.1:\d+/predict -H 'Authorization: Bearer lep_",
        r"predicted (benign|malignant) ",
        r"base value -?\d\.\d{4} \+ attributions = (-?\d\.\d{4}), output \1",
        r"removed deployment quickstart",
    ],
    "mnist.py": [
        r"trained mnist@\d+: test accuracy \d\.\d{4}",
        r"read 8 digits: predicted \[",
        r"saliency overlay written to (\S+)",
        r"removed deployment mnist-example",
    ],
}


def test_every_example_has_its_promises() -> None:
    assert sorted(PROMISES) == [p.name for p in EXAMPLES]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, lepton: Cli, server: ServerProcess, tmp_path: Path) -> None:
    # As the user who ran `lepton up` on this machine: the saved credentials are all it needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    env["LEPTON_HOME"] = str(lepton.home)
    env["TMPDIR"] = str(tmp_path)  # where a script writes its pictures by default
    done = subprocess.run(
        [sys.executable, str(script), "--quick"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for promise in PROMISES[script.name]:
        assert re.search(promise, done.stdout), (promise, done.stdout[-2000:])
    picture = re.search(r"saliency overlay written to (\S+)", done.stdout)
    if picture is not None:
        assert Path(picture.group(1)).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Client(server.url, server.token) as client:
        assert client.deployments.list() == []
