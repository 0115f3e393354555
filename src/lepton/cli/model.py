"""``lepton model list|show|pull|rm|alias|describe|compare|card`` and
``lepton algorithms list|show``."""

from __future__ import annotations

from pathlib import Path

import typer

from lepton.cli.output import (
    console,
    nonblank,
    output_file,
    print_json,
    table,
    when,
    writing,
)

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
    ref: str = typer.Argument(..., help="NAME, NAME@N or NAME@ALIAS."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A model version: metrics, evaluations, parameters, lineage and the AutoML leaderboard."""
    from lepton.client import Client

    client = Client()
    v = client.models.get(ref)
    if json:
        print_json(v)
        return
    console.print(
        f"[bold]{v.ref}[/]: {v.algorithm} ({v.flavour}), {v.task}, trained on "
        f"{v.dataset_version or '-'} by job {v.job or '-'}, {when(v.created_at)} UTC"
    )
    if v.aliases:
        console.print("aliases: " + ", ".join(v.aliases))
    if v.parent:
        console.print(f"derived from: {v.parent}")
    if v.description:
        console.print(f"intended use: {v.description}")
    table(
        ["metric", "value"],
        [(k, f"{val:.4f}") for k, val in v.metrics.items()],
        title="test metrics",
    )
    for evaluation in client.models.evaluations(v.ref):
        where = evaluation.dataset_version or "a deleted dataset"
        title = f"{'held-out test split of ' if evaluation.split == 'test' else ''}{where}"
        metrics = evaluation.result.get("metrics", {})
        table(
            ["metric", "value"],
            [(k, f"{val:.4f}") for k, val in sorted(metrics.items())],
            title=f"evaluation on {title} ({evaluation.result.get('rows', '?')} rows)",
        )
        for column, parts in sorted(evaluation.result.get("slices", {}).items()):
            names = sorted({k for part in parts for k in part["metrics"]})[:4]
            table(
                ["value", "rows", *names],
                [
                    (part["value"], part["rows"], *(_fmt(part["metrics"].get(n)) for n in names))
                    for part in parts
                ],
                title=f"by {column}",
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
    output: Path = typer.Option(None, "-o", "--output", help="File.", show_default="NAME-N.zip"),
) -> None:
    """Download the packed model (safe formats only: no pickle)."""
    from lepton.client import Client

    client = Client()
    version = client.models.get(ref)
    target = output_file(output, f"{version.model}-{version.version}.zip")
    with writing(target):
        client.models.pull(version.ref, target)
    console.print(f"Wrote {target}.")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


@app.command("rm")
def rm(
    ref: str = typer.Argument(..., help="NAME@N (or NAME@ALIAS)."),
    force: bool = typer.Option(False, "--force", help="Delete even while aliases point at it."),
) -> None:
    """Delete a model version. Its number is never reused; lineage keeps it as deleted."""
    from lepton.client import Client

    client = Client()
    version = client.models.get(ref)
    client.models.delete(version.ref, force=force)
    console.print(f"Deleted {version.ref}.")


@app.command()
def alias(
    ref: str = typer.Argument(..., help="NAME@N to point at (NAME alone with --delete)."),
    name: str = typer.Argument(..., callback=nonblank, help="Alias, e.g. production."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
) -> None:
    """Point an alias at a version (moving it if it exists): NAME@ALIAS then works everywhere."""
    from lepton.client import Client
    from lepton.refs import parse_ref

    client = Client()
    model, _ = parse_ref(ref)
    if delete:
        client.models.delete_alias(model, name)
        console.print(f"Removed alias {model}@{name}.")
        return
    version = client.models.alias(ref, name)
    console.print(f"{model}@{name} now points at {version.ref}.")


@app.command()
def describe(
    ref: str = typer.Argument(..., help="NAME@N."),
    text: str = typer.Argument(..., help="The intended use, as the model card should quote it."),
) -> None:
    """Set the intended-use text of a version (its model card quotes it)."""
    from lepton.client import Client

    version = Client().models.describe(ref, text)
    console.print(f"Described {version.ref}. See the card: lepton model card {version.ref}")


@app.command()
def compare(
    refs: list[str] = typer.Argument(..., help="Two or more versions: heart@2 heart@3."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Versions side by side: metrics, the parameters that differ, the data."""
    import json as json_lib

    from lepton.client import Client

    result = Client().models.compare(refs)
    if json:
        console.print_json(json_lib.dumps(result))
        return
    versions = result["versions"]
    rows: list[tuple[object, ...]] = [("algorithm", *result["algorithms"])]
    rows += [("dataset", *(d or "-" for d in result["datasets"]))]
    rows += [(name, *map(_fmt, values)) for name, values in result["metrics"].items()]
    rows += [(f"param {name}", *map(_fmt, values)) for name, values in result["params"].items()]
    table(["", *versions], rows, title="comparison")
    if result["same_params"]:
        console.print("same in all: " + ", ".join(result["same_params"]))


@app.command()
def card(
    ref: str = typer.Argument(..., help="NAME, NAME@N or NAME@ALIAS."),
    output: Path = typer.Option(None, "-o", "--output", help="Write the Markdown here."),
    html: Path = typer.Option(None, "--html", help="Also write the card as one HTML page."),
) -> None:
    """The model card, from recorded facts only: Markdown with Hugging Face YAML front matter."""
    from lepton.client import Client

    client = Client()
    text = client.models.card(ref)
    if output is None and html is None:
        typer.echo(text, nl=False)
        return
    if output is not None:
        output.write_text(text, encoding="utf-8")
        console.print(f"Wrote {output}.")
    if html is not None:
        html.write_text(client.models.card(ref, format="html"), encoding="utf-8")
        console.print(f"Wrote {html}.")


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
