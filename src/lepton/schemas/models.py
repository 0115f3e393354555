"""The model registry: models, versions and aliases, evaluations, and lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from lepton.schemas.common import _Model


class ModelRegister(_Model):
    artifact_digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="Blob of the packed model.")
    name: str | None = Field(default=None, description="Model name; the job's default if absent.")
    flavour: Literal["sklearn", "torch", "onnx", "keras", "xgboost", "lightgbm"] = Field(
        description="How the artifact is stored."
    )
    algorithm: str = Field(description="Algorithm that produced it.")
    task: str = Field(description="classification, regression, forecasting.")
    signature: dict[str, Any] = Field(description="Inputs (columns or shape, dtypes) and outputs.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Held-out metrics.")
    params: dict[str, Any] = Field(default_factory=dict, description="Training parameters.")
    leaderboard: list[dict[str, Any]] = Field(default_factory=list, description="AutoML runs.")
    description: str | None = Field(
        default=None, max_length=20_000, description="Intended use, in the author's words."
    )
    parent: str | None = Field(
        default=None, max_length=140, description="`name@N` this version was derived from."
    )
    explanations: dict[str, Any] | None = Field(
        default=None,
        description="Global explanation computed at registration (`kind`, `method`, "
        "`output_space`, `rows`, `features`/`classes`/`words`, `plot`: blob digest of its PNG), "
        "or `{not_computed: reason}`; the model card shows it.",
    )


class ModelVersion(_Model):
    model: str = Field(description="Model name.")
    version: int = Field(description="Version number, from 1.")
    ref: str = Field(description="`name@N`.")
    flavour: str = Field(description="sklearn, torch, onnx.")
    algorithm: str = Field(description="Algorithm that produced it.")
    task: str = Field(description="Task.")
    artifact_digest: str = Field(description="Blob of the packed model.")
    signature: dict[str, Any] = Field(description="Inputs and outputs.")
    metrics: dict[str, float] = Field(description="Held-out metrics.")
    params: dict[str, Any] = Field(description="Training parameters.")
    leaderboard: list[dict[str, Any]] = Field(description="AutoML leaderboard.")
    dataset_version: str | None = Field(description="Lineage: `name@vN` it was trained on.")
    job: str | None = Field(description="Lineage: the job that trained it.")
    environment: dict[str, str] | None = Field(description="Package versions at training.")
    created_at: datetime = Field(description="Registered (UTC).")
    description: str | None = Field(default=None, description="Intended use (user-supplied).")
    parent: str | None = Field(default=None, description="Lineage: `name@N` it derives from.")
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing at it.")


class Model(_Model):
    name: str = Field(description="Model name.")
    created_at: datetime = Field(description="Created (UTC).")
    versions: int = Field(description="Number of versions.")
    latest: ModelVersion | None = Field(description="The newest version.")
    aliases: dict[str, int] = Field(default_factory=dict, description="Alias → version number.")


MODEL_ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
"""Aliases start with a letter, so `3`, `v3` and version numbers never read as one."""


class ModelAliasSet(_Model):
    version: str = Field(max_length=12, description="Version number to point at (`3` or `v3`).")


class ModelVersionUpdate(_Model):
    description: str | None = Field(
        default=None, max_length=20_000, description="Intended use, in the author's words."
    )


class EvaluationRecord(_Model):
    model_version: str = Field(max_length=140, description="`name@N` evaluated.")
    split: str | None = Field(default=None, description="`test` for the held-out split.")
    result: dict[str, Any] = Field(description="Metrics, per-class, slices, plot digests.")


class Evaluation(_Model):
    id: str = Field(description="Evaluation id.")
    model_version: str = Field(description="`name@N` evaluated.")
    dataset_version: str | None = Field(description="`name@vN` it was evaluated on.")
    split: str | None = Field(description="`test` for the held-out split at training, else None.")
    job: str | None = Field(description="The job that computed it.")
    result: dict[str, Any] = Field(description="Metrics, per-class, slices, plot digests.")
    created_at: datetime = Field(description="Recorded (UTC).")


class LineageNode(_Model):
    id: str = Field(description="`kind:ref`, unique in the graph.")
    kind: str = Field(description="`dataset_version`, `job`, `model_version` or `deployment`.")
    ref: str = Field(description="Human reference (`heart@v1`, `heart@3`, a job id).")
    attributes: dict[str, Any] = Field(default_factory=dict, description="What to show.")


class LineageEdge(_Model):
    source: str = Field(description="Node id upstream.")
    target: str = Field(description="Node id downstream.")
    relation: str = Field(description="`derived`, `input`, `produced`, `parent`, `serves`.")


class Lineage(_Model):
    root: str = Field(description="The node asked about.")
    nodes: list[LineageNode] = Field(description="Every node, sorted by id.")
    edges: list[LineageEdge] = Field(description="Every edge, sorted.")
