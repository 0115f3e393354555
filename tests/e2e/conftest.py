"""The CLI as a user runs it: ``lepton`` subprocesses against a server started by ``lepton up``."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest


def _integration_helpers() -> ModuleType:
    # The server helper lives in tests/integration/conftest.py. Two rootless conftest modules
    # would both be named "conftest", so load it under a name of its own instead.
    path = Path(__file__).parents[1] / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("lepton_integration_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _integration_helpers()
LEPTON: Path = _helpers.LEPTON
ServerProcess = _helpers.ServerProcess
clean_env = _helpers.clean_env

# 80 columns, as in a default terminal: tables must stay readable (and ids whole) at that width.
COLUMNS = 80


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Cli:
    """Runs ``lepton ARGS`` with ``LEPTON_HOME=home`` and no other ``LEPTON_*`` variable."""

    home: Path

    def __call__(
        self,
        *args: str,
        columns: int = COLUMNS,
        timeout: float = 60,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run it; ``stdin`` is piped in (none by default, as from a script without input);
        ``env`` adds variables (``LEPTON_TOKEN``, ``TMPDIR``)."""
        env = clean_env(LEPTON_HOME=str(self.home), COLUMNS=str(columns), **(env or {}))
        env.pop("LINES", None)
        done = subprocess.run(
            [str(LEPTON), *args],
            env=env,
            **({"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``lepton up`` on a free loopback port, shared by a module; stopped at its end."""
    proc = ServerProcess(tmp_path_factory.mktemp("e2e") / "home")
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def lepton(server: ServerProcess) -> Cli:
    """The CLI of the user who ran ``lepton up``: it shares the server's home, so the saved
    credentials are all it needs."""
    return Cli(server.home)


@pytest.fixture
def cli() -> type[Cli]:
    """``cli(home)``: the CLI of another user, with a home of their own."""
    return Cli


@pytest.fixture
def stranger(tmp_path: Path) -> Cli:
    """The CLI of a user with an empty home: no credentials, no server configured."""
    return Cli(tmp_path / "stranger-home")
