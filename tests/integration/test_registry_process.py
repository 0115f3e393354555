"""Models cross process boundaries intact: a model trained by a job runner (a process of its
own) or registered by one SDK process loads in a fresh ``python -c`` process and predicts exactly
what the original did, for every flavour."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from lepton import Client
from lepton.errors import LeptonError
from lepton.schemas import JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

JOB_TIMEOUT_S = 180  # a runner imports scikit-learn on a loaded 2-core machine

# Loads REF in a new process and prints its predictions (and probabilities) for the rows of a
# Parquet file as JSON (Parquet and repr-exact JSON floats: no digit is lost on the way).
LOADER = """
import json, sys
import numpy as np, pandas as pd
from lepton import Client
from lepton.errors import LeptonError
ref, rows = sys.argv[1], pd.read_parquet(sys.argv[2])
model = Client().models.load(ref)
out = {"predict": np.asarray(model.predict(rows)).tolist()}
if model.is_classifier:
    out["proba"] = model.predict_proba(rows).tolist()
print(json.dumps(out))
"""


def load_elsewhere(server: ServerProcess, ref: str, rows: pd.DataFrame) -> dict[str, list[object]]:
    path = server.home.parent / f"rows-{len(rows)}.parquet"
    rows.to_parquet(path)
    done = subprocess.run(
        [sys.executable, "-c", LOADER, ref, str(path)],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, list[object]] = json.loads(done.stdout)
    return loaded


@pytest.fixture
def client(module_server: ServerProcess) -> Iterator[Client]:
    settings = Settings(home=Path("/nonexistent/lepton"))
    with Client(module_server.url, module_server.token, settings=settings) as c:
        yield c


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "colour": colour, "label": np.where(x1 + x2 > 0, "yes", "no")}
    )


def test_a_model_trained_by_a_job_predicts_the_same_in_another_process(
    client: Client, module_server: ServerProcess
) -> None:
    client.datasets.push(frame(300, 0), name="toy", target="label")
    job = client.jobs.train("toy", algorithm="random_forest", params={"n_estimators": 50})
    done = client.jobs.wait(job.id, timeout_s=JOB_TIMEOUT_S, poll_s=0.2)
    assert done.state == JobState.succeeded, done.error
    rows = frame(50, 1).drop(columns="label")

    here = client.models.load("toy@1")
    there = load_elsewhere(module_server, "toy@1", rows)

    assert there["predict"] == here.predict(rows).tolist()
    assert np.array_equal(np.asarray(there["proba"]), here.predict_proba(rows))
    [evaluation] = client.models.evaluations("toy@1")
    assert evaluation.split == "test" and set(evaluation.result["plots"]) == {
        "confusion_matrix",
        "roc",
    }


def test_models_brought_in_predict_the_same_in_another_process(
    client: Client, module_server: ServerProcess, tmp_path: Path
) -> None:
    import torch
    from sklearn.ensemble import GradientBoostingClassifier

    data = frame(200, 2)
    X, y = data[["x1", "x2"]], data["label"]
    boosted = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y)
    client.models.register("boosted", boosted, description="Byte-exact across processes.")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    client.models.register("net", net)
    rows = frame(40, 3)[["x1", "x2"]]

    there = load_elsewhere(module_server, "boosted", rows)
    assert there["predict"] == boosted.predict(rows).tolist()
    assert np.array_equal(np.asarray(there["proba"]), boosted.predict_proba(rows))

    there = load_elsewhere(module_server, "net@1", rows)
    with torch.no_grad(), warnings.catch_warnings():
        expected = net(torch.tensor(rows.to_numpy(), dtype=torch.float32)).numpy()[:, 0]
    # ONNX Runtime and PyTorch order float32 sums differently: equal to the last few ulps.
    np.testing.assert_allclose(np.asarray(there["predict"], dtype=np.float32), expected, rtol=1e-5)
    # The registered graph itself is exactly the same function here and there.
    assert there["predict"] == client.models.load("net@1").predict(rows).tolist()


def test_a_damaged_stored_artifact_is_refused_on_load_and_nothing_is_written(
    client: Client, module_server: ServerProcess, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    data = frame(60, 4)
    model = LogisticRegression().fit(data[["x1", "x2"]], data["label"])
    version = client.models.register("damaged", model)
    [stored] = (module_server.home / "blobs").rglob(version.artifact_digest)
    damaged = bytearray(stored.read_bytes())
    damaged[-20] ^= 0xFF  # one flipped bit in the last encrypted chunk
    stored.write_bytes(bytes(damaged))

    with pytest.raises(LeptonError):
        client.models.load("damaged@1")
    with pytest.raises(LeptonError):
        client.models.pull("damaged@1", tmp_path / "damaged.zip")
    assert list(tmp_path.iterdir()) == []
