"""Training figures, one run, on this machine (2 CPU cores, no GPU), through a real control plane.

1. MNIST (the 10,000 real test-set images bundled with Lepton, stratified 8,000/2,000 split,
   seed 0): the built-in CNN with its default parameters, as a platform job. Target: test
   accuracy >= 98.5% within 3 minutes of training.
2. Breast cancer: AutoML with a 60 s budget. Target: test accuracy >= 97%.
3. co2 (weekly, statsmodels): the LSTM forecaster against the seasonal-naive baseline on MAE over
   the last 10% of the series. Target: lower MAE than seasonal-naive.
4. Platform overhead: the same CNN for the same epochs as a platform job vs the same training
   called in one plain process (no server, no runner). Target: ratio <= 1.05.
5. Submit-to-running latency with the local executor, median of 20. Target: < 1 s.

    .venv/bin/python benchmarks/training.py            # the figures above (~10 minutes)
    .venv/bin/python benchmarks/training.py --quick    # tiny versions, to keep the script working

Writes benchmarks/results/training.json. Exits 1 when a full run misses a target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from startup import START_TIMEOUT_S, clean_env, free_port, healthy

RESULTS = Path(__file__).with_name("results") / "training.json"
LEPTON = str(Path(sys.executable).parent / "lepton")


class Server:
    """A throwaway control plane on loopback."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (home / "server.log").open("wb")
        env = clean_env(LEPTON_HOME=str(home), LEPTON_PORT=str(self.port))
        self.process = subprocess.Popen(
            [LEPTON, "up"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        for _ in range(int(START_TIMEOUT_S / 0.05)):
            if healthy(self.url):
                break
            if self.process.poll() is not None:
                raise SystemExit(f"lepton up exited with {self.process.returncode}")
            time.sleep(0.05)
        token = json.loads((home / "credentials.json").read_text())["token"]
        from lepton import Client

        self.client = Client(self.url, token)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_job(client: Any, **spec: Any) -> tuple[Any, float]:
    """Submit a train job and wait; returns the job and its training wall time (started →
    finished, as the control plane recorded them)."""
    job = client.jobs.train(**spec)
    job = client.jobs.wait(job.id, timeout_s=1800, poll_s=0.5)
    if job.state != "succeeded":
        log = client.jobs.logs(job.id).text[-3000:]
        raise SystemExit(f"job {job.id} {job.state}: {job.error}\n{log}")
    seconds = (job.finished_at - job.started_at).total_seconds()
    return job, seconds


def mnist(client: Any, quick: bool) -> dict[str, Any]:
    from lepton.data.samples import load_sample

    client.datasets.push(load_sample("mnist"), name="mnist")
    params = {"epochs": 1} if quick else {}
    job, seconds = run_job(
        client,
        dataset="mnist",
        algorithm="cnn",
        params=params,
        split={"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 0},
        time_budget_s=600,
    )
    accuracy = job.result["metrics"]["accuracy"]
    return {"accuracy": accuracy, "train_seconds": seconds, "job": job.id}


def plain_cnn(client: Any, quick: bool) -> float:
    """The same CNN, same data, same epochs, called in this process: no server, no runner."""
    import numpy as np

    from lepton.algorithms.base import InputKind, NullCallbacks, Task
    from lepton.algorithms.registry import get_algorithm
    from lepton.jobs.prepare import Problem, build_train_data

    split = client.datasets.split("mnist", train=0.8, validation=0.0, test=0.2, seed=0)
    assignment = client.datasets.split_assignment("mnist", split)
    frame = client.datasets.to_pandas("mnist")
    problem = Problem(Task.classification, InputKind.image, "label")
    data = build_train_data(frame, np.asarray(assignment), problem, None)
    algo = get_algorithm("cnn")
    params = algo.resolve({"epochs": 1} if quick else {})
    start = time.perf_counter()
    algo.fit(data, params, NullCallbacks(), seed=0)
    return time.perf_counter() - start


def breast_cancer(client: Any, quick: bool) -> dict[str, Any]:
    from lepton.data.samples import load_sample

    client.datasets.push(load_sample("breast-cancer"), name="breast-cancer")
    job, seconds = run_job(
        client, dataset="breast-cancer", time_budget_s=10 if quick else 60, seed=0
    )
    return {
        "accuracy": job.result["metrics"]["accuracy"],
        "algorithm": job.result["algorithm"],
        "train_seconds": seconds,
        "job": job.id,
    }


def co2(client: Any, quick: bool) -> dict[str, Any]:
    from lepton.data.samples import load_sample

    client.datasets.push(load_sample("co2"), name="co2")
    job, seconds = run_job(
        client,
        dataset="co2",
        target="co2",
        algorithm="lstm",
        params={"epochs": 2} if quick else {},
        time_budget_s=600,
    )
    metrics = job.result["metrics"]
    return {
        "lstm_mae": metrics["mae"],
        "seasonal_naive_mae": metrics["seasonal_naive_mae"],
        "train_seconds": seconds,
        "job": job.id,
    }


def submit_latency(client: Any, runs: int, home: Path) -> float:
    """Seconds from submit to `running`, per job (a script job that exits at once)."""
    script = home / "noop.py"
    script.write_text("print('ok')\n")
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        job = client.jobs.run_script(script)
        while client.jobs.get(job.id).state == "queued":
            time.sleep(0.01)
        latencies.append(time.perf_counter() - start)
        client.jobs.wait(job.id, timeout_s=120, poll_s=0.1)
    return statistics.median(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny versions, for CI")
    args = parser.parse_args()
    quick = args.quick
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="lepton-bench-train-") as tmp:
        server = Server(Path(tmp))
        try:
            results: dict[str, Any] = {"quick": quick}
            results["latency_s"] = submit_latency(server.client, 3 if quick else 20, Path(tmp))
            results["mnist"] = mnist(server.client, quick)
            results["mnist"]["plain_seconds"] = plain_cnn(server.client, quick)
            results["breast_cancer"] = breast_cancer(server.client, quick)
            results["co2"] = co2(server.client, quick)
        finally:
            server.stop()
    m, b, c = results["mnist"], results["breast_cancer"], results["co2"]
    overhead = m["train_seconds"] / m["plain_seconds"]
    checks = [
        ("MNIST CNN test accuracy", f"{m['accuracy']:.4f}", ">= 0.985", m["accuracy"] >= 0.985),
        (
            "MNIST CNN training time",
            f"{m['train_seconds']:.0f} s",
            "<= 180 s",
            m["train_seconds"] <= 180,
        ),
        ("breast cancer AutoML accuracy", f"{b['accuracy']:.4f}", ">= 0.97", b["accuracy"] >= 0.97),
        (
            "co2 LSTM MAE / seasonal-naive MAE",
            f"{c['lstm_mae']:.3f} / {c['seasonal_naive_mae']:.3f}",
            "< 1",
            c["lstm_mae"] < c["seasonal_naive_mae"],
        ),
        ("CNN job / plain loop (same epochs)", f"{overhead:.3f}", "<= 1.05", overhead <= 1.05),
        (
            "submit -> running, median",
            f"{results['latency_s']:.3f} s",
            "< 1 s",
            results["latency_s"] < 1,
        ),
    ]
    width = max(len(c[0]) for c in checks)
    print(f"{'figure':<{width}}  {'measured':>16}  {'target':>9}  ok")
    for name, value, target, ok in checks:
        print(f"{name:<{width}}  {value:>16}  {target:>9}  {'yes' if ok else 'NO'}")
    print(
        f"(MNIST job {m['train_seconds']:.1f} s vs plain {m['plain_seconds']:.1f} s; "
        f"AutoML picked {b['algorithm']}; quick={quick})"
    )
    results["overhead_ratio"] = overhead
    results["checks"] = [{"figure": n, "value": v, "target": t, "ok": ok} for n, v, t, ok in checks]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    return 0 if quick or all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
