"""The job scheduler: a reconciler that converges the jobs table with the executor.

Each pass: running jobs whose process ended without reporting are retried (back to ``queued``,
their last checkpoint kept) or failed once their retries are spent; cancel requests reach their
process; queued jobs start, oldest first, while slots are free. All it needs is in the store,
so after a restart of the control plane the first pass finds every running job again: alive
runners are re-attached, lost ones retried. Nothing is left ``running`` forever.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.context import Clock
from lepton.control.jobs import job_log_path
from lepton.control.plane import Control
from lepton.control.reconciler import Reconciler
from lepton.errors import LeptonError
from lepton.executors.base import Executor, Launch
from lepton.schemas import JobState
from lepton.store.models import JobRow

__all__ = ["Scheduler"]

log = logging.getLogger("lepton.jobs")

SWEEP_EVERY_S = 60.0  # how often processes of jobs that are not running are looked for


class Scheduler(Reconciler):
    name = "jobs"

    def __init__(
        self,
        control: Control,
        executor: Executor,
        *,
        interval_s: float = 0.5,
        now: Clock | None = None,
    ) -> None:
        super().__init__(control.ctx, interval_s=interval_s, log=log, now=now)
        self.tokens = control.tokens
        self.secrets = control.secrets
        self.executor = executor
        self._signalled: set[tuple[str, int]] = set()  # cancels already delivered
        self._next_sweep = 0.0  # the first pass sweeps

    def reconcile_once(self) -> None:
        self.executor.reap()
        with self.ctx.sessions() as session:
            running = list(session.scalars(select(JobRow).where(JobRow.state == JobState.running)))
            if time.monotonic() >= self._next_sweep:
                # Before this pass starts anything: every process started since is recorded.
                self._next_sweep = time.monotonic() + SWEEP_EVERY_S
                for line in self.executor.sweep({j.id: j.attempts for j in running}):
                    log.warning("stopped %s: its job is not running that attempt", line)
            busy_cpu, busy_gpu = 0.0, 0
            for job in running:
                if self._check(session, job):
                    busy_cpu += self.executor.cpu_cost(_spec_cpus(job) * _spec_workers(job))
                    busy_gpu += _spec_gpus(job) * _spec_workers(job)
            queued = session.scalars(
                select(JobRow).where(JobRow.state == JobState.queued).order_by(JobRow.created_at)
            )
            for job in queued:
                workers = _spec_workers(job)
                each = f" ({workers} workers of {{}} each)" if workers > 1 else ""
                gpus = _spec_gpus(job) * workers
                if gpus > self.executor.gpu_slots:  # can never run here: say so at once
                    self._finish(
                        session,
                        job,
                        JobState.failed,
                        f"the job asks for {gpus} GPUs{each.format(_spec_gpus(job))}; this "
                        f"machine has {self.executor.gpu_slots}",
                        "submit it again with fewer --gpus or --workers, or on a machine with GPUs",
                    )
                    continue
                cost = self.executor.cpu_cost(_spec_cpus(job) * workers)
                # Bigger than the whole executor: say so at once. With no CPUs at all (every
                # node of a cluster gone) it waits for them to come back.
                if 0 < self.executor.cpu_slots < cost:
                    self._finish(
                        session,
                        job,
                        JobState.failed,
                        f"the job asks for {_spec_cpus(job) * workers:g} CPUs"
                        f"{each.format(f'{_spec_cpus(job):g}')}; the executor has "
                        f"{self.executor.cpu_slots:g}",
                        "submit it again with fewer --cpus or --workers, or add nodes to the "
                        "cluster",
                    )
                    continue
                if busy_cpu + cost > self.executor.cpu_slots:
                    break
                if gpus > self.executor.gpu_slots - busy_gpu:
                    continue
                if self._start(session, job):
                    busy_cpu += cost
                    busy_gpu += gpus

    def _check(self, session: Session, job: JobRow) -> bool:
        """Whether the job's process still runs; handles the ones that ended."""
        if job.pid is None:
            return False
        if job.cancel_requested and (job.id, job.pid) not in self._signalled:
            self._signalled.add((job.id, job.pid))
            self.executor.cancel(job.id, job.pid)
        process = self.executor.status(job.id, job.pid)
        if process.alive:
            return True
        session.refresh(job)
        if job.state != JobState.running:  # the runner reported its end just now
            return False
        code = "unknown" if process.exit_code is None else str(process.exit_code)
        if job.cancel_requested:
            self._finish(session, job, JobState.cancelled, None, "")
        elif job.attempts <= job.max_retries:
            job.state = JobState.queued
            job.pid = None
            job.error_message = (
                f"attempt {job.attempts} ended without a result (exit code {code}); retrying"
            )
            self._log(job, f"--- attempt {job.attempts} ended (exit code {code}); retrying ---")
            session.commit()
        else:
            self._finish(
                session,
                job,
                JobState.failed,
                f"the job's process ended without a result (exit code {code}) on attempt "
                f"{job.attempts} of {job.max_retries + 1}",
                f"read its log: lepton job logs {job.id}",
            )
        return False

    def _start(self, session: Session, job: JobRow) -> bool:
        """Start the job's next attempt; False when it cannot start (it is failed, saying why)."""
        try:
            secrets = self.secrets.resolve(session, job.workspace_id, _spec_secrets(job))
        except LeptonError as exc:  # deleted since submit, or it does not decrypt
            self._finish(session, job, JobState.failed, exc.message, exc.fix)
            return False
        job.secret_mask = self.secrets.add_mask("job", job.id, job.secret_mask, secrets.values())
        self._revoke(session, job)
        token, bearer = self.tokens.mint(
            session,
            workspace_id=job.workspace_id,
            name=f"job-{job.id}",
            role=None,
            scope=f"job:{job.id}",
        )
        job.token_id = token.id
        job.attempts += 1
        job.state = JobState.running
        job.started_at = self.now()
        job.error_message = None if job.attempts == 1 else job.error_message
        session.flush()
        self._log(job, f"--- attempt {job.attempts} ---")
        launch = Launch(
            job_id=job.id,
            attempt=job.attempts,
            env={
                **_spec_env(job),  # first: the platform's own variables below always win
                **secrets,
                "LEPTON_URL": self.ctx.settings.worker_url,
                "LEPTON_TOKEN": bearer,
                "LEPTON_JOB_ID": job.id,
                "LEPTON_JOB_ATTEMPT": str(job.attempts),
                "LEPTON_CREDENTIALS": str(self.ctx.settings.home / "no-credentials.json"),
            },
            log_path=job_log_path(self.ctx.settings.home, job.id),
            gpus=_spec_gpus(job),
            cpus=_spec_cpus(job),
            memory_mb=_spec_memory(job),
            workers=_spec_workers(job),
        )
        job.pid = self.executor.submit(launch)
        session.commit()
        return True

    def _finish(
        self, session: Session, job: JobRow, state: JobState, message: str | None, fix: str
    ) -> None:
        job.state = state
        job.finished_at = self.now()
        job.pid = None
        job.error_message, job.error_fix = message, fix or None
        self._log(job, f"--- {state.value}" + (f": {message}" if message else "") + " ---")
        self._revoke(session, job)
        session.commit()

    def _revoke(self, session: Session, job: JobRow) -> None:
        self.tokens.revoke_in(session, job.token_id)

    def _log(self, job: JobRow, line: str) -> None:
        path = job_log_path(self.ctx.settings.home, job.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")


def _spec_env(job: JobRow) -> dict[str, str]:
    """The variables the user declared for the job (the spec refuses ``LEPTON_*`` names)."""
    env = json.loads(job.spec_json).get("env") or {}
    return {str(k): str(v) for k, v in env.items() if not str(k).startswith("LEPTON_")}


def _spec_secrets(job: JobRow) -> list[str]:
    """The secrets the job names (``NAME`` or ``ENV=NAME``); their values are read at start."""
    return [str(ref) for ref in json.loads(job.spec_json).get("secrets") or []]


def _spec_gpus(job: JobRow) -> int:
    return int(json.loads(job.spec_json).get("gpus", 0))


def _spec_cpus(job: JobRow) -> float:
    return float(json.loads(job.spec_json).get("cpus") or 1)


def _spec_workers(job: JobRow) -> int:
    return int(json.loads(job.spec_json).get("workers") or 1)


def _spec_memory(job: JobRow) -> int | None:
    memory = json.loads(job.spec_json).get("memory_mb")
    return None if memory is None else int(memory)
