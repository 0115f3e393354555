"""Spool folders: a request's scratch space under ``LEPTON_HOME/work`` (an upload being parsed,
its Parquet copy, an artifact being checked).

A request removes its folder when it ends; a control plane killed mid-request cannot, and three
kills during pushes left 772 MB. So each start removes what ended processes left (``clean``).

Not simply everything under ``work/``: nothing stops two control planes from sharing one
``LEPTON_HOME`` (there is no lock; ``lepton up`` run twice on two ports, or the home on a
shared file system), and removing a live request's upload would fail it. So each folder is
named after its owner, ``<host>@<pid>@<start>@<random>``, where ``start`` is when that process
started (clock ticks since boot), and it goes once its owner is known to be gone: a process of
this host that no longer runs, or whose pid now belongs to a process started at another time
(pids are reused; a restarted container often runs the control plane under the same pid). A
folder whose owner cannot be checked (another host, a name from before this scheme) goes once
nothing in it changed for ``grace_s``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["abandoned", "clean", "owner_gone", "owner_tag", "spool_folder"]

log = logging.getLogger("lepton.spool")

GRACE_S = 3600.0
"""How long a folder nobody can vouch for is kept untouched: a live request writes its upload
and its Parquet copy as it goes, and the slowest step that writes nothing (profiling a wide
table) takes minutes, not an hour."""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of ``/proc/<pid>/stat``); None when it does not
    run or is a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None
    except OSError:  # another user's process (procfs hidepid=1): not the one that wrote here
        return "another user's"
    return None if fields[0] == "Z" else fields[19]


def owner_tag() -> str:
    """``<host>@<pid>@<start>``: names this process among every process that shares the home."""
    return f"{socket.gethostname()}@{os.getpid()}@{_started(os.getpid()) or 0}"


def owner_gone(name: str) -> bool | None:
    """Whether the process named at the start of ``name`` (``owner_tag()@...``) has ended:
    True or False, or None when it cannot be told (another host's, or not such a name)."""
    host, _, rest = name.partition("@")
    pid, _, rest = rest.partition("@")
    start = rest.partition("@")[0]
    if host != socket.gethostname() or not pid.isdigit() or not start.isdigit():
        return None
    if not Path("/proc/self/stat").exists():  # no procfs: nothing to check against
        return None
    return _started(int(pid)) != start


def abandoned(name: str, touched: float, grace_s: float = GRACE_S) -> bool:
    """Whether a scratch folder named ``owner_tag()@...`` that was last changed at ``touched``
    can belong to no live process: its owner is gone, or cannot be told and it is older than
    ``grace_s``."""
    gone = owner_gone(name)
    return gone if gone is not None else time.time() - touched >= grace_s


@contextmanager
def spool_folder(root: Path) -> Iterator[Path]:
    """A fresh private (0700) folder under ``root``, removed with everything in it at the end."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / f"{owner_tag()}@{uuid.uuid4().hex}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean(root: Path, grace_s: float = GRACE_S) -> tuple[int, int]:
    """Remove the spool folders under ``root`` no live request can own; returns how many went
    and the bytes they held, and logs them."""
    if not root.is_dir():
        return 0, 0
    removed = size = 0
    for path in root.iterdir():
        if owner_gone(path.name) is False:
            continue
        held, touched = _measure(path)
        if not abandoned(path.name, touched, grace_s):
            continue
        if path.is_dir() and not path.is_symlink():  # rmtree refuses a link
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed, size = removed + 1, size + held
    if removed:
        # A warning: it means an earlier control plane stopped in the middle of a request.
        log.warning(
            "removed %d spool folder%s (%.1f MB) under %s that stopped control planes left",
            removed,
            "" if removed == 1 else "s",
            size / 1e6,
            root,
        )
    return removed, size


def _measure(path: Path) -> tuple[int, float]:
    """Bytes under ``path`` and the newest modification time of anything in it (links are not
    followed)."""
    top = path.lstat()
    if not stat.S_ISDIR(top.st_mode):
        return top.st_size, top.st_mtime
    size, newest = 0, top.st_mtime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                entry = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            size += entry.st_size if stat.S_ISREG(entry.st_mode) else 0
            newest = max(newest, entry.st_mtime)
    return size, newest
