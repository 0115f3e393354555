"""Which output of a model an explanation is about, and the checks every explainer shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest

__all__ = ["MAX_ROWS", "check_count", "check_no_overlay", "class_columns", "target_indices"]

MAX_ROWS = 1000
"""Rows one call may explain: a tabular row costs ~1-50 ms, so 1,000 stay under a minute."""


def check_count(n: int, limit: int = MAX_ROWS) -> None:
    """Refuse an empty batch or one over ``limit`` rows."""
    if n == 0:
        raise InvalidRequest("there is nothing to explain: the input has no rows", fix="send rows")
    if n > limit:
        raise InvalidRequest(
            f"{n:,} rows were sent to explain; one call explains at most {limit:,}",
            fix=f"explain the rows in batches of {limit:,}",
        )


def check_no_overlay(overlay: bool, kind: str) -> None:
    if overlay:
        raise InvalidRequest(
            f"a PNG overlay is drawn for image models only; this is a {kind} model",
            fix="leave overlay off",
        )


def target_indices(classes: Sequence[Any] | None, target: Any, predicted: np.ndarray) -> np.ndarray:
    """Per row, the index in ``classes`` of the class to explain.

    ``target`` None explains each row's predicted class (``predicted`` holds its index); a
    label explains that class for every row. A label sent through JSON may arrive as a string
    (``"1"`` for the class ``1``), so labels also match by their text.
    """
    if classes is None:
        if target is not None:
            raise InvalidRequest(
                f"target {target!r} was given, but a regression model has no classes",
                fix="leave target out: the regression value is explained",
            )
        return np.zeros(len(predicted), dtype=np.int64)
    if target is None:
        return np.asarray(predicted, dtype=np.int64)
    matches = [i for i, c in enumerate(classes) if c == target and type(c) is type(target)]
    matches = matches or [i for i, c in enumerate(classes) if str(c) == str(target)]
    if not matches:
        shown = ", ".join(map(repr, list(classes)[:20]))
        raise InvalidRequest(
            f"target {target!r} is not a class of this model; its classes are: {shown}",
            fix="pass one of those classes, or leave target out to explain the prediction",
        )
    return np.full(len(predicted), matches[0], dtype=np.int64)


def class_columns(
    est_classes: Sequence[Any] | None,
    wanted: np.ndarray,
    n_outputs: int,
    labels: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column of a raw model output (tree SHAP, decision function) and its sign.

    Classifiers label their outputs with the encoded classes they saw in training
    (``est_classes``). A binary log-odds model has one output, the log-odds of
    ``est_classes[1]``; the other class's log-odds is its negation, hence the sign. ``labels``
    (the model's classes) name a missing class in the error.
    """
    n = len(wanted)
    if est_classes is None:
        return np.zeros(n, dtype=np.int64), np.ones(n)
    seen = [int(c) for c in est_classes]
    missing = sorted({int(w) for w in wanted} - set(seen))
    if missing:
        name = repr(labels[missing[0]]) if labels is not None else f"number {missing[0]}"
        raise InvalidRequest(
            f"class {name} never appeared in this model's training data, so it has no output "
            "to explain",
            fix="explain one of the classes the model was trained on",
        )
    positions = np.asarray([seen.index(int(w)) for w in wanted], dtype=np.int64)
    if n_outputs == 1 and len(seen) == 2:
        return np.zeros(n, dtype=np.int64), np.where(positions == 1, 1.0, -1.0)
    return positions, np.ones(n)
