"""Models from Keras 3, XGBoost and LightGBM register in a safe format, load without the code
that made them, predict what the original predicts, and anything else is refused by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from test_registry_flavours import client, platform, served, state, workspace_client

from lepton import Client
from lepton.errors import InvalidRequest
from lepton.registry.artifacts import check_safe_file, unpack
from lepton.registry.byo import prepare_model
from lepton.registry.flavours import load_model

__all__ = ["client", "platform", "served", "state", "workspace_client"]  # fixtures, re-exported

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return X, data.target.to_numpy()


def _artifact_files(client: Client, ref: str, tmp_path: Path) -> set[str]:
    version = client.models.get(ref)
    archive = client.download(f"/api/v1/blobs/{version.artifact_digest}", tmp_path / "model.zip")
    unpack(archive, tmp_path / "unpacked")
    return {p.name for p in (tmp_path / "unpacked").iterdir()}


# --- Keras 3 ---------------------------------------------------------------------------------


def _keras_cnn(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_a_keras_model_registers_as_onnx_and_predicts_what_keras_predicts(
    client: Client, tmp_path: Path
) -> None:
    model = _keras_cnn()
    X = np.random.default_rng(1).random((16, 8, 8, 1), dtype=np.float32)
    expected = model.predict(X, verbose=0)

    version = client.models.register("cnn", model)

    assert version.flavour == "onnx" and version.task == "classification"
    assert version.signature["inputs"] == {"shape": [8, 8, 1], "dtype": "float32"}
    assert version.signature["outputs"]["classes"] == [0, 1, 2], "softmax over 3: classes 0-2"
    assert _artifact_files(client, "cnn@1", tmp_path) >= {"model.onnx", "config.json"}
    loaded = client.models.load("cnn@1")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X).astype(int), expected.argmax(axis=1))


def test_a_keras_binary_classifier_with_one_sigmoid_gives_two_class_probabilities(
    client: Client, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    X = iris[0].to_numpy(dtype=np.float32)
    p = model.predict(X, verbose=0)[:, 0]

    signature = {
        "inputs": [{"name": c} for c in iris[0].columns],
        "outputs": {"classes": ["no", "yes"]},
    }
    client.models.register("flower", model, signature=signature)

    loaded = client.models.load("flower@1")
    proba = loaded.predict_proba(iris[0])  # named columns, in any order the signature names
    np.testing.assert_allclose(proba[:, 1], p, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(loaded.predict(iris[0].head(3))) == ["yes" if v > 0.5 else "no" for v in p[:3]]


def test_a_keras_model_that_cannot_go_to_onnx_is_kept_as_keras_and_loads_in_safe_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    model = _keras_cnn()

    def no_converter(*args: Any, **kwargs: Any) -> None:
        raise ImportError("tf2onnx is not installed")  # as on a backend without a converter

    monkeypatch.setattr(type(model), "export", no_converter)
    folder = tmp_path / "model"
    folder.mkdir()
    flavour, _, task, _ = prepare_model(model, folder, None)

    assert (flavour, task) == ("keras", "classification")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.keras",
        "signature.json",
    ]
    X = np.random.default_rng(2).random((4, 8, 8, 1), dtype=np.float32)
    loaded = load_model(folder)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict(X, verbose=0), rtol=1e-5)

    lambda_model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(1)]
    )
    monkeypatch.setattr(type(lambda_model), "export", no_converter)
    other = tmp_path / "lambda"
    other.mkdir()
    with pytest.raises(InvalidRequest, match="safe mode"):
        prepare_model(lambda_model, other, None)  # its Python lambda would run on loading


def test_a_keras_file_that_is_not_a_zip_is_refused() -> None:
    check_safe_file("model.keras", b"PK\x03\x04rest")
    with pytest.raises(InvalidRequest, match="not what its name says"):
        check_safe_file("model.keras", b"\x89HDF\r\n\x1a\n")


def test_a_keras_model_with_two_outputs_is_refused_with_what_to_do(client: Client) -> None:
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(InvalidRequest, match="1 inputs and 2 outputs") as raised:
        client.models.register("two", model)
    assert "one output" in raised.value.fix
    assert client.models.list() == []


# --- XGBoost and LightGBM ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8].rename(columns=lambda c: c.replace(" ", "_"))
    return X, data.target.to_numpy()


def test_an_xgboost_classifier_registers_as_json_and_predicts_the_same(
    client: Client, cancer: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    import xgboost

    X, y = cancer
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)

    version = client.models.register("cancer-xgb", model)

    assert version.flavour == "xgboost" and version.task == "classification"
    assert [c["name"] for c in version.signature["inputs"]] == list(X.columns)
    assert "model.json" in _artifact_files(client, "cancer-xgb@1", tmp_path)
    loaded = client.models.load("cancer-xgb@1")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X).astype(int), model.predict(X))


def test_an_xgboost_regressor_predicts_values(
    client: Client, cancer: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import xgboost

    X, _ = cancer
    target = X["mean_radius"] * 2 + X["mean_texture"]
    model = xgboost.XGBRegressor(n_estimators=20).fit(X.drop(columns="mean_radius"), target)

    version = client.models.register("radius", model)

    assert version.flavour == "xgboost" and version.task == "regression"
    loaded = client.models.load("radius@1")
    rows = X.drop(columns="mean_radius").head(20)
    np.testing.assert_allclose(loaded.predict(rows), model.predict(rows), rtol=1e-6)
    with pytest.raises(InvalidRequest, match="no class probabilities"):
        loaded.predict_proba(rows)


def test_a_lightgbm_classifier_with_string_labels_registers_as_text(
    client: Client, iris: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    import lightgbm

    X, y = iris
    labels = np.asarray(["setosa", "versicolor", "virginica"])[y]
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, labels)

    version = client.models.register("iris-lgbm", model)

    assert version.flavour == "lightgbm"
    assert version.signature["outputs"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert "model.txt" in _artifact_files(client, "iris-lgbm@1", tmp_path)
    loaded = client.models.load("iris-lgbm@1")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_raw_booster_is_refused_with_the_wrapper_to_use(
    client: Client, cancer: tuple[pd.DataFrame, np.ndarray]
) -> None:
    import xgboost

    X, y = cancer
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=y), num_boost_round=3)
    with pytest.raises(InvalidRequest, match="raw xgboost Booster") as raised:
        client.models.register("raw", booster)
    assert "XGBClassifier" in raised.value.fix


# --- everything else -------------------------------------------------------------------------


def test_an_object_of_no_known_framework_is_refused_naming_what_is_accepted(
    client: Client,
) -> None:
    class Predictor:
        def fit(self, X: Any, y: Any) -> Predictor:
            return self

        def predict(self, X: Any) -> Any:
            return X

    with pytest.raises(InvalidRequest, match="Keras 3 models") as raised:
        client.models.register("odd", Predictor())
    assert "ONNX" in raised.value.fix
    assert client.models.list() == []


# --- explanations ------------------------------------------------------------------------------


class _Corner:
    """Class 1's probability is the mean brightness of the 4 x 4 top-left corner."""

    classes: ClassVar = [0, 1]
    signature: ClassVar = {"inputs": {"shape": [28, 28, 1], "dtype": "float32"}}

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(X)[:, :4, :4, 0].mean(axis=(1, 2))
        return np.column_stack([1 - p, p])


def test_occlusion_finds_the_pixels_an_image_classifier_reads() -> None:
    from lepton.explain import explainer_for

    image = np.full((28, 28, 1), 0.5, dtype=np.float32)
    explanation = explainer_for(_Corner()).explain(image, target=1, overlay=True)

    row = explanation.rows[0]
    assert (explanation.kind, explanation.method) == ("image", "occlusion")
    assert row.attributions.shape == (28, 28)
    assert row.output == pytest.approx(0.5) and row.base_value == pytest.approx(0.0)
    assert row.attributions[:4, :4].sum() == pytest.approx(0.5), "covering the corner costs 0.5"
    assert np.abs(row.attributions[4:, :]).max() == 0 and np.abs(row.attributions[:, 4:]).max() == 0
    assert row.overlay_png is not None and row.overlay_png.startswith(b"\x89PNG")


def test_a_registered_keras_image_model_is_explained_by_occlusion(client: Client) -> None:
    from lepton.explain import explainer_for

    client.models.register("cnn", _keras_cnn())
    loaded = client.models.load("cnn@1")
    X = np.random.default_rng(3).random((2, 8, 8, 1), dtype=np.float32)

    explanation = explainer_for(loaded).explain(X)

    assert explanation.method == "occlusion" and len(explanation.rows) == 2
    assert explanation.rows[0].attributions.shape == (8, 8)
    assert explanation.rows[0].prediction == int(loaded.predict(X[:1])[0])


def test_a_keras_image_model_given_images_gets_a_saliency_summary_on_its_card(
    client: Client,
) -> None:
    images = np.random.default_rng(4).random((80, 8, 8, 1), dtype=np.float32)
    client.models.register("cnn", _keras_cnn(), background=images)

    card = client.models.card("cnn@1")
    assert "## Explanations" in card
    assert (
        "saliency per predicted class by occlusion of a 7 x 7 grid of windows over 64 images"
        in card
    )
    assert "| predicted class | images |" in card
    with pytest.raises(InvalidRequest, match=r"shape \[3, 8, 8\]"):
        client.models.register("cnn", _keras_cnn(), background=images[:3, :, :, 0])
