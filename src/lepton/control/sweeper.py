"""The content sweeper: a reconciler that erases stored objects nothing refers to.

Deleting an owner erases its unused bytes at once; this pass catches what that could not
(an erase that met a lock three times, a control plane killed between the commit and the
erase, a writer that crashed after moving bytes into place). It runs at start and then every
``interval_s`` (10 minutes): the scan reads every object row and lists the blob store.
"""

from __future__ import annotations

import logging

from lepton.control.context import Clock
from lepton.control.plane import Control
from lepton.control.reconciler import Reconciler

__all__ = ["Sweeper"]

log = logging.getLogger("lepton.content")


class Sweeper(Reconciler):
    name = "content"

    def __init__(
        self, control: Control, *, interval_s: float = 600.0, now: Clock | None = None
    ) -> None:
        super().__init__(control.ctx, interval_s=interval_s, log=log, now=now)
        self.content = control.content

    def reconcile_once(self) -> None:
        self.content.sweep()
