"""The replica's traffic report: its cumulative counters, one line on stdout every few seconds.

A deployment's replicas share one port, so a scrape of ``/metrics`` through it reaches an
arbitrary replica each time: no use for rates. Instead each replica writes its own counters to
its output, the channel the supervisor already reads (and that is shipped back when replicas
run on other nodes): every ``--traffic-interval-s`` (5 s), when anything changed since the last
report, one line

    lepton-traffic {"v":1,"seq":3,"le":[0.0001,...],"routes":{"predict":{"status":{"200":41},
        "errors":{},"counts":[0,3,38,...],"sum":0.061,"depth":0}}}

(on one line), and a last one once the drain has answered everything. Counts are cumulative
since the process started; ``seq`` counts reports, so the supervisor tells a restarted process
from a running one. ``counts`` are per latency bucket (upper bounds ``le``, then +Inf), not
cumulative. Probes and scrapes (``/healthz``, ``/readyz``, ``/v2/health/*``, ``/metrics``) are
not traffic and are left out. The supervisor takes these lines out of the deployment log
(``lepton.control.traffic``).

The line goes out in one ``os.write``: a print of the photon's own code, from any thread, cannot
land inside it (the output is a file opened with ``O_APPEND``: each write lands whole at its end).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection
from typing import Any

import orjson

from lepton.serving.metrics import LATENCY_BUCKETS, Metrics

__all__ = ["PREFIX", "TrafficReporter"]

PREFIX = b"lepton-traffic "
"""What starts a report line."""

VERSION = 1


class TrafficReporter:
    """Writes ``metrics``' counters to ``fd`` as one report line, when they changed.

    Args:
        metrics: the replica's counters.
        skip: route names that are not traffic (probes, the metrics scrape).
        fd: where the line goes (stdout, which the supervisor reads).
    """

    def __init__(self, metrics: Metrics, *, skip: Collection[str] = (), fd: int = 1) -> None:
        self._metrics = metrics
        self._skip = frozenset(skip)
        self._fd = fd
        self._seq = 0
        self._last: dict[str, Any] = {}

    def line(self) -> bytes | None:
        """The next report, or None when nothing changed since the last (event loop only, or
        once the loop has ended: the counters are the loop's)."""
        routes = self._metrics.traffic(self._skip)
        if routes == self._last:
            return None
        self._last = routes
        self._seq += 1
        report = {"v": VERSION, "seq": self._seq, "le": LATENCY_BUCKETS, "routes": routes}
        return PREFIX + orjson.dumps(report) + b"\n"

    def report(self) -> bool:
        """Write the next report, if there is one; True when a line was written."""
        line = self.line()
        if line is None:
            return False
        try:
            while line:  # a regular file takes it whole; the loop only guards a short write
                line = line[os.write(self._fd, line) :]
        except OSError:  # stdout is gone: the replica serves on, unreported
            return False
        return True

    async def run(self, interval_s: float) -> None:
        """Report every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.report()
