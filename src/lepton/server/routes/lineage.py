"""Lineage: the graph around a model version or a dataset version, as nodes and edges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam

from lepton.control.plane import Control
from lepton.schemas import Lineage
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/lineage", tags=["lineage"], responses=ERROR_RESPONSES)


@router.get("/models/{model_ref}", name="lineage.model")
def model_lineage(
    model_ref: Annotated[
        str, PathParam(description="`heart@3`, `heart@production`, `heart`.", max_length=140)
    ],
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Lineage:
    """Where a model version came from (dataset versions, the job, parent versions) and what
    came of it (derived versions, evaluations, deployments)."""
    return control.lineage.of_model(principal, model_ref)


@router.get("/datasets/{dataset_ref}", name="lineage.dataset")
def dataset_lineage(
    dataset_ref: Annotated[str, PathParam(description="`heart@v1` or `heart`.", max_length=140)],
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Lineage:
    """The versions a dataset version was derived from, and the jobs and models made from it."""
    return control.lineage.of_dataset(principal, dataset_ref)
