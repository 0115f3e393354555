"""What the control plane holds while it runs, and the FastAPI dependencies that reach it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lepton.settings import Settings
from lepton.store.blobs import BlobStore

if TYPE_CHECKING:
    from lepton.jobs.scheduler import Scheduler

__all__ = ["ServerState", "db_session", "get_state"]


@dataclass
class ServerState:
    """Stores and settings of one running control plane."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    started_at: float = field(default_factory=time.monotonic)
    content_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while storing bytes and inserting the row that refers to them, and while erasing
    unreferenced content (see ``lepton.store.content``)."""
    scheduler: Scheduler | None = None
    """The job scheduler, once the app's lifespan started it."""

    def work_dir(self) -> Path:
        """Private (0700) scratch space under LEPTON_HOME for request-time files."""
        path = self.settings.home / "work"
        path.mkdir(mode=0o700, exist_ok=True)
        return path


def get_state(request: Request) -> ServerState:
    """The state the app's lifespan opened."""
    state: ServerState = request.app.state.lepton
    return state


def db_session(request: Request) -> Iterator[Session]:
    """A session per request; the route commits what it wants kept."""
    with get_state(request).sessions() as session:
        yield session
