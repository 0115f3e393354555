"""``lepton photon run``: serve a photon from a local file, as a replica would."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Photons: your own code served as an HTTP API.", no_args_is_help=True)


@app.command()
def run(
    model: str = typer.Option(..., "-m", "--model", help="The photon: FILE.py:Class."),
    port: int = typer.Option(8080, "-p", "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    public: bool = typer.Option(False, "--public", help="Serve without a token."),
    token: str = typer.Option(None, help="The token callers send (default: a new one, printed)."),
) -> None:
    """Serve a photon in the foreground (Ctrl-C drains and stops it).

    Nothing is installed: a missing requirement is reported with the pip command to run.
    """
    from lepton.errors import InvalidRequest
    from lepton.photon.package import load_class
    from lepton.serving.runner import launch_photon

    file, sep, class_name = model.rpartition(":")
    if not sep or not file:
        raise InvalidRequest(
            f"-m {model!r} is not FILE.py:Class",
            fix="name the file and the class, e.g. -m app.py:Echo",
        )
    cls = load_class(Path(file), class_name)
    launch_photon(cls(), host=host, port=port, token=token, public=public)
