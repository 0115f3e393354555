"""Data-parallel training: what the built-in nets' loop does when a job runs on several workers.

A job with ``workers`` N > 1 runs N copies of its runner (the executor starts them, on one
machine or on several Ray nodes); :mod:`lepton.jobs.distributed` joins them into one
``torch.distributed`` process group, and this module is what the training loop
(:func:`lepton.algorithms.torch_utils.train`) asks of that group. It is DistributedDataParallel's
contract, kept by hand because the nets are called through closures rather than a wrapper
module:

- every worker starts from rank 0's weights (:func:`start_together`);
- each batch is shared out: worker ``r`` trains on rows ``r, r + N, r + 2N, ...`` of it
  (:func:`share`), so the N workers together see each batch once, and one step of N workers
  is the step one worker takes on the whole batch. The learning rate, the schedule and the
  number of steps do not change with N: the worker count changes the time, not the result;
- after the backward pass the gradients are averaged over the workers (one all-reduce of all
  of them, :func:`average_gradients`), so every worker takes the same optimizer step and the
  weights stay identical without being sent again;
- buffers (batch-norm statistics) are rank 0's, sent to the others once per epoch;
- decisions are collective: a worker that must stop (cancelled, out of time) stops them all
  (:func:`anyone`).

One process per worker, so this state is the process's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "COLLECTIVE_TIMEOUT",
    "World",
    "anyone",
    "average_gradients",
    "join",
    "leave",
    "lost_worker",
    "share",
    "start_together",
    "sum_all",
    "sync_buffers",
    "world",
]

# How long a collective waits for a worker that stopped answering before it fails (and the
# attempt with it). A worker that died is noticed at once (its connections close); this bounds
# one that hangs.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """This process's place among the job's workers."""

    rank: int
    size: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where small collectives' tensors live: the GPU under NCCL, else the CPU (gloo)."""

    @property
    def leader(self) -> bool:
        """Rank 0: the worker that reports metrics and checkpoints and registers the model."""
        return self.rank == 0


_world: World | None = None


def world() -> World | None:
    """The workers this process trains with; None when it trains alone."""
    return _world


def join(store: Any, rank: int, size: int, *, backend: str = "gloo") -> World:
    """Join the process group that ``store`` (rank 0's TCPStore) brings together."""
    global _world
    dist.init_process_group(
        backend, store=store, rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT
    )
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
    _world = World(rank=rank, size=size, device=device or torch.device("cpu"))
    return _world


def leave() -> None:
    """Leave the process group (a no-op when there is none)."""
    global _world
    _world = None
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # a group whose peers are gone
            dist.destroy_process_group()


def lost_worker(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another worker stopped (died, was
    killed, lost its node) rather than a fault of this one."""
    if _world is None:
        return False
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("Connection closed by peer", "Connection reset", "gloo", "NCCL")
    )


def share(indices: Tensor, *, world_: World | None = None) -> Tensor | None:
    """This worker's rows of one batch (``indices``): all of them alone, else every N-th from
    this worker's rank. None for a batch smaller than the worker count, which every worker
    then skips alike."""
    w = world_ or _world
    if w is None:
        return indices
    if len(indices) < w.size:
        return None
    return indices[w.rank :: w.size]


def start_together(net: nn.Module) -> None:
    """Give every worker rank 0's weights and buffers (after a resume, too)."""
    if _world is None:
        return
    for tensor in _tensors(net):
        dist.broadcast(tensor, src=0)


def average_gradients(net: nn.Module) -> None:
    """Average the gradients of every parameter over the workers: one all-reduce of one flat
    buffer (the nets are small; one call costs less than one per tensor)."""
    if _world is None or _world.size == 1:
        return
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _world.size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def sync_buffers(net: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every worker."""
    if _world is None:
        return
    for buffer in net.buffers():
        dist.broadcast(buffer, src=0)


def anyone(flag: bool) -> bool:
    """True on every worker when ``flag`` is True on any of them."""
    if _world is None:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_world.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_all(*values: float) -> list[float]:
    """Each of ``values`` summed over the workers."""
    if _world is None:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_world.device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def _tensors(net: nn.Module) -> Iterator[Tensor]:
    yield from (p.data for p in net.parameters())
    yield from net.buffers()
