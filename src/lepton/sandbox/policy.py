"""The containment of user code (job runners and serving replicas, both of which run code a user
wrote or trained).

With bubblewrap (Debian's ``bubblewrap``; no setuid needed where unprivileged user namespaces
are allowed), each process gets:

- the machine's file system read-only, with ``LEPTON_HOME`` (database, blobs, key, credentials,
  other jobs' and deployments' folders) and the invoking user's home replaced by empty tmpfs
  mounts; only what the process needs is bound back: the Python interpreter and packages
  (read-only, when they live under a hidden folder), what it serves (read-only), and its own
  working folder (read-write);
- its own user namespace (uid 65534 inside, every capability dropped, ``no_new_privs``), pid,
  IPC and UTS namespaces and a private ``/tmp``; the network is shared, since runners and
  replicas are API clients of the control plane and servers on their port;
- an environment built from an allow-list (:func:`user_environment`) plus what the launch adds:
  never the control plane's ``LEPTON_*`` settings, database URL, key or cloud credentials;
- resource limits: a data-segment cap (``LEPTON_USER_MEMORY_MB``) and no core dumps.

Without bubblewrap (``LEPTON_SANDBOX=none``, or ``auto`` on a machine without it) only the
environment allow-list and the limits apply, and ``lepton up`` says so; ``required`` refuses to
start without a working sandbox.
"""

from __future__ import annotations

import ctypes
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import lepton
from lepton.errors import ConfigError
from lepton.settings import Settings

__all__ = ["MODES", "Sandbox", "user_environment"]

MODES = ("auto", "bubblewrap", "none", "required")

_PR_SET_PDEATHSIG = 1

NOBODY = 65534
"""The uid and gid user code has inside its namespace."""


def user_environment(settings: Settings, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment user code gets: the allow-listed variables of the machine (locale, time
    zone, PATH, BLAS threading) and ``extra`` (what the launch declares). A control-plane
    setting never passes, even if a launch names it."""
    env = dict(settings.user_environment)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


_BASE = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc")
_NAMESPACES = (
    *("--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"),
    *("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
)
"""Identity and namespaces of every contained process; the probe checks exactly these."""


def _probe(bwrap: str) -> str | None:
    """Why bubblewrap cannot run here (None when it can): the same namespaces the sandbox uses."""
    command = [bwrap, *_BASE, *_NAMESPACES, "true"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} did not run: {exc}"
    if done.returncode != 0:
        return f"{bwrap} failed: {done.stderr.decode(errors='replace').strip()[:300]}"
    return None


@dataclass(frozen=True)
class Sandbox:
    """How this control plane starts user code."""

    settings: Settings
    bwrap: str | None
    """The bubblewrap executable, or None when user code runs without a sandbox."""
    reason: str = ""
    """Why there is no sandbox, when there is none."""

    @classmethod
    def detect(cls, settings: Settings) -> Sandbox:
        """The sandbox ``LEPTON_SANDBOX`` asks for. ``auto`` uses bubblewrap when it works;
        ``required`` raises ConfigError when it does not; ``none`` never uses it."""
        mode = settings.sandbox
        if mode not in MODES:
            raise ConfigError(
                f"LEPTON_SANDBOX={mode!r} is not a sandbox mode; allowed: {', '.join(MODES)}",
                fix="set LEPTON_SANDBOX=required (or auto, the default)",
            )
        if mode == "none":
            return cls(settings, None, "LEPTON_SANDBOX=none")
        found = shutil.which("bwrap")
        problem = "bubblewrap (bwrap) is not installed" if found is None else _probe(found)
        if problem is None:
            return cls(settings, found)
        if mode in ("required", "bubblewrap"):
            raise ConfigError(
                f"LEPTON_SANDBOX={mode} but {problem}",
                fix="install Debian's bubblewrap (apt-get install bubblewrap) and allow "
                "unprivileged user namespaces, or set LEPTON_SANDBOX=auto to run unsandboxed",
            )
        return cls(settings, None, problem)

    @property
    def active(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        """One line for ``lepton up``: which containment user code gets."""
        if self.active:
            return (
                f"user code runs in a bubblewrap sandbox ({self.bwrap}): no view of "
                f"{self.settings.home} or {Path.home()}, an allow-listed environment"
            )
        return (
            f"user code runs WITHOUT a sandbox ({self.reason}): it gets an allow-listed "
            f"environment only and can read what this user can, {self.settings.home} included; "
            "install bubblewrap, or set LEPTON_SANDBOX=required to refuse this"
        )

    def command(
        self,
        argv: list[str],
        *,
        work: Path,
        readable: Iterable[Path] = (),
        die_with_parent: bool = False,
    ) -> list[str]:
        """``argv`` wrapped to run contained, in ``work`` (read-write), seeing ``readable``;
        ``die_with_parent``: killed when the process that started it dies (a Ray actor)."""
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.bwrap is None:
            return argv
        hidden = [
            p for p in (self.settings.home.resolve(), Path.home().resolve()) if p != Path("/")
        ]
        args = [self.bwrap, *_BASE]
        args += ["--tmpfs", "/tmp"]
        for path in hidden:
            args += ["--tmpfs", str(path)]
        # /tmp is replaced too: a checkout or venv there (a CI clone) must be bound back.
        for path in _runtime_paths([*hidden, Path("/tmp").resolve()]):
            args += ["--ro-bind", str(path), str(path)]
        for path in readable:
            args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(work), str(work), "--chdir", str(work)]
        # Not by default: for the local executor bubblewrap's parent is the control plane, and
        # what it contains must outlive a restart of it; the executor ends the group instead.
        if die_with_parent:
            args.append("--die-with-parent")
        args += [*_NAMESPACES, "--hostname", "lepton-sandbox", "--"]
        return args + argv

    def environment(self, extra: Mapping[str, str], *, work: Path) -> dict[str, str]:
        """The process's environment: the allow-list, ``extra``, and its own home and temp."""
        env = user_environment(self.settings, extra)
        env.update(HOME=str(work), TMPDIR=str(work))
        return env

    def limits(
        self, memory_mb: int | None = None, *, die_with_parent: bool = False
    ) -> Callable[[], None]:
        """Resource limits applied in the child before it runs (``preexec_fn``): the data
        segment capped at ``memory_mb`` (what a job asked for), else ``LEPTON_USER_MEMORY_MB``;
        ``die_with_parent``: SIGKILL when the starting process dies (``PR_SET_PDEATHSIG``)."""
        memory = (memory_mb or self.settings.user_memory_mb) * 1024 * 1024

        def apply() -> None:
            if die_with_parent:
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if memory > 0:  # data segment, which malloc's mmaps count against since Linux 4.7
                resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))

        return apply


def _runtime_paths(hidden: list[Path]) -> list[Path]:
    """The interpreter's and packages' folders that lie under a hidden folder (a venv or pyenv
    in the user's home): bound back read-only so the contained Python can start."""
    candidates = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    candidates |= {Path(p) for p in sys.path if p}
    candidates.add(Path(lepton.__file__).parent.parent)  # an editable install's source tree
    found: set[Path] = set()
    for path in candidates:
        try:
            real = path.resolve()
        except OSError:
            continue
        if real.exists() and any(real.is_relative_to(h) and real != h for h in hidden):
            found.add(real)
    # A folder inside another one already bound adds nothing.
    return sorted(p for p in found if not any(p != q and p.is_relative_to(q) for q in found))
