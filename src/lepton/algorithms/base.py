"""The contract every built-in algorithm keeps.

An :class:`Algorithm` declares the tasks and input kinds it supports and its hyperparameters
(defaults and search ranges, which AutoML explores); ``fit`` returns a :class:`Model` that
predicts and saves itself in a safe format (skops for scikit-learn, safetensors plus a JSON
config for PyTorch), so loading a model never unpickles anything.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from lepton.errors import InvalidRequest

__all__ = [
    "Algorithm",
    "Callbacks",
    "InputKind",
    "Model",
    "NullCallbacks",
    "Param",
    "ParamValue",
    "Task",
    "TrainData",
]


class Task(StrEnum):
    classification = "classification"
    regression = "regression"
    forecasting = "forecasting"


class InputKind(StrEnum):
    tabular = "tabular"
    image = "image"
    sequence = "sequence"
    text = "text"


ParamValue = float | int | str | bool


@dataclass(frozen=True)
class Param:
    """A hyperparameter: its default, and the range AutoML searches.

    ``kind`` is ``int``, ``float``, ``bool`` or ``choice``; numeric ranges are inclusive and
    searched on a log scale when ``log`` is set.
    """

    kind: str
    default: ParamValue
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[ParamValue, ...] = ()
    help: str = ""

    def validate(self, name: str, value: Any) -> ParamValue:
        """``value`` converted to this parameter's type; out of range is an error that says the
        range."""
        try:
            if self.kind == "int":
                converted: ParamValue = int(value)
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
            elif self.kind == "float":
                converted = float(value)
                if not math.isfinite(converted):
                    raise ValueError
            elif self.kind == "bool":
                text = str(value).strip().lower()
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                converted = text in ("true", "1", "yes")
            else:
                converted = value if value in self.choices else str(value)
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"parameter {name}={value!r} is not a {self.kind}",
                fix=f"pass --param {name}={self.default} ({self.help or self.kind})",
            ) from None
        if self.kind == "choice" and converted not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise InvalidRequest(
                f"parameter {name}={value!r} is not one of: {allowed}",
                fix=f"pass --param {name}={self.choices[0]}",
            )
        numeric = self.kind in ("int", "float") and isinstance(converted, (int, float))
        if numeric and (
            (self.low is not None and converted < self.low)  # type: ignore[operator]
            or (self.high is not None and converted > self.high)  # type: ignore[operator]
        ):
            raise InvalidRequest(
                f"parameter {name}={value!r} is outside {self.low}..{self.high}",
                fix=f"pass a value in that range, e.g. --param {name}={self.default}",
            )
        return converted

    def suggest(self, trial: Any, name: str) -> ParamValue:
        """Ask an Optuna trial for a value in this parameter's range."""
        if self.kind == "int":
            return int(
                trial.suggest_int(name, int(self.low or 0), int(self.high or 0), log=self.log)
            )
        if self.kind == "float":
            return float(
                trial.suggest_float(name, float(self.low or 0), float(self.high or 0), log=self.log)
            )
        if self.kind == "bool":
            return bool(trial.suggest_categorical(name, [True, False]))
        choice: ParamValue = trial.suggest_categorical(name, list(self.choices))
        return choice


@dataclass
class TrainData:
    """Data prepared for one algorithm run.

    * tabular: ``X_*`` are pandas DataFrames (mixed types; the algorithm preprocesses);
    * image: ``X_*`` are uint8 arrays ``(N, H, W)`` or ``(N, H, W, C)``;
    * text: ``X_*`` are 1-D object arrays of strings;
    * sequence (forecasting): ``X_*`` are 1-D float arrays of the series, in time order, for
      the train / validation / test stretches; ``y_*`` are ``None`` and ``season`` is the period.

    ``y_*`` hold class labels (any type) or numbers. ``classes`` lists the classes in a fixed
    order (sorted) for classification.
    """

    task: Task
    kind: InputKind
    X_train: Any
    y_train: Any
    X_val: Any = None
    y_val: Any = None
    X_test: Any = None
    y_test: Any = None
    feature_names: list[str] = field(default_factory=list)
    classes: list[Any] | None = None
    season: int | None = None


class Callbacks(Protocol):
    """What a training loop may report and ask while it runs."""

    resume_state: bytes | None
    """A checkpoint from an earlier attempt of the same job, or None."""

    def log(self, step: int, **metrics: float) -> None:
        """Record metrics (``loss``, ``val_accuracy``, ...) at a step (an epoch for nets)."""

    def checkpoint(self, state: bytes) -> None:
        """Keep a resumable state (nets call this at the end of every epoch)."""

    def should_stop(self) -> bool:
        """True when the job was cancelled or its time budget is spent."""


@dataclass
class NullCallbacks:
    """Callbacks that record metrics in memory and never stop; for tests and plain use."""

    resume_state: bytes | None = None
    logged: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    checkpoints: list[bytes] = field(default_factory=list)

    def log(self, step: int, **metrics: float) -> None:
        self.logged.append((step, metrics))

    def checkpoint(self, state: bytes) -> None:
        self.checkpoints.append(state)

    def should_stop(self) -> bool:
        return False


class Model(ABC):
    """A trained model: predicts, and saves itself without pickle."""

    flavour: ClassVar[str]
    """``sklearn`` (saved with skops) or ``torch`` (safetensors + JSON config)."""

    algorithm: str
    task: Task
    classes: list[Any] | None

    @abstractmethod
    def predict(self, X: Any) -> np.ndarray:
        """Labels (classification), values (regression), or, for forecasting, the ``len(X)``
        steps after the history the model was trained on (only ``len(X)`` is used)."""

    def predict_proba(self, X: Any) -> np.ndarray | None:
        """Class probabilities in ``classes`` order, or None when the model has none."""
        return None

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the model into an empty directory, in safe formats only."""


class Algorithm(ABC):
    """A family member of the built-in library."""

    name: ClassVar[str]
    family: ClassVar[str]
    tasks: ClassVar[frozenset[Task]]
    kinds: ClassVar[frozenset[InputKind]]
    params: ClassVar[Mapping[str, Param]]
    summary: ClassVar[str] = ""
    data_parallel: ClassVar[bool] = False
    """Whether it trains on several workers at once (``--workers``): the PyTorch nets do."""

    def supports(self, task: Task, kind: InputKind) -> bool:
        return task in self.tasks and kind in self.kinds

    def resolve(self, given: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Defaults overlaid with ``given``; an unknown name is an error listing the known ones."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise InvalidRequest(
                f"algorithm {self.name} has no parameter {unknown[0]!r}; its parameters are: {known}",
                fix=f"see them with: lepton algorithms show {self.name}",
            )
        values = {name: p.default for name, p in self.params.items()}
        values.update({name: self.params[name].validate(name, v) for name, v in given.items()})
        return values

    @abstractmethod
    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> Model:
        """Train on ``data.X_train``/``y_train`` (watching the validation split if given)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Model:
        """Load a model that :meth:`Model.save` wrote, without unpickling."""
