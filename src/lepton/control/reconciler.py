"""The loop every reconciler of the control plane runs: a pass every ``interval_s``, or at once
when woken, each pass on a worker thread so the event loop never waits on the store.

Every reconciler gets the one context (stores, settings) and one clock, injected: tests drive
passes with a fake clock and never sleep. Services wake a reconciler by name through the
context (``ctx.wake("jobs")``), the one way to reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

from lepton.control.context import Clock, Context

__all__ = ["Reconciler"]


class Reconciler(ABC):
    """Subclasses converge one table with the world in :meth:`reconcile_once`."""

    name: str
    """What services wake it by (``jobs``, ``deployments``)."""

    def __init__(
        self,
        ctx: Context,
        *,
        interval_s: float,
        log: logging.Logger,
        now: Clock | None = None,
    ) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self.log = log
        self.now: Clock = now or ctx.clock
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @abstractmethod
    def reconcile_once(self) -> None:
        """One pass; an exception is logged and the next pass tries again."""

    def next_interval(self) -> float:
        """Seconds until the next pass unless woken: ``interval_s``, or less while something
        is about to change (a subclass says)."""
        return self.interval_s

    def wake(self) -> None:
        """Run a pass now (something changed); safe from any thread."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Reconcile until cancelled: every ``interval_s``, or at once when woken."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.ctx.on_wake(self.name, self.wake)
        while True:
            try:
                await asyncio.to_thread(self.reconcile_once)
            except Exception:  # one bad pass (DB locked, fork refused) must not end the loop
                self.log.exception("%s pass failed; trying again", type(self).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.next_interval())
            self._wake.clear()
