"""``lepton workspace create|list``."""

from __future__ import annotations

import typer

from lepton.cli.output import console, print_json, table, when

app = typer.Typer(help="Workspaces: the unit of isolation.", no_args_is_help=True)


@app.command("list")
def list_(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Workspaces this token can see."""
    from lepton.client import Client

    items = Client().workspaces.list()
    if json:
        print_json(items)
        return
    table(["name", "created (UTC)"], [(w.name, when(w.created_at)) for w in items])


@app.command()
def create(
    name: str = typer.Argument(..., help="Lower-case letters, digits and dashes."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a workspace and print its first admin token (shown once)."""
    from lepton.client import Client

    client = Client()
    created = client.workspaces.create(name)
    if json:
        print_json(created)
        return
    console.print(f"Created workspace '{created.workspace.name}'. Its admin token (shown once):")
    console.print(f"\n    {created.admin_token.token}\n", soft_wrap=True)
    console.print(f"Use it: lepton login --url {client.url} --token <token>", soft_wrap=True)
