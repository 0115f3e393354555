"""LitServe: the model behind a ``LitAPI``.

defaults: ``LitAPI()`` as documented (batch 1), one inference worker, one API server.
tuned, as its docs advise for throughput: ``max_batch_size=64, batch_timeout=0`` (take what is
queued, never wait for a window) and ``fast_queue=True`` (ZMQ instead of the Manager queue;
0.2.19 silently ignores it, LitServe issue #751, but a user following the docs sets it).

    python litserve_app.py      # BENCH_MODEL, BENCH_PORT, BENCH_VARIANT
"""

from __future__ import annotations

from typing import Any

import litserve as ls
from common import TUNED_BATCH, load_model, port, predict, predict_groups, tuned


class Api(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: Any) -> None:
        self.model = load_model()

    # No annotation: LitServe builds its FastAPI route from this one, and a string annotation
    # (from __future__) would turn the body into a query parameter.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return request["inputs"]

    def predict(self, x: Any) -> Any:
        return predict(self.model, x)

    def encode_response(self, output: Any) -> dict[str, Any]:
        return {"outputs": output}


class BatchedApi(Api):
    """Each request's rows stay together through the batch: predict splits the answers back."""

    def batch(self, inputs: list[list[list[float]]]) -> list[list[list[float]]]:
        return inputs

    def predict(self, x: Any) -> Any:
        return predict_groups(self.model, x)

    def unbatch(self, output: Any) -> Any:
        return output


if __name__ == "__main__":
    if tuned():
        server = ls.LitServer(
            BatchedApi(max_batch_size=TUNED_BATCH, batch_timeout=0.0),
            accelerator="cpu",
            fast_queue=True,
        )
    else:
        server = ls.LitServer(Api(), accelerator="cpu")
    server.run(port=port(), host="127.0.0.1", log_level="warning", generate_client_file=False)
