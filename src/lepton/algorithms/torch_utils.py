"""What the PyTorch nets share: device and threads, seeding, the epoch loop, and checkpoints.

The loop (:func:`train`) reports each epoch through :class:`~lepton.algorithms.base.Callbacks`,
checkpoints at the end of every epoch, resumes from ``callbacks.resume_state``, and stops when
``callbacks.should_stop()`` says so. Checkpoints and saved models are safetensors (tensors) plus
JSON (everything else), so loading either never unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_bytes
from torch import Tensor, nn

from lepton.algorithms import parallel
from lepton.algorithms.base import Callbacks
from lepton.errors import InvalidRequest

__all__ = [
    "SMALL_OPS_THREADS",
    "LoopState",
    "batch_rows",
    "cosine_lr",
    "load_net",
    "pick_device",
    "save_net",
    "seed_everything",
    "to_json",
    "train",
]

WEIGHTS, CONFIG = "weights.safetensors", "config.json"
# 50: at ~20-200 ms a batch on 2 cores, a cancelled job notices within seconds, not an epoch.
STOP_CHECK_EVERY = 50
# 1 thread for nets made of small matmuls (MLPs, RNNs): measured on the shared 2-core box, an
# MLP step (128 units, batch 128) costs 1.2 ms of CPU on one thread and 4.8 ms on two, an LSTM
# step over 104 time steps 16 ms against 480 ms; waking a second thread costs more than it saves.
SMALL_OPS_THREADS = 1


def pick_device(requested: str, threads: int | None = None) -> torch.device:
    """``cuda`` when asked for and present, else the CPU with ``threads`` intra-op threads
    (default: one per usable core but one, at most 8)."""
    if requested.startswith("cuda") and torch.cuda.is_available():
        return torch.device(requested)
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        # What the executor gave this process: a Ray job's reserved cores, or a data-parallel
        # worker's share of the machine.
        threads = max(1, int(os.environ["OMP_NUM_THREADS"]))
    if threads is None:
        # One core left to the rest of the machine: torch's OpenMP threads spin-wait, and a team
        # that spans every core collapses when anything else runs. On the 2-core box, 3 CNN
        # epochs on 8,000 digits took 8 s on 2 threads idle but 66-72 s beside other jobs;
        # 15 s on 1 thread either way. 8: small convs stop scaling past ~8 threads.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, min(8, (cores or 1) - 1))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.device("cpu")


def batch_rows(order: Tensor, batch: int) -> Iterator[Tensor]:
    """The row indices of each batch of an epoch's ``order`` this worker trains on: the whole
    batch when it trains alone, its share of it among data-parallel workers
    (:func:`lepton.algorithms.parallel.share`)."""
    for start in range(0, len(order), batch):
        rows = parallel.share(order[start : start + batch])
        if rows is not None:
            yield rows


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_lr(peak: float, total: int, warmup: float = 0.0) -> Callable[[int], float]:
    """Linear warmup over ``warmup`` of the ``total`` steps, then cosine decay to ~0 (one-cycle).

    A plain function of the step rather than a torch scheduler, so resuming needs only the
    step count (nanoGPT's ``get_lr``).
    """
    warm = max(1, int(total * warmup)) if warmup > 0 else 0

    def lr_at(step: int) -> float:
        if step < warm:
            return peak * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return peak * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    return lr_at


@dataclass
class LoopState:
    """Where training stands; all of it goes into a checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, Tensor] | None = None
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batches: Callable[[torch.Generator], Iterable[Any]],
    loss_of: Callable[[Any], Tensor],
    lr_at: Callable[[int], float],
    evaluate: Callable[[], dict[str, float]] | None,
    callbacks: Callbacks,
    seed: int,
    tag: Mapping[str, Any],
    monitor: str | None = "val_loss",
    patience: int = 0,
) -> LoopState:
    """Run up to ``epochs`` epochs; return the state (the net holds the best weights seen).

    ``batches(gen)`` yields one epoch of batches, drawing all its randomness (shuffling,
    augmentation) from ``gen`` so a resumed run replays exactly. ``evaluate`` returns the
    validation metrics; the epoch with the lowest ``monitor`` wins (None: the last epoch does),
    and ``patience`` > 0 stops after that many epochs without improvement. ``tag`` (algorithm
    and params) is stored in each checkpoint and must match on resume.
    """
    gen = torch.Generator().manual_seed(seed)
    state = LoopState()
    if callbacks.resume_state is not None:
        state = restore(callbacks.resume_state, net, optimizer, gen, tag)
    # With several workers (lepton.algorithms.parallel), each trains on its share of every
    # batch and the gradients are averaged; rank 0 alone evaluates, reports and checkpoints.
    world = parallel.world()
    leader = world is None or world.leader
    parallel.start_together(net)
    while state.epoch < epochs and not state.stopped:
        net.train()
        total, count, rows = 0.0, 0, 0
        began = time.perf_counter()
        epoch_gen = gen
        if world is not None:
            # The epoch's order must be the same on every worker, while each draws augmentation
            # for its own rows only: the epoch gets a generator of its own, seeded by one draw
            # from the loop's (which so stays in step on every worker).
            epoch_seed = int(torch.randint(2**62, (1,), generator=gen))
            epoch_gen = torch.Generator().manual_seed(epoch_seed)
        for i, batch in enumerate(batches(epoch_gen)):
            if i % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1 and parallel.anyone(
                callbacks.should_stop()
            ):
                state.stopped = True  # keep what this epoch learnt; no checkpoint of half an epoch
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state.step)
            loss = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            parallel.average_gradients(net)
            optimizer.step()
            state.step += 1
            total, count = total + float(loss.detach()), count + 1
            rows += _rows(batch)
        if state.stopped:
            break
        state.epoch += 1
        if world is not None:
            parallel.sync_buffers(net)
            total, summed, rows_all = parallel.sum_all(total, count, rows)
            count, rows = int(summed), int(rows_all)
        seconds = time.perf_counter() - began
        metrics = {"loss": total / max(1, count)}
        if rows and seconds > 0:  # training throughput, every worker's rows together
            metrics["samples_per_s"] = rows / seconds
        if evaluate is not None and leader:
            net.eval()
            with torch.no_grad():
                metrics.update(evaluate())
        state.history.append(metrics)
        if monitor is not None and monitor in metrics:
            if metrics[monitor] < state.best:
                state.best, state.best_epoch = metrics[monitor], state.epoch
                state.best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if patience and state.epoch - state.best_epoch >= patience:
                state.stopped = True
        if leader:
            callbacks.log(state.epoch, **metrics)
            callbacks.checkpoint(checkpoint(state, net, optimizer, gen, tag))
        state.stopped = parallel.anyone(state.stopped or callbacks.should_stop())
    if state.best_weights is not None:
        net.load_state_dict(state.best_weights)
    return state


def _rows(batch: Any) -> int:
    """Rows in a batch: the length of its first tensor (a tuple's inputs), else 0."""
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    return len(first) if isinstance(first, Tensor) and first.dim() else 0


def checkpoint(
    state: LoopState,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    tag: Mapping[str, Any],
) -> bytes:
    """The loop's state as safetensors bytes; the non-tensor parts ride in its JSON metadata."""
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for k, v in (state.best_weights or {}).items():
        tensors[f"best.{k}"] = v.cpu().contiguous()
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"opt.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.loop"] = gen.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    meta = {
        "tag": dict(tag),
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best if math.isfinite(state.best) else None,
        "best_epoch": state.best_epoch,
        "early_stopped": state.stopped,  # set by patience; a resumed run then trains no more
        "history": state.history,
        "param_groups": opt["param_groups"],
        "opt_scalars": scalars,
    }
    return save_bytes(tensors, metadata={"lepton": json.dumps(meta)})


def restore(
    blob: bytes,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    tag: Mapping[str, Any],
) -> LoopState:
    """Load a :func:`checkpoint` into the net, optimizer and generator; return the loop state."""
    tensors = load_bytes(blob)
    meta = json.loads(_metadata(blob)["lepton"])
    if meta["tag"] != json.loads(json.dumps(dict(tag))):
        raise InvalidRequest(
            f"the checkpoint to resume was made by {meta['tag']}, not {dict(tag)}",
            fix="resume a job with the algorithm and parameters it started with",
        )
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    slots: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = value
    for name, value in meta["opt_scalars"].items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.loop"])
    cuda = [
        tensors[f"rng.cuda.{i}"]
        for i in range(torch.cuda.device_count())
        if f"rng.cuda.{i}" in tensors
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    return LoopState(
        epoch=meta["epoch"],
        step=meta["step"],
        best=math.inf if meta["best"] is None else meta["best"],
        best_epoch=meta["best_epoch"],
        best_weights=best or None,
        stopped=meta["early_stopped"],
        history=meta["history"],
    )


def _metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob: an 8-byte length, then a JSON header."""
    size = int.from_bytes(blob[:8], "little")
    header: dict[str, Any] = json.loads(blob[8 : 8 + size])
    return dict(header.get("__metadata__", {}))


def to_json(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into plain Python, for ``config.json``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def save_net(
    directory: Path, net: nn.Module, config: Mapping[str, Any], extra: Mapping[str, Tensor] = {}
) -> None:
    """Write ``weights.safetensors`` (the net's state, plus ``extra`` tensors) and
    ``config.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra.items()})
    save_file(tensors, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps(to_json(dict(config)), indent=2) + "\n")


def load_net(
    directory: Path, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any], dict[str, Tensor]]:
    """Rebuild a net from ``config.json`` with ``build`` and load its weights; also return the
    config and the ``extra`` tensors."""
    directory = Path(directory)
    if not (directory / WEIGHTS).is_file() or not (directory / CONFIG).is_file():
        raise InvalidRequest(
            f"{directory} holds no saved net (need {WEIGHTS} and {CONFIG})",
            fix="load the directory that Model.save wrote",
        )
    config: dict[str, Any] = json.loads((directory / CONFIG).read_text())
    tensors = load_file(str(directory / WEIGHTS))
    net = build(config)
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    net.eval()
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return net, config, extra
