"""The built-in model photon in-process: /predict in its three shapes, 422s that name the field,
failures that stay with their caller, /explain's seam, and the V2 protocol's JSON form."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import numpy as np
import orjson
import pytest
from PIL import Image

from lepton.serving.runner import ReplicaConfig, served_model_app

COLUMNS = [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}]


class Linear:
    """A classifier whose answer is easy to check: p(pos) = 1 if a + b > 0."""

    task = "classification"
    classes: ClassVar[list[str]] = ["neg", "pos"]

    def __init__(self, signature: dict[str, Any] | None = None) -> None:
        self.signature = signature or {"inputs": COLUMNS, "outputs": {"task": "classification"}}
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[np.argmax(self.predict_proba(X), axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        self.calls.append(len(X))
        self.entered.set()
        assert self.gate.wait(30)
        score = (X["a"].to_numpy(dtype=float) + X["b"].to_numpy(dtype=float) > 0).astype(float)
        if np.isnan(X["a"].to_numpy(dtype=float)).any():
            raise FloatingPointError("NaN reached the model")
        return np.column_stack([1 - score, score])


class Pixels:
    """A regressor on 4x4 grey images: the mean pixel."""

    task = "regression"
    classes = None
    signature: ClassVar[dict[str, Any]] = {
        "inputs": {"shape": [4, 4], "dtype": "uint8"},
        "outputs": {"task": "regression"},
    }

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float).reshape(len(X), -1).mean(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        raise AssertionError("a regressor has no probabilities")


class Attributions:
    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Any:
        rows = [{"a": float(a), "b": float(b)} for a, b in zip(X["a"], X["b"], strict=True)]
        return {"rows": rows, "target": target, "overlay": overlay}


@contextlib.asynccontextmanager
async def serve(
    model: Any, explainer: Any = None, **config: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = served_model_app(
        model, ReplicaConfig(token_hashes=None, **config), name="heart", explainer=explainer
    )
    app.start(asyncio.get_running_loop())
    if isinstance(model, Linear):  # forget the warm-up call on zeros
        assert model.calls == [1]
        model.calls.clear()
        model.entered.clear()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://replica"
        ) as client:
            yield client
    finally:
        model_gate = getattr(model, "gate", None)
        if model_gate is not None:
            model_gate.set()
        app.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def message(answer: httpx.Response) -> str:
    text: str = answer.json()["error"]["message"]
    return text


def test_rows_columns_and_inputs_all_predict() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Linear()) as c:
            return [
                await c.post("/predict", json={"rows": [{"a": 1.5, "b": 0}, {"a": -3, "b": 1}]}),
                await c.post("/predict", json={"columns": {"a": [1.5, -3], "b": [0, 1]}}),
                await c.post("/predict", json={"inputs": [[1.5, 0], [-3, 1]]}),
                await c.post("/predict", json={"inputs": [2, 2]}),
            ]

    rows, columns, inputs, one = run(scenario())

    for answer in (rows, columns, inputs):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "predictions": ["pos", "neg"],
            "probabilities": [[0.0, 1.0], [1.0, 0.0]],
            "classes": ["neg", "pos"],
        }
    assert one.json()["predictions"] == ["pos"]


def test_wrong_shape_type_or_missing_column_is_422_naming_it() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Linear()) as c:
            return [
                await c.post("/predict", json={"rows": [{"a": 1.0}]}),
                await c.post("/predict", json={"rows": [{"a": 1.0, "b": "seven"}]}),
                await c.post("/predict", json={"rows": [{"a": 1.0, "b": 2, "c": 3}]}),
                await c.post("/predict", json={"inputs": [[1.0, 2.0, 3.0]]}),
                await c.post("/predict", json={"columns": {"a": [1.0, 2.0], "b": [1]}}),
                await c.post("/predict", json={"columns": {"b": [1]}}),
                await c.post("/predict", json=[1, 2]),
                await c.post(
                    "/predict", content=b"{oops", headers={"content-type": "application/json"}
                ),
            ]

    answers = run(scenario())

    assert all(a.status_code == 422 for a in answers), [a.text for a in answers]
    missing, wrong_type, extra, wrong_shape, ragged, missing_col, not_object, garbled = answers
    assert message(missing).startswith("rows[0] lacks column 'b'; the model takes: a, b")
    assert message(wrong_type) == "column 'b' row 0: expected a number, got 'seven'"
    assert message(extra).startswith("rows[0] has column 'c'")
    assert message(wrong_shape).startswith("inputs row 0 has 3 values; the model takes 2: a, b")
    assert "column 'b' has 1 values" in message(ragged)
    assert message(missing_col).startswith("columns lack 'a'")
    assert "rows, columns or inputs" in message(not_object)
    assert message(garbled).startswith("the body is not JSON")


def test_lists_flags_and_non_json_numbers_in_numeric_columns_are_422_saying_what_to_send() -> None:
    nan = b'{"inputs": [[NaN, 1]]}'

    async def scenario() -> list[httpx.Response]:
        async with serve(Linear(), lambda model: Attributions()) as c:
            return [
                await c.post("/predict", json={"inputs": [[1.0, [2, 3]]]}),
                await c.post("/predict", json={"rows": [{"a": [1.0], "b": 2}]}),
                await c.post("/predict", json={"columns": {"a": [1.0, [2.0]], "b": [1, 2]}}),
                await c.post("/predict", json={"inputs": [[True, 3]]}),
                await c.post("/predict", json={"rows": [{"a": 1.0, "b": False}]}),
                await c.post("/explain", json={"inputs": [[1.0, [2, 3]]]}),
                await c.post("/predict", content=nan, headers={"content-type": "application/json"}),
                await c.post(
                    "/predict",
                    content=b'{"rows": [{"a": -Infinity, "b": 1}]}',
                    headers={"content-type": "application/json"},
                ),
            ]

    answers = run(scenario())

    assert [a.status_code for a in answers] == [422] * len(answers), [a.text for a in answers]
    nested, in_rows, in_columns, flag, flag_in_rows, explained, nan_answer, inf = map(
        message, answers
    )
    assert nested == "column 'b' row 0: expected a number, got [2, 3]"
    assert in_rows == "column 'a' row 0: expected a number, got [1.0]"
    assert in_columns == "column 'a' row 1: expected a number, got [2.0]"
    assert flag == "column 'a' row 0: expected a number, got True"
    assert flag_in_rows == "column 'b' row 0: expected a number, got False"
    assert explained == nested  # /explain reads its rows the same way
    assert nan_answer == "the body holds NaN, which JSON has no literal for"
    assert answers[6].json()["error"]["fix"].startswith("send null for a missing value")
    assert inf == "the body holds -Infinity, which JSON has no literal for"


def test_a_request_over_the_row_limit_is_413_naming_the_limit_and_never_reaches_the_model() -> None:
    model = Linear()

    async def scenario() -> list[httpx.Response]:
        async with serve(model, lambda model: Attributions(), max_rows=3) as c:
            return [
                await c.post("/predict", json={"inputs": [[1.0, 2]] * 4}),
                await c.post("/predict", json={"rows": [{"a": 1.0, "b": True}] * 4}),
                await c.post("/predict", json={"columns": {"a": [1.0] * 4, "b": [2] * 4}}),
                await c.post(
                    "/v2/models/heart/infer",
                    json={
                        "inputs": [
                            {
                                "name": "input",
                                "shape": [4, 2],
                                "datatype": "FP64",
                                "data": [1.0] * 8,
                            }
                        ]
                    },
                ),
                await c.post("/explain", json={"inputs": [[1.0, 2]] * 4}),
                await c.post("/predict", json={"inputs": [[1.0, 2]] * 3}),
            ]

    *refused, v2, explained, allowed = run(scenario())

    for answer in refused:
        assert answer.status_code == 413, answer.text
        assert message(answer) == (
            "the request holds 4 rows; this deployment takes at most 3 per request"
        )
        assert "--max-rows" in answer.json()["error"]["fix"]
    assert v2.status_code == 413 and "at most 3 per request" in v2.json()["error"]
    assert explained.status_code == 413
    assert allowed.status_code == 200 and len(allowed.json()["predictions"]) == 3
    assert model.calls == [3]  # only the allowed request was scored


@pytest.mark.parametrize(
    ("bad_body", "error"),
    [
        (None, ""),
        ({"rows": [{"a": 1}]}, "rows[0] lacks column 'b'"),
        ({"inputs": [[1, 2, 3]]}, "inputs row 0 has 3 values"),
        ({"inputs": [[1, "x"]]}, "column 'b' row 0: expected a number, got 'x'"),
    ],
)
def test_concurrent_callers_share_a_batch_and_each_gets_its_own_rows(
    bad_body: dict[str, Any] | None, error: str
) -> None:
    model = Linear()

    async def scenario() -> list[httpx.Response]:
        async with serve(model) as c:
            model.gate.clear()
            first = asyncio.ensure_future(c.post("/predict", json={"inputs": [[1, 1]]}))
            assert await asyncio.to_thread(model.entered.wait, 30)
            # Distinct inputs, one or two rows each; a bad one in the middle.
            bodies = [{"inputs": [[i, 0]] * (1 + i % 2)} for i in range(-5, 6)]
            if bad_body is not None:
                bodies.insert(4, bad_body)
            rest = [asyncio.ensure_future(c.post("/predict", json=b)) for b in bodies]
            for _ in range(10_000):
                metrics = (await c.get("/metrics")).text
                if f'lepton_queue_depth{{route="predict"}} {len(bodies) + 1}.0' in metrics:
                    break
                await asyncio.sleep(0)
            model.gate.set()
            return list(await asyncio.gather(first, *rest))

    first, *answers = run(scenario())

    assert first.json()["predictions"] == ["pos"]
    if bad_body is not None:
        bad = answers.pop(4)
        assert bad.status_code == 422 and message(bad).startswith(error)
    for i, answer in zip(range(-5, 6), answers, strict=True):
        expected = "pos" if i > 0 else "neg"
        assert answer.json()["predictions"] == [expected] * (1 + i % 2), (i, answer.text)
    assert model.calls[0] == 1 and model.calls[1] == sum(1 + i % 2 for i in range(-5, 6))


def test_a_model_that_raises_fails_only_its_own_batch() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Linear()) as c:
            return [
                await c.post("/predict", json={"rows": [{"a": None, "b": 1}]}),
                await c.post("/predict", json={"rows": [{"a": 1, "b": 1}]}),
            ]

    failed, fine = run(scenario())

    assert failed.status_code == 500
    assert "FloatingPointError: NaN reached the model" in message(failed)
    assert fine.status_code == 200 and fine.json()["predictions"] == ["pos"]


def test_explain_is_a_clean_404_until_an_explainer_is_wired() -> None:
    async def scenario(explainer: Any, query: str = "") -> httpx.Response:
        async with serve(Linear(), explainer=explainer) as c:
            return await c.post("/explain" + query, json={"rows": [{"a": 1.0, "b": 2}]})

    off = run(scenario(None))
    on = run(scenario(lambda model: Attributions()))
    asked = run(scenario(lambda model: Attributions(), "?class=pos&overlay=true"))

    assert (
        off.status_code == 404 and message(off) == "explanations are not enabled on this deployment"
    )
    assert on.status_code == 200
    assert on.json() == {"rows": [{"a": 1.0, "b": 2.0}], "target": None, "overlay": False}
    assert asked.json() == {"rows": [{"a": 1.0, "b": 2.0}], "target": "pos", "overlay": True}


class Traced(Linear):
    """Linear, recording the thread each model call runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def predict_proba(self, X: Any) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().predict_proba(X)


class Gated:
    """An explainer that records its thread and waits for its gate (open unless closed)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def explain(self, X: Any, *, target: Any = None, overlay: bool = False) -> Any:
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(30)
        if self.error is not None:
            raise self.error
        return {"rows": len(X)}


async def queued(c: httpx.AsyncClient, depth: int) -> None:
    """Until ``depth`` requests wait or run in the model's queue."""
    for _ in range(10_000):
        metrics = (await c.get("/metrics")).text
        if f'lepton_queue_depth{{route="predict"}} {depth}.0' in metrics:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the queue never held {depth} requests")


def test_explain_waits_its_turn_on_the_models_own_worker() -> None:
    model, explainer = Traced(), Gated()

    async def scenario() -> list[httpx.Response]:
        async with serve(model, explainer=lambda served: explainer) as c:
            model.gate.clear()
            predicted = asyncio.ensure_future(c.post("/predict", json={"inputs": [[1, 1]]}))
            assert await asyncio.to_thread(model.entered.wait, 30)
            explained = asyncio.ensure_future(c.post("/explain", json={"rows": [{"a": 1, "b": 2}]}))
            await queued(c, 2)
            assert explainer.threads == []  # queued behind the model call, not beside it
            model.gate.set()
            return [await predicted, await explained]

    predicted, explained = run(scenario())

    assert predicted.json()["predictions"] == ["pos"] and explained.json() == {"rows": 1}
    assert explainer.threads == model.threads[-1:]  # one thread calls the model: the worker
    assert explainer.threads[0].startswith("lepton-heart")


def test_explain_is_refused_with_503_and_retry_after_when_the_queue_is_full() -> None:
    model = Linear()

    async def scenario() -> httpx.Response:
        async with serve(model, explainer=lambda served: Gated(), max_queue=1) as c:
            model.gate.clear()
            predicted = asyncio.ensure_future(c.post("/predict", json={"inputs": [[1, 1]]}))
            assert await asyncio.to_thread(model.entered.wait, 30)
            refused = await c.post("/explain", json={"rows": [{"a": 1, "b": 2}]})
            model.gate.set()
            assert (await predicted).status_code == 200
            return refused

    refused = run(scenario())

    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"


def test_an_explanation_past_the_deployments_timeout_is_a_504() -> None:
    explainer = Gated()
    explainer.gate.clear()

    async def scenario() -> httpx.Response:
        async with serve(Linear(), explainer=lambda served: explainer, timeout_s=0.05) as c:
            try:
                return await c.post("/explain", json={"rows": [{"a": 1, "b": 2}]})
            finally:
                explainer.gate.set()

    late = run(scenario())

    assert late.status_code == 504 and late.json()["error"]["code"] == "timeout"
    assert "0.05 s timeout" in message(late)


def test_an_explainer_that_raises_is_a_handler_error_naming_it() -> None:
    explainer = Gated(error=ValueError("the background has no rows"))

    async def scenario() -> httpx.Response:
        async with serve(Linear(), explainer=lambda served: explainer) as c:
            return await c.post("/explain", json={"rows": [{"a": 1, "b": 2}]})

    failed = run(scenario())

    assert failed.status_code == 500 and failed.json()["error"]["code"] == "handler_error"
    assert "ValueError: the background has no rows" in message(failed)
    assert "bug" not in failed.json()["error"]["fix"]


def test_the_explainer_is_built_once_however_many_first_calls_arrive() -> None:
    built: list[Gated] = []
    building = threading.Event()

    def factory(served: Any) -> Gated:
        built.append(Gated())
        if len(built) == 1:
            assert building.wait(30)
        return built[-1]

    async def scenario() -> list[httpx.Response]:
        async with serve(Linear(), explainer=factory) as c:
            body = {"rows": [{"a": 1, "b": 2}]}
            calls = [asyncio.ensure_future(c.post("/explain", json=body)) for _ in range(2)]
            await queued(c, 2)
            building.set()
            return list(await asyncio.gather(*calls))

    answers = run(scenario())

    assert [a.json() for a in answers] == [{"rows": 1}] * 2
    assert len(built) == 1


def test_a_body_in_many_chunks_is_read_whole_and_its_limit_counted_across_them() -> None:
    body = orjson.dumps({"inputs": [[i - 50, 1] for i in range(100)]})

    async def chunks(size: int, data: bytes = body) -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    async def scenario() -> list[httpx.Response]:
        async with serve(Linear(), max_body_bytes=len(body)) as c:
            whole = await c.post("/predict", content=chunks(1))
            over = await c.post("/predict", content=chunks(10, body + b" " * 20))
            return [whole, over]

    whole, over = run(scenario())

    assert whole.status_code == 200, whole.text
    assert whole.json()["predictions"] == ["neg"] * 50 + ["pos"] * 50
    assert over.status_code == 413
    assert f"takes at most {len(body)}" in message(over)


def test_images_arrive_as_arrays_or_files() -> None:
    def png(value: int, size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("L", size, value).save(buffer, format="PNG")
        return buffer.getvalue()

    async def scenario() -> list[httpx.Response]:
        async with serve(Pixels()) as c:
            return [
                await c.post("/predict", json={"inputs": [[[10] * 4] * 4, [[20] * 4] * 4]}),
                await c.post("/predict", json={"inputs": [[[10] * 3] * 4]}),
                await c.post("/predict", json={"inputs": [[[300] * 4] * 4]}),
                await c.post(
                    "/predict",
                    files=[
                        ("a", ("a.png", png(40, (4, 4)), "image/png")),
                        ("b", ("b.png", png(80, (8, 8)), "image/png")),
                    ],
                ),
                await c.post(
                    "/predict", content=png(60, (4, 4)), headers={"content-type": "image/png"}
                ),
                await c.post("/predict", files={"a": ("a.png", b"not an image", "image/png")}),
            ]

    arrays, wrong_shape, overflow, files, raw, junk = run(scenario())

    assert arrays.json() == {"predictions": [10.0, 20.0]}
    assert wrong_shape.status_code == 422 and "shape [1, 4, 3]" in message(wrong_shape)
    assert overflow.status_code == 422 and "uint8" in message(overflow)
    assert files.json() == {"predictions": [40.0, 80.0]}  # the 8x8 one was resized
    assert raw.json() == {"predictions": [60.0]}
    assert junk.status_code == 422 and "not an image" in message(junk)


def test_v2_protocol_in_json() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Linear()) as c:
            tensor = {"name": "input", "datatype": "FP32", "shape": [2, 2], "data": [1, 1, -1, -1]}
            by_column = [
                {"name": "a", "datatype": "FP64", "shape": [1], "data": [5]},
                {"name": "b", "datatype": "INT64", "shape": [1], "data": [0]},
            ]
            return [
                await c.get("/v2/health/ready"),
                await c.get("/v2/models/heart"),
                await c.post("/v2/models/heart/infer", json={"id": "r1", "inputs": [tensor]}),
                await c.post("/v2/models/heart/versions/1/infer", json={"inputs": by_column}),
                await c.post("/v2/models/other/infer", json={"inputs": [tensor]}),
                await c.post(
                    "/v2/models/heart/infer", json={"inputs": [{**tensor, "shape": [3, 2]}]}
                ),
                await c.post("/v2/models/heart/infer", json={"inputs": [by_column[0]]}),
            ]

    ready, meta, infer, columns, other, short, missing = run(scenario())

    assert ready.status_code == 200
    assert meta.json()["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]
    assert [o["name"] for o in meta.json()["outputs"]] == ["predictions", "probabilities"]
    body = infer.json()
    assert body["id"] == "r1" and body["model_name"] == "heart"
    assert body["outputs"][0] == {
        "name": "predictions",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["pos", "neg"],
    }
    assert body["outputs"][1]["shape"] == [2, 2] and body["outputs"][1]["data"] == [
        0.0,
        1.0,
        1.0,
        0.0,
    ]
    assert columns.json()["outputs"][0]["data"] == ["pos"]
    assert other.status_code == 404 and other.json() == {
        "error": "unknown model 'other'; this replica serves 'heart'"
    }
    assert (
        short.status_code == 422
        and "has 4 values; its shape [3, 2] needs 6" in short.json()["error"]
    )
    assert missing.status_code == 422 and "no input named 'b'" in missing.json()["error"]


class Cities:
    """A mixed-type classifier: 'pos' for Paris, whatever the age."""

    task = "classification"
    classes: ClassVar[list[str]] = ["neg", "pos"]
    signature: ClassVar[dict[str, Any]] = {
        "inputs": [{"name": "age", "dtype": "float64"}, {"name": "city", "dtype": "object"}]
    }

    def predict(self, X: Any) -> np.ndarray:
        raise AssertionError("the runtime asks for probabilities")

    def predict_proba(self, X: Any) -> np.ndarray:
        paris = (X["city"] == "paris").to_numpy(dtype=float)
        return np.column_stack([1 - paris, paris])


def test_v2_text_columns_as_bytes_tensors() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Cities()) as c:
            inputs = [
                {"name": "age", "datatype": "FP64", "shape": [2], "data": [30, 40]},
                {"name": "city", "datatype": "BYTES", "shape": [2], "data": ["paris", "rome"]},
            ]
            return [
                await c.get("/v2/models/heart"),
                await c.post("/v2/models/heart/infer", json={"inputs": inputs}),
            ]

    meta, infer = run(scenario())

    assert meta.json()["inputs"][1] == {"name": "city", "datatype": "BYTES", "shape": [-1]}
    assert infer.json()["outputs"][0]["data"] == ["pos", "neg"]


@pytest.mark.parametrize(
    ("inputs", "expected_shape", "white"),
    [
        ({"shape": [4, 6, 1], "dtype": "float32"}, (4, 6, 1), 255.0),
        ({"shape": [4, 6, 1], "dtype": "float32", "pixel_range": [0, 1]}, (4, 6, 1), 1.0),
        (
            {"shape": [3, 4, 6], "dtype": "float32", "pixel_range": [-1, 1], "channels": "first"},
            (3, 4, 6),
            1.0,
        ),
    ],
)
def test_an_uploaded_image_is_given_as_the_model_was_trained(
    inputs: dict[str, Any], expected_shape: tuple[int, ...], white: float
) -> None:
    from lepton.serving.inputs import InputSpec, decode_image

    buffer = io.BytesIO()
    picture = Image.new("RGB", (12, 8), (0, 0, 0))
    picture.paste((255, 255, 255), (0, 0, 12, 4))  # the top half white
    picture.save(buffer, format="PNG")
    array = decode_image(InputSpec.from_signature({"inputs": inputs}), buffer.getvalue(), "f")
    assert array.shape == expected_shape and array.dtype == np.float32
    rows = array[0] if inputs.get("channels") == "first" else array[..., 0]
    black = float(inputs.get("pixel_range", [0, 255])[0])
    assert rows[0].tolist() == [white] * 6 and rows[-1].tolist() == [black] * 6
