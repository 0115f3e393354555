"""The gateway's data path in one event loop: real sockets, upstreams that are small asyncio
HTTP servers (one answers, one drops connections, none listens on a third port)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from lepton.gateway.proxy import ClientConnection, Gateway
from lepton.gateway.table import Route, Table
from lepton.serving.auth import token_hash


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with what it saw: method, path, body length, forwarded prefix."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if path == "/stream":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
                )
            else:
                text = f"{method} {path} {len(body)} {headers.get('x-forwarded-prefix')}".encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: "
                    + str(len(text)).encode()
                    + b"\r\n\r\n"
                    + text
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads a request and closes without answering, as a replica killed mid-request."""
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()


Entry = dict[str, Any]


def entry(*urls: str, **extra: Any) -> Entry:
    return {
        "id": "d1",
        "name": "demo",
        "keys": ["demo", "default/demo"],
        "token_hashes": None,
        "retry_posts": True,
        "hold_timeout_s": 5,
        "timeout_s": 10,
        "replicas": [{"url": u, "track": "stable"} for u in urls],
        **extra,
    }


class Demands(list[Route]):
    """The routes the gateway asked a replica for; ``seen`` is set at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def append(self, route: Route) -> None:
        super().append(route)
        self.seen.set()


async def with_gateway(
    entries: list[Entry], body: Callable[[str, Table, Demands], Awaitable[None]]
) -> None:
    table = Table()
    table.update("1", entries)
    demanded = Demands()
    gateway = Gateway(table, demand=demanded.append, max_body_bytes=1000)
    port = free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: ClientConnection(gateway), "127.0.0.1", port
    )
    try:
        await body(f"http://127.0.0.1:{port}", table, demanded)
    finally:
        table.close()
        await shut(server)
        for _ in range(2):  # one loop turn each for the closed connections' callbacks
            await asyncio.sleep(0)


async def upstream(handler: Any) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def shut(*servers: asyncio.Server) -> None:
    for server in servers:
        server.close()
        await server.wait_closed()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_requests_reach_a_replica_without_their_prefix_and_streams_pass_through() -> None:
    async def main() -> None:
        server, url = await upstream(echo)

        async def body(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient() as http:
                r = await http.post(f"{base}/d/demo/predict?x=1", content=b"a" * 300)
                assert r.text == "POST /predict?x=1 300 /d/demo"
                r = await http.get(f"{base}/w/default/d/demo/v2/health/ready")
                assert r.text == "GET /v2/health/ready 0 /w/default/d/demo"
                r = await http.get(f"{base}/d/demo")
                assert r.text == "GET / 0 /d/demo"
                r = await http.get(f"{base}/d/demo/stream")
                assert r.text == "abcdef"
                missing = await http.get(f"{base}/d/other/predict")
                assert missing.status_code == 404
                assert "no deployment answers at /d/other/predict" in missing.text
                big = await http.post(f"{base}/d/demo/predict", content=b"a" * 1001)
                assert big.status_code == 413 and "limit of 1000 bytes" in big.text
            assert table.get("demo") is table.get("default/demo")
            assert table.get("demo").total.status == {200: 4}  # type: ignore[union-attr]

        await with_gateway([entry(url)], body)
        await shut(server)

    run(main())


def test_a_refused_connection_is_retried_on_another_replica_and_the_refuser_ejected() -> None:
    async def main() -> None:
        server, url = await upstream(echo)
        dead = f"http://127.0.0.1:{free_port()}"

        async def body(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient() as http:
                answers = [await http.get(f"{base}/d/demo/p") for _ in range(20)]
            assert {r.status_code for r in answers} == {200}
            route = table.get("demo")
            assert route is not None and 1 <= route.retries <= 2  # ejected after its refusal
            [down] = [u for u in route.upstreams if u.url == dead]
            assert down.down_until > 0

        await with_gateway([entry(dead, url)], body)
        await shut(server)

    run(main())


def test_a_connection_dropped_before_the_answer_is_retried_for_a_model_not_a_photon_post() -> None:
    async def main() -> None:
        good, good_url = await upstream(echo)
        bad, bad_url = await upstream(drop)

        async def model(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient() as http:
                answers = [
                    await http.post(f"{base}/d/demo/predict", content=b"{}") for _ in range(20)
                ]
            assert {r.status_code for r in answers} == {200}

        await with_gateway([entry(bad_url, good_url)], model)

        async def photon(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient() as http:
                answers = [await http.post(f"{base}/d/demo/run", content=b"{}") for _ in range(20)]
                gets = [await http.get(f"{base}/d/demo/run") for _ in range(10)]
            statuses = [r.status_code for r in answers]
            assert 502 in statuses and 200 in statuses  # a POST that may have run is not repeated
            assert "closed the connection before answering" in answers[statuses.index(502)].text
            assert {r.status_code for r in gets} == {200}  # a GET is

        await with_gateway([entry(bad_url, good_url, retry_posts=False)], photon)
        await shut(good, bad)

    run(main())


def test_a_request_with_no_replica_is_held_until_one_is_listed_or_its_timeout() -> None:
    async def main() -> None:
        server, url = await upstream(echo)

        async def body(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                held = asyncio.ensure_future(http.get(f"{base}/d/demo/p"))
                await asyncio.wait_for(demanded.seen.wait(), 5)
                assert not held.done() and demanded[0].waiting == 1
                table.update("2", [entry(url, hold_timeout_s=0.5)])
                answer = await held
                assert answer.status_code == 200
                table.update("3", [entry(hold_timeout_s=0.5)])
                late = await http.get(f"{base}/d/demo/p")
                assert late.status_code == 503 and late.headers["retry-after"] == "5"
                assert late.json()["error"]["code"] == "cold_start_timeout"
                table.update("4", [entry(error="the model version was deleted")])
                failing = await http.get(f"{base}/d/demo/p")
                assert failing.status_code == 503 and "was deleted" in failing.text

        await with_gateway([entry()], body)
        await shut(server)

    run(main())


def test_the_gateway_refuses_a_request_without_the_deployment_s_token() -> None:
    async def main() -> None:
        server, url = await upstream(echo)

        async def body(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient() as http:
                none = await http.get(f"{base}/d/demo/p")
                wrong = await http.get(f"{base}/d/demo/p", headers={"Authorization": "Bearer no"})
                right = await http.get(
                    f"{base}/d/demo/p", headers={"Authorization": "Bearer lep_a_secret"}
                )
            assert none.status_code == wrong.status_code == 401
            assert "deployment 'demo' needs its inference token" in none.text
            assert right.status_code == 200
            assert not demanded  # a refused request wakes nothing

        await with_gateway([entry(url, token_hashes=[token_hash("lep_a_secret")])], body)
        await shut(server)

    run(main())


@pytest.mark.parametrize("share", [10.0, 50.0])
def test_a_canary_gets_its_share_of_requests(share: float) -> None:
    async def main() -> None:
        stable, stable_url = await upstream(echo)
        canary, canary_url = await upstream(echo)
        replicas = [{"url": stable_url, "track": "stable"}, {"url": canary_url, "track": "canary"}]
        table = Table()
        table.update("1", [{**entry(), "replicas": replicas, "canary_share": share}])
        route = table.get("demo")
        assert route is not None
        picks = [route.pick(0.0) for _ in range(20_000)]
        canary_share = sum(p is not None and p.track == "canary" for p in picks) / len(picks)
        assert abs(canary_share - share / 100) < 0.01
        await shut(stable, canary)

    run(main())


def test_metrics_tell_each_deployment_s_counts_only_to_its_token_or_the_scraper() -> None:
    from lepton.gateway.process import render_metrics

    async def main() -> None:
        server, url = await upstream(echo)
        table = Table()
        other = {**entry(url), "id": "d2", "name": "secretive", "keys": ["secretive"]}
        table.update("1", [entry(url, token_hashes=[token_hash("lep_a_secret")]), other])
        gateway = Gateway(
            table,
            demand=lambda route: None,
            metrics=lambda routes: render_metrics(table, 0, routes),
            metrics_token="scrape-token",
        )
        port = free_port()
        listener = await asyncio.get_running_loop().create_server(
            lambda: ClientConnection(gateway), "127.0.0.1", port
        )
        base = f"http://127.0.0.1:{port}"
        own = {"Authorization": "Bearer lep_a_secret"}
        async with httpx.AsyncClient() as http:
            await http.get(f"{base}/d/demo/p", headers=own)
            mine = await http.get(f"{base}/metrics/d/demo", headers=own)
            assert 'lepton_gateway_requests_total{deployment="demo",status="200"} 1' in mine.text
            assert "secretive" not in mine.text
            assert (await http.get(f"{base}/metrics/d/demo")).status_code == 401
            assert (await http.get(f"{base}/metrics", headers=own)).status_code == 401
            every = await http.get(
                f"{base}/metrics", headers={"Authorization": "Bearer scrape-token"}
            )
            assert every.status_code == 200 and 'deployment="secretive"' in every.text
        table.close()
        await shut(listener, server)

    run(main())


async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads a request and never answers, as a replica stuck in a handler."""
    await reader.readuntil(b"\r\n\r\n")
    try:
        await asyncio.Event().wait()  # until the test cancels it
    finally:
        writer.close()


def test_a_replica_that_never_answers_gets_the_client_a_504(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("lepton.gateway.proxy.ANSWER_SLACK_S", 0.0)

    async def main() -> None:
        server, url = await upstream(mute)

        async def body(base: str, table: Table, demanded: Demands) -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(f"{base}/d/demo/p")
            assert r.status_code == 504 and "did not answer within 0.3 s" in r.text

        await with_gateway([entry(url, timeout_s=0.3)], body)
        stuck = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "mute"]  # type: ignore[union-attr]
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        await shut(server)

    run(main())
