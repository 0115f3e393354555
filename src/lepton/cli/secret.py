"""``lepton secret create|list|rm``: workspace secrets, which jobs and deployments get by name."""

from __future__ import annotations

import sys

import typer

from lepton.cli.output import console, nonblank, print_json, table, when
from lepton.errors import InvalidRequest

app = typer.Typer(
    help="Workspace secrets: stored encrypted, given to jobs and deployments by name "
    "(--secret NAME), never shown again.",
    no_args_is_help=True,
)


def _read_value(name: str) -> str:
    """The value from a hidden prompt (asked twice) at a terminal, else all of stdin less one
    trailing newline (``printf %s "$TOKEN" | ...`` or ``< file``)."""
    if sys.stdin.isatty():
        value: str = typer.prompt(
            f"Value of {name}", hide_input=True, confirmation_prompt=True, show_default=False
        )
        return value
    text = sys.stdin.read()
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


@app.command()
def create(
    name: str = typer.Argument(
        ..., callback=nonblank, help="Secret name, as an environment variable: HF_TOKEN."
    ),
    value: str = typer.Option(
        None,
        "--value",
        help="The value. It stays in your shell history: without it the value is read from "
        "stdin, or asked for (hidden) at a terminal.",
        show_default=False,
    ),
) -> None:
    """Create a secret, or replace its value.

    A job gets it with `lepton run SCRIPT --secret NAME`, a deployment with `lepton deploy ...
    --secret NAME` (--secret ENV=NAME names the variable). In job and deployment logs the value
    shows as ***; values shorter than 4 characters are not masked.
    """
    from lepton.client import Client

    value = _read_value(name) if value is None else value
    if not value:
        raise InvalidRequest(
            f"the value of secret '{name}' is empty",
            fix=f'pass it with --value, or on stdin: printf %s "$VALUE" | lepton secret create '
            f"{name}",
        )
    secret = Client().secrets.create(name, value)
    done = "Created" if secret.created_at == secret.updated_at else "Replaced the value of"
    console.print(
        f"{done} secret [bold]{secret.name}[/]. Use it: lepton run SCRIPT --secret {name}"
    )
    if len(value) < 4:
        console.print(
            "[bold]Note:[/] values shorter than 4 characters are not masked in logs (*** hides "
            "longer ones)."
        )


@app.command("list")
def list_(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The workspace's secrets: names and times, never values."""
    from lepton.client import Client

    secrets = Client().secrets.list()
    if json:
        print_json(secrets)
        return
    table(
        ["name", "created", "updated"],
        [(s.name, when(s.created_at), when(s.updated_at)) for s in secrets],
    )


@app.command("rm")
def remove(name: str = typer.Argument(..., callback=nonblank, help="Secret name.")) -> None:
    """Delete a secret.

    Refused while a deployment needs it; a queued job that names it fails when it would start.
    """
    from lepton.client import Client

    Client().secrets.delete(name)
    console.print(f"Deleted secret {name}.")
