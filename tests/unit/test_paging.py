"""Lists page with cursors: a page holds at most ``limit`` items, a ``Link`` header names the
next one, following them yields every item exactly once, and the SDK follows them for you."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import Platform


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_following_link_headers_yields_every_item_once(platform: Platform) -> None:
    for n in range(5):
        platform.token(platform.admin, role="viewer", name=f"reader-{n}")
    seen: list[str] = []
    url: str | None = "/api/v1/tokens?limit=2"
    pages = 0
    while url is not None:
        r = platform.api.get(url, headers=bearer(platform.admin))
        assert r.status_code == 200, r.text
        assert len(r.json()) <= 2
        seen += [t["name"] for t in r.json()]
        url = r.links.get("next", {}).get("url")
        pages += 1

    assert pages == 3
    assert seen == ["admin", *(f"reader-{n}" for n in range(5))]


def test_the_last_page_has_no_link(platform: Platform) -> None:
    r = platform.api.get("/api/v1/tokens?limit=1000", headers=bearer(platform.admin))

    assert "link" not in r.headers


def test_the_sdk_lists_past_one_page(platform: Platform) -> None:
    client = platform.client(platform.admin)
    for n in range(3):
        client.blobs.upload(f"blob {n}".encode())

    assert len(client.blobs.list()) == 3
    assert len(client.audit.list(limit=2)) == 2


def test_a_cursor_the_list_never_gave_is_refused_saying_so(platform: Platform) -> None:
    r = platform.api.get("/api/v1/datasets?after=bm9wZQ", headers=bearer(platform.admin))

    assert r.status_code == 422
    assert "cursor" in r.json()["error"]["message"]
    assert r.json()["error"]["fix"]


def test_newest_first_lists_page_backwards_in_time(platform: Platform) -> None:
    client = platform.client(platform.admin)
    digests = [client.blobs.upload(f"blob {n}".encode()).digest for n in range(3)]
    first = platform.api.get("/api/v1/blobs?limit=2", headers=bearer(platform.admin))
    after = httpx.URL(first.links["next"]["url"]).params["after"]
    rest = platform.api.get(f"/api/v1/blobs?limit=2&after={after}", headers=bearer(platform.admin))

    listed = [b["digest"] for b in first.json() + rest.json()]
    assert sorted(listed) == sorted(digests) and len(set(listed)) == 3
