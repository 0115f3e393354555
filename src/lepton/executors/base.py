"""The Executor protocol: start a job's process, watch it, stop it, and find it again after a
restart of the control plane."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "Launch", "ProcessState"]


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start one attempt of a job."""

    job_id: str
    attempt: int
    env: Mapping[str, str]
    """Environment of the runner: control-plane URL, the job's scoped token, GPU selection."""
    log_path: Path
    gpus: int = 0


@dataclass(frozen=True)
class ProcessState:
    alive: bool
    exit_code: int | None = None
    """None while alive, or when the process was not this executor's child (re-attached)."""


class Executor(Protocol):
    cpu_slots: int
    gpu_slots: int

    def submit(self, launch: Launch) -> int:
        """Start the runner; returns a handle (the pid for the local executor)."""

    def status(self, job_id: str, handle: int) -> ProcessState:
        """Whether the attempt is still running."""

    def cancel(self, job_id: str, handle: int) -> None:
        """Ask the attempt to stop (SIGTERM), then make it stop (SIGKILL) after a grace period."""

    def attach(self, job_id: str, handle: int) -> bool:
        """After a control-plane restart: True when ``handle`` is still this job's runner."""
