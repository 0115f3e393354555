"""``lepton photon run``: serve a photon from a local file, as a replica would."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Photons: your own code served as an HTTP API.", no_args_is_help=True)


@app.command()
def run(
    model: str = typer.Option(..., "-m", "--model", help="The photon: FILE.py:Class."),
    port: int = typer.Option(
        8080, "-p", "--port", min=0, max=65535, help="Port to listen on (0: any free one)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    public: bool = typer.Option(False, "--public", help="Serve without a token."),
    token: str = typer.Option(
        None, help="The token callers send.", show_default="a new one, printed"
    ),
) -> None:
    """Serve a photon in the foreground (Ctrl-C drains and stops it).

    Nothing is installed: a missing requirement is reported with the pip command to run.
    """
    from lepton.errors import InvalidRequest
    from lepton.photon.failure import run_failure
    from lepton.photon.package import load_class
    from lepton.serving.runner import launch_photon

    file, sep, class_name = model.rpartition(":")
    if not sep or not file:
        raise InvalidRequest(
            f"-m {model!r} is not FILE.py:Class",
            fix="name the file and the class, e.g. -m app.py:Echo",
        )
    path = Path(file)
    cls = load_class(path, class_name)
    doing = f"{class_name}()"
    try:
        photon = cls()
        doing = f"{class_name}.init()"  # launch_photon runs it before it binds the port
        launch_photon(photon, host=host, port=port, token=token, public=public)
    except Exception as exc:  # the author's code failed: their error and line, no traceback
        failure = run_failure(exc, path.resolve().parent, doing)
        if failure is None:  # no line of theirs in it: ours, so the traceback stays
            raise
        raise failure from None
