"""Models brought from outside (scikit-learn, PyTorch, ONNX) and loading any flavour safely:
signatures are inferred and checked, and nothing an artifact holds is ever unpickled."""

from __future__ import annotations

import io
import itertools
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from starlette.testclient import TestClient

from lepton import Client
from lepton.control.plane import Control
from lepton.control.workspaces import FirstStart
from lepton.errors import InvalidRequest, LeptonError, NotFound
from lepton.registry.artifacts import pack, unpack
from lepton.registry.byo import prepare_model
from lepton.registry.flavours import load_model
from lepton.server.app import create_app
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import Platform


# One app serves a module (building one costs about a second); each test gets a workspace of
# its own, so tests see only their own models. test_registry.py imports these fixtures.


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, platform_class: type[Platform]
) -> Iterator[tuple[Platform, Control]]:
    seen: list[Any] = []

    def on_start(state: Control, first: FirstStart | None) -> None:
        seen.extend([state, first])

    home = tmp_path_factory.mktemp("registry") / "home"
    with TestClient(create_app(Settings(home=home), on_start=on_start, run_jobs=False)) as api:
        state, first = seen
        yield platform_class(api=api, admin=first.token), state


@pytest.fixture(scope="module")
def platform(served: tuple[Platform, Control]) -> Platform:
    return served[0]


@pytest.fixture(scope="module")
def state(served: tuple[Platform, Control]) -> Control:
    return served[1]


@pytest.fixture(scope="module")
def workspace_client(platform: Platform) -> Callable[[], Client]:
    """Makes a client of a new, empty workspace."""
    names = (f"registry-{n}" for n in itertools.count())
    return lambda: platform.client(platform.workspace(next(names)))


@pytest.fixture
def client(workspace_client: Callable[[], Client]) -> Client:
    return workspace_client()


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return X, data.target.to_numpy()


@pytest.fixture(scope="module")
def pipeline(iris: tuple[pd.DataFrame, np.ndarray]) -> Any:
    X, y = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


# --- scikit-learn ---------------------------------------------------------------------------


def test_a_pipeline_registers_with_its_inferred_signature_and_predicts_the_same(
    client: Client, pipeline: Any, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = iris
    version = client.models.register("iris", pipeline, description="Sort irises by petal size.")

    assert version.ref == "iris@1" and version.flavour == "sklearn"
    assert version.task == "classification"
    assert [c["name"] for c in version.signature["inputs"]] == list(X.columns)
    assert version.signature["outputs"]["classes"] == [0, 1, 2]
    assert version.description == "Sort irises by petal size."
    loaded = client.models.load("iris@1")
    assert loaded.is_classifier and loaded.classes == [0, 1, 2]
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    # Rows as dicts and plain arrays in signature order are the same input.
    rows = X.head(3).to_dict(orient="records")
    np.testing.assert_array_equal(loaded.predict(rows), pipeline.predict(X.head(3)))
    np.testing.assert_array_equal(loaded.predict(X.head(3).to_numpy()), pipeline.predict(X.head(3)))


def test_a_regressor_has_no_probabilities(client: Client) -> None:
    X = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(X, X.sum(axis=1))
    client.models.register("sums", model)

    loaded = client.models.load("sums")
    assert loaded.task == "regression" and not loaded.is_classifier
    np.testing.assert_allclose(loaded.predict([[1.0, 2.0]]), [3.0])
    with pytest.raises(InvalidRequest, match="no class probabilities"):
        loaded.predict_proba([[1.0, 2.0]])


def test_a_signature_that_contradicts_the_model_is_refused_and_nothing_is_registered(
    client: Client, pipeline: Any
) -> None:
    wrong_names = {"inputs": [{"name": n} for n in ("a", "b", "c", "d")]}
    with pytest.raises(InvalidRequest, match="fitted on columns"):
        client.models.register("iris", pipeline, signature=wrong_names)
    too_few = {"inputs": {"shape": [3], "dtype": "float64"}}
    with pytest.raises(InvalidRequest, match="does not match the model's real input"):
        client.models.register(
            "iris", LinearRegression().fit([[1, 2, 3, 4]] * 2, [1, 2]), signature=too_few
        )

    assert client.models.list() == []


def test_an_unfitted_estimator_is_refused(client: Client) -> None:
    with pytest.raises(InvalidRequest, match="not fitted"):
        client.models.register("raw", LogisticRegression())
    assert client.models.list() == []


def test_a_missing_input_column_is_named(client: Client, pipeline: Any, iris: Any) -> None:
    client.models.register("iris", pipeline)
    loaded = client.models.load("iris")

    with pytest.raises(InvalidRequest, match="lacks column 'petal_width'"):
        loaded.predict(iris[0].drop(columns="petal_width"))


# --- PyTorch and ONNX -----------------------------------------------------------------------


def _net() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_a_torch_module_is_exported_to_onnx_and_predicts_like_the_module(
    client: Client, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import torch

    net = _net()
    X = iris[0].to_numpy(dtype=np.float32, copy=True)
    signature = {
        "inputs": {"shape": [4], "dtype": "float32"},
        "outputs": {"classes": ["a", "b", "c"]},
    }
    version = client.models.register("net", net, signature=signature)

    assert version.flavour == "onnx" and version.task == "classification"
    loaded = client.models.load("net@1")
    with torch.no_grad():
        logits = net(torch.from_numpy(X)).numpy()
    expected = np.asarray(["a", "b", "c"], dtype=object)[logits.argmax(axis=1)]
    np.testing.assert_array_equal(loaded.predict(X), expected)
    proba = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-4, atol=1e-6)


def test_a_torch_signature_of_the_wrong_width_is_refused(client: Client) -> None:
    signature = {"inputs": {"shape": [5], "dtype": "float32"}, "outputs": {"classes": [0, 1, 2]}}
    with pytest.raises(InvalidRequest, match="does not match the model's real input"):
        client.models.register("net", _net(), signature=signature)
    wrong_classes = {"inputs": {"shape": [4]}, "outputs": {"classes": [0, 1]}}
    with pytest.raises(InvalidRequest, match="returns 3 scores"):
        client.models.register("net", _net(), signature=wrong_classes)
    assert client.models.list() == []


def test_an_onnx_file_registers_with_the_graphs_input_shape(client: Client, tmp_path: Path) -> None:
    import torch

    net = torch.nn.Linear(3, 1)
    path = tmp_path / "lin.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter warns it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 3),), str(path), dynamo=False, input_names=["x"])

    version = client.models.register("lin", path)

    assert version.signature["inputs"] == {"shape": [3], "dtype": "float32"}
    assert version.task == "regression"
    row = np.asarray([[1.0, 2.0, 3.0]], dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(row)).numpy()[:, 0]
    np.testing.assert_allclose(client.models.load("lin").predict(row), expected, rtol=1e-5)
    with pytest.raises(InvalidRequest, match="does not match"):
        client.models.register("lin", path, signature={"inputs": {"shape": [4]}})


# --- nothing is unpickled -------------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("protocol", [0, 4])
@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("model.skops", '{"flavour": "sklearn"}'),
        ("model.onnx", '{"flavour": "onnx"}'),
        ("model.skops", '{"algorithm": "logistic_regression"}'),
    ],
)
def test_a_pickle_disguised_as_a_model_file_is_refused_and_never_runs(
    tmp_path: Path, protocol: int, name: str, config: str
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker), protocol=protocol)
    packed = tmp_path / "model.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr(name, payload)

    with pytest.raises(LeptonError):
        directory = unpack(packed, tmp_path / "model")
        load_model(directory)  # protocol 0 has no magic bytes: the loader must refuse it

    assert not marker.exists()
    # The payload is live: unpickling it (what the registry never does) would create the file.
    pickle.loads(payload).close()
    assert marker.exists()


def test_the_server_refuses_a_disguised_pickle_and_registers_nothing(
    client: Client, tmp_path: Path
) -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("config.json", '{"flavour": "sklearn"}')
        archive.writestr("model.skops", pickle.dumps(_Payload(tmp_path / "pwned"), protocol=4))
    body = register_body(client.blobs.upload(packed.getvalue()).digest)

    with pytest.raises(InvalidRequest, match="looks like a pickle"):
        client.request("POST", "/api/v1/models/evil/versions", json=body)
    assert client.models.list() == []
    assert not (tmp_path / "pwned").exists()


def test_packing_refuses_a_pickle_whatever_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(pickle.dumps({"w": 1}, protocol=2))
    with pytest.raises(InvalidRequest, match="looks like a pickle"):
        pack(folder, tmp_path / "m.zip")


def test_a_prepared_folder_loads_without_the_registry(
    tmp_path: Path, pipeline: Any, iris: Any
) -> None:
    # What a serving replica does with an unpacked artifact: signature.json travels with it.
    prepare_model(pipeline, tmp_path, None)
    loaded = load_model(tmp_path)
    assert loaded.signature["outputs"]["task"] == "classification"
    np.testing.assert_array_equal(loaded.predict(iris[0]), pipeline.predict(iris[0]))


# --- artifacts whose bytes are not what was registered --------------------------------------


def register_body(digest: str) -> dict[str, Any]:
    """A raw registration of the packed model stored as ``digest``."""
    return {
        "artifact_digest": digest,
        "flavour": "sklearn",
        "algorithm": "x",
        "task": "classification",
        "signature": {},
    }


def test_an_artifact_that_was_never_uploaded_registers_nothing(client: Client) -> None:
    with pytest.raises(NotFound, match="was not uploaded"):
        client.request("POST", "/api/v1/models/ghost/versions", json=register_body("0" * 64))
    assert client.models.list() == []
