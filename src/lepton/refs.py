"""References such as ``heart``, ``heart@v2``, ``heart@2`` and ``heart@latest``."""

from __future__ import annotations

import re

from lepton.errors import InvalidRequest

__all__ = ["parse_ref", "version_number"]

_REF = re.compile(r"(?P<name>[^@\s]+)(?:@(?P<version>[^@\s]+))?")


def parse_ref(ref: str, *, default: str = "latest") -> tuple[str, str]:
    """Split ``name@version`` into its parts; a bare name means ``default``."""
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidRequest(
            f"{ref!r} is not a reference", fix="write NAME or NAME@VERSION, e.g. heart@v2"
        )
    return match.group("name"), match.group("version") or default


_NUMBER = re.compile(r"v?([0-9]{1,9})")


def version_number(version: str, *, example: str) -> int | None:
    """``3`` or ``v3`` → 3; ``latest`` → None; anything else is an error showing ``example``."""
    if version == "latest":
        return None
    match = _NUMBER.fullmatch(version)
    if match is None:
        raise InvalidRequest(
            f"'{version}' is not a version; write 3, v3 or latest", fix=f"for example: {example}"
        )
    return int(match.group(1))
