"""Real replica processes (``python -m lepton.serving``) on loopback: the V2 protocol through the
real ``tritonclient.http`` client, auth, SO_REUSEPORT, load failures and the drain on SIGTERM.

Every process is started by a fixture or a ``with`` block that always stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest


def clean_env(**overrides: str) -> dict[str, str]:
    # Loaded by path elsewhere, the integration conftest is not importable by name from every
    # test run, so the two small helpers a replica needs are here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    return env | {"PYTHONUNBUFFERED": "1"} | overrides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


TOKEN = "lep_0123456789abcdef_a-secret_with-underscores"
SECRET_HASH = hashlib.sha256(TOKEN.split("_", 2)[2].encode()).hexdigest()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT_S = 90.0  # a cold start imports pandas and scikit-learn: ~3 s, more on a busy box


class Replica:
    """``python -m lepton.serving ARGS``; ``url`` comes from its ``ready`` line."""

    def __init__(
        self, tmp: Path, *args: str, hashes: str = SECRET_HASH, env: dict[str, str] | None = None
    ) -> None:
        self.out = tmp / f"replica-{id(self)}.out"
        self.err = tmp / f"replica-{id(self)}.err"
        env = clean_env(LEPTON_REPLICA_TOKEN_HASHES=hashes, **(env or {}))
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lepton.serving", "--host", "127.0.0.1", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.url = ""

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_ready(self) -> Replica:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                if line.startswith("ready "):
                    self.url = line.split(" ", 1)[1].strip()
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited with {self.proc.returncode}:\n{self.stderr}")
            time.sleep(0.05)
        raise RuntimeError(f"replica not ready in {START_TIMEOUT_S} s:\n{self.stderr}")

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@contextlib.contextmanager
def replica(tmp: Path, *args: str, **kwargs: Any) -> Iterator[Replica]:
    proc = Replica(tmp, *args, **kwargs)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic regression from the built-in library, saved as a replica loads it."""
    import pandas as pd

    from lepton.algorithms.base import InputKind, NullCallbacks, Task, TrainData
    from lepton.algorithms.registry import get_algorithm

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "bp", "chol", "hr"])
    y = np.where(X["age"] - X["hr"] > 0, "sick", "well")
    algo = get_algorithm("logistic_regression")
    data = TrainData(
        task=Task.classification, kind=InputKind.tabular, X_train=X, y_train=y,
        feature_names=list(X.columns), classes=["sick", "well"],
    )  # fmt: skip
    model = algo.fit(data, algo.resolve({}), NullCallbacks())
    folder = tmp_path_factory.mktemp("model") / "heart"
    model.save(folder)
    return folder


@pytest.fixture(scope="module")
def served(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    with replica(tmp_path_factory.mktemp("served"), "--port", "0", "--model-dir", str(model_dir),
                 "--max-batch-size", "32") as proc:  # fmt: skip
        yield proc


def _expected(model_dir: Path, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    from lepton.algorithms.registry import get_algorithm

    model = get_algorithm("logistic_regression").load(model_dir)
    frame = pd.DataFrame(X, columns=["age", "bp", "chol", "hr"])
    return np.asarray(model.predict(frame)), np.asarray(model.predict_proba(frame))


def test_tritonclient_http_works_unchanged(served: Replica, model_dir: Path) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    X = np.random.default_rng(1).normal(size=(5, 4))
    labels, proba = _expected(model_dir, X)
    client = httpclient.InferenceServerClient(url=served.url.removeprefix("http://"))
    # One dict for every call, as users write it: tritonclient stores the binary header's length
    # in it, so the later all-JSON request carries a stale one, which the replica tolerates.
    auth = dict(AUTH)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("heart", headers=auth)
        meta = client.get_model_metadata("heart", headers=auth)
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]

        # The client's default: binary tensors both ways.
        tensor = httpclient.InferInput("input", list(X.shape), "FP64")
        tensor.set_data_from_numpy(X)
        result = client.infer("heart", [tensor], headers=auth)
        assert result.as_numpy("predictions").tolist() == [s.encode() for s in labels]
        np.testing.assert_allclose(result.as_numpy("probabilities"), proba, rtol=1e-12)

        # JSON tensors, FP32 input, one output asked for by name.
        small = httpclient.InferInput("input", list(X.shape), "FP32")
        small.set_data_from_numpy(X.astype(np.float32), binary_data=False)
        wanted = [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
        result = client.infer("heart", [small], outputs=wanted, headers=auth, request_id="r7")
        assert result.get_response()["id"] == "r7"
        np.testing.assert_allclose(result.as_numpy("probabilities"), proba, atol=1e-5)

        with pytest.raises(InferenceServerException, match="bearer token"):
            client.infer("heart", [tensor])
        with pytest.raises(InferenceServerException, match="unknown model 'lung'"):
            client.infer("lung", [tensor], headers=auth)
    finally:
        client.close()


def test_predict_needs_the_token_and_names_bad_fields(served: Replica) -> None:
    row = {"age": 1.0, "bp": 0.0, "chol": 0.0, "hr": -1.0}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.post("/predict", json={"rows": [row]}).status_code == 401
        wrong = http.post("/predict", json={"rows": [row]}, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        ok = http.post("/predict", json={"rows": [row]}, headers=AUTH)
        assert ok.status_code == 200 and ok.json()["predictions"] == ["sick"]
        bad = http.post("/predict", json={"rows": [{**row, "hr": "fast"}]}, headers=AUTH)
        assert bad.status_code == 422
        assert bad.json()["error"]["message"] == "column 'hr' row 0: expected a number, got 'fast'"
        assert http.get("/readyz").status_code == 200


def test_replicas_share_a_port_with_reuse_port(model_dir: Path, tmp_path: Path) -> None:
    port = str(free_port())
    args = ("--port", port, "--reuse-port", "--model-dir", str(model_dir), "--public")
    with replica(tmp_path, *args) as one, replica(tmp_path, *args) as two:
        assert one.url == two.url
        with httpx.Client(base_url=one.url, timeout=30) as http:
            answer = http.post("/predict", json={"inputs": [[0.0, 0.0, 0.0, 0.0]]})
        assert answer.status_code == 200


def test_replicas_sharing_a_port_each_have_their_own_for_the_gateway(
    model_dir: Path, tmp_path: Path
) -> None:
    port = str(free_port())
    args = ("--port", port, "--reuse-port", "--own-port", "--model-dir", str(model_dir))
    node = {"LEPTON_NODE_IP": "127.0.0.2"}  # as the Ray executor says where the replica runs
    with replica(tmp_path, *args) as one, replica(tmp_path, *args, env=node) as two:
        shared, word, own = one.url.split()
        assert word == "replica" and shared == f"http://127.0.0.1:{port}"
        assert own.startswith("http://127.0.0.1:") and own != shared
        shared_two, _, own_two = two.url.split()
        assert shared_two == shared and own_two.startswith("http://127.0.0.2:")
        for url in (own, own_two):
            answer = httpx.post(f"{url}/predict", json={"inputs": [[0.0] * 4]}, headers=AUTH)
            assert answer.status_code == 200, answer.text
        # Each own port reaches that replica alone: 5 more requests show in its count only.
        for _ in range(5):
            httpx.post(f"{own}/predict", json={"inputs": [[0.0] * 4]}, headers=AUTH)
        line = 'lepton_requests_total{route="predict",status="200"}'
        counts = [
            next(
                float(row.split()[-1])
                for row in httpx.get(f"{url}/metrics", headers=AUTH).text.splitlines()
                if row.startswith(line)
            )
            for url in (own, own_two)
        ]
        assert counts == [6.0, 1.0]


def test_load_failures_exit_nonzero_with_a_clear_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        "from lepton import Photon\n"
        "class Broken(Photon):\n"
        "    def init(self):\n"
        "        raise RuntimeError('weights.safetensors is missing')\n"
    )
    cases = [
        (["--model-dir", str(tmp_path / "nothing")], SECRET_HASH, "holds no model"),
        (
            ["--photon", f"{broken}:Broken"],
            SECRET_HASH,
            "RuntimeError: weights.safetensors is missing",
        ),
        (["--photon", f"{broken}:Nope"], SECRET_HASH, "has no Photon subclass 'Nope'"),
        (["--photon", f"{broken}:Broken"], "", "LEPTON_REPLICA_TOKEN_HASHES is empty"),
        (["--photon", f"{broken}:Broken"], "not-a-hash", "is not a sha256 hex digest"),
    ]
    for args, hashes, message in cases:
        proc = Replica(tmp_path, "--port", "0", *args, hashes=hashes)
        try:
            assert proc.wait() == 2
        finally:
            proc.stop()
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


SLOW = textwrap.dedent(
    """
    import time
    from pathlib import Path
    from lepton import Photon

    class Slow(Photon):
        @Photon.handler
        def work(self, marker: str, seconds: float) -> str:
            Path(marker).write_text("started")
            time.sleep(seconds)
            return "finished"
    """
)


def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    marker = tmp_path / "marker"
    proc = Replica(tmp_path, "--port", "0", "--photon", f"{tmp_path / 'slow.py'}:Slow", "--public")
    try:
        proc.wait_ready()
        port = int(proc.url.rsplit(":", 1)[1])
        answers: list[httpx.Response] = []

        def call() -> None:
            with httpx.Client(base_url=proc.url, timeout=60) as http:
                answers.append(http.post("/work", json={"marker": str(marker), "seconds": 1.5}))

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), proc.stderr

        proc.proc.send_signal(signal.SIGTERM)
        refused = False
        while time.monotonic() < deadline and proc.proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    refused = True
                    break
            time.sleep(0.01)
        thread.join(timeout=60)

        assert refused, "the replica kept accepting connections while draining"
        assert [a.status_code for a in answers] == [200]
        assert answers[0].json() == "finished"
        assert proc.wait() == 0
    finally:
        proc.stop()
