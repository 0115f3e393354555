"""The Executor protocol: start a job's process, watch it, stop it, and find it again after a
restart of the control plane."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Executor", "Launch", "ProcessState", "ReplicaExecutor", "ReplicaLaunch"]


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start one attempt of a job."""

    job_id: str
    attempt: int
    env: Mapping[str, str]
    """Environment of the runner: control-plane URL, the job's scoped token, GPU selection."""
    log_path: Path
    gpus: int = 0
    cpus: float = 1
    memory_mb: int | None = None
    """Memory to reserve (Ray) and to cap the runner's data segment at; None: the default cap."""
    workers: int = 1
    """Data-parallel workers: this many runners, each with ``gpus``, ``cpus`` and ``memory_mb``,
    told their ``RANK`` of ``WORLD_SIZE`` and their node's address (``LEPTON_NODE_IP``). The
    handle is rank 0's; the attempt runs while rank 0 does, and a worker that fails ends it."""


@dataclass(frozen=True)
class ProcessState:
    alive: bool
    exit_code: int | None = None
    """None while alive, or when the process was not this executor's child (re-attached)."""


class Executor(Protocol):
    @property
    def cpu_slots(self) -> float:
        """What the running jobs' :meth:`cpu_cost` may add up to."""

    @property
    def gpu_slots(self) -> int:
        """GPUs there are to give to jobs."""

    def cpu_cost(self, cpus: float) -> float:
        """How much of :attr:`cpu_slots` a job asking for ``cpus`` cores takes."""

    def submit(self, launch: Launch) -> int:
        """Start the runner; returns a handle (the pid for the local executor)."""

    def status(self, job_id: str, handle: int) -> ProcessState:
        """Whether the attempt is still running."""

    def cancel(self, job_id: str, handle: int) -> None:
        """Ask the attempt to stop (SIGTERM), then make it stop (SIGKILL) after a grace period."""

    def attach(self, job_id: str, handle: int) -> bool:
        """After a control-plane restart: True when ``handle`` is still this job's runner."""

    def reap(self) -> None:
        """Collect every process this executor started that has ended, so none is left a
        zombie (a runner that reported its end is never asked about again). The scheduler
        calls it every pass."""

    def sweep(self, running: Mapping[str, int]) -> list[str]:
        """Stop every job process whose job is not in ``running`` (job id → its current
        attempt) with that attempt: a runner the store no longer counts on (its job ended or
        moved on while the control plane was away, or its start was never recorded), which
        would otherwise use its resources and its job's token until it ends. Returns a line
        per process stopped. The scheduler calls it when it starts and every minute."""


@dataclass(frozen=True)
class ReplicaLaunch:
    """Everything an executor needs to start one serving replica (``python -m lepton.serving``)."""

    args: tuple[str, ...]
    """Command-line arguments of the replica (``--port``, ``--model-dir``, ...)."""
    env: Mapping[str, str]
    """Variables added to a clean environment (the accepted token hashes)."""
    log_path: Path
    marker: str
    """A string on the replica's command line that only this deployment's replicas carry (its
    working folder), so a pid is recognised as its replica after a control-plane restart."""
    readable: tuple[Path, ...] = ()
    """Folders the contained replica reads (what it serves); nothing else of LEPTON_HOME."""
    cpus: float = 0
    """Cores to reserve (Ray) and, from 1, to cap its threads at; 0: no reservation."""
    memory_mb: int | None = None
    """Memory to reserve (Ray) and to cap its data segment at; None: the default cap."""
    gpus: int = 0
    """GPUs it gets (CUDA_VISIBLE_DEVICES)."""


class ReplicaExecutor(Protocol):
    def start_replica(self, launch: ReplicaLaunch) -> int:
        """Start a replica; returns a handle (the pid for the local executor)."""

    def replica_status(self, handle: int, marker: str) -> ProcessState:
        """Whether the replica still runs (found again by ``marker`` after a restart)."""

    def stop_replica(self, handle: int, marker: str, grace_s: float) -> None:
        """SIGTERM (the replica drains), then SIGKILL after ``grace_s``."""
