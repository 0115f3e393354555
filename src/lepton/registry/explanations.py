"""Explanations recorded when a model version is registered.

Two things are computed once, on fixed seeded samples, so the same training run records the
same numbers:

* the **background** (a k-means summary of training rows, tabular models only), packed into the
  artifact as ``explain/background.json``: the artifact is content-addressed and every replica
  unpacks it, so ``/explain`` measures attributions against the rows the card was computed with;
* the **global explanation** (mean |attribution| per feature or word, mean saliency per class)
  and its PNG, recorded with the version; the model card renders them and nothing else.

A train job never fails because of an explanation: the reason is recorded instead, as
``{"not_computed": reason}``. A model brought in with data is explained strictly, since the
data is the caller's: a bad sample is a clear error and nothing is registered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton.errors import InvalidRequest, LeptonError

if TYPE_CHECKING:
    from lepton.algorithms.base import TrainData
    from lepton.explain.background import Background

__all__ = [
    "BACKGROUND_ROWS",
    "OCCLUSION_WORDS",
    "PERMUTATION_ROWS",
    "SAMPLE_ROWS",
    "Recorded",
    "explain_brought_in",
    "explain_trained",
    "sample",
]

SAMPLE_ROWS = {"tabular": 200, "image": 64, "text": 100}
"""Rows (images, texts) explained for the card. Tree and linear SHAP cost microseconds a row,
so 200 rows cost little more than the plot; 64 digits are one call of the image explainer
(about six per class, at ~25-60 ms of integrated gradients each on 2 busy cores)."""
PERMUTATION_ROWS = 50
"""Rows for the model-agnostic explainers: permutation SHAP (the MLP) costs ~40 ms a row on 2
busy cores, so 200 rows would add about as much time as training the MLP on the breast-cancer
sample (8 s). 50 rows still rank the features."""
OCCLUSION_WORDS = 300
"""Words explained by occlusion (MiniLM), which embeds each text once per word: texts are taken
in sample order until they hold this many words (at least one text). 500 words took 7 s on 2
busy cores, as long as fitting the model."""
BACKGROUND_ROWS = 5_000
"""Training rows the k-means summary sees (a seeded sample beyond): k-means cost grows with
the rows, and the 100 representatives barely move past a few thousand."""


@dataclass(frozen=True)
class Recorded:
    """What registration stores: the background (packed into the artifact), the global
    explanation facts and the PNG of their plot (None when not computed)."""

    background: Background | None
    facts: dict[str, Any]
    plot: bytes | None
    seconds: float

    def pack_into(self, directory: Path) -> None:
        """Put the background into the model folder that is about to be packed."""
        from lepton.explain.background import store_background

        if self.background is not None:
            store_background(directory, self.background)


def sample(X: Any, size: int, seed: int) -> Any:
    """At most ``size`` rows of ``X``, the same ones for the same seed, in their order."""
    n = len(X)
    if n <= size:
        return X
    index = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


def explain_trained(model: Any, data: TrainData, *, seed: int = 0) -> Recorded:
    """Background and global explanation of a freshly trained built-in model, on the training
    rows and a sample of the held-out test split (validation when there is no test split).
    Never raises: whatever goes wrong becomes the recorded reason."""
    start = time.perf_counter()
    kind = data.kind.value
    background = None
    try:
        if data.task.value == "forecasting":
            raise InvalidRequest(
                "forecasting models have no explanations: a forecast follows the series' own "
                "history, not input features",
                fix="read the forecast's metrics and plots in its model card instead",
            )
        held_out, split = (data.X_test, "test") if data.X_test is not None else (data.X_val, "val")
        if held_out is None or len(held_out) == 0:
            raise InvalidRequest(
                "there is no held-out split to explain",
                fix="train with a validation or test share (lepton train --test 0.1)",
            )
        if kind == "tabular" and _method(model, None, seed) != "tree_shap":
            # Tree SHAP reads the trees' own training cover: a background would go unused.
            background = _summarise(data.X_train, seed)
        facts, plot = _global(model, held_out, kind, background, seed, split)
    except Exception as exc:  # an explanation must never fail the training job
        facts, plot = {"not_computed": _reason(exc)}, None
    return Recorded(background, facts, plot, time.perf_counter() - start)


def explain_brought_in(
    model: Any,
    signature: dict[str, Any],
    *,
    background: Any = None,
    X_sample: Any = None,
    seed: int = 0,
) -> Recorded:
    """Background and global explanation of a model brought in with data.

    Tables: ``background`` is training rows, summarised and packed with the model; ``X_sample``
    rows to explain for the card. Either stands in for the other when only one is given.
    Image classifiers (a signature shape of two or three axes): the images given (64 at most
    are used) are explained for the card, and nothing is packed.

    Raises:
        InvalidRequest: the rows do not fit the model, or the model cannot be explained.
    """
    start = time.perf_counter()
    shape = _image_shape(signature)
    if shape is not None:  # images: no background to summarise, the sample is what is explained
        images = _images(X_sample if X_sample is not None else background, shape)
        facts, plot = _global(model, images, "image", None, seed, "given")
        return Recorded(None, facts, plot, time.perf_counter() - start)
    rows = _table(background if background is not None else X_sample, signature, "background")
    explained = rows if X_sample is None else _table(X_sample, signature, "X_sample")
    try:
        summary = _summarise(rows, seed)
        facts, plot = _global(model, explained, "tabular", summary, seed, "given")
    except LeptonError:
        raise
    except Exception as exc:  # the model ran on the caller's rows: say what it answered
        raise InvalidRequest(
            f"the model could not be explained on the rows given ({_reason(exc)})",
            fix="pass rows with the model's input columns, as for predict",
        ) from None
    return Recorded(summary, facts, plot, time.perf_counter() - start)


def explain_prepared(
    folder: Path, signature: dict[str, Any], background: Any, X_sample: Any = None
) -> tuple[dict[str, Any], bytes | None]:
    """Explain a model folder made by :func:`lepton.registry.byo.prepare_model` as a replica
    will load it, and pack its background into the folder; returns the facts and the plot."""
    from lepton.registry.flavours import load_model

    loaded = load_model(folder, signature)
    recorded = explain_brought_in(loaded, signature, background=background, X_sample=X_sample)
    recorded.pack_into(folder)
    return dict(recorded.facts), recorded.plot


def _summarise(X: Any, seed: int) -> Background:
    from lepton.explain.background import DEFAULT_K, summarise_background

    return summarise_background(sample(X, BACKGROUND_ROWS, seed), DEFAULT_K, seed=seed)


def _global(
    model: Any, X: Any, kind: str, background: Background | None, seed: int, split: str
) -> tuple[dict[str, Any], bytes]:
    from lepton.explain.summary import global_explanation, global_plot

    method = _method(model, background, seed) if kind != "image" else "integrated_gradients"
    rows = PERMUTATION_ROWS if method == "permutation_shap" else SAMPLE_ROWS[kind]
    chosen = sample(X, rows, seed)
    if method == "occlusion":
        words = np.cumsum([len(str(text).split()) for text in chosen])
        chosen = chosen[: max(1, int(np.searchsorted(words, OCCLUSION_WORDS, side="right")))]
    summary = global_explanation(model, chosen, background=background, seed=seed)
    summary["sample"] = split
    if background is not None:
        summary["background_rows"] = len(background.rows)
    return summary, global_plot(summary)


def _method(model: Any, background: Background | None, seed: int) -> str:
    """The explainer ``model`` gets (building one is cheap next to explaining 200 rows)."""
    from lepton.explain.selection import explainer_for

    return explainer_for(model, background, seed=seed).method


def _image_shape(signature: dict[str, Any]) -> list[int] | None:
    inputs = signature.get("inputs")
    shape = inputs.get("shape") if isinstance(inputs, dict) else None
    return [int(d) for d in shape] if isinstance(shape, list) and len(shape) in (2, 3) else None


def _images(X: Any, shape: list[int]) -> np.ndarray:
    images = np.asarray(X, dtype=np.float32)
    if images.ndim != len(shape) + 1 or list(images.shape[1:]) != shape or len(images) == 0:
        raise InvalidRequest(
            f"the images given have shape {list(images.shape)}; the model takes "
            f"[N, {', '.join(map(str, shape))}]",
            fix="pass a batch of images as the model's predict takes them",
        )
    return images


def _table(X: Any, signature: dict[str, Any], name: str) -> Any:
    """Rows as a DataFrame in the signature's columns (a 2-D array is named by them)."""
    import pandas as pd

    from lepton.registry.flavours import input_columns

    columns = input_columns(signature)
    if columns is None:
        raise InvalidRequest(
            f"{name} was given, but only models with named input columns (tables) are explained "
            "at registration",
            fix=f"register without {name}, or with a signature listing the input columns",
        )
    if isinstance(X, pd.DataFrame):
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise InvalidRequest(
                f"{name} lacks the model's input columns {', '.join(missing[:10])}",
                fix=f"pass rows with the columns {', '.join(columns[:20])}",
            )
        frame = X[columns].reset_index(drop=True)
    else:
        values = np.asarray(X)
        if values.ndim != 2 or values.shape[1] != len(columns):
            raise InvalidRequest(
                f"{name} has shape {values.shape}; the model takes rows of {len(columns)} columns",
                fix="pass a DataFrame or a 2-D array of the model's input rows",
            )
        frame = pd.DataFrame(values, columns=columns)
    if len(frame) == 0:
        raise InvalidRequest(f"{name} has no rows", fix="pass 100 or more training rows")
    return frame


def _reason(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, LeptonError) else f"{type(exc).__name__}: {exc}"
    return message[:500]
