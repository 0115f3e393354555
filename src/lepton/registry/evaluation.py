"""Evaluating a model on labelled rows: the metrics that fit its task, per class and per slice,
and the plots (confusion matrix, ROC, residuals) as PNG bytes.

The same structure is produced for the held-out split at training time and by an ``evaluate``
job, so every model card reads one shape::

    {"task", "target", "rows", "metrics": {...},
     "per_class": {label: {"precision", "recall", "f1", "support"}},      # classification
     "confusion_matrix": {"labels": [...], "matrix": [[...]]},             # classification
     "slices": {column: [{"value", "rows", "metrics"}]},
     "plots": {name: blob digest}}                                         # added on upload

Metrics that cannot be computed on the rows given (ROC AUC with one class present) are left out,
never reported as NaN.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest

__all__ = ["MAX_SLICE_VALUES", "evaluate_model", "evaluate_predictions", "render_plots"]

MAX_SLICE_VALUES = 10
"""A numeric slice column with more distinct values than this is cut into quartiles."""


def evaluate_predictions(
    task: str,
    y_true: Any,
    y_pred: Any,
    *,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    slice_columns: dict[str, Any] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The evaluation of predictions ``y_pred`` against ``y_true``.

    Args:
        task: ``classification`` or ``regression``.
        proba: class probabilities, columns in ``classes`` order (classification).
        slice_columns: column name → values (one per row) to report metrics per value of.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise InvalidRequest(
            f"cannot evaluate {len(y_pred)} predictions against {len(y_true)} labels",
            fix="evaluate on a dataset with labelled rows",
        )
    result: dict[str, Any] = {"task": task, "rows": len(y_true)}
    if target is not None:
        result["target"] = target
    if task == "classification":
        labels = list(classes) if classes is not None else _labels(y_true, y_pred)
        result["metrics"] = _classification(y_true, y_pred, proba, labels)
        result["per_class"] = _per_class(y_true, y_pred, labels)
        result["confusion_matrix"] = _confusion(y_true, y_pred, labels)
    elif task == "regression":
        labels = []
        result["metrics"] = _regression(y_true, y_pred)
    else:
        raise InvalidRequest(
            f"evaluation covers classification and regression, not {task}",
            fix="forecasting models report their metrics at training time",
        )
    slices: dict[str, list[dict[str, Any]]] = {}
    for column, values in sorted((slice_columns or {}).items()):
        slices[column] = []
        for label, mask in _groups(values):
            part_proba = proba[mask] if proba is not None else None
            metrics = (
                _classification(y_true[mask], y_pred[mask], part_proba, labels)
                if task == "classification"
                else _regression(y_true[mask], y_pred[mask])
            )
            slices[column].append({"value": label, "rows": int(mask.sum()), "metrics": metrics})
    if slices:
        result["slices"] = slices
    return result


def evaluate_model(
    model: Any, frame: Any, target: str, slices: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Evaluate a :class:`~lepton.registry.flavours.LoadedModel` on a labelled DataFrame.

    Returns the evaluation and its plots (name → PNG bytes).

    Raises:
        InvalidRequest: the target or a slice column is missing, or the task is not covered.
    """
    from lepton.data.columns import unknown_column

    for column, where in [(target, "--target"), *((s, "--slice") for s in slices)]:
        if column not in frame.columns:
            raise unknown_column(column, list(frame.columns), where=where, use=f"pass {where} {{}}")
    rows = frame[frame[target].notna()]
    if len(rows) == 0:
        raise InvalidRequest(
            f"no row has a value in the target column {target!r}",
            fix="evaluate on a labelled dataset, or pass --target",
        )
    X = rows.drop(columns=[target])
    y_true = rows[target].to_numpy()
    y_pred = model.predict(X)
    proba = model.predict_proba(X) if model.is_classifier else None
    classes = model.classes
    if classes is not None:
        y_true = _as_class_type(y_true, classes)
    result = evaluate_predictions(
        model.task,
        y_true,
        y_pred,
        proba=proba,
        classes=classes,
        slice_columns={c: rows[c].to_numpy() for c in slices},
        target=target,
    )
    return result, render_plots(result, y_true, y_pred, proba)


def _as_class_type(y: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """Labels read from a table as the model's class type (``1`` vs ``"1"``), so they compare."""
    if classes and all(isinstance(c, str) for c in classes):
        return np.asarray([str(v) for v in y], dtype=object)
    return y


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> list[Any]:
    return sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)


def _classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, labels: list[Any]
) -> dict[str, float]:
    from lepton.algorithms.metrics import classification_metrics

    metrics = classification_metrics(y_true, y_pred, proba, labels)
    metrics.pop("log_loss", None)  # a training diagnostic; the card reports what users read
    return metrics


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from lepton.algorithms.metrics import regression_metrics

    return regression_metrics(y_true, y_pred)


def _per_class(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any]
) -> dict[str, dict[str, float]]:
    from sklearn import metrics as m

    precision, recall, f1, support = m.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {"labels": [_plain(v) for v in labels], "matrix": matrix.astype(int).tolist()}


def _groups(values: Any) -> list[tuple[str, np.ndarray]]:
    """(label, row mask) per value of a slice column; many-valued numbers by quartile."""
    import pandas as pd

    series = pd.Series(values)
    missing = series.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and series.nunique() > MAX_SLICE_VALUES:
        bins = pd.qcut(series, 4, duplicates="drop")
        keys = bins.map(lambda b: f"[{b.left:.4g}, {b.right:.4g}]").astype(object)
        order = [f"[{b.left:.4g}, {b.right:.4g}]" for b in bins.cat.categories]
    else:
        keys = series.map(lambda v: str(_plain(v))).astype(object)
        order = sorted({k for k, m in zip(keys, missing, strict=True) if not m})
    groups = [(label, (keys == label).to_numpy() & ~missing) for label in order]
    if missing.any():
        groups.append(("(missing)", missing))
    return [(label, mask) for label, mask in groups if mask.any()]


def render_plots(
    result: dict[str, Any], y_true: Any, y_pred: Any, proba: np.ndarray | None
) -> dict[str, bytes]:
    """PNG bytes per plot: ``confusion_matrix`` and ``roc`` (classification), ``residuals``
    (regression). Rendered without timestamps, so the same evaluation gives the same bytes."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in a job
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    if result["task"] == "classification":
        cm = result["confusion_matrix"]
        labels = [str(v) for v in cm["labels"]]
        fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels)))
        matrix = np.asarray(cm["matrix"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=colour)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        plots["confusion_matrix"] = _png(fig, plt)
        if proba is not None and len(labels) >= 2:
            plots["roc"] = _roc(np.asarray(y_true), proba, cm["labels"], plt)
    else:
        y_true_f = np.asarray(y_true, dtype=np.float64)
        y_pred_f = np.asarray(y_pred, dtype=np.float64)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(y_pred_f, y_true_f - y_pred_f, s=8, alpha=0.6)
        ax.axhline(0, color="grey", linewidth=1)
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (true - predicted)")
        plots["residuals"] = _png(fig, plt)
    return plots


def _roc(y_true: np.ndarray, proba: np.ndarray, labels: list[Any], plt: Any) -> bytes:
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    # Binary: one curve for the positive class (labels[1]); more classes: one-vs-rest, first 10.
    shown = [1] if len(labels) == 2 else list(range(min(len(labels), 10)))
    for index in shown:
        positives = y_true == labels[index]
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, proba[:, index])
        ax.plot(fpr, tpr, label=str(labels[index]))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
