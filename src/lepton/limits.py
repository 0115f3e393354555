"""Limits that the wire models declare and the replicas enforce, importable without pydantic:
a replica needs the number, not the ``lepton.schemas`` package (0.3 s of a cold start)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_ROWS", "MAX_ROWS_CEILING"]

DEFAULT_MAX_ROWS = 100_000
"""Rows one request may carry unless the deployment says otherwise: ~16 MB of JSON for 20
numeric columns, and a bounded share of a replica's memory while it is decoded and scored."""
MAX_ROWS_CEILING = 10_000_000
