"""A photon written for leptonai, ported by changing its import line, served end to end by
``lepton photon run`` and by ``python -m lepton.serving --photon``: batching, a File input and a
streamed output, through real HTTP."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Cli

# As in leptonai's docs, but for the first line (was: from leptonai.photon import ...).
PORTED = textwrap.dedent(
    """
    from lepton.photon import File, Photon, StreamingResponse
    import hashlib
    import time


    class Counter(Photon):
        requirement_dependency = ["numpy"]

        def init(self):
            self.unit = 1.0

        # leptonai needed both options on a batched handler; a lone request here never waits.
        @Photon.handler(max_batch_size=16, max_wait_time=0.001)
        def square(self, x: float) -> float:
            time.sleep(0.3)  # a slow model: requests sent meanwhile queue and batch
            return [v * v * self.unit for v in x]

        @Photon.handler
        def checksum(self, file: File) -> str:
            return hashlib.sha256(file.get_content()).hexdigest()

        @Photon.handler
        def words(self, text: str) -> StreamingResponse:
            for word in text.split():
                yield word + "\\n"
    """
)
START_TIMEOUT_S = 90.0
LEPTON = Path(sys.executable).parent / "lepton"


def clean_env(**overrides: str) -> dict[str, str]:
    # The shared helper lives in a conftest that is not importable by name from every run.
    return {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")} | overrides


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.proc, self.out, self.err = proc, out, err
        self.url = ""
        self.headers: dict[str, str] = {}

    def wait_ready(self) -> Served:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.out.read_text().splitlines():
                if line.startswith("token: "):
                    self.headers = {"Authorization": f"Bearer {line.split()[1]}"}
                if line.startswith("ready "):
                    self.url = line.split()[1]
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}: {self.err.read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"not ready in {START_TIMEOUT_S} s: {self.err.read_text()}")


@pytest.fixture(params=["lepton photon run", "python -m lepton.serving"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    source = tmp_path / "counter.py"
    source.write_text(PORTED)
    if request.param == "lepton photon run":
        command = [str(LEPTON), "photon", "run", "-m", f"{source}:Counter", "--port", "0"]
        env = clean_env(LEPTON_HOME=str(tmp_path / "home"))
    else:
        command = [sys.executable, "-m", "lepton.serving", "--port", "0"]
        command += ["--photon", f"{source}:Counter", "--public"]
        env = clean_env()
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
    served = Served(proc, out, err)
    try:
        yield served.wait_ready()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, err.read_text()  # drained and exited cleanly


def batches(metrics: str) -> tuple[float, float]:
    values = {}
    for line in metrics.splitlines():
        if line.startswith('lepton_batch_size_count{route="/square"}'):
            values["count"] = float(line.split()[-1])
        if line.startswith('lepton_batch_size_sum{route="/square"}'):
            values["sum"] = float(line.split()[-1])
    return values["count"], values["sum"]


def test_ported_photon_batches_takes_files_and_streams(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=60) as http:
        if served.headers:  # lepton photon run made a token: nothing is served without it
            assert (
                http.post("/square", json={"x": 2}, headers={"Authorization": ""}).status_code
                == 401
            )

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: http.post("/square", json={"x": i}), range(12)))
        assert [a.json() for a in answers] == [float(i * i) for i in range(12)]
        count, total = batches(http.get("/metrics").text)
        assert total == 12 and count < 12  # concurrent callers shared handler calls

        content = bytes(range(256)) * 4
        digest = http.post("/checksum", files={"file": ("blob.bin", content)})
        assert digest.json() == hashlib.sha256(content).hexdigest()

        with http.stream("POST", "/words", json={"text": "a photon streams words"}) as stream:
            chunks = list(stream.iter_text())
        assert "".join(chunks) == "a\nphoton\nstreams\nwords\n"

        bad = http.post("/square", json={"x": "two"})
        assert bad.status_code == 422 and "field 'x'" in bad.json()["error"]["message"]


# --- the author's mistakes, as `lepton photon push` and `run` meet them -------------------------

BROKEN_IMPORT = textwrap.dedent(
    """
    from lepton.photon import Photon
    from json import no_such_name


    class Echo(Photon):
        @Photon.handler
        def echo(self, text: str) -> str:
            return text
    """
)
FAILING_INIT = textwrap.dedent(
    """
    from lepton.photon import Photon


    class Echo(Photon):
        def init(self):
            self.weights = {}["weights"]

        @Photon.handler
        def echo(self, text: str) -> str:
            return text
    """
)


def test_push_names_the_failed_import_and_leaves_no_temp_folder(
    lepton: Cli, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "broken.py").write_text(BROKEN_IMPORT)
    (tmp_path / "good.py").write_text(BROKEN_IMPORT.replace("from json import no_such_name", ""))

    broken = lepton("photon", "push", f"{tmp_path / 'broken.py'}:Echo", env={"TMPDIR": str(temp)})
    good = lepton("photon", "push", f"{tmp_path / 'good.py'}:Echo", env={"TMPDIR": str(temp)})

    assert broken.code == 2, broken.err  # a user error, as everywhere in the CLI
    assert "Traceback" not in broken.err
    assert "cannot import name 'no_such_name' from 'json'" in broken.err
    assert "broken.py line 3: from json import no_such_name" in broken.err
    assert "Echo.requirement_dependency" in broken.err
    assert good.code == 0, good.err
    assert list(temp.iterdir()) == []  # each push used to leave an empty lepton-photon-* folder


def test_run_says_which_line_of_init_failed(cli: type[Cli], tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(FAILING_INIT)

    done = cli(tmp_path / "home")("photon", "run", "-m", f"{tmp_path / 'app.py'}:Echo", "-p", "0")

    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    assert "error: Echo.init() failed with KeyError: 'weights'" in done.err
    assert 'app.py line 7: self.weights = {}["weights"]' in done.err
