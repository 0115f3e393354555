"""The local executor: each attempt is a ``python -m lepton.jobs.runner`` subprocess.

Runners start in their own session, so they outlive a restart of the control plane; the new
control plane finds them again by pid and by the job id on their command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lepton.executors.base import Launch, ProcessState

__all__ = ["LocalExecutor", "visible_gpus"]

_GRACE_S = 10.0  # SIGTERM → SIGKILL: time for a runner to write its last checkpoint


def visible_gpus() -> int:
    """GPUs this machine has, counted without importing torch (nvidia-smi's device files)."""
    return len([p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()])


class LocalExecutor:
    def __init__(self, cpu_slots: int = 1, gpu_slots: int | None = None) -> None:
        self.cpu_slots = cpu_slots
        self.gpu_slots = visible_gpus() if gpu_slots is None else gpu_slots
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._gpus_in_use: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def submit(self, launch: Launch) -> int:
        env = dict(os.environ)
        env.update(launch.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self._take_gpus(launch.gpus))
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with launch.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-u", "-m", "lepton.jobs.runner", launch.job_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the control plane; signals reach its group
            )
        with self._lock:
            self._children[process.pid] = process
            if launch.gpus:
                self._gpus_in_use[process.pid] = [
                    int(g) for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g
                ]
        return process.pid

    def _take_gpus(self, count: int) -> list[int]:
        if count == 0:
            return []
        with self._lock:
            busy = {g for gpus in self._gpus_in_use.values() for g in gpus}
        free = [g for g in range(self.gpu_slots) if g not in busy]
        return free[:count]

    def status(self, job_id: str, handle: int) -> ProcessState:
        with self._lock:
            child = self._children.get(handle)
        if child is not None:
            code = child.poll()
            if code is None:
                return ProcessState(alive=True)
            with self._lock:
                self._children.pop(handle, None)
                self._gpus_in_use.pop(handle, None)
            return ProcessState(alive=False, exit_code=code)
        return ProcessState(alive=self.attach(job_id, handle))

    def cancel(self, job_id: str, handle: int) -> None:
        if not self.attach(job_id, handle):
            return
        try:
            os.killpg(handle, signal.SIGTERM)
        except ProcessLookupError:
            return
        threading.Thread(target=self._kill_later, args=(job_id, handle), daemon=True).start()

    def _kill_later(self, job_id: str, handle: int) -> None:
        deadline = time.monotonic() + _GRACE_S
        while time.monotonic() < deadline:
            if not self.status(job_id, handle).alive:
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle, signal.SIGKILL)

    def attach(self, job_id: str, handle: int) -> bool:
        try:
            cmdline = Path(f"/proc/{handle}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        with self._lock:
            child = self._children.get(handle)
        if child is not None and child.poll() is not None:
            return False
        return b"lepton.jobs.runner" in cmdline and job_id.encode() in cmdline
