"""The fit loop that the tabular scikit-learn algorithms (linear, forest, boosting) share."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lepton.algorithms.base import Algorithm, Callbacks, InputKind, ParamValue, Task, TrainData
from lepton.algorithms.preprocess import TabularSchema, tabular_preprocessor
from lepton.algorithms.sklearn_model import (
    SklearnModel,
    class_list,
    encode_labels,
    limited_threads,
    log_scores,
)
from lepton.errors import InvalidRequest

__all__ = ["SklearnTabular", "growth"]


class SklearnTabular(Algorithm):
    """The fit loop of the tabular scikit-learn algorithms.

    Preprocessing is fitted once; the estimator is then fitted whole, or grown in stages
    (trees, boosting iterations) with ``warm_start`` so that validation metrics are logged per
    stage and ``callbacks.should_stop()`` ends training early with the model grown so far.
    """

    kinds: ClassVar[frozenset[InputKind]] = frozenset({InputKind.tabular})
    scale: ClassVar[bool] = False
    """Standardise numbers (linear models need it; trees do not care)."""

    @abstractmethod
    def estimator(self, task: Task, params: Mapping[str, ParamValue], seed: int) -> Any:
        """The unfitted scikit-learn estimator for ``params``."""

    def stages(self, estimator: Any) -> tuple[str, list[int]] | None:
        """``(parameter, sizes)`` to grow the estimator through, or None to fit it once."""
        return None

    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> SklearnModel:
        from sklearn.pipeline import Pipeline

        from lepton.algorithms.registry import check_fits

        check_fits(self.name, data.task, data.kind)
        values = self.resolve(params)
        schema = TabularSchema.from_frame(data.X_train, data.feature_names or None)
        classes = class_list(data) if data.task == Task.classification else None
        y = _targets(data.y_train, classes)
        pre = tabular_preprocessor(schema, scale=self.scale)
        with limited_threads(data.X_train.size):
            Xt = pre.fit_transform(schema.prepare(data.X_train))
            if data.X_val is not None and data.y_val is not None and len(data.y_val) > 0:
                Xv = pre.transform(schema.prepare(data.X_val))
                prefix, yv = "val", _targets(data.y_val, classes, train=False)
            else:
                prefix, Xv, yv = "train", Xt, y
            est = self.estimator(data.task, values, seed)
            attribute, sizes = self.stages(est) or ("", [0])
            for step, size in enumerate(sizes, start=1):
                if attribute:
                    est.set_params(**{attribute: size})
                est.fit(Xt, y)
                log_scores(callbacks, step, est, Xv, yv, classes, prefix)
                if callbacks.should_stop():
                    break
        if "n_jobs" in est.get_params():
            # Trees predicted on 2 threads sum in a varying order: the last digit of a forest's
            # regression changes from call to call. One thread makes predictions repeatable.
            est.set_params(n_jobs=None)
        return SklearnModel(
            algorithm=self.name,
            task=data.task,
            kind=data.kind,
            estimator=Pipeline([("preprocess", pre), ("model", est)]),
            classes=classes,
            schema=schema,
        )

    @classmethod
    def load(cls, directory: Path) -> SklearnModel:
        return SklearnModel.load_as(directory, cls.name)


def _targets(y: Any, classes: list[Any] | None, *, train: bool = True) -> np.ndarray:
    if classes is not None:
        codes = encode_labels(y, classes)
        if train and len(np.unique(codes)) < 2:
            raise InvalidRequest(
                f"the training labels hold one class only ({classes[codes[0]]!r})",
                fix="train on data with at least two classes",
            )
        return codes
    values = np.asarray(y, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidRequest(
            "the regression target has missing or infinite values",
            fix="drop those rows or fill the target",
        )
    return values


def growth(total: int, parts: int) -> list[int]:
    """``total`` reached in at most ``parts`` even steps: growth(200, 4) == [50, 100, 150, 200]."""
    parts = max(1, min(parts, total))
    return sorted({max(1, round(total * i / parts)) for i in range(1, parts + 1)})
