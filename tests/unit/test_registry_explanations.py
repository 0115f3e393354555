"""Explanations computed at registration, without a server: what a train job records for each
kind of model, and the background file a replica reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_jobs import toy_frame

from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.registry import get_algorithm
from lepton.errors import InvalidRequest
from lepton.explain import BACKGROUND_FILE, global_explanation, stored_background
from lepton.registry.explanations import explain_trained, sample
from lepton.registry.flavours import load_model


def _toy(rows: int = 200) -> TrainData:
    frame = toy_frame(rows)
    X, y = frame.drop(columns="label"), frame["label"].to_numpy()
    cut = rows * 3 // 4
    return TrainData(
        Task.classification,
        InputKind.tabular,
        X.iloc[:cut],
        y[:cut],
        X_test=X.iloc[cut:],
        y_test=y[cut:],
        classes=["no", "yes"],
    )


def test_a_forest_records_tree_shap_without_a_background_it_would_not_use(tmp_path: Path) -> None:
    data = _toy()
    forest = get_algorithm("random_forest").fit(data, {"n_estimators": 50}, NullCallbacks(), seed=0)

    recorded = explain_trained(forest, data, seed=0)

    assert recorded.facts["method"] == "tree_shap" and recorded.facts["rows"] == 50
    assert "background_rows" not in recorded.facts and recorded.background is None
    assert {f["name"] for f in recorded.facts["features"][:2]} == {"x1", "x2"}
    assert recorded.plot is not None and recorded.plot.startswith(b"\x89PNG")
    recorded.pack_into(tmp_path)
    assert stored_background(tmp_path) is None


def test_a_linear_model_packs_the_background_its_card_was_computed_against(
    tmp_path: Path,
) -> None:
    data = _toy()
    model = get_algorithm("logistic_regression").fit(data, {}, NullCallbacks(), seed=0)

    recorded = explain_trained(model, data, seed=0)
    recorded.pack_into(tmp_path)

    background = stored_background(tmp_path)
    assert recorded.background is not None and background is not None
    assert recorded.facts["background_rows"] == len(background.rows) == 100
    assert background.rows.equals(recorded.background.rows)
    np.testing.assert_allclose(background.weights, recorded.background.weights)


def test_a_forecaster_records_why_it_has_no_explanation() -> None:
    series = np.sin(np.arange(120) / 3.0)
    data = TrainData(
        Task.forecasting, InputKind.sequence, series[:80], None, X_test=series[100:], season=12
    )

    recorded = explain_trained(object(), data, seed=0)

    assert recorded.facts == {
        "not_computed": "forecasting models have no explanations: a forecast follows the series' "
        "own history, not input features"
    }
    assert recorded.plot is None and recorded.background is None


def test_a_damaged_background_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / BACKGROUND_FILE
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2]")

    with pytest.raises(InvalidRequest, match="is not a JSON object"):
        stored_background(tmp_path)
    path.write_text('{"columns": ["a"]}')
    with pytest.raises(InvalidRequest, match="malformed"):
        stored_background(tmp_path)


def test_a_sample_is_the_same_rows_for_the_same_seed_and_keeps_their_order() -> None:
    rows = np.arange(1000)

    first = sample(rows, 200, seed=3)

    assert len(first) == 200 and np.all(np.diff(first) > 0)
    assert np.array_equal(first, sample(rows, 200, seed=3))
    assert not np.array_equal(first, sample(rows, 200, seed=4))
    assert len(sample(rows[:50], 200, seed=3)) == 50


def test_a_replica_loading_the_artifact_reproduces_the_cards_numbers(tmp_path: Path) -> None:
    """What serving needs: the unpacked artifact plus its stored background give the same
    attributions the card was computed from."""
    data = _toy()
    model = get_algorithm("logistic_regression").fit(data, {}, NullCallbacks(), seed=0)
    recorded = explain_trained(model, data, seed=0)
    model.save(tmp_path)
    recorded.pack_into(tmp_path)

    loaded = load_model(tmp_path)
    again = global_explanation(
        loaded, sample(data.X_test, 200, 0), background=stored_background(tmp_path), seed=0
    )

    assert again["features"] == recorded.facts["features"]
