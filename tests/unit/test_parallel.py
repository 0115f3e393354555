"""Data-parallel training in the built-in loop: two real processes in one gloo group on
loopback take exactly the steps one process takes on the whole batches."""

from __future__ import annotations

import multiprocessing as mp
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from lepton.algorithms import parallel
from lepton.algorithms.base import NullCallbacks
from lepton.algorithms.torch_utils import batch_rows, train

ROWS, BATCH, EPOCHS = 96, 16, 3


def _data() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(ROWS, 5, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.1 * torch.randn(ROWS, 1)
    return x, y


def _fit() -> tuple[dict[str, Tensor], list[tuple[int, dict[str, float]]]]:
    """Train a linear model; the batches come in a fixed order, so a 1-process and a
    2-process run see the same rows in the same steps."""
    torch.manual_seed(0)
    net = nn.Linear(5, 1)
    x, y = _data()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def batches(gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        for rows in batch_rows(torch.arange(ROWS), BATCH):
            yield x[rows], y[rows]

    callbacks = NullCallbacks()
    train(
        net,
        optimizer,
        epochs=EPOCHS,
        batches=batches,
        loss_of=lambda b: nn.functional.mse_loss(net(b[0]), b[1]),
        lr_at=lambda step: 0.05,
        evaluate=None,
        callbacks=callbacks,
        seed=0,
        tag={"test": 1},
        monitor=None,
    )
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, callbacks.logged


def _worker(rank: int, ports: Any, out: Any) -> None:
    from torch.distributed import TCPStore  # type: ignore[attr-defined]

    timeout = timedelta(seconds=60)
    if rank == 0:  # a store on loopback only: rank 0 binds the socket it listens on
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        store = TCPStore(
            "127.0.0.1",
            port,
            2,
            True,
            timeout=timeout,
            master_listen_fd=listener.detach(),
            wait_for_workers=False,
        )
        ports.put(port)
    else:
        store = TCPStore("127.0.0.1", ports.get(timeout=60), 2, False, timeout=timeout)
    parallel.join(store, rank, 2)
    try:
        weights, logged = _fit()
        world = parallel.world()
        assert world is not None
        # Plain values: a tensor would travel as shared memory that ends with this process.
        out.put((rank, {k: v.tolist() for k, v in weights.items()}, logged, world.size))
    finally:
        parallel.leave()


@pytest.mark.timeout(120)
def test_two_workers_take_the_steps_one_worker_takes() -> None:
    alone, alone_logged = _fit()
    ctx = mp.get_context("spawn")
    out, ports = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, ports, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((out.get(timeout=100) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    (_, w0, logged0, size0), (_, w1, logged1, size1) = results
    assert size0 == size1 == 2
    w0 = {k: torch.tensor(v) for k, v in w0.items()}
    w1 = {k: torch.tensor(v) for k, v in w1.items()}
    for name, value in alone.items():
        # Each worker took half of every batch; the averaged gradients are the whole batch's.
        torch.testing.assert_close(w0[name], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(w1[name], w0[name], rtol=0, atol=0)  # identical copies
    # Rank 0 reports, with the loss averaged over both workers; the other reports nothing.
    assert [step for step, _ in logged0] == [1, 2, 3] and logged1 == []
    for (_, mine), (_, theirs) in zip(logged0, alone_logged, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)


def test_a_batch_is_shared_out_by_rank_and_a_too_small_one_skipped() -> None:
    rows = torch.arange(10)
    two = [parallel.World(rank=r, size=2) for r in range(2)]
    assert [parallel.share(rows, world_=w).tolist() for w in two] == [  # type: ignore[union-attr]
        [0, 2, 4, 6, 8],
        [1, 3, 5, 7, 9],
    ]
    assert parallel.share(torch.arange(1), world_=two[1]) is None
    assert parallel.share(rows) is rows  # alone: the whole batch
