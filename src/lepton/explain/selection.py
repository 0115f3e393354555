"""Choosing the explainer for a model, by its flavour and its input kind.

=========================================  ===================================================
model                                      explainer
=========================================  ===================================================
scikit-learn tree ensemble (tabular)       ``TreeShap``: exact, no background needed
scikit-learn linear model (tabular)        ``LinearShap``: exact, against the background
MLP, any other tabular model               ``PermutationShap``: additive, against the background
CNN (images)                               ``IntegratedGradients`` (captum)
any other image classifier (ONNX, Keras)   ``Occlusion``: from its probabilities alone
TF-IDF + linear (text)                     ``LinearTfidf``: exact per-token log-odds
MiniLM + linear, any other text model      ``Occlusion``: leave one word out
forecasters                                none: refused with the reason
=========================================  ===================================================

Models wrapped by the registry's loader or the serving runtime are unwrapped to the built-in
model they hold, so the exact explainers apply to them too. Without a stored background, the
built-in tabular models are explained against one typical row read from the fitted model
(``background.reference_background``), so ``/explain`` answers for every one of them; models
from elsewhere need the background.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.explain.background import (
    DEFAULT_K,
    Background,
    reference_background,
    summarise_background,
)
from lepton.explain.explanation import Explainer

__all__ = ["explainer_for", "unwrap"]

_NEEDS_BACKGROUND = "pass background=summarise_background(training_rows), stored with the model"


def explainer_for(
    model: Any,
    background: Any = None,
    *,
    seed: int = 0,
    baseline: str = "black",
) -> Explainer:
    """The explainer for ``model``, built once and reused for every call.

    Args:
        model: a built-in algorithm's model, or a wrapper holding one (the registry's
            ``LoadedModel``, the serving runtime's model); other tabular models with
            ``predict``/``predict_proba`` are explained model-agnostically.
        background: training rows to measure attributions against: a :class:`Background`, or
            a DataFrame / 2-D array (summarised to ``DEFAULT_K`` rows by k-means). Used by the
            linear and model-agnostic tabular explainers; without one, built-in models are
            explained against a typical row read from the model, other models are refused.
        seed: fixes the permutations and the k-means summary, so answers repeat.
        baseline: ``black`` or ``blur``, the reference image of integrated gradients.

    Raises:
        InvalidRequest: the model cannot be explained, or needs a background that was not given.
    """
    inner = unwrap(model)
    bg = _background(background, seed)
    if _is(inner, "lepton.algorithms.cnn", "CNNModel"):
        from lepton.explain.image import IntegratedGradients

        return IntegratedGradients(inner, baseline=baseline)
    if str(getattr(inner, "task", "")) == "forecasting":
        raise InvalidRequest(
            "forecasting models have no explanations: a forecast is a function of the series' "
            "own history, not of input features",
            fix="look at the forecast plot and the model's metrics instead",
        )
    if _is(inner, "lepton.algorithms.mlp", "MLPModel"):
        names = list(inner.config["encoding"]["columns"])
        return _permutation(inner, names, _or_reference(bg, inner), seed)
    if _is(inner, "lepton.algorithms.sklearn_model", "SklearnModel"):
        return _sklearn(inner, bg, seed)
    shape = _signature_shape(inner)
    if shape is not None and len(shape) >= 2 and getattr(inner, "classes", None):
        from lepton.explain.image import Occlusion

        return Occlusion(inner, shape)
    columns = _signature_columns(inner)
    if columns is None and bg is not None:
        columns = [str(c) for c in bg.rows.columns]
    if columns is None or not hasattr(inner, "predict"):
        raise InvalidRequest(
            f"there is no explainer for a {type(inner).__name__}",
            fix="explain a tabular, image or text model of the algorithm library, or a tabular "
            "model with named input columns and a background",
        )
    return _permutation(inner, columns, bg, seed)


def unwrap(model: Any) -> Any:
    """The built-in model inside a registry or serving wrapper, else ``model`` itself."""
    from lepton.algorithms.base import Model

    for candidate in (getattr(model, "model", None), getattr(model, "_predict", None)):
        inner = getattr(candidate, "__self__", candidate)  # a bound predict names its model
        if isinstance(inner, Model):
            return inner
    return model


def _sklearn(model: Any, background: Background | None, seed: int) -> Explainer:
    from lepton.explain import tabular, text

    if str(getattr(model, "kind", "")) == "text" or model.schema is None:
        if text.tfidf_parts(model) is not None:
            return text.LinearTfidf(model)
        return text.Occlusion(model)
    _, estimator = tabular.split_pipeline(model)
    readable = tabular.input_groups(tabular.split_pipeline(model)[0], model.schema.columns)
    if readable is not None and tabular.is_tree(estimator):
        return tabular.TreeShap(model)
    if readable is not None and tabular.is_linear(estimator):
        reference = _or_reference(background, model)
        if reference is None:
            raise InvalidRequest("linear SHAP needs a background sample", fix=_NEEDS_BACKGROUND)
        return tabular.LinearShap(model, reference)
    return _permutation(model, list(model.schema.columns), _or_reference(background, model), seed)


def _or_reference(background: Background | None, model: Any) -> Background | None:
    """The given background, else the model's own reference row (when it has one)."""
    return background if background is not None else reference_background(model)


def _permutation(model: Any, columns: list[str], bg: Background | None, seed: int) -> Explainer:
    from lepton.explain.permutation import PermutationShap

    if bg is None:
        raise InvalidRequest(
            f"a {type(model).__name__} is explained model-agnostically, which needs a background "
            "sample of training rows",
            fix=_NEEDS_BACKGROUND,
        )
    classes = list(model.classes) if getattr(model, "classes", None) is not None else None
    if classes is not None:

        def outputs(frame: Any) -> np.ndarray:
            return np.asarray(model.predict_proba(frame))

    else:

        def outputs(frame: Any) -> np.ndarray:
            return np.asarray(model.predict(frame), dtype=np.float64)

    return PermutationShap(outputs, columns, classes, bg, seed=seed)


def _background(background: Any, seed: int) -> Background | None:
    if background is None or isinstance(background, Background):
        return background
    return summarise_background(background, DEFAULT_K, seed=seed)


def _is(model: Any, module: str, name: str) -> bool:
    """``isinstance`` without importing ``module`` (and torch with it): an instance of a class
    whose module was never imported cannot exist."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(model, getattr(loaded, name))


def _signature_columns(model: Any) -> list[str] | None:
    inputs = (getattr(model, "signature", None) or {}).get("inputs")
    if isinstance(inputs, list) and all(isinstance(c, dict) and "name" in c for c in inputs):
        return [str(c["name"]) for c in inputs]
    return None


def _signature_shape(model: Any) -> list[int] | None:
    inputs = (getattr(model, "signature", None) or {}).get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("shape"), list):
        return [int(d) for d in inputs["shape"]]
    return None
