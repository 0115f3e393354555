"""The job runner: ``python -m lepton.jobs.runner JOB_ID``.

It is an API client and nothing more: the executor hands it the control-plane URL and a token
scoped to this job (``LEPTON_URL``, ``LEPTON_TOKEN``), so the same code runs as a local
subprocess or on any other machine. It fetches the inputs, trains (or runs the user's script),
registers the model and reports the end. A cancel arrives as SIGTERM: the runner then stops at
the next step and exits without reporting, and the scheduler records the job as cancelled.
"""

from __future__ import annotations

import io
import os
import platform
import runpy
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton.client import Client
from lepton.errors import ConnectionFailed, LeptonError
from lepton.jobs import distributed, tracking
from lepton.jobs.tracking import Tracker
from lepton.schemas import DatasetVersionDetail, EvaluateSpec, Job, ScriptSpec, TrainSpec

if TYPE_CHECKING:
    from lepton.algorithms.base import Model, TrainData

__all__ = ["RECONNECT_S", "environment", "main"]

# How long a job waits out an unreachable control plane (a restart takes seconds) before it
# gives up: every call it makes is one the server had not taken, so it is sent again.
RECONNECT_S = 120.0

_PACKAGES = ("lepton", "numpy", "pandas", "pyarrow", "scikit-learn", "torch", "optuna", "skops")


def environment() -> dict[str, str]:
    """Python and the versions of the packages that shape a training run."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lepton.jobs.runner JOB_ID", file=sys.stderr)
        return 2
    job_id = args[0]
    client = Client(reconnect_s=RECONNECT_S)
    job = Job.model_validate(client.request("GET", f"/api/v1/jobs/{job_id}").json())
    budget = job.spec.time_budget_s if isinstance(job.spec, TrainSpec) else None
    # One of several data-parallel workers: rank 0 reports (metrics, checkpoints, the model,
    # the end); the others only train, and end with an exit code.
    where = distributed.place()
    follower = where is not None and not where.leader
    tracker = Tracker(client, job_id, time_budget_s=budget, reporting=not follower)
    tracker.install_signal_handler()
    tracking.set_current(tracker)
    if not follower:
        client.request(
            "POST", f"/api/v1/jobs/{job_id}/started", json={"environment": environment()}
        )
    worker = f", worker {where.rank} of {where.size}" if where is not None else ""
    print(f"job {job_id}: {job.kind}, attempt {job.attempts}{worker}", flush=True)
    try:
        if where is not None:
            distributed.join(client, job_id, job.attempts, where)
        if follower:
            return _follow(tracker, job)
        if isinstance(job.spec, TrainSpec):
            result = run_train(client, tracker, job, job.spec)
        elif isinstance(job.spec, EvaluateSpec):
            from lepton.registry.evaluator import run_evaluate

            result = run_evaluate(client, job, job.spec)
        else:
            result = run_script(tracker, job.spec)
    except ConnectionFailed as exc:
        # A write whose answer was lost when the control plane went away: it may or may not
        # have been applied, so this attempt ends without a result and the scheduler retries
        # it (or fails it once the job's retries are spent), rather than calling it a failure.
        print(f"error: {exc.message}\nending this attempt without a result", file=sys.stderr)
        return 75
    except LeptonError as exc:
        print(f"error: {exc.message}\nfix: {exc.fix}", file=sys.stderr, flush=True)
        return _finish(client, tracker, job_id, "failed", {"message": exc.message, "fix": exc.fix})
    except Exception as exc:  # the user's script, or a bug: the log keeps the traceback
        if parallel_lost(exc):
            # Another worker stopped (killed, its node lost): not this job's fault, so the
            # attempt ends without a result and the scheduler retries it.
            print(f"error: a worker of this job stopped ({exc})", file=sys.stderr)
            print("ending this attempt without a result", file=sys.stderr, flush=True)
            return 75
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        return _finish(
            client,
            tracker,
            job_id,
            "failed",
            {"message": message, "fix": f"see lepton job logs {job_id}"},
        )
    if tracker.stopping:
        print("cancelled: stopping without a result", flush=True)
        return 143
    return _finish(client, tracker, job_id, "succeeded", None, result)


def _follow(tracker: Tracker, job: Job) -> int:
    """A worker other than rank 0: train alongside it, report nothing; exit 0 when done, 143
    when cancelled (the same outcome rank 0 reports)."""
    if isinstance(job.spec, TrainSpec):
        run_train(tracker.client, tracker, job, job.spec)
    elif isinstance(job.spec, ScriptSpec):
        run_script(tracker, job.spec)
    if tracker.stopping:
        return 143
    print(f"job {job.id}: this worker is done; worker 0 reports the result", flush=True)
    return 0


def parallel_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another worker went away."""
    if "torch" not in sys.modules:
        return False
    from lepton.algorithms.parallel import lost_worker

    return lost_worker(exc)


def _finish(
    client: Client,
    tracker: Tracker,
    job_id: str,
    state: str,
    error: dict[str, str] | None,
    result: dict[str, Any] | None = None,
) -> int:
    if tracker.stopping:  # cancelled: the scheduler records it
        return 143
    tracker.flush()
    client.request(
        "POST",
        f"/api/v1/jobs/{job_id}/finish",
        json={"state": state, "error": error, "result": result},
    )
    print(f"job {job_id} {state}", flush=True)
    return 0 if state == "succeeded" else 1


def run_train(client: Client, tracker: Tracker, job: Job, spec: TrainSpec) -> dict[str, Any]:
    """Fetch the data and split, train (or run AutoML), evaluate on the test split, register."""
    import pyarrow.parquet as pq

    from lepton.algorithms.registry import get_algorithm
    from lepton.jobs.prepare import build_train_data, infer_problem

    version = DatasetVersionDetail.model_validate(
        client.request("GET", f"/api/v1/jobs/{job.id}/dataset").json()
    )
    with tempfile.TemporaryDirectory(prefix="lepton-job-") as tmp:
        frame = pq.read_table(
            client.download(f"/api/v1/jobs/{job.id}/data", Path(tmp) / "d")
        ).to_pandas()
        assignment = np.load(
            io.BytesIO(client.request("GET", f"/api/v1/jobs/{job.id}/split").content),
            allow_pickle=False,
        )
    problem = infer_problem(
        version.schema_, spec.target or version.target, spec.algorithm, version.profile
    )
    data = build_train_data(frame, assignment, problem, None)
    print(
        f"{version.ref}: {problem.task.value} on {problem.kind.value} data, target {problem.target}; "
        f"{_count(data.X_train)} train / {_count(data.X_val)} validation / {_count(data.X_test)} test",
        flush=True,
    )
    device = _device(spec.gpus)
    leaderboard: list[dict[str, Any]] = []
    if spec.algorithm == "auto":
        from lepton.algorithms.automl import run_automl

        found = run_automl(
            data, time_budget_s=spec.time_budget_s, seed=spec.seed, callbacks=tracker, device=device
        )
        model, algorithm, params = found.model, found.best_algorithm, dict(found.best_params)
        leaderboard = found.leaderboard
        metrics = dict(found.test_metrics)
    else:
        algo = get_algorithm(spec.algorithm)
        params = algo.resolve(spec.params)
        model = algo.fit(data, params, tracker, seed=spec.seed, device=device)
        if not tracker.reporting:  # another worker's rank 0 evaluates and registers
            return {}
        algorithm = spec.algorithm
        metrics = evaluate(model, data)
    if tracker.stopping:
        return {}
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)
    from lepton.registry.explanations import explain_trained

    explained = explain_trained(model, data, seed=spec.seed)
    if "not_computed" in explained.facts:
        print(f"explanations not computed: {explained.facts['not_computed']}", flush=True)
    else:
        print(
            f"explanations: {explained.facts['method']} on {explained.facts['rows']} "
            f"{explained.facts['sample']} inputs in {explained.seconds:.1f} s",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="lepton-model-") as tmp:
        model.save(Path(tmp))
        explained.pack_into(Path(tmp))  # the background travels inside the artifact
        registered = tracker.register(
            Path(tmp),
            flavour=model.flavour,
            algorithm=algorithm,
            task=problem.task.value,
            signature=signature(data, problem.target),
            metrics=metrics,
            params={**params, "seed": spec.seed},
            leaderboard=leaderboard,
            name=spec.model,
            explanations=explained.facts,
            explanation_plot=explained.plot,
        )
    print(f"registered {registered.ref}", flush=True)
    from lepton.registry.evaluator import record_evaluation, test_split_evaluation

    held_out = test_split_evaluation(model, data, problem.target)
    if held_out is not None:  # the card's evaluation section, without an extra job
        record_evaluation(client, job.id, registered.ref, *held_out, split="test")
    return {"model": registered.ref, "metrics": metrics, "algorithm": algorithm}


def evaluate(model: Model, data: TrainData) -> dict[str, float]:
    """Metrics of ``model`` on the test split, fitting the task."""
    from lepton.algorithms.metrics import evaluate as metrics_of

    history = None
    if data.X_val is not None and data.y_train is None:  # forecasting: the series before the test
        history = np.concatenate([data.X_train, data.X_val])
    elif data.y_train is None:
        history = data.X_train
    return metrics_of(model, data.X_test, data.y_test, history=history, season=data.season)


def signature(data: TrainData, target: str) -> dict[str, Any]:
    """The inputs a prediction request must carry, and the outputs it gets."""
    from lepton.algorithms.base import InputKind

    outputs: dict[str, Any] = {"target": target, "task": data.task.value}
    if data.classes is not None:
        outputs["classes"] = [c.item() if hasattr(c, "item") else c for c in data.classes]
    if data.kind == InputKind.tabular:
        inputs: Any = [
            {"name": str(name), "dtype": str(dtype)} for name, dtype in data.X_train.dtypes.items()
        ]
    elif data.kind == InputKind.image:
        inputs = {"shape": list(data.X_train.shape[1:]), "dtype": "uint8"}
    elif data.kind == InputKind.text:
        inputs = [{"name": data.feature_names[0], "dtype": "string"}]
    else:
        inputs = {"series": target, "season": data.season}
    return {"inputs": inputs, "outputs": outputs}


def _count(values: Any) -> int:
    return 0 if values is None else len(values)


def _device(gpus: int) -> str:
    if gpus <= 0:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_script(tracker: Tracker, spec: ScriptSpec) -> dict[str, Any]:
    """Run the user's script as ``__main__`` with its arguments; ``lepton.log`` and
    ``lepton.save_model`` inside it report to this job."""
    with tempfile.TemporaryDirectory(prefix="lepton-script-") as tmp:
        script = Path(tmp) / Path(spec.script_name).name
        tracker.client.download(f"/api/v1/jobs/{tracker.job_id}/script", script)
        sys.argv = [str(script), *spec.args]
        os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras's default, TensorFlow, is not here
        sys.path.insert(0, tmp)
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise LeptonError(
                    f"the script exited with status {exc.code}",
                    fix=f"see lepton job logs {tracker.job_id}",
                ) from None
        finally:
            sys.path.remove(tmp)
    registered = getattr(tracker, "registered", None)
    return {"model": registered.ref} if registered is not None else {}


if __name__ == "__main__":
    sys.exit(main())
