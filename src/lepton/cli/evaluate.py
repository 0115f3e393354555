"""``lepton evaluate NAME@REF --dataset DS@vN [--slice COL ...]``: an evaluate job, followed."""

from __future__ import annotations

import typer

from lepton.cli.output import console, table


def evaluate(
    ref: str = typer.Argument(..., help="Model version: NAME@N, NAME@ALIAS or NAME."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Labelled data: NAME@vN."),
    slices: list[str] = typer.Option(
        [], "--slice", help="Report the metrics per value of this column (repeatable)."
    ),
    target: str = typer.Option(None, "--target", help="Target column.", show_default="the model's"),
    cpus: float = typer.Option(1.0, min=0.01, help="CPU cores the job needs."),
    memory: str = typer.Option(
        None, help="Memory the job needs, e.g. 4G or 512M.", show_default="no reservation"
    ),
    detach: bool = typer.Option(False, "--detach", help="Submit and return."),
) -> None:
    """Evaluate a model version on a dataset: metrics for its task, per slice, with plots.

    The result is attached to the version: lepton model show and its model card list it."""
    from lepton.cli.job import _fail, follow_submitted, parse_memory
    from lepton.client import Client
    from lepton.schemas import EvaluateSpec, JobState

    client = Client()
    job = client.models.evaluate(
        ref,
        dataset,
        target=target,
        slices=slices,
        cpus=cpus,
        memory_mb=parse_memory(memory),
    )
    assert isinstance(job.spec, EvaluateSpec)  # what client.models.evaluate submits
    model = job.spec.model  # the alias, resolved at submit
    final = follow_submitted(client, job, detach, doing=f"evaluates {model}")
    if final is None:
        return
    if final.state != JobState.succeeded:
        _fail(final)
    evaluation = next(e for e in reversed(client.models.evaluations(model)) if e.job == job.id)
    metrics = evaluation.result.get("metrics", {})
    table(["metric", "value"], [(k, f"{v:.4f}") for k, v in sorted(metrics.items())], title=model)
    for column, parts in sorted(evaluation.result.get("slices", {}).items()):
        key = "accuracy" if "accuracy" in metrics else "rmse"
        table(
            ["value", "rows", key],
            [(p["value"], p["rows"], f"{p['metrics'].get(key, float('nan')):.4f}") for p in parts],
            title=f"by {column}",
        )
    console.print(f"Recorded on {model}. See it in the card: lepton model card {model}")
