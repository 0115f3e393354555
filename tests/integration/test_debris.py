"""A control plane leaves nothing behind, with real processes.

- Jobs and deployments that end leave no ``<defunct>`` child of the control plane: every
  runner and replica it started is waited for, also when the runner reported its end itself.
- A control plane killed in the middle of a push leaves its spool folder; the next start
  removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from test_jobs_process import runner_pids

from lepton import Client
from lepton.executors.base import Launch, ReplicaLaunch
from lepton.executors.local import LocalExecutor
from lepton.sandbox import Sandbox
from lepton.schemas import JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

# Runners and replicas start in seconds each, but several on a loaded 2-core machine outlast the
# suite's 120 s default.
pytestmark = pytest.mark.timeout(600)

JOB_TIMEOUT_S = 150.0
# A bound, not a measurement: the scheduler passes every 0.5 s, so a child that ended is waited
# for within a second or two; a zombie left behind stays forever.
REAP_TIMEOUT_S = 15.0

ECHO = """
from lepton.photon import Photon


class Echo(Photon):
    @Photon.handler
    def echo(self, text: str = "") -> dict:
        return {"text": text}
"""


def children(pid: int) -> dict[int, str]:
    """The children of ``pid``, each with its state letter (``Z`` for a zombie)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(entry.name)] = fields[0]
    return found


def zombies(pid: int) -> list[int]:
    return sorted(child for child, state in children(pid).items() if state == "Z")


def state(pid: int) -> str | None:
    """The state letter of ``pid``; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, settings=Settings(home=Path("/nonexistent"))) as c:
        yield c


def server_pid(server: ServerProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


@pytest.mark.parametrize("mode", ["none", "bubblewrap"])
def test_the_executor_waits_for_every_process_it_started(tmp_path: Path, mode: str) -> None:
    if mode == "bubblewrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it")
    home = tmp_path / "home"
    executor = LocalExecutor(Sandbox.detect(Settings(home=home, sandbox=mode)))
    # Short real processes: runners whose control plane does not answer, replicas missing
    # what to serve.
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {"LEPTON_URL": f"http://127.0.0.1:{closed}", "LEPTON_TOKEN": "unused"}
    runners = {
        executor.submit(Launch(f"job{i}", 1, env, home / "jobs" / f"job{i}" / "log")): f"job{i}"
        for i in range(3)
    }
    folder = home / "deployments" / "d"
    replicas = [
        executor.start_replica(
            ReplicaLaunch(("--port", "0"), {}, folder / "replicas" / f"r{i}.log", str(folder))
        )
        for i in range(2)
    ]
    started = [*runners, *replicas]
    wait_for("every process to end", lambda: all(state(p) in ("Z", None) for p in started), 120)

    executor.reap()  # what the scheduler does every pass, whether or not anyone asks

    assert {p: state(p) for p in started if state(p) is not None} == {}
    assert [p for p in home.rglob("*work")] == [], "an ended process's working folder is left"
    # The exit codes were kept for the status calls that come later.
    assert all(executor.status(job, pid).exit_code not in (None, 0) for pid, job in runners.items())
    assert all(executor.replica_status(pid, str(folder)).exit_code == 2 for pid in replicas)


# In the whole suite's order, a Popen of an earlier test is sometimes collected while this one
# runs (its "still running" warning lands here); this test's own children are all waited for.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("mode", ["none", "bubblewrap"])
def test_a_sweep_stops_runners_whose_job_is_not_running_that_attempt(
    tmp_path: Path, mode: str
) -> None:
    if mode == "bubblewrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it")
    home = tmp_path / "home"
    executor = LocalExecutor(Sandbox.detect(Settings(home=home, sandbox=mode)))
    runners: dict[str, int] = {}
    with socket.socket() as silent:  # accepts, never answers: the runners wait on their first call
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {"LEPTON_URL": f"http://127.0.0.1:{silent.getsockname()[1]}", "LEPTON_TOKEN": "x"}
        try:
            for job in ("kept", "ended", "moved"):
                launch = Launch(job, 1, {**env, "LEPTON_JOB_ATTEMPT": "1"}, home / job / "log")
                runners[job] = executor.submit(launch)
            # Each runner's own process, inside its sandbox, not only bubblewrap around it.
            wait_for("the runners to start", lambda: all(runner_pids(j) for j in runners), 30)

            # Another Lepton on this machine (another LEPTON_HOME) has jobs of its own.
            other = LocalExecutor(Sandbox.detect(Settings(home=tmp_path / "other", sandbox=mode)))
            assert other.sweep({}) == []
            # "ended" is no longer running at all; "moved" runs a later attempt.
            stopped = executor.sweep({"kept": 1, "moved": 2})

            swept = sorted(line.split(" of job ")[1].split()[0] for line in stopped)
            assert swept == ["ended", "moved"], stopped
            for pid in (runners["ended"], runners["moved"]):
                wait_for("a swept runner to go", lambda p=pid: state(p) in ("Z", None), 30)
            assert executor.status("kept", runners["kept"]).alive
            assert executor.sweep({"kept": 1}) == []
        finally:
            for pid in runners.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            wait_for(
                "every runner to go",
                lambda: all(state(p) in ("Z", None) for p in runners.values()),
                30,
            )
            executor.reap()


def test_finished_jobs_leave_no_zombie_children(
    client: Client, server: ServerProcess, tmp_path: Path
) -> None:
    script = tmp_path / "short.py"
    script.write_text("import lepton\nlepton.log(step=0, loss=1.0)\n")
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit(3)\n")  # ends without reporting: the scheduler sees it
    jobs = [client.jobs.run_script(script) for _ in range(3)] + [client.jobs.run_script(crash)]
    states = [client.jobs.wait(j.id, timeout_s=JOB_TIMEOUT_S, poll_s=0.1).state for j in jobs]
    assert states == [JobState.succeeded] * 3 + [JobState.failed]

    pid = server_pid(server)
    with contextlib.suppress(AssertionError):
        wait_for("the runners to be waited for", lambda: not zombies(pid), REAP_TIMEOUT_S)
    assert zombies(pid) == [], f"the control plane has <defunct> children: {children(pid)}"


def test_removed_replicas_leave_no_zombie_children(
    client: Client, server: ServerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "echo.py").write_text(textwrap.dedent(ECHO))
    client.photons.push(folder, entry="echo.py:Echo", name="echo")
    seen: list[int] = []
    try:
        for name in ("first", "second"):
            created = client.deployments.create(
                photon="echo", name=name, replicas=2, public=True, wait_timeout_s=120
            )
            answer = httpx.post(f"{created.url}/echo", json={"text": "hi"}, timeout=30)
            assert answer.status_code == 200, answer.text
            seen += [r.pid for r in client.deployments.get(name).replica_states if r.pid]
            client.deployments.delete(name, timeout_s=60)

        pid = server_pid(server)
        with contextlib.suppress(AssertionError):
            wait_for("the replicas to be waited for", lambda: not zombies(pid), REAP_TIMEOUT_S)
        assert zombies(pid) == [], f"the control plane has <defunct> children: {children(pid)}"
    finally:
        for replica in seen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica, signal.SIGKILL)


def test_a_push_cut_by_a_kill_leaves_no_spool_folder_after_restart(
    servers: ServerFactory,
) -> None:
    server = servers()
    work = server.home / "work"
    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port), timeout=10) as stalled:
        # Half a push: the server spools what arrived and waits for the rest, which never comes.
        head = (
            f"POST /api/v1/datasets/cut/versions?source_name=cut.csv HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: text/csv\r\n"
            "Content-Length: 10000000\r\n\r\n"
        )
        stalled.sendall(head.encode() + b"a,b\n" + b"1,2\n" * 50_000)
        wait_for("the push to be spooled", lambda: any(work.glob("*/*")), 30.0)
        server.kill()
    left = sorted(p.name for p in work.iterdir())
    assert left, "the kill left no spool folder: the test did not cut a push"

    server.start()

    assert sorted(p.name for p in work.iterdir()) == []
    assert "removed 1 spool folder" in server.errors
