"""AutoML over the catalogue, and the catalogue itself (lazy, torch-free listing)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from lepton.algorithms.automl import run_automl
from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.registry import (
    ALGORITHMS,
    CATALOGUE,
    check_fits,
    describe,
    get_algorithm,
    list_algorithms,
    suitable,
)
from lepton.errors import InvalidRequest

SKLEARN = ["logistic_regression", "random_forest", "hist_gradient_boosting"]


def breast_cancer(seed: int = 0) -> TrainData:
    """569 rows, split 80/10/10 and stratified."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed
    )
    X_val, X_test, y_val, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return TrainData(
        Task.classification,
        InputKind.tabular,
        X_train,
        y_train.to_numpy(),
        X_val,
        y_val.to_numpy(),
        X_test,
        y_test.to_numpy(),
        classes=[0, 1],
    )


def regression(n: int = 200) -> TrainData:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = 3 * X["a"].to_numpy() - X["b"].to_numpy() + rng.normal(scale=0.1, size=n)
    return TrainData(
        Task.regression, InputKind.tabular, X[:150], y[:150], X_test=X[150:], y_test=y[150:]
    )


def test_breast_cancer_reaches_95_percent_with_a_small_budget() -> None:
    callbacks = NullCallbacks()
    result = run_automl(
        breast_cancer(),
        time_budget_s=4,
        seed=0,
        callbacks=callbacks,
        candidates=SKLEARN,
        max_trials=8,
    )
    assert result.test_metrics["accuracy"] >= 0.95, result.test_metrics
    board = result.leaderboard
    assert {row["algorithm"] for row in board} == set(SKLEARN)
    assert 3 <= len(board) <= 8
    scores = [row["val_score"] for row in board]
    assert scores == sorted(scores, reverse=True) and board[0]["algorithm"] == result.best_algorithm
    for a, b in itertools.pairwise(board):  # ties go to the earlier trial: defaults first
        assert a["val_score"] > b["val_score"] or a["trial"] < b["trial"]
    assert "roc_auc" in board[0]["val_metrics"]
    assert all(row["metric"] == "accuracy" and row["fit_seconds"] > 0 for row in board)
    assert result.best_params == get_algorithm(result.best_algorithm).resolve(board[0]["params"])
    X_test = breast_cancer().X_test
    assert result.model.predict(X_test).shape == (len(X_test),)
    trials = [step for step, metrics in callbacks.logged if "val_score" in metrics]
    assert sorted(trials) == list(range(len(board)))
    assert "test_accuracy" in callbacks.logged[-1][1]


def test_regression_without_validation_split_and_automatic_candidates() -> None:
    result = run_automl(
        regression(), time_budget_s=5, seed=1, callbacks=NullCallbacks(), max_trials=3
    )
    # a 5 s budget leaves the net out; each fast candidate runs its defaults
    assert {row["algorithm"] for row in result.leaderboard} == {
        "linear_regression",
        "random_forest",
        "hist_gradient_boosting",
    }
    rmses = [row["val_score"] for row in result.leaderboard]
    assert rmses == sorted(rmses) and result.metric == "rmse" and not result.higher_is_better
    assert result.best_algorithm == "linear_regression"  # the target is linear
    assert result.test_metrics["r2"] > 0.95


def test_a_cancelled_search_stops_after_the_running_trial() -> None:
    class Cancelled(NullCallbacks):
        def should_stop(self) -> bool:
            return True

    result = run_automl(
        regression(),
        time_budget_s=30,
        seed=0,
        callbacks=Cancelled(),
        candidates=["linear_regression", "random_forest"],
    )
    assert len(result.leaderboard) == 1


def test_candidates_are_checked() -> None:
    with pytest.raises(InvalidRequest, match="algorithm cnn does not support tabular regression"):
        run_automl(
            regression(), time_budget_s=1, seed=0, callbacks=NullCallbacks(), candidates=["cnn"]
        )
    with pytest.raises(InvalidRequest, match="no algorithm named 'forest'"):
        run_automl(
            regression(), time_budget_s=1, seed=0, callbacks=NullCallbacks(), candidates=["forest"]
        )


# -- registry --------------------------------------------------------------------------------


def test_listing_never_imports_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now fails
    for entry in CATALOGUE.values():
        if entry.torch:
            monkeypatch.delitem(sys.modules, entry.target.partition(":")[0], raising=False)
    listed = {info.name: info for info in list_algorithms()}
    assert set(listed) == set(CATALOGUE) and len(listed) == 10
    assert listed["mlp"].tasks == ["classification", "regression"] and listed["mlp"].params is None
    assert listed["cnn"].kinds == ["image"] and listed["lstm"].tasks == ["forecasting"]
    assert listed["random_forest"].params is not None
    assert "n_estimators" in listed["random_forest"].params
    assert "lepton.algorithms.mlp" not in sys.modules
    assert (
        list(ALGORITHMS) == list(CATALOGUE) and "gru" in ALGORITHMS and "xgboost" not in ALGORITHMS
    )


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(InvalidRequest, match="no algorithm named 'random_forst'") as caught:
        get_algorithm("random_forst")
    assert "did you mean random_forest" in str(caught.value)
    assert "logistic_regression, linear_regression" in str(caught.value)
    with pytest.raises(KeyError):
        ALGORITHMS["nope"]


def test_check_fits_and_suitable() -> None:
    assert suitable(Task.classification, InputKind.tabular) == [
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "mlp",
    ]
    assert suitable("forecasting", "sequence") == ["lstm", "gru"]
    assert suitable("classification", "text") == ["tfidf_linear", "minilm_linear"]
    check_fits("random_forest", "regression", "tabular")
    with pytest.raises(InvalidRequest) as caught:
        check_fits("cnn", Task.classification, InputKind.tabular)
    assert caught.value.message == (
        "algorithm cnn does not support tabular classification; algorithms that do: "
        "logistic_regression, random_forest, hist_gradient_boosting, mlp"
    )


def test_describe_and_lazy_mapping() -> None:
    info = describe("hist_gradient_boosting")
    assert info.params is not None and "learning_rate" in info.params
    assert ALGORITHMS["linear_regression"].name == "linear_regression"


def _importable(entry: Any) -> bool:
    return importlib.util.find_spec(entry.target.partition(":")[0]) is not None


@pytest.mark.parametrize("name", [n for n, e in CATALOGUE.items() if _importable(e)])
def test_catalogue_agrees_with_each_class(name: str) -> None:
    """The table declares what each class declares (the nets are checked once written)."""
    entry, algorithm = CATALOGUE[name], get_algorithm(name)
    assert (algorithm.name, algorithm.tasks, algorithm.kinds) == (name, entry.tasks, entry.kinds)
    for pname, param in algorithm.params.items():
        assert param.validate(pname, param.default) == param.default
