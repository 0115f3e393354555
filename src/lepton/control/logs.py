"""Reading a job's or a deployment's log by byte offset, so a follower asks again from where
it stopped, with the secret values given to it masked.

Masking happens when a log is served: the file on disk holds what the process wrote. Every
occurrence of a masked value becomes ``***``. A read that is not the log's last one stops
before any tail that could be the start of a value (at most the longest value less one byte)
and answers the offset of that stop, so the next read starts there and sees the whole value:
a follower reading piece by piece gets exactly the text a reader of the whole file gets.
Values shorter than :data:`MIN_MASKED` characters are not masked: ``***`` in place of every
``1`` or ``ab`` would hide the log and tell a reader which short strings the secret is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lepton.schemas import LogChunk

__all__ = ["LOG_CHUNK", "MASK", "MIN_MASKED", "Masker", "read_log"]

LOG_CHUNK = 256 * 1024  # bytes of log per answer: a follow loop asks again for the rest
MASK = "***"
MIN_MASKED = 4
"""Shortest value masked, in characters (as GitHub Actions, which also skips short values)."""


class Masker:
    """Replaces the given values in text read piece by piece."""

    def __init__(self, values: Iterable[str]) -> None:
        encoded = {v.encode() for v in values if len(v) >= MIN_MASKED}
        # Longest first: at one position the longest value wins, as a reader would want.
        self._values = sorted(encoded, key=lambda v: (-len(v), v))
        self._pattern = (
            re.compile(b"|".join(re.escape(v) for v in self._values)) if self._values else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, data: bytes, *, final: bool) -> tuple[bytes, int]:
        """``data`` with every value replaced, and how many bytes of ``data`` that covers.

        Unless ``final`` (nothing follows ``data``), it stops at the first position from which
        the rest of ``data`` is a proper prefix of a value: bytes read next could complete it,
        or make a longer value match there."""
        if self._pattern is None:
            return data, len(data)
        out: list[bytes] = []
        start = 0
        for found in self._pattern.finditer(data):
            stop = None if final else self._partial(data, start, found.start() + 1)
            if stop is not None:
                out.append(data[start:stop])
                return b"".join(out), stop
            out += [data[start : found.start()], MASK.encode()]
            start = found.end()
        stop = None if final else self._partial(data, start, len(data))
        end = len(data) if stop is None else stop
        out.append(data[start:end])
        return b"".join(out), end

    def _partial(self, data: bytes, lo: int, hi: int) -> int | None:
        """The first position in ``[lo, hi)`` from which the rest of ``data`` is a proper
        prefix of a value, if there is one."""
        first: int | None = None
        for value in self._values:
            # Only the last len(value) - 1 bytes can start a proper prefix of it, and only where
            # its first byte is: a few candidates each, not every position of the tail.
            at = max(lo, len(data) - len(value) + 1)
            while (at := data.find(value[:1], at, hi if first is None else first)) >= 0:
                if value.startswith(data[at:]):
                    first = at
                    break
                at += 1
        return first

    def text(self, text: str) -> str:
        """A whole text (an error message) with every value replaced."""
        return self.mask(text.encode(), final=True)[0].decode("utf-8", errors="replace")


def read_log(
    path: Path, offset: int, *, ended: bool, masker: Masker | None = None, limit: int = LOG_CHUNK
) -> LogChunk:
    """Up to ``limit`` bytes of the log at ``path`` from ``offset`` with ``masker``'s values
    masked, and the offset to ask from next; ``complete`` once the writer has ``ended`` and
    nothing is left to read."""
    data, at_end = b"", True
    if path.exists():
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(limit)
        at_end = offset + len(data) >= path.stat().st_size
    final = at_end and ended
    text, used = masker.mask(data, final=final) if masker else (data, len(data))
    return LogChunk(
        text=text.decode("utf-8", errors="replace"),
        offset=offset + used,
        complete=final,
    )
