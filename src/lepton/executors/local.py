"""The local executor: each job attempt is a ``python -m lepton.jobs.runner`` subprocess, each
serving replica a ``python -m lepton.serving`` one.

Both start in their own session, so they outlive a restart of the control plane; the new
control plane finds them again by pid and by a marker on their command line (the job id, the
deployment's working folder). Both run user code, so both start through the sandbox
(:mod:`lepton.sandbox`): an allow-listed environment, no view of LEPTON_HOME, a working folder
of their own (``jobs/<id>/work``, ``deployments/<id>/replicas/<replica>.work``), limits.

Every process it starts is waited for once it ends (``reap``), so none is left a ``<defunct>``
zombie: a runner that reported its end over the API is never asked about again, so waiting
only when a status is asked left one zombie per job. Only our own ``Popen`` objects are waited
for, each by its pid: a ``waitpid(-1)`` loop or a SIGCHLD handler would also take the children
that ``subprocess.run`` (the sandbox probe) and others wait for themselves, and break them.
Processes re-attached after a restart are not our children: their old parent's end gave them
to init, which waits for them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lepton.executors.base import Launch, ProcessState, ReplicaLaunch
from lepton.sandbox import Sandbox

__all__ = ["LocalExecutor", "visible_gpus"]

_GRACE_S = 10.0  # SIGTERM → SIGKILL: time for a runner to write its last checkpoint


def visible_gpus() -> int:
    """GPUs this machine has, counted without importing torch (nvidia-smi's device files)."""
    return len([p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()])


class LocalExecutor:
    def __init__(self, sandbox: Sandbox, cpu_slots: int = 1, gpu_slots: int | None = None) -> None:
        self.sandbox = sandbox
        self.cpu_slots = cpu_slots
        self.gpu_slots = visible_gpus() if gpu_slots is None else gpu_slots
        self._children: dict[int, _Child] = {}
        self._ended: dict[int, int] = {}
        """Exit codes of children waited for, until a status call reports them; keyed by pid,
        so it holds at most one per pid, and a new child's pid replaces its entry."""
        self._gpus_in_use: dict[int, list[int]] = {}
        self._gangs: dict[int, _Gang] = {}
        """Data-parallel attempts by rank 0's pid."""
        self._lock = threading.Lock()

    def cpu_cost(self, cpus: float) -> float:
        """One slot per job, whatever it asks: ``job_slots`` counts jobs at once on this
        machine (its threads share the machine's cores)."""
        return 1.0

    def _adopt(self, process: subprocess.Popen[bytes], work: Path, gpus: list[int]) -> int:
        with self._lock:
            self._children[process.pid] = _Child(process, work)
            self._ended.pop(process.pid, None)
            if gpus:
                self._gpus_in_use[process.pid] = gpus
        return process.pid

    def reap(self) -> None:
        """Wait for every child that ended (keeping its exit code for ``status``), free its
        GPUs and remove its working folder: what the process left there is of no use to anyone
        (a job's state is in the API, and the next attempt or life starts clean anyway)."""
        with self._lock:
            for pid, child in list(self._children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                del self._children[pid]
                self._gpus_in_use.pop(pid, None)
                self._ended[pid] = code
                # Under the lock: once the end is known, the next attempt (or life) may start in
                # the same folder, and must not lose it to this removal.
                shutil.rmtree(child.work, ignore_errors=True)

    def submit(self, launch: Launch) -> int:
        """Start the attempt's runner; with ``workers`` > 1, one per worker (see ``Launch``),
        each with its share of the GPUs and of this machine's cores."""
        taken = self._take_gpus(launch.gpus * launch.workers)
        leader = 0
        for rank in range(launch.workers):
            gpus = taken[rank * launch.gpus : (rank + 1) * launch.gpus]
            extra: dict[str, str] = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
            if launch.workers > 1:
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
                extra |= {
                    "RANK": str(rank),
                    "LOCAL_RANK": str(rank),
                    "WORLD_SIZE": str(launch.workers),
                    "LEPTON_NODE_IP": "127.0.0.1",  # the workers meet on loopback
                    "OMP_NUM_THREADS": str(max(1, cores // launch.workers)),
                }
            pid = self._start_runner(launch, rank, extra, gpus)
            if rank == 0:
                leader = pid
                if launch.workers > 1:
                    with self._lock:
                        self._gangs[leader] = _Gang(launch.job_id, launch.log_path, [])
            else:
                with self._lock:
                    self._gangs[leader].followers.append(pid)
        return leader

    def _start_runner(
        self, launch: Launch, rank: int, extra: dict[str, str], gpus: list[int]
    ) -> int:
        work = launch.log_path.parent / ("work" if rank == 0 else f"work-{rank}")
        shutil.rmtree(work, ignore_errors=True)  # each attempt starts clean; state is in the API
        command = self.sandbox.command(
            [sys.executable, "-u", "-m", "lepton.jobs.runner", launch.job_id], work=work
        )
        env = self.sandbox.environment({**launch.env, **extra}, work=work)
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with launch.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=work,
                preexec_fn=self.sandbox.limits(launch.memory_mb),
                start_new_session=True,  # outlives the control plane; signals reach its group
            )
        return self._adopt(process, work, gpus)

    def _take_gpus(self, count: int) -> list[int]:
        if count == 0:
            return []
        with self._lock:
            busy = {g for gpus in self._gpus_in_use.values() for g in gpus}
        free = [g for g in range(self.gpu_slots) if g not in busy]
        return free[:count]

    def _child_state(self, handle: int) -> ProcessState | None:
        """The state of a process this executor started; None for any other handle (and for
        a child whose end was already reported)."""
        self.reap()
        with self._lock:
            if handle in self._children:
                return ProcessState(alive=True)
            code = self._ended.pop(handle, None)
        if code is None:
            return None
        if self.sandbox.active and 128 < code <= 128 + 64:
            # bubblewrap exits 128 + N when what it contains was killed by signal N; report it
            # as the process's own death by that signal (-9 for SIGKILL), as without a sandbox.
            code = 128 - code
        return ProcessState(alive=False, exit_code=code)

    def status(self, job_id: str, handle: int) -> ProcessState:
        self._check_followers(handle)
        known = self._child_state(handle)
        state = known or ProcessState(alive=self.attach(job_id, handle))
        if not state.alive:
            _end_group(handle, b"lepton.jobs.runner", job_id.encode())
            # The other workers of a data-parallel attempt (their own process groups; after a
            # restart of the control plane known only by their command line).
            for pid in _runners_of(job_id, besides=handle):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
            with self._lock:
                gang = self._gangs.pop(handle, None)
                for pid in gang.followers if gang is not None else []:
                    self._ended.pop(pid, None)  # their exit codes were only for this check
        return state

    def _check_followers(self, leader: int) -> None:
        """A worker of a data-parallel attempt that failed ends the attempt: rank 0 would wait
        for it in its next collective until the timeout."""
        with self._lock:
            gang = self._gangs.get(leader)
            followers = list(gang.followers) if gang is not None else []
        for pid in followers:
            with self._lock:
                child = self._children.get(pid)
                code = self._ended.get(pid) if child is None else child.process.poll()
            if code not in (None, 0, 143, -signal.SIGTERM) and gang is not None:
                with gang.log_path.open("a") as log:
                    log.write(
                        f"--- worker pid {pid} exited with code {code}; ending the attempt ---\n"
                    )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(leader, signal.SIGKILL)
                return

    def cancel(self, job_id: str, handle: int) -> None:
        if self.attach(job_id, handle):
            for pid in _runners_of(job_id, besides=handle):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    _signal_group(os.getpgid(pid), signal.SIGTERM)
            _terminate(handle, lambda: self.status(job_id, handle).alive, _GRACE_S)

    def attach(self, job_id: str, handle: int) -> bool:
        self.reap()
        with self._lock:
            if handle in self._ended:  # our child, ended (its pid may be another's since)
                return False
        try:
            cmdline = Path(f"/proc/{handle}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"lepton.jobs.runner" in cmdline and job_id.encode() in cmdline

    def sweep(self, running: Mapping[str, int]) -> list[str]:
        """See ``Executor.sweep``: only runners working under this LEPTON_HOME are this
        control plane's; another Lepton on the machine has jobs of its own."""
        home = self.sandbox.settings.home.resolve()
        stopped = []
        for pid, group, argv in _processes():
            if argv[0].endswith(b"bwrap") or b"lepton.jobs.runner" not in argv:
                continue
            folder = _cwd(group) or _cwd(pid)  # bubblewrap's is the real one
            if folder is None or not folder.is_relative_to(home):
                continue
            at = argv.index(b"lepton.jobs.runner")
            if at + 1 >= len(argv):
                continue
            job_id = argv[at + 1].decode(errors="replace")
            # A sandboxed runner's own environment may be out of reach (another user
            # namespace); bubblewrap, its group's leader, was started with the same one.
            attempt = _attempt_of(pid) or _attempt_of(group)
            if job_id in running and attempt in (None, running[job_id]):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
                stopped.append(f"runner pid {pid} of job {job_id} (attempt {attempt or '?'})")
        return stopped

    # --- serving replicas -------------------------------------------------------------------

    def start_replica(self, launch: ReplicaLaunch) -> int:
        # Replicas may run a user's photon code: contained like a job, and the environment holds
        # only the allow-list and the accepted token hashes, never the control plane's settings.
        work = launch.log_path.with_suffix(".work")
        shutil.rmtree(work, ignore_errors=True)
        command = self.sandbox.command(
            [sys.executable, "-u", "-m", "lepton.serving", *launch.args],
            work=work,
            readable=launch.readable,
        )
        gpus = self._take_gpus(launch.gpus)
        env = {**launch.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
        if launch.cpus >= 1:
            env["OMP_NUM_THREADS"] = str(int(launch.cpus))
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        with launch.log_path.open("ab") as log:
            if len(gpus) < launch.gpus:
                log.write(
                    f"--- asked for {launch.gpus} GPUs, {len(gpus)} free on this machine: "
                    "starting with those ---\n".encode()
                )
                log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.sandbox.environment(env, work=work),
                cwd=work,
                preexec_fn=self.sandbox.limits(launch.memory_mb),
                start_new_session=True,  # keeps serving across a control-plane restart
            )
        return self._adopt(process, work, gpus)

    def replica_status(self, handle: int, marker: str) -> ProcessState:
        known = self._child_state(handle)
        state = known or ProcessState(alive=_runs(handle, b"lepton.serving", marker.encode()))
        if not state.alive:
            _end_group(handle, b"lepton.serving", marker.encode())
        return state

    def stop_replica(self, handle: int, marker: str, grace_s: float) -> None:
        if self.replica_status(handle, marker).alive:
            _terminate(handle, lambda: self.replica_status(handle, marker).alive, grace_s)


@dataclass(frozen=True)
class _Gang:
    """The workers of a data-parallel attempt besides rank 0 (whose pid is the handle)."""

    job_id: str
    log_path: Path
    followers: list[int]


@dataclass(frozen=True)
class _Child:
    process: subprocess.Popen[bytes]
    work: Path
    """Its working folder, removed once it ended."""


def _terminate(handle: int, alive: Callable[[], bool], grace_s: float) -> None:
    """SIGTERM the process group of ``handle``; SIGKILL it if still ``alive()`` after
    ``grace_s`` (watched by a daemon thread). The sandbox processes of the group are spared the
    SIGTERM: bubblewrap would exit at once and report the attempt over while the runner inside
    still finishes; it exits with the runner instead."""
    if not _signal_group(handle, signal.SIGTERM):
        return
    threading.Thread(target=_kill_later, args=(handle, alive, grace_s), daemon=True).start()


def _group(pgid: int) -> list[tuple[int, list[bytes]]]:
    """The live processes of group ``pgid`` with their command lines."""
    return [(pid, argv) for pid, group, argv in _processes() if group == pgid]


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of group ``pgid`` but bubblewrap's; False when the group
    is gone."""
    members = _group(pgid)
    for pid, argv in members:
        if not argv[0].endswith(b"bwrap"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    return bool(members)


def _end_group(pgid: int, *needles: bytes) -> None:
    """SIGKILL what is left of a runner's or replica's group once its leader ended: a sandbox
    killed from outside leaves the process it contained running. Only a group one of whose
    processes carries ``needles`` is touched, never a group that reused the number."""
    members = _group(pgid)
    if any(all(n in b"\0".join(argv) for n in needles) for _, argv in members):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _kill_later(handle: int, alive: Callable[[], bool], grace_s: float) -> None:
    """SIGKILL the process group of ``handle`` if it is still alive after ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(handle, signal.SIGKILL)


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _attempt_of(pid: int) -> int | None:
    """The job attempt a runner process was started for (its ``LEPTON_JOB_ATTEMPT``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"LEPTON_JOB_ATTEMPT=") and item[19:].isdigit():
            return int(item[19:])
    return None


def _runners_of(job_id: str, *, besides: int) -> list[int]:
    """Live runner processes of ``job_id`` outside the process group ``besides`` (rank 0's):
    the other workers of a data-parallel attempt, found by their command line."""
    return [
        pid
        for pid, group, argv in _processes()
        if group != besides and b"lepton.jobs.runner" in argv and job_id.encode() in argv
    ]


def _processes() -> list[tuple[int, int, list[bytes]]]:
    """Every live (not zombie) process: pid, process group, command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if fields[0] != "Z":
            found.append((int(entry.name), int(fields[2]), argv))
    return found


def _runs(pid: int, *needles: bytes) -> bool:
    """Whether process ``pid`` exists, is not a zombie, and its command line holds ``needles``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    return all(needle in cmdline for needle in needles)
