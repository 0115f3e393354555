"""What an explainer returns, and the contract every explainer keeps.

An :class:`Explanation` holds one :class:`RowExplanation` per input row: the served prediction,
the output that was explained (a class probability, a log-odds, or a regression value, named by
``output_space``), the base value the attributions start from, and the attributions themselves
(one per feature, per pixel or per token). For additive methods ``base_value + sum(attributions)
== output``; ``to_dict`` turns the whole thing into plain JSON types (orjson-ready).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["OUTPUT_SPACES", "Explainer", "Explanation", "RowExplanation", "json_label"]

OUTPUT_SPACES = {
    "probability": "the probability of the explained class, as /predict serves it",
    "log_odds": "log(p / (1 - p)) of the explained class (binary classifiers)",
    "logit": "the explained class's softmax score: p = softmax(scores) (multiclass)",
    "value": "the regression value, as /predict serves it",
}
"""Every ``output_space`` an explanation may name, with what its numbers mean."""


def json_label(value: Any) -> Any:
    """A class label or prediction as a plain JSON value."""
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


@dataclass
class RowExplanation:
    """The explanation of one input row.

    ``attributions`` is 1-D (features or tokens, named by ``names``) or 2-D (an image's H x W
    saliency map). ``target`` is the class explained (None for regression); ``probability`` is
    its served probability, also when ``output`` is in log-odds. ``delta`` is how far
    ``base_value + sum(attributions)`` is from ``output`` (0 for exact methods; integrated
    gradients' convergence delta for images).
    """

    prediction: Any
    target: Any
    output: float
    base_value: float
    attributions: np.ndarray
    names: list[str] | None = None
    probability: float | None = None
    delta: float = 0.0
    overlay_png: bytes | None = None

    def ranked(self) -> list[tuple[str, float]]:
        """``(name, attribution)`` by decreasing absolute attribution (1-D attributions only)."""
        if self.names is None or self.attributions.ndim != 1:
            raise ValueError("only feature and token attributions can be ranked")
        order = np.argsort(-np.abs(self.attributions), kind="stable")
        return [(self.names[i], float(self.attributions[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, with the field names (an encoder that serialises the dataclass
        itself, as orjson does, gives the same keys)."""
        out: dict[str, Any] = {
            "prediction": json_label(self.prediction),
            "target": json_label(self.target),
            "output": float(self.output),
            "base_value": float(self.base_value),
            "attributions": np.asarray(self.attributions, dtype=np.float64).tolist(),
        }
        if self.names is not None:
            out["names"] = list(self.names)
        if self.probability is not None:
            out["probability"] = float(self.probability)
        out["delta"] = float(self.delta)
        if self.overlay_png is not None:
            out["overlay_png"] = base64.b64encode(self.overlay_png).decode("ascii")
        return out


@dataclass
class Explanation:
    """Explanations of a batch of rows by one method.

    ``kind`` is ``tabular``, ``image`` or ``text``; ``method`` names the algorithm (e.g.
    ``tree_shap``); ``additive`` says whether ``base_value + sum(attributions) == output``
    holds by construction (within ``delta``).
    """

    kind: str
    method: str
    output_space: str
    additive: bool
    rows: list[RowExplanation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: lists for arrays, base64 for PNG bytes."""
        return {
            "kind": self.kind,
            "method": self.method,
            "output_space": self.output_space,
            "additive": self.additive,
            "rows": [row.to_dict() for row in self.rows],
        }


class Explainer(Protocol):
    """Explains a model's answers; built once per model by ``explainer_for`` and reused."""

    kind: str
    method: str
    output_space: str

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Explanation:
        """Explain each row of ``X`` (the same input as ``predict``).

        ``target`` picks the class to explain (default: each row's predicted class);
        ``overlay`` asks image explainers for a PNG overlay per row.
        """
        ...
