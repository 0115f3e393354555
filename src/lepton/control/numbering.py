"""Numbers of versioned resources: one counter per series, taken by one atomic upsert.

A series is a dataset's versions, a model's versions, or a photon name's versions in a
workspace. The counter only grows, so a number is never given twice, even after the version
that had it was deleted (a photon pushed after its newest version was deleted gets a new
number, never the deleted one's with other code). The upsert locks the counter's row until the
caller commits, so concurrent pushes are numbered one after the other without retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from lepton.store.models import CounterRow

__all__ = ["newest_versions", "next_number"]


def next_number(session: Session, kind: str, key: str) -> int:
    """The next number of series ``(kind, key)``: 1 for a new series. The caller commits."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(CounterRow)
        .values(kind=kind, key=key, last=1)
        .on_conflict_do_update(index_elements=["kind", "key"], set_={"last": CounterRow.last + 1})
        .returning(CounterRow.last)
    )
    number: int = session.execute(statement).scalar_one()
    return number


def newest_versions(
    session: Session,
    series: InstrumentedAttribute[str],
    version: InstrumentedAttribute[int],
    keys: Sequence[str],
    live: ColumnElement[bool] | None = None,
) -> tuple[dict[str, int], list[Any]]:
    """How many (live) versions each series in ``keys`` has, and the newest version rows, in
    two queries however many series: what a page of datasets or models shows per row.
    ``series`` is the version table's column naming its series, ``version`` its number."""
    if not keys:
        return {}, []
    where = series.in_(list(keys)) if live is None else series.in_(list(keys)) & live
    counts: dict[str, int] = {}
    tops: list[tuple[str, int]] = []
    for key, count, top in session.execute(
        select(series, func.count(), func.max(version)).where(where).group_by(series)
    ):
        counts[key] = count
        tops.append((key, top))
    if not tops:
        return counts, []
    entity = series.class_
    return counts, list(session.scalars(select(entity).where(tuple_(series, version).in_(tops))))
