"""Global explanations for the model card: which features (pixels, words) matter overall.

``global_explanation`` explains a fixed sample row by row (each row's predicted class) and
averages: mean |attribution| per feature for tables, mean |saliency| per predicted class for
images, mean |attribution| per word for texts. The same model, sample and seed give the same
dict, and ``global_plot`` draws it as the same PNG.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest
from lepton.explain.explanation import json_label

__all__ = ["TOP_FEATURES", "TOP_WORDS", "global_explanation", "global_plot"]

TOP_FEATURES = 20
"""Bars in the plot; the dict keeps every feature."""
TOP_WORDS = 30
"""Words kept for a text model: the vocabulary is open-ended."""
_BATCH = {"tabular": 1000, "image": 64, "text": 100}  # the explainers' per-call limits
_DIGITS = 6  # significant digits kept: the dict goes into JSON, the plot needs three


def global_explanation(
    model: Any, X_sample: Any, *, background: Any = None, seed: int = 0
) -> dict[str, Any]:
    """Mean absolute attributions over ``X_sample`` (e.g. 200 held-out rows), as plain JSON.

    Keys: ``kind``, ``method``, ``output_space``, ``rows`` (how many were explained), and
    ``features`` (tabular: ``[{name, mean_abs}]``, most important first), ``classes`` (images:
    ``[{class, count, saliency}]``, ``saliency`` an H x W list) or ``words`` (text:
    ``[{word, mean_abs, count}]``).
    """
    from lepton.explain.selection import explainer_for

    explainer = explainer_for(model, background, seed=seed)
    parts = [explainer.explain(chunk) for chunk in _chunks(X_sample, _BATCH[explainer.kind])]
    rows = [row for part in parts for row in part.rows]
    first = parts[0]
    out: dict[str, Any] = {
        "kind": first.kind,
        "method": first.method,
        "output_space": first.output_space,
        "rows": len(rows),
    }
    if first.kind == "tabular":
        mean_abs = np.mean([np.abs(r.attributions) for r in rows], axis=0)
        names = rows[0].names or []
        order = sorted(range(len(names)), key=lambda i: (-mean_abs[i], names[i]))
        out["features"] = [{"name": names[i], "mean_abs": _round(mean_abs[i])} for i in order]
    elif first.kind == "image":
        maps: dict[Any, list[np.ndarray]] = defaultdict(list)
        for r in rows:
            maps[r.prediction].append(np.abs(r.attributions))
        out["classes"] = [
            {
                "class": json_label(label),
                "count": len(found),
                "saliency": [[_round(v) for v in line] for line in np.mean(found, axis=0)],
            }
            for label, found in sorted(maps.items(), key=lambda kv: str(kv[0]))
        ]
    else:
        totals: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            for word, value in zip(r.names or [], r.attributions, strict=True):
                totals[word].append(abs(float(value)))
        ranked = sorted(totals.items(), key=lambda kv: (-float(np.mean(kv[1])), kv[0]))
        out["words"] = [
            {"word": w, "mean_abs": _round(float(np.mean(v))), "count": len(v)}
            for w, v in ranked[:TOP_WORDS]
        ]
    return out


def global_plot(summary: dict[str, Any]) -> bytes:
    """A PNG of a :func:`global_explanation` dict: bars for features or words, one heat map per
    class for images."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    kind = summary.get("kind")
    if kind == "image":
        classes = summary["classes"]
        fig = Figure(figsize=(1.6 * len(classes), 2.0), dpi=100)
        for i, entry in enumerate(classes):
            ax = fig.add_subplot(1, len(classes), i + 1)
            ax.imshow(np.asarray(entry["saliency"]), cmap="inferno")
            ax.set_title(f"{entry['class']} (n={entry['count']})", fontsize=8)
            ax.axis("off")
        fig.suptitle("mean |integrated gradients| per predicted class", fontsize=9)
    elif kind in ("tabular", "text"):
        key, label = ("features", "name") if kind == "tabular" else ("words", "word")
        entries = summary[key][:TOP_FEATURES][::-1]
        fig = Figure(figsize=(6.0, 0.3 * len(entries) + 1.0), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        ax.barh([str(e[label]) for e in entries], [e["mean_abs"] for e in entries], color="#3b6ea8")
        ax.set_xlabel(f"mean |attribution| ({summary['output_space']})")
        ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
    else:
        raise InvalidRequest(
            f"a global explanation of kind {kind!r} cannot be plotted",
            fix="pass the dict global_explanation returned",
        )
    buffer = io.BytesIO()
    # No Software/date metadata: the same summary gives byte-identical PNGs.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _chunks(X: Any, size: int) -> list[Any]:
    """``X`` in batches the explainer accepts (rows of a frame, an array, or a list)."""
    n = len(X)
    if n == 0:
        raise InvalidRequest("the sample to explain has no rows", fix="pass 100-500 rows")
    if hasattr(X, "iloc"):
        return [X.iloc[i : i + size] for i in range(0, n, size)]
    return [X[i : i + size] for i in range(0, n, size)]


def _round(value: float) -> float:
    return float(f"{float(value):.{_DIGITS}g}")
