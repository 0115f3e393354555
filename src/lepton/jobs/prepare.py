"""From a dataset version to an algorithm's input: which task and input kind the data is, and the
train / validation / test arrays cut by the version's stored split.

The same rules run twice: at submit (so a target with one class or an algorithm that does not
fit the data fails at once, with the reason) and in the runner (to build the arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton.algorithms.base import InputKind, Task, TrainData
from lepton.data.columns import unknown_column
from lepton.errors import InvalidRequest
from lepton.schemas import Column, ColumnKind, Profile

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Problem", "build_train_data", "infer_problem", "season_of"]

FORECASTERS = frozenset({"lstm", "gru"})
_MAX_INT_CLASSES = 50  # an integer target with more distinct values is a regression target
_MIN_ROWS = 10  # fewer rows cannot fill a train, a validation and a test split usefully


@dataclass(frozen=True)
class Problem:
    """What the data asks for."""

    task: Task
    kind: InputKind
    target: str
    time_column: str | None = None


def infer_problem(
    columns: list[Column], target: str | None, algorithm: str, profile: Profile
) -> Problem:
    """The task and input kind of a dataset, with the checks a user needs to hear about."""
    names = [c.name for c in columns]
    by_name = {c.name: c for c in columns}
    if target is None:
        raise InvalidRequest(
            "the dataset has no target column set and none could be guessed",
            fix=f"pass --target with one of: {', '.join(names[:20])}",
        )
    if target not in by_name:
        raise unknown_column(target, names, where="--target", use="pass --target {}")
    if profile.rows < _MIN_ROWS:
        raise InvalidRequest(
            f"the dataset has {profile.rows} rows; training needs at least {_MIN_ROWS} to split "
            "into train, validation and test",
            fix="push more rows",
        )
    column = by_name[target]
    times = [c.name for c in columns if c.kind == ColumnKind.datetime and c.name != target]
    if algorithm in FORECASTERS or (
        algorithm == "auto" and times and column.kind == ColumnKind.numeric and len(columns) == 2
    ):
        if column.kind != ColumnKind.numeric:
            raise InvalidRequest(
                f"forecasting needs a numeric target; '{target}' is {column.kind.value}",
                fix="pick a numeric column with --target",
            )
        if not times:
            raise InvalidRequest(
                "forecasting needs a datetime column to order the series; the dataset has none",
                fix="push the data with a date or time column",
            )
        return Problem(Task.forecasting, InputKind.sequence, target, times[0])
    if any(c.kind == ColumnKind.image for c in columns):
        kind = InputKind.image
    elif [c.kind for c in columns if c.name != target] == [ColumnKind.text]:
        kind = InputKind.text
    else:
        kind = InputKind.tabular
    distinct = next(p.distinct for p in profile.column_profiles if p.name == target)
    classify = column.kind in (ColumnKind.categorical, ColumnKind.boolean, ColumnKind.text) or (
        column.kind == ColumnKind.numeric
        and distinct <= _MAX_INT_CLASSES
        and column.dtype.startswith(("int", "uint"))
    )
    if kind in (InputKind.image, InputKind.text) or classify:
        if distinct < 2:
            raise InvalidRequest(
                f"the target '{target}' has only one class; a classifier needs at least two",
                fix="pick another --target, or push data with more than one class",
            )
        return Problem(Task.classification, kind, target)
    return Problem(Task.regression, kind, target)


def season_of(times: Any) -> int | None:
    """The seasonal period implied by the spacing of timestamps: weekly data → 52, daily → 7,
    monthly → 12, hourly → 24."""
    import pandas as pd

    deltas = pd.Series(pd.to_datetime(times)).sort_values().diff().dropna()
    if deltas.empty:
        return None
    days = deltas.median() / pd.Timedelta(days=1)
    for low, high, period in ((0.03, 0.05, 24), (0.9, 1.1, 7), (6.5, 7.5, 52), (27, 32, 12)):
        if low <= days <= high:
            return period
    return None


def build_train_data(
    frame: pd.DataFrame, assignment: np.ndarray, problem: Problem, classes_hint: list[Any] | None
) -> TrainData:
    """Cut ``frame`` by ``assignment`` (0 train, 1 validation, 2 test) into an algorithm's
    input."""
    target = problem.target
    if problem.task == Task.forecasting:
        assert problem.time_column is not None
        order = np.argsort(frame[problem.time_column].to_numpy(), kind="stable")
        series = frame[target].to_numpy(dtype=np.float64)[order]
        parts = assignment[order]
        return TrainData(
            task=problem.task,
            kind=problem.kind,
            X_train=series[parts == 0],
            y_train=None,
            X_val=series[parts == 1],
            y_val=None,
            X_test=series[parts == 2],
            y_test=None,
            feature_names=[target],
            season=season_of(frame[problem.time_column]),
        )
    y = frame[target].to_numpy()
    if problem.kind == InputKind.image:
        from PIL import Image

        X: Any = np.stack([np.asarray(Image.open(BytesIO(b))) for b in frame["image"]])
        features = ["image"]
    elif problem.kind == InputKind.text:
        text_column = next(c for c in frame.columns if c != target)
        X = frame[text_column].astype(str).to_numpy(dtype=object)
        features = [text_column]
    else:
        X = frame.drop(columns=[target])
        features = list(X.columns)
    classes: list[Any] | None = None
    if problem.task == Task.classification:
        present = y[~_isnull(y)]
        classes = sorted(set(present.tolist()), key=str) if classes_hint is None else classes_hint
        keep = ~_isnull(y)  # rows without a label teach nothing and score nothing
    else:
        keep = ~_isnull(y)
    masks = [keep & (assignment == i) for i in range(3)]

    def cut(values: Any, mask: np.ndarray) -> Any:
        return values[mask] if not hasattr(values, "iloc") else values.iloc[mask]

    return TrainData(
        task=problem.task,
        kind=problem.kind,
        X_train=cut(X, masks[0]),
        y_train=y[masks[0]],
        X_val=cut(X, masks[1]) if masks[1].any() else None,
        y_val=y[masks[1]] if masks[1].any() else None,
        X_test=cut(X, masks[2]),
        y_test=y[masks[2]],
        feature_names=features,
        classes=classes,
    )


def _isnull(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)
