"""Jobs: submit, list, show, cancel, logs, metrics; and the calls a job's own runner makes with
its scoped token (inputs, metrics, checkpoints, artifacts, model registration, its end).

A train job is checked at submit: a bad target, a one-class target, too few rows, an unknown
algorithm or parameter make a job that is failed at once with the reason, so the CLI and
``lepton job show`` both say why.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lepton.errors import Conflict, InvalidRequest, LeptonError, NotFound
from lepton.refs import parse_ref
from lepton.schemas import (
    TERMINAL_STATES,
    Blob,
    DatasetVersionDetail,
    EvaluateSpec,
    Evaluation,
    EvaluationRecord,
    Job,
    JobCreate,
    JobError,
    JobFinish,
    JobStarted,
    JobState,
    LogChunk,
    MetricBatch,
    MetricPoint,
    ModelRegister,
    ModelVersion,
    Profile,
    ScriptSpec,
    TrainSpec,
)
from lepton.server.auth import Principal, require
from lepton.server.catalog import detail_view, ensure_split, get_version
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.model_catalog import (
    check_evaluate,
    job_model_version,
    record_job_evaluation,
    register_version,
    version_view,
)
from lepton.server.routes.blobs import receive_blob
from lepton.server.routes.models import check_artifact
from lepton.server.state import ServerState, db_session, get_state
from lepton.server.transfer import BYTES_RESPONSE, UPLOAD_BODY, read_log, stream_blob
from lepton.store.models import (
    BlobRow,
    DatasetRow,
    DatasetVersionRow,
    JobMetricRow,
    JobRow,
    TokenRow,
    utcnow,
)

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, PathParam(description="Job id.", max_length=32)]


def _get(session: Session, principal: Principal, job_id: str) -> JobRow:
    job = session.get(JobRow, job_id)
    if job is None or job.workspace_id != principal.workspace_id:
        raise NotFound(
            f"job '{job_id}' does not exist in workspace '{principal.workspace}'",
            fix="list the jobs: lepton job list",
        )
    return job


def job_view(session: Session, job: JobRow) -> Job:
    dataset_ref = None
    if job.dataset_version_id:
        version = session.get(DatasetVersionRow, job.dataset_version_id)
        dataset = session.get(DatasetRow, version.dataset_id) if version else None
        if version and dataset:
            dataset_ref = f"{dataset.name}@v{version.version}"
    error = (
        JobError(message=job.error_message, fix=job.error_fix or "")
        if job.error_message and job.state != JobState.succeeded
        else None
    )
    return Job(
        id=job.id,
        kind=job.kind,
        state=JobState(job.state),
        spec=json.loads(job.spec_json),
        dataset_version=dataset_ref,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=error,
        result=json.loads(job.result_json) if job.result_json else None,
        environment=json.loads(job.environment_json) if job.environment_json else None,
        cancel_requested=job.cancel_requested,
    )


# --- the user's side ---------------------------------------------------------------------


@router.post("", name="job.submit", status_code=201)
def submit_job(
    body: JobCreate,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Job:
    """Queue a job. A train job whose inputs cannot work is recorded as failed with the reason."""
    spec = body.spec
    version_id = None
    problem: LeptonError | None = None
    if spec.dataset is not None:
        name, version = parse_ref(spec.dataset)
        _, row = get_version(session, principal, name, version)
        version_id = row.id
        if isinstance(spec, TrainSpec):
            problem = _check_train(spec, row)
        elif isinstance(spec, EvaluateSpec):
            spec, problem = check_evaluate(session, principal, spec, row)
    if isinstance(spec, ScriptSpec):
        blob = session.get(BlobRow, (principal.workspace_id, spec.script_digest))
        if blob is None:
            raise NotFound(
                f"the script blob {spec.script_digest} was not uploaded to this workspace",
                fix="upload it first (POST /api/v1/blobs); `lepton run` does this for you",
            )
    job = JobRow(
        id=uuid.uuid4().hex[:12],
        workspace_id=principal.workspace_id,
        kind=spec.kind,
        state=JobState.failed if problem else JobState.queued,
        spec_json=spec.model_dump_json(),
        dataset_version_id=version_id,
        attempts=0,
        max_retries=spec.max_retries,
        created_at=utcnow(),
        finished_at=utcnow() if problem else None,
        created_by=principal.token_id,
        error_message=problem.message if problem else None,
        error_fix=problem.fix if problem else None,
        cancel_requested=False,
    )
    session.add(job)
    session.commit()
    request.state.audit_resource = f"job/{job.id}"
    if state.scheduler is not None and not problem:
        state.scheduler.wake()
    return job_view(session, job)


def _check_train(spec: TrainSpec, row: DatasetVersionRow) -> LeptonError | None:
    from lepton.algorithms.registry import check_fits, get_algorithm
    from lepton.jobs.prepare import infer_problem
    from lepton.schemas import Column

    columns = [Column.model_validate(c) for c in json.loads(row.schema_json)]
    try:
        problem = infer_problem(
            columns,
            spec.target or row.target,
            spec.algorithm,
            Profile.model_validate_json(row.profile_json),
        )
        if spec.algorithm != "auto":
            check_fits(spec.algorithm, problem.task, problem.kind)
            get_algorithm(spec.algorithm).resolve(spec.params)
        elif spec.params:
            raise InvalidRequest(
                "--param needs --algorithm: AutoML chooses its own parameters",
                fix="name the algorithm (lepton algorithms list), or drop --param",
            )
    except LeptonError as exc:
        return exc
    return None


@router.get("", name="job.list")
def list_jobs(
    state: JobState | None = Query(None, description="Only jobs in this state."),
    limit: int = Query(50, ge=1, le=1000, description="At most this many, newest first."),
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Job]:
    query = select(JobRow).where(JobRow.workspace_id == principal.workspace_id)
    if state is not None:
        query = query.where(JobRow.state == state.value)
    rows = session.scalars(query.order_by(JobRow.created_at.desc()).limit(limit))
    return [job_view(session, row) for row in rows]


@router.get("/{job_id}", name="job.get")
def get_job(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> Job:
    return job_view(session, _get(session, principal, job_id))


@router.post("/{job_id}/cancel", name="job.cancel")
def cancel_job(
    job_id: JobId,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Job:
    """Cancel a queued job at once, or ask a running one to stop."""
    job = _get(session, principal, job_id)
    if job.state in TERMINAL_STATES:
        raise Conflict(
            f"job {job_id} already ended ({job.state})", fix="nothing to cancel: lepton job list"
        )
    job.cancel_requested = True
    if job.state == JobState.queued:
        job.state = JobState.cancelled
        job.finished_at = utcnow()
    session.commit()
    if state.scheduler is not None:
        state.scheduler.wake()
    return job_view(session, job)


@router.get("/{job_id}/logs", name="job.logs")
def job_logs(
    job_id: JobId,
    offset: int = Query(0, ge=0, description="Byte offset to read from."),
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> LogChunk:
    """The job's log (every attempt) from ``offset``; follow by asking again from ``offset``."""
    from lepton.jobs.scheduler import job_log_path

    job = _get(session, principal, job_id)
    path = job_log_path(state.settings.home, job.id)
    return read_log(path, offset, ended=job.state in TERMINAL_STATES)


@router.get("/{job_id}/metrics", name="job.metrics")
def job_metrics(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> list[MetricPoint]:
    """Every metric point the job logged, in order (a retried attempt continues the steps)."""
    job = _get(session, principal, job_id)
    rows = session.scalars(
        select(JobMetricRow).where(JobMetricRow.job_id == job.id).order_by(JobMetricRow.id)
    )
    return [MetricPoint(step=r.step, name=r.name, value=r.value) for r in rows]


# --- the runner's side (a token scoped to the job) ------------------------------------------


def _running(session: Session, principal: Principal, job_id: str) -> JobRow:
    job = _get(session, principal, job_id)
    if job.state != JobState.running:
        raise Conflict(
            f"job {job_id} is {job.state}, not running", fix="only a running job reports progress"
        )
    return job


@router.post("/{job_id}/started", name="job.started")
def job_started(
    job_id: JobId,
    body: JobStarted,
    principal: Principal = Depends(require("write", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> Job:
    job = _running(session, principal, job_id)
    job.environment_json = json.dumps(body.environment)
    session.commit()
    return job_view(session, job)


@router.post("/{job_id}/metrics", name="job.log_metrics", status_code=204)
def log_metrics(
    job_id: JobId,
    body: MetricBatch,
    principal: Principal = Depends(require("write", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> None:
    job = _running(session, principal, job_id)
    now = utcnow()
    session.add_all(
        JobMetricRow(
            job_id=job.id, attempt=job.attempts, step=p.step, name=p.name, value=p.value, time=now
        )
        for p in body.points
    )
    session.commit()


def _job_dataset(session: Session, job: JobRow) -> DatasetVersionRow:
    row = session.get(DatasetVersionRow, job.dataset_version_id) if job.dataset_version_id else None
    if row is None:
        raise NotFound(f"job {job.id} reads no dataset", fix="submit it with --dataset")
    return row


@router.get("/{job_id}/dataset", name="job.dataset")
def job_dataset(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> DatasetVersionDetail:
    """The job's dataset version: schema, profile, target."""
    row = _job_dataset(session, _get(session, principal, job_id))
    dataset = session.get(DatasetRow, row.dataset_id)
    assert dataset is not None
    return detail_view(session, dataset, row)


@router.get(
    "/{job_id}/data", name="job.data", response_class=StreamingResponse, responses=BYTES_RESPONSE
)
def job_data(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The job's dataset version as Parquet."""
    return stream_blob(state, _job_dataset(session, _get(session, principal, job_id)).data_digest)


@router.get(
    "/{job_id}/split", name="job.split", response_class=StreamingResponse, responses=BYTES_RESPONSE
)
def job_split(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The stored split of the job's dataset version for the job's split spec (`.npy`)."""
    job = _get(session, principal, job_id)
    spec = TrainSpec.model_validate_json(job.spec_json)
    split = ensure_split(state, _job_dataset(session, job), spec.split)
    return stream_blob(state, split.digest)


@router.get(
    "/{job_id}/script",
    name="job.script",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def job_script(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    job = _get(session, principal, job_id)
    if job.kind != "script":
        raise NotFound(f"job {job_id} is a {job.kind} job; it has no script", fix="")
    return stream_blob(state, ScriptSpec.model_validate_json(job.spec_json).script_digest)


@router.put("/{job_id}/checkpoint", name="job.checkpoint_put", openapi_extra=UPLOAD_BODY)
async def put_checkpoint(
    job_id: JobId,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    state: ServerState = Depends(get_state),
) -> Blob:
    """Keep the job's latest resumable state (replaces the previous one)."""
    with state.sessions() as session:
        _running(session, principal, job_id)
    blob = await receive_blob(request, state, principal, record=False)

    def remember() -> None:
        from lepton.store.content import erase_unreferenced

        with state.sessions() as session:
            job = _running(session, principal, job_id)
            old, job.checkpoint_digest = job.checkpoint_digest, blob.digest
            session.commit()
            if old and old != blob.digest:
                with state.content_lock:
                    erase_unreferenced(session, state.blobs, [old])

    await run_in_threadpool(remember)
    return blob


@router.get(
    "/{job_id}/checkpoint",
    name="job.checkpoint_get",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def get_checkpoint(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The latest checkpoint of the job, from any earlier attempt."""
    job = _get(session, principal, job_id)
    if job.checkpoint_digest is None:
        raise NotFound(f"job {job_id} has no checkpoint yet", fix="")
    return stream_blob(state, job.checkpoint_digest)


@router.post(
    "/{job_id}/artifacts", name="job.upload_artifact", status_code=201, openapi_extra=UPLOAD_BODY
)
async def upload_artifact(
    job_id: JobId,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    state: ServerState = Depends(get_state),
) -> Blob:
    """Store a file the job produced (a packed model) as a blob of the workspace."""
    with state.sessions() as session:
        _running(session, principal, job_id)
    return await receive_blob(request, state, principal)


@router.post("/{job_id}/model", name="job.register_model", status_code=201)
def register_model(
    job_id: JobId,
    body: ModelRegister,
    request: Request,
    principal: Principal = Depends(require("write", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> ModelVersion:
    """Register the job's model (its artifact was uploaded as a blob of this workspace) with
    lineage: the dataset version, the job, its environment."""
    job = _running(session, principal, job_id)
    if session.get(BlobRow, (principal.workspace_id, body.artifact_digest)) is None:
        raise NotFound(
            f"artifact {body.artifact_digest} was not uploaded", fix="upload it to /api/v1/blobs"
        )
    check_artifact(state, body.artifact_digest)
    spec = json.loads(job.spec_json)
    name = body.name or spec.get("model") or _default_model_name(session, job)
    environment = json.loads(job.environment_json) if job.environment_json else None
    model, row = register_version(
        session,
        principal,
        body,
        name=name,
        job=job,
        dataset_version_id=job.dataset_version_id,
        environment=environment,
    )
    request.state.audit_resource = f"model/{model.name}@{row.version}"
    return version_view(session, model, row)


@router.get("/{job_id}/model", name="job.model")
def job_model(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> ModelVersion:
    """The model version an evaluate job evaluates."""
    model, row = job_model_version(session, principal, _get(session, principal, job_id))
    return version_view(session, model, row)


@router.get(
    "/{job_id}/model/artifact",
    name="job.model_artifact",
    response_class=StreamingResponse,
    responses=BYTES_RESPONSE,
)
def job_model_artifact(
    job_id: JobId,
    principal: Principal = Depends(require("read", scope="job")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """The packed model an evaluate job evaluates."""
    _, row = job_model_version(session, principal, _get(session, principal, job_id))
    return stream_blob(state, row.artifact_digest or "")


@router.post("/{job_id}/evaluation", name="job.record_evaluation", status_code=201)
def record_evaluation(
    job_id: JobId,
    body: EvaluationRecord,
    principal: Principal = Depends(require("write", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> Evaluation:
    """Attach an evaluation (metrics, slices, uploaded plot digests) to the job's model."""
    return record_job_evaluation(session, principal, _running(session, principal, job_id), body)


def _default_model_name(session: Session, job: JobRow) -> str:
    if job.dataset_version_id:
        version = session.get(DatasetVersionRow, job.dataset_version_id)
        dataset = session.get(DatasetRow, version.dataset_id) if version else None
        if dataset:
            return dataset.name
    return f"job-{job.id}"


@router.post("/{job_id}/finish", name="job.finish")
def finish_job(
    job_id: JobId,
    body: JobFinish,
    principal: Principal = Depends(require("write", scope="job")),
    session: Session = Depends(db_session, scope="function"),
) -> Job:
    """The runner reports the end of the job; its token stops working."""
    job = _running(session, principal, job_id)
    job.state = body.state
    job.finished_at = utcnow()
    job.pid = None
    job.result_json = json.dumps(body.result) if body.result is not None else None
    job.error_message = body.error.message if body.error else None
    job.error_fix = body.error.fix if body.error else None
    token = session.get(TokenRow, job.token_id) if job.token_id else None
    if token is not None:
        token.revoked_at = utcnow()
    session.commit()
    return job_view(session, job)
