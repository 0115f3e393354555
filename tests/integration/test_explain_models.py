"""Explanations of real models on real data: a CNN on the bundled MNIST digits, the offline
MiniLM text model, a model loaded through the registry, and the import cost of the package."""

from __future__ import annotations

import functools
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lepton.algorithms.base import InputKind, Model, NullCallbacks, Task, TrainData
from lepton.algorithms.cnn import CNN
from lepton.algorithms.registry import get_algorithm
from lepton.data.samples import MNIST_DIR
from lepton.errors import InvalidRequest
from lepton.explain import explainer_for, global_explanation, global_plot

DIGIT_INTENSITY = 128
"""A pixel belongs to the digit when its intensity is at least 128 of 255: MNIST strokes are
anti-aliased, so their cores sit near 255 and the soft edges in between; half-way keeps the
stroke and leaves the halo out (a median 14% of a test digit's 784 pixels pass)."""

MASS_ON_DIGIT = 0.6
"""The share of positive attribution mass that must fall on those pixels. A map that ignored
the digit would put ~13% there (a uniform random map does); 60% is far above that and still
leaves room for the evidence IG rightly finds just outside a stroke (a 7's open corner, the gap
that makes a 0 not a 6). On these 64 test digits the net below gives a median of 95% (lowest
85%)."""


def _idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(MNIST_DIR / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


@functools.cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST test set (10,000 digits) as arrays."""
    images = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx("t10k-labels-idx1-ubyte.gz", 8)
    return images, labels


@functools.cache
def cnn() -> Model:
    """A small CNN trained for 2 epochs on 2,000 digits (~2 s on 2 cores, ~93% accurate)."""
    images, labels = mnist()
    data = TrainData(Task.classification, InputKind.image, images[:2000], labels[:2000])
    return CNN().fit(data, {"epochs": 2, "channels": 8, "augment": False}, NullCallbacks())


def test_mnist_attribution_mass_falls_on_the_digit() -> None:
    images, labels = mnist()
    test = images[5000:5064]
    explanation = explainer_for(cnn()).explain(test)
    assert (
        explanation.method == "integrated_gradients" and explanation.output_space == "probability"
    )
    shares = []
    for image, row in zip(test, explanation.rows, strict=True):
        assert row.attributions.shape == (28, 28)
        positive = np.clip(row.attributions, 0, None)
        shares.append(positive[image >= DIGIT_INTENSITY].sum() / positive.sum())
    assert np.median(shares) >= MASS_ON_DIGIT, sorted(shares)[:5]
    # Integrated gradients' completeness: the map sums to p(image) - p(black), up to the delta.
    deltas = np.abs([r.delta for r in explanation.rows])
    assert np.median(deltas) < 0.01
    accuracy = np.mean(
        [r.prediction == int(y) for r, y in zip(explanation.rows, labels[5000:5064], strict=True)]
    )
    assert accuracy > 0.8  # the maps explain a model that reads digits


def test_mnist_overlay_blur_baseline_and_any_class() -> None:
    images, _ = mnist()
    explainer = explainer_for(cnn(), baseline="blur")
    explanation = explainer.explain(images[6000:6002], target=3, overlay=True)
    for row in explanation.rows:
        assert row.target == 3
        png = row.overlay_png or b""
        assert png.startswith(b"\x89PNG")
        assert np.abs(row.delta) < 0.05
    data = explanation.to_dict()
    assert isinstance(data["rows"][0]["overlay_png"], str)
    assert np.asarray(data["rows"][0]["attributions"]).shape == (28, 28)
    with pytest.raises(InvalidRequest, match=r"\(N, 28, 28, 1\)"):
        explainer.explain(np.zeros((1, 12, 12), np.uint8))
    with pytest.raises(InvalidRequest, match="at most 64"):
        explainer.explain(np.zeros((65, 28, 28), np.uint8))
    with pytest.raises(InvalidRequest, match="baseline 'grey'"):
        explainer_for(cnn(), baseline="grey")


def test_mnist_global_saliency_per_class_is_deterministic() -> None:
    images, _ = mnist()
    sample = images[7000:7040]
    first = global_explanation(cnn(), sample)
    assert first == global_explanation(cnn(), sample)
    assert first["kind"] == "image" and sum(c["count"] for c in first["classes"]) == 40
    assert np.asarray(first["classes"][0]["saliency"]).shape == (28, 28)
    assert global_plot(first).startswith(b"\x89PNG")


def test_minilm_occlusion_ranks_the_deciding_word_first() -> None:
    rng = np.random.default_rng(0)
    filler = [
        "the",
        "movie",
        "was",
        "long",
        "and",
        "the",
        "story",
        "had",
        "many",
        "scenes",
        "with",
        "actors",
    ]
    texts, labels = [], []
    for i in range(80):
        word, label = ("wonderful", "good") if i % 2 else ("terrible", "bad")
        words = list(rng.choice(filler, size=8))
        words.insert(int(rng.integers(0, 9)), word)
        texts.append(" ".join(words))
        labels.append(label)
    data = TrainData(Task.classification, InputKind.text, np.array(texts, dtype=object), labels)
    model = get_algorithm("minilm_linear").fit(data, {"C": 10.0}, NullCallbacks())
    explanation = explainer_for(model).explain(texts[:6])
    assert explanation.method == "occlusion" and not explanation.additive
    for row, label in zip(explanation.rows, labels[:6], strict=True):
        top = row.ranked()[0][0]
        assert top == ("wonderful" if label == "good" else "terrible"), row.ranked()[:3]


def test_models_loaded_by_the_registry_get_the_exact_explainer(tmp_path: Path) -> None:
    from lepton.registry.flavours import load_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    y = 3 * X["b"].to_numpy()
    data = TrainData(Task.regression, InputKind.tabular, X, y)
    get_algorithm("random_forest").fit(data, {"n_estimators": 50}, NullCallbacks()).save(tmp_path)
    loaded = load_model(tmp_path)
    explanation = explainer_for(loaded).explain(X.iloc[:3])
    assert explanation.method == "tree_shap"
    np.testing.assert_allclose(
        [r.output for r in explanation.rows], loaded.predict(X.iloc[:3]), atol=1e-9
    )
    assert all(r.ranked()[0][0] == "b" for r in explanation.rows)


def test_importing_the_package_leaves_the_heavy_libraries_alone() -> None:
    code = (
        "import sys, lepton.explain; "
        "print(','.join(m for m in ('shap', 'numba', 'captum', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
