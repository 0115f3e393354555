"""A scikit-learn estimator as a lepton :class:`Model`, and what its algorithms share.

Classification labels are encoded as indices into ``classes`` before fitting, so probability
columns always follow ``classes`` (even when the training split lacks a class) and any label
type works. The saved directory holds ``model.skops`` and ``config.json``; nothing is pickled.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from lepton.algorithms.base import Callbacks, InputKind, Model, Task, TrainData
from lepton.algorithms.metrics import classification_metrics, regression_metrics
from lepton.algorithms.persist import load_json, load_sklearn, save_json, save_sklearn
from lepton.algorithms.preprocess import TabularSchema
from lepton.errors import InvalidRequest

__all__ = [
    "MAX_CORES",
    "SklearnModel",
    "as_texts",
    "class_list",
    "class_proba",
    "encode_labels",
    "limited_threads",
    "log_scores",
    "thread_limit",
]

MAX_CORES = 2
"""Cores one fit may use (``n_jobs``, OpenMP and BLAS threads), so jobs share a machine."""

SMALL_FIT = 1_000_000
"""Below this many cells one thread is faster: OpenMP threads spin-wait, and on a busy 2-core
box boosting 450 x 30 rows took 14 s on 2 threads against 0.5 s on 1."""

FORMAT = 1


def class_list(data: TrainData) -> list[Any]:
    """The classes in their fixed order: ``data.classes``, else the sorted training labels."""
    if data.classes is not None:
        return list(data.classes)
    seen = set(np.asarray(data.y_train).tolist())
    if data.y_val is not None:
        seen |= set(np.asarray(data.y_val).tolist())
    return sorted(seen)


def encode_labels(y: Any, classes: Sequence[Any]) -> np.ndarray:
    """Indices of ``y`` in ``classes``; a label outside them is an error naming it."""
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray(y, dtype=object).ravel().tolist()
    try:
        return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    except (KeyError, TypeError):
        bad = next(v for v in labels if not _hashable_in(v, index))
        shown = ", ".join(map(repr, classes[:20]))
        raise InvalidRequest(
            f"label {bad!r} is not one of the classes: {shown}",
            fix="clean the target column, or pass classes that include every label",
        ) from None


def _hashable_in(value: Any, index: dict[Any, int]) -> bool:
    try:
        return value in index
    except TypeError:
        return False


def _json_label(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def as_texts(X: Any) -> list[str]:
    """A batch of documents as strings (missing ones as empty)."""
    if isinstance(X, str):
        raise InvalidRequest("expected a list of texts, got one string", fix="send [text, ...]")
    return ["" if v is None or v != v else str(v) for v in np.asarray(X, dtype=object).ravel()]


_CONTROLLER: list[Any] = []


def thread_limit(cells: int) -> Any:
    """A context with at most ``MAX_CORES`` BLAS/OpenMP threads, one below ``SMALL_FIT`` cells.

    Process-wide (as OpenMP's setting is); the controller is cached because building one costs
    ~6 ms, about as much as predicting a small batch.
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1 if cells < SMALL_FIT else MAX_CORES)


@contextmanager
def limited_threads(cells: int) -> Iterator[None]:
    """:func:`thread_limit` for a fit, which also silences ConvergenceWarning.

    ``max_iter`` bounds every solver here; a fit that stops short of convergence still predicts,
    and its validation score (which AutoML ranks) says how good it is.
    """
    from sklearn.exceptions import ConvergenceWarning

    with thread_limit(cells), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def class_proba(estimator: Any, X: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per class, zeros for classes absent from training."""
    raw = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    proba = np.zeros((raw.shape[0], n_classes))
    proba[:, np.asarray(estimator.classes_, dtype=np.int64)] = raw
    return proba


def log_scores(
    callbacks: Callbacks,
    step: int,
    estimator: Any,
    X: Any,
    y: Any,
    classes: list[Any] | None,
    prefix: str,
) -> dict[str, float]:
    """Score a (partly) fitted estimator on ``X`` (labels as class indices) and log it."""
    if classes is not None:
        n = len(classes)
        proba = class_proba(estimator, X, n)
        scores = classification_metrics(y, estimator.predict(X), proba, list(range(n)))
    else:
        scores = regression_metrics(y, estimator.predict(X))
    metrics = {f"{prefix}_{k}": v for k, v in scores.items()}
    callbacks.log(step=step, **metrics)
    return metrics


class SklearnModel(Model):
    """A fitted scikit-learn estimator plus how to turn raw inputs into its input."""

    flavour: ClassVar[str] = "sklearn"

    def __init__(
        self,
        *,
        algorithm: str,
        task: Task,
        kind: InputKind,
        estimator: Any,
        classes: list[Any] | None,
        schema: TabularSchema | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.task = task
        self.kind = kind
        self.estimator = estimator
        self.classes = [_json_label(c) for c in classes] if classes is not None else None
        self.schema = schema
        self.extra = dict(extra or {})

    @property
    def feature_names(self) -> list[str]:
        return self.schema.columns if self.schema is not None else []

    def inputs(self, X: Any) -> Any:
        """What the estimator is fed for the raw inputs ``X``."""
        if self.schema is not None:
            return self.schema.prepare(X)
        return as_texts(X)

    def predict(self, X: Any) -> np.ndarray:
        inputs = self.inputs(X)
        with thread_limit(_cells(inputs)):
            raw = self.estimator.predict(inputs)
        if self.task != Task.classification or self.classes is None:
            return np.asarray(raw, dtype=np.float64)
        return np.asarray(self.classes)[np.asarray(raw, dtype=np.int64)]

    def predict_proba(self, X: Any) -> np.ndarray | None:
        if self.task != Task.classification or self.classes is None:
            return None
        inputs = self.inputs(X)
        with thread_limit(_cells(inputs)):
            return class_proba(self.estimator, inputs, len(self.classes))

    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "flavour": self.flavour,
            "algorithm": self.algorithm,
            "task": str(self.task),
            "kind": str(self.kind),
            "classes": self.classes,
            "feature_names": self.feature_names,
            "schema": self.schema.to_json() if self.schema is not None else None,
            **self.extra,
        }

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_sklearn(self.estimator, directory / "model.skops")
        save_json(self.config(), directory / "config.json")

    @classmethod
    def load_as(cls, directory: Path, algorithm: str) -> Self:
        """Load what :meth:`save` wrote; it must be a model of ``algorithm``."""
        config = load_json(directory / "config.json")
        if config.get("flavour") != cls.flavour or config.get("algorithm") != algorithm:
            raise InvalidRequest(
                f"{directory} holds a {config.get('flavour')} model of "
                f"{config.get('algorithm')!r}, not of {algorithm!r}",
                fix=f"load it with algorithm {config.get('algorithm')}",
            )
        known = {"format", "flavour", "algorithm", "task", "kind", "classes", "feature_names"}
        schema = config.pop("schema", None)
        return cls(
            algorithm=algorithm,
            task=Task(config["task"]),
            kind=InputKind(config["kind"]),
            estimator=load_sklearn(directory / "model.skops"),
            classes=config.get("classes"),
            schema=TabularSchema.from_json(schema) if schema else None,
            extra={k: v for k, v in config.items() if k not in known},
        )


def _cells(inputs: Any) -> int:
    shape = getattr(inputs, "shape", None)
    return int(np.prod(shape)) if shape else len(inputs) * 100
