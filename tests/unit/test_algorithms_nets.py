"""The PyTorch nets: fit and predict, safe save/load, logged metrics, checkpoint and resume.

Tiny synthetic data and a few epochs keep the whole file to seconds on 2 cores; the headline
figures (MNIST accuracy, co2 MAE) come from the benchmark scripts, not from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
from sklearn.datasets import make_classification, make_regression

from lepton.algorithms.base import Algorithm, InputKind, Model, NullCallbacks, Task, TrainData
from lepton.algorithms.cnn import CNN
from lepton.algorithms.mlp import MLP
from lepton.algorithms.rnn import ForecastModel, GRUForecaster, LSTMForecaster
from lepton.errors import InvalidRequest
from lepton.registry.flavours import load_model


@dataclass
class StopAfter(NullCallbacks):
    """Asks to stop once ``epochs`` checkpoints were taken (a job killed after that epoch)."""

    epochs: int = 1

    def should_stop(self) -> bool:
        return len(self.checkpoints) >= self.epochs


def tabular(task: Task, rows: int = 200) -> TrainData:
    if task == Task.classification:
        X, y_num = make_classification(rows, n_features=6, n_informative=4, random_state=0)
        y: Any = np.where(y_num == 1, "yes", "no")
    else:
        X, y = make_regression(rows, n_features=6, noise=5.0, random_state=0)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    df.loc[::7, "f0"] = np.nan  # missing numerics take the training median
    df["colour"] = np.where(X[:, 0] > 0, "red", "blue")  # a categorical column, one-hot encoded
    cut = rows * 3 // 4
    return TrainData(
        task,
        InputKind.tabular,
        df.iloc[:cut],
        y[:cut],
        df.iloc[cut:],
        y[cut:],
        classes=["no", "yes"] if task == Task.classification else None,
    )


def images(n: int = 200) -> TrainData:
    """12x12 images: a noisy horizontal bar (class "h") or vertical bar ("v")."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 60, size=(n, 12, 12)).astype(np.uint8)
    y = np.array(["h", "v"] * (n // 2))
    for i, label in enumerate(y):
        pos = int(rng.integers(3, 9))
        if label == "h":
            X[i, pos - 1 : pos + 1, 2:10] = 255
        else:
            X[i, 2:10, pos - 1 : pos + 1] = 255
    cut = n * 3 // 4
    return TrainData(
        Task.classification, InputKind.image, X[:cut], y[:cut], X[cut:], y[cut:], classes=["h", "v"]
    )


def series(n: int = 300, season: int = 20) -> TrainData:
    """A trending sine with noise and a few gaps, cut 70/15/15."""
    t = np.arange(n, dtype=np.float64)
    s = 10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / season)
    s += np.random.default_rng(0).normal(0, 0.1, n)
    s[[17, 90, 91]] = np.nan
    a, b = int(n * 0.7), int(n * 0.85)
    return TrainData(
        Task.forecasting, InputKind.sequence, s[:a], None, s[a:b], None, s[b:], None, season=season
    )


# Each case: algorithm, data, params small enough for a second or two of training.
CASES: dict[str, tuple[Algorithm, Any, dict[str, Any]]] = {
    "mlp-classification": (
        MLP(),
        lambda: tabular(Task.classification),
        {"epochs": 20, "batch_size": 32},
    ),
    "mlp-regression": (
        MLP(),
        lambda: tabular(Task.regression),
        {"epochs": 40, "batch_size": 32, "lr": 0.01},
    ),
    "cnn": (CNN(), images, {"epochs": 3, "channels": 8, "batch_size": 32}),
    "lstm": (LSTMForecaster(), series, {"epochs": 3, "hidden": 16, "batch_size": 32}),
    "gru": (GRUForecaster(), series, {"epochs": 3, "hidden": 16, "batch_size": 32}),
}


def untimed(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k != "samples_per_s"}


def fit(case: str, callbacks: NullCallbacks | None = None, **extra: Any) -> tuple[Model, TrainData]:
    algorithm, make, params = CASES[case]
    data = make()
    model = algorithm.fit(data, {**params, **extra}, callbacks or NullCallbacks(), seed=0)
    return model, data


@functools.cache
def trained(case: str) -> tuple[Model, TrainData, NullCallbacks]:
    """One default fit per case, shared by the tests that only read it."""
    callbacks = NullCallbacks()
    model, data = fit(case, callbacks)
    return model, data, callbacks


def score(model: Model, data: TrainData) -> tuple[float, float]:
    """(the model's error, a trivial baseline's error) on the held-out stretch; lower is better."""
    if data.task == Task.classification:
        X, y = data.X_val, np.asarray(data.y_val)
        majority = pd.Series(data.y_train).mode()[0]
        return float(np.mean(model.predict(X) != y)), float(np.mean(y != majority))
    if data.task == Task.regression:
        y = np.asarray(data.y_val)
        return float(np.sqrt(np.mean((model.predict(data.X_val) - y) ** 2))), float(np.std(y))
    test = data.X_test
    naive = np.full(len(test), data.X_val[-1])  # the last observed value, held
    return float(np.nanmean(np.abs(model.predict(test) - test))), float(
        np.nanmean(np.abs(naive - test))
    )


@pytest.mark.parametrize("case", list(CASES))
def test_fit_predicts_better_than_a_trivial_baseline_and_logs_each_epoch(case: str) -> None:
    model, data, callbacks = trained(case)
    n = len(data.X_test) if data.task == Task.forecasting else len(data.X_val)
    X = data.X_test if data.task == Task.forecasting else data.X_val
    assert model.predict(X).shape == (n,)
    error, baseline = score(model, data)
    assert error < 0.6 * baseline, (error, baseline)
    steps = [step for step, _ in callbacks.logged]
    assert steps == list(range(1, len(steps) + 1)) and steps
    val_metric = {
        "mlp-classification": "val_accuracy",
        "mlp-regression": "val_rmse",
        "cnn": "val_accuracy",
        "lstm": "val_mae",
        "gru": "val_mae",
    }[case]
    assert all({"loss", val_metric} <= set(m) for _, m in callbacks.logged)
    assert len(callbacks.checkpoints) == len(steps)  # one checkpoint per epoch


@pytest.mark.parametrize("case", list(CASES))
def test_save_and_load_round_trip_writes_only_safetensors_and_json(
    case: str, tmp_path: Path
) -> None:
    model, data, _ = trained(case)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "weights.safetensors",
    ]
    # The registry's loader (the SDK's and serving's) finds the algorithm in config.json.
    assert load_model(tmp_path / "m").algorithm == CASES[case][0].name
    loaded = CASES[case][0].load(tmp_path / "m")
    X = data.X_test if data.task == Task.forecasting else data.X_val
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.classes == model.classes and loaded.flavour == "torch"
    if data.task == Task.classification:
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("case", ["mlp-classification", "cnn", "lstm"])
def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_does(
    case: str,
) -> None:
    epochs = MLP.params["epochs"].low if case.startswith("mlp") else 3  # the MLP's least is 5
    first = StopAfter(epochs=1)
    fit(case, first, epochs=epochs)
    assert [step for step, _ in first.logged] == [1]  # stopped after epoch 1
    resumed_cb = NullCallbacks(resume_state=first.checkpoints[-1])
    resumed, data = fit(case, resumed_cb, epochs=epochs)
    assert [step for step, _ in resumed_cb.logged] == list(range(2, int(epochs or 0) + 1))
    unbroken_cb = NullCallbacks()
    unbroken, _ = fit(case, unbroken_cb, epochs=epochs)
    # The checkpoint carries weights, optimizer moments, the step count and both RNG states
    # (dropout's and the loop's shuffling/augmentation), so on CPU the resumed run replays the
    # unbroken one exactly: same losses, same predictions (the time an epoch took aside).
    assert [untimed(m) for _, m in resumed_cb.logged] == [
        untimed(m) for _, m in unbroken_cb.logged[1:]
    ]
    X = data.X_test if data.task == Task.forecasting else data.X_val
    np.testing.assert_array_equal(resumed.predict(X), unbroken.predict(X))


def test_checkpoints_are_safetensors_with_json_metadata() -> None:
    callbacks = StopAfter(epochs=1)
    fit("cnn", callbacks)
    tensors = safetensors.torch.load(callbacks.checkpoints[0])  # raises on anything else
    assert {"rng.torch", "rng.loop"} <= set(tensors)
    assert any(name.startswith("opt.") for name in tensors)  # AdamW's moments travel too


def test_mlp_stops_early_and_keeps_its_best_epoch() -> None:
    data = tabular(Task.classification)
    callbacks = NullCallbacks()
    params = {"epochs": 200, "lr": 0.05, "batch_size": 32}
    model = MLP().fit(data, params, callbacks)
    losses = [m["val_loss"] for _, m in callbacks.logged]
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 10 < 200  # 10 epochs of patience past the best
    proba = model.predict_proba(data.X_val)
    assert proba is not None
    truth = (np.asarray(data.y_val) == "yes").astype(int)
    cross_entropy = -np.mean(np.log(proba[np.arange(len(truth)), truth]))
    assert cross_entropy == pytest.approx(losses[best], rel=1e-4)  # the best weights came back
    # A job killed after it stopped early resumes as finished: no more epochs.
    again = NullCallbacks(resume_state=callbacks.checkpoints[-1])
    resumed = MLP().fit(data, params, again)
    assert again.logged == []
    np.testing.assert_array_equal(resumed.predict_proba(data.X_val), proba)


def test_resuming_with_other_parameters_is_refused() -> None:
    first = StopAfter(epochs=1)
    fit("mlp-classification", first, epochs=5)
    with pytest.raises(InvalidRequest, match="checkpoint"):
        fit("mlp-classification", NullCallbacks(resume_state=first.checkpoints[-1]), epochs=6)


def test_should_stop_ends_training_after_the_current_epoch() -> None:
    callbacks = StopAfter(epochs=0)  # stop asked from the start
    model, data = fit("cnn", callbacks, epochs=5)
    assert [step for step, _ in callbacks.logged] == [1]
    assert model.predict(data.X_val).shape == (len(data.X_val),)


def test_should_stop_is_heard_within_an_epoch() -> None:
    data = tabular(Task.classification, rows=2400)  # 1,800 rows: 57 batches of 32 per epoch
    callbacks = StopAfter(epochs=0)
    model = MLP().fit(data, {"epochs": 5, "batch_size": 32}, callbacks)
    assert callbacks.logged == [] and callbacks.checkpoints == []  # stopped inside epoch 1
    assert model.predict(data.X_val).shape == (len(data.X_val),)


@pytest.mark.parametrize(
    ("algorithm", "given"),
    [
        (MLP(), {"hiden": 64}),
        (MLP(), {"hidden": 4}),
        (MLP(), {"batch_size": 100}),
        (CNN(), {"augment": "maybe"}),
        (CNN(), {"epochs": 2.5}),
        (LSTMForecaster(), {"lr": 1.0}),
    ],
)
def test_resolve_refuses_unknown_and_out_of_range_parameters(
    algorithm: Algorithm, given: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequest):
        algorithm.resolve(given)


def test_defaults_resolve_and_declare_their_kind() -> None:
    assert CNN().resolve({})["augment"] is True
    assert MLP().supports(Task.regression, InputKind.tabular)
    assert not LSTMForecaster().supports(Task.classification, InputKind.tabular)
    assert GRUForecaster().resolve({"hidden": "32"})["hidden"] == 32


def test_cnn_refuses_images_of_another_size_and_images_too_small() -> None:
    model, _, _ = trained("cnn")
    with pytest.raises(InvalidRequest, match="12, 12"):
        model.predict(np.zeros((3, 28, 28), np.uint8))
    tiny = TrainData(
        Task.classification, InputKind.image, np.zeros((4, 6, 6), np.uint8), [0, 1] * 2
    )
    with pytest.raises(InvalidRequest, match="at least 8x8"):
        CNN().fit(tiny, {}, NullCallbacks())


def test_forecaster_forecasts_any_history_and_fills_gaps() -> None:
    model, data, _ = trained("lstm")
    assert isinstance(model, ForecastModel)
    history = np.concatenate([data.X_train, data.X_val])
    np.testing.assert_allclose(model.forecast(history, 45), model.predict(np.zeros(45)))
    assert np.isfinite(model.forecast(history[:10], 7)).all()  # shorter than the lookback


def test_forecaster_refuses_a_lookback_longer_than_the_series() -> None:
    with pytest.raises(InvalidRequest, match="lookback"):
        fit("lstm", lookback=400)
