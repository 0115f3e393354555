"""Saving a user's own model object in a safe format: scikit-learn through skops, PyTorch
modules as safetensors weights (the architecture stays the user's code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lepton.errors import InvalidRequest

__all__ = ["save_user_model"]


def save_user_model(model: Any, directory: Path) -> tuple[str, dict[str, Any]]:
    """Write ``model`` into ``directory``; returns its flavour and signature."""
    module = type(model).__module__
    if module.startswith("sklearn") or (hasattr(model, "fit") and hasattr(model, "predict")):
        from lepton.algorithms.persist import save_sklearn

        save_sklearn(model, directory / "model.skops")
        signature: dict[str, Any] = {}
        if hasattr(model, "feature_names_in_"):
            signature["inputs"] = [{"name": str(n)} for n in model.feature_names_in_]
        elif hasattr(model, "n_features_in_"):
            signature["inputs"] = {"shape": [int(model.n_features_in_)], "dtype": "float64"}
        if hasattr(model, "classes_"):
            signature["outputs"] = {"classes": [_plain(c) for c in model.classes_]}
        config = {"flavour": "sklearn", "class": f"{module}.{type(model).__name__}"}
        (directory / "config.json").write_text(json.dumps(config))
        return "sklearn", signature
    import torch

    if isinstance(model, torch.nn.Module):
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(directory / "weights.safetensors"))
        config = {"flavour": "torch", "class": f"{module}.{type(model).__qualname__}"}
        (directory / "config.json").write_text(json.dumps(config))
        return "torch", {"weights": sorted(state)}
    raise InvalidRequest(
        f"cannot save a {module}.{type(model).__name__}",
        fix="save_model takes scikit-learn estimators and PyTorch modules",
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
