"""The Ray executor: each job attempt and each serving replica is a detached Ray actor that
starts the same contained process the local executor starts (``python -m lepton.jobs.runner``,
``python -m lepton.serving``) on the node Ray placed it on, with the resources the job asked for.

- **Placement**: a job's actor reserves its ``cpus``, ``gpus`` and ``memory_mb``; Ray holds
  nothing back for a job the scheduler has not started, so queueing stays the scheduler's (it
  starts a job only when the cluster's CPUs and GPUs have room for it). Replicas reserve what
  their deployment asks for (``cpus``, ``memory_mb``, ``gpus``; by default nothing) and are
  spread over the nodes.
- **Code and data** travel as on the local executor: runners are API clients of the control
  plane (``LEPTON_ADVERTISE_URL``) and read datasets and scripts through it; what a replica
  serves (its generation folder) goes once through Ray's object store, never through a
  ``runtime_env`` upload (100 MiB cap).
- **Containment**: the actor builds the node's own sandbox (:mod:`lepton.sandbox`) with the
  control plane's mode: an allow-listed environment (never ``RAY_*``, so never the cluster's
  token), no view of the home folder or ``/tmp`` (Ray's session folder), limits.
- **Output**: the process writes to a file on its node; every pass the scheduler's and the
  supervisor's status calls copy what is new into the job's or replica's log on the control
  plane, so ``lepton job logs -f`` and readiness work as on one machine. The actor remembers
  the offset copied so far, so a restarted control plane goes on from there.
- **Faults**: an actor whose node died answers with an error: the attempt ended (exit code
  unknown), and the scheduler retries it or the supervisor restarts the replica elsewhere.
  Actors are detached and named (``job-<id>-<attempt>``, ``replica-<n>`` in the ``lepton``
  namespace), so a restarted control plane finds them again by name.

This is the only module that imports ``ray``; Lepton must be installed (``lepton[ray]``, the
same version) on every node.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError
from lepton.executors.base import Launch, ProcessState, ReplicaLaunch
from lepton.settings import Settings

__all__ = ["NAMESPACE", "ProcessHost", "RayExecutor", "import_ray", "local_head"]

log = logging.getLogger("lepton.ray")

NAMESPACE = "lepton"
_CHUNK = 256 * 1024  # bytes of output copied per call
_WAIT_S = 0.5  # longest a status call waits for an actor's answer (one still being placed)
_RESOURCES_TTL_S = 5.0
_MIB = 1024 * 1024
_JOB_ACTOR = re.compile(r"job-(?P<job>[0-9a-f]+)-(?P<attempt>[0-9]+)(-w[0-9]+)?")
_MAX_WORKERS = 65  # one more than a job may ask for (JobSpec.workers)


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "LEPTON_EXECUTOR=ray but Ray is not installed in this environment",
            fix="pip install 'lepton[ray]' (on the control plane and every Ray node), or unset "
            "LEPTON_EXECUTOR to run jobs on this machine",
        ) from None
    return ray


# --- on the node ------------------------------------------------------------------------------


class ProcessHost:
    """A Ray actor that runs one contained process on its node and keeps its output.

    ``files`` is a tar archive (the replica's generation folder) unpacked beside the process
    and bound read-only into its sandbox; arguments that start with ``rewrite`` (that folder's
    path on the control plane) are pointed at the unpacked copy.
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        home: str,
        sandbox: str,
        memory_mb: int | None,
        meta: dict[str, str],
        files: bytes | None = None,
        rewrite: str = "",
    ) -> None:
        import ray

        from lepton.sandbox import Sandbox

        self.meta = dict(meta)
        base = Path(tempfile.gettempdir()) / "lepton-ray"
        base.mkdir(mode=0o700, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        readable: list[Path] = []
        if files is not None:
            shipped = self.root / "files"
            _unpack(files, shipped)
            readable.append(shipped)
            argv = [str(shipped) + a[len(rewrite) :] if a.startswith(rewrite) else a for a in argv]
        box = Sandbox.detect(Settings(home=Path(home), sandbox=sandbox))
        self.contained = box.active
        work = self.root / "work"
        gpus = ",".join(str(g) for g in ray.get_gpu_ids())
        # It dies with its actor: a node lost, or an actor killed, leaves no process behind.
        command = box.command(
            [sys.executable, "-u", *argv], work=work, readable=readable, die_with_parent=True
        )
        node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        environment = box.environment(
            {**env, "CUDA_VISIBLE_DEVICES": gpus, "LEPTON_NODE_IP": node}, work=work
        )
        node_id = ray.get_runtime_context().get_node_id()
        self.output = self.root / "output"
        with self.output.open("ab") as out:
            out.write(
                f"--- on Ray node {node} ({node_id[:12]}), actor {meta['name']} ---\n".encode()
            )
        # Started, and waited for, by a thread that lives as long as the process: the death
        # signal (PR_SET_PDEATHSIG, bubblewrap's --die-with-parent) follows the thread that
        # forked, and an actor's task threads come and go.
        started: list[subprocess.Popen[bytes] | BaseException] = []
        ready = threading.Event()

        def run() -> None:
            try:
                with self.output.open("ab") as out:
                    process = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=environment,
                        cwd=work,
                        preexec_fn=box.limits(memory_mb, die_with_parent=True),
                        start_new_session=True,
                    )
            except BaseException as exc:  # handed to __init__, which raises it
                started.append(exc)
                ready.set()
                return
            started.append(process)
            ready.set()
            process.wait()

        threading.Thread(target=run, name="lepton-process", daemon=True).start()
        ready.wait()
        if isinstance(started[0], BaseException):
            raise started[0]
        self.process = started[0]
        self.copied = 0
        self.meta.update(node=node, node_id=node_id, pid=str(self.process.pid))

    def describe(self) -> dict[str, Any]:
        """What it runs (its launch's metadata, node and pid) and the output copied so far."""
        return {**self.meta, "copied": self.copied}

    def read(self, offset: int) -> tuple[int | None, bytes]:
        """The exit code (None while it runs) and the output from ``offset``; everything
        before ``offset`` counts as copied."""
        self.copied = offset
        code = self.process.poll()
        with self.output.open("rb") as f:
            f.seek(offset)
            data = f.read(_CHUNK)
        if code is not None and self.contained and 128 < code <= 128 + 64:
            code = 128 - code  # bubblewrap's 128 + N: killed by signal N, as without a sandbox
        return code, data

    def stop(self, grace_s: float) -> None:
        """SIGTERM the process group (bubblewrap spared: it exits with what it contains), then
        SIGKILL what is left after ``grace_s``."""
        from lepton.executors.local import _signal_group

        pid = self.process.pid
        if self.process.poll() is None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        """Stop the process and remove its folder; the actor is killed next."""
        self.stop(0)
        shutil.rmtree(self.root, ignore_errors=True)


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _unpack(data: bytes, target: Path) -> None:
    target.mkdir(mode=0o700)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")  # made by _pack; the filter refuses links out


# --- on the control plane ---------------------------------------------------------------------


@dataclass
class _Tracked:
    actor: Any
    log_path: Path
    offset: int
    marker: str = ""
    pending: Any = None
    """The read in flight, answered on a later pass when the actor is slow (still placed)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class RayExecutor:
    """Jobs and replicas as actors on the Ray cluster at ``address`` (see the module text)."""

    def __init__(self, settings: Settings, address: str) -> None:
        ray = import_ray()
        self.settings = settings
        self.address = address
        self.authenticated = os.environ.get("RAY_AUTH_MODE", "") == "token"
        if not self.authenticated:
            log.warning(
                "connecting to the Ray cluster at %s WITHOUT token authentication "
                "(RAY_AUTH_MODE is not 'token'): whoever reaches it can run code on every "
                "node; start the cluster with RAY_AUTH_MODE=token and give this process "
                "RAY_AUTH_TOKEN",
                address,
            )
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                ignore_reinit_error=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {address}: {exc}",
                fix="check LEPTON_RAY_ADDRESS (HOST:PORT of the head's GCS), and that "
                "RAY_AUTH_MODE/RAY_AUTH_TOKEN match the cluster's",
            ) from None
        self._ray = ray
        self._host = ray.remote(max_restarts=0, max_concurrency=4)(ProcessHost)
        self._tracked: dict[str, _Tracked] = {}
        self._gangs: dict[str, list[str]] = {}
        """The other workers' actors of a data-parallel attempt, by rank 0's actor name."""
        self._gang_done: dict[str, set[str]] = {}
        """Those of them that ended well while rank 0 still ran."""
        self._ended: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._resources: tuple[float, float, float] = (0.0, 0.0, 0.0)  # when, cpus, gpus

    def describe(self) -> str:
        """One line for ``lepton up``."""
        cpus, gpus = self.cpu_slots, self.gpu_slots
        auth = "token authentication" if self.authenticated else "NO authentication"
        return f"jobs and replicas run on the Ray cluster at {self.address} ({cpus:g} CPUs, {gpus} GPUs, {auth})"

    # --- resources -----------------------------------------------------------------------

    def _cluster(self) -> tuple[float, float]:
        when, cpus, gpus = self._resources
        if time.monotonic() - when > _RESOURCES_TTL_S:
            total = self._ray.cluster_resources()
            cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
            self._resources = (time.monotonic(), cpus, gpus)
        return cpus, gpus

    @property
    def cpu_slots(self) -> float:
        return self._cluster()[0]

    @property
    def gpu_slots(self) -> int:
        return int(self._cluster()[1])

    def cpu_cost(self, cpus: float) -> float:
        return cpus

    # --- jobs ----------------------------------------------------------------------------

    def submit(self, launch: Launch) -> int:
        """One actor per worker (rank 0's is named like a one-worker attempt's), each with the
        job's resources; Ray places them, on one node or several."""
        threads = str(max(1, int(launch.cpus)))
        options: dict[str, Any] = {"num_cpus": launch.cpus, "num_gpus": launch.gpus}
        if launch.memory_mb:
            options["memory"] = launch.memory_mb * _MIB
        names = [_job_name(launch.job_id, launch.attempt, r) for r in range(launch.workers)]
        with self._lock:
            self._gangs[names[0]] = names[1:]
        for rank, name in enumerate(names):
            env = dict(launch.env)
            env.setdefault("OMP_NUM_THREADS", threads)
            env.setdefault("MKL_NUM_THREADS", threads)
            if launch.workers > 1:  # LEPTON_NODE_IP: the actor adds its node's address
                env |= {"RANK": str(rank), "WORLD_SIZE": str(launch.workers), "LOCAL_RANK": "0"}
            self._start(
                name,
                ["-m", "lepton.jobs.runner", launch.job_id],
                env,
                log_path=launch.log_path,
                memory_mb=launch.memory_mb,
                options=options,
            )
        return launch.attempt

    def status(self, job_id: str, handle: int) -> ProcessState:
        leader = _job_name(job_id, handle)
        state = self._state(leader)
        followers = self._followers(leader)
        if state.alive:
            with self._lock:
                done = self._gang_done.setdefault(leader, set())
            for name in followers:
                if name in done:  # ended well earlier (an actor is asked about its end once)
                    continue
                ended = self._state(name)
                if ended.alive:
                    continue
                done.add(name)
                if ended.exit_code not in (0, 143, -signal.SIGTERM):
                    # rank 0 would wait for it in its next collective until the timeout
                    tracked = self._find(leader)
                    if tracked is not None:
                        _append(
                            tracked.log_path,
                            f"--- worker {name} ended (exit code {ended.exit_code}); "
                            "ending the attempt ---\n".encode(),
                        )
                        tracked.actor.stop.remote(0)
                    break
            return state
        for name in followers:  # rank 0 ended: so does the rest of its attempt
            tracked = self._find(name)
            if tracked is not None:
                with tracked.lock:
                    self._pump(tracked)
                self._remove(name, tracked)
        with self._lock:
            self._gangs.pop(leader, None)
            self._gang_done.pop(leader, None)
        return state

    def _followers(self, leader: str) -> list[str]:
        """The actors of the other workers of rank 0's attempt ``leader``; found again by name
        after a restart of the control plane."""
        with self._lock:
            known = self._gangs.get(leader)
        if known is not None:
            return known
        found = []
        for rank in range(1, _MAX_WORKERS):
            name = f"{leader}-w{rank}"
            try:
                self._ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                break
            found.append(name)
        with self._lock:
            self._gangs[leader] = found
        return found

    def cancel(self, job_id: str, handle: int) -> None:
        leader = _job_name(job_id, handle)
        for name in [leader, *self._followers(leader)]:
            tracked = self._find(name)
            if tracked is not None:
                tracked.actor.stop.remote(10.0)

    def attach(self, job_id: str, handle: int) -> bool:
        return self._find(_job_name(job_id, handle)) is not None

    def reap(self) -> None:
        """Copy the last output of every process that ended and remove its actor (a runner
        that reported its end over the API is never asked about again)."""
        with self._lock:
            names = list(self._tracked)
        for name in names:
            state = self._state(name)
            if not state.alive:
                with self._lock:
                    self._ended[name] = state.exit_code

    def sweep(self, running: Mapping[str, int]) -> list[str]:
        stopped = []
        for name in self._ray.util.list_named_actors():  # this namespace's: Lepton's
            found = _JOB_ACTOR.fullmatch(str(name))
            if found is None:
                continue
            job_id, attempt = found["job"], int(found["attempt"])
            if running.get(job_id) == attempt:
                continue
            tracked = self._find(str(name))
            # Only this control plane's own (its log under this LEPTON_HOME): another Lepton on
            # the same cluster has jobs of its own. One that does not answer is left to the
            # attempt's own end (its node is gone, and it with it).
            home = self.settings.home.resolve()
            if tracked is None or not tracked.log_path.resolve().is_relative_to(home):
                continue
            self._remove(str(name), tracked)
            stopped.append(f"Ray actor {name}")
        return stopped

    # --- replicas ------------------------------------------------------------------------

    def start_replica(self, launch: ReplicaLaunch) -> int:
        handle = secrets.randbelow(2**31 - 2) + 1
        folder = launch.readable[0] if launch.readable else None
        files = self._ray.put(_pack(folder)) if folder is not None else None
        env = dict(launch.env)
        if launch.cpus >= 1:
            env["OMP_NUM_THREADS"] = str(int(launch.cpus))
        options: dict[str, Any] = {
            "num_cpus": launch.cpus,
            "num_gpus": launch.gpus,
            "scheduling_strategy": "SPREAD",
        }
        if launch.memory_mb:
            options["memory"] = launch.memory_mb * _MIB
        self._start(
            _replica_name(handle),
            ["-m", "lepton.serving", *launch.args],
            env,
            log_path=launch.log_path,
            memory_mb=launch.memory_mb,
            options=options,
            marker=launch.marker,
            files=files,
            rewrite=str(folder) if folder is not None else "",
        )
        return handle

    def replica_status(self, handle: int, marker: str) -> ProcessState:
        name = _replica_name(handle)
        tracked = self._find(name)
        if tracked is not None and tracked.marker != marker:
            return ProcessState(alive=False)  # another deployment's: not this replica
        return self._state(name)

    def stop_replica(self, handle: int, marker: str, grace_s: float) -> None:
        tracked = self._find(_replica_name(handle))
        if tracked is not None and tracked.marker == marker:
            tracked.actor.stop.remote(grace_s)

    # --- the actors ----------------------------------------------------------------------

    def _start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        log_path: Path,
        memory_mb: int | None,
        options: dict[str, Any],
        marker: str = "",
        files: Any = None,
        rewrite: str = "",
    ) -> None:
        with contextlib.suppress(ValueError):  # a leftover of that name (a crash mid-start)
            self._ray.kill(self._ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        actor = self._host.options(
            name=name, namespace=NAMESPACE, lifetime="detached", **options
        ).remote(
            argv,
            env,
            home=str(self.settings.home.resolve()),
            sandbox=self.settings.sandbox,
            memory_mb=memory_mb,
            meta={"log_path": str(log_path), "marker": marker, "name": name},
            files=files,
            rewrite=rewrite,
        )
        with self._lock:
            self._ended.pop(name, None)
            self._tracked[name] = _Tracked(actor, log_path, 0, marker)

    def _find(self, name: str) -> _Tracked | None:
        """The actor ``name`` (found again by name after a restart), None when there is none."""
        with self._lock:
            if name in self._ended:
                return None
            tracked = self._tracked.get(name)
        if tracked is not None:
            return tracked
        try:
            actor = self._ray.get_actor(name, namespace=NAMESPACE)
            meta = self._ray.get(actor.describe.remote(), timeout=10)
        except Exception:  # no such actor, or its node is gone
            return None
        tracked = _Tracked(actor, Path(meta["log_path"]), int(meta["copied"]), meta["marker"])
        with self._lock:
            return self._tracked.setdefault(name, tracked)

    def _state(self, name: str) -> ProcessState:
        with self._lock:
            if name in self._ended:
                code = self._ended.pop(name)
                return ProcessState(alive=False, exit_code=code)
        tracked = self._find(name)
        if tracked is None:
            return ProcessState(alive=False)
        with tracked.lock:
            ended, code = self._pump(tracked)
        if not ended:
            return ProcessState(alive=True)
        self._remove(name, tracked)
        return ProcessState(alive=False, exit_code=code)

    def _pump(self, tracked: _Tracked) -> tuple[bool, int | None]:
        """Copy the actor's new output into its log; (ended, exit code)."""
        ray = self._ray
        while True:
            if tracked.pending is None:
                tracked.pending = tracked.actor.read.remote(tracked.offset)
            ready, _ = ray.wait([tracked.pending], timeout=_WAIT_S)
            if not ready:
                return False, None  # being placed, or its node is slow: ask again next pass
            reference, tracked.pending = tracked.pending, None
            try:
                code, data = ray.get(reference)
            except ray.exceptions.RayActorError:
                _append(tracked.log_path, b"--- the Ray actor running it died (node lost?) ---\n")
                return True, None
            if data:
                _append(tracked.log_path, data)
                tracked.offset += len(data)
            if code is None:
                return False, None
            if not data:
                return True, code

    def _remove(self, name: str, tracked: _Tracked) -> None:
        with contextlib.suppress(Exception):
            self._ray.get(tracked.actor.close.remote(), timeout=10)
        with contextlib.suppress(Exception):
            self._ray.kill(tracked.actor, no_restart=True)
        with self._lock:
            self._tracked.pop(name, None)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def _job_name(job_id: str, attempt: int, rank: int = 0) -> str:
    return f"job-{job_id}-{attempt}" + (f"-w{rank}" if rank else "")


def _replica_name(handle: int) -> str:
    return f"replica-{handle}"


# --- a head for one machine -------------------------------------------------------------------


def local_head(settings: Settings, *, cpus: int | None = None) -> str:
    """The address of the Ray head ``lepton up --ray`` runs for ``settings.home``, started
    when it is not running: bound to 127.0.0.1, token authentication on (the token in
    ``home/ray/auth_token``, mode 0600, which user code cannot see), no dashboard or job
    server. It outlives the control plane, so jobs and replicas keep running across a restart;
    ``ray stop`` ends it."""
    if importlib.util.find_spec("ray") is None:
        import_ray()  # raises, saying how to install it
    root = settings.home / "ray"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = root / "auth_token"
    if not token.exists():
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    # Ray reads these from the environment, once, when first imported (not yet, here), in every
    # process that talks to the cluster: this one, and the head it starts. The last one is
    # Ray's one-machine mode: every address is 127.0.0.1, so nothing listens beyond loopback.
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    recorded = root / "address"
    if recorded.exists():
        address = recorded.read_text().strip()
        host, _, port = address.rpartition(":")
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((host, int(port))) == 0:
                return address
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--num-cpus={cpus or os.cpu_count() or 1}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise ConfigError(
            f"`ray start --head` failed: {(done.stderr or done.stdout).strip()[-500:]}",
            fix="run it yourself to see why, or point LEPTON_RAY_ADDRESS at a running cluster",
        )
    address = f"127.0.0.1:{port}"
    recorded.write_text(address + "\n")
    return address
