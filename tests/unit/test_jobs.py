"""Jobs in-process: the scheduler reconciling against a fake executor, the checks at submit, and
the runner's own code driven against the app with the job's scoped token.

No process is started: ``FakeExecutor`` keeps the protocol (submit, status, cancel, attach) and
lets each test say which runner is alive and how a dead one exited. The scheduler works on the
real app state, so what it writes is what ``client.jobs.get`` reads.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import lepton.jobs.runner as runner
from lepton import Client
from lepton.control.plane import Control
from lepton.control.scheduler import Scheduler
from lepton.errors import ConfigError, Conflict, InvalidRequest, NotFound, PermissionDenied
from lepton.executors.base import Launch, ProcessState
from lepton.jobs import tracking
from lepton.schemas import Job, JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import Platform, Started


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- a fake executor: the protocol, with the processes in the test's hands -------------------


@dataclass
class FakeProcess:
    launch: Launch
    handle: int
    alive: bool = True
    exit_code: int | None = None


class FakeExecutor:
    """Records launches and cancels; a process lives until the test ends it.

    ``survivors`` are handles it did not start itself (runners from before a restart of the
    control plane) that ``attach`` still finds; any other unknown handle is gone.
    """

    def __init__(self, cpu_slots: int = 1, gpu_slots: int = 0) -> None:
        self.cpu_slots = cpu_slots
        self.gpu_slots = gpu_slots
        self.processes: dict[int, FakeProcess] = {}
        self.cancels: list[tuple[str, int]] = []
        self.survivors: set[tuple[str, int]] = set()
        self.reaps = 0
        self.swept: list[dict[str, int]] = []
        self._next = 4000
        self.counts_cpus = False
        """Like the Ray executor: a job takes the CPUs it asks for, not one slot."""

    def cpu_cost(self, cpus: float) -> float:
        return cpus if self.counts_cpus else 1.0

    @property
    def launches(self) -> list[Launch]:
        return [p.launch for p in self.processes.values()]

    def submit(self, launch: Launch) -> int:
        self._next += 1
        self.processes[self._next] = FakeProcess(launch, self._next)
        return self._next

    def status(self, job_id: str, handle: int) -> ProcessState:
        process = self.processes.get(handle)
        if process is None:
            return ProcessState(alive=self.attach(job_id, handle))
        return ProcessState(alive=process.alive, exit_code=process.exit_code)

    def cancel(self, job_id: str, handle: int) -> None:
        self.cancels.append((job_id, handle))

    def attach(self, job_id: str, handle: int) -> bool:
        return (job_id, handle) in self.survivors

    def reap(self) -> None:
        self.reaps += 1

    def sweep(self, running: Mapping[str, int]) -> list[str]:
        self.swept.append(dict(running))
        return []

    def latest(self, job_id: str) -> FakeProcess:
        return [p for p in self.processes.values() if p.launch.job_id == job_id][-1]

    def end(self, job_id: str, exit_code: int) -> None:
        """The job's latest process exits with ``exit_code``."""
        process = self.latest(job_id)
        process.alive, process.exit_code = False, exit_code


# --- fixtures -------------------------------------------------------------------------------

ROWS = 200


def toy_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Two informative numbers, a colour, a constant column, and a label decided by x1 + x2."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "site": ["north"] * rows,
            "label": np.where(x1 + x2 > 0, "yes", "no"),
        }
    )


@pytest.fixture
def state(platform: Platform, started: Started) -> Control:
    assert started.state is not None
    return started.state


@pytest.fixture
def client(platform: Platform) -> Client:
    return platform.client(platform.admin)


@pytest.fixture
def toy(client: Client) -> str:
    """Dataset ``toy`` with target ``label``; returns its name."""
    client.datasets.push(toy_frame(), name="toy", target="label")
    return "toy"


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def scheduler(state: Control, executor: FakeExecutor) -> Scheduler:
    return Scheduler(state, executor)


def train(client: Client, dataset: str, **kwargs: Any) -> Job:
    kwargs.setdefault("algorithm", "logistic_regression")
    return client.jobs.train(dataset, **kwargs)


# --- the scheduler: queued → running, slots, retries, cancels, GPUs, restarts ---------------


def test_a_queued_job_starts_with_the_url_and_a_token_scoped_to_it(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    state: Control,
) -> None:
    job = train(client, toy)
    assert job.state == JobState.queued and job.attempts == 0

    scheduler.reconcile_once()

    [launch] = executor.launches
    assert launch.job_id == job.id and launch.attempt == 1
    assert launch.env["LEPTON_URL"] == state.ctx.settings.local_url
    assert launch.env["LEPTON_JOB_ID"] == job.id
    assert launch.log_path.parent.name == job.id
    running = client.jobs.get(job.id)
    assert running.state == JobState.running and running.attempts == 1
    assert running.started_at is not None
    status = platform.api.get("/api/v1/status", headers=bearer(launch.env["LEPTON_TOKEN"]))
    assert status.status_code == 200, status.text
    assert status.json()["token"]["scope"] == f"job:{job.id}"
    assert status.json()["token"]["role"] is None


def test_a_second_job_waits_for_the_only_slot(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    first, second = train(client, toy), train(client, toy)

    scheduler.reconcile_once()

    assert [launch.job_id for launch in executor.launches] == [first.id]
    assert client.jobs.get(second.id).state == JobState.queued

    token = executor.latest(first.id).launch.env["LEPTON_TOKEN"]
    r = platform.api.post(
        f"/api/v1/jobs/{first.id}/finish", json={"state": "succeeded"}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    executor.end(first.id, 0)
    scheduler.reconcile_once()

    assert [launch.job_id for launch in executor.launches] == [first.id, second.id]
    assert client.jobs.get(first.id).state == JobState.succeeded
    assert client.jobs.get(second.id).state == JobState.running


def test_two_slots_run_two_jobs_at_once(
    client: Client, toy: str, state: Control, executor: FakeExecutor
) -> None:
    executor.cpu_slots = 2
    jobs = [train(client, toy) for _ in range(3)]

    Scheduler(state, executor).reconcile_once()

    assert [launch.job_id for launch in executor.launches] == [jobs[0].id, jobs[1].id]
    assert client.jobs.get(jobs[2].id).state == JobState.queued


def test_jobs_take_the_cpus_they_ask_for_where_the_executor_counts_them(
    client: Client, toy: str, state: Control, executor: FakeExecutor
) -> None:
    executor.counts_cpus, executor.cpu_slots = True, 3
    never = train(client, toy, cpus=8)
    big = train(client, toy, cpus=2)
    small = train(client, toy, cpus=1)
    waits = train(client, toy, cpus=1)

    Scheduler(state, executor).reconcile_once()

    assert [launch.job_id for launch in executor.launches] == [big.id, small.id]
    assert [launch.cpus for launch in executor.launches] == [2, 1]
    assert client.jobs.get(waits.id).state == JobState.queued
    failed = client.jobs.get(never.id)
    assert failed.state == JobState.failed
    assert failed.error is not None and "asks for 8 CPUs" in failed.error.message
    assert "--cpus" in failed.error.fix


def test_every_pass_collects_ended_processes_even_with_no_job_running(
    scheduler: Scheduler, executor: FakeExecutor
) -> None:
    # A runner that reported its end is never asked about again: only this collects it.
    scheduler.reconcile_once()
    scheduler.reconcile_once()

    assert executor.reaps == 2


def test_a_process_that_dies_without_reporting_is_queued_again(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()
    first_token = executor.latest(job.id).launch.env["LEPTON_TOKEN"]

    executor.end(job.id, 137)
    executor.cpu_slots = 0  # hold it in the queue so the test sees it there
    scheduler.reconcile_once()

    queued = client.jobs.get(job.id)
    assert queued.state == JobState.queued
    assert queued.attempts == 1
    assert queued.error is not None
    assert "exit code 137" in queued.error.message and "retrying" in queued.error.message
    log = (executor.latest(job.id).launch.log_path).read_text()
    assert "attempt 1 ended (exit code 137); retrying" in log

    executor.cpu_slots = 1
    scheduler.reconcile_once()

    again = client.jobs.get(job.id)
    assert again.state == JobState.running and again.attempts == 2
    second = executor.latest(job.id).launch
    assert second.attempt == 2
    assert second.env["LEPTON_TOKEN"] != first_token
    old = platform.api.get("/api/v1/status", headers=bearer(first_token))
    assert old.status_code == 401, "the token of a dead attempt must stop working"


def test_a_job_fails_naming_the_exit_code_once_its_retries_are_spent(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    job = train(client, toy, max_retries=2)
    scheduler.reconcile_once()
    for _ in range(2):
        executor.end(job.id, 1)
        scheduler.reconcile_once()
    assert client.jobs.get(job.id).attempts == 3
    last_token = executor.latest(job.id).launch.env["LEPTON_TOKEN"]

    executor.end(job.id, -9)
    scheduler.reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.attempts == 3
    assert failed.finished_at is not None
    assert failed.error is not None
    assert "exit code -9" in failed.error.message
    assert "attempt 3 of 3" in failed.error.message
    assert f"lepton job logs {job.id}" in failed.error.fix
    assert len(executor.launches) == 3
    r = platform.api.get("/api/v1/status", headers=bearer(last_token))
    assert r.status_code == 401


def test_no_retries_means_one_death_fails_the_job(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor
) -> None:
    job = train(client, toy, max_retries=0)
    scheduler.reconcile_once()
    executor.end(job.id, 2)
    scheduler.reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.error is not None and "exit code 2" in failed.error.message
    assert len(executor.launches) == 1


def test_cancelling_a_queued_job_cancels_it_at_once(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor
) -> None:
    job = train(client, toy)

    cancelled = client.jobs.cancel(job.id)

    assert cancelled.state == JobState.cancelled
    assert cancelled.cancel_requested and cancelled.finished_at is not None
    scheduler.reconcile_once()
    assert executor.launches == []
    assert client.jobs.get(job.id).state == JobState.cancelled


def test_cancelling_a_running_job_signals_it_then_records_it_cancelled(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()
    process = executor.latest(job.id)
    token = process.launch.env["LEPTON_TOKEN"]

    asked = client.jobs.cancel(job.id)
    assert asked.state == JobState.running and asked.cancel_requested
    scheduler.reconcile_once()

    assert executor.cancels == [(job.id, process.handle)]
    assert client.jobs.get(job.id).state == JobState.running  # until its process ends

    executor.end(job.id, -15)
    scheduler.reconcile_once()

    done = client.jobs.get(job.id)
    assert done.state == JobState.cancelled
    assert done.error is None
    assert done.attempts == 1, "a cancelled job is not retried"
    assert platform.api.get("/api/v1/status", headers=bearer(token)).status_code == 401


def test_cancelling_an_ended_job_is_a_conflict(
    client: Client, toy: str, scheduler: Scheduler
) -> None:
    job = train(client, toy)
    client.jobs.cancel(job.id)

    with pytest.raises(Conflict, match=r"already ended \(cancelled\)"):
        client.jobs.cancel(job.id)


def test_a_job_asking_for_more_gpus_than_the_machine_has_fails_saying_so(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor
) -> None:
    executor.gpu_slots = 1
    job = train(client, toy, gpus=2)

    scheduler.reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.error is not None
    assert failed.error.message == "the job asks for 2 GPUs; this machine has 1"
    assert "fewer --gpus" in failed.error.fix
    assert executor.launches == []


def test_a_gpu_job_waits_while_the_gpus_are_busy(client: Client, toy: str, state: Control) -> None:
    executor = FakeExecutor(cpu_slots=2, gpu_slots=1)
    first, second = train(client, toy, gpus=1), train(client, toy, gpus=1)

    Scheduler(state, executor).reconcile_once()

    assert [launch.job_id for launch in executor.launches] == [first.id]
    assert executor.launches[0].gpus == 1
    assert client.jobs.get(second.id).state == JobState.queued


def test_after_a_restart_a_lost_runner_is_retried(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, state: Control
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()

    fresh = FakeExecutor()  # a new control plane: it started none of the running processes
    Scheduler(state, fresh).reconcile_once()

    retried = client.jobs.get(job.id)
    assert retried.state == JobState.running
    assert retried.attempts == 2
    assert [launch.attempt for launch in fresh.launches] == [2]
    assert retried.error is not None and "exit code unknown" in retried.error.message


def test_after_a_restart_a_live_runner_is_reattached_and_can_still_report(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    state: Control,
    platform: Platform,
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()
    old = executor.latest(job.id)

    fresh = FakeExecutor()
    fresh.survivors.add((job.id, old.handle))
    restarted = Scheduler(state, fresh)
    restarted.reconcile_once()

    kept = client.jobs.get(job.id)
    assert kept.state == JobState.running and kept.attempts == 1
    assert fresh.launches == []

    r = platform.api.post(
        f"/api/v1/jobs/{job.id}/finish",
        json={"state": "succeeded", "result": {"model": None}},
        headers=bearer(old.launch.env["LEPTON_TOKEN"]),
    )
    assert r.status_code == 200, r.text
    fresh.survivors.clear()  # the runner exits after reporting
    restarted.reconcile_once()
    assert client.jobs.get(job.id).state == JobState.succeeded


class FlakyExecutor(FakeExecutor):
    """Its first launch fails (a fork refused, a full disk); the later ones work."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0
        self.launched = threading.Event()

    def submit(self, launch: Launch) -> int:
        self.tries += 1
        if self.tries == 1:
            raise OSError(12, "Cannot allocate memory")
        handle = super().submit(launch)
        self.launched.set()
        return handle


def test_a_failing_pass_leaves_the_job_queued_and_the_scheduler_running(
    client: Client, toy: str, state: Control
) -> None:
    executor = FlakyExecutor()
    scheduler = Scheduler(state, executor, interval_s=0)
    job = train(client, toy)

    async def drive() -> BaseException | None:
        loop = asyncio.create_task(scheduler.run())
        launched = asyncio.create_task(asyncio.to_thread(executor.launched.wait, 30))
        await asyncio.wait({loop, launched}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        died = loop.exception() if loop.done() else None
        loop.cancel()
        executor.launched.set()
        await asyncio.gather(loop, launched, return_exceptions=True)
        return died

    died = asyncio.run(drive())

    assert died is None, f"one failed pass ended the scheduler loop: {died!r}"

    assert executor.tries == 2
    assert [launch.attempt for launch in executor.launches] == [1]
    started = client.jobs.get(job.id)
    assert started.state == JobState.running and started.attempts == 1


# --- checks at submit: a job that cannot work is failed at once, with the reason -------------


def failed_with(job: Job) -> tuple[str, str]:
    assert job.state == JobState.failed, job
    assert job.error is not None
    assert job.attempts == 0 and job.finished_at is not None
    return job.error.message, job.error.fix


def test_an_unknown_target_fails_the_job_naming_the_closest_column(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor
) -> None:
    job = train(client, toy, target="lable")

    message, fix = failed_with(job)
    assert "'lable'" in message and "the closest is 'label'" in message
    assert "--target 'label'" in fix
    # lepton job show reads the same reason back
    shown = client.jobs.get(job.id)
    assert shown.error is not None and shown.error.message == message
    scheduler.reconcile_once()
    assert executor.launches == [], "a failed job never starts"


def test_a_target_with_one_class_fails_the_job(client: Client, toy: str) -> None:
    message, _ = failed_with(train(client, toy, target="site"))
    assert "'site' has only one class" in message


def test_too_few_rows_fail_the_job(client: Client) -> None:
    client.datasets.push(toy_frame(rows=6), name="tiny", target="label")

    message, fix = failed_with(train(client, "tiny"))

    assert "6 rows" in message and "at least 10" in message
    assert fix == "push more rows"


def test_an_unknown_algorithm_fails_the_job_naming_the_closest(client: Client, toy: str) -> None:
    message, fix = failed_with(train(client, toy, algorithm="logistic_regresion"))

    assert "no algorithm named 'logistic_regresion'" in message
    assert "did you mean logistic_regression?" in fix


def test_an_algorithm_that_does_not_fit_the_data_fails_the_job(client: Client, toy: str) -> None:
    message, fix = failed_with(train(client, toy, algorithm="linear_regression"))

    assert "linear_regression does not support tabular classification" in message
    assert "logistic_regression" in message
    assert "--algorithm" in fix


def test_an_unknown_parameter_fails_the_job_listing_the_known_ones(
    client: Client, toy: str
) -> None:
    message, _ = failed_with(train(client, toy, params={"Cee": 2}))

    assert "no parameter 'Cee'" in message and "C, class_weight, max_iter" in message


def test_an_out_of_range_parameter_fails_the_job_saying_the_range(client: Client, toy: str) -> None:
    message, fix = failed_with(train(client, toy, params={"C": 1e9}))

    assert "C=1000000000.0 is outside 0.001..1000.0" in message
    assert "--param C=1.0" in fix


def test_a_parameter_without_an_algorithm_fails_the_job(client: Client, toy: str) -> None:
    message, fix = failed_with(train(client, toy, algorithm="auto", params={"C": 2}))

    assert "--param needs --algorithm" in message
    assert "lepton algorithms list" in fix


def test_a_zero_time_budget_is_refused_over_the_wire(platform: Platform, toy: str) -> None:
    spec = {"kind": "train", "dataset": toy, "algorithm": "auto", "time_budget_s": 0}
    r = platform.api.post("/api/v1/jobs", json={"spec": spec}, headers=bearer(platform.admin))

    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert "time_budget_s" in r.json()["error"]["message"]


def test_a_zero_time_budget_is_an_invalid_request_from_the_sdk(client: Client, toy: str) -> None:
    # The SDK validates the spec before sending it; a caller catches one exception tree.
    with pytest.raises(InvalidRequest, match="time_budget_s"):
        train(client, toy, time_budget_s=0)


def test_an_unknown_dataset_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound, match="nope"):
        train(client, "nope")
    assert client.jobs.list() == []


def test_a_viewer_cannot_submit_a_job(platform: Platform, toy: str) -> None:
    viewer = platform.client(platform.token(platform.admin, role="viewer"))

    with pytest.raises(PermissionDenied):
        train(viewer, toy)


# --- the runner, in-process against the app ---------------------------------------------------


@pytest.fixture
def runner_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What ``runner.main`` changes in its process, put back after the test: the SIGTERM
    handler, the current tracker, ``sys.argv`` and ``sys.path`` (a script job sets both)."""
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        tracking.set_current(None)


def job_client(api: TestClient, launch: Launch) -> Client:
    """The SDK as the runner builds it from its environment, sending in-process."""
    settings = Settings(home=Path("/nonexistent/lepton-tests"))
    return Client(
        url=str(api.base_url), token=launch.env["LEPTON_TOKEN"], http=api, settings=settings
    )


def run_runner(
    monkeypatch: pytest.MonkeyPatch, api: TestClient, executor: FakeExecutor, job_id: str
) -> int:
    """``python -m lepton.jobs.runner JOB_ID`` in this process, with the launch's token."""
    launch = executor.latest(job_id).launch
    monkeypatch.setattr(runner, "Client", lambda **options: job_client(api, launch))
    code = runner.main([job_id])
    executor.end(job_id, code)
    return code


@pytest.mark.usefixtures("runner_process")
def test_the_runner_trains_registers_and_reports_success(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()
    token = executor.latest(job.id).launch.env["LEPTON_TOKEN"]

    assert run_runner(monkeypatch, platform.api, executor, job.id) == 0
    scheduler.reconcile_once()

    done = client.jobs.get(job.id)
    assert done.state == JobState.succeeded, done.error
    assert done.error is None and done.finished_at is not None
    assert done.environment is not None and "numpy" in done.environment
    assert done.result is not None
    assert done.result["model"] == "toy@1"
    assert done.result["algorithm"] == "logistic_regression"
    assert done.result["metrics"]["accuracy"] > 0.7
    version = client.models.get("toy@1")
    assert version.dataset_version == "toy@v1" and version.job == job.id
    assert version.algorithm == "logistic_regression" and version.task == "classification"
    assert version.metrics == done.result["metrics"]
    assert version.environment == done.environment
    assert {p.name for p in client.jobs.metrics(job.id)}, "the fit logged no metrics"
    assert platform.api.get("/api/v1/status", headers=bearer(token)).status_code == 401
    assert len(executor.launches) == 1

    frame = toy_frame(seed=1)  # fresh rows from the same rule
    model = client.models.load("toy@1")
    predicted = model.predict(frame.drop(columns="label"))
    assert predicted.shape == (len(frame),)
    assert (predicted == frame["label"].to_numpy()).mean() > 0.85


def two_running(
    client: Client, toy: str, executor: FakeExecutor, state: Control
) -> tuple[Job, Job, dict[str, str]]:
    """Two started train jobs, and the headers of the first one's token."""
    executor.cpu_slots = 2
    mine, other = train(client, toy), train(client, toy)
    Scheduler(state, executor).reconcile_once()
    return mine, other, bearer(executor.latest(mine.id).launch.env["LEPTON_TOKEN"])


def test_a_job_token_reaches_only_its_own_job(
    client: Client, toy: str, executor: FakeExecutor, state: Control, platform: Platform
) -> None:
    mine, other, headers = two_running(client, toy, executor, state)
    api = platform.api

    assert api.get(f"/api/v1/jobs/{mine.id}", headers=headers).status_code == 200
    assert api.get(f"/api/v1/jobs/{mine.id}/split", headers=headers).status_code == 200
    for method, path in [
        ("GET", f"/api/v1/jobs/{other.id}"),
        ("GET", f"/api/v1/jobs/{other.id}/data"),
        ("GET", f"/api/v1/jobs/{other.id}/metrics"),
        ("POST", f"/api/v1/jobs/{other.id}/started"),
        ("POST", f"/api/v1/jobs/{other.id}/finish"),
        ("GET", "/api/v1/jobs"),
        ("POST", f"/api/v1/jobs/{mine.id}/cancel"),
        ("GET", "/api/v1/datasets"),
        ("GET", f"/api/v1/datasets/{toy}/versions"),
        ("GET", "/api/v1/models"),
        ("GET", "/api/v1/tokens"),
    ]:
        r = api.request(method, path, headers=headers, json={"state": "succeeded"})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "permission_denied"
    points = {"points": [{"step": 1, "name": "loss", "value": 1.0}]}
    r = api.post(f"/api/v1/jobs/{other.id}/metrics", json=points, headers=headers)
    assert r.status_code == 403
    assert client.jobs.metrics(other.id) == []


def test_a_jobs_metrics_and_checkpoints_stay_out_of_the_audit_log_unless_refused(
    client: Client, toy: str, executor: FakeExecutor, state: Control, platform: Platform
) -> None:
    mine, other, headers = two_running(client, toy, executor, state)
    points = {"points": [{"step": 1, "name": "loss", "value": 1.0}]}
    api = platform.api

    sent = [
        api.post(f"/api/v1/jobs/{mine.id}/started", json={"environment": {}}, headers=headers),
        *(api.post(f"/api/v1/jobs/{mine.id}/metrics", json=points, headers=headers)
          for _ in range(5)),
        api.put(f"/api/v1/jobs/{mine.id}/checkpoint", content=b"state", headers=headers),
        api.post(f"/api/v1/jobs/{other.id}/metrics", json=points, headers=headers),
    ]  # fmt: skip
    events = api.get("/api/v1/audit", headers=bearer(platform.admin)).json()

    assert [r.status_code for r in sent] == [200, *[204] * 5, 200, 403]
    assert len(client.jobs.metrics(mine.id)) == 5  # every batch stored, none audited
    recorded = [(e["action"], e["outcome"]) for e in events if "jobs/" in e["resource"]]
    assert ("job.started", "success") in recorded
    assert ("job.log_metrics", "denied") in recorded  # the refused one, against another job
    assert ("job.log_metrics", "success") not in recorded
    assert ("job.checkpoint_put", "success") not in recorded


@pytest.mark.usefixtures("runner_process")
def test_the_runner_reports_a_failure_the_checks_missed(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise InvalidRequest("the split has no test rows", fix="push more rows")

    monkeypatch.setattr(runner, "evaluate", broken)
    assert run_runner(monkeypatch, platform.api, executor, job.id) == 1
    scheduler.reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.error is not None
    assert failed.error.message == "the split has no test rows"
    assert failed.error.fix == "push more rows"
    assert failed.attempts == 1, "a job that reported its failure is not retried"
    assert client.models.list() == []


SCRIPT = """\
import sys

import lepton
from sklearn.linear_model import LogisticRegression

frame = lepton.load_dataset()
X, y = frame[["x1", "x2"]], frame["label"]
for step in range(3):
    lepton.log(step=step, loss=1.0 / (step + 1))
model = LogisticRegression().fit(X, y)
lepton.log(step=3, accuracy=float(model.score(X, y)))
lepton.save_model(model, name="toy-script", metrics={"train_accuracy": model.score(X, y)})
print("args:", sys.argv[1:])
"""


@pytest.mark.usefixtures("runner_process")
def test_a_script_job_logs_metrics_and_registers_its_model(
    client: Client,
    toy: str,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    job = client.jobs.run_script(script, dataset=toy, args=["--fast"])
    assert job.kind == "script" and job.dataset_version == "toy@v1"
    scheduler.reconcile_once()

    assert run_runner(monkeypatch, platform.api, executor, job.id) == 0

    done = client.jobs.get(job.id)
    assert done.state == JobState.succeeded, done.error
    assert done.result == {"model": "toy-script@1"}
    points = [(p.step, p.name, p.value) for p in client.jobs.metrics(job.id)]
    assert points[:3] == [(0, "loss", 1.0), (1, "loss", 0.5), (2, "loss", pytest.approx(1 / 3))]
    assert points[3][:2] == (3, "accuracy") and points[3][2] > 0.9
    version = client.models.get("toy-script")
    assert version.flavour == "sklearn" and version.job == job.id
    assert version.algorithm == "custom:LogisticRegression"
    assert version.dataset_version == "toy@v1"
    assert version.metrics["train_accuracy"] > 0.9
    assert version.signature["outputs"] == {"classes": ["no", "yes"], "task": "classification"}
    assert version.task == "classification"
    assert version.signature["inputs"] == [{"name": "x1"}, {"name": "x2"}]


@pytest.mark.usefixtures("runner_process")
def test_a_crashing_script_fails_the_job_with_the_exception_message(
    client: Client,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = tmp_path / "crash.py"
    script.write_text("import lepton\nlepton.log(step=0, loss=1.0)\nraise ValueError('no cats')\n")
    job = client.jobs.run_script(script)
    scheduler.reconcile_once()

    assert run_runner(monkeypatch, platform.api, executor, job.id) == 1
    scheduler.reconcile_once()

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.error is not None
    assert failed.error.message == "ValueError: no cats"
    assert f"lepton job logs {job.id}" in failed.error.fix
    assert failed.attempts == 1
    assert [(p.step, p.name) for p in client.jobs.metrics(job.id)] == [(0, "loss")]
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.usefixtures("runner_process")
def test_a_script_that_exits_non_zero_fails_the_job(
    client: Client,
    scheduler: Scheduler,
    executor: FakeExecutor,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    script = tmp_path / "quit.py"
    script.write_text("import sys\nsys.exit(3)\n")
    job = client.jobs.run_script(script)
    scheduler.reconcile_once()

    assert run_runner(monkeypatch, platform.api, executor, job.id) == 1

    failed = client.jobs.get(job.id)
    assert failed.state == JobState.failed
    assert failed.error is not None and failed.error.message == "the script exited with status 3"


def test_outside_a_job_log_prints_and_save_model_says_how_to_run_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import lepton

    lepton.log(step=2, loss=0.25)
    assert capsys.readouterr().out == "step 2: loss=0.25\n"
    with pytest.raises(ConfigError, match="not one") as raised:
        lepton.save_model(object())
    assert "lepton run script.py" in raised.value.fix
    with pytest.raises(ConfigError, match="not one"):
        lepton.load_dataset()


# --- data-parallel jobs ---------------------------------------------------------------------


def test_workers_are_refused_for_an_algorithm_that_trains_in_one_process(
    client: Client, toy: str
) -> None:
    message, fix = failed_with(train(client, toy, workers=2))
    assert "logistic_regression trains in one process" in message
    assert "(mlp, cnn, lstm, gru)" in message and "drop --workers" in fix

    message, fix = failed_with(train(client, toy, algorithm="auto", workers=2))
    assert "AutoML" in message and "name the algorithm" in fix


def test_a_data_parallel_job_reserves_every_worker_and_launches_them_as_one_attempt(
    client: Client, toy: str, state: Control
) -> None:
    executor = FakeExecutor(cpu_slots=4)
    executor.counts_cpus = True
    scheduler = Scheduler(state, executor)
    too_big = train(client, toy, algorithm="mlp", workers=5, cpus=1)
    first = train(client, toy, algorithm="mlp", workers=3, cpus=1)
    second = train(client, toy, algorithm="mlp", workers=2, cpus=1)

    scheduler.reconcile_once()

    message, fix = failed_with(client.jobs.get(too_big.id))
    assert message == "the job asks for 5 CPUs (5 workers of 1 each); the executor has 4"
    assert "--workers" in fix
    [launch] = executor.launches  # 3 of 4 CPUs taken: the 2-worker job waits
    assert launch.job_id == first.id and launch.workers == 3 and launch.cpus == 1
    assert client.jobs.get(second.id).state == JobState.queued


def test_rank_0_records_the_rendezvous_of_its_attempt_for_the_others(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    job = train(client, toy, algorithm="mlp", workers=2)
    scheduler.reconcile_once()
    headers = bearer(executor.latest(job.id).launch.env["LEPTON_TOKEN"])
    url = f"/api/v1/jobs/{job.id}/rendezvous"

    before = platform.api.get(url, headers=headers)
    assert before.status_code == 404 and "ask again in a moment" in before.json()["error"]["fix"]
    stale = platform.api.put(url, json={"attempt": 7, "address": "10.0.0.5:4000"}, headers=headers)
    assert stale.status_code == 409
    assert "runs attempt 1, not 7" in stale.json()["error"]["message"]
    bad = platform.api.put(url, json={"attempt": 1, "address": "10.0.0.5"}, headers=headers)
    assert bad.status_code == 422

    put = platform.api.put(url, json={"attempt": 1, "address": "10.0.0.5:4000"}, headers=headers)
    assert put.status_code == 200, put.text
    assert platform.api.get(url, headers=headers).json() == {
        "attempt": 1,
        "address": "10.0.0.5:4000",
    }

    # The next attempt does not meet at the last one's address.
    executor.end(job.id, -9)
    scheduler.reconcile_once()
    assert client.jobs.get(job.id).attempts == 2
    retry = bearer(executor.latest(job.id).launch.env["LEPTON_TOKEN"])
    assert platform.api.get(url, headers=retry).status_code == 404


def test_a_metric_batch_sent_again_after_a_lost_answer_is_stored_once(
    client: Client, toy: str, scheduler: Scheduler, executor: FakeExecutor, platform: Platform
) -> None:
    job = train(client, toy)
    scheduler.reconcile_once()
    headers = bearer(executor.latest(job.id).launch.env["LEPTON_TOKEN"])
    url = f"/api/v1/jobs/{job.id}/metrics"
    points = [{"step": 1, "name": "loss", "value": 0.5}, {"step": 1, "name": "acc", "value": 0.9}]
    first, second = "a" * 32, "b" * 32

    for batch in (first, first, second, None, None):  # the runner's resend repeats its id
        body: dict[str, Any] = {"points": points} | ({"batch": batch} if batch else {})
        assert platform.api.post(url, json=body, headers=headers).status_code == 204

    stored = [(p.name, p.step) for p in client.jobs.metrics(job.id)]
    assert stored == [("loss", 1), ("acc", 1)] * 4  # first once, second once, two without ids
    bad = platform.api.post(url, json={"points": points, "batch": "x"}, headers=headers)
    assert bad.status_code == 422


def test_the_scheduler_sweeps_stray_runners_when_it_starts_then_every_minute(
    client: Client, toy: str, state: Control
) -> None:
    executor = FakeExecutor()
    job = train(client, toy)
    scheduler = Scheduler(state, executor)
    scheduler.reconcile_once()  # sweeps (nothing runs yet), then starts the job
    scheduler.reconcile_once()
    assert executor.swept == [{}]  # before anything started, and not again within the minute

    scheduler._next_sweep = 0.0  # a minute later
    scheduler.reconcile_once()
    assert executor.swept == [{}, {job.id: 1}]
