"""The console's job pages: the list, a job's live log and charts, cancel, and the training
form (the no-code path)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lepton.console.render import page_request, render, signed_in, text_fields, writer
from lepton.console.session import message_of
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.enums import JobState
from lepton.errors import LeptonError
from lepton.schemas import JobCreate, TrainSpec
from lepton.server.state import get_control

router = APIRouter(include_in_schema=False)


@router.get("/jobs", name="console.jobs")
def jobs(
    request: Request,
    state: JobState | None = None,
    after: str | None = None,
    control: Control = Depends(get_control),
) -> HTMLResponse:
    me = signed_in(request)
    page = control.jobs.list(me, page_request(after), state=state)
    return render(request, "jobs.html", me, page=page, state=state, states=list(JobState))


@router.get("/jobs/{job_id}", name="console.job")
def job(request: Request, job_id: str, control: Control = Depends(get_control)) -> HTMLResponse:
    me = signed_in(request)
    return render(request, "job.html", me, **_job_live(control, me, job_id))


@router.get("/jobs/{job_id}/live", name="console.job_live")
def job_live(
    request: Request, job_id: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    """The part of a job's page that changes while it runs; htmx swaps it every 2 s."""
    me = signed_in(request)
    return render(request, "job_live.html", me, **_job_live(control, me, job_id))


def _job_live(control: Control, me: Principal, job_id: str) -> dict[str, Any]:
    job = control.jobs.get(me, job_id)
    log = control.jobs.logs(me, job_id, 0)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for point in control.jobs.metrics(me, job_id):
        series[point.name].append((point.step, point.value))
    return {"job": job, "log": log.text[-20_000:], "series": dict(series)}


@router.post("/jobs/{job_id}/cancel", name="console.job_cancel")
async def cancel(
    request: Request, job_id: str, control: Control = Depends(get_control)
) -> Response:
    me = await writer(request)
    request.state.audit_resource = f"job/{job_id}"
    control.jobs.cancel(me, job_id)
    return RedirectResponse(f"/jobs/{quote(job_id)}", status_code=303)


@router.get("/train", name="console.train_form")
def train_form(
    request: Request, dataset: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    return _train_page(request, signed_in(request), control, dataset, None)


def _train_page(
    request: Request,
    me: Principal,
    control: Control,
    chosen: str | None,
    error: str | None,
    status_code: int = 200,
) -> HTMLResponse:
    from lepton.algorithms.registry import list_algorithms

    return render(
        request,
        "train.html",
        me,
        status_code=status_code,
        datasets=control.datasets.list(me, PageRequest(limit=200)).items,
        chosen=chosen,
        algorithms=[a.name for a in list_algorithms()],
        error=error,
    )


@router.post("/train", name="console.train")
async def train(request: Request, control: Control = Depends(get_control)) -> Response:
    """The no-code path: a dataset, a target, AutoML or one algorithm, a time budget."""
    me = await writer(request)
    form = await request.form()
    fields = text_fields(form)
    try:
        spec = TrainSpec(
            dataset=fields.get("dataset", ""),
            target=fields.get("target") or None,
            algorithm=fields.get("algorithm") or "auto",
            time_budget_s=float(fields.get("time_budget_s") or 300),
        )
        job = control.jobs.submit(me, JobCreate(spec=spec))
    except (LeptonError, ValueError) as exc:
        message = message_of(exc) if isinstance(exc, LeptonError) else str(exc).splitlines()[0]
        return _train_page(request, me, control, fields.get("dataset"), message, 422)
    request.state.audit_resource = f"job/{job.id}"
    return RedirectResponse(f"/jobs/{quote(job.id)}", status_code=303)
