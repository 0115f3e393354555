"""How a table fits the terminal, 80 columns included, without folding an id users copy.

A table that says where its values may break (``breaks``) and is wider than the terminal first
loses its borders (a heavy box costs ``3n + 1`` columns for ``n`` columns, plain gaps
``2(n - 1)``: 8 columns more for a five-column table); then those columns go onto more lines,
only after the characters given, so ``jobs/9f8e.../metrics`` breaks at its slashes and the id
between them stays whole. Anything still too wide is left to rich, which folds the columns that
are not ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["fit"]


def fit(
    columns: Sequence[str], cells: list[list[str]], breaks: Mapping[str, str], width: int
) -> bool:
    """Break the long values of ``cells`` in place for a table to fit ``width``; whether it
    must go without borders. ``breaks`` maps a column to the characters after which its
    values may go onto the next line, e.g. ``{"resource": "/"}``; without it nothing changes."""
    natural = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    n = len(columns)
    if not breaks or sum(natural) + 3 * n + 1 <= width:  # a bar and a space each side of a cell
        return False
    short = width - 2 * (n - 1) - sum(natural)
    for i, w in _break_widths(columns, cells, breaks, natural, short).items():
        for row in cells:
            row[i] = _broken(row[i], w, breaks[columns[i]])
    return True


def _break_widths(
    columns: Sequence[str],
    cells: list[list[str]],
    breaks: Mapping[str, str],
    natural: list[int],
    short: int,
) -> dict[int, int]:
    """The width each breakable column narrows to, for the table to gain ``-short`` columns:
    the widest gives a column at a time (so short values stay on one line), but none narrows
    below the longest part of its values between two break characters (no id is cut)."""
    floor = {
        i: max([len(c)] + [len(p) for row in cells for p in _parts(row[i], breaks[c])])
        for i, c in enumerate(columns)
        if c in breaks
    }
    widths = {i: natural[i] for i in floor}
    while short < 0:
        narrowable = [i for i in widths if widths[i] > floor[i]]
        if not narrowable:
            break
        widest = max(narrowable, key=widths.__getitem__)
        widths[widest] -= 1
        short += 1
    return {i: w for i, w in widths.items() if w < natural[i]}


def _parts(text: str, after: str) -> list[str]:
    chars = re.escape(after)
    return re.findall(rf"[^{chars}]*[{chars}]|[^{chars}]+", text)


def _broken(text: str, width: int, after: str) -> str:
    """``text`` on lines of at most ``width``, split only after one of the characters ``after``
    (a part longer than ``width`` keeps a line of its own, where rich folds it)."""
    lines = [""]
    for part in _parts(text, after):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append(part)
        else:
            lines[-1] += part
    return "\n".join(lines)
