"""Server processes for benchmarks/serving.py: start one, wait until it answers, measure the CPU
its whole process tree spends, stop it and everything it spawned."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180.0  # Ray needs ~15 s on 2 cores; a hung server fails its row, not the run
_TICKS = os.sysconf("SC_CLK_TCK")


class Server:
    """One server under test, in a session of its own so that stopping it stops its children."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, url: str
    ) -> None:
        self.url = url
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, body: bytes, headers: dict[str, str], timeout: float) -> bytes:
        """Polls the endpoint with the payload until it answers 200; returns that answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}: {self.log_tail()}")
            try:
                return post(self.url, body, headers)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"not ready after {timeout:.0f} s: {self.log_tail()}")

    def wait_line(self, text: str, timeout: float) -> None:
        """Waits until the server's output holds ``text`` (e.g. its ``ready`` line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.encode() in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}: {self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"no {text!r} after {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 600) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-chars:].decode(errors="replace").strip()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and all its descendants, now."""
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM to the whole session, then SIGKILL after 20 s."""
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                # Children may outlive the leader (Ray's raylet, BentoML's workers).
                _wait_session_gone(self.process.pid, wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        data: bytes = answer.read()
        return data


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def _processes() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, session id, CPU seconds) for every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            # After the name: state ppid pgrp session ... utime(12) stime(13)
            cpu = (int(fields[11]) + int(fields[12])) / _TICKS
            table[int(entry)] = (int(fields[1]), int(fields[3]), cpu)
    return table


def tree_cpu_seconds(root: int) -> float:
    """CPU of ``root``'s session (every server runs in its own) and of its descendants."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen = {pid for pid, (_, sid, _) in table.items() if sid == root}
    stack = [root, *seen]
    while stack:
        pid = stack.pop()
        seen.add(pid)
        stack.extend(c for c in children.get(pid, []) if c not in seen)
    return sum(table[pid][2] for pid in seen if pid in table)


def _wait_session_gone(session: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(sid == session for _, sid, _ in _processes().values()):
            return
        time.sleep(0.1)
    raise subprocess.TimeoutExpired(str(session), timeout)
