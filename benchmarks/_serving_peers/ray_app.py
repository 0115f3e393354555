"""Ray Serve: the model in a deployment behind Ray's HTTP proxy, on a local Ray of 2 CPUs.

defaults: ``@serve.deployment`` and ``@serve.batch`` with their defaults (``max_ongoing_requests``
5, batches of 10, a 10 ms window), as the batching guide writes it.
tuned, as its docs advise: ``max_ongoing_requests`` above the batch (128) so a batch can fill
(Ray issue #43288), ``max_batch_size=64, batch_wait_timeout_s=0``, and
``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (set by benchmarks/serving.py). Not used: the HAProxy
ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``), which binds every interface.

    python ray_app.py      # BENCH_MODEL, BENCH_PORT, BENCH_VARIANT
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import orjson
import ray
from common import TUNED_BATCH, load_model, port, predict_groups, ready, tuned
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

_TUNED = tuned()
_deployment: dict[str, Any] = {"max_ongoing_requests": 128} if _TUNED else {}
_batch: dict[str, Any] = (
    {"max_batch_size": TUNED_BATCH, "batch_wait_timeout_s": 0.0} if _TUNED else {}
)


@serve.deployment(**_deployment)
class Model:
    def __init__(self) -> None:
        self.model = load_model()

    @serve.batch(**_batch)  # type: ignore[untyped-decorator]
    async def infer(self, requests: list[list[list[float]]]) -> list[list[list[float]]]:
        return predict_groups(self.model, requests)

    async def __call__(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        outputs = await self.infer(body["inputs"])
        return Response(orjson.dumps({"outputs": outputs}), media_type="application/json")


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(
        http_options={"host": "127.0.0.1", "port": port()},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    serve.run(Model.bind(), route_prefix="/predict")
    ready(f"http://127.0.0.1:{port()}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
