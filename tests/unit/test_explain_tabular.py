"""Tabular explanations: additivity against the served output, sanity, classes, errors, JSON.

Every model here is a built-in algorithm fitted on small synthetic tables that include a
categorical column, so each one is a Pipeline with one-hot encoding and the attributions must
come back in the user's columns.
"""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar

import numpy as np
import orjson
import pandas as pd
import pytest

from lepton.algorithms.base import InputKind, Model, NullCallbacks, Task, TrainData
from lepton.algorithms.registry import get_algorithm
from lepton.errors import InvalidRequest
from lepton.explain import (
    Background,
    Explanation,
    explainer_for,
    global_explanation,
    global_plot,
    summarise_background,
)

FEATURES = [f"f{i}" for i in range(6)]
KEY = "f3"  # in the sanity data, the only feature the target depends on

# Small models: the point is the explainers, and the unit folder has a time budget.
PARAMS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 50},
    "hist_gradient_boosting": {"max_iter": 30},
    "logistic_regression": {},
    "linear_regression": {},
    "mlp": {"epochs": 15, "hidden": 32},
}
EXACT = {"random_forest", "hist_gradient_boosting"}


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 6)), columns=FEATURES)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=rows)
    return frame


@functools.cache
def mixed(task: Task) -> tuple[pd.DataFrame, np.ndarray]:
    """Every feature matters a little, the categorical column too."""
    X = table(200, 0)
    score = (
        X[FEATURES].to_numpy() @ np.linspace(1.0, 0.2, 6)
        + X["colour"].map({"red": 1.0, "green": 0.0, "blue": -1.0}).to_numpy()
    )
    if task == Task.classification:
        return X, np.where(score > 0, "yes", "no")
    return X, 10 * score + 3


@functools.cache
def sanity(task: Task) -> tuple[pd.DataFrame, np.ndarray]:
    """Only KEY matters."""
    X = table(300, 1)
    key = X[KEY].to_numpy()
    return X, (np.where(key > 0, "yes", "no") if task == Task.classification else 5 * key)


@functools.cache
def fitted(name: str, task: Task, data: str = "mixed") -> Model:
    X, y = (mixed if data == "mixed" else sanity)(task)
    train = TrainData(task, InputKind.tabular, X, y)
    return get_algorithm(name).fit(train, PARAMS[name], NullCallbacks(), seed=0)


@functools.cache
def background(data: str = "mixed") -> Background:
    X, _ = (mixed if data == "mixed" else sanity)(Task.classification)
    return summarise_background(X, 30, seed=0)


CASES = [
    ("random_forest", Task.classification),
    ("random_forest", Task.regression),
    ("hist_gradient_boosting", Task.classification),
    ("hist_gradient_boosting", Task.regression),
    ("logistic_regression", Task.classification),
    ("linear_regression", Task.regression),
    ("mlp", Task.classification),
    ("mlp", Task.regression),
]


def served_output(model: Model, X: pd.DataFrame, explanation: Explanation) -> np.ndarray:
    """What the explained output must equal, from /predict's own answers."""
    if explanation.output_space == "value":
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = model.predict_proba(X)
    assert proba is not None and model.classes is not None
    chosen = proba[np.arange(len(X)), proba.argmax(axis=1)]
    if explanation.output_space == "probability":
        return chosen
    assert explanation.output_space == "log_odds"
    return np.log(chosen / (1 - chosen))


@pytest.mark.parametrize(("name", "task"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_base_plus_attributions_is_the_served_output(name: str, task: Task) -> None:
    model = fitted(name, task)
    X = table(25, 7)
    explanation = explainer_for(model, background()).explain(X)
    tolerance = 1e-6 if name in EXACT else 1e-3
    outputs = np.array([r.output for r in explanation.rows])
    sums = np.array([r.base_value + r.attributions.sum() for r in explanation.rows])
    np.testing.assert_allclose(sums, outputs, atol=tolerance, rtol=0)
    # The explained output is the model's, not a number of the explainer's own making.
    np.testing.assert_allclose(outputs, served_output(model, X, explanation), atol=1e-6, rtol=1e-6)
    # One attribution per input column: the one-hot columns of "colour" were summed back.
    assert all(r.names == [*FEATURES, "colour"] for r in explanation.rows)
    assert explanation.additive


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("random_forest", Task.classification),  # tree SHAP in probability
        ("hist_gradient_boosting", Task.classification),  # tree SHAP in log-odds
        ("logistic_regression", Task.classification),  # linear SHAP in log-odds
        ("linear_regression", Task.regression),  # linear SHAP in value
        ("mlp", Task.classification),  # permutation SHAP in probability
    ],
)
def test_the_only_feature_that_matters_ranks_first(name: str, task: Task) -> None:
    model = fitted(name, task, "sanity")
    X = table(60, 8)
    explanation = explainer_for(model, background("sanity")).explain(X)
    clear = np.abs(X[KEY].to_numpy()) > 0.5  # rows far from the decision boundary
    for row, is_clear in zip(explanation.rows, clear, strict=True):
        if is_clear:
            assert row.ranked()[0][0] == KEY, row.ranked()[:3]
    summary = global_explanation(model, X, background=background("sanity"))
    assert summary["features"][0]["name"] == KEY


def test_a_categorical_column_that_decides_ranks_first_as_one_column() -> None:
    X = table(300, 2)
    y = np.where(X["colour"] == "red", "yes", "no")
    model = get_algorithm("random_forest").fit(
        TrainData(Task.classification, InputKind.tabular, X, y),
        {"n_estimators": 50},
        NullCallbacks(),
    )
    row = explainer_for(model).explain(X.iloc[:5]).rows[0]
    assert row.ranked()[0][0] == "colour"
    assert len(row.attributions) == 7


def test_any_class_can_be_explained_and_log_odds_flip_sign() -> None:
    model = fitted("logistic_regression", Task.classification)
    explainer = explainer_for(model, background())
    X = table(5, 3)
    yes, no = explainer.explain(X, target="yes"), explainer.explain(X, target="no")
    assert yes.output_space == "log_odds"
    for a, b in zip(yes.rows, no.rows, strict=True):
        np.testing.assert_allclose(a.attributions, -b.attributions)
        assert a.target == "yes" and b.target == "no"
        assert a.probability == pytest.approx(1 - (b.probability or 0.0))
    with pytest.raises(InvalidRequest, match=r"'maybe' is not a class.*'no', 'yes'"):
        explainer.explain(X, target="maybe")


def test_a_forest_explains_probabilities_of_the_class_asked_for() -> None:
    model = fitted("random_forest", Task.classification)
    X = table(5, 4)
    proba = model.predict_proba(X)
    assert proba is not None
    explanation = explainer_for(model).explain(X, target="no")
    assert explanation.output_space == "probability"
    np.testing.assert_allclose([r.output for r in explanation.rows], proba[:, 0], atol=1e-9)


def test_a_class_missing_from_training_is_named_when_asked_for() -> None:
    X, y = mixed(Task.classification)
    data = TrainData(Task.classification, InputKind.tabular, X, y, classes=["maybe", "no", "yes"])
    model = get_algorithm("hist_gradient_boosting").fit(data, {"max_iter": 20}, NullCallbacks())
    explainer = explainer_for(model)
    assert {r.target for r in explainer.explain(X.iloc[:5]).rows} <= {"no", "yes"}
    with pytest.raises(InvalidRequest, match="class 'maybe' never appeared"):
        explainer.explain(X.iloc[:5], target="maybe")


def test_bad_inputs_get_clear_errors() -> None:
    explainer = explainer_for(fitted("random_forest", Task.classification))
    with pytest.raises(InvalidRequest, match="no column 'f5'"):
        explainer.explain(table(3, 0).drop(columns="f5"))
    with pytest.raises(InvalidRequest, match="no rows"):
        explainer.explain(table(3, 0).iloc[:0])
    with pytest.raises(InvalidRequest, match="image models only"):
        explainer.explain(table(3, 0), overlay=True)
    with pytest.raises(InvalidRequest, match="at most 1,000"):
        explainer.explain(table(1001, 0))


class Brought:
    """A model from elsewhere: named input columns and predictions, nothing to read inside."""

    task, classes = "regression", None
    signature: ClassVar[dict[str, Any]] = {"inputs": [{"name": "a"}, {"name": "b"}]}

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(X["a"] * 2 + X["b"], dtype=np.float64)


def test_a_model_from_elsewhere_is_explained_against_its_background() -> None:
    with pytest.raises(InvalidRequest, match="needs a background") as caught:
        explainer_for(Brought())
    assert "summarise_background" in (caught.value.fix or "")
    rows = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    explanation = explainer_for(Brought(), rows).explain([{"a": 3.0, "b": 1.0}])
    row = explanation.rows[0]
    assert explanation.method == "permutation_shap" and row.output == 7.0
    # An additive model's SHAP values are exact from any permutation: 2 * (3 - 1.5), 1 - 0.5.
    np.testing.assert_allclose(row.attributions, [3.0, 0.5], atol=1e-12)


@pytest.mark.parametrize("name", ["linear_regression", "mlp"])
def test_built_in_models_without_a_background_use_a_typical_row(name: str) -> None:
    model = fitted(name, Task.regression)
    explainer = explainer_for(model)  # what a replica does when no background was stored
    explanation = explainer.explain(table(10, 5))
    for row in explanation.rows:
        assert row.base_value + row.attributions.sum() == pytest.approx(row.output, abs=1e-6)
    # The reference row holds the training medians (and, for the pipeline, the most frequent
    # colour; the MLP reads a missing colour as neutral): explaining it attributes nothing.
    X = mixed(Task.regression)[0]
    typical = X[FEATURES].median().to_dict()
    typical["colour"] = X["colour"].mode()[0] if name == "linear_regression" else None
    row = explainer.explain([typical]).rows[0]
    np.testing.assert_allclose(row.attributions, 0.0, atol=1e-9)
    assert row.base_value == pytest.approx(row.output, abs=1e-6)


def test_permutation_explanations_repeat_exactly() -> None:
    model = fitted("mlp", Task.classification)
    X = table(3, 6)
    first = explainer_for(model, background(), seed=0).explain(X)
    again = explainer_for(model, background(), seed=0).explain(X)
    for a, b in zip(first.rows, again.rows, strict=True):
        np.testing.assert_array_equal(a.attributions, b.attributions)


def test_explanations_are_json_ready() -> None:
    model = fitted("hist_gradient_boosting", Task.classification)
    records = table(2, 9).to_dict(orient="records")
    data = orjson.loads(orjson.dumps(explainer_for(model).explain(records).to_dict()))
    assert data["kind"] == "tabular" and data["method"] == "tree_shap"
    assert data["output_space"] == "log_odds"
    row = data["rows"][0]
    assert row["prediction"] in ("yes", "no") and row["target"] == row["prediction"]
    assert row["names"] == [*FEATURES, "colour"] and len(row["attributions"]) == 7
    assert row["base_value"] + sum(row["attributions"]) == pytest.approx(row["output"], abs=1e-6)


def test_forecasters_are_refused_with_the_reason() -> None:
    class Forecaster:
        task = Task.forecasting

    with pytest.raises(InvalidRequest, match="forecasting models have no explanations"):
        explainer_for(Forecaster())


def test_background_summary_keeps_real_rows_and_round_trips() -> None:
    X = table(500, 11)
    X.loc[3, "f0"] = np.nan
    summary = summarise_background(X, 20, seed=0)
    assert len(summary.rows) == 20 and summary.weights.sum() == pytest.approx(1.0)
    assert (summary.weights > 0).all()
    originals = {tuple(r) for r in X.round(12).astype(str).to_numpy()}
    assert all(tuple(r) in originals for r in summary.rows.round(12).astype(str).to_numpy())
    again = summarise_background(X, 20, seed=0)
    pd.testing.assert_frame_equal(summary.rows, again.rows)
    restored = Background.from_json(orjson.loads(orjson.dumps(summary.to_json())))
    pd.testing.assert_frame_equal(restored.rows, summary.rows, check_dtype=False)
    np.testing.assert_allclose(restored.weights, summary.weights)
    dated = X.assign(when=pd.date_range("2024-01-01", periods=len(X), freq="D"))
    stored = json.loads(json.dumps(summarise_background(dated, 5).to_json()))
    assert stored["rows"][0][-1].startswith("2024-") and len(stored["weights"]) == 5
    small = summarise_background(X.iloc[:5], 20)
    assert len(small.rows) == 5
    with pytest.raises(InvalidRequest, match="no rows"):
        summarise_background(X.iloc[:0])


def test_global_explanation_and_plot_are_deterministic() -> None:
    model = fitted("hist_gradient_boosting", Task.classification, "sanity")
    X = table(40, 12)
    first, again = global_explanation(model, X, seed=0), global_explanation(model, X, seed=0)
    assert first == again
    assert first["rows"] == 40 and first["features"][0]["name"] == KEY
    assert {f["name"] for f in first["features"]} == {*FEATURES, "colour"}
    png = global_plot(first)
    assert png.startswith(b"\x89PNG") and png == global_plot(again)
    with pytest.raises(InvalidRequest, match="cannot be plotted"):
        global_plot({"kind": "audio"})


def test_a_background_with_few_distinct_rows_keeps_each_once_weighted_by_its_copies() -> None:
    rows = pd.DataFrame({"a": [0.0, 1.0, 1.0, 2.0] * 30, "b": ["x", "y", "y", "x"] * 30})
    summary = summarise_background(rows, 20, seed=0)
    assert len(summary.rows) == 3
    weight = dict(zip(summary.rows["a"], summary.weights, strict=True))
    assert weight == pytest.approx({0.0: 0.25, 1.0: 0.5, 2.0: 0.25})
