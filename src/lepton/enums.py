"""The enumerations the CLI needs to declare its options, kept apart from the pydantic wire
models in ``schemas`` so that ``lepton --help`` does not build every model first."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobState", "Outcome", "Role"]


class Role(StrEnum):
    """What a workspace token may do: read, read and write, or also manage tokens and audit."""

    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class Outcome(StrEnum):
    """How a mutating request ended."""

    success = "success"
    denied = "denied"
    rejected = "rejected"
    failed = "failed"


class JobState(StrEnum):
    """queued → running → succeeded | failed | cancelled (a died attempt goes back to queued)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
