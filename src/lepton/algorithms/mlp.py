"""A multilayer perceptron for tabular classification and regression.

Tabular columns are turned into numbers by constants computed here and saved as JSON
(medians, means and standard deviations for numeric columns; category lists for the rest,
one-hot encoded), so a saved model is ``weights.safetensors`` plus ``config.json`` and nothing
else. Training is AdamW with early stopping on the validation loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lepton.algorithms.base import (
    Algorithm,
    Callbacks,
    InputKind,
    Model,
    Param,
    ParamValue,
    Task,
    TrainData,
)
from lepton.algorithms.torch_utils import (
    SMALL_OPS_THREADS,
    batch_rows,
    load_net,
    pick_device,
    save_net,
    seed_everything,
    train,
)
from lepton.errors import InvalidRequest

__all__ = ["MLP", "MLPModel", "encode", "fit_encoding"]

# 50: past this many categories a one-hot column block dwarfs the numeric features; rarer
# categories (and ones unseen in training) encode as all zeros.
MAX_CATEGORIES = 50
# 10 epochs without a better validation loss end training; the best epoch's weights are kept.
PATIENCE = 10


def frame(X: Any, names: list[str]) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    arr = arr.reshape(len(arr), -1)
    return pd.DataFrame(arr, columns=names or [f"x{i}" for i in range(arr.shape[1])])


def fit_encoding(df: pd.DataFrame) -> dict[str, Any]:
    """The constants that turn ``df``'s columns into numbers, as plain JSON-able values."""
    numeric, categorical = {}, {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s):
            v = s.astype(float)
            median = float(v.median()) if v.notna().any() else 0.0
            filled = v.fillna(median)
            std = float(filled.std(ddof=0))
            numeric[str(col)] = [median, float(filled.mean()), std if std > 1e-12 else 1.0]
        else:
            counts = s.dropna().astype(str).value_counts()
            categorical[str(col)] = sorted(counts.index[:MAX_CATEGORIES].tolist())
    return {"columns": [str(c) for c in df.columns], "numeric": numeric, "categorical": categorical}


def encode(df: pd.DataFrame, enc: Mapping[str, Any]) -> np.ndarray:
    """``df`` as a float32 matrix: scaled numerics, then one-hot categoricals."""
    missing = [c for c in enc["columns"] if c not in df.columns]
    if missing:
        raise InvalidRequest(
            f"the data has no column {missing[0]!r}; the model needs: {', '.join(enc['columns'])}",
            fix="pass rows with the columns the model was trained on",
        )
    parts = []
    for col, (median, mean, std) in enc["numeric"].items():
        v = pd.to_numeric(df[col], errors="coerce").astype(float).fillna(median)
        parts.append(((v.to_numpy() - mean) / std)[:, None])
    for col, cats in enc["categorical"].items():
        values = df[col].astype(str).where(df[col].notna(), None).to_numpy()
        parts.append((values[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(float))
    return (
        np.concatenate(parts, axis=1).astype(np.float32)
        if parts
        else np.zeros((len(df), 0), np.float32)
    )


def build(config: Mapping[str, Any]) -> nn.Module:
    layers: list[nn.Module] = []
    width = int(config["n_inputs"])
    for _ in range(int(config["layers"])):
        layers += [
            nn.Linear(width, int(config["hidden"])),
            nn.ReLU(),
            nn.Dropout(float(config["dropout"])),
        ]
        width = int(config["hidden"])
    layers.append(nn.Linear(width, int(config["n_outputs"])))
    return nn.Sequential(*layers)


class MLPModel(Model):
    """A trained :class:`MLP`; ``predict`` takes a DataFrame with the training columns."""

    flavour: ClassVar[str] = "torch"

    def __init__(self, net: nn.Module, config: dict[str, Any]) -> None:
        self.net, self.config = net.eval(), config
        self.algorithm, self.task = "mlp", Task(config["task"])
        self.classes = config["classes"]
        self.device = next(net.parameters()).device

    def outputs(self, X: Any) -> np.ndarray:
        x = torch.from_numpy(
            encode(frame(X, self.config["encoding"]["columns"]), self.config["encoding"])
        )
        with torch.no_grad():
            return np.asarray(self.net(x.to(self.device)).cpu().numpy())

    def predict_proba(self, X: Any) -> np.ndarray | None:
        if self.task != Task.classification:
            return None
        return np.asarray(torch.softmax(torch.from_numpy(self.outputs(X)), 1).numpy())

    def predict(self, X: Any) -> np.ndarray:
        out = self.outputs(X)
        if self.task == Task.classification:
            return np.asarray(np.asarray(self.config["classes"])[out.argmax(1)])
        return np.asarray(
            out[:, 0].astype(np.float64) * self.config["y_std"] + self.config["y_mean"]
        )

    def save(self, directory: Path) -> None:
        save_net(directory, self.net, self.config)


class MLP(Algorithm):
    """Tabular classification and regression with a ReLU MLP and early stopping."""

    name: ClassVar[str] = "mlp"
    data_parallel: ClassVar[bool] = True
    family: ClassVar[str] = "neural network"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification, Task.regression})
    kinds: ClassVar[frozenset[InputKind]] = frozenset({InputKind.tabular})
    summary: ClassVar[str] = "Multilayer perceptron with early stopping; tabular data"
    params: ClassVar[Mapping[str, Param]] = {
        "hidden": Param("int", 128, 16, 512, log=True, help="units per hidden layer"),
        "layers": Param("int", 2, 1, 4, help="hidden layers"),
        "dropout": Param("float", 0.1, 0.0, 0.5, help="dropout after each hidden layer"),
        "lr": Param("float", 1e-3, 1e-4, 1e-1, log=True, help="AdamW learning rate"),
        "epochs": Param("int", 100, 5, 200, help="most passes over the data (early stopping)"),
        "batch_size": Param("choice", 128, choices=(32, 64, 128, 256), help="rows per step"),
        "weight_decay": Param("float", 1e-4, 1e-6, 1e-2, log=True, help="AdamW weight decay"),
    }

    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> MLPModel:
        p = self.resolve(params)
        dev = pick_device(device, threads=SMALL_OPS_THREADS)
        seed_everything(seed)
        names = list(data.feature_names)
        train_df = frame(data.X_train, names)
        enc = fit_encoding(train_df)
        classify = data.task == Task.classification
        config: dict[str, Any] = {
            "format": 1,
            "algorithm": self.name,
            "task": data.task.value,
            "encoding": enc,
        }
        config.update({k: p[k] for k in ("hidden", "layers", "dropout")})
        y_raw = np.asarray(data.y_train)
        if classify:
            classes = list(data.classes) if data.classes else sorted(set(y_raw.tolist()))
            index = {c: i for i, c in enumerate(classes)}

            def target(y: Any) -> Tensor:
                return torch.tensor([index[v] for v in np.asarray(y).tolist()])

            config.update(classes=classes, n_outputs=len(classes))
        else:
            y_mean, y_std = float(y_raw.mean()), float(y_raw.std()) or 1.0

            def target(y: Any) -> Tensor:
                return torch.tensor((np.asarray(y, dtype=np.float64) - y_mean) / y_std).float()[
                    :, None
                ]

            config.update(classes=None, n_outputs=1, y_mean=y_mean, y_std=y_std)
        x = torch.from_numpy(encode(train_df, enc)).to(dev)
        y = target(y_raw).to(dev)
        config["n_inputs"] = x.shape[1]
        net = build(config).to(dev)
        batch = int(p["batch_size"])
        lr, wd = float(p["lr"]), float(p["weight_decay"])
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)

        def batches(gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
            order = torch.randperm(len(x), generator=gen).to(dev)
            for rows in batch_rows(order, batch):
                yield x[rows], y[rows]

        def loss(out: Tensor, t: Tensor) -> Tensor:
            return F.cross_entropy(out, t) if classify else F.mse_loss(out, t)

        evaluate = None
        if data.X_val is not None and len(data.X_val):
            vx = torch.from_numpy(encode(frame(data.X_val, names), enc)).to(dev)
            vy = target(data.y_val).to(dev)

            def evaluate() -> dict[str, float]:
                out = net(vx)
                metrics = {"val_loss": float(loss(out, vy))}
                if classify:
                    metrics["val_accuracy"] = float((out.argmax(1) == vy).float().mean())
                else:
                    metrics["val_rmse"] = metrics["val_loss"] ** 0.5 * y_std
                return metrics

        train(
            net,
            optimizer,
            epochs=int(p["epochs"]),
            batches=batches,
            loss_of=lambda b: loss(net(b[0]), b[1]),
            lr_at=lambda step: lr,
            evaluate=evaluate,
            callbacks=callbacks,
            seed=seed,
            tag={"algorithm": self.name, "params": p},
            patience=PATIENCE,
        )
        return MLPModel(net.eval(), config)

    @classmethod
    def load(cls, directory: Path) -> MLPModel:
        net, config, _ = load_net(directory, build)
        return MLPModel(net, config)
