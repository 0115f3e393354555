"""Lineage: the graph around a model version or a dataset version, as nodes and edges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from lepton.refs import parse_ref
from lepton.registry.lineage import lineage_of
from lepton.schemas import Lineage
from lepton.server.auth import Principal, require
from lepton.server.catalog import get_version
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.model_catalog import resolve_ref
from lepton.server.state import db_session

router = APIRouter(prefix="/api/v1/lineage", tags=["lineage"], responses=ERROR_RESPONSES)


@router.get("/models/{model_ref}", name="lineage.model")
def model_lineage(
    model_ref: Annotated[
        str, PathParam(description="`heart@3`, `heart@production`, `heart`.", max_length=140)
    ],
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Lineage:
    """Where a model version came from (dataset versions, the job, parent versions) and what
    came of it (derived versions, evaluations, deployments)."""
    _, row = resolve_ref(session, principal, model_ref)
    return lineage_of(session, principal.workspace_id, row)


@router.get("/datasets/{dataset_ref}", name="lineage.dataset")
def dataset_lineage(
    dataset_ref: Annotated[str, PathParam(description="`heart@v1` or `heart`.", max_length=140)],
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Lineage:
    """The versions a dataset version was derived from, and the jobs and models made from it."""
    name, version = parse_ref(dataset_ref)
    _, row = get_version(session, principal, name, version)
    return lineage_of(session, principal.workspace_id, row)
