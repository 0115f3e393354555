"""Exact SHAP values for the scikit-learn tabular models: tree ensembles and linear models.

Our tabular models are Pipelines: ``TabularSchema.prepare``, a ColumnTransformer (impute,
scale, one-hot), then the estimator. SHAP values are computed exactly in the estimator's input
space (a tree splits on scaled values, a linear model weighs them) and then summed back to the
user's columns: one-hot columns add up to their categorical column, a scaled number maps to
itself. Summing preserves additivity, so ``base_value + sum(attributions)`` still equals the
output to floating-point precision.

Output spaces, chosen so additivity is exact (see ``explanation.OUTPUT_SPACES``):

* random forests (and single trees) average leaf probabilities: explained as ``probability``;
* gradient boosting sums trees in log-odds: explained as ``log_odds`` (binary) or ``logit``
  (multiclass); shap's probability mode for boosting is interventional and, measured on
  scikit-learn's HistGradientBoosting, did not add up to the served probability;
* logistic regression is linear in log-odds, so linear SHAP, ``w * (x - E[x])``, is exact there
  and not in probability space: explained as ``log_odds`` / ``logit``;
* regressors: ``value``.

Every row also carries the served ``probability`` of the explained class.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.explain.background import Background
from lepton.explain.explanation import Explanation, RowExplanation, json_label
from lepton.explain.targets import check_count, check_no_overlay, class_columns, target_indices

__all__ = ["LinearShap", "TreeShap", "input_groups", "is_linear", "is_tree", "split_pipeline"]

# Tree ensembles whose structure shap's TreeExplainer reads exactly.
TREE_TYPES = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }
)


def is_tree(estimator: Any) -> bool:
    return type(estimator).__name__ in TREE_TYPES and type(estimator).__module__.startswith(
        "sklearn."
    )


def is_linear(estimator: Any) -> bool:
    """A fitted scikit-learn linear model: its output is ``coef_ @ x + intercept_``."""
    return (
        type(estimator).__module__.startswith("sklearn.linear_model")
        and hasattr(estimator, "coef_")
        and hasattr(estimator, "intercept_")
    )


def import_shap() -> Any:
    """shap, imported with its import-time warnings silenced (and only those).

    shap 0.51 builds its plot colour maps at import with matplotlib calls that matplotlib 3.10
    marks ``PendingDeprecationWarning``; pytest runs with warnings as errors.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="shap")
        import shap

    return shap


def split_pipeline(model: Any) -> tuple[Any, Any]:
    """``(preprocessing, estimator)`` of a SklearnModel; preprocessing is None when absent."""
    estimator = model.estimator
    steps = getattr(estimator, "steps", None)
    if not steps:
        return None, estimator
    return (estimator[:-1] if len(steps) > 1 else None), steps[-1][1]


def input_groups(pre: Any, columns: list[str]) -> np.ndarray | None:
    """A 0/1 matrix (transformed columns x input columns) saying where each transformed column
    came from, or None when the preprocessing is not a ColumnTransformer we can read."""
    if pre is not None and len(getattr(pre, "steps", ())) == 1:
        pre = pre[0]
    if pre is None or not hasattr(pre, "output_indices_"):
        return None
    width = max((s.stop for s in pre.output_indices_.values()), default=0)
    groups = np.zeros((width, len(columns)))
    for name, transformer, cols in pre.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        block = pre.output_indices_[name]
        widths = _widths(transformer, list(cols))
        if sum(widths) != block.stop - block.start or any(c not in columns for c in cols):
            return None
        start = block.start
        for col, w in zip(cols, widths, strict=True):
            groups[start : start + w, columns.index(col)] = 1.0
            start += w
    return groups if groups.sum(axis=1).min(initial=1.0) == 1.0 else None


def _widths(transformer: Any, cols: list[str]) -> list[int]:
    last = transformer.steps[-1][1] if hasattr(transformer, "steps") else transformer
    if type(last).__name__ != "OneHotEncoder":
        return [1] * len(cols)
    infrequent = getattr(last, "infrequent_categories_", [None] * len(cols))
    dropped = last.drop_idx_ if last.drop_idx_ is not None else [None] * len(cols)
    return [
        len(cats) - (len(rare) - 1 if rare is not None else 0) - (drop is not None)
        for cats, rare, drop in zip(last.categories_, infrequent, dropped, strict=True)
    ]


class _PipelineShap:
    """What tree and linear SHAP share: inputs, classes, and summing back to input columns."""

    kind = "tabular"
    method = ""
    output_space = ""

    def __init__(self, model: Any) -> None:
        if getattr(model, "schema", None) is None:
            raise InvalidRequest(
                f"{type(model).__name__} has no tabular schema to explain against",
                fix="explain a tabular model",
            )
        self.model = model
        self.pre, self.estimator = split_pipeline(model)
        self.columns: list[str] = list(model.schema.columns)
        self.classes: list[Any] | None = model.classes
        self.groups = input_groups(self.pre, self.columns)
        if self.groups is None:
            raise InvalidRequest(
                "this model's preprocessing cannot be mapped back to its input columns",
                fix="explain it with the model-agnostic explainer (pass a background)",
            )

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        from lepton.algorithms.sklearn_model import thread_limit

        check_no_overlay(overlay, self.kind)
        # One thread for a few rows, as predict does: boosting's OpenMP threads spin-wait, and
        # on the busy 2-core box a one-row explanation of the breast-cancer boosting model took
        # 129 ms (p50) on two threads against 8 ms on one.
        with thread_limit(len(X) * len(self.columns) if hasattr(X, "__len__") else 0):
            transformed = self.transform(X)
            values, base, raw = self.shap(transformed)
            return self.rows(transformed, values, base, raw.reshape(len(transformed), -1), target)

    def shap(self, transformed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SHAP values (rows, transformed columns, outputs), base values (outputs,) and the
        estimator's own output (rows, outputs) in the explained space."""
        raise NotImplementedError

    def transform(self, X: Any) -> np.ndarray:
        """The estimator's input for rows ``X``."""
        frame = self.model.schema.prepare(X)
        check_count(len(frame))
        transformed = frame if self.pre is None else self.pre.transform(frame)
        return np.asarray(transformed, dtype=np.float64)

    def rows(
        self,
        transformed: np.ndarray,
        attributions: np.ndarray,
        base: np.ndarray,
        raw: np.ndarray,
        target: Any,
    ) -> Explanation:
        """Assemble rows from per-output SHAP values.

        ``attributions`` is (rows, transformed columns, outputs), ``base`` (outputs,) and
        ``raw`` (rows, outputs): the estimator's own output in the explained space.
        """
        from lepton.algorithms.sklearn_model import class_proba

        # What /predict serves, from the already transformed rows (preparing them twice would
        # read datetime columns, by then float seconds, as nanoseconds).
        classify = self.classes is not None
        proba = None
        if self.classes is not None and self.output_space == "probability":
            # Already computed as the explained output: a forest's predict_proba costs as much
            # as its SHAP values (~5 ms for 200 trees), so it is not run twice.
            proba = np.zeros((len(raw), len(self.classes)))
            proba[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = raw
        elif self.classes is not None:
            proba = class_proba(self.estimator, transformed, len(self.classes))
        served = proba if proba is not None else self.estimator.predict(transformed)[:, None]
        wanted = target_indices(self.classes, target, served.argmax(axis=1))
        est_classes = getattr(self.estimator, "classes_", None) if classify else None
        cols, signs = class_columns(est_classes, wanted, attributions.shape[2], self.classes)
        picked = attributions[np.arange(len(cols)), :, cols] * signs[:, None]
        per_input = picked @ self.groups
        bases = base[cols] * signs
        outputs = raw[np.arange(len(cols)), cols] * signs
        out = Explanation(self.kind, self.method, self.output_space, additive=True)
        for i in range(len(cols)):
            label = self.classes[wanted[i]] if self.classes is not None else None
            prediction = self.classes[int(served[i].argmax())] if self.classes else served[i, 0]
            out.rows.append(
                RowExplanation(
                    prediction=json_label(prediction),
                    target=json_label(label),
                    output=float(outputs[i]),
                    base_value=float(bases[i]),
                    attributions=per_input[i],
                    names=self.columns,
                    probability=float(served[i, wanted[i]]) if proba is not None else None,
                    delta=float(outputs[i] - bases[i] - per_input[i].sum()),
                )
            )
        return out


class TreeShap(_PipelineShap):
    """Exact (path-dependent) tree SHAP; needs no background: trees record their own cover."""

    method = "tree_shap"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        shap = import_shap()
        self.tree = shap.TreeExplainer(self.estimator)
        space = self.tree.model.tree_output
        if self.classes is None:
            self.output_space = "value"
        elif space == "probability":
            self.output_space = "probability"
        else:
            n_out = len(np.atleast_1d(self.tree.expected_value))
            self.output_space = "log_odds" if n_out == 1 else "logit"

    def shap(self, transformed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = np.asarray(self.tree.shap_values(transformed, check_additivity=False))
        if values.ndim == 2:
            values = values[:, :, None]
        base = np.atleast_1d(np.asarray(self.tree.expected_value, dtype=np.float64))
        # The explained output, computed independently of the SHAP values: probabilities for
        # forests, the raw score (log-odds, logits, values) for boosting and regressors.
        if self.output_space == "probability":
            raw = np.asarray(self.estimator.predict_proba(transformed))
        elif self.classes is not None:
            raw = np.asarray(self.estimator.decision_function(transformed))
        else:
            raw = np.asarray(self.estimator.predict(transformed))
        return values, base, raw


class LinearShap(_PipelineShap):
    """Exact linear SHAP, ``w * (x - E_background[x])``, with features taken as independent."""

    method = "linear_shap"

    def __init__(self, model: Any, background: Background) -> None:
        super().__init__(model)
        bg = self.transform(background.rows)
        self.mean = background.weights @ bg
        self.coef = np.atleast_2d(np.asarray(self.estimator.coef_, dtype=np.float64))
        self.intercept = np.atleast_1d(np.asarray(self.estimator.intercept_, dtype=np.float64))
        self.base = self.coef @ self.mean + self.intercept
        if self.classes is None:
            self.output_space = "value"
        else:
            self.output_space = "log_odds" if self.coef.shape[0] == 1 else "logit"

    def shap(self, transformed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        values = (transformed - self.mean)[:, :, None] * self.coef.T[None, :, :]
        if self.classes is not None:
            raw = np.asarray(self.estimator.decision_function(transformed))
        else:
            raw = np.asarray(self.estimator.predict(transformed))
        return values, self.base, raw
