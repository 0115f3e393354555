"""What every service and reconciler of the control plane works with: settings, the metadata
store's sessions, the blob store, the deployments' traffic (in memory), one clock, and a way to
wake the reconcilers."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lepton.control.load import GatewayLoad
from lepton.control.spool import clean as clean_spool
from lepton.control.spool import spool_folder
from lepton.control.traffic import TrafficStore
from lepton.settings import Settings
from lepton.store.blobs import BlobStore
from lepton.store.db import make_engine, make_sessionmaker, migrate
from lepton.store.models import utcnow

__all__ = ["Clock", "Context", "open_context"]

Clock = Callable[[], datetime]
"""The current time, timezone-aware UTC. Injected so reconcilers can be tested without sleeping."""


@dataclass
class Context:
    """The stores and settings of one running control plane."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    clock: Clock = utcnow
    started_at: float = field(default_factory=time.monotonic)
    traffic: TrafficStore = field(default_factory=TrafficStore)
    """Each deployment's traffic: the supervisor records its replicas' reports, the
    deployment service reads them."""
    gateway_load: GatewayLoad = field(default_factory=GatewayLoad)
    """Each deployment's load as the gateway reports it: the autoscaler and canary judge read it."""
    gateway_url: str | None = None
    """Where the gateway this control plane started listens, once it said so."""
    _wakers: dict[str, Callable[[], None]] = field(default_factory=dict)

    def wake(self, name: str) -> None:
        """Ask reconciler ``name`` (``jobs``, ``deployments``) for a pass now, if it runs here."""
        waker = self._wakers.get(name)
        if waker is not None:
            waker()

    def on_wake(self, name: str, waker: Callable[[], None]) -> None:
        """Register how reconciler ``name`` is woken."""
        self._wakers[name] = waker

    @property
    def spool_root(self) -> Path:
        """``LEPTON_HOME/work``: where requests spool their files."""
        return self.settings.home / "work"

    def spool(self) -> AbstractContextManager[Path]:
        """A private (0700) scratch folder for one request's files, removed when it ends, or at
        the next start when the process was killed first (:mod:`lepton.control.spool`)."""
        return spool_folder(self.spool_root)


def open_context(settings: Settings) -> Context:
    """Open the stores: apply migrations, drop what crashed writers left (temp objects, spool
    folders), and return them."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds the key and tokens
    engine = make_engine(settings.database)
    migrate(engine)
    blobs = BlobStore.from_settings(settings)
    blobs.clean_temp()
    ctx = Context(settings=settings, engine=engine, sessions=make_sessionmaker(engine), blobs=blobs)
    clean_spool(ctx.spool_root)
    return ctx
