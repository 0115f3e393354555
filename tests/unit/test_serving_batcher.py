"""The batcher: each caller gets its own answer, failures stay in their batch, limits hold.

A handler that blocks on an event keeps the worker busy, so the requests sent meanwhile
queue up and are taken together when it frees: no sleeps, no timing assumptions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from lepton.errors import (
    HandlerError,
    HandlerTimeout,
    InvalidRequest,
    Overloaded,
    ServiceUnavailable,
)
from lepton.serving.batcher import Batcher


class Gate:
    """A handler whose first call blocks until released, recording every batch it gets."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]] = lambda xs: [x * 10 for x in xs]):
        self.fn = fn
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[Any]] = []

    def __call__(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(list(payloads))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        return self.fn(payloads)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def started(batcher: Batcher) -> Batcher:
    batcher.start(asyncio.get_running_loop())
    return batcher


async def wait_entered(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.entered.wait, 30)


def behind_a_busy_worker(
    gate: Gate, first: Any, queued: list[Any], after: Any = None, **options: Any
) -> list[Any]:
    """Submit ``first`` (its call blocks the worker), then ``queued`` (they wait together),
    release the worker, then submit ``after`` alone. Returns every answer or error, in order."""

    async def scenario() -> list[Any]:
        b = await started(Batcher(gate, name=options.pop("name", "t"), **options))
        head = asyncio.ensure_future(b.submit(first))
        await wait_entered(gate)
        rest = [asyncio.ensure_future(b.submit(x)) for x in queued]
        await asyncio.sleep(0)  # let every submit reach the queue
        gate.release.set()
        out = list(await asyncio.gather(head, *rest, return_exceptions=True))
        if after is not None:
            out.append(await b.submit(after))
        b.stop()
        return out

    answers: list[Any] = run(scenario())
    return answers


def test_each_caller_gets_its_own_answer_from_one_batch() -> None:
    gate = Gate()
    sizes: list[int] = []

    answers = behind_a_busy_worker(
        gate, -1, list(range(20)), max_batch_size=64, on_batch=sizes.append
    )

    assert answers == [-10, *[i * 10 for i in range(20)]]
    assert sizes == [1, 20]  # the lone first request did not wait for company
    assert gate.batches[1] == list(range(20))


def test_batch_size_is_capped_and_the_rest_follow() -> None:
    gate = Gate()

    answers = behind_a_busy_worker(gate, 0, list(range(1, 10)), max_batch_size=4)

    assert answers == [i * 10 for i in range(10)]
    assert [len(batch) for batch in gate.batches] == [1, 4, 4, 1]


def test_an_exception_fails_only_its_own_batch() -> None:
    def fn(xs: list[Any]) -> list[Any]:
        if "bad" in xs:
            raise ValueError("cannot score 'bad'")
        return [f"ok:{x}" for x in xs]

    first, *failed, later = behind_a_busy_worker(
        Gate(fn), "a", ["b", "bad", "c"], after="d", name="scorer", max_batch_size=8
    )

    assert first == "ok:a"
    assert all(isinstance(e, HandlerError) for e in failed)
    assert "scorer" in str(failed[0]) and "ValueError: cannot score 'bad'" in str(failed[0])
    assert later == "ok:d"  # the next batch is not affected


def test_a_result_that_is_an_error_fails_only_that_caller() -> None:
    def fn(xs: list[Any]) -> list[Any]:
        return [InvalidRequest(f"bad {x}", fix="") if x < 0 else x for x in xs]

    out = behind_a_busy_worker(Gate(fn), 0, [1, -2, 3], max_batch_size=8)

    assert out[0] == 0 and out[1] == 1 and out[3] == 3
    assert isinstance(out[2], InvalidRequest) and out[2].message == "bad -2"


def test_a_wrong_number_of_results_is_a_clear_error() -> None:
    out = behind_a_busy_worker(Gate(lambda xs: xs[:1]), 1, [2, 3], max_batch_size=8)

    assert out[0] == 1
    assert all(isinstance(e, HandlerError) for e in out[1:])
    assert "returned 1 results for a batch of 2" in str(out[1])


def test_timeout_counts_from_the_start_of_execution() -> None:
    gate = Gate()

    async def scenario() -> Any:
        b = await started(Batcher(gate, name="slow", timeout=0.05, queue_timeout=30))
        try:
            with pytest.raises(HandlerTimeout) as caught:
                await b.submit(1)
            return caught.value
        finally:
            gate.release.set()
            b.stop()

    error = run(scenario())
    assert error.status_code == 504
    assert "slow" in error.message and "0.05 s timeout" in error.message


def test_a_request_that_waits_past_its_queue_budget_gets_503() -> None:
    gate = Gate()

    async def scenario() -> Any:
        b = await started(Batcher(gate, name="busy", timeout=30, queue_timeout=0.05))
        first = asyncio.ensure_future(b.submit(1))
        await wait_entered(gate)
        try:
            with pytest.raises(ServiceUnavailable) as caught:
                await b.submit(2)
            return caught.value
        finally:
            gate.release.set()
            assert await first == 10  # the one already running was not cut short
            b.stop()

    error = run(scenario())
    assert error.status_code == 503 and "waited over 0.05 s in the queue" in error.message


def test_a_full_queue_refuses_at_once() -> None:
    gate = Gate()

    async def scenario() -> Any:
        b = await started(Batcher(gate, name="t", max_queue=2))
        first = asyncio.ensure_future(b.submit(1))
        await wait_entered(gate)
        second = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)
        try:
            with pytest.raises(Overloaded) as caught:
                await b.submit(3)
            assert b.depth == 2
            return caught.value
        finally:
            gate.release.set()
            assert await asyncio.gather(first, second) == [10, 20]
            b.stop()

    error = run(scenario())
    assert error.status_code == 503 and "2 requests queued" in error.message


def test_max_wait_time_lets_a_batch_fill() -> None:
    seen: list[int] = []

    async def scenario() -> list[Any]:
        # A generous window: the five submits below land long before it closes.
        b = await started(
            Batcher(
                lambda xs: xs, name="t", max_batch_size=5, max_wait_time=5.0, on_batch=seen.append
            )
        )
        out = await asyncio.gather(*(b.submit(i) for i in range(5)))
        b.stop()
        return out

    assert run(scenario()) == [0, 1, 2, 3, 4]
    assert seen == [5]  # the full batch released the window early
