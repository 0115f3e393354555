"""The recorded facts about a model version, gathered from the store into one plain dict: the
only input of the model card (:mod:`lepton.registry.card`).

A fact that was not recorded is absent from the dict (never ``None`` or a guess), so the card can
say "not recorded" or leave the line out. Keys are what the card names, and values are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from lepton.store.models import DatasetRow, DatasetVersionRow, ModelRow, ModelVersionRow

__all__ = ["version_facts"]


def version_facts(session: Session, model: ModelRow, row: ModelVersionRow) -> dict[str, Any]:
    """Everything the registry recorded about ``row``. Explanations are not computed here:
    ``explanations`` is the global explanation recorded when the version was registered
    (:mod:`lepton.registry.explanations`)."""
    from lepton.server.model_catalog import dataset_ref, evaluations_of, version_view

    view = version_view(session, model, row)
    facts: dict[str, Any] = {
        "model": _present(
            {
                "name": model.name,
                "version": row.version,
                "ref": view.ref,
                "flavour": row.flavour,
                "algorithm": row.algorithm,
                "task": row.task,
                "registered_at": row.created_at.isoformat(),
                "aliases": view.aliases,
                "parent": view.parent,
                "job": row.job_id,
            }
        ),
        "signature": view.signature,
        "params": view.params,
        "metrics": view.metrics,
        "leaderboard": view.leaderboard,
    }
    if row.description:
        facts["intended_use"] = row.description
    if view.environment:
        facts["environment"] = view.environment
    if row.dataset_version_id:
        dataset = _dataset_facts(session, row.dataset_version_id)
        if dataset:
            facts["dataset"] = dataset
    evaluations = []
    for evaluation in evaluations_of(session, row):
        entry = json.loads(evaluation.result_json)
        entry["dataset"] = dataset_ref(session, evaluation.dataset_version_id)
        entry["split"] = evaluation.split
        entry["job"] = evaluation.job_id
        entry["recorded_at"] = evaluation.created_at.isoformat()
        evaluations.append(_present(entry))
    if evaluations:
        facts["evaluations"] = evaluations
    if row.explanations_json:
        facts["explanations"] = json.loads(row.explanations_json)
    return _present(facts)


def _dataset_facts(session: Session, version_id: str) -> dict[str, Any]:
    version = session.get(DatasetVersionRow, version_id)
    dataset = session.get(DatasetRow, version.dataset_id) if version else None
    if version is None or dataset is None:
        return {}
    profile = json.loads(version.profile_json)
    pii = json.loads(version.pii_json)
    parent = session.get(DatasetVersionRow, version.parent_id) if version.parent_id else None
    facts: dict[str, Any] = {
        "name": dataset.name,
        "version": version.version,
        "ref": f"{dataset.name}@v{version.version}",
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
        "content_hash": version.content_hash,
    }
    if parent is not None:
        parent_ds = session.get(DatasetRow, parent.dataset_id)
        facts["parent"] = f"{parent_ds.name if parent_ds else '?'}@v{parent.version}"
    if version.transform_json:
        # Operations and columns only: an explicit anonymisation salt is a secret.
        steps = json.loads(version.transform_json).get("steps", [])
        facts["transforms"] = [
            {k: v for k, v in step.items() if k != "salt" and v is not None} for step in steps
        ]
    return _present(facts)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """Drop what was not recorded: None, and empty containers."""
    return {k: v for k, v in values.items() if v is not None and v != {} and v != []}
