"""The background sample that SHAP values are measured against, summarised by k-means.

A SHAP base value is the model's average answer over a background sample, and each
attribution says how far one feature moves the answer away from it. Keeping the training data
for that is wasteful: k-means on the (scaled, one-hot encoded) rows summarises it into ``k``
representatives, each weighted by its cluster's share of the rows. The representatives are real
training rows (the one nearest each centroid, a medoid), not centroids: a centroid of one-hot
columns is not a category, and a real row is a valid input for every model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lepton.errors import InvalidRequest

__all__ = [
    "BACKGROUND_FILE",
    "DEFAULT_K",
    "Background",
    "reference_background",
    "store_background",
    "stored_background",
    "summarise_background",
]

BACKGROUND_FILE = "explain/background.json"
"""Where a packed model version keeps its background, relative to the unpacked artifact."""

DEFAULT_K = 100
"""Representatives kept per model version: linear and tree SHAP use them all (microseconds a
row); the model-agnostic explainer takes a sub-summary (see ``permutation.BACKGROUND_ROWS``)."""

# 20: categories one-hot encoded per column for clustering; rarer ones share the zero vector.
_TOP_CATEGORIES = 20


@dataclass(frozen=True)
class Background:
    """Representative input rows (in the user's columns) and their weights (summing to 1)."""

    rows: pd.DataFrame
    weights: np.ndarray

    def __post_init__(self) -> None:
        if len(self.rows) == 0 or len(self.rows) != len(self.weights):
            raise InvalidRequest(
                f"a background needs rows and one weight per row; got {len(self.rows)} rows and "
                f"{len(self.weights)} weights",
                fix="build it with summarise_background(training_rows)",
            )

    def to_json(self) -> dict[str, Any]:
        """Columns, records and weights as plain JSON, to store with a model version."""
        records = self.rows.astype(object).where(self.rows.notna(), None)
        return {
            "columns": [str(c) for c in self.rows.columns],
            "rows": [[_plain(v) for v in row] for row in records.to_numpy().tolist()],
            "weights": [float(w) for w in self.weights],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Background:
        """The inverse of :meth:`to_json` (numeric columns come back as numbers)."""
        try:
            frame = pd.DataFrame(raw["rows"], columns=raw["columns"]).infer_objects()
            weights = np.asarray(raw["weights"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"a stored background is malformed ({exc})",
                fix="store Background.to_json() as it was written",
            ) from None
        return cls(frame, weights / weights.sum())

    def limit(self, k: int, seed: int = 0) -> Background:
        """At most ``k`` representatives: this one, or a k-means summary of it."""
        if len(self.rows) <= k:
            return self
        return summarise_background(self.rows, k, seed=seed, weights=self.weights)


def summarise_background(
    X: Any, k: int = DEFAULT_K, *, seed: int = 0, weights: np.ndarray | None = None
) -> Background:
    """``k`` weighted representatives of the rows ``X`` (a DataFrame or a 2-D array).

    With ``k`` rows or fewer, every row is kept with equal weight. Otherwise k-means (seeded, so
    the same data and seed give the same background) runs on standardised numbers (missing ones
    at the median) and one-hot categories, and each cluster is represented by its medoid.
    """
    frame = X if isinstance(X, pd.DataFrame) else _frame(X)
    if k < 1:
        raise InvalidRequest(f"k={k} representatives were asked for", fix="pass k >= 1")
    n = len(frame)
    if n == 0:
        raise InvalidRequest(
            "the background sample has no rows", fix="pass training rows, e.g. 100 or more"
        )
    given = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n <= k:
        return Background(frame.reset_index(drop=True), given / given.sum())
    from sklearn.cluster import KMeans

    points = _numeric(frame)
    distinct, first, inverse = np.unique(points, axis=0, return_index=True, return_inverse=True)
    if len(distinct) <= k:
        # Few distinct rows (repeated measurements, a coarse feature): each one, weighted by
        # its copies, is the exact summary; k-means would only warn about empty clusters.
        weight = np.bincount(inverse.ravel(), weights=given, minlength=len(distinct))
        return Background(frame.iloc[first].reset_index(drop=True), weight / weight.sum())
    # n_init=3: three seeded restarts; k-means++ alone occasionally strands a cluster.
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points, sample_weight=given)
    chosen, shares = [], []
    for cluster in range(k):
        members = np.flatnonzero(km.labels_ == cluster)
        if len(members) == 0:
            continue
        gaps = ((points[members] - km.cluster_centers_[cluster]) ** 2).sum(axis=1)
        chosen.append(members[int(np.argmin(gaps))])
        shares.append(given[members].sum())
    share = np.asarray(shares)
    return Background(frame.iloc[chosen].reset_index(drop=True), share / share.sum())


def store_background(directory: Path, background: Background) -> Path:
    """Write ``background`` into a model folder before it is packed (``explain/background.json``):
    the artifact is content-addressed, so the background is as immutable as the weights."""
    path = directory / BACKGROUND_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(background.to_json(), sort_keys=True))
    return path


def stored_background(directory: Path) -> Background | None:
    """The background packed with a model version, read from its unpacked artifact; None for a
    version registered without one."""
    path = directory / BACKGROUND_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(
            f"the stored background {BACKGROUND_FILE} cannot be read ({exc})",
            fix="register the model version again",
        ) from None
    if not isinstance(raw, dict):
        raise InvalidRequest(
            f"the stored background {BACKGROUND_FILE} is not a JSON object",
            fix="register the model version again",
        )
    return Background.from_json(raw)


def _plain(value: Any) -> Any:
    """A cell as a JSON value: dates as ISO text (the model's input reader parses them back)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (pd.Timestamp, pd.Timedelta)) or hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _frame(X: Any) -> pd.DataFrame:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise InvalidRequest(
            f"a background is a table of rows; got an array of shape {arr.shape}",
            fix="pass a DataFrame or a 2-D array of training rows",
        )
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _numeric(frame: pd.DataFrame) -> np.ndarray:
    """The rows as numbers for clustering: z-scored numerics, one-hot top categories."""
    parts: list[np.ndarray] = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
            column.dtype
        ):
            values = column.astype(np.float64)
            values = values.fillna(values.median() if values.notna().any() else 0.0).to_numpy()
            std = values.std()
            parts.append(((values - values.mean()) / (std if std > 1e-12 else 1.0))[:, None])
        else:
            text = column.astype(str).where(column.notna(), "").to_numpy()
            top = pd.Series(text).value_counts().index[:_TOP_CATEGORIES].to_numpy()
            parts.append((text[:, None] == top[None, :]).astype(np.float64))
    return np.concatenate(parts, axis=1)


def reference_background(model: Any) -> Background | None:
    """One typical input row read from a fitted built-in tabular model, the reference for SHAP
    values when no background was stored (None when the model has none to read).

    * scikit-learn pipelines: each number's training median and each category's most frequent
      value, from the fitted imputers;
    * the MLP: each number's training median; categories missing (the MLP encodes a missing
      or unseen category as all zeros, its neutral input).

    Attributions against one row are baseline Shapley values: still additive, measured from
    that typical row rather than from the average over the training data.
    """
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("encoding"), dict):
        encoding = config["encoding"]
        numbers = {c: float(v[0]) for c, v in encoding.get("numeric", {}).items()}
        columns = list(encoding["columns"])
        frame = pd.DataFrame([[numbers.get(c) for c in columns]], columns=columns)
        for col in columns:
            if col in numbers:
                frame[col] = frame[col].astype(np.float64)
        return Background(frame, np.ones(1))
    if getattr(model, "schema", None) is None:
        return None
    return _pipeline_reference(model)


def _pipeline_reference(model: Any) -> Background | None:
    from lepton.explain.tabular import split_pipeline

    pre, _ = split_pipeline(model)
    if pre is not None and len(getattr(pre, "steps", ())) == 1:
        pre = pre[0]
    values: dict[str, Any] = {}
    for name, transformer, cols in getattr(pre, "transformers_", []):
        if name == "remainder" or transformer == "drop":
            continue
        first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
        statistics = getattr(first, "statistics_", None)
        if statistics is None or len(statistics) != len(cols):
            return None
        values.update(zip(cols, statistics, strict=True))
    columns = list(model.schema.columns)
    if any(c not in values for c in columns):
        return None
    frame = pd.DataFrame([[values[c] for c in columns]], columns=columns)
    for col in model.schema.datetime:  # imputed as float seconds since 1970
        frame[col] = pd.to_datetime(frame[col].astype(float), unit="s", utc=True)
    return Background(frame, np.ones(1))
