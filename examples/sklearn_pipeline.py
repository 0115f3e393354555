"""A scikit-learn pipeline as a Lepton job: one-hot and scaling before a ridge regression on the
diabetes sample, registered with skops (no pickle), then deployed.

    lepton up                                        # in another terminal (or `make run`)
    .venv/bin/python examples/sklearn_pipeline.py

Started by hand, this file pushes the sample (442 patients, 10 measurements, a disease
progression score), runs itself as a job (as `lepton run examples/sklearn_pipeline.py --dataset
diabetes --test 0.2`), deploys the pipeline, and checks its answers and explanations on
held-out rows against the job's own error.
"""

from __future__ import annotations

import os
import sys


def train() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import lepton

    train_rows, test_rows = lepton.load_dataset(split="train"), lepton.load_dataset(split="test")
    target = "progression"
    features = [c for c in train_rows.columns if c != target]
    numeric = [c for c in features if c != "sex"]
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("sex", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
                        ("scale", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("ridge", Ridge(alpha=1.0)),
        ]
    )
    pipeline.fit(train_rows[features], train_rows[target])
    mae = mean_absolute_error(test_rows[target], pipeline.predict(test_rows[features]))
    r2 = pipeline.score(test_rows[features], test_rows[target])
    lepton.log(step=0, mae=mae, r2=r2)
    print(f"held-out MAE {mae:.1f}, R2 {r2:.3f} on {len(test_rows)} rows")
    lepton.save_model(
        pipeline,
        name="diabetes-pipeline",
        metrics={"mae": mae, "r2": r2},
        background=train_rows[features],
    )


def main() -> int:
    import numpy as np
    from _job_flow import drive, explain_row

    from lepton import Client
    from lepton.data.samples import load_sample

    frame = load_sample("diabetes")

    def check(client: Client, deployment: str, held_out: np.ndarray) -> bool:
        rows = frame.iloc[held_out]
        features = rows.drop(columns="progression")
        answer = client.deployments.predict(deployment, rows=features.to_dict("records"))
        mae = float(np.mean(np.abs(np.asarray(answer["predictions"]) - rows["progression"])))
        job_mae = client.models.get("diabetes-pipeline").metrics["mae"]
        print(f"the deployment's held-out MAE is {mae:.1f} (the job measured {job_mae:.1f})")
        explain_row(client, deployment, features.iloc[0].to_dict())
        return abs(mae - job_mae) < 1e-6 * max(1.0, job_mae)

    return drive(
        __file__,
        dataset="diabetes",
        data=frame,
        target="progression",
        deployment="diabetes-pipeline",
        check=check,
    )


if __name__ == "__main__":
    if "LEPTON_JOB_ID" in os.environ:
        train()
    else:
        sys.exit(main())
