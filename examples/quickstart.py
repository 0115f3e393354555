"""The quick start as one script, through the SDK: push the breast-cancer sample, train a model,
deploy it, call /predict and /explain on it, then remove the deployment.

    lepton up                                        # in another terminal (or `make run`)
    .venv/bin/python examples/quickstart.py          # AutoML for 60 s
    .venv/bin/python examples/quickstart.py --quick  # a 10 s AutoML budget (CI)

It prints what a user sees at each step and exits nonzero when a step does not do what it should.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from lepton import Client
from lepton.data.samples import load_sample

DEPLOYMENT = "quickstart"


def main() -> int:
    parser = argparse.ArgumentParser(description="Push, train, deploy, predict, explain.")
    parser.add_argument("--quick", action="store_true", help="a 10 s AutoML budget")
    args = parser.parse_args()
    client = Client()

    # 1. Data: the bundled breast-cancer table (569 tumours, 30 measurements, benign/malignant).
    frame = load_sample("breast-cancer")
    data = client.datasets.push(frame, name="breast-cancer")
    print(f"pushed {data.ref}: {data.rows} rows, target {data.target}")

    # 2. Training: AutoML tries the algorithms that suit the table and registers the best.
    job = client.jobs.wait(
        client.jobs.train("breast-cancer", time_budget_s=10 if args.quick else 60).id,
        timeout_s=600,
    )
    if job.state != "succeeded":
        print(f"job {job.id} {job.state}: {job.error}", file=sys.stderr)
        return 1
    model = client.models.get(job.result["model"])
    print(f"trained {model.ref}: {model.algorithm}, test accuracy {model.metrics['accuracy']:.4f}")

    # 3. Deployment: a replica process serving the version, with its own inference token.
    created = client.deployments.create(model.ref, name=DEPLOYMENT)
    try:
        print(f"deployed {created.model} at {created.url} (token shown once: {created.token})")
        return _call(client, created.url, created.token or "", frame, data.target or "diagnosis")
    finally:
        client.deployments.delete(DEPLOYMENT)
        print(f"removed deployment {DEPLOYMENT}")


def _call(client: Client, url: str, token: str, frame: pd.DataFrame, target: str) -> int:
    sample = frame.sample(n=5, random_state=0)
    rows = sample.drop(columns=target).to_dict(orient="records")

    # 4. Predictions, straight from the replica. The same call with curl:
    body = json.dumps({"rows": rows[:1]})
    print(f"curl -X POST {url}/predict -H 'Authorization: Bearer {token}' "
          f"-H 'Content-Type: application/json' -d '{body}'")  # fmt: skip
    answer = client.deployments.predict(DEPLOYMENT, rows)
    predicted, actual = answer["predictions"], sample[target].tolist()
    for label, truth, proba in zip(predicted, actual, answer["probabilities"], strict=True):
        print(f"  predicted {label:<9} (probability {max(proba):.2f}), actually {truth}")
    if len(predicted) != len(rows) or not set(predicted) <= set(answer["classes"]):
        print(f"unexpected predictions: {answer}", file=sys.stderr)
        return 1

    # 5. Explanations: why the first row got its answer, feature by feature.
    explanation = client.deployments.explain(DEPLOYMENT, rows[:1])
    why = explanation["rows"][0]
    ranked = sorted(zip(why["names"], why["attributions"], strict=True), key=lambda p: -abs(p[1]))
    space = explanation["output_space"].replace("_", "-")
    print(f"why {why['prediction']}? {explanation['method']}, in {space} space, top 5 features:")
    for name, value in ranked[:5]:
        print(f"  {name:<24} {value:+.4f}")
    total = why["base_value"] + sum(why["attributions"])
    print(f"  base value {why['base_value']:.4f} + attributions = {total:.4f}, "
          f"output {why['output']:.4f}")  # fmt: skip
    if abs(total - why["output"]) > 1e-3:  # the additivity every explanation here keeps
        print("the attributions do not add up to the output", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
