"""Tabular scikit-learn algorithms, safe persistence and metrics, on tiny generated data."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.boosting import HistGradientBoosting
from lepton.algorithms.forest import RandomForest
from lepton.algorithms.linear import LinearRegression, LogisticRegression
from lepton.algorithms.metrics import (
    classification_metrics,
    forecast_metrics,
    primary_metric,
    regression_metrics,
)
from lepton.algorithms.persist import is_allowed_type, load_sklearn, save_sklearn
from lepton.algorithms.sklearn_model import SklearnModel
from lepton.algorithms.tabular import SklearnTabular
from lepton.errors import InvalidRequest

FAST = {
    "logistic_regression": {},
    "linear_regression": {},
    "random_forest": {"n_estimators": 50},
    "hist_gradient_boosting": {"max_iter": 40},
}


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed columns with missing values; ``signal`` is what the target depends on."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    X = pd.DataFrame(
        {
            "x1": x1,
            "x2": np.where(rng.random(n) < 0.1, np.nan, x2),
            "colour": pd.Series(colour).where(rng.random(n) > 0.1, None),
            "member": rng.random(n) < 0.5,
            "joined": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
            "count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
        }
    )
    signal = 2 * x1 - x2 + np.select([colour == "red", colour == "green"], [1.5, -1.5], 0.0)
    return X, signal


def tabular(task: Task, n: int = 240) -> TrainData:
    X, signal = frame(n, seed=1)
    y: Any
    if task == Task.classification:
        y = np.where(signal > 0, "yes", "no")
    else:
        y = signal + np.random.default_rng(2).normal(scale=0.1, size=n)
    a, b = int(n * 0.6), int(n * 0.8)
    classes = ["no", "yes"] if task == Task.classification else None
    return TrainData(
        task, InputKind.tabular, X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:], classes=classes
    )


CASES = [
    (LogisticRegression, Task.classification),
    (RandomForest, Task.classification),
    (HistGradientBoosting, Task.classification),
    (LinearRegression, Task.regression),
    (RandomForest, Task.regression),
    (HistGradientBoosting, Task.regression),
]


@dataclass
class Fitted:
    model: SklearnModel
    data: TrainData
    callbacks: NullCallbacks


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0].name}-{c[1]}")
def fitted(request: pytest.FixtureRequest) -> Fitted:
    cls, task = request.param
    data = tabular(task)
    callbacks = NullCallbacks()
    model = cls().fit(data, FAST[cls.name], callbacks, seed=0)
    return Fitted(model, data, callbacks)


def test_fits_and_beats_the_trivial_baseline(fitted: Fitted) -> None:
    data, model = fitted.data, fitted.model
    predicted = model.predict(data.X_test)
    assert predicted.shape == (len(data.X_test),)
    if data.task == Task.classification:
        majority = max(np.mean(data.y_test == c) for c in ("yes", "no"))
        accuracy = np.mean(predicted == data.y_test)
        assert accuracy >= max(0.8, majority + 0.2), accuracy
        proba = model.predict_proba(data.X_test)
        assert proba is not None and proba.shape == (len(data.X_test), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert (np.array(["no", "yes"])[proba.argmax(axis=1)] == predicted).all()
    else:
        rmse = math.sqrt(np.mean((predicted - data.y_test) ** 2))
        baseline = math.sqrt(np.mean((np.mean(data.y_train) - data.y_test) ** 2))
        assert rmse < 0.5 * baseline, (rmse, baseline)
        assert model.predict_proba(data.X_test) is None


def test_logs_validation_metrics(fitted: Fitted) -> None:
    assert fitted.callbacks.logged, "no metrics logged"
    step, metrics = fitted.callbacks.logged[-1]
    key = "val_accuracy" if fitted.data.task == Task.classification else "val_rmse"
    assert key in metrics and all(math.isfinite(v) for v in metrics.values())
    if fitted.model.algorithm != "logistic_regression" and "linear" not in fitted.model.algorithm:
        assert step > 1, "staged models log per stage"


def test_saves_without_pickle_and_loads_identically(fitted: Fitted, tmp_path: Path) -> None:
    fitted.model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.skops"]
    cls = type(fitted.model)
    assert cls is SklearnModel
    algorithm = {c[0].name: c[0] for c in CASES}[fitted.model.algorithm]
    loaded = algorithm.load(tmp_path / "m")
    X = fitted.data.X_test
    np.testing.assert_array_equal(loaded.predict(X), fitted.model.predict(X))
    assert loaded.classes == fitted.model.classes and loaded.feature_names == list(X.columns)
    assert load_sklearn(tmp_path / "m" / "model.skops") is not None  # passes the allow-list


def test_load_refuses_another_algorithms_model(tmp_path: Path) -> None:
    model = LogisticRegression().fit(tabular(Task.classification), {}, NullCallbacks())
    model.save(tmp_path / "m")
    with pytest.raises(InvalidRequest, match="not of 'random_forest'"):
        RandomForest.load(tmp_path / "m")


def test_predict_checks_columns_and_tolerates_new_categories() -> None:
    data = tabular(Task.classification)
    model = LogisticRegression().fit(data, {}, NullCallbacks())
    X = data.X_test.copy()
    X["colour"] = "purple"  # never seen in training: encoded as no known colour
    assert model.predict(X).shape == (len(X),)
    with pytest.raises(InvalidRequest, match="no column 'x1'"):
        model.predict(X.drop(columns="x1"))
    X["x1"] = "abc"
    with pytest.raises(InvalidRequest, match="'x1' must be numeric; got 'abc'"):
        model.predict(X)
    records = data.X_test.head(3).to_dict(orient="records")
    np.testing.assert_array_equal(model.predict(records), model.predict(data.X_test.head(3)))


def test_probabilities_follow_classes_even_when_train_lacks_one() -> None:
    data = tabular(Task.classification)
    data.classes = ["maybe", "no", "yes"]
    model = RandomForest().fit(data, FAST["random_forest"], NullCallbacks())
    proba = model.predict_proba(data.X_test)
    assert proba is not None and proba.shape[1] == 3 and (proba[:, 0] == 0).all()


def test_stop_request_ends_growth_early() -> None:
    class StopAtOnce(NullCallbacks):
        def should_stop(self) -> bool:
            return True

    callbacks = StopAtOnce()
    model = RandomForest().fit(tabular(Task.classification), {"n_estimators": 100}, callbacks)
    assert len(model.estimator[-1].estimators_) == 20 and len(callbacks.logged) == 1


def test_one_class_and_unknown_labels_are_errors() -> None:
    data = tabular(Task.classification)
    data.y_train = np.full(len(data.y_train), "yes")
    with pytest.raises(InvalidRequest, match="one class only"):
        LogisticRegression().fit(data, {}, NullCallbacks())
    data = tabular(Task.classification)
    data.y_train = data.y_train.astype(object)
    data.y_train[0] = "perhaps"
    with pytest.raises(InvalidRequest, match="label 'perhaps' is not one of the classes"):
        LogisticRegression().fit(data, {}, NullCallbacks())


def test_wrong_task_is_refused_with_alternatives() -> None:
    with pytest.raises(InvalidRequest, match="algorithms that do: linear_regression"):
        LogisticRegression().fit(tabular(Task.regression), {}, NullCallbacks())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n_trees": 10}, "no parameter 'n_trees'; its parameters are: n_estimators, max_depth"),
        ({"n_estimators": 5000}, r"n_estimators=5000 is outside 50\.\.500"),
        ({"n_estimators": "many"}, "n_estimators='many' is not a int"),
        ({"max_features": "most"}, "is not one of: auto, sqrt, log2, half, all"),
    ],
)
def test_param_validation(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        RandomForest().fit(tabular(Task.classification), given, NullCallbacks())


def test_every_tabular_algorithm_is_a_sklearn_tabular() -> None:
    for cls in (LogisticRegression, LinearRegression, RandomForest, HistGradientBoosting):
        assert issubclass(cls, SklearnTabular) and cls.kinds == {InputKind.tabular}
        assert all(p.validate(n, p.default) == p.default for n, p in cls.params.items())


# -- persistence -----------------------------------------------------------------------------


class Gadget:
    """A type from outside the allow-list, as a crafted artifact would reference."""

    def __init__(self) -> None:
        self.payload = "rm -rf /"


@pytest.mark.parametrize(
    ("obj", "refused"),
    [
        (Gadget(), "Gadget"),
        ({"call": os.system}, "system"),
        ({"call": eval}, "builtins.eval"),
    ],
    ids=["local-class", "os-system", "eval"],
)
def test_a_skops_file_with_foreign_types_is_refused(obj: Any, refused: str, tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(obj, path)
    with pytest.raises(InvalidRequest, match=f"references type .*{refused}.*not allowed"):
        load_sklearn(path)


def test_persist_round_trip_and_garbage(tmp_path: Path) -> None:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.arange(6.0).reshape(3, 2))
    save_sklearn(scaler, tmp_path / "s.skops")
    np.testing.assert_array_equal(load_sklearn(tmp_path / "s.skops").mean_, scaler.mean_)
    (tmp_path / "bad.skops").write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(InvalidRequest, match="not a skops file"):
        load_sklearn(tmp_path / "bad.skops")
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_sklearn(tmp_path / "missing.skops")


def test_allow_list() -> None:
    assert is_allowed_type("sklearn.tree._tree.Tree") and is_allowed_type("numpy.dtype")
    assert is_allowed_type("builtins.dict")
    for name in ("builtins.exec", "posix.system", "numpy.load", "sklearn.datasets.fetch_openml"):
        assert not is_allowed_type(name), name


# -- metrics ---------------------------------------------------------------------------------


def test_classification_metrics_by_hand() -> None:
    y_true = ["a", "a", "b", "b"]
    y_pred = ["a", "b", "b", "b"]
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y_true, y_pred, proba, ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["precision_macro"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 1) / 2)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["roc_auc"] == 1.0  # every "b" outranks every "a"
    expected = -np.mean(np.log([0.9, 0.4, 0.8, 0.7]))
    assert m["log_loss"] == pytest.approx(expected)


def test_classification_metrics_leave_out_what_cannot_be_computed() -> None:
    m = classification_metrics([1, 1], [1, 0], np.array([[0.2, 0.8], [0.6, 0.4]]), [0, 1])
    assert "roc_auc" not in m and m["accuracy"] == 0.5
    assert set(classification_metrics([0, 1], [0, 1])) == {
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
    }
    three = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert classification_metrics([0, 1, 2], [0, 1, 2], three, [0, 1, 2])["roc_auc"] == 1.0


def test_regression_and_forecast_metrics_by_hand() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["r2"] == pytest.approx(1 - 5 / 2)
    assert "r2" not in regression_metrics([2.0, 2.0], [2.0, 1.0])
    # season 2: the naive forecast repeats the last two values of history, 3, 4, 3, 4
    f = forecast_metrics([3.0, 5.0, 3.0, 5.0], [3.0, 5.0, 3.0, 4.0], [1, 2, 3, 4], season=2)
    assert f["mae"] == 0.25 and f["seasonal_naive_mae"] == 0.5
    assert f["mae_vs_seasonal_naive"] == 0.5
    assert forecast_metrics([5.0], [5.0], [1.0, 4.0], season=None)["seasonal_naive_mae"] == 1.0


def test_primary_metric() -> None:
    assert primary_metric(Task.classification) == ("accuracy", True)
    assert primary_metric(Task.regression) == ("rmse", False)
    assert primary_metric(Task.forecasting) == ("mae", False)


def test_an_all_numeric_model_reads_arrays_frames_and_records_alike() -> None:
    from lepton.algorithms.preprocess import TabularSchema

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(4, 3)), columns=["b", "a", "c"])
    frame["a"] = frame["a"].round().astype("int64")
    schema = TabularSchema.from_frame(frame)
    expected = schema.prepare(frame.to_dict("records"))  # the general, column-by-column path
    with_nulls = frame.astype({"a": "Int64"})
    with_nulls.loc[1, "a"] = pd.NA
    for given in (frame.to_numpy(), frame, frame[["c", "a", "b"]]):
        pd.testing.assert_frame_equal(schema.prepare(given), expected)
    assert np.isnan(schema.prepare(with_nulls).loc[1, "a"])
    with pytest.raises(InvalidRequest, match="model needs 3"):
        schema.prepare(frame.to_numpy()[:, :2])
    with pytest.raises(InvalidRequest, match="must be numeric"):
        schema.prepare(frame.assign(a=["x", "1", "2", "3"]))
