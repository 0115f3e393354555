"""Evaluation metrics for the three tasks, as plain ``dict[str, float]`` of finite numbers.

A metric that cannot be computed on the given data (ROC AUC with one class present, R² of a
constant target) is left out rather than reported as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lepton.algorithms.base import Model, Task

__all__ = [
    "classification_metrics",
    "evaluate",
    "forecast",
    "forecast_metrics",
    "primary_metric",
    "regression_metrics",
]


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def primary_metric(task: Task) -> tuple[str, bool]:
    """The metric that ranks models of ``task``, and whether higher is better."""
    if task == Task.classification:
        return "accuracy", True
    if task == Task.regression:
        return "rmse", False
    return "mae", False


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Accuracy, macro F1/precision/recall; ROC AUC and log loss when ``proba`` is given.

    ``proba`` columns follow ``classes``. Binary ROC AUC takes ``classes[1]`` as the positive
    class; multiclass ROC AUC is one-vs-rest, macro-averaged, and needs every class present.
    """
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if classes is None:
        classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    out: dict[str, Any] = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "f1_macro": m.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "precision_macro": m.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": m.recall_score(y_true, y_pred, average="macro", zero_division=0),
    }
    if proba is not None and len(classes) >= 2:
        proba = np.asarray(proba, dtype=np.float64)
        proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
        present = set(y_true.tolist())
        if len(classes) == 2 and len(present) == 2:
            out["roc_auc"] = m.roc_auc_score(y_true == classes[1], proba[:, 1])
        elif len(classes) > 2 and present == set(classes):
            out["roc_auc"] = m.roc_auc_score(
                y_true, proba, multi_class="ovr", average="macro", labels=list(classes)
            )
        if present <= set(classes):
            out["log_loss"] = m.log_loss(y_true, proba, labels=list(classes))
    return _finite(out)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R² (when the target varies)."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    err = p - t
    out: dict[str, Any] = {
        "mae": np.mean(np.abs(err)),
        "rmse": math.sqrt(float(np.mean(err**2))),
    }
    total = float(np.sum((t - t.mean()) ** 2))
    if len(t) >= 2 and total > 0:
        out["r2"] = 1.0 - float(np.sum(err**2)) / total
    return _finite(out)


def forecast_metrics(
    actual: Any, predicted: Any, history: Any, season: int | None
) -> dict[str, float]:
    """MAE and RMSE of a forecast, and how it compares with the seasonal naive forecast.

    The seasonal naive forecast repeats the last ``season`` values of ``history`` over the
    horizon (``season`` of None or 1: the last value), so it uses nothing after the forecast
    origin. ``mae_vs_seasonal_naive`` below 1 means the model beats it.
    """
    a = np.asarray(actual, dtype=np.float64)
    h = np.asarray(history, dtype=np.float64)
    out: dict[str, Any] = dict(regression_metrics(a, predicted))
    out.pop("r2", None)
    period = min(max(season or 1, 1), len(h))
    if period > 0 and len(a) > 0:
        naive = np.resize(h[-period:], len(a))
        naive_mae = float(np.mean(np.abs(naive - a)))
        out["seasonal_naive_mae"] = naive_mae
        if naive_mae > 0:
            out["mae_vs_seasonal_naive"] = out["mae"] / naive_mae
    return _finite(out)


def forecast(model: Model, history: Any, horizon: int) -> np.ndarray:
    """The next ``horizon`` values after ``history``, from a forecasting model."""
    predicted = np.asarray(model.predict(np.asarray(history, dtype=np.float64)), dtype=np.float64)
    if predicted.shape[0] < horizon:
        raise ValueError(
            f"{model.algorithm} forecast {predicted.shape[0]} steps, {horizon} were needed"
        )
    return predicted[:horizon]


def evaluate(
    model: Model,
    X: Any,
    y: Any,
    *,
    history: Any = None,
    season: int | None = None,
) -> dict[str, float]:
    """The metrics of ``model`` on a held-out split.

    For forecasting, ``X`` is the held-out stretch of the series, ``history`` everything before
    it, and ``y`` is ignored.
    """
    if model.task == Task.classification:
        proba = model.predict_proba(X)
        return classification_metrics(y, model.predict(X), proba, model.classes)
    if model.task == Task.regression:
        return regression_metrics(y, model.predict(X))
    actual = np.asarray(X, dtype=np.float64)
    return forecast_metrics(actual, forecast(model, history, len(actual)), history, season)
