"""Reading a job's or a deployment's log by byte offset, so a follower asks again from where
it stopped."""

from __future__ import annotations

from pathlib import Path

from lepton.schemas import LogChunk

__all__ = ["LOG_CHUNK", "read_log"]

LOG_CHUNK = 256 * 1024  # bytes of log per answer: a follow loop asks again for the rest


def read_log(path: Path, offset: int, *, ended: bool) -> LogChunk:
    """Up to ``LOG_CHUNK`` bytes of the log at ``path`` from ``offset``, and the offset to ask
    from next; ``complete`` once the writer has ``ended`` and nothing is left to read."""
    text, end, at_end = b"", offset, True
    if path.exists():
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read(LOG_CHUNK)
            end = offset + len(text)
        at_end = end >= path.stat().st_size
    return LogChunk(
        text=text.decode("utf-8", errors="replace"), offset=end, complete=at_end and ended
    )
