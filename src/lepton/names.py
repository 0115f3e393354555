"""The one way a name is checked against its rule: the whole text, with ``re.fullmatch``.

``re.match(r"^...$", text)`` lets a trailing newline through (``$`` also matches before one),
so ``"evil\\n"`` passed for a photon name and could then be neither shown nor deleted. The
patterns live beside their schemas (pydantic checks those with Rust regex, whose ``$`` is the
end of the text); every check in Python code goes through `fits`.
"""

from __future__ import annotations

import functools
import re

__all__ = ["DIGEST_PATTERN", "fits"]

DIGEST_PATTERN = r"^[0-9a-f]{64}$"


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def fits(pattern: str, text: object) -> bool:
    """Whether all of `text` (a str) matches `pattern`; a trailing newline never does."""
    return isinstance(text, str) and _compiled(pattern).fullmatch(text) is not None
