"""Jobs: submit, list, show, cancel, logs, metrics; and the calls a job's own runner makes with
its scoped token. The rules are in :mod:`lepton.control.jobs`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import (
    Blob,
    DatasetVersionDetail,
    Evaluation,
    EvaluationRecord,
    Job,
    JobCreate,
    JobFinish,
    JobStarted,
    JobState,
    LogChunk,
    MetricBatch,
    MetricPoint,
    ModelRegister,
    ModelVersion,
    Rendezvous,
)
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control
from lepton.server.transfer import BYTES_RESPONSE, UPLOAD_BODY, body_chunks

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, PathParam(description="Job id.", max_length=32)]


def _bytes(chunks: object) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="application/octet-stream")  # type: ignore[arg-type]


# --- the user's side ---------------------------------------------------------------------


@router.post("", name="job.submit", status_code=201)
def submit_job(
    body: JobCreate,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Job:
    """Queue a job. A train job whose inputs cannot work is recorded as failed with the reason."""
    job = control.jobs.submit(principal, body)
    request.state.audit_resource = f"job/{job.id}"
    return job


@router.get("", name="job.list")
def list_jobs(
    request: Request,
    response: Response,
    state: JobState | None = Query(None, description="Only jobs in this state."),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Job]:
    """The workspace's jobs, newest first."""
    return page_response(request, response, control.jobs.list(principal, page, state=state))


@router.get("/{job_id}", name="job.get")
def get_job(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> Job:
    return control.jobs.get(principal, job_id)


@router.post("/{job_id}/cancel", name="job.cancel")
def cancel_job(
    job_id: JobId,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Job:
    """Cancel a queued job at once, or ask a running one to stop."""
    return control.jobs.cancel(principal, job_id)


@router.get("/{job_id}/logs", name="job.logs")
def job_logs(
    job_id: JobId,
    offset: int = Query(0, ge=0, description="Byte offset to read from."),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> LogChunk:
    """The job's log (every attempt) from ``offset``; follow by asking again from ``offset``."""
    return control.jobs.logs(principal, job_id, offset)


@router.get("/{job_id}/metrics", name="job.metrics")
def job_metrics(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> list[MetricPoint]:
    """Every metric point the job logged, in order (a retried attempt continues the steps)."""
    return control.jobs.metrics(principal, job_id)


# --- the runner's side (a token scoped to the job) ------------------------------------------


@router.post("/{job_id}/started", name="job.started")
def job_started(
    job_id: JobId,
    body: JobStarted,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Job:
    return control.jobs.started(principal, job_id, body.environment)


@router.post("/{job_id}/metrics", name="job.log_metrics", status_code=204)
def log_metrics(
    job_id: JobId,
    body: MetricBatch,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> None:
    control.jobs.log_metrics(principal, job_id, body.points, batch=body.batch)


@router.get("/{job_id}/dataset", name="job.dataset")
def job_dataset(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> DatasetVersionDetail:
    """The job's dataset version: schema, profile, target."""
    return control.jobs.dataset(principal, job_id)


@router.get(
    "/{job_id}/data", name="job.data", response_class=StreamingResponse, responses=BYTES_RESPONSE
)
def job_data(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The job's dataset version as Parquet."""
    return _bytes(control.jobs.open_data(principal, job_id))


@router.get(
    "/{job_id}/split", name="job.split", response_class=StreamingResponse, responses=BYTES_RESPONSE
)
def job_split(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The stored split of the job's dataset version for the job's split spec (`.npy`)."""
    return _bytes(control.jobs.open_split(principal, job_id))


@router.get(
    "/{job_id}/script",
    name="job.script",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def job_script(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    return _bytes(control.jobs.open_script(principal, job_id))


@router.put("/{job_id}/rendezvous", name="job.rendezvous_put")
def put_rendezvous(
    job_id: JobId,
    body: Rendezvous,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Rendezvous:
    """Rank 0 of a data-parallel attempt records where its workers meet."""
    return control.jobs.put_rendezvous(principal, job_id, body)


@router.get("/{job_id}/rendezvous", name="job.rendezvous")
def get_rendezvous(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> Rendezvous:
    """Where the workers of the job's current attempt meet; 404 until rank 0 has said."""
    return control.jobs.rendezvous(principal, job_id)


@router.put("/{job_id}/checkpoint", name="job.checkpoint_put", openapi_extra=UPLOAD_BODY)
async def put_checkpoint(
    job_id: JobId,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Blob:
    """Keep the job's latest resumable state (replaces the previous one)."""
    chunks = body_chunks(request, control.ctx.settings.max_upload_bytes)
    return await control.jobs.put_checkpoint(principal, job_id, chunks)


@router.get(
    "/{job_id}/checkpoint",
    name="job.checkpoint_get",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def get_checkpoint(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The latest checkpoint of the job, from any earlier attempt."""
    return _bytes(control.jobs.open_checkpoint(principal, job_id))


@router.post(
    "/{job_id}/artifacts", name="job.upload_artifact", status_code=201, openapi_extra=UPLOAD_BODY
)
async def upload_artifact(
    job_id: JobId,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Blob:
    """Store a file the job produced (a packed model) as a blob of the workspace."""
    chunks = body_chunks(request, control.ctx.settings.max_upload_bytes)
    return await control.jobs.upload_artifact(principal, job_id, chunks)


@router.post("/{job_id}/model", name="job.register_model", status_code=201)
def register_model(
    job_id: JobId,
    body: ModelRegister,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """Register the job's model (its artifact was uploaded as a blob of this workspace) with
    lineage: the dataset version, the job, its environment."""
    version = control.jobs.register_model(principal, job_id, body)
    request.state.audit_resource = f"model/{version.ref}"
    return version


@router.get("/{job_id}/model", name="job.model")
def job_model(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> ModelVersion:
    """The model version an evaluate job evaluates."""
    return control.jobs.model(principal, job_id)


@router.get(
    "/{job_id}/model/artifact",
    name="job.model_artifact",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def job_model_artifact(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """The packed model an evaluate job evaluates."""
    return _bytes(control.jobs.open_model_artifact(principal, job_id))


@router.post("/{job_id}/evaluation", name="job.record_evaluation", status_code=201)
def record_evaluation(
    job_id: JobId,
    body: EvaluationRecord,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Evaluation:
    """Attach an evaluation (metrics, slices, uploaded plot digests) to the job's model."""
    return control.jobs.record_evaluation(principal, job_id, body)


@router.post("/{job_id}/finish", name="job.finish")
def finish_job(
    job_id: JobId,
    body: JobFinish,
    principal: Principal = Depends(require("write", scope="job")),
    control: Control = Depends(get_control),
) -> Job:
    """The runner reports the end of the job; its token stops working."""
    return control.jobs.finish(principal, job_id, body)
