"""The lineage graph: dataset versions (and the versions they were derived from) → jobs → model
versions → versions derived from them → deployments, walked up (ancestors) and down
(descendants) from one node, within one workspace.

Every edge is a recorded link (a parent id, a job's dataset, a version's job), never inferred.
Deployments hang below the model version they serve, and are walked no further.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.datasets import DatasetService
from lepton.control.models import ModelService
from lepton.control.tokens import Principal
from lepton.schemas import Lineage, LineageEdge, LineageNode
from lepton.store.models import (
    DatasetRow,
    DatasetVersionRow,
    DeploymentRow,
    JobRow,
    ModelRow,
    ModelVersionRow,
)

__all__ = ["LineageGraph", "LineageService", "lineage_of"]


@dataclass
class LineageGraph:
    """Nodes by id and edges ``(source, target, relation)``, for one workspace."""

    session: Session
    workspace_id: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, kind: str, ref: str, **attributes: Any) -> str:
        """Add a node (once); returns its id ``kind:ref``."""
        node_id = f"{kind}:{ref}"
        if node_id not in self.nodes:
            clean = {k: v for k, v in attributes.items() if v is not None}
            self.nodes[node_id] = LineageNode(id=node_id, kind=kind, ref=ref, attributes=clean)
        return node_id

    def link(self, source: str, target: str, relation: str) -> None:
        self.edges.add((source, target, relation))

    # -- node constructors: each returns the node id and the row behind it --

    def dataset_version(self, row: DatasetVersionRow) -> str:
        dataset = self.session.get(DatasetRow, row.dataset_id)
        name = dataset.name if dataset else "?"
        return self.add(
            "dataset_version", f"{name}@v{row.version}", rows=row.rows, source=row.source_name
        )

    def job(self, row: JobRow) -> str:
        return self.add("job", row.id, job_kind=row.kind, state=row.state)

    def model_version(self, row: ModelVersionRow) -> str:
        model = self.session.get(ModelRow, row.model_id)
        name = model.name if model else "?"
        deleted = row.deleted_at.isoformat() if row.deleted_at else None
        return self.add(
            "model_version",
            f"{name}@{row.version}",
            algorithm=row.algorithm,
            task=row.task,
            deleted_at=deleted,
        )


def lineage_of(
    session: Session, workspace_id: str, root: DatasetVersionRow | ModelVersionRow
) -> Lineage:
    """The ancestors and descendants of ``root`` with the edges between them."""
    graph = LineageGraph(session, workspace_id)
    start = _node(graph, root)
    seen_up: set[str] = set()
    stack: list[Any] = [root]
    while stack:  # upstream: follow parent links back to the raw data
        row = stack.pop()
        node = _node(graph, row)
        if node in seen_up:
            continue
        seen_up.add(node)
        for parent, relation in _parents(graph, row):
            graph.link(_node(graph, parent), node, relation)
            stack.append(parent)
    seen_down: set[str] = set()
    stack = [root]
    while stack:  # downstream: what was made from it
        row = stack.pop()
        node = _node(graph, row)
        if node in seen_down:
            continue
        seen_down.add(node)
        for child, relation in _children(graph, row):
            graph.link(node, _node(graph, child), relation)
            stack.append(child)
        if isinstance(row, ModelVersionRow):
            _deployments(graph, row)
    return Lineage(
        root=start,
        nodes=[graph.nodes[k] for k in sorted(graph.nodes)],
        edges=[LineageEdge(source=s, target=t, relation=r) for s, t, r in sorted(graph.edges)],
    )


def _node(graph: LineageGraph, row: Any) -> str:
    if isinstance(row, DatasetVersionRow):
        return graph.dataset_version(row)
    if isinstance(row, JobRow):
        return graph.job(row)
    return graph.model_version(row)


def _parents(graph: LineageGraph, row: Any) -> list[tuple[Any, str]]:
    s = graph.session
    found: list[tuple[Any, str]] = []
    if isinstance(row, DatasetVersionRow):
        if row.parent_id and (parent := s.get(DatasetVersionRow, row.parent_id)):
            found.append((parent, "derived"))
    elif isinstance(row, JobRow):
        if row.dataset_version_id and (dv := s.get(DatasetVersionRow, row.dataset_version_id)):
            found.append((dv, "input"))
        evaluated = _evaluated_version(graph, row)
        if evaluated is not None:
            found.append((evaluated, "evaluated"))
    elif isinstance(row, ModelVersionRow):
        job = s.get(JobRow, row.job_id) if row.job_id else None
        if job is not None:
            found.append((job, "produced"))
        elif row.dataset_version_id and (data := s.get(DatasetVersionRow, row.dataset_version_id)):
            found.append((data, "input"))
        if row.parent_id and (derived_from := s.get(ModelVersionRow, row.parent_id)):
            found.append((derived_from, "parent"))
    return found


def _children(graph: LineageGraph, row: Any) -> list[tuple[Any, str]]:
    s, ws = graph.session, graph.workspace_id
    found: list[tuple[Any, str]] = []
    if isinstance(row, DatasetVersionRow):
        found += [
            (c, "derived")
            for c in s.scalars(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.parent_id == row.id)
                .order_by(DatasetVersionRow.version)
            )
        ]
        found += [
            (j, "input")
            for j in s.scalars(
                select(JobRow)
                .where(JobRow.workspace_id == ws, JobRow.dataset_version_id == row.id)
                .order_by(JobRow.created_at)
            )
        ]
        found += [
            (m, "input")
            for m in s.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.dataset_version_id == row.id, ModelVersionRow.job_id.is_(None)
                )
            )
        ]
    elif isinstance(row, JobRow):
        found += [
            (m, "produced")
            for m in s.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.job_id == row.id)
                .order_by(ModelVersionRow.version)
            )
        ]
    elif isinstance(row, ModelVersionRow):
        found += [
            (c, "parent")
            for c in s.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.parent_id == row.id)
                .order_by(ModelVersionRow.version)
            )
        ]
        found += [(j, "evaluated") for j in _evaluations_jobs(graph, row)]
    return found


def _evaluated_version(graph: LineageGraph, job: JobRow) -> ModelVersionRow | None:
    """The version an evaluate job evaluated (pinned to ``name@N`` at submit)."""
    if job.kind != "evaluate":
        return None
    name, _, number = str(json.loads(job.spec_json).get("model", "")).partition("@")
    if not number.isdigit():
        return None
    return graph.session.scalars(
        select(ModelVersionRow)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .where(
            ModelRow.workspace_id == graph.workspace_id,
            ModelRow.name == name,
            ModelVersionRow.version == int(number),
        )
    ).first()


def _evaluations_jobs(graph: LineageGraph, row: ModelVersionRow) -> list[JobRow]:
    model = graph.session.get(ModelRow, row.model_id)
    if model is None:
        return []
    ref = f"{model.name}@{row.version}"
    jobs = graph.session.scalars(
        select(JobRow)
        .where(JobRow.workspace_id == graph.workspace_id, JobRow.kind == "evaluate")
        .where(JobRow.spec_json.contains(f'"{ref}"'))
        .order_by(JobRow.created_at)
    )
    return [j for j in jobs if json.loads(j.spec_json).get("model") == ref]


def _deployments(graph: LineageGraph, row: ModelVersionRow) -> list[str]:
    """The deployments serving ``row``, each a node linked from it by ``deployed``."""
    version = graph.model_version(row)
    added = []
    for deployment in graph.session.scalars(
        select(DeploymentRow)
        .where(
            DeploymentRow.workspace_id == graph.workspace_id,
            DeploymentRow.model_version_id == row.id,
        )
        .order_by(DeploymentRow.name)
    ):
        node = graph.add(
            "deployment",
            deployment.name,
            requested=deployment.source_ref,
            replicas=deployment.replicas,
            public=deployment.public,
        )
        graph.link(version, node, "deployed")
        added.append(node)
    return added


class LineageService:
    """The graph around a model version or a dataset version of the caller's workspace."""

    def __init__(self, ctx: Context, datasets: DatasetService, models: ModelService) -> None:
        self.ctx = ctx
        self.datasets = datasets
        self.models = models

    def of_model(self, principal: Principal, ref: str) -> Lineage:
        """Where a model version came from and what came of it."""
        with self.ctx.sessions() as session:
            _, row = self.models.resolve(session, principal, ref)
            return lineage_of(session, principal.workspace_id, row)

    def of_dataset(self, principal: Principal, ref: str) -> Lineage:
        """The versions a dataset version was derived from, and the jobs and models made of it."""
        with self.ctx.sessions() as session:
            row = self.datasets.resolve(session, principal, ref)
            return lineage_of(session, principal.workspace_id, row)
