"""Paged list answers: ``?limit=&after=`` in, the page's items out, and the next page's URL in a
``Link: <...>; rel="next"`` header (RFC 8288) while there is one."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Query, Request, Response

from lepton.control.paging import MAX_LIMIT, Page, PageRequest

__all__ = ["page_request", "page_response"]

T = TypeVar("T")


def page_request(
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="At most this many items."),
    after: str | None = Query(
        None, max_length=512, description="Cursor from the previous page's `Link` header."
    ),
) -> PageRequest:
    return PageRequest(limit=limit, after=after)


def page_response(request: Request, response: Response, page: Page[T]) -> list[T]:
    """The page's items; a ``Link`` header names the next page."""
    if page.next is not None:
        url = request.url.include_query_params(after=page.next)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return page.items
