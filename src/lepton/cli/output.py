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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from pydantic import BaseModel

from lepton.cli.layout import fit
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

__all__ = [
    "EXIT_CODES",
    "console",
    "fail",
    "nonblank",
    "output_file",
    "parse_duration",
    "print_json",
    "table",
    "when",
    "writing",
]

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
    # Escaped: a message quotes what it was given, and "[a-z0-9]" is not rich markup to eat.
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.fix:
        err_console.print(f"[yellow]fix:[/] {escape(exc.fix)}", soft_wrap=True)
    sys.exit(exit_code(exc))


def nonblank(value: str | None) -> str | None:
    """Typer callback for an argument that names something: a blank one would leave an empty
    part in the request's path (``/tokens/``), which the server answers with a redirect."""
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty: give a name or id (the group's `list` shows them)")
    return value


def output_file(given: Path | None, default: str) -> Path:
    """Where a download is written: ``-o FILE``, ``default``'s name inside ``-o FOLDER``, or
    ``default`` here; a folder that does not exist is said before anything is fetched."""
    name = Path(default).name
    target = name if given is None else given / name if given.is_dir() else given
    target = Path(target)
    folder = target.parent.resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"cannot write {target}: the folder {folder} does not exist",
            fix=f"create it first (mkdir -p {folder}), or pass another -o",
        )
    return target


@contextmanager
def writing(target: Path) -> Iterator[None]:
    """A download into ``target``: the system refusing it (a read-only folder, a full disk)
    is an answer naming the file, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror or exc}",
            fix="pass -o with a folder you can write to and that has room",
        ) from None


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
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    breaks: Mapping[str, str] | None = None,
) -> None:
    """Print ``rows`` under ``columns`` (``None`` shows as ``-``). ``breaks`` names columns
    whose long values may go onto more lines and after which characters (``layout.fit``)."""
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    lean = fit(columns, cells, breaks or {}, console.width)
    out = Table(
        title=title,
        title_justify="left",
        box=None if lean else box.HEAVY_HEAD,
        pad_edge=not lean,
        header_style="bold underline" if lean else "table.header",
    )
    for column in columns:
        # Ids must stay whole (users copy them); other columns fold to fit the terminal.
        out.add_column(
            column, overflow="fold", no_wrap=column in _WHOLE and column not in (breaks or {})
        )
    for row in cells:
        out.add_row(*row)
    console.print(out)


def when(value: datetime | None) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM``, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def when_short(value: datetime, now: datetime) -> str:
    """A UTC time as ``MM-DD HH:MM`` in ``now``'s year, else as :func:`when` does (as ``ls -l``
    drops the year of recent files): five columns fewer where the width is short."""
    moment = value.astimezone(UTC)
    same_year = moment.year == now.astimezone(UTC).year
    return moment.strftime("%m-%d %H:%M") if same_year else when(moment)


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, option: str, *, most: int | None = None, instead: str = "") -> int:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` → seconds; at most ``most`` seconds (``instead``
    adds another way out to the fix of a longer one)."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"{option} {text!r} is not a duration",
            fix=f"write a positive number and a unit: {option} 30d (units s, m, h, d, w)",
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if most is not None and seconds > most:
        raise ConfigError(
            f"{option} {text.strip()} is longer than the limit, {spoken(most)}",
            fix=f"pass {option} {spoken(most)} or less" + (f", or {instead}" if instead else ""),
        )
    return seconds


def spoken(seconds: int) -> str:
    """Seconds in the largest unit that divides them: 604800 → ``1w``, 315360000 → ``3650d``."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # unreachable: every whole number of seconds divides by 1


def most_allowed(model: type[BaseModel], field: str) -> int:
    """The upper bound the wire model sets on ``field``: limits live in the schemas, once."""
    prop = model.model_json_schema()["properties"][field]
    for option in (prop, *prop.get("anyOf", ())):
        if "maximum" in option:
            return int(option["maximum"])
    raise KeyError(f"{model.__name__}.{field} has no maximum")


def parse_since(text: str) -> datetime:
    """A duration back from now (``1h``) or an ISO 8601 time."""
    if _DURATION.match(text.strip()):
        seconds = parse_duration(text, "--since")
        try:
            return datetime.now(UTC) - timedelta(seconds=seconds)
        except OverflowError:  # further back than a datetime reaches: since the beginning
            return datetime.min.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a duration nor an ISO time",
            fix="use --since 1h or --since 2026-11-25T08:00",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
