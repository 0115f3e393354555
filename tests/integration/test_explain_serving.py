"""``POST /explain`` of a served model, through the replica runtime's own loader and wiring.

The runtime loads the saved model as a replica does (``model_app``), finds this library's
``explainer_for`` and answers in-process; the test checks what a caller of the endpoint sees:
one attribution per input column, adding up to the explained output, for the row it sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.registry import get_algorithm
from lepton.serving.runner import ReplicaConfig, model_app


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A random forest saved as a replica finds it, and its training rows."""
    directory = tmp_path_factory.mktemp("forest")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["age", "dose", "weight"])
    X["sex"] = rng.choice(["f", "m"], size=200)
    y = np.where(X["dose"] > 0, "responds", "does not")
    data = TrainData(Task.classification, InputKind.tabular, X, y)
    get_algorithm("random_forest").fit(data, {"n_estimators": 50}, NullCallbacks()).save(directory)
    return directory, X


def explain(directory: Path, body: dict[str, Any]) -> httpx.Response:
    async def scenario() -> httpx.Response:
        app = model_app(directory, ReplicaConfig(token_hashes=None))
        app.start(asyncio.get_running_loop())
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://replica") as c:
                return await c.post("/explain", json=body)
        finally:
            app.stop()

    return asyncio.run(scenario())


def test_a_served_forest_explains_the_row_it_is_sent(forest: tuple[Path, pd.DataFrame]) -> None:
    directory, X = forest
    answer = explain(directory, {"rows": [X.iloc[0].to_dict()]})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["method"] == "tree_shap" and data["output_space"] == "probability"
    explained = data["rows"][0]
    assert len(explained["attributions"]) == 4  # age, dose, weight, sex: sex's one-hots summed
    total = explained["base_value"] + sum(explained["attributions"])
    assert abs(total - explained["output"]) < 1e-6
    names = explained.get("names") or []
    top = int(np.argmax(np.abs(explained["attributions"])))
    assert names[top] == "dose"


def test_a_row_missing_a_column_is_a_clear_4xx(forest: tuple[Path, pd.DataFrame]) -> None:
    directory, X = forest
    answer = explain(directory, {"rows": [X.drop(columns="dose").iloc[0].to_dict()]})
    assert 400 <= answer.status_code < 500, answer.text
    assert "dose" in answer.json()["error"]["message"]
