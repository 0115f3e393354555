"""Request bodies the SDK builds from a caller's arguments, checked before anything is sent.

A pydantic ``ValidationError`` is not a :class:`~lepton.errors.LeptonError`: left alone it
reached the CLI as a traceback (``lepton token create x --expires 99999999d``). Here it becomes
an :class:`~lepton.errors.InvalidRequest` naming each bad argument and what it allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from lepton.errors import InvalidRequest

__all__ = ["checked"]


@contextmanager
def checked(what: str, *, fix: str = "correct the named argument(s)") -> Iterator[None]:
    """Build ``what`` (e.g. ``"job spec"``) inside this block: a ``ValidationError`` leaves it
    as ``InvalidRequest("invalid job spec: 'gpus': Input should be ...")``."""
    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidRequest(f"invalid {what}: {problems}", fix=fix) from None
