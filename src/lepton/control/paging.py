"""Keyset paging for every list a service answers: a page of items and an opaque cursor for the
next one. Pages never load a whole table, and a row added meanwhile never shifts a page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from lepton.errors import InvalidRequest

__all__ = ["MAX_LIMIT", "Page", "PageRequest", "paged"]

T = TypeVar("T")

MAX_LIMIT = 1000
"""Most items one page holds: a page's rows are loaded and turned into wire models at once."""


@dataclass(frozen=True)
class PageRequest:
    """Which page: at most ``limit`` items after the one ``after`` names (a previous page's
    ``next``), or the first page."""

    limit: int = 100
    after: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None
    """The cursor of the following page; None on the last one."""


def _decode(cursor: str, width: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=="))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != width:
        raise InvalidRequest(
            f"the page cursor {cursor!r} is not one this list gave",
            fix="pass the cursor of the previous page's answer (its Link header), or none",
        )
    return values


def _encode(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def paged(
    session: Session,
    query: Select[Any],
    keys: Sequence[InstrumentedAttribute[Any]],
    page: PageRequest,
    view: Callable[[Any], T],
    *,
    descending: bool = False,
    parse: Callable[[list[Any]], list[Any]] | None = None,
    prefetch: Callable[[list[Any]], None] | None = None,
) -> Page[T]:
    """Run ``query`` ordered by ``keys`` (unique together) from ``page.after``; ``parse`` turns
    a decoded cursor's JSON values back into column values (datetimes). ``prefetch`` gets the
    page's rows before ``view`` sees any, to load what the views refer to in one query rather
    than one per row."""
    if not 1 <= page.limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit is {page.limit}; a page holds 1 to {MAX_LIMIT} items", fix="pass --limit 100"
        )
    if page.after is not None:
        values = _decode(page.after, len(keys))
        values = parse(values) if parse else values
        row_key = tuple_(*keys)
        query = query.where(row_key < tuple(values) if descending else row_key > tuple(values))
    order = [k.desc() for k in keys] if descending else list(keys)
    rows = list(session.scalars(query.order_by(*order).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = _encode([getattr(last, k.key) for k in keys])
    if prefetch is not None and rows:
        prefetch(rows)
    return Page(items=[view(r) for r in rows], next=cursor)
