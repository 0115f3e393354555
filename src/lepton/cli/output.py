"""Terminal output shared by the commands: tables, JSON, durations, and errors with exit codes.

Exit codes scripts can rely on:

====  ===============================================================
0     success
1     the server failed (a bug) or an unexpected error
2     bad input: a usage error or a request the server rejected (4xx)
3     not allowed: missing, invalid, revoked or expired token, or role
4     not found
5     conflict with the current state (already exists, already revoked)
6     no server: not configured or not reachable
130   interrupted (Ctrl-C); ``lepton up`` stopped by SIGTERM exits 143 after a clean shutdown
====  ===============================================================
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from pydantic import BaseModel

from lepton.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    LeptonError,
    NotFound,
    PermissionDenied,
    ServerError,
)

__all__ = ["EXIT_CODES", "console", "fail", "parse_duration", "print_json", "table", "when"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_CODES: dict[type[LeptonError], int] = {
    ServerError: 1,
    AuthenticationError: 3,
    PermissionDenied: 3,
    NotFound: 4,
    Conflict: 5,
    ConnectionFailed: 6,
}


def exit_code(exc: LeptonError) -> int:
    for cls, code in EXIT_CODES.items():
        if isinstance(exc, cls):
            return code
    return 2


def fail(exc: LeptonError) -> NoReturn:
    """Print ``error: <message>`` and the fix (no traceback), then exit with its code."""
    err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
    if exc.fix:
        err_console.print(f"[yellow]fix:[/] {exc.fix}", soft_wrap=True)
    sys.exit(exit_code(exc))


def print_json(data: BaseModel | Sequence[BaseModel]) -> None:
    """Machine-readable output for ``--json``."""
    if hasattr(data, "model_dump"):
        payload: Any = data.model_dump(mode="json")
    else:
        payload = [item.model_dump(mode="json") for item in data]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


_WHOLE = frozenset({"id", "resource", "name", "latest", "dataset", "state"})
"""Columns whose values users copy into the next command: never folded mid-word."""


def table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None
) -> None:
    out = Table(title=title, title_justify="left")
    for column in columns:
        # Ids must stay whole (users copy them); other columns fold to fit the terminal.
        out.add_column(column, overflow="fold", no_wrap=column in _WHOLE)
    for row in rows:
        out.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(out)


def when(value: datetime | None) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM``, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, option: str) -> int:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` → seconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"{option} {text!r} is not a duration",
            fix=f"write a positive number and a unit: {option} 30d (units s, m, h, d, w)",
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_since(text: str) -> datetime:
    """A duration back from now (``1h``) or an ISO 8601 time."""
    if _DURATION.match(text.strip()):
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text, "--since"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a duration nor an ISO time",
            fix="use --since 1h or --since 2026-11-25T08:00",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
