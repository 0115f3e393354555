"""BentoML: the model inside a ``@bentoml.service``.

defaults: a plain ``@bentoml.api`` (no batching), one worker, as the quickstart writes it.
tuned, as its docs advise: adaptive batching (``batchable=True, max_batch_size=64,
max_latency_ms=1000``) and ``workers="cpu_count"`` for a CPU-bound model. Access logs are off in
both (BentoML issue #2267: console logging alone cost ~15% throughput).

    bentoml serve bentoml_app:Model --host 127.0.0.1 --port P   # BENCH_MODEL, BENCH_VARIANT
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np
from common import TUNED_BATCH, load_model, predict, tuned

_TUNED = tuned()
_service: dict[str, Any] = {"logging": {"access": {"enabled": False}}}
if _TUNED:
    _service["workers"] = "cpu_count"
_api: dict[str, Any] = (
    {"batchable": True, "max_batch_size": TUNED_BATCH, "max_latency_ms": 1000} if _TUNED else {}
)


@bentoml.service(**_service)
class Model:
    def __init__(self) -> None:
        self.model = load_model()

    @bentoml.api(**_api)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(predict(self.model, inputs))
