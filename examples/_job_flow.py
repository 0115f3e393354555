"""The driver the job examples share: push the data, run the example as a Lepton job, deploy
the model it registers, and check what the deployment answers.

Each example (keras_mnist.py, torch_tabular.py, sklearn_pipeline.py) is one file that is both
the training script, run inside the job, and its own driver when started by hand. Inside a job
it never imports this module: a job gets only its own script.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lepton import Client
from lepton.schemas import Job

__all__ = ["SPLIT", "drive", "explain_row"]

SPLIT = {"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 0}
"""The examples' split: 80 % to train on, 20 % held out, stratified for a class target."""


def drive(
    script: str,
    *,
    dataset: str,
    data: Any,
    deployment: str,
    check: Callable[[Client, str, np.ndarray], bool],
    target: str | None = None,
    split: dict[str, float] = SPLIT,
    timeout_s: float = 1800,
) -> int:
    """Push ``data`` as ``dataset`` (predicting ``target``), run ``script`` on it as a job, deploy the model it
    registers as ``deployment``, and return 0 when ``check(client, deployment, held_out)``
    holds, where ``held_out`` are the indices of the rows the job's split kept for its test.
    The deployment is removed at the end; the job's log is printed when it fails."""
    client = Client()
    pushed = client.datasets.push(data, name=dataset, target=target)
    print(f"pushed {pushed.ref}: {pushed.rows} rows, target {pushed.target}")
    job = client.jobs.run_script(Path(script), dataset=dataset, split=split)
    print(f"running {Path(script).name} as job {job.id} (lepton job logs {job.id} -f)")
    job = client.jobs.wait(job.id, timeout_s=timeout_s)
    if job.state != "succeeded":
        _print_log(client, job)
        return 1
    model = client.models.get(job.result["model"] if job.result else "")
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(model.metrics.items()))
    print(f"job registered {model.ref} ({model.flavour}, {model.task}): {metrics}")
    card = client.models.card(model.ref).split("## Explanations\n\n", 1)
    print("card: " + (card[1].splitlines()[0] if len(card) == 2 else "no explanation"))
    steps = {p.name for p in client.jobs.metrics(job.id)}
    print(f"tracked metrics: {', '.join(sorted(steps))}")
    client.deployments.create(model.ref, name=deployment)
    try:
        print(f"deployed {model.ref} as {deployment}")
        assignment = client.datasets.split_assignment(
            pushed.ref, client.datasets.split(pushed.ref, **split)
        )
        return 0 if check(client, deployment, np.flatnonzero(assignment == 2)) else 1
    finally:
        client.deployments.delete(deployment)
        print(f"removed deployment {deployment}")


def explain_row(client: Client, deployment: str, row: dict[str, Any]) -> None:
    """Ask the deployment to explain one row, and print its method and top three features."""
    explained = client.deployments.explain(deployment, rows=[row])
    first = explained["rows"][0]
    ranked = sorted(
        zip(first["names"], first["attributions"], strict=True), key=lambda kv: -abs(kv[1])
    )
    print(f"explained by {explained['method']}: {', '.join(name for name, _ in ranked[:3])}")


def _print_log(client: Client, job: Job) -> None:
    print(f"job {job.id} {job.state}: {job.error}", file=sys.stderr)
    text, offset = "", 0
    while True:
        chunk = client.jobs.logs(job.id, offset)
        text += chunk.text
        if chunk.offset == offset:
            break
        offset = chunk.offset
    print(text[-4000:], file=sys.stderr)
