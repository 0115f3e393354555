"""Model-agnostic SHAP values by antithetic permutation sampling, on the user's own columns.

For a permutation of the features, switch them on one at a time (taking the row's value instead
of the background's) and credit each with the change of the average output over the background.
The credits of one permutation telescope to ``f(x) - E_background[f]``, so every estimate is
additive exactly, however few permutations are drawn; drawing each permutation with its reverse
(antithetic pairs) cancels most of the sampling noise, and for a model that is additive in its
inputs every permutation already gives the exact Shapley values.

Why not shap's PermutationExplainer, which computes the same estimator: its numba kernels
compile on first use in every process (5.7 s measured on the 2-core box, paid by the first
``/explain`` of each replica), and its maskers want one numeric matrix, while our inputs are
mixed-type frames (numbers, categories, dates) that this code masks column by column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lepton.errors import InvalidRequest
from lepton.explain.background import Background
from lepton.explain.explanation import Explanation, RowExplanation, json_label
from lepton.explain.targets import check_count, check_no_overlay, target_indices

__all__ = ["BACKGROUND_ROWS", "PERMUTATIONS", "PermutationShap", "input_frame"]

PERMUTATIONS = 10
"""Permutations per row (5 antithetic pairs). With 30 features and 20 background rows a row costs
10 x 31 x 20 = 6,200 model evaluations, one batched call: ~10-40 ms for the MLP on 2 cores."""

BACKGROUND_ROWS = 20
"""Background representatives used here (a k-means summary of the stored ones): the cost is
linear in them, and 20 k-means medoids already place the base value within ~1% of the mean
output over the full background on the breast-cancer sample."""

# Model evaluations per batched call: ~50k rows x 30 columns keeps a call's memory near 100 MB.
_BATCH_EVALS = 50_000

Outputs = Callable[[pd.DataFrame], np.ndarray]


def input_frame(X: Any, columns: list[str]) -> pd.DataFrame:
    """Rows ``X`` (a DataFrame, records, or a 2-D array in column order) with ``columns``."""
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        if X.shape[1] != len(columns):
            raise InvalidRequest(
                f"the input has {X.shape[1]} columns, the model needs {len(columns)}: "
                + ", ".join(columns),
                fix="send a table with named columns",
            )
        frame = pd.DataFrame(X, columns=columns)
    else:
        try:
            frame = pd.DataFrame(X)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"cannot read the input as a table ({exc})",
                fix="send a list of records like [{column: value, ...}]",
            ) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidRequest(
            f"the input has no column {missing[0]!r}; the model needs: " + ", ".join(columns),
            fix="send every column the model was trained on",
        )
    return frame[columns].reset_index(drop=True)


class PermutationShap:
    """Permutation SHAP for any tabular model, given its outputs as a function of a frame.

    ``outputs`` maps a frame to ``(rows, outputs)``: class probabilities in ``classes`` order,
    or one column of regression values (``classes`` None).
    """

    kind = "tabular"
    method = "permutation_shap"

    def __init__(
        self,
        outputs: Outputs,
        columns: list[str],
        classes: list[Any] | None,
        background: Background,
        *,
        permutations: int = PERMUTATIONS,
        seed: int = 0,
    ) -> None:
        self.outputs, self.columns, self.classes = outputs, list(columns), classes
        self.output_space = "probability" if classes is not None else "value"
        self.background = background.limit(BACKGROUND_ROWS, seed=seed)
        self.bg = input_frame(self.background.rows, self.columns)
        self.permutations = max(2, permutations + permutations % 2)
        self.seed = seed
        self.base = self.background.weights @ self._outputs(self.bg)
        n = len(self.columns)
        # The same permutations for every call: one row always gets the same explanation.
        rng = np.random.default_rng(seed)
        halves = [rng.permutation(n) for _ in range(self.permutations // 2)]
        self.order = np.stack([p for h in halves for p in (h, h[::-1])])
        on = np.zeros((self.permutations, n + 1, n), dtype=bool)
        for p, perm in enumerate(self.order):
            for step in range(1, n + 1):
                on[p, step, perm[:step]] = True
        self.on = on.reshape(-1, n)  # (steps, features): which columns come from the row

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.outputs(frame), dtype=np.float64).reshape(len(frame), -1)

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        check_no_overlay(overlay, self.kind)
        frame = input_frame(X, self.columns)
        check_count(len(frame))
        served = self._outputs(frame)
        wanted = target_indices(self.classes, target, served.argmax(axis=1))
        per_row = len(self.on) * len(self.bg)
        chunk = max(1, _BATCH_EVALS // per_row)
        phis: list[np.ndarray] = []
        for start in range(0, len(frame), chunk):
            phis.extend(self._shap(frame.iloc[start : start + chunk]))
        out = Explanation(self.kind, self.method, self.output_space, additive=True)
        for i, phi in enumerate(phis):
            c = int(wanted[i])
            attributions = phi[:, c]
            output = float(served[i, c])
            prediction = self.classes[int(served[i].argmax())] if self.classes else output
            out.rows.append(
                RowExplanation(
                    prediction=json_label(prediction),
                    target=json_label(self.classes[c]) if self.classes else None,
                    output=output,
                    base_value=float(self.base[c]),
                    attributions=attributions,
                    names=self.columns,
                    probability=output if self.classes else None,
                    delta=float(output - self.base[c] - attributions.sum()),
                )
            )
        return out

    def _shap(self, rows: pd.DataFrame) -> list[np.ndarray]:
        """SHAP values ``(features, outputs)`` for each row, from one batched model call."""
        steps, b, n = len(self.on), len(self.bg), len(self.columns)
        masked: dict[str, np.ndarray] = {}
        for j, name in enumerate(self.columns):
            bg = self.bg[name].to_numpy()
            mine = rows[name].to_numpy()
            # (rows, steps, background): the row's value where column j is on, else background's.
            chosen = np.where(self.on[None, :, j, None], mine[:, None, None], bg[None, None, :])
            masked[name] = chosen.reshape(-1)
        batch = pd.DataFrame(masked)
        for name in self.columns:  # keep each column's dtype (np.where widens to object)
            if self.bg[name].dtype != object:
                # A value of another type stays as sent: the model says what it makes of it.
                with contextlib.suppress(TypeError, ValueError):
                    batch[name] = batch[name].astype(self.bg[name].dtype)
        values = self._outputs(batch).reshape(len(rows), steps, b, -1)
        means = np.einsum("rsbk,b->rsk", values, self.background.weights)
        means = means.reshape(len(rows), self.permutations, n + 1, -1)
        gains = means[:, :, 1:] - means[:, :, :-1]  # (rows, perms, step, outputs)
        phi = np.zeros((len(rows), n, means.shape[-1]))
        for p, perm in enumerate(self.order):
            phi[:, perm] += gains[:, p]
        return list(phi / self.permutations)
