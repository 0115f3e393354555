"""Every script in examples/ runs (in its quick mode where it has one) against a real control
plane, prints what its steps promise, and leaves no deployment behind. The job examples run
whole: they are the training scripts users start from."""

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

EXAMPLES = sorted(
    p for p in (Path(__file__).parents[2] / "examples").glob("*.py") if not p.name.startswith("_")
)
QUICK = {"train.py", "quickstart.py", "mnist.py"}  # the others have no --quick: they run whole

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
    "keras_mnist.py": [
        r"job registered keras-mnist@\d+ \(onnx, classification\): accuracy 0\.9[5-9]\d\d",
        r"card: Mean absolute saliency per predicted class by occlusion of a 7 x 7 grid of "
        r"windows over 64 images given at registration",
        r"tracked metrics: accuracy, loss, val_accuracy, val_loss",
        r"the deployment read (19[0-9]|200) of 200 held-out digits right",
        r"20 of 20 digits uploaded as PNG got the same answer as their arrays",
        r"explained its answer \d by occlusion",
        r"removed deployment keras-mnist",
    ],
    "torch_tabular.py": [
        r"job registered cancer-torch@\d+ \(onnx, classification\): accuracy 0\.9\d{3}",
        r"card: Mean absolute attribution by permutation SHAP over \d+ rows",
        r"tracked metrics: loss",
        r"the deployment got (\d+) of 114 held-out tumours right",
        r"explained by permutation_shap: ",
        r"removed deployment cancer-torch",
    ],
    "sklearn_pipeline.py": [
        r"job registered diabetes-pipeline@\d+ \(sklearn, regression\): mae \d+\.\d{4}",
        r"the deployment's held-out MAE is (\d+\.\d) \(the job measured \1\)",
        r"explained by \w+_shap: ",
        r"removed deployment diabetes-pipeline",
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
        [sys.executable, str(script), *(["--quick"] if script.name in QUICK else [])],
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
