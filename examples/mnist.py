"""Handwritten digits end to end, through the SDK: push the bundled MNIST sample (10,000 real
digits), train the built-in CNN, deploy it, read a few digits, and show which pixels made it
answer one of them, as a saliency overlay PNG. The deployment is removed at the end.

    lepton up                                    # in another terminal (or `make run`)
    .venv/bin/python examples/mnist.py           # 8,000 training digits, 3 epochs
    .venv/bin/python examples/mnist.py --quick   # 3,000 digits, 1 epoch of a narrower CNN (CI)

It exits nonzero when a step does not do what it should.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from lepton import Client
from lepton.data.samples import load_sample
from lepton.explain.image import overlay_png

DEPLOYMENT = "mnist-example"


def main() -> int:
    parser = argparse.ArgumentParser(description="MNIST: push, train, deploy, predict, explain.")
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter training run")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lepton-mnist-saliency.png",
        help="where to write the saliency overlay",
    )
    args = parser.parse_args()
    client = Client()

    # 1. Data: the MNIST test set's IDX files, shipped with Lepton.
    data = client.datasets.push(load_sample("mnist"), name="mnist")
    print(f"pushed {data.ref}: {data.rows} images, target {data.target}")

    # 2. Training. --quick: 30% of the digits (3,000) for one epoch of an 8-channel CNN, which
    # still reads ~91% of the held-out digits right (the whole script: 50 s on a busy 2-core box).
    if args.quick:
        params = {"epochs": 1, "channels": 8, "augment": False}
        split = {"train": 0.3, "validation": 0.0, "test": 0.7, "seed": 0}
    else:
        params = {"epochs": 3}
        split = {"train": 0.8, "validation": 0.0, "test": 0.2, "seed": 0}
    job = client.jobs.train("mnist", algorithm="cnn", params=params, split=split)
    job = client.jobs.wait(job.id, timeout_s=1200)
    if job.state != "succeeded":
        print(f"job {job.id} {job.state}: {job.error}", file=sys.stderr)
        return 1
    model = client.models.get(job.result["model"])
    print(f"trained {model.ref}: test accuracy {model.metrics['accuracy']:.4f}")

    # 3. Deployment, then predictions and an explanation straight from the replica.
    client.deployments.create(model.ref, name=DEPLOYMENT)
    try:
        print(f"deployed {model.ref} as {DEPLOYMENT}")
        return _call(client, args.output)
    finally:
        client.deployments.delete(DEPLOYMENT)
        print(f"removed deployment {DEPLOYMENT}")


def _call(client: Client, output: Path) -> int:
    images, labels = client.datasets.to_numpy("mnist")
    picked = np.random.default_rng(0).choice(len(images), size=8, replace=False)
    answer = client.deployments.predict(DEPLOYMENT, inputs=images[picked].tolist())
    predicted = answer["predictions"]
    right = sum(int(p) == int(t) for p, t in zip(predicted, labels[picked], strict=True))
    print(f"read {len(picked)} digits: predicted {predicted}, actually {labels[picked].tolist()}")
    print(f"  {right} of {len(picked)} right")
    if right < len(picked) // 2:  # the quick model reads ~91%: fewer than half means it broke
        print("the deployed model reads fewer than half of the digits right", file=sys.stderr)
        return 1

    # Integrated gradients: each pixel's share of p(digit) - p(black image).
    image = images[picked[0]]
    why = client.deployments.explain(DEPLOYMENT, inputs=[image.tolist()])["rows"][0]
    saliency = np.asarray(why["attributions"])
    strength = np.sort(np.abs(saliency).ravel())[::-1]
    share = float(strength[: strength.size // 20].sum() / max(strength.sum(), 1e-12))
    print(f"why {why['prediction']}: the strongest 5% of pixels carry {share:.0%} of the "
          "attribution (from a black baseline, blank pixels carry none)")  # fmt: skip
    total = why["base_value"] + float(saliency.sum())
    print(f"  p(black image) {why['base_value']:.4f} + attributions = {total:.4f}, "
          f"p(digit) {why['output']:.4f}")  # fmt: skip
    if abs(total - why["output"]) > 0.05:  # integrated gradients' path error, 32 steps
        print("the attributions do not add up to the output", file=sys.stderr)
        return 1
    output.write_bytes(overlay_png(image, saliency))
    print(
        f"saliency overlay written to {output} (red raises p({why['prediction']}), blue lowers it)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
