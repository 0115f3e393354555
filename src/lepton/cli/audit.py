"""``lepton audit``: recent audit events, filterable."""

from __future__ import annotations

import typer

from lepton.cli.output import parse_since, print_json, table, when
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
    table(
        ["time (UTC)", "actor", "action", "resource", "outcome", "status"],
        [
            (
                when(e.time),
                e.actor_name or "(no token)",
                e.action,
                e.resource,
                e.outcome.value,
                e.status_code,
            )
            for e in events
        ],
    )
