"""From raw data to registered models, through the SDK: the breast-cancer sample with AutoML,
and the MNIST sample with the built-in CNN.

    lepton up                          # in another terminal (or `make run`)
    .venv/bin/python examples/train.py            # the full run (~5 minutes on 2 cores)
    .venv/bin/python examples/train.py --quick    # 1 epoch and a 10 s AutoML budget (CI)
"""

from __future__ import annotations

import argparse
import sys

from lepton import Client
from lepton.data.samples import load_sample


def main() -> int:
    parser = argparse.ArgumentParser(description="Train on the bundled samples.")
    parser.add_argument("--quick", action="store_true", help="reduced epochs and budget")
    args = parser.parse_args()
    client = Client()

    # 1. Tabular: push, look at the profile, let AutoML pick and tune an algorithm.
    cancer = client.datasets.push(load_sample("breast-cancer"), name="breast-cancer")
    balance = {b.value: b.count for b in cancer.profile.class_balance or []}
    print(f"{cancer.ref}: {cancer.rows} rows, target {cancer.target}, classes {balance}")
    job = client.jobs.train("breast-cancer", time_budget_s=10 if args.quick else 60)
    job = client.jobs.wait(job.id, timeout_s=600)
    if job.state != "succeeded":
        print(f"job {job.id} {job.state}: {job.error}", file=sys.stderr)
        return 1
    model = client.models.get(job.result["model"])
    print(f"{model.ref}: {model.algorithm}, test accuracy {model.metrics['accuracy']:.4f}")
    for row in model.leaderboard[:3]:
        print(f"  tried {row['algorithm']}: validation {row['metric']} {row['val_score']:.4f}")

    # 2. Images: the MNIST test set, split 8,000 / 2,000, and the built-in CNN.
    client.datasets.push(load_sample("mnist"), name="mnist")
    job = client.jobs.train(
        "mnist",
        algorithm="cnn",
        params={"epochs": 1} if args.quick else {},
        split={"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 0},
        time_budget_s=600,
    )
    job = client.jobs.wait(job.id, timeout_s=1200)
    if job.state != "succeeded":
        print(f"job {job.id} {job.state}: {job.error}", file=sys.stderr)
        return 1
    digits = client.models.get(job.result["model"])
    points = client.jobs.metrics(job.id)
    print(
        f"{digits.ref}: test accuracy {digits.metrics['accuracy']:.4f} after {len(points)} metric points"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
