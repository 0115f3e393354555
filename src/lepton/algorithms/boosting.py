"""Histogram gradient boosting for tabular classification and regression.

Boosting runs for ``max_iter`` iterations in up to ten warm-started stages (no internal early
stopping: the validation split is lepton's, and metrics on it are logged after each stage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lepton.algorithms.base import Param, ParamValue, Task
from lepton.algorithms.tabular import SklearnTabular, growth

__all__ = ["HistGradientBoosting"]

STAGES = 10


class HistGradientBoosting(SklearnTabular):
    """Gradient-boosted trees on binned features (LightGBM-style), multithreaded on 2 cores."""

    name: ClassVar[str] = "hist_gradient_boosting"
    family: ClassVar[str] = "boosting"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification, Task.regression})
    summary: ClassVar[str] = "Histogram gradient boosting; usually the strongest on tables."
    params: ClassVar[Mapping[str, Param]] = {
        "learning_rate": Param("float", 0.1, 0.01, 0.3, log=True, help="shrinkage per tree"),
        "max_iter": Param("int", 200, 20, 1000, log=True, help="boosting iterations"),
        "max_leaf_nodes": Param("int", 31, 4, 256, log=True, help="leaves per tree"),
        "min_samples_leaf": Param("int", 20, 1, 200, log=True, help="fewest rows in a leaf"),
        "l2_regularization": Param("float", 0.0, 0.0, 10.0, help="L2 penalty on leaf values"),
    }

    def estimator(self, task: Task, params: Mapping[str, ParamValue], seed: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        classify = task == Task.classification
        Estimator = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return Estimator(
            learning_rate=float(params["learning_rate"]),
            max_iter=int(params["max_iter"]),
            max_leaf_nodes=int(params["max_leaf_nodes"]),
            min_samples_leaf=int(params["min_samples_leaf"]),
            l2_regularization=float(params["l2_regularization"]),
            early_stopping=False,
            warm_start=True,
            random_state=seed,
        )

    def stages(self, estimator: Any) -> tuple[str, list[int]] | None:
        return "max_iter", growth(int(estimator.max_iter), STAGES)
