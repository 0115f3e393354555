"""Spool folders: a request's folder goes when it ends, and a start removes the folders ended
processes left, never a live one's, even of another control plane sharing the home."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest

from lepton.control.context import open_context
from lepton.control.spool import GRACE_S, clean, owner_gone, owner_tag, spool_folder
from lepton.settings import Settings


def ended_pid() -> int:
    """A pid no process can have: one past the kernel's largest."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def folder(root: Path, name: str, size: int = 0, age_s: float = 0.0) -> Path:
    path = root / name
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "upload").write_bytes(b"x" * size)
    stamp = time.time() - age_s
    for p in (path / "sub" / "upload", path / "sub", path):
        os.utime(p, (stamp, stamp))
    return path


def test_a_request_folder_is_private_and_goes_when_the_request_ends(tmp_path: Path) -> None:
    root = tmp_path / "work"
    with pytest.raises(RuntimeError), spool_folder(root) as work:
        (work / "upload").write_bytes(b"data")
        assert work.stat().st_mode & 0o777 == 0o700
        assert owner_gone(work.name) is False
        raise RuntimeError("the request failed")
    assert list(root.iterdir()) == []


def test_a_start_removes_what_ended_processes_left_and_keeps_live_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "work"
    host, me = socket.gethostname(), owner_tag()
    start = me.rsplit("@", 1)[1]
    live = folder(root, f"{me}@live", size=10)
    dead = folder(root, f"{host}@{ended_pid()}@{start}@dead", size=1000)
    # Our pid, but started at another time: a process before a restart that got the same pid.
    reused = folder(root, f"{host}@{os.getpid()}@{int(start) + 1}@reused", size=500)
    other_host_fresh = folder(root, f"{host}-other@1@1@fresh", size=7)
    other_host_old = folder(root, f"{host}-other@1@1@old", size=20, age_s=GRACE_S + 60)
    legacy_old = folder(root, "0123456789abcdef", size=3, age_s=GRACE_S + 60)

    with caplog.at_level(logging.WARNING, logger="lepton.spool"):
        removed = clean(root)

    assert removed == (4, 1000 + 500 + 20 + 3)
    assert sorted(p.name for p in root.iterdir()) == sorted([live.name, other_host_fresh.name])
    assert not (dead.exists() or reused.exists() or other_host_old.exists())
    assert not legacy_old.exists()
    assert "removed 4 spool folders" in caplog.text


def test_opening_the_control_plane_cleans_the_spool(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    left = folder(settings.home / "work", f"{socket.gethostname()}@{ended_pid()}@1@x", size=9)

    ctx = open_context(settings)
    try:
        assert not left.exists()
        with ctx.spool() as work:
            assert work.parent == settings.home / "work"
    finally:
        ctx.engine.dispose()
