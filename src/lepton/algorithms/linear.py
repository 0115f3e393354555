"""Linear models on tabular data: logistic regression and ridge regression.

Numbers are standardised (``SklearnTabular.scale``), so one regularisation strength fits every
feature and L-BFGS converges in a few hundred iterations on typical tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lepton.algorithms.base import Param, ParamValue, Task
from lepton.algorithms.tabular import SklearnTabular

__all__ = ["LinearRegression", "LogisticRegression"]


class LogisticRegression(SklearnTabular):
    """L2-regularised logistic regression (multinomial for more than two classes)."""

    name: ClassVar[str] = "logistic_regression"
    family: ClassVar[str] = "linear"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification})
    scale: ClassVar[bool] = True
    summary: ClassVar[str] = "Logistic regression on scaled, one-hot encoded features."
    params: ClassVar[Mapping[str, Param]] = {
        "C": Param("float", 1.0, 1e-3, 1e3, log=True, help="inverse regularisation strength"),
        "class_weight": Param(
            "choice", "none", choices=("none", "balanced"), help="reweight rare classes"
        ),
        "max_iter": Param("int", 1000, 100, 10_000, log=True, help="solver iterations"),
    }

    def estimator(self, task: Task, params: Mapping[str, ParamValue], seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression as Estimator

        return Estimator(
            C=float(params["C"]),
            class_weight=None if params["class_weight"] == "none" else "balanced",
            max_iter=int(params["max_iter"]),
            random_state=seed,
        )


class LinearRegression(SklearnTabular):
    """Ridge regression: least squares with an L2 penalty ``alpha``."""

    name: ClassVar[str] = "linear_regression"
    family: ClassVar[str] = "linear"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.regression})
    scale: ClassVar[bool] = True
    summary: ClassVar[str] = "Ridge (L2-regularised least squares) on scaled features."
    params: ClassVar[Mapping[str, Param]] = {
        "alpha": Param("float", 1.0, 1e-4, 1e3, log=True, help="L2 penalty; 0 is plain OLS"),
    }

    def estimator(self, task: Task, params: Mapping[str, ParamValue], seed: int) -> Any:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=float(params["alpha"]), random_state=seed)
