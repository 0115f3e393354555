"""What every peer app shares: the model file, the payload and the answer.

Each app reads ``BENCH_MODEL`` (a ``model.skops`` written by benchmarks/serving.py) and answers
``{"inputs": [[32 floats], ...]}`` with ``{"outputs": [[p0, p1], ...]}``: the class probabilities,
so that every server's predictions can be compared before any timing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

MODEL_ENV = "BENCH_MODEL"
PORT_ENV = "BENCH_PORT"
VARIANT_ENV = "BENCH_VARIANT"  # "defaults" or "tuned"
# 64: the batch the reference protocol tunes every peer to (batches past it no longer pay on 2 cores)
TUNED_BATCH = 64


def load_model() -> Any:
    from lepton.algorithms.persist import load_sklearn

    return load_sklearn(Path(os.environ[MODEL_ENV]))


def predict(model: Any, rows: Any) -> list[list[float]]:
    """Class probabilities of ``rows`` (a list of rows or a 2-D array)."""
    result: list[list[float]] = model.predict_proba(np.asarray(rows, dtype=np.float64)).tolist()
    return result


def port() -> int:
    return int(os.environ[PORT_ENV])


def tuned() -> bool:
    return os.environ.get(VARIANT_ENV, "defaults") == "tuned"


def ready(url: str) -> None:
    """The line benchmarks/serving.py waits for (it also probes the endpoint itself)."""
    print(f"ready {url}", flush=True)


def predict_groups(model: Any, groups: list[list[list[float]]]) -> list[list[list[float]]]:
    """One ``predict`` call for a batch of requests, each a list of rows; answers per request."""
    out = predict(model, [row for rows in groups for row in rows])
    answers, start = [], 0
    for rows in groups:
        answers.append(out[start : start + len(rows)])
        start += len(rows)
    return answers
