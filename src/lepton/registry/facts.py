"""The recorded facts about a model version as one plain dict: the only input of the model card
(:mod:`lepton.registry.card`). The control plane gathers them (``ModelService.facts``); this
module holds the pure parts.

A fact that was not recorded is absent from the dict (never ``None`` or a guess), so the card can
say "not recorded" or leave the line out. Keys are what the card names, and values are JSON.
"""

from __future__ import annotations

from typing import Any

from lepton.schemas import DatasetVersion

__all__ = ["dataset_facts", "present"]


def dataset_facts(
    version: DatasetVersion, profile: dict[str, Any], pii: dict[str, Any], content_hash: str
) -> dict[str, Any]:
    """What the card says about the training data."""
    facts: dict[str, Any] = {
        "name": version.dataset,
        "version": version.version,
        "ref": version.ref,
        "source": version.source_name,
        "format": version.format,
        "rows": version.rows,
        "columns": profile.get("columns"),
        "duplicate_rows": profile.get("duplicate_rows"),
        "target": version.target,
        "class_balance": {str(v["value"]): v["count"] for v in profile.get("class_balance") or []},
        "pii": {
            "rows_scanned": pii.get("rows_scanned"),
            "findings": [
                {k: f[k] for k in ("column", "kind", "count", "fraction", "reason")}
                for f in pii.get("findings", [])
            ],
        },
        "content_hash": content_hash,
    }
    if version.parent is not None:
        facts["parent"] = version.parent
    if version.transform is not None:
        # Operations and columns only: an explicit anonymisation salt is a secret.
        steps = version.transform.model_dump(mode="json").get("steps", [])
        facts["transforms"] = [
            {k: v for k, v in step.items() if k != "salt" and v is not None} for step in steps
        ]
    return present(facts)


def present(values: dict[str, Any]) -> dict[str, Any]:
    """Drop what was not recorded: None, and empty containers."""
    return {k: v for k, v in values.items() if v is not None and v != {} and v != []}
