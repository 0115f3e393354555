"""Experiment tracking inside a job: metrics, checkpoints, and registering the model.

:class:`Tracker` is the runner's side; the module functions ``lepton.log``, ``lepton.save_model``,
``lepton.load_dataset`` and ``lepton.load_arrays`` are what a user's own script calls (and
``lepton.keras.LeptonCallback`` for Keras). Outside a job ``log`` prints and
the others say how to run the script as a job.
"""

from __future__ import annotations

import math
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton.errors import ConfigError, InvalidRequest, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from lepton.client import Client
    from lepton.data.arrays import Channels
    from lepton.schemas import DatasetVersionDetail, ModelVersion

__all__ = ["SPLITS", "Tracker", "current", "load_arrays", "load_dataset", "log", "save_model"]

SPLITS = ("train", "validation", "test")
"""The parts of a split, in the order of their codes in a stored assignment."""

_FLUSH_S = 2.0  # metrics leave in batches: one request (and one audit event) per 2 s, not per step


class Tracker:
    """A running job's link to the control plane. It is also the ``Callbacks`` of the built-in
    algorithms: metrics, checkpoints, and whether to stop (cancelled or out of time)."""

    def __init__(
        self,
        client: Client,
        job_id: str,
        *,
        time_budget_s: float | None = None,
        reporting: bool = True,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.reporting = reporting
        """False on the workers of a data-parallel job other than rank 0: their metrics and
        checkpoints would repeat rank 0's, so they are dropped, and they register nothing."""
        self.deadline = time.monotonic() + time_budget_s if time_budget_s else None
        self.stopping = False  # set by SIGTERM: the job was cancelled
        self._points: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self.resume_state = self._fetch_checkpoint()
        self.image_inputs: dict[str, Any] = {}
        """How ``load_arrays`` gave images (range, channel order): what a model trained on them
        takes, so ``save_model`` records it and an uploaded image is served the same way."""

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
        if not self.reporting:
            return
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
            # Repeatable: a batch whose answer was cut is sent again, with the same id, and
            # the control plane stores it once.
            self.client.request(
                "POST",
                f"/api/v1/jobs/{self.job_id}/metrics",
                json={"points": points[start : start + 5000], "batch": uuid.uuid4().hex},
                repeatable=True,
            )

    def checkpoint(self, state: bytes) -> None:
        if not self.reporting:
            return
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

    def dataset(self, split: str | None = None) -> pd.DataFrame:
        """The job's dataset version; only the rows of ``split`` when it is given."""
        import numpy as np
        import pyarrow.parquet as pq

        if split is not None and split not in SPLITS:
            raise InvalidRequest(
                f"there is no split {split!r}", fix=f"ask for one of {', '.join(SPLITS)}"
            )
        with tempfile.TemporaryDirectory(prefix="lepton-data-") as tmp:
            path = self.client.download(
                f"/api/v1/jobs/{self.job_id}/data", Path(tmp) / "data.parquet"
            )
            frame = pq.read_table(path).to_pandas()
            if split is None:
                return frame
            assignment = np.load(
                self.client.download(f"/api/v1/jobs/{self.job_id}/split", Path(tmp) / "split.npy"),
                allow_pickle=False,
            )
        return frame[assignment == SPLITS.index(split)].reset_index(drop=True)

    def dataset_info(self) -> DatasetVersionDetail:
        """Schema and target of the job's dataset version."""
        from lepton.schemas import DatasetVersionDetail

        answer = self.client.request("GET", f"/api/v1/jobs/{self.job_id}/dataset")
        return DatasetVersionDetail.model_validate(answer.json())


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


def _tracker(doing: str, fix: str) -> Tracker:
    if _current is None:
        raise ConfigError(f"{doing} in a Lepton job, and this is not one", fix=fix)
    return _current


_RUN_WITH_DATA = "run the script as a job: lepton run script.py --dataset NAME"


def load_dataset(split: str | None = None) -> pd.DataFrame:
    """The dataset the job was submitted with (``lepton run script.py --dataset NAME``) as a
    DataFrame: every row, or those of ``split`` (``train``, ``validation`` or ``test``, as the
    job's split divides them: ``lepton run --validation 0.1 --test 0.2``). Images arrive as
    their PNG bytes; :func:`load_arrays` decodes them."""
    return _tracker("load_dataset() reads the dataset", _RUN_WITH_DATA).dataset(split)


def load_arrays(
    split: str | None = None, *, channels: Channels = "last", target: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The job's dataset as ``(X, y)`` arrays for a framework: images as float32 in [0, 1] of
    shape ``(N, H, W, C)`` (``channels="first"``: ``(N, C, H, W)`` for PyTorch), tables as the
    float32 numeric and boolean columns; ``y`` the target column as stored (the dataset's
    target unless ``target`` names another)."""
    from lepton.data.arrays import to_arrays

    tracker = _tracker("load_arrays() reads the dataset", _RUN_WITH_DATA)
    info = tracker.dataset_info()
    X, y = to_arrays(tracker.dataset(split), info.schema_, target or info.target, channels=channels)
    if X.ndim == 4:  # images, scaled to [0, 1]
        tracker.image_inputs = {"pixel_range": [0.0, 1.0], "channels": channels}
    return X, y


def save_model(
    model: Any,
    *,
    name: str | None = None,
    metrics: dict[str, float] | None = None,
    signature: dict[str, Any] | None = None,
    background: Any = None,
) -> ModelVersion | None:
    """Register ``model`` as a new model version of this job, in a format a replica serves
    without the script's code: scikit-learn estimators and pipelines (skops), PyTorch modules
    and Keras 3 models (exported to ONNX), XGBoost and LightGBM models (their own JSON / text
    formats). Anything else is refused with what is accepted. In a job of several workers,
    rank 0 registers and the others get None.

    Args:
        name: the model's name; the job's dataset's name by default.
        metrics: what the script measured (``{"accuracy": 0.98}``), shown on the model card.
        signature: the inputs (and classes) where the model does not say them itself, as for
            ``client.models.register``.
        background: training rows of a tabular model, packed with it for ``/explain`` and
            summarised on the model card; for an image classifier, images (64 are used) whose
            saliency the card summarises.
    """
    from lepton.registry.byo import prepare_model
    from lepton.registry.explanations import explain_prepared

    tracker = _tracker(
        "save_model() registers a model", "run the script as a job: lepton run script.py"
    )
    if not tracker.reporting:  # a data-parallel worker other than rank 0: rank 0 registers
        return None
    with tempfile.TemporaryDirectory(prefix="lepton-model-") as tmp:
        folder = Path(tmp)
        flavour, algorithm, task, prepared = prepare_model(
            model, folder, signature, image_inputs=tracker.image_inputs
        )
        explanations = plot = None
        if background is not None:
            explanations, plot = explain_prepared(folder, prepared, background)
        return tracker.register(
            folder,
            flavour=flavour,
            algorithm=f"custom:{algorithm}",
            task=task,
            signature=prepared,
            metrics=metrics or {},
            params={},
            name=name,
            explanations=explanations,
            explanation_plot=plot,
        )
