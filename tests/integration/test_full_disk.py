"""A full disk under LEPTON_HOME, for real: a control plane on a small tmpfs.

A push or an upload that finds no room is a 507 naming LEPTON_HOME (never a 500 calling itself
a bug), nothing of it is kept (no version, no blob, no spool folder, no temp object), the
server closes every file it was writing (no deleted file held open), and once there is room
the same push succeeds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from lepton import Client
from lepton.errors import InsufficientStorage

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.timeout(300)

DISK_MB = 48


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def server(disk: Path, tmp_path: Path, servers: ServerFactory) -> ServerProcess:
    assert disk == tmp_path / "disk"
    return servers("disk/home")  # its logs go beside home, on the small disk too


def csv(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 8)), columns=[f"x{i}" for i in range(8)])
    frame["label"] = rng.integers(0, 2, size=rows)
    frame.to_csv(path, index=False)
    return path


def files_left(home: Path) -> list[str]:
    spool = home / "work"
    left = [str(p.relative_to(home)) for p in spool.rglob("*")] if spool.exists() else []
    return left + [str(p.relative_to(home)) for p in home.rglob("*.tmp*")]


def deleted_but_open(pid: int, under: Path) -> list[str]:
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(under)) and target.endswith("(deleted)"):
            held.append(target)
    return held


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(url=server.url, token=server.token) as made:
        yield made


def test_a_push_that_finds_the_disk_full_is_a_507_and_leaves_nothing(
    server: ServerProcess, client: Client, disk: Path, tmp_path: Path
) -> None:
    small = csv(tmp_path / "small.csv", 2_000, seed=1)
    client.datasets.push(small, name="small", target="label")
    used_before = shutil.disk_usage(disk).used
    big = csv(tmp_path / "big.csv", 400_000, seed=2)  # ~60 MB of text: more than the disk
    assert big.stat().st_size > DISK_MB * 2**20

    with pytest.raises(InsufficientStorage) as pushed:
        client.datasets.push(big, name="big", target="label")
    with pytest.raises(InsufficientStorage) as uploaded:
        client.blobs.upload(big.read_bytes())

    for caught in (pushed, uploaded):
        assert "the disk holding LEPTON_HOME" in caught.value.message
        assert "ran out of room; nothing of this request was kept" in caught.value.message
        assert str(server.home) in caught.value.message
        assert "free space" in caught.value.fix
    assert server.proc is not None
    assert deleted_but_open(server.proc.pid, disk) == []
    assert files_left(server.home) == []
    assert shutil.disk_usage(disk).used <= used_before + 2**20  # what it wrote is gone
    assert [d.name for d in client.datasets.list()] == ["small"]
    assert "Traceback" not in server.errors

    # Once there is room (a smaller file), the same kind of push succeeds.
    fits = client.datasets.push(csv(tmp_path / "fits.csv", 20_000, seed=3), name="big")
    assert (fits.ref, fits.rows) == ("big@v1", 20_000)
