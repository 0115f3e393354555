"""Keras in a Lepton job: :class:`LeptonCallback` reports each epoch's metrics to the job, and
stops training when the job is cancelled or out of its time.

    import keras
    import lepton
    from lepton.keras import LeptonCallback

    (X, y) = lepton.load_arrays(split="train")
    model.fit(X, y, epochs=5, callbacks=[LeptonCallback()])
    lepton.save_model(model, metrics={"accuracy": accuracy})

Outside a job the metrics are printed, as ``lepton.log`` does. Needs ``pip install
'lepton[keras]'``; jobs run Keras on the PyTorch backend unless ``KERAS_BACKEND`` says another.
"""

from __future__ import annotations

import math
import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # the backend Lepton installs

try:
    import keras
except ImportError as exc:  # pragma: no cover - depends on the install
    from lepton.errors import ConfigError

    raise ConfigError(
        "lepton.keras needs Keras, which is not installed", fix="pip install 'lepton[keras]'"
    ) from exc

from lepton.jobs import tracking

__all__ = ["LeptonCallback"]


class LeptonCallback(keras.callbacks.Callback):  # type: ignore[misc]  # Keras has no types
    """Logs ``logs`` (loss, accuracy, val_*) at the end of each epoch as step ``epoch + 1``,
    and every ``every_n_batches`` training batches too when that is set (steps counted in
    batches then, under names prefixed ``batch_``)."""

    def __init__(self, every_n_batches: int = 0) -> None:
        super().__init__()
        if every_n_batches < 0:
            raise ValueError("every_n_batches must be 0 (epochs only) or a positive count")
        self.every_n_batches = every_n_batches
        self._batches = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1
        if self.every_n_batches and self._batches % self.every_n_batches == 0:
            metrics = {f"batch_{k}": v for k, v in _numbers(logs).items()}
            if metrics:
                tracking.log(self._batches, **metrics)
        self._stop_if_asked()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = _numbers(logs)
        if metrics:
            tracking.log(epoch + 1, **metrics)
        self._stop_if_asked()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        tracker = tracking.current()
        if tracker is not None:
            tracker.flush()

    def _stop_if_asked(self) -> None:
        tracker = tracking.current()
        if tracker is not None and tracker.should_stop() and self.model is not None:
            self.model.stop_training = True


def _numbers(logs: dict[str, Any] | None) -> dict[str, float]:
    found = {}
    for name, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            found[str(name)] = number
    return found
