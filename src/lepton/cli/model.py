"""``lepton model list|show|pull`` and ``lepton algorithms list|show``."""

from __future__ import annotations

from pathlib import Path

import typer

from lepton.cli.output import console, print_json, table, when

app = typer.Typer(help="The model registry.", no_args_is_help=True)
algorithms = typer.Typer(help="The built-in algorithm library.", no_args_is_help=True)


@app.command("list")
def list_(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Models of your workspace."""
    from lepton.client import Client

    models = Client().models.list()
    if json:
        print_json(models)
        return
    table(
        ["name", "versions", "latest", "algorithm", "dataset", "metrics"],
        [
            (
                m.name,
                m.versions,
                m.latest.ref if m.latest else None,
                m.latest.algorithm if m.latest else None,
                m.latest.dataset_version if m.latest else None,
                ", ".join(f"{k} {v:.4f}" for k, v in list(m.latest.metrics.items())[:3])
                if m.latest
                else None,
            )
            for m in models
        ],
    )


@app.command()
def show(
    ref: str = typer.Argument(..., help="NAME or NAME@N."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A model version: metrics, parameters, lineage and the AutoML leaderboard."""
    from lepton.client import Client

    v = Client().models.get(ref)
    if json:
        print_json(v)
        return
    console.print(
        f"[bold]{v.ref}[/]: {v.algorithm} ({v.flavour}), {v.task}, trained on "
        f"{v.dataset_version or '-'} by job {v.job or '-'}, {when(v.created_at)} UTC"
    )
    table(
        ["metric", "value"],
        [(k, f"{val:.4f}") for k, val in v.metrics.items()],
        title="test metrics",
    )
    if v.params:
        console.print("params: " + ", ".join(f"{k}={val}" for k, val in v.params.items()))
    if v.leaderboard:
        table(
            ["algorithm", "validation score", "fit (s)"],
            [
                (
                    row.get("algorithm"),
                    f"{row.get('val_score', float('nan')):.4f}",
                    f"{row.get('fit_seconds', 0):.1f}",
                )
                for row in v.leaderboard[:10]
            ],
            title="AutoML leaderboard",
        )


@app.command()
def pull(
    ref: str = typer.Argument(..., help="NAME or NAME@N."),
    output: Path = typer.Option(None, "-o", "--output", help="File [default: NAME-N.zip]."),
) -> None:
    """Download the packed model (safe formats only: no pickle)."""
    from lepton.client import Client

    client = Client()
    version = client.models.get(ref)
    target = output or Path(f"{version.model}-{version.version}.zip")
    client.models.pull(version.ref, target)
    console.print(f"Wrote {target}.")


@algorithms.command("list")
def algorithms_list() -> None:
    """Every built-in algorithm, with the tasks and inputs it supports."""
    from lepton.algorithms.registry import list_algorithms

    table(
        ["name", "family", "tasks", "inputs", "summary"],
        [
            (a.name, a.family, ", ".join(a.tasks), ", ".join(a.kinds), a.summary)
            for a in list_algorithms()
        ],
    )


@algorithms.command("show")
def algorithms_show(name: str = typer.Argument(..., help="Algorithm name.")) -> None:
    """An algorithm's hyperparameters: defaults and AutoML search ranges."""
    from lepton.algorithms.registry import describe

    algo = describe(name)  # an unknown name is an error naming the closest one
    table(
        ["parameter", "kind", "default", "range", "meaning"],
        [
            (
                pname,
                p.kind,
                p.default,
                ", ".join(map(str, p.choices))
                if p.choices
                else f"{p.low} .. {p.high}" + (" (log)" if p.log else ""),
                p.help,
            )
            for pname, p in (algo.params or {}).items()
        ],
        title=f"{name}: {algo.summary}",
    )
