"""The error for a column that is not there, shared by ingest, transforms and splits."""

from __future__ import annotations

import difflib

from lepton.errors import InvalidRequest

__all__ = ["unknown_column"]

_SHOWN = 30  # columns listed in full; wide tables (MNIST as pixels has 784) are cut after this


def unknown_column(
    name: str, columns: list[str], *, where: str, use: str, when: str = ""
) -> InvalidRequest:
    """``where`` names the place (``--target``, ``step 2 (drop)``); ``use`` says how to pass the
    right one, with ``{}`` for the column (``pass --target {}``); ``when`` qualifies "does not
    exist" (`` at that point``)."""
    close = difflib.get_close_matches(name, columns, n=1)
    shown = ", ".join(columns[:_SHOWN]) + (", ..." if len(columns) > _SHOWN else "")
    hint = f"; the closest is {close[0]!r}" if close else ""
    return InvalidRequest(
        f"{where} names column {name!r}, which does not exist{when}; columns are: {shown}{hint}",
        fix=use.format(repr(close[0]) if close else "one of those columns"),
    )
