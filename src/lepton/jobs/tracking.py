"""Experiment tracking inside a job: metrics, checkpoints, and registering the model.

:class:`Tracker` is the runner's side; the module functions ``lepton.log``, ``lepton.save_model``
and ``lepton.load_dataset`` are what a user's own script calls. Outside a job ``log`` prints and
the others say how to run the script as a job.
"""

from __future__ import annotations

import math
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton.errors import ConfigError, LeptonError, NotFound

if TYPE_CHECKING:
    import pandas as pd

    from lepton.client import Client
    from lepton.schemas import ModelVersion

__all__ = ["Tracker", "current", "load_dataset", "log", "save_model"]

_FLUSH_S = 2.0  # metrics leave in batches: one request (and one audit event) per 2 s, not per step


class Tracker:
    """A running job's link to the control plane. It is also the ``Callbacks`` of the built-in
    algorithms: metrics, checkpoints, and whether to stop (cancelled or out of time)."""

    def __init__(self, client: Client, job_id: str, *, time_budget_s: float | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.deadline = time.monotonic() + time_budget_s if time_budget_s else None
        self.stopping = False  # set by SIGTERM: the job was cancelled
        self._points: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self.resume_state = self._fetch_checkpoint()

    def _fetch_checkpoint(self) -> bytes | None:
        try:
            return self.client.request("GET", f"/api/v1/jobs/{self.job_id}/checkpoint").content
        except NotFound:
            return None

    def install_signal_handler(self) -> None:
        def on_term(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_term)

    def log(self, step: int, **metrics: float) -> None:
        with self._lock:
            for name, value in metrics.items():
                value = float(value)
                if math.isfinite(value):
                    self._points.append({"step": int(step), "name": name[:64], "value": value})
            due = time.monotonic() - self._last_flush >= _FLUSH_S
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            points, self._points = self._points, []
            self._last_flush = time.monotonic()
        for start in range(0, len(points), 5000):
            self.client.request(
                "POST",
                f"/api/v1/jobs/{self.job_id}/metrics",
                json={"points": points[start : start + 5000]},
            )

    def checkpoint(self, state: bytes) -> None:
        self.flush()
        self.client.request(
            "PUT",
            f"/api/v1/jobs/{self.job_id}/checkpoint",
            content=state,
            headers={"Content-Type": "application/octet-stream"},
        )

    def should_stop(self) -> bool:
        return self.stopping or (self.deadline is not None and time.monotonic() > self.deadline)

    def register(
        self,
        model_dir: Path,
        *,
        flavour: str,
        algorithm: str,
        task: str,
        signature: dict[str, Any],
        metrics: dict[str, float],
        params: dict[str, Any],
        leaderboard: list[dict[str, Any]] | None = None,
        name: str | None = None,
        explanations: dict[str, Any] | None = None,
        explanation_plot: bytes | None = None,
    ) -> ModelVersion:
        """Pack ``model_dir`` (safe files only), upload it and register a model version, with
        its global explanation (facts, and the PNG uploaded as an artifact of the job)."""
        from lepton.registry.artifacts import pack
        from lepton.schemas import ModelVersion

        self.flush()
        with tempfile.TemporaryDirectory(prefix="lepton-pack-") as tmp:
            archive = Path(tmp) / "model.zip"
            pack(model_dir, archive)
            digest = self.upload(archive.read_bytes())
        if explanations is not None and explanation_plot is not None:
            explanations = {**explanations, "plot": self.upload(explanation_plot)}
        body = {
            "artifact_digest": digest,
            "name": name,
            "flavour": flavour,
            "algorithm": algorithm,
            "task": task,
            "signature": signature,
            "metrics": metrics,
            "params": params,
            "leaderboard": leaderboard or [],
            "explanations": explanations,
        }
        response = self.client.request("POST", f"/api/v1/jobs/{self.job_id}/model", json=body)
        self.registered = ModelVersion.model_validate(response.json())
        return self.registered

    def upload(self, content: bytes) -> str:
        """Store bytes the job produced as an artifact of the job; returns their digest."""
        from lepton.schemas import Blob

        answer = self.client.request(
            "POST",
            f"/api/v1/jobs/{self.job_id}/artifacts",
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return Blob.model_validate(answer.json()).digest

    def dataset(self) -> pd.DataFrame:
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="lepton-data-") as tmp:
            path = self.client.download(
                f"/api/v1/jobs/{self.job_id}/data", Path(tmp) / "data.parquet"
            )
            return pq.read_table(path).to_pandas()


_current: Tracker | None = None


def current() -> Tracker | None:
    """The tracker of the job this process runs, if any."""
    return _current


def set_current(tracker: Tracker | None) -> None:
    global _current
    _current = tracker


def log(step: int, **metrics: float) -> None:
    """Record metrics at a step: ``lepton.log(step=epoch, loss=0.3, accuracy=0.91)``. Outside a
    job the metrics are printed."""
    if _current is None:
        print(f"step {step}: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
        return
    _current.log(step, **metrics)


def load_dataset() -> pd.DataFrame:
    """The dataset the job was submitted with (``lepton run script.py --dataset NAME``)."""
    if _current is None:
        raise ConfigError(
            "load_dataset() reads the dataset of a Lepton job, and this is not one",
            fix="run the script as a job: lepton run script.py --dataset NAME",
        )
    return _current.dataset()


def save_model(
    model: Any, *, name: str | None = None, metrics: dict[str, float] | None = None
) -> ModelVersion:
    """Register ``model`` (a scikit-learn estimator or a PyTorch module) as a new model version
    of this job, in a safe format (skops; safetensors for PyTorch weights)."""
    if _current is None:
        raise ConfigError(
            "save_model() registers a model from a Lepton job, and this is not one",
            fix="run the script as a job: lepton run script.py",
        )
    from lepton.jobs.user_models import save_user_model

    with tempfile.TemporaryDirectory(prefix="lepton-model-") as tmp:
        flavour, signature = save_user_model(model, Path(tmp))
        try:
            return _current.register(
                Path(tmp),
                flavour=flavour,
                algorithm=f"custom:{type(model).__name__}",
                task="custom",
                signature=signature,
                metrics=metrics or {},
                params={},
                name=name,
            )
        except LeptonError:
            raise
