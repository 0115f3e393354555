"""``lepton audit``: recent audit events, filterable."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from lepton.cli.output import parse_since, print_json, table, when_short
from lepton.enums import Outcome


def audit(
    action: str = typer.Option(None, help="Only this action, e.g. token.create."),
    actor: str = typer.Option(None, help="Only this token name or id."),
    outcome: Outcome = typer.Option(None, help="success, denied, rejected or failed."),
    since: str = typer.Option(None, help="Only since then: 1h, 7d, or an ISO time."),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many events."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent audit events of your workspace, newest first (admins only)."""
    from lepton.client import Client

    events = Client().audit.list(
        action=action,
        actor=actor,
        outcome=outcome,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    if json:
        print_json(events)
        return
    now = datetime.now(UTC)
    # Five columns that fit 80: the year only when it is not this one, outcome and status as
    # one ("403 denied"), and long actors, actions and resources onto more lines at their
    # dashes, dots and slashes, so ids stay whole.
    table(
        ["time (UTC)", "actor", "action", "resource", "result"],
        [
            (
                when_short(e.time, now),
                e.actor_name or "(no token)",
                e.action,
                e.resource,
                f"{e.status_code} {e.outcome.value}",
            )
            for e in events
        ],
        breaks={"actor": "-_:", "action": "._", "resource": "/-"},
    )
