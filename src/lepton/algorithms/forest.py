"""Random forests for tabular classification and regression.

Trees are grown in up to five warm-started stages, so validation metrics stream while the
forest grows and a cancelled job stops with the trees it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lepton.algorithms.base import Param, ParamValue, Task
from lepton.algorithms.sklearn_model import MAX_CORES
from lepton.algorithms.tabular import SklearnTabular, growth

__all__ = ["RandomForest"]

STAGES = 5


class RandomForest(SklearnTabular):
    """Bagged decision trees with random feature subsets."""

    name: ClassVar[str] = "random_forest"
    family: ClassVar[str] = "forest"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification, Task.regression})
    summary: ClassVar[str] = "Random forest of decision trees; robust defaults, little tuning."
    params: ClassVar[Mapping[str, Param]] = {
        "n_estimators": Param("int", 200, 50, 500, help="number of trees"),
        "max_depth": Param("int", 0, 0, 64, help="tree depth limit; 0 is unlimited"),
        "min_samples_leaf": Param("int", 1, 1, 50, log=True, help="fewest rows in a leaf"),
        "max_features": Param(
            "choice",
            "auto",
            choices=("auto", "sqrt", "log2", "half", "all"),
            help="features tried per split; auto: sqrt for classification, all for regression",
        ),
    }

    def estimator(self, task: Task, params: Mapping[str, ParamValue], seed: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        features: dict[ParamValue, Any] = {"sqrt": "sqrt", "log2": "log2", "half": 0.5, "all": 1.0}
        features["auto"] = "sqrt" if task == Task.classification else 1.0
        Estimator = RandomForestClassifier if task == Task.classification else RandomForestRegressor
        return Estimator(
            n_estimators=int(params["n_estimators"]),
            max_depth=int(params["max_depth"]) or None,
            min_samples_leaf=int(params["min_samples_leaf"]),
            max_features=features[params["max_features"]],
            n_jobs=MAX_CORES,
            random_state=seed,
            warm_start=True,
        )

    def stages(self, estimator: Any) -> tuple[str, list[int]] | None:
        return "n_estimators", growth(int(estimator.n_estimators), STAGES)
