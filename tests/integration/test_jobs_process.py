"""Jobs with real processes: ``lepton up`` runs the scheduler, which starts
``python -m lepton.jobs.runner JOB_ID`` subprocesses that talk back over HTTP with their scoped
token.

Each test has its own server (one job slot: a job left over would hold up the next test) and
kills, at teardown, any runner of the jobs it submitted: runners live in their own session, so
they outlive the control plane by design. Waits are bounded; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from lepton import Client
from lepton.errors import ConnectionFailed, NotFound
from lepton.schemas import Job, JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

# Generous: on a loaded 2-core machine a runner spends seconds importing torch and sklearn.
JOB_TIMEOUT_S = 150.0
_POLL_S = 0.1

# The nets on 1,000 rows at batch 32: 25 steps an epoch, well under a second each on 2 cores,
# so a test can act between the first checkpoint and the end; lr 1e-4 keeps the validation loss
# improving so early stopping (patience 10) cannot end a run before its epochs are done.
NET_ROWS = 1000
SHORT_EPOCHS, LONG_EPOCHS = 8, 200


def net_params(epochs: int) -> dict[str, str | int | float | bool]:
    return {"epochs": epochs, "batch_size": 32, "lr": 1e-4, "hidden": 16}


def toy_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    return frame


def wait_for(what: str, condition: Callable[[], object], timeout: float = JOB_TIMEOUT_S) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / _POLL_S) + 1):
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(_POLL_S)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- runner processes, found by their command line ------------------------------------------


def runner_pids(job_id: str) -> list[int]:
    """Live (non-zombie) processes running ``lepton.jobs.runner JOB_ID``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        zombie = stat.rpartition(")")[2].split()[:1] == ["Z"]
        sandbox = argv[0].endswith(b"bwrap")  # the runner's sandbox around it, not the runner
        if b"lepton.jobs.runner" in argv and job_id.encode() in argv and not zombie and not sandbox:
            found.append(int(entry.name))
    return found


@pytest.fixture
def submitted() -> Iterator[list[str]]:
    """Ids of the jobs a test submitted; their runners are killed (whole group) at teardown."""
    ids: list[str] = []
    yield ids
    for job_id in ids:
        for pid in runner_pids(job_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def sdk(server: ServerProcess) -> Client:
    return Client(server.url, server.token, settings=Settings(home=Path("/nonexistent/lepton")))


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with sdk(server) as c:
        yield c


def finished(client: Client, job_id: str, timeout: float = JOB_TIMEOUT_S) -> Job:
    return client.jobs.wait(job_id, timeout_s=timeout, poll_s=_POLL_S)


def log_of(client: Client, job_id: str) -> str:
    text, offset = "", 0
    for _ in range(1000):
        chunk = client.jobs.logs(job_id, offset)
        text, offset = text + chunk.text, chunk.offset
        if not chunk.text:
            break
    return text


def has_checkpoint(client: Client, job_id: str) -> bool:
    try:
        client.request("GET", f"/api/v1/jobs/{job_id}/checkpoint")
    except NotFound:
        return False
    return True


def steps_of(client: Client, job_id: str, name: str) -> list[int]:
    return [p.step for p in client.jobs.metrics(job_id) if p.name == name]


def start_net(client: Client, submitted: list[str], epochs: int) -> Job:
    """An ``mlp`` job on the net-sized dataset, waited for until it has a checkpoint."""
    client.datasets.push(toy_frame(NET_ROWS), name="net", target="label")
    job = client.jobs.train("net", algorithm="mlp", params=net_params(epochs), time_budget_s=600)
    submitted.append(job.id)
    wait_for("the first checkpoint", lambda: has_checkpoint(client, job.id))
    running = client.jobs.get(job.id)
    assert running.state == JobState.running, f"the job ended before the test acted: {running}"
    return running


# --- the tests ------------------------------------------------------------------------------


def test_a_train_job_runs_to_a_registered_model(client: Client, submitted: list[str]) -> None:
    client.datasets.push(toy_frame(300), name="toy", target="label")

    job = client.jobs.train("toy", algorithm="logistic_regression")
    submitted.append(job.id)
    assert job.state == JobState.queued
    seen: list[JobState] = [job.state]

    def ended() -> bool:
        state = client.jobs.get(job.id).state
        if state != seen[-1]:
            seen.append(state)
        return state in (JobState.succeeded, JobState.failed, JobState.cancelled)

    wait_for("the job to end", ended)
    done = client.jobs.get(job.id)

    assert done.state == JobState.succeeded, (done.error, log_of(client, job.id))
    assert seen == [JobState.queued, JobState.running, JobState.succeeded]
    assert done.attempts == 1 and done.error is None
    assert done.environment is not None and "scikit-learn" in done.environment
    assert done.result is not None and done.result["model"] == "toy@1"
    log = log_of(client, job.id)
    assert "--- attempt 1 ---" in log
    assert "test metrics: " in log and "accuracy=" in log
    assert f"registered toy@1\njob {job.id} succeeded" in log
    # Complete within seconds of the end (once the executor brought in the last output).
    wait_for("a complete log", lambda: client.jobs.logs(job.id, len(log.encode())).complete, 30)
    assert client.jobs.metrics(job.id), "the fit logged no metrics"
    version = client.models.get("toy@1")
    assert version.job == job.id and version.dataset_version == "toy@v1"
    assert version.metrics["accuracy"] == done.result["metrics"]["accuracy"] > 0.8
    wait_for("the runner to exit", lambda: not runner_pids(job.id), timeout=30)


def test_cancelling_a_running_job_stops_its_runner(client: Client, submitted: list[str]) -> None:
    job = start_net(client, submitted, LONG_EPOCHS)
    [pid] = runner_pids(job.id)

    asked = client.jobs.cancel(job.id)
    assert asked.cancel_requested and asked.state == JobState.running

    done = finished(client, job.id, timeout=60)
    assert done.state == JobState.cancelled
    assert done.error is None and done.attempts == 1
    assert pid not in runner_pids(job.id), "the runner outlived its cancelled job"
    assert "cancelled: stopping without a result" in log_of(client, job.id)
    assert client.models.list() == []
    assert max(steps_of(client, job.id, "loss")) < LONG_EPOCHS


def test_a_killed_runner_is_retried_and_resumes_from_its_checkpoint(
    client: Client, submitted: list[str]
) -> None:
    job = start_net(client, submitted, SHORT_EPOCHS)
    [pid] = runner_pids(job.id)

    # The crash no handler sees: no report, no last checkpoint. The whole group, sandbox and all.
    os.killpg(os.getpgid(pid), signal.SIGKILL)

    done = finished(client, job.id)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log)
    assert done.attempts == 2
    assert "--- attempt 1 ended (exit code -9); retrying ---\n--- attempt 2 ---" in log
    assert done.result is not None and done.result["model"] == "net@1"
    # Resumed, not restarted: the first epoch was trained (and logged) once; every epoch was.
    losses = steps_of(client, job.id, "loss")
    assert losses.count(1) == 1, losses
    assert sorted(set(losses)) == list(range(1, SHORT_EPOCHS + 1))
    assert client.models.get("net@1").job == job.id


@pytest.mark.timeout(240)
def ended_after_restart(client: Client, job_id: str) -> Job:
    """The job once it ended, asked through a control plane that may still be starting."""

    def answered() -> Job | None:
        with contextlib.suppress(ConnectionFailed):
            return client.jobs.wait(job_id, timeout_s=JOB_TIMEOUT_S, poll_s=_POLL_S)
        return None

    done = wait_for("the job to end after the restart", answered)
    assert isinstance(done, Job)
    return done


def test_a_job_survives_a_crash_of_the_control_plane(
    server: ServerProcess, client: Client, submitted: list[str]
) -> None:
    job = start_net(client, submitted, SHORT_EPOCHS)

    server.kill()
    server.start()  # same home, same port: the runner's URL still points here

    done = ended_after_restart(client, job.id)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log)
    # Either the runner rode out the restart and reported to the new control plane, or it died
    # meanwhile and the new one retried it; never left running.
    assert done.attempts in (1, 2), log
    assert done.result is not None and done.result["model"] == "net@1"
    wait_for("the runner to exit", lambda: not runner_pids(job.id), timeout=30)


STEADY = """\
import time, lepton

for step in range(12):
    lepton.log(step, loss=1.0 / (step + 1))
    time.sleep(0.5)
"""


def test_a_script_job_rides_out_a_control_plane_that_is_down_for_seconds(
    server: ServerProcess, client: Client, submitted: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "steady.py"
    script.write_text(STEADY)
    job = client.jobs.run_script(script)  # no retries: the first attempt must finish
    submitted.append(job.id)
    wait_for("the script to log", lambda: steps_of(client, job.id, "loss"))

    server.kill()
    time.sleep(3)  # the runner's posts meet a refused connection meanwhile
    server.start()

    done = ended_after_restart(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log_of(client, job.id))
    assert done.attempts == 1
    assert sorted(set(steps_of(client, job.id, "loss"))) == list(range(12))


CRASH = """\
import lepton

lepton.log(step=0, loss=2.0)
raise RuntimeError("cannot read the sensor file")
"""


def test_a_crashing_script_fails_with_its_exception(
    client: Client, submitted: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "crash.py"
    script.write_text(CRASH)

    job = client.jobs.run_script(script)
    submitted.append(job.id)
    done = finished(client, job.id)

    assert done.state == JobState.failed
    assert done.error is not None
    assert done.error.message == "RuntimeError: cannot read the sensor file"
    assert done.attempts == 1, "a script that reported its failure is not retried"
    log = log_of(client, job.id)
    assert "Traceback" in log and 'crash.py", line 4' in log
    assert [(p.step, p.name, p.value) for p in client.jobs.metrics(job.id)] == [(0, "loss", 2.0)]
