"""Data-parallel jobs with real processes on the local executor: ``--workers 2`` starts two
contained runners that meet through the API's rendezvous and train as one torch.distributed
group (gloo on loopback). The same path runs on Ray (test_ray.py); here it needs no cluster.

What a user would notice: the 2-worker net is as good as the 1-worker one (the workers share
each batch, so they take the same steps), its metrics are logged once per step, a worker that
dies costs an attempt (retried from the checkpoint) rather than a hang, and a cancel stops
every worker.
"""

# ruff: noqa: F811 (the client and submitted fixtures come from test_jobs_process)
from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_jobs_process import (  # noqa: F401 (fixtures)
    client,
    finished,
    has_checkpoint,
    log_of,
    net_params,
    runner_pids,
    submitted,
    toy_frame,
    wait_for,
)

from lepton import Client
from lepton.data.samples import load_sample
from lepton.schemas import JobState

pytestmark = pytest.mark.timeout(900)

TIMEOUT_S = 400.0  # a bound on waits: four runners import torch on a loaded 2-core machine
# One epoch of the 8-channel CNN on 30% of the 10,000 MNIST digits, tested on 70%: ~91% on one
# worker. Two runs with different worker counts draw their augmentation and batch-norm
# statistics differently, so they agree within noise, not to the digit.
CNN_PARAMS: dict[str, str | int | float | bool] = {"epochs": 1, "channels": 8, "augment": False}
CNN_SPLIT = {"train": 0.3, "validation": 0.0, "test": 0.7, "seed": 0}
SAME_WITHIN = 0.03
EPOCHS = 12  # of the toy MLP: long enough that a worker can be killed between checkpoints


def rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def train_cnn(client: Client, workers: int, **options: Any) -> tuple[float, str]:
    """Train the CNN of ``CNN_PARAMS`` on the pushed ``mnist`` with ``workers`` workers; its
    test accuracy and its job's log."""
    job = client.jobs.train(
        "mnist",
        algorithm="cnn",
        params=CNN_PARAMS,
        split=CNN_SPLIT,
        workers=workers,
        model=f"mnist-{workers}",
        **options,
    )
    done = client.jobs.wait(job.id, timeout_s=TIMEOUT_S, poll_s=0.2)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    assert done.result is not None
    if workers > 1:
        # Rank 0 alone reports: one point per metric and step.
        points = Counter((p.name, p.step) for p in client.jobs.metrics(job.id))
        assert points and max(points.values()) == 1, points
        assert ("loss", 1) in points and ("samples_per_s", 1) in points
        assert f"worker {workers - 1} of {workers} joined (gloo" in log, log[-3000:]
        assert "this worker is done; worker 0 reports the result" in log
    return client.models.get(done.result["model"]).metrics["accuracy"], log


def test_a_two_worker_cnn_matches_one_worker_and_logs_each_step_once(
    client: Client, submitted: list[str]
) -> None:
    client.datasets.push(load_sample("mnist"), name="mnist")
    one, _ = train_cnn(client, 1)
    two, log = train_cnn(client, 2)
    assert "worker 0 of 2 joined (gloo, rank 0 at 127.0.0.1:" in log
    assert one > 0.85 and abs(two - one) <= SAME_WITHIN, (one, two)


def test_a_lost_worker_ends_the_attempt_and_the_retry_resumes(
    client: Client, submitted: list[str]
) -> None:
    client.datasets.push(toy_frame(1000), name="net", target="label")
    job = client.jobs.train(
        "net", algorithm="mlp", params=net_params(EPOCHS), time_budget_s=600, workers=2
    )
    submitted.append(job.id)
    wait_for("the first checkpoint", lambda: has_checkpoint(client, job.id), TIMEOUT_S)
    followers = [p for p in runner_pids(job.id) if rank_of(p) == 1]
    assert followers, f"no worker of rank 1 runs: {runner_pids(job.id)}"
    os.kill(followers[0], signal.SIGKILL)
    done = finished(client, job.id, TIMEOUT_S)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    assert done.attempts == 2, log[-3000:]
    assert "--- attempt 1 ended" in log, log[-3000:]
    # Resumed, not restarted: the first epoch was trained (and logged) once; every epoch was.
    epochs = [p.step for p in client.jobs.metrics(job.id) if p.name == "loss"]
    assert epochs.count(1) == 1, epochs
    assert sorted(set(epochs)) == list(range(1, EPOCHS + 1)), epochs
    wait_for("every worker to stop", lambda: not runner_pids(job.id), 60)


def test_cancelling_a_two_worker_job_stops_both(client: Client, submitted: list[str]) -> None:
    client.datasets.push(toy_frame(1000), name="net", target="label")
    job = client.jobs.train(
        "net", algorithm="mlp", params=net_params(200), time_budget_s=600, workers=2
    )
    submitted.append(job.id)
    wait_for("the first checkpoint", lambda: has_checkpoint(client, job.id), TIMEOUT_S)
    assert len(runner_pids(job.id)) == 2
    client.jobs.cancel(job.id)
    done = finished(client, job.id, TIMEOUT_S)
    assert done.state == JobState.cancelled, done
    wait_for("every worker to stop", lambda: not runner_pids(job.id), 60)


SCRIPT = """
import torch, torch.distributed as dist
import lepton
rank, size = dist.get_rank(), dist.get_world_size()
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
print(f"rank {rank} of {size}: sum {total.item():g}", flush=True)
lepton.log(1, ranks=total.item())
"""


def test_a_script_finds_its_process_group_ready(
    client: Client, submitted: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    job = client.jobs.run_script(script, workers=2)
    submitted.append(job.id)
    done = finished(client, job.id, TIMEOUT_S)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    assert "rank 0 of 2: sum 3" in log and "rank 1 of 2: sum 3" in log, log[-3000:]
    assert [(p.name, p.step, p.value) for p in client.jobs.metrics(job.id)] == [("ranks", 1, 3.0)]
