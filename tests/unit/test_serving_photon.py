"""A leptonai-style photon served in-process: validation, files, streaming, media, batching,
auth and limits, through the replica's real ASGI app."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx
import pytest
from PIL import Image

from lepton.photon import File, HTTPException, Photon, PNGResponse, StreamingResponse
from lepton.serving.auth import token_hash
from lepton.serving.runner import ReplicaConfig, photon_app

TOKEN = "lep_abc123_s3cret-with_underscores"


def png(color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), color).save(buffer, format="PNG")
    return buffer.getvalue()


class Shop(Photon):
    """Written as for leptonai: only the import line differs."""

    requirement_dependency: ClassVar[list[str]] = ["pillow"]

    def init(self) -> None:
        self.prefix = "hello"
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.met = asyncio.Event()

    @Photon.handler
    def greet(self, name: str, times: int = 1) -> str:
        return " ".join([f"{self.prefix} {name}"] * times)

    @Photon.handler("double", max_batch_size=32)
    def double(self, x: int) -> list[int]:
        self.batches.append(len(x))  # type: ignore[arg-type]
        if len(self.batches) == 1:
            self.entered.set()
            self.gate.wait(30)
        return [v * 2 for v in x]  # type: ignore[attr-defined]

    @Photon.handler
    def size(self, file: File) -> dict[str, Any]:
        return {"bytes": len(file.get_content()), "name": file.filename, "type": file.content_type}

    @Photon.handler
    def count(self, n: int) -> StreamingResponse:
        for i in range(n):
            yield f"line {i}\n"

    @Photon.handler
    async def agen(self, n: int) -> StreamingResponse:
        for i in range(n):
            yield f"{i};"

    @Photon.handler
    def dot(self, color: str = "red") -> PNGResponse:
        return PNGResponse(png((255, 0, 0) if color == "red" else (0, 0, 255)))

    @Photon.handler("info", method="GET")
    def info(self, key: str, verbose: bool = False) -> dict[str, Any]:
        return {"key": key, "verbose": verbose}

    @Photon.handler
    def broken(self, x: int) -> int:
        raise ZeroDivisionError("x / 0")

    @Photon.handler
    def teapot(self) -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @Photon.handler
    def nothing(self) -> None:
        return None

    @Photon.handler
    async def meet(self, who: str) -> str:
        if who == "first":
            await asyncio.wait_for(self.met.wait(), 10)
            return "first met second"
        self.met.set()
        return "second arrived"


@contextlib.asynccontextmanager
async def serve(photon: Photon, **config: Any) -> AsyncIterator[httpx.AsyncClient]:
    options: dict[str, Any] = {"token_hashes": frozenset({token_hash(TOKEN)})} | config
    app = photon_app(photon, ReplicaConfig(**options))
    app.start(asyncio.get_running_loop())
    try:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://replica", headers=headers
        ) as client:
            yield client
    finally:
        photon.gate.set() if isinstance(photon, Shop) else None
        app.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def shop() -> Iterator[Shop]:
    photon = Shop()
    yield photon
    photon.gate.set()


def test_inputs_come_from_annotations_and_bad_ones_name_the_field(shop: Shop) -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return [
                await c.post("/greet", json={"name": "ada", "times": 2}),
                await c.post("/greet", json={"times": 2}),
                await c.post("/greet", json={"name": "ada", "times": "many"}),
                await c.post("/greet", json={"name": "ada", "colour": "red"}),
                await c.post(
                    "/greet", content=b"{not json", headers={"content-type": "application/json"}
                ),
            ]

    ok, missing, wrong, extra, garbled = run(scenario())

    assert ok.status_code == 200 and ok.json() == "hello ada hello ada"
    assert missing.status_code == 422
    assert missing.json()["error"]["message"] == "field 'name' is required"
    assert wrong.status_code == 422 and "field 'times'" in wrong.json()["error"]["message"]
    assert "'many'" in wrong.json()["error"]["message"]
    assert (
        extra.status_code == 422 and "'colour' is not an input" in extra.json()["error"]["message"]
    )
    assert garbled.status_code == 422


def test_batched_handler_gives_each_caller_its_own_answer(shop: Shop) -> None:
    async def scenario() -> tuple[list[httpx.Response], str]:
        async with serve(shop) as c:
            first = asyncio.ensure_future(c.post("/double", json={"x": 1000}))
            assert await asyncio.to_thread(shop.entered.wait, 30)
            rest = [asyncio.ensure_future(c.post("/double", json={"x": i})) for i in range(12)]
            for _ in range(10_000):  # until all 12 are queued behind the first
                if _depth((await c.get("/metrics")).text) >= 13:
                    break
                await asyncio.sleep(0)
            shop.gate.set()
            answers = await asyncio.gather(first, *rest)
            return answers, (await c.get("/metrics")).text

    answers, metrics = run(scenario())

    assert [a.json() for a in answers] == [2000, *[i * 2 for i in range(12)]]
    assert shop.batches == [1, 12]
    assert 'lepton_batch_size_count{route="/double"} 2.0' in metrics
    assert 'lepton_batch_size_sum{route="/double"} 13.0' in metrics


def _depth(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('lepton_queue_depth{route="/double"}'):
            return float(line.split()[-1])
    return 0.0


def test_file_inputs_arrive_as_multipart_data_uri_base64_or_raw_body(shop: Shop) -> None:
    image = png()
    uri = "data:image/png;base64," + base64.b64encode(image).decode()

    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return [
                await c.post("/size", files={"file": ("dot.png", image, "image/png")}),
                await c.post("/size", json={"file": uri}),
                await c.post("/size", json={"file": base64.b64encode(image).decode()}),
                await c.post("/size", content=image, headers={"content-type": "image/png"}),
                await c.post("/size", json={"file": "https://example.com/x.png"}),
                await c.post("/size", json={"file": "%%%"}),
            ]

    multipart, data_uri, b64, raw, url, junk = run(scenario())

    assert multipart.json() == {"bytes": len(image), "name": "dot.png", "type": "image/png"}
    assert data_uri.json() == {"bytes": len(image), "name": None, "type": "image/png"}
    assert b64.json()["bytes"] == raw.json()["bytes"] == len(image)
    assert url.status_code == 422 and "URLs are not fetched" in url.json()["error"]["message"]
    assert junk.status_code == 422 and "field 'file'" in junk.json()["error"]["message"]


def test_streaming_image_and_empty_answers(shop: Shop) -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return [
                await c.post("/count", json={"n": 3}),
                await c.post("/agen", json={"n": 4}),
                await c.post("/dot", json={}),
                await c.post("/nothing"),
            ]

    streamed, agen, image, nothing = run(scenario())

    assert streamed.text == "line 0\nline 1\nline 2\n"
    assert agen.text == "0;1;2;3;"
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).getpixel((0, 0)) == (255, 0, 0)
    assert nothing.status_code == 204 and nothing.content == b""


def test_get_handlers_take_query_parameters(shop: Shop) -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return [
                await c.get("/info", params={"key": "k1", "verbose": "true"}),
                await c.get("/info"),
                await c.post("/info", json={"key": "k"}),
            ]

    ok, missing, wrong_method = run(scenario())

    assert ok.json() == {"key": "k1", "verbose": True}
    assert missing.status_code == 422 and "'key' is required" in missing.json()["error"]["message"]
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"


def test_handler_errors_are_clear_and_keep_http_statuses(shop: Shop) -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return [
                await c.post("/broken", json={"x": 1}),
                await c.post("/teapot"),
                await c.post("/greet", json={"name": "still fine"}),
                await c.post("/nowhere", json={}),
            ]

    broken, teapot, after, nowhere = run(scenario())

    assert broken.status_code == 500
    assert "ZeroDivisionError: x / 0" in broken.json()["error"]["message"]
    assert teapot.status_code == 418 and teapot.json()["error"]["message"] == "short and stout"
    assert after.status_code == 200
    assert nowhere.status_code == 404 and "/greet" in nowhere.json()["error"]["fix"]


def test_async_handlers_are_not_throttled(shop: Shop) -> None:
    # With one slot (leptonai's default handler_max_concurrency=1 applied to async handlers
    # too) "first" would hold it while waiting for "second", and neither would finish.
    async def scenario() -> list[httpx.Response]:
        async with serve(shop) as c:
            return list(
                await asyncio.gather(
                    c.post("/meet", json={"who": "first"}), c.post("/meet", json={"who": "second"})
                )
            )

    first, second = run(scenario())
    assert (first.json(), second.json()) == ("first met second", "second arrived")


def test_tokens_are_required_unless_public(shop: Shop) -> None:
    async def scenario(public: bool) -> list[int]:
        config: dict[str, Any] = {"token_hashes": None} if public else {}
        async with serve(shop, **config) as c:
            return [
                (
                    await c.post("/greet", json={"name": "x"}, headers={"Authorization": ""})
                ).status_code,
                (
                    await c.post(
                        "/greet",
                        json={"name": "x"},
                        headers={"Authorization": "Bearer lep_abc123_wrong"},
                    )
                ).status_code,
                (await c.post("/greet", json={"name": "x"})).status_code,
                (await c.get("/healthz", headers={"Authorization": ""})).status_code,
                (await c.get("/readyz", headers={"Authorization": ""})).status_code,
                (await c.get("/metrics", headers={"Authorization": ""})).status_code,
            ]

    assert run(scenario(public=False)) == [401, 401, 200, 200, 200, 401]
    assert run(scenario(public=True)) == [200, 200, 200, 200, 200, 200]


def test_a_body_over_the_limit_is_413(shop: Shop) -> None:
    async def scenario() -> httpx.Response:
        async with serve(shop, max_body_bytes=100) as c:
            return await c.post("/greet", json={"name": "x" * 200})

    answer = run(scenario())
    assert answer.status_code == 413
    assert "at most 100" in answer.json()["error"]["message"]


def test_openapi_lists_handlers_with_their_schemas(shop: Shop) -> None:
    async def scenario() -> dict[str, Any]:
        async with serve(shop) as c:
            document: dict[str, Any] = (await c.get("/openapi.json")).json()
            return document

    doc = run(scenario())

    assert {"/greet", "/double", "/size", "/count", "/info"} <= set(doc["paths"])
    body = doc["components"]["schemas"]["Shop_greetPostInput"]
    assert body["required"] == ["name"] and body["properties"]["times"]["default"] == 1
    assert "multipart/form-data" in doc["paths"]["/size"]["post"]["requestBody"]["content"]
    assert doc["paths"]["/info"]["get"]["parameters"][0]["name"] == "key"
    assert "image/png" in doc["paths"]["/dot"]["post"]["responses"]["200"]["content"]


def test_a_full_queue_answers_503_with_retry_after(shop: Shop) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with serve(shop, max_queue=1) as c:
            first = asyncio.ensure_future(c.post("/double", json={"x": 1}))
            assert await asyncio.to_thread(shop.entered.wait, 30)
            refused = await c.post("/double", json={"x": 2})
            shop.gate.set()
            return await first, refused

    first, refused = run(scenario())

    assert first.json() == 2
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"


def test_readyz_turns_503_while_draining(shop: Shop) -> None:
    app = photon_app(shop, ReplicaConfig(token_hashes=None))

    async def scenario() -> list[httpx.Response]:
        app.start(asyncio.get_running_loop())
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://replica"
            ) as c:
                before = await c.get("/readyz")
                app.draining = True  # what SIGTERM sets before uvicorn closes the socket
                return [before, await c.get("/readyz"), await c.get("/healthz")]
        finally:
            app.stop()

    ready, draining, alive = run(scenario())
    assert (ready.status_code, draining.status_code, alive.status_code) == (200, 503, 200)
    assert draining.json() == {"status": "draining"}


class Waiter(Photon):
    @Photon.handler(timeout=0.05)
    async def forever(self) -> str:
        await asyncio.Event().wait()
        return "never"

    @Photon.handler(timeout=0.05)
    def blocked(self, release: str) -> str:
        RELEASE.wait(30)
        return release


RELEASE = threading.Event()


def test_handlers_past_their_timeout_answer_504() -> None:
    async def scenario() -> list[httpx.Response]:
        async with serve(Waiter()) as c:
            try:
                return [await c.post("/forever"), await c.post("/blocked", json={"release": "x"})]
            finally:
                RELEASE.set()

    for answer in run(scenario()):
        assert answer.status_code == 504
        assert answer.json()["error"]["code"] == "timeout"
        assert "0.05 s timeout" in answer.json()["error"]["message"]
