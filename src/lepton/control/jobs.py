"""Jobs: submit, list, show, cancel, logs, metrics; and what a job's own runner may do with its
scoped token (read its inputs, report metrics, keep a checkpoint, upload and register its model,
record evaluations, report its end).

A job is checked at submit: a bad target, a one-class target, too few rows, an unknown
algorithm or parameter make a job that is failed at once with the reason, so the CLI and
``lepton job show`` both say why.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.content import Content
from lepton.control.context import Context
from lepton.control.datasets import DatasetService
from lepton.control.models import ModelService
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.secrets import SecretService
from lepton.control.tokens import Principal, TokenService
from lepton.control.uploads import UploadService
from lepton.errors import Conflict, InvalidRequest, LeptonError, NotFound, PermissionDenied
from lepton.schemas import (
    TERMINAL_STATES,
    Blob,
    Column,
    DatasetVersionDetail,
    EvaluateSpec,
    Evaluation,
    EvaluationRecord,
    Job,
    JobCreate,
    JobError,
    JobFinish,
    JobSpec,
    JobState,
    LogChunk,
    MetricPoint,
    ModelRegister,
    ModelVersion,
    Profile,
    Rendezvous,
    ScriptSpec,
    TrainSpec,
)
from lepton.store.blobs import BlobWriter
from lepton.store.models import DatasetVersionRow, JobMetricRow, JobRow, ModelRow, ModelVersionRow

_LOG_SETTLE_S = 2.0
"""Seconds after a job's end before its log counts as complete (a scheduler pass is 0.5 s)."""

__all__ = ["JobService", "job_log_path"]


def job_log_path(home: Path, job_id: str) -> Path:
    return home / "jobs" / job_id / "job.log"


def owner(job_id: str) -> tuple[str, str]:
    return ("job", job_id)


class JobService:
    def __init__(
        self,
        ctx: Context,
        content: Content,
        tokens: TokenService,
        datasets: DatasetService,
        models: ModelService,
        uploads: UploadService,
        secrets: SecretService,
    ) -> None:
        self.ctx = ctx
        self.content = content
        self.tokens = tokens
        self.datasets = datasets
        self.models = models
        self.uploads = uploads
        self.secrets = secrets
        datasets.users.append(self._dataset_users)
        datasets.unlinks.append(self._dataset_unlink)

    # --- lookups ------------------------------------------------------------------------------

    def job_row(self, session: Session, principal: Principal, job_id: str) -> JobRow:
        job = session.get(JobRow, job_id)
        if job is None or job.workspace_id != principal.workspace_id:
            raise NotFound(
                f"job '{job_id}' does not exist in workspace '{principal.workspace}'",
                fix="list the jobs: lepton job list",
            )
        return job

    def _running(self, session: Session, principal: Principal, job_id: str) -> JobRow:
        job = self.job_row(session, principal, job_id)
        if job.state != JobState.running:
            raise Conflict(
                f"job {job_id} is {job.state}, not running",
                fix="only a running job reports progress",
            )
        return job

    # --- the user's side ----------------------------------------------------------------------

    def submit(self, principal: Principal, body: JobCreate) -> Job:
        """Queue a job. One whose inputs cannot work is recorded as failed with the reason."""
        spec = body.spec
        problem: LeptonError | None = None
        with self.ctx.sessions() as session:
            version_id = None
            if spec.dataset is not None:
                row = self.datasets.resolve(session, principal, spec.dataset)
                version_id = row.id
                if isinstance(spec, TrainSpec):
                    problem = _check_train(spec, row)
                elif isinstance(spec, EvaluateSpec):
                    spec, problem = self._check_evaluate(session, principal, spec, row)
            if isinstance(spec, ScriptSpec):
                self.secrets.require(session, principal, spec.secrets)
            if isinstance(spec, ScriptSpec) and not self.content.uploaded(
                session, principal.workspace_id, spec.script_digest
            ):
                raise NotFound(
                    f"the script blob {spec.script_digest} was not uploaded to this workspace",
                    fix="upload it first (POST /api/v1/blobs); `lepton run` does this for you",
                )
            now = self.ctx.clock()
            job = JobRow(
                id=uuid.uuid4().hex[:12],
                workspace_id=principal.workspace_id,
                kind=spec.kind,
                state=JobState.failed if problem else JobState.queued,
                spec_json=spec.model_dump_json(),
                dataset_version_id=version_id,
                attempts=0,
                max_retries=spec.max_retries,
                created_at=now,
                finished_at=now if problem else None,
                created_by=principal.token_id,
                error_message=problem.message if problem else None,
                error_fix=problem.fix if problem else None,
                cancel_requested=False,
            )
            session.add(job)
            session.commit()
            view = self.view(session, job)
        if not problem:
            self.ctx.wake("jobs")
        return view

    def list(
        self, principal: Principal, page: PageRequest, *, state: JobState | None = None
    ) -> Page[Job]:
        """The workspace's jobs, newest first."""
        query = select(JobRow).where(JobRow.workspace_id == principal.workspace_id)
        if state is not None:
            query = query.where(JobRow.state == state.value)
        held: builtins.list[Any] = []  # the prefetched rows, alive while the views are made
        with self.ctx.sessions() as session:
            return paged(
                session,
                query,
                [JobRow.created_at, JobRow.id],
                page,
                lambda r: self.view(session, r),
                descending=True,
                parse=lambda v: [datetime.fromisoformat(str(v[0])), v[1]],
                prefetch=lambda rows: held.extend(
                    self.datasets.load_refs(session, (r.dataset_version_id for r in rows))
                ),
            )

    def get(self, principal: Principal, job_id: str) -> Job:
        with self.ctx.sessions() as session:
            return self.view(session, self.job_row(session, principal, job_id))

    def cancel(self, principal: Principal, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop."""
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            if job.state in TERMINAL_STATES:
                raise Conflict(
                    f"job {job_id} already ended ({job.state})",
                    fix="nothing to cancel: lepton job list",
                )
            job.cancel_requested = True
            if job.state == JobState.queued:
                job.state = JobState.cancelled
                job.finished_at = self.ctx.clock()
            session.commit()
            view = self.view(session, job)
        self.ctx.wake("jobs")
        return view

    def logs(self, principal: Principal, job_id: str, offset: int) -> LogChunk:
        """The job's log (every attempt) from ``offset``, with the secret values it was given
        masked; follow by asking again from there."""
        from lepton.control.logs import read_log

        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            # Complete only once the executor had time to bring in the last output: a runner on
            # a Ray node reports its end before its final lines are copied here (next pass).
            settled = job.finished_at is None or (
                (self.ctx.clock() - job.finished_at).total_seconds() >= _LOG_SETTLE_S
            )
            ended = job.state in TERMINAL_STATES and settled
            masker = self.secrets.masker("job", job.id, job.secret_mask)
        path = job_log_path(self.ctx.settings.home, job_id)
        return read_log(path, offset, ended=ended, masker=masker)

    def metrics(self, principal: Principal, job_id: str) -> builtins.list[MetricPoint]:
        """Every metric point the job logged, in order (a retried attempt continues the steps)."""
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            rows = session.scalars(
                select(JobMetricRow).where(JobMetricRow.job_id == job.id).order_by(JobMetricRow.id)
            )
            return [MetricPoint(step=r.step, name=r.name, value=r.value) for r in rows]

    # --- the runner's side (a token scoped to the job) ----------------------------------------

    def started(self, principal: Principal, job_id: str, environment: dict[str, str]) -> Job:
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            job.environment_json = json.dumps(environment)
            session.commit()
            return self.view(session, job)

    def put_rendezvous(self, principal: Principal, job_id: str, body: Rendezvous) -> Rendezvous:
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            if body.attempt != job.attempts:
                raise Conflict(
                    f"job {job_id} runs attempt {job.attempts}, not {body.attempt}",
                    fix="only the current attempt's rank 0 records its rendezvous",
                )
            job.rendezvous = body.model_dump_json()
            session.commit()
        return body

    def rendezvous(self, principal: Principal, job_id: str) -> Rendezvous:
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            found = Rendezvous.model_validate_json(job.rendezvous) if job.rendezvous else None
            if found is None or found.attempt != job.attempts or job.state != JobState.running:
                raise NotFound(
                    f"job {job_id} has no rendezvous for its current attempt yet",
                    fix="rank 0 records it when it starts: ask again in a moment",
                )
            return found

    def log_metrics(
        self,
        principal: Principal,
        job_id: str,
        points: builtins.list[MetricPoint],
        *,
        batch: str | None = None,
    ) -> None:
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            if batch is not None:
                last = session.scalars(
                    select(JobMetricRow.batch)
                    .where(JobMetricRow.job_id == job.id)
                    .order_by(JobMetricRow.id.desc())
                    .limit(1)
                ).first()
                if last == batch:  # sent again after a lost answer: stored already
                    return
            now = self.ctx.clock()
            session.add_all(
                JobMetricRow(
                    job_id=job.id,
                    attempt=job.attempts,
                    step=p.step,
                    name=p.name,
                    value=p.value,
                    time=now,
                    batch=batch,
                )
                for p in points
            )
            session.commit()

    def _dataset(self, session: Session, job: JobRow) -> DatasetVersionRow:
        row = (
            session.get(DatasetVersionRow, job.dataset_version_id)
            if job.dataset_version_id
            else None
        )
        if row is None:
            raise NotFound(f"job {job.id} reads no dataset", fix="submit it with --dataset")
        return row

    def dataset(self, principal: Principal, job_id: str) -> DatasetVersionDetail:
        """The job's dataset version: schema, profile, target."""
        with self.ctx.sessions() as session:
            row = self._dataset(session, self.job_row(session, principal, job_id))
            return self.datasets.detail_view(session, self.datasets.dataset_of(session, row), row)

    def open_data(self, principal: Principal, job_id: str) -> Iterator[bytes]:
        """The job's dataset version as Parquet."""
        with self.ctx.sessions() as session:
            digest = self._dataset(session, self.job_row(session, principal, job_id)).data_digest
        return self.ctx.blobs.open(digest)

    def open_split(self, principal: Principal, job_id: str) -> Iterator[bytes]:
        """The stored split of the job's dataset version for its split spec (``.npy``)."""
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            spec = TypeAdapter(JobSpec).validate_json(job.spec_json)
            row = self._dataset(session, job)
        if isinstance(spec, EvaluateSpec):
            raise NotFound(
                f"job {job_id} evaluates a model; it has no split",
                fix="the model's evaluation reads the split its training job recorded",
            )
        return self.ctx.blobs.open(self.datasets.ensure_split(row, spec.split).digest)

    def open_script(self, principal: Principal, job_id: str) -> Iterator[bytes]:
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            if job.kind != "script":
                raise NotFound(
                    f"job {job_id} is a {job.kind} job; it has no script",
                    fix="a script job's code is read from GET /jobs/ID/script of that job",
                )
            digest = ScriptSpec.model_validate_json(job.spec_json).script_digest
        return self.ctx.blobs.open(digest)

    async def put_checkpoint(
        self, principal: Principal, job_id: str, chunks: AsyncIterator[bytes]
    ) -> Blob:
        """Keep the job's latest resumable state; the one it replaces is erased."""
        with self.ctx.sessions() as session:
            self._running(session, principal, job_id)
        writer = await self.content.stage_stream(chunks)
        with writer:
            return await anyio.to_thread.run_sync(self._keep_checkpoint, principal, job_id, writer)

    def _keep_checkpoint(self, principal: Principal, job_id: str, writer: BlobWriter) -> Blob:
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            released = self.content.release(session, owner(job.id), roles=["checkpoint"])
            info = self.content.claim(
                session,
                [writer],
                workspace_id=principal.workspace_id,
                owner=owner(job.id),
                roles=["checkpoint"],
            )[0]
            job.checkpoint_digest = info.digest
            session.commit()
        self.content.erase(d for d in released if d != info.digest)
        return Blob(digest=info.digest, size=info.size, created_at=self.ctx.clock())

    def open_checkpoint(self, principal: Principal, job_id: str) -> Iterator[bytes]:
        """The latest checkpoint of the job, from any earlier attempt."""
        with self.ctx.sessions() as session:
            job = self.job_row(session, principal, job_id)
            digest = job.checkpoint_digest
        if digest is None:
            raise NotFound(
                f"job {job_id} has no checkpoint yet",
                fix="a job saves one as it trains (Tracker.checkpoint); start afresh until then",
            )
        return self.ctx.blobs.open(digest)

    async def upload_artifact(
        self, principal: Principal, job_id: str, chunks: AsyncIterator[bytes]
    ) -> Blob:
        """Store a file the job produced (a packed model, a plot) as an upload of the workspace."""
        with self.ctx.sessions() as session:
            self._running(session, principal, job_id)
        return await self.uploads.upload(principal, chunks)

    def register_model(
        self, principal: Principal, job_id: str, body: ModelRegister
    ) -> ModelVersion:
        """Register the job's model with its lineage: dataset version, job, environment."""
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            spec = json.loads(job.spec_json)
            name = body.name or spec.get("model") or self._default_model_name(session, job)
            environment = json.loads(job.environment_json) if job.environment_json else None
        return self.models.register_version(
            principal, name, body, (job, job.dataset_version_id, environment)
        )

    def _default_model_name(self, session: Session, job: JobRow) -> str:
        ref = self.datasets.ref(session, job.dataset_version_id)
        return ref.split("@")[0] if ref else f"job-{job.id}"

    def model(self, principal: Principal, job_id: str) -> ModelVersion:
        """The model version an evaluate job evaluates."""
        with self.ctx.sessions() as session:
            model, row = self._evaluated(
                session, principal, self.job_row(session, principal, job_id)
            )
            return self.models.version_view(session, model, row)

    def open_model_artifact(self, principal: Principal, job_id: str) -> Iterator[bytes]:
        """The packed model an evaluate job evaluates."""
        with self.ctx.sessions() as session:
            _, row = self._evaluated(session, principal, self.job_row(session, principal, job_id))
            digest = row.artifact_digest or ""
        return self.ctx.blobs.open(digest)

    def record_evaluation(
        self, principal: Principal, job_id: str, body: EvaluationRecord
    ) -> Evaluation:
        """Record an evaluation the job computed: of the model it registered (train) or of the
        model it was asked to evaluate (evaluate); no other."""
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            _, row = self.models.resolve(session, principal, body.model_version)
            allowed = row.job_id == job.id or (
                job.kind == "evaluate" and self._evaluated(session, principal, job)[1].id == row.id
            )
            if not allowed:
                raise PermissionDenied(
                    f"job {job.id} may record evaluations of its own model only, not "
                    f"{body.model_version}",
                    fix="record evaluations of other models with an evaluate job: "
                    "lepton evaluate NAME@N --dataset DATASET",
                )
            split = body.split if row.job_id == job.id else None
        return self.models.record_evaluation(principal, row, body.result, job=job, split=split)

    def finish(self, principal: Principal, job_id: str, body: JobFinish) -> Job:
        """The runner reports the end of the job; its token stops working."""
        with self.ctx.sessions() as session:
            job = self._running(session, principal, job_id)
            job.state = body.state
            job.finished_at = self.ctx.clock()
            job.pid = None
            job.result_json = json.dumps(body.result) if body.result is not None else None
            # The runner's error quotes the script's exception, which may quote a secret.
            masker = self.secrets.masker("job", job.id, job.secret_mask)
            job.error_message = body.error.message if body.error else None
            job.error_fix = body.error.fix if body.error else None
            if masker:
                job.error_message = job.error_message and masker.text(job.error_message)
                job.error_fix = job.error_fix and masker.text(job.error_fix)
            self.tokens.revoke_in(session, job.token_id)
            session.commit()
            view = self.view(session, job)
        self.ctx.wake("jobs")  # the executor collects the runner (and its last output) now
        return view

    # --- evaluate jobs ------------------------------------------------------------------------

    def _check_evaluate(
        self, session: Session, principal: Principal, spec: EvaluateSpec, dataset: DatasetVersionRow
    ) -> tuple[EvaluateSpec, LeptonError | None]:
        """The spec with its model reference pinned to ``name@N`` (an alias is resolved at
        submit, so moving it later does not change what is evaluated), and the reason the job
        cannot work, if there is one. An unknown model is refused outright (404)."""
        from lepton.data.columns import unknown_column

        model, row = self.models.resolve(session, principal, spec.model)
        pinned = spec.model_copy(update={"model": f"{model.name}@{row.version}"})
        names = [str(c["name"]) for c in json.loads(dataset.schema_json)]
        target = spec.target or json.loads(row.signature_json).get("outputs", {}).get("target")
        target = target or dataset.target
        try:
            if row.task not in ("classification", "regression"):
                raise InvalidRequest(
                    f"{pinned.model} is a {row.task} model; evaluate jobs cover classification "
                    "and regression",
                    fix=f"see its held-out metrics: lepton model show {pinned.model}",
                )
            if not target:
                raise InvalidRequest(
                    "neither the model nor the dataset names a target column",
                    fix=f"pass --target with one of: {', '.join(names[:20])}",
                )
            for column, where in [(target, "--target"), *((s, "--slice") for s in spec.slices)]:
                if column not in names:
                    raise unknown_column(column, names, where=where, use=f"pass {where} {{}}")
        except LeptonError as exc:
            return pinned, exc
        return pinned, None

    def _evaluated(
        self, session: Session, principal: Principal, job: JobRow
    ) -> tuple[ModelRow, ModelVersionRow]:
        if job.kind != "evaluate":
            raise NotFound(
                f"job {job.id} is a {job.kind} job; it evaluates no model",
                fix="only an evaluate job (lepton evaluate) reads the model it evaluates",
            )
        return self.models.resolve(session, principal, str(json.loads(job.spec_json)["model"]))

    # --- other services' rules ----------------------------------------------------------------

    def _dataset_users(self, session: Session, row: DatasetVersionRow) -> builtins.list[str]:
        jobs = session.scalars(select(JobRow.id).where(JobRow.dataset_version_id == row.id))
        return [f"job {job_id}" for job_id in jobs]

    def _dataset_unlink(self, session: Session, row: DatasetVersionRow) -> None:
        for job in session.scalars(select(JobRow).where(JobRow.dataset_version_id == row.id)):
            job.dataset_version_id = None

    # --- views --------------------------------------------------------------------------------

    def view(self, session: Session, job: JobRow) -> Job:
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
            dataset_version=self.datasets.ref(session, job.dataset_version_id),
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=error,
            result=json.loads(job.result_json) if job.result_json else None,
            environment=json.loads(job.environment_json) if job.environment_json else None,
            cancel_requested=job.cancel_requested,
        )


def _check_train(spec: TrainSpec, row: DatasetVersionRow) -> LeptonError | None:
    from lepton.algorithms.registry import check_fits, get_algorithm
    from lepton.jobs.prepare import infer_problem

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
            algorithm = get_algorithm(spec.algorithm)
            algorithm.resolve(spec.params)
            if spec.workers > 1 and not algorithm.data_parallel:
                raise InvalidRequest(
                    f"algorithm {spec.algorithm} trains in one process; --workers "
                    f"{spec.workers} applies to the PyTorch nets only (mlp, cnn, lstm, gru)",
                    fix="drop --workers, or pick one of those algorithms",
                )
        elif spec.workers > 1:
            raise InvalidRequest(
                "AutoML (--algorithm auto) trains its candidates one process each; --workers "
                "applies to one PyTorch net",
                fix="drop --workers, or name the algorithm (mlp, cnn, lstm, gru)",
            )
        elif spec.params:
            raise InvalidRequest(
                "--param needs --algorithm: AutoML chooses its own parameters",
                fix="name the algorithm (lepton algorithms list), or drop --param",
            )
    except LeptonError as exc:
        return exc
    return None
