"""What the job runner does for evaluations: an ``evaluate`` job's whole body, and the held-out
evaluation recorded right after a train job registers its model.

Both speak to the control plane only through the job's scoped token, and both upload their plots
as the job's artifacts before recording the evaluation that names them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton.errors import InvalidRequest
from lepton.schemas import Blob, DatasetVersionDetail, EvaluateSpec, Evaluation, Job, ModelVersion

if TYPE_CHECKING:
    from lepton.algorithms.base import Model, TrainData
    from lepton.client import Client

__all__ = ["record_evaluation", "run_evaluate", "test_split_evaluation"]


def run_evaluate(client: Client, job: Job, spec: EvaluateSpec) -> dict[str, Any]:
    """Load the model, predict the dataset's rows, compute metrics, slices and plots, record."""
    import pyarrow.parquet as pq

    from lepton.registry.artifacts import unpack
    from lepton.registry.evaluation import evaluate_model
    from lepton.registry.flavours import load_model

    base = f"/api/v1/jobs/{job.id}"
    version = ModelVersion.model_validate(client.request("GET", f"{base}/model").json())
    dataset = DatasetVersionDetail.model_validate(client.request("GET", f"{base}/dataset").json())
    with tempfile.TemporaryDirectory(prefix="lepton-eval-") as tmp:
        archive = client.download(
            f"{base}/model/artifact", Path(tmp) / "model.zip", digest=version.artifact_digest
        )
        model = load_model(unpack(archive, Path(tmp) / "model"), signature=version.signature)
        frame = pq.read_table(client.download(f"{base}/data", Path(tmp) / "data")).to_pandas()
    target = spec.target or version.signature.get("outputs", {}).get("target") or dataset.target
    if not target:
        raise InvalidRequest(
            f"neither the model nor {dataset.ref} names a target column",
            fix=f"pass --target COLUMN (columns: {', '.join(map(str, frame.columns[:20]))})",
        )
    print(
        f"evaluating {version.ref} on {dataset.ref}: {len(frame)} rows, target {target}", flush=True
    )
    result, plots = evaluate_model(model, frame, target, spec.slices)
    recorded = record_evaluation(client, job.id, version.ref, result, plots, split=None)
    metrics = result["metrics"]
    print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())), flush=True)
    return {"model": version.ref, "metrics": metrics, "evaluation": recorded.id}


def test_split_evaluation(
    model: Model, data: TrainData, target: str
) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """The held-out evaluation of a freshly trained model, in the shape an evaluate job gives;
    None for forecasting (its metrics compare against the seasonal naive forecast instead)."""
    from lepton.registry.evaluation import evaluate_predictions, render_plots

    if data.X_test is None or data.y_test is None or data.task.value == "forecasting":
        return None
    y_pred = model.predict(data.X_test)
    proba = model.predict_proba(data.X_test) if data.task.value == "classification" else None
    result = evaluate_predictions(
        data.task.value,
        data.y_test,
        y_pred,
        proba=proba,
        classes=model.classes,
        target=target,
    )
    return result, render_plots(result, data.y_test, y_pred, proba)


def record_evaluation(
    client: Client,
    job_id: str,
    model_ref: str,
    result: dict[str, Any],
    plots: dict[str, bytes],
    *,
    split: str | None,
) -> Evaluation:
    """Upload the plots as the job's artifacts, then record the evaluation naming them."""
    digests: dict[str, str] = {}
    for name, png in sorted(plots.items()):
        blob = Blob.model_validate(
            client.request(
                "POST",
                f"/api/v1/jobs/{job_id}/artifacts",
                content=png,
                headers={"Content-Type": "application/octet-stream"},
            ).json()
        )
        digests[name] = blob.digest
    body = {"model_version": model_ref, "split": split, "result": {**result, "plots": digests}}
    answer = client.request("POST", f"/api/v1/jobs/{job_id}/evaluation", json=body)
    return Evaluation.model_validate(answer.json())
