"""A compact convolutional net for image classification, sized to train on a 2-core CPU.

Three conv blocks (conv 3x3 - BatchNorm - ReLU - max-pool, widths ``c, 2c, 4c``), then
dropout and a linear head. Trained with AdamW on a one-cycle schedule (warmup, cosine decay)
and light augmentation (random rotation, scale and shift, done with ``affine_grid``).

On MNIST's 10,000 test digits split 8,000/2,000 (stratified, seed 0), the defaults reach
99.35-99.45% on the 2,000 (seeds 0-2) after ~60 s of training on one thread of the 2-core box.
Ablations on seed 0 (99.45%): no label smoothing 99.15%, no warmup 99.30%, no augmentation
99.35%.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
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
    batch_rows,
    cosine_lr,
    load_net,
    pick_device,
    save_net,
    seed_everything,
    train,
)
from lepton.errors import InvalidRequest

__all__ = ["CNN", "CNNModel"]

# Augmentation: up to 10 degrees of rotation, 10% of scale and 2 px of shift, the range of
# handwriting's own slant and size; a digit stays the same digit under it.
ROTATE_DEG, SCALE, SHIFT_PX = 10.0, 0.10, 2.0
# 0.1: label smoothing keeps the net from over-trusting 8,000 images (+0.3% on MNIST, seed 0).
SMOOTHING = 0.1
PREDICT_BATCH = 512
# 8: three 2x2 poolings leave one pixel of an 8x8 image and nothing of a 7x7 one.
MIN_SIDE = 8
# Channels-last: oneDNN's conv kernels want NHWC; a training step of the default net on 64
# digits costs 40 ms of CPU against 60 ms in the default layout (one thread).
CHANNELS_LAST = torch.channels_last


def build(config: Mapping[str, Any]) -> nn.Module:
    """The net that ``config`` describes (widths, dropout, input channels, classes)."""
    c, layers, prev = int(config["channels"]), [], int(config["in_channels"])
    for width in (c, 2 * c, 4 * c):
        layers += [
            nn.Conv2d(prev, width, 3, padding=1, bias=False),  # BatchNorm brings its own bias
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        prev = width
    # 3x3: what three poolings leave of 28x28; larger images are averaged down to it.
    layers += [nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Dropout(float(config["dropout"]))]
    layers += [nn.Linear(prev * 9, int(config["n_classes"]))]
    return nn.Sequential(*layers)


def as_nchw(X: Any, shape: tuple[int, int, int] | None = None) -> Tensor:
    """Images ``(N, H, W)`` or ``(N, H, W, C)`` as an ``(N, C, H, W)`` uint8 tensor."""
    arr = np.asarray(X)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or (shape is not None and arr.shape[1:] != (shape[1], shape[2], shape[0])):
        want = (
            "(N, H, W) or (N, H, W, C)"
            if shape is None
            else f"(N, {shape[1]}, {shape[2]}, {shape[0]})"
        )
        raise InvalidRequest(
            f"images have shape {arr.shape}; this model takes {want}",
            fix="pass uint8 images of the size the model was trained on",
        )
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    # A copy: the caller's array may be read-only (np.frombuffer), which torch warns about.
    return torch.from_numpy(np.array(arr.transpose(0, 3, 1, 2), order="C", copy=True))


def channel_stats(images: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0-1 scale.

    In chunks of 1,024 images: a float copy of the whole set would be 4x its uint8 size.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for i in range(0, len(images), 1024):
        chunk = images[i : i + 1024].double() / 255
        total += chunk.sum((0, 2, 3))
        squares += (chunk * chunk).sum((0, 2, 3))
    n = max(1, images.numel() // images.shape[1])
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(1e-6).sqrt()
    return mean.tolist(), std.tolist()


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """A random rotation, scale and shift per image (a RandomAffine of our own)."""
    n, _, h, w = x.shape
    u = torch.rand(n, 4, generator=gen).to(x.device) * 2 - 1  # four uniforms in [-1, 1]
    angle, scale = u[:, 0] * math.radians(ROTATE_DEG), 1 + u[:, 1] * SCALE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size of them.
    tx, ty = u[:, 2] * SHIFT_PX * 2 / w, u[:, 3] * SHIFT_PX * 2 / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


class CNNModel(Model):
    """A trained :class:`CNN`; ``predict`` takes images shaped like the training ones."""

    flavour: ClassVar[str] = "torch"

    def __init__(self, net: nn.Module, config: dict[str, Any]) -> None:
        self.net, self.config = net.eval(), config
        self.algorithm, self.task = "cnn", Task.classification
        self.classes = list(config["classes"])
        self.device = next(net.parameters()).device
        self.mean = torch.tensor(config["mean"], device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(config["std"], device=self.device).view(1, -1, 1, 1)

    def normalise(self, x: Tensor) -> Tensor:
        x = (x.to(self.device).float() / 255 - self.mean) / self.std
        return x.contiguous(memory_format=CHANNELS_LAST)

    def predict_proba(self, X: Any) -> np.ndarray:
        c, h, w = self.config["shape"]
        images = as_nchw(X, (c, h, w))
        out: list[np.ndarray] = []
        with torch.no_grad():
            for i in range(0, len(images), PREDICT_BATCH):
                logits = self.net(self.normalise(images[i : i + PREDICT_BATCH]))
                out.append(torch.softmax(logits, 1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.config["classes"])))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(np.asarray(self.config["classes"])[self.predict_proba(X).argmax(1)])

    def save(self, directory: Path) -> None:
        save_net(directory, self.net, self.config)


class CNN(Algorithm):
    """Image classifier: a small conv net with augmentation and a one-cycle schedule."""

    name: ClassVar[str] = "cnn"
    data_parallel: ClassVar[bool] = True
    family: ClassVar[str] = "neural network"
    tasks: ClassVar[frozenset[Task]] = frozenset({Task.classification})
    kinds: ClassVar[frozenset[InputKind]] = frozenset({InputKind.image})
    summary: ClassVar[str] = "Compact conv net (3 conv blocks) with augmentation; images"
    params: ClassVar[Mapping[str, Param]] = {
        "epochs": Param("int", 12, 1, 200, help="passes over the training images"),
        "lr": Param("float", 4e-3, 1e-4, 1e-1, log=True, help="peak AdamW learning rate"),
        "batch_size": Param("choice", 64, choices=(32, 64, 128, 256), help="images per step"),
        "channels": Param("int", 32, 8, 128, log=True, help="width of the first conv block"),
        "dropout": Param("float", 0.25, 0.0, 0.6, help="dropout before the linear head"),
        "augment": Param("bool", True, help="random rotation, scale and shift while training"),
    }

    def fit(
        self,
        data: TrainData,
        params: Mapping[str, ParamValue],
        callbacks: Callbacks,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> CNNModel:
        p = self.resolve(params)
        dev = pick_device(device)
        seed_everything(seed)
        images = as_nchw(data.X_train)
        if min(images.shape[2:]) < MIN_SIDE:
            raise InvalidRequest(
                f"images are {images.shape[2]}x{images.shape[3]} pixels; the CNN needs at least "
                f"{MIN_SIDE}x{MIN_SIDE}",
                fix="upscale the images, or use a tabular algorithm on the pixels",
            )
        classes = (
            list(data.classes) if data.classes else sorted(set(np.asarray(data.y_train).tolist()))
        )
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[v] for v in np.asarray(data.y_train).tolist()])
        mean, std = channel_stats(images)
        config: dict[str, Any] = {
            "format": 1,
            "algorithm": self.name,
            "channels": p["channels"],
            "dropout": p["dropout"],
            "in_channels": images.shape[1],
            "shape": list(images.shape[1:]),
            "n_classes": len(classes),
            "classes": classes,
            "mean": mean,
            "std": std,
        }
        # Module.to takes memory_format at runtime; torch's stubs leave it out.
        net = build(config).to(dev, memory_format=CHANNELS_LAST)  # type: ignore[call-overload]
        model = CNNModel(net, config)
        batch = int(p["batch_size"])
        steps = int(p["epochs"]) * math.ceil(len(images) / batch)
        optimizer = torch.optim.AdamW(net.parameters(), lr=float(p["lr"]), weight_decay=5e-4)

        def batches(gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
            order = torch.randperm(len(images), generator=gen)
            for idx in batch_rows(order, batch):
                x = images[idx].to(dev).float() / 255
                if p["augment"]:
                    x = augment(x, gen)
                x = ((x - model.mean) / model.std).contiguous(memory_format=CHANNELS_LAST)
                yield x, labels[idx].to(dev)

        def loss_of(b: tuple[Tensor, Tensor]) -> Tensor:
            return F.cross_entropy(net(b[0]), b[1], label_smoothing=SMOOTHING)

        evaluate = None
        if data.X_val is not None and len(data.X_val):
            val_x = as_nchw(data.X_val, tuple(config["shape"]))
            val_y = torch.tensor([index[v] for v in np.asarray(data.y_val).tolist()])

            def evaluate() -> dict[str, float]:
                logits = torch.cat(
                    [
                        net(model.normalise(val_x[i : i + PREDICT_BATCH])).cpu()
                        for i in range(0, len(val_x), PREDICT_BATCH)
                    ]
                )
                return {
                    "val_loss": float(F.cross_entropy(logits, val_y)),
                    "val_accuracy": float((logits.argmax(1) == val_y).float().mean()),
                }

        train(
            net,
            optimizer,
            epochs=int(p["epochs"]),
            batches=batches,
            loss_of=loss_of,
            # 15% warmup, then cosine to ~0 (one-cycle); without the warmup MNIST lost 0.15%.
            lr_at=cosine_lr(float(p["lr"]), steps, warmup=0.15),
            evaluate=evaluate,
            callbacks=callbacks,
            seed=seed,
            tag={"algorithm": self.name, "params": p},
        )
        return CNNModel(net.eval(), config)

    @classmethod
    def load(cls, directory: Path) -> CNNModel:
        net, config, _ = load_net(directory, build)
        net = net.to(memory_format=CHANNELS_LAST)  # type: ignore[call-overload]
        return CNNModel(net, config)
