"""``lepton token create|list|revoke``."""

from __future__ import annotations

import typer

from lepton.cli.output import (
    console,
    most_allowed,
    nonblank,
    parse_duration,
    print_json,
    table,
    when,
)
from lepton.enums import Role

app = typer.Typer(help="Tokens of your workspace (admins only).", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., callback=nonblank, help="A label for the token."),
    role: Role = typer.Option(None, help="admin, editor or viewer.", show_default="viewer"),
    scope: str = typer.Option(
        None, help="A narrow scope instead of a role: job:<id> or deployment:<id>."
    ),
    expires: str = typer.Option(None, help="Lifetime such as 12h, 30d, 2w.", show_default="never"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a token; its secret is printed once."""
    from lepton.client import Client
    from lepton.schemas import TokenCreate

    expires_in = None
    if expires:
        expires_in = parse_duration(
            expires,
            "--expires",
            most=most_allowed(TokenCreate, "expires_in"),
            instead="leave --expires off for a token that lives until `lepton token revoke ID`",
        )
    created = Client().tokens.create(name, role=role, scope=scope, expires_in=expires_in)
    if json:
        print_json(created)
        return
    kind = created.role.value if created.role else created.scope
    expiry = f", expires {when(created.expires_at)} UTC" if created.expires_at else ""
    console.print(
        f"Created token '{created.name}' ({created.id}, {kind}{expiry}). Secret (shown once):"
    )
    console.print(f"\n    {created.token}\n", soft_wrap=True)


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The workspace's tokens (never their secrets)."""
    from lepton.client import Client

    items = Client().tokens.list(include_revoked=all_)
    if json:
        print_json(items)
        return
    table(
        ["id", "name", "role / scope", "created", "expires", "revoked"],
        [
            (
                t.id,
                t.name,
                t.role.value if t.role else t.scope,
                when(t.created_at),
                when(t.expires_at),
                when(t.revoked_at),
            )
            for t in items
        ],
    )


@app.command()
def revoke(
    token_id: str = typer.Argument(
        ..., callback=nonblank, help="The token's id (lepton token list)."
    ),
) -> None:
    """Revoke a token at once."""
    from lepton.client import Client

    revoked = Client().tokens.revoke(token_id)
    console.print(f"Revoked token '{revoked.name}' ({revoked.id}).")
