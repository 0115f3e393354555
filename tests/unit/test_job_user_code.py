"""A user's script in a job gets its data split and as arrays, tracks Keras training through
Lepton's callback, and registers PyTorch and Keras models that load without the script."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from test_jobs import (
    FakeExecutor,
    client,
    executor,
    run_runner,
    runner_process,
    scheduler,
    state,
    toy,
)

from lepton import Client
from lepton.control.scheduler import Scheduler
from lepton.schemas import JobState

if TYPE_CHECKING:
    from conftest import Platform

__all__ = ["client", "executor", "runner_process", "scheduler", "state", "toy"]  # fixtures


def _run(
    script: str,
    tmp_path: Path,
    client: Client,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    **submit: object,
) -> str:
    path = tmp_path / "script.py"
    path.write_text(script)
    job = client.jobs.run_script(path, **submit)  # type: ignore[arg-type]
    scheduler.reconcile_once()
    code = run_runner(monkeypatch, platform.api, executor, job.id)
    done = client.jobs.get(job.id)
    assert code == 0 and done.state == JobState.succeeded, done.error
    return job.id


SPLITS = """\
import json
import lepton

parts = {s: lepton.load_dataset(split=s) for s in ("train", "validation", "test")}
X, y = lepton.load_arrays(split="test")
print("SPLITS", json.dumps({
    "rows": {s: len(f) for s, f in parts.items()},
    "all": len(lepton.load_dataset()),
    "overlap": len(set(parts["train"]["x1"]) & set(parts["test"]["x1"])),
    "arrays": [list(X.shape), str(X.dtype), list(y[:3]), len(y)],
}))
"""


@pytest.mark.usefixtures("runner_process")
def test_a_script_reads_the_split_it_was_submitted_with(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    split = {"train": 0.6, "validation": 0.1, "test": 0.3, "seed": 0}
    _run(
        SPLITS,
        tmp_path,
        client,
        scheduler,
        executor,
        platform,
        monkeypatch,
        dataset=toy,
        split=split,
    )

    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("SPLITS "))
    seen = json.loads(line.removeprefix("SPLITS "))
    assert seen["all"] == 200 and sum(seen["rows"].values()) == 200
    assert seen["rows"] == {"train": 120, "validation": 20, "test": 60}
    assert seen["overlap"] == 0, "no row is both trained and tested on"
    shape, dtype, labels, count = seen["arrays"]
    assert shape == [60, 2] and dtype == "float32", "the numeric columns other than the target"
    assert count == 60 and set(labels) <= {"yes", "no"}


def test_an_unknown_split_name_is_refused_with_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from lepton.errors import InvalidRequest
    from lepton.jobs import tracking

    tracker = tracking.Tracker.__new__(tracking.Tracker)  # no server needed: refused up front
    with pytest.raises(InvalidRequest, match="no split 'holdout'") as raised:
        tracker.dataset("holdout")
    assert "train, validation, test" in raised.value.fix


def test_images_arrive_as_float_arrays_channels_last_or_first() -> None:
    import io

    from PIL import Image

    from lepton.data.arrays import to_arrays
    from lepton.errors import DataError
    from lepton.schemas import Column

    def png(value: int, size: tuple[int, int] = (5, 4)) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full(size[::-1], value, dtype=np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    frame = pd.DataFrame({"image": [png(0), png(255)], "label": [0, 1]})
    schema = [
        Column(name="image", kind="image", dtype="binary", nulls=0),
        Column(name="label", kind="categorical", dtype="int64", nulls=0),
    ]
    X, y = to_arrays(frame, schema, "label")
    assert X.shape == (2, 4, 5, 1) and X.dtype == np.float32
    assert X[0].max() == 0.0 and X[1].min() == 1.0
    assert list(y) == [0, 1]
    first, _ = to_arrays(frame, schema, "label", channels="first")
    assert first.shape == (2, 1, 4, 5)
    raw, _ = to_arrays(frame, schema, "label", scale=False, channels="none")
    assert raw.shape == (2, 4, 5) and raw.dtype == np.uint8

    mixed = pd.DataFrame({"image": [png(0), png(0, (6, 6))], "label": [0, 1]})
    with pytest.raises(DataError, match="2 different shapes") as raised:
        to_arrays(mixed, schema, "label")
    assert "--resize" in raised.value.fix


TORCH = """\
import lepton
import torch

frame = lepton.load_dataset(split="train")
net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
lepton.save_model(
    net,
    name="toy-torch",
    signature={"inputs": [{"name": "x1"}, {"name": "x2"}], "outputs": {"classes": ["no", "yes"]}},
    background=frame[["x1", "x2"]],
)
"""


@pytest.mark.usefixtures("runner_process")
def test_a_torch_module_saved_in_a_job_is_exported_to_onnx_and_loads_without_the_script(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    job_id = _run(TORCH, tmp_path, client, scheduler, executor, platform, monkeypatch, dataset=toy)

    version = client.models.get("toy-torch")
    assert (version.flavour, version.task, version.job) == ("onnx", "classification", job_id)
    assert version.algorithm == "custom:Sequential"
    card = client.models.card("toy-torch@1")
    assert "## Explanations" in card, "the background gives the card its explanation"
    assert "| x1 |" in card and "| x2 |" in card
    loaded = client.models.load("toy-torch@1")
    rows = [{"x1": 1.0, "x2": 2.0}, {"x1": -1.0, "x2": 0.5}]
    assert set(loaded.predict(rows)) <= {"no", "yes"}
    np.testing.assert_allclose(loaded.predict_proba(rows).sum(axis=1), 1.0, rtol=1e-6)


KERAS = """\
import keras
import lepton
from lepton.keras import LeptonCallback

X, y = lepton.load_arrays(split="train")
labels = (y == "yes").astype("int64")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, labels, epochs=3, verbose=0, callbacks=[LeptonCallback()])
lepton.save_model(
    model,
    name="toy-keras",
    signature={"inputs": [{"name": "x1"}, {"name": "x2"}], "outputs": {"classes": ["no", "yes"]}},
)
"""


@pytest.mark.usefixtures("runner_process")
def test_a_keras_script_tracks_each_epoch_and_registers_an_onnx_model(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    job_id = _run(KERAS, tmp_path, client, scheduler, executor, platform, monkeypatch, dataset=toy)

    points = client.jobs.metrics(job_id)
    assert sorted({p.name for p in points}) == ["accuracy", "loss"]
    assert sorted(p.step for p in points if p.name == "loss") == [1, 2, 3], "one point per epoch"
    version = client.models.get("toy-keras")
    assert version.flavour == "onnx" and version.signature["outputs"]["classes"] == ["no", "yes"]
    assert list(client.models.load("toy-keras@1").predict([{"x1": 3.0, "x2": 3.0}])) in (
        ["yes"],
        ["no"],
    )


def test_the_keras_callback_stops_training_when_the_job_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import keras

    from lepton.jobs import tracking
    from lepton.keras import LeptonCallback

    class Cancelled:
        logged: list[tuple[int, dict[str, float]]] = []  # noqa: RUF012

        def log(self, step: int, **metrics: float) -> None:
            self.logged.append((step, metrics))

        def should_stop(self) -> bool:
            return True

        def flush(self) -> None:
            pass

    fake = Cancelled()
    monkeypatch.setattr(tracking, "_current", fake)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(
        np.zeros((8, 2)), np.zeros(8), epochs=10, verbose=0, callbacks=[LeptonCallback()]
    )
    assert len(history.history["loss"]) == 1, "stopped after the first batch's epoch"
    assert [step for step, _ in fake.logged] == [1]


def test_a_jobs_token_registers_only_its_own_jobs_models(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    first, second = (client.jobs.train(toy, target="label") for _ in range(2))
    scheduler.reconcile_once()
    token = executor.latest(first.id).launch.env["LEPTON_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "artifact_digest": "0" * 64,
        "flavour": "sklearn",
        "algorithm": "x",
        "task": "classification",
        "signature": {},
        "metrics": {},
        "params": {},
    }

    elsewhere = [
        ("POST", "/api/v1/models/stolen/versions", body),
        ("POST", f"/api/v1/jobs/{second.id}/model", body),
        ("PUT", "/api/v1/models/toy/aliases/production", {"version": "1"}),
        ("DELETE", "/api/v1/models/toy/versions/1", None),
        ("POST", "/api/v1/jobs", {"spec": {"kind": "train", "dataset": toy}}),
    ]
    for method, path, payload in elsewhere:
        answer = platform.api.request(method, path, json=payload, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
    own = platform.api.post(f"/api/v1/jobs/{first.id}/model", json=body, headers=headers)
    assert own.status_code != 403, "its own job's model it may register (this blob is unknown)"
    assert client.models.list() == []


def test_a_text_dataset_has_no_array_form_and_says_what_to_use() -> None:
    from lepton.data.arrays import to_arrays
    from lepton.errors import DataError
    from lepton.schemas import Column

    frame = pd.DataFrame({"review": ["good", "bad"], "label": ["pos", "neg"]})
    schema = [
        Column(name="review", kind="text", dtype="string", nulls=0),
        Column(name="label", kind="categorical", dtype="string", nulls=0),
    ]
    with pytest.raises(DataError, match=r"review \(text\)") as raised:
        to_arrays(frame, schema, "label")
    assert "load_dataset()" in raised.value.fix
