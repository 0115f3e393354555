"""A real control plane in a subprocess: ``lepton up`` on a free loopback port, state in tmp.

``ServerProcess`` starts the console script exactly as a user does, waits for ``/healthz``
(bounded), reads the admin token from the credentials file the first start writes, and is
always stopped by the fixture that made it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

__all__ = ["LEPTON", "ServerProcess", "clean_env", "free_port"]

LEPTON = Path(sys.executable).parent / "lepton"
"""The console script of the venv running the tests (``lepton.cli.main:main``)."""

# 60 s: a cold first start (imports, migrations, key generation) takes ~1-2 s on 2 cores; the
# margin absorbs a loaded CI machine without letting a hung server stall the suite.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0  # uvicorn's graceful shutdown is capped at 10 s (timeout_graceful_shutdown)
_POLL_S = 0.05


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``LEPTON_*`` variable, plus ``overrides``.

    A developer's own ``LEPTON_URL`` or ``LEPTON_TOKEN`` must never leak into a test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    env["PYTHONUNBUFFERED"] = "1"  # the first-start banner reaches the log file at once
    env.update(overrides)
    return env


class ServerProcess:
    """``lepton up`` with ``LEPTON_HOME=home`` on ``127.0.0.1:port``.

    Its stdout and stderr go to files next to ``home`` (a pipe nobody reads can fill and block
    the server); :attr:`output` and :attr:`errors` read them back, per start.
    """

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        logs: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.logs = logs or home.parent
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._files: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials_path(self) -> Path:
        return self.home / "credentials.json"

    @property
    def token(self) -> str:
        """The token saved by the first start."""
        data = json.loads(self.credentials_path.read_text())
        token: str = data["token"]
        return token

    def env(self, **overrides: str) -> dict[str, str]:
        return clean_env(
            LEPTON_HOME=str(self.home),
            LEPTON_HOST="127.0.0.1",
            LEPTON_PORT=str(self.port),
            LEPTON_GATEWAY_PORT="0",  # several servers in one run: each its own free port
            **{**self.extra_env, **overrides},
        )

    def _log(self, stream: str) -> Path:
        return self.logs / f"server-{self.port}-{self.starts}.{stream}"

    @property
    def output(self) -> str:
        """stdout of the latest start."""
        return self._log("out").read_text(errors="replace")

    @property
    def errors(self) -> str:
        """stderr of the latest start."""
        return self._log("err").read_text(errors="replace")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start ``lepton up`` without waiting for it."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"server on port {self.port} is already running")
        self._close_files()
        self.starts += 1
        self.returncode = None
        out = open(self._log("out"), "wb")  # noqa: SIM115  (closed in _close_files)
        err = open(self._log("err"), "wb")  # noqa: SIM115
        self._files = [out, err]
        self.proc = subprocess.Popen(
            [str(LEPTON), "up"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        return self.proc

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        """Launch and wait until ``/healthz`` answers 200."""
        proc = self.launch()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            for _ in range(int(timeout / _POLL_S) + 1):
                if proc.poll() is not None:
                    self._finish()
                    raise RuntimeError(
                        f"lepton up exited with {proc.returncode} before answering:\n"
                        f"{self.output}\n{self.errors}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    break
                time.sleep(_POLL_S)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"lepton up did not answer /healthz within {timeout} s:\n{self.errors}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` and wait; SIGKILL if it outlives ``timeout``. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._finish()
        return self.returncode

    def wait(self, timeout: float = START_TIMEOUT_S) -> int | None:
        """Wait for a launched server to exit by itself; SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        return self.stop(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL: the crash that no handler sees."""
        self.stop(signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        """Stop (gracefully) if running, then start again on the same home and port."""
        self.stop()
        return self.start(timeout)

    def _finish(self) -> None:
        if self.proc is not None:
            self.returncode = self.proc.returncode
            self.proc = None
        self._close_files()

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ServerFactory = Callable[..., ServerProcess]


@contextlib.contextmanager
def _servers(root: Path) -> Iterator[ServerFactory]:
    made: list[ServerProcess] = []

    def make(
        name: str = "home",
        *,
        start: bool = True,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = ServerProcess(root / name, port, env=env)
        made.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """Makes servers (``servers()`` starts one; ``servers(start=False)`` only prepares it) and
    stops them all at teardown."""
    with _servers(tmp_path) as make:
        yield make


@pytest.fixture
def server(servers: ServerFactory) -> ServerProcess:
    """One started server with a fresh home."""
    return servers()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like ``servers``, for a module's tests: what it made is stopped after the module."""
    with _servers(tmp_path_factory.mktemp("servers")) as make:
        yield make


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One started server shared by a module's tests."""
    with _servers(tmp_path_factory.mktemp("server")) as make:
        yield make()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The chaos run is opt-in: it takes minutes. ``.ci/run`` sets LEPTON_CHAOS=1."""
    if os.environ.get("LEPTON_CHAOS") == "1" or "chaos" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="the chaos run is opt-in: LEPTON_CHAOS=1 or pytest -m chaos")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
