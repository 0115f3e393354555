"""``lepton``: the root command, ``up``, ``status`` and ``login``; groups live in sibling modules."""

from __future__ import annotations

import socket
import sys

import typer

from lepton.cli import audit as audit_cmd
from lepton.cli import dataset as dataset_cmd
from lepton.cli import deploy as deploy_cmd
from lepton.cli import evaluate as evaluate_cmd
from lepton.cli import explain as explain_cmd
from lepton.cli import job as job_cmd
from lepton.cli import lineage as lineage_cmd
from lepton.cli import model as model_cmd
from lepton.cli import photon as photon_cmd
from lepton.cli import secret as secret_cmd
from lepton.cli import token as token_cmd
from lepton.cli import workspace as workspace_cmd
from lepton.cli.output import console, fail, print_json, table
from lepton.errors import ConfigError, LeptonError

app = typer.Typer(
    name="lepton",
    help="Lepton: a self-hosted AI platform. Start it with `lepton up`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(workspace_cmd.app, name="workspace")
app.add_typer(dataset_cmd.app, name="dataset")
app.command("train")(job_cmd.train)
app.command("run")(job_cmd.run)
app.add_typer(job_cmd.app, name="job")
app.add_typer(model_cmd.app, name="model")
app.add_typer(model_cmd.algorithms, name="algorithms")
app.add_typer(photon_cmd.app, name="photon")
deploy_cmd.add_photon_commands(photon_cmd.app)  # push, list, rm beside `photon run`
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("lineage")(lineage_cmd.lineage)
app.command("explain")(explain_cmd.explain)
app.command("deploy")(deploy_cmd.deploy)
app.add_typer(deploy_cmd.app, name="deployment")
app.add_typer(token_cmd.app, name="token")
app.add_typer(secret_cmd.app, name="secret")
app.command("audit")(audit_cmd.audit)


def _print_version(value: bool) -> None:
    # Eager, from the option's own callback: the group would otherwise stop at "Missing
    # command" before the root callback ever saw --version.
    if value:
        from lepton._version import __version__

        console.print(f"lepton {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        expose_value=False,
        help="Print the version and exit.",
    ),
) -> None:
    pass


@app.command()
def up(
    host: str = typer.Option(
        None, help="Address to listen on.", show_default="LEPTON_HOST or 127.0.0.1"
    ),
    port: int = typer.Option(
        None, min=1, max=65535, help="Port to listen on.", show_default="LEPTON_PORT or 8700"
    ),
    ray: bool = typer.Option(
        False,
        "--ray",
        help="Run jobs and replicas on Ray: a local head (127.0.0.1, token authentication) "
        "unless LEPTON_RAY_ADDRESS names a cluster. Needs pip install 'lepton[ray]'.",
    ),
) -> None:
    """Start the control plane in the foreground (Ctrl-C stops it)."""
    import uvicorn

    from lepton.control.plane import Control
    from lepton.control.workspaces import FirstStart
    from lepton.executors import open_executor
    from lepton.sandbox import Sandbox
    from lepton.server.app import create_app, open_control
    from lepton.settings import Settings

    settings = Settings.from_env(host=host, port=port, executor="ray" if ray else None)
    _check_port_free(settings.host, settings.port)
    opened = open_control(settings)  # before uvicorn, so a bad setting is a clear error
    sandbox = Sandbox.detect(settings)  # LEPTON_SANDBOX=required without one stops here
    executor = open_executor(settings, sandbox)  # a Ray cluster that cannot be reached, too

    def started(control: Control, first: FirstStart | None) -> None:
        if first is not None:
            console.print("[bold]First start.[/] Created workspace 'default' and an admin token:")
            console.print(f"\n    {first.token}\n", soft_wrap=True)
            console.print("It is shown only once.", end=" ")
            if first.credentials_written:
                console.print(f"Saved to {settings.credentials_path} (mode 0600).")
            else:
                console.print(
                    f"{settings.credentials_path} points at another server and was left alone."
                )
        console.print(
            f"Lepton control plane on [bold]{settings.local_url}[/] "
            f"(state in {settings.home}, database {control.ctx.engine.dialect.name}, "
            f"blobs {'encrypted' if control.ctx.blobs.encrypted else 'unencrypted'})."
        )
        console.print(
            ("Containment: " if sandbox.active else "[bold]Warning:[/] ") + sandbox.describe()
        )
        if hasattr(executor, "describe"):
            warn = not getattr(executor, "authenticated", True)
            console.print(("[bold]Warning:[/] " if warn else "Executor: ") + executor.describe())
        console.print("Try: lepton status")

    config = uvicorn.Config(
        create_app(settings, on_start=started, control=opened, sandbox=sandbox, executor=executor),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if not 0 < port < 65536:  # LEPTON_PORT; bind() would raise OverflowError
            raise ConfigError(
                f"cannot listen on port {port}: ports are 1 to 65535",
                fix="set LEPTON_PORT to a free port, e.g. 8700, or pass --port",
            )
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                fix="is Lepton already running? (lepton status) Otherwise pick another port: "
                "lepton up --port 8701",
            ) from None


@app.command()
def status(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the server, its stores, and who you are."""
    from lepton.client import Client

    client = Client()
    info = client.status()
    if json:
        print_json(info)
        return
    token = info.token
    table(
        ["", ""],
        [
            ("server", f"{client.url} (lepton {info.version}, API v{info.api_version})"),
            ("workspace", info.workspace),
            ("token", f"{token.name} ({token.id}), {token.role or token.scope}"),
            ("database", info.database),
            ("storage", f"{info.storage} ({'encrypted' if info.encrypted else 'not encrypted'})"),
            ("uptime", f"{info.uptime_s:.0f} s"),
        ],
    )


@app.command()
def login(
    url: str = typer.Option(..., help="Control-plane URL, e.g. http://127.0.0.1:8700."),
    token: str = typer.Option(
        ..., help="A token of the workspace to use.", prompt=True, hide_input=True
    ),
) -> None:
    """Check a URL and token against the server, then save them for the CLI and SDK."""
    from lepton.client import Client
    from lepton.credentials import Credentials, clean_token, write_credentials
    from lepton.settings import Settings

    url = url.strip()
    token = clean_token(token, "--token", fix="pass the token as `lepton token create` printed it")
    info = Client(url, token).status()
    settings = Settings.from_env()
    write_credentials(settings.credentials_path, Credentials(url=url.rstrip("/"), token=token))
    console.print(
        f"Logged in to {url} as '{info.token.name}' ({info.token.role or info.token.scope}) "
        f"in workspace '{info.workspace}'. Saved to {settings.credentials_path}."
    )


def main() -> None:
    """Entry point: a user's mistake prints a message and a fix, never a traceback."""
    try:
        app(prog_name="lepton")
    except LeptonError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(130)
