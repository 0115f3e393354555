"""A plain PyTorch script as a Lepton job: a small net on the breast-cancer sample, exported to
ONNX when it is registered, then deployed.

    lepton up                                        # in another terminal (or `make run`)
    .venv/bin/python examples/torch_tabular.py

Started by hand, this file pushes the sample (569 tumours, 30 measurements each), runs itself
as a job (as `lepton run examples/torch_tabular.py --dataset breast-cancer --test 0.2`), deploys
the model, and checks the deployment's answers and explanations on held-out rows. Inside the
job it trains with nothing but PyTorch, and registers the module with the columns it reads.
"""

from __future__ import annotations

import os
import sys


def train() -> None:
    import numpy as np
    import torch

    import lepton

    train_rows, test_rows = lepton.load_dataset(split="train"), lepton.load_dataset(split="test")
    target = "diagnosis"
    features = [c for c in train_rows.columns if c != target]
    classes = sorted(train_rows[target].unique())  # ["benign", "malignant"]

    def tensors(frame):  # type: ignore[no-untyped-def]
        X = torch.tensor(frame[features].to_numpy(dtype=np.float32))
        y = torch.tensor([classes.index(v) for v in frame[target]])
        return X, y

    X, y = tensors(train_rows)

    class Net(torch.nn.Module):
        """Standardises inside the graph, so the deployment takes raw measurements."""

        def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(len(features), 32), torch.nn.ReLU(), torch.nn.Linear(32, 2)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers((x - self.mean) / self.std)

    torch.manual_seed(0)
    net = Net(X.mean(dim=0), X.std(dim=0) + 1e-6)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for epoch in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        optimiser.step()
        lepton.log(step=epoch, loss=float(loss))

    X_test, y_test = tensors(test_rows)
    with torch.no_grad():
        accuracy = float((net(X_test).argmax(dim=1) == y_test).float().mean())
    print(f"test accuracy on {len(y_test)} held-out rows: {accuracy:.4f}")
    lepton.save_model(
        net,
        name="cancer-torch",
        metrics={"accuracy": accuracy},
        signature={"inputs": [{"name": c} for c in features], "outputs": {"classes": classes}},
        background=train_rows[features],
    )


def main() -> int:
    import numpy as np
    from _job_flow import drive, explain_row

    from lepton import Client
    from lepton.data.samples import load_sample

    frame = load_sample("breast-cancer")

    def check(client: Client, deployment: str, held_out: np.ndarray) -> bool:
        rows = frame.iloc[held_out]
        features = rows.drop(columns="diagnosis")
        answer = client.deployments.predict(deployment, rows=features.to_dict("records"))
        right = sum(p == t for p, t in zip(answer["predictions"], rows["diagnosis"], strict=True))
        print(f"the deployment got {right} of {len(rows)} held-out tumours right")
        explain_row(client, deployment, features.iloc[0].to_dict())
        return right >= 0.9 * len(rows)

    return drive(
        __file__,
        dataset="breast-cancer",
        data=frame,
        deployment="cancer-torch",
        check=check,
    )


if __name__ == "__main__":
    if "LEPTON_JOB_ID" in os.environ:
        train()
    else:
        sys.exit(main())
