"""Explanations: why a model answers what it answers.

The serving runtime (``POST /explain``) and the model cards call this library::

    from lepton.explain import explainer_for, summarise_background

    background = summarise_background(X_train)           # once per model version; store it
    explainer = explainer_for(model, background)          # once per loaded model; reuse it
    explanation = explainer.explain(rows)                 # per request
    explanation.to_dict()                                 # JSON-ready

Importing this package imports neither shap (nor numba) nor captum nor torch: each explainer
imports what it needs when it is built.
"""

from lepton.explain.background import (
    BACKGROUND_FILE,
    DEFAULT_K,
    Background,
    store_background,
    stored_background,
    summarise_background,
)
from lepton.explain.explanation import OUTPUT_SPACES, Explainer, Explanation, RowExplanation
from lepton.explain.selection import explainer_for
from lepton.explain.summary import global_explanation, global_plot

__all__ = [
    "BACKGROUND_FILE",
    "DEFAULT_K",
    "OUTPUT_SPACES",
    "Background",
    "Explainer",
    "Explanation",
    "RowExplanation",
    "explainer_for",
    "global_explanation",
    "global_plot",
    "store_background",
    "stored_background",
    "summarise_background",
]
