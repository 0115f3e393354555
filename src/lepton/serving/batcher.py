"""The opportunistic batcher: requests queue while the model is busy; a free worker takes up to
``max_batch_size`` of them at once.

A lone request never waits for a window: the worker thread blocks on the queue and starts the
moment something arrives. Only when ``max_wait_time`` is set does it wait (from the *oldest*
request's arrival) for the batch to fill. Inference runs on dedicated worker threads, never on
the event loop, and each batch costs one handoff back to the loop (``call_soon_threadsafe``),
which resolves every caller's future in one go.

Time limits: ``timeout`` counts from the moment a worker takes the request for execution, and
``queue_timeout`` bounds the wait before that, separately (leptonai counted queue time against
the handler timeout, so a queued request could time out without ever running). Both are
enforced by one timer on the loop, not one per request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any, ClassVar

from lepton.errors import HandlerError, HandlerTimeout, LeptonError, Overloaded, ServiceUnavailable

__all__ = ["Batcher", "as_lepton_error"]

# The replica's answers live in the one exception tree (``lepton.errors``), so the SDK raises
# the class the replica raised: a full queue is ``Overloaded`` (503 + Retry-After), a call past
# its timeout ``HandlerTimeout`` (504), a failed batch ``HandlerError`` (500).

RETRY_AFTER_S = 1.0
"""The wait a full queue asks its callers for (``Retry-After``, whole seconds on the wire)."""


class _Item:
    __slots__ = ("arrived", "future", "payload", "started")

    def __init__(self, payload: Any, future: asyncio.Future[Any], arrived: float) -> None:
        self.payload = payload
        self.future = future
        self.arrived = arrived
        self.started = 0.0


_STOP: Any = object()

BatchFn = Callable[[list[Any]], Sequence[Any]]
"""Takes the payloads of a batch, returns one result per payload (an exception instance fails
only that payload's caller)."""


class Batcher:
    """Queues payloads for ``fn`` and runs it on ``workers`` threads, in batches.

    Args:
        fn: called on a worker thread with a list of payloads; returns a list as long.
        name: names the handler in error messages and metrics.
        max_batch_size: the most payloads one call gets (1: no batching).
        max_wait_time: seconds to wait for a batch to fill, from its oldest request (0: never).
        timeout: seconds a call may run once taken; its callers then get 504.
        queue_timeout: seconds a request may wait to be taken; it then gets 503.
        max_queue: requests waiting or running at once before new ones get 503.
        workers: threads running ``fn`` (1 keeps one model call at a time).
        on_batch: called on the worker with each batch's size (metrics).
    """

    tick_bounds: ClassVar[tuple[float, float]] = (0.005, 1.0)

    def __init__(
        self,
        fn: BatchFn,
        *,
        name: str,
        max_batch_size: int = 1,
        max_wait_time: float = 0.0,
        timeout: float = 600.0,
        queue_timeout: float | None = None,
        max_queue: int = 1024,
        workers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.fn = fn
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_time = max(0.0, max_wait_time)
        self.timeout = timeout
        self.queue_timeout = timeout if queue_timeout is None else queue_timeout
        self.max_queue = max_queue
        self.workers = workers
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Submitted and not yet answered, in arrival order (a dict is an ordered set).
        self._pending: dict[_Item, None] = {}
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def depth(self) -> int:
        """Requests waiting or running."""
        return len(self._pending)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the worker threads and the deadline timer on ``loop``."""
        if self._threads:
            return
        self._loop = loop
        for i in range(self.workers):
            thread = threading.Thread(
                target=self._work, name=f"lepton-{self.name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._schedule_tick()

    def stop(self) -> None:
        """Let the workers finish what they hold and exit; fail anything still queued."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._threads:
            return
        self._queue.put(_STOP)
        for thread in self._threads:
            # Requests in flight were already drained; a call still stuck past that is not
            # waited for long (the threads are daemons and end with the process).
            thread.join(timeout=min(self.timeout, 5.0))
        self._threads = []
        for item in list(self._pending):
            self._fail(item, ServiceUnavailable(f"{self.name} stopped", fix="retry"))

    async def submit(self, payload: Any) -> Any:
        """Queue ``payload`` and wait for its own result (or its own error)."""
        loop = self._loop
        if loop is None:
            raise ServiceUnavailable(f"{self.name} is not started", fix="retry when ready")
        if len(self._pending) >= self.max_queue:
            raise Overloaded(
                f"{self.name} has {len(self._pending)} requests queued, its limit",
                fix="retry after a moment, or add replicas",
                retry_after=RETRY_AFTER_S,
            )
        item = _Item(payload, loop.create_future(), monotonic())
        self._pending[item] = None
        self._queue.put(item)
        try:
            return await item.future
        finally:
            self._pending.pop(item, None)

    # -- worker thread -------------------------------------------------------------------

    def _take(self) -> list[_Item] | None:
        """Block for the first item, then take what is queued up to the batch size."""
        get = self._queue.get
        first = get()
        if first is _STOP:
            return None
        batch = [first]
        limit = self.max_batch_size
        if limit > 1:
            try:
                while len(batch) < limit:
                    batch.append(get(block=False))
            except queue.Empty:
                pass
            if self.max_wait_time > 0:
                deadline = first.arrived + self.max_wait_time
                while len(batch) < limit:
                    left = deadline - monotonic()
                    if left <= 0:
                        break
                    try:
                        batch.append(get(timeout=left))
                    except queue.Empty:
                        break
        if any(item is _STOP for item in batch):
            batch = [item for item in batch if item is not _STOP]
            self._queue.put(_STOP)
            if not batch:
                return None
        return batch

    def _work(self) -> None:
        loop = self._loop
        assert loop is not None
        while (batch := self._take()) is not None:
            now = monotonic()
            live: list[_Item] = []
            late: list[_Item] = []
            for item in batch:
                if item.future.done():  # timed out or the caller went away
                    continue
                if now - item.arrived > self.queue_timeout:
                    late.append(item)
                else:
                    item.started = now
                    live.append(item)
            results: Sequence[Any] | None = None
            error: BaseException | None = None
            if live:
                if self.on_batch is not None:
                    self.on_batch(len(live))
                try:
                    results = self.fn([item.payload for item in live])
                    if len(results) != len(live):
                        error = HandlerError(
                            f"handler {self.name} returned {len(results)} results for a batch "
                            f"of {len(live)}",
                            fix="a batched handler must return one result per input, in order",
                        )
                except Exception as exc:
                    error = exc
            loop.call_soon_threadsafe(self._resolve, live, results, error, late)

    # -- event loop ----------------------------------------------------------------------

    def _resolve(
        self,
        live: list[_Item],
        results: Sequence[Any] | None,
        error: BaseException | None,
        late: list[_Item],
    ) -> None:
        if error is not None or results is None:
            failure = as_lepton_error(error, self.name) if error is not None else None
            for item in live:
                if not item.future.done() and failure is not None:
                    item.future.set_exception(failure)
        else:
            for item, result in zip(live, results, strict=True):
                future = item.future
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(as_lepton_error(result, self.name))
                else:
                    future.set_result(result)
        for item in late:
            self._fail(item, self._queue_expired())

    def _queue_expired(self) -> LeptonError:
        return ServiceUnavailable(
            f"{self.name}: the request waited over {self.queue_timeout:g} s in the queue",
            fix="retry after a moment, or add replicas",
        )

    def _fail(self, item: _Item, error: LeptonError) -> None:
        if not item.future.done():
            item.future.set_exception(error)
        self._pending.pop(item, None)

    def _schedule_tick(self) -> None:
        if self._loop is None:
            return
        low, high = self.tick_bounds
        every = min(high, max(low, min(self.timeout, self.queue_timeout) / 4))
        self._timer = self._loop.call_later(every, self._tick)

    def _tick(self) -> None:
        """Fail requests past a deadline. Requests are in arrival order, so the scan stops at
        the first one too young to have expired either way."""
        now = monotonic()
        horizon = now - min(self.timeout, self.queue_timeout)
        expired: list[tuple[_Item, LeptonError]] = []
        for item in self._pending:
            if item.arrived > horizon:
                break
            if item.started:
                if now - item.started > self.timeout:
                    expired.append((item, self._timed_out()))
            elif now - item.arrived > self.queue_timeout:
                expired.append((item, self._queue_expired()))
        for item, error in expired:
            self._fail(item, error)
        self._schedule_tick()

    def _timed_out(self) -> LeptonError:
        return HandlerTimeout(
            f"handler {self.name} ran over its {self.timeout:g} s timeout",
            fix="raise the handler's timeout, or send smaller inputs",
        )


def as_lepton_error(error: BaseException, name: str) -> BaseException:
    """Errors that carry an HTTP meaning pass through; anything else names the handler."""
    if isinstance(error, LeptonError) or _is_http_exception(error):
        return error
    return HandlerError(
        f"handler {name} failed on this request's batch: {type(error).__name__}: {error}",
        fix="see the replica's log; the other batches were not affected",
    )


def _is_http_exception(error: BaseException) -> bool:
    from starlette.exceptions import HTTPException

    return isinstance(error, HTTPException)
