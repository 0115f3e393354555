"""What the control plane holds while it runs, and the FastAPI dependencies that reach it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lepton.settings import Settings
from lepton.store.blobs import BlobStore

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


def get_state(request: Request) -> ServerState:
    """The state the app's lifespan opened."""
    state: ServerState = request.app.state.lepton
    return state


def db_session(request: Request) -> Iterator[Session]:
    """A session per request; the route commits what it wants kept."""
    with get_state(request).sessions() as session:
        yield session
