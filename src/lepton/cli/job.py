"""``lepton train``, ``lepton run`` and ``lepton job list|show|logs|cancel|metrics``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from lepton.enums import JobState
from lepton.errors import InvalidRequest, LeptonError, ServerError

if TYPE_CHECKING:
    from lepton.schemas import Job

app = typer.Typer(help="Jobs: follow, inspect and cancel training runs.", no_args_is_help=True)

SECRET_HELP = (
    "NAME or ENV=NAME: a workspace secret (lepton secret create NAME) the code gets as a "
    "variable; repeatable. Its value shows as *** in logs (values under 4 characters are not "
    "masked)."
)


def _params(values: list[str]) -> dict[str, str]:
    params = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise InvalidRequest(
                f"--param {value!r} is not NAME=VALUE", fix="e.g. --param epochs=10"
            )
        params[key] = raw
    return params


def _split(validation: float, test: float, seed: int) -> dict[str, float]:
    return {"train": 1 - validation - test, "validation": validation, "test": test, "seed": seed}


def train(
    dataset: str = typer.Argument(..., help="Dataset, NAME or NAME@vN."),
    target: str = typer.Option(None, help="Target column.", show_default="the dataset's"),
    algorithm: str = typer.Option("auto", help="An algorithm (lepton algorithms list) or auto."),
    param: list[str] = typer.Option([], help="NAME=VALUE; repeat for more."),
    time_budget: str = typer.Option("5m", help="Wall-clock budget, e.g. 90s, 5m, 1h."),
    gpus: int = typer.Option(0, min=0, help="GPUs to use."),
    cpus: float = typer.Option(1.0, min=0.01, help="CPU cores the job needs."),
    memory: str = typer.Option(
        None, help="Memory the job needs, e.g. 4G or 512M.", show_default="no reservation"
    ),
    workers: int = typer.Option(
        1, min=1, max=64, help="Data-parallel workers, each with --cpus/--gpus/--memory."
    ),
    seed: int = typer.Option(0, help="Seed of the split and the training."),
    validation: float = typer.Option(0.1, min=0, max=0.9, help="Share of rows for validation."),
    test: float = typer.Option(0.1, min=0.01, max=0.9, help="Share of rows for the test."),
    model: str = typer.Option(
        None, help="Register the model under this name.", show_default="dataset"
    ),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job id."),
) -> None:
    """Train a model on a dataset and register it."""
    from lepton.client import Client
    from lepton.schemas import TrainSpec

    budget = parse_duration(
        time_budget, "--time-budget", most=most_allowed(TrainSpec, "time_budget_s")
    )
    client = Client()
    job = client.jobs.train(
        dataset,
        target=target,
        algorithm=algorithm,
        params=_params(param),
        time_budget_s=budget,
        gpus=gpus,
        cpus=cpus,
        memory_mb=parse_memory(memory),
        seed=seed,
        split=_split(validation, test, seed),
        model=model,
        workers=workers,
    )
    _after_submit(client, job, detach)


def run(
    script: Path = typer.Argument(..., help="A Python script.", exists=True, dir_okay=False),
    dataset: str = typer.Option(None, help="Dataset the script reads with lepton.load_dataset()."),
    validation: float = typer.Option(
        0.1, min=0, max=0.9, help="Share of rows load_dataset(split='validation') returns."
    ),
    test: float = typer.Option(
        0.1, min=0.01, max=0.9, help="Share of rows load_dataset(split='test') returns."
    ),
    seed: int = typer.Option(0, help="Seed of the split."),
    gpus: int = typer.Option(0, min=0, help="GPUs to use."),
    cpus: float = typer.Option(1.0, min=0.01, help="CPU cores the job needs."),
    memory: str = typer.Option(
        None, help="Memory the job needs, e.g. 4G or 512M.", show_default="no reservation"
    ),
    workers: int = typer.Option(
        1, min=1, max=64, help="Data-parallel workers, each with --cpus/--gpus/--memory."
    ),
    args: list[str] = typer.Argument(None, help="Arguments for the script (after --)."),
    env: list[str] = typer.Option(
        None, "--env", "-e", help="K=V: a variable the script gets (repeatable; not LEPTON_*)."
    ),
    env_file: Path = typer.Option(
        None, "--env-file", exists=True, dir_okay=False, help="A file of K=V lines."
    ),
    secret: list[str] = typer.Option(None, "--secret", help=SECRET_HELP),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job id."),
) -> None:
    """Run your own training script as a job, with the same tracking."""
    from lepton.client import Client

    variables = parse_env(list(env or []), env_file)
    client = Client()
    job = client.jobs.run_script(
        script,
        dataset=dataset,
        split=_split(validation, test, seed),
        args=list(args or []),
        env=variables,
        secrets=list(secret or []),
        gpus=gpus,
        cpus=cpus,
        memory_mb=parse_memory(memory),
        workers=workers,
    )
    _after_submit(client, job, detach)


_MEMORY_UNITS = {"": 1, "M": 1, "MI": 1, "G": 1024, "GI": 1024, "T": 1024**2, "TI": 1024**2}


def parse_memory(text: str | None) -> int | None:
    """``--memory 4G`` (or ``512M``, ``1.5Gi``; a bare number is MiB) as MiB."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*?)B?\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _MEMORY_UNITS:
        raise InvalidRequest(
            f"--memory {text!r} is not an amount of memory", fix="e.g. --memory 4G or 512M"
        )
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


def parse_env(pairs: list[str], env_file: Path | None) -> dict[str, str]:
    """``--env K=V`` options over an ``--env-file`` of ``K=V`` lines (``#`` comments and blank
    lines skipped; an optional ``export`` and quotes around the value are dropped)."""
    lines: list[tuple[str, str]] = []
    if env_file is not None:
        for number, raw in enumerate(env_file.read_text().splitlines(), 1):
            text = raw.strip()
            if text and not text.startswith("#"):
                lines.append((text.removeprefix("export ").strip(), f"{env_file}:{number}"))
    lines += [(pair, "--env") for pair in pairs]
    found: dict[str, str] = {}
    for text, where in lines:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise InvalidRequest(
                f"{where}: {text!r} is not NAME=VALUE",
                fix="write each variable as NAME=VALUE, e.g. --env EPOCHS=5",
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[name.strip()] = value
    return found


def _after_submit(client: Any, job: Job, detach: bool) -> None:
    final = follow_submitted(client, job, detach)
    if final is not None:
        _report(final)


def follow_submitted(client: Any, job: Job, detach: bool, doing: str = "submitted") -> Job | None:
    """Follow a job just submitted until it ends (None when detached or on Ctrl-C); a job that
    failed at submit is an error."""
    if job.state == JobState.failed:
        _fail(job)
    if detach:
        console.print(f"Submitted job [bold]{job.id}[/]. Follow it: lepton job logs {job.id} -f")
        return None
    console.print(f"Job [bold]{job.id}[/] {doing}; following it (Ctrl-C detaches).")
    try:
        return _follow(client, job.id)
    except KeyboardInterrupt:
        console.print(f"\nDetached; the job goes on. Follow it: lepton job logs {job.id} -f")
        raise typer.Exit(0) from None


def _follow(client: Any, job_id: str) -> Job:
    job: Job = client.jobs.get(job_id)
    for latest, text in client.jobs.follow(job_id):
        job = latest
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
    return job


def _fail(job: Job) -> None:
    error = job.error
    message = error.message if error else f"job {job.id} {job.state.value}"
    fix = error.fix if error else f"lepton job logs {job.id}"
    raise InvalidRequest(f"job {job.id} failed: {message}", fix=fix)


def _report(job: Job) -> None:
    if job.state == JobState.succeeded:
        result = job.result or {}
        metrics = result.get("metrics", {})
        shown = ", ".join(f"{k} {v:.4f}" for k, v in list(metrics.items())[:6])
        model = result.get("model")
        console.print(
            f"Job {job.id} succeeded." + (f" Registered [bold]{model}[/]." if model else "")
        )
        if shown:
            console.print(f"Test metrics: {shown}")
        return
    if job.state == JobState.cancelled:
        console.print(f"Job {job.id} was cancelled.")
        raise typer.Exit(1)
    if job.error and "ended without a result" in job.error.message:
        raise ServerError(job.error.message, fix=job.error.fix)
    _fail(job)


@app.command("list")
def list_(
    state: JobState = typer.Option(None, help="Only jobs in this state."),
    limit: int = typer.Option(20, min=1, max=1000, help="At most this many."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent jobs, newest first."""
    from lepton.client import Client

    jobs = Client().jobs.list(state=state, limit=limit)
    if json:
        print_json(jobs)
        return
    table(
        ["id", "state", "dataset", "algorithm", "result"],
        [
            (
                j.id,
                j.state.value,
                j.dataset_version,
                getattr(j.spec, "algorithm", "script"),
                (j.result or {}).get("model") or (j.error.message[:40] if j.error else None),
            )
            for j in jobs
        ],
    )


@app.command()
def show(
    job_id: str = typer.Argument(..., callback=nonblank, help="Job id."),
    plot: Path = typer.Option(None, help="Write the metrics plot to this PNG file."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A job's spec, state, environment, result or error; --plot draws its metrics."""
    from lepton.client import Client

    client = Client()
    job = client.jobs.get(job_id)
    if json:
        print_json(job)
        return
    rows: list[tuple[str, object]] = [
        ("state", job.state.value + (" (cancel requested)" if job.cancel_requested else "")),
        ("kind", job.kind),
        ("dataset", job.dataset_version),
        ("spec", job.spec.model_dump_json(exclude_defaults=True)),
        ("attempts", job.attempts),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
    ]
    if job.result:
        rows.append(("result", job.result))
    if job.error:
        rows.append(("error", job.error.message))
        if job.error.fix:
            rows.append(("fix", job.error.fix))
    if job.environment:
        rows.append(("environment", ", ".join(f"{k} {v}" for k, v in job.environment.items())))
    table(["", ""], rows)
    if plot:
        from lepton.jobs.plot import plot_metrics

        plot_metrics(client.jobs.metrics(job_id), plot, title=f"job {job_id}")
        console.print(f"Wrote {plot}.")


@app.command()
def logs(
    job_id: str = typer.Argument(..., callback=nonblank, help="Job id."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing until the job ends."),
) -> None:
    """A job's log (every attempt)."""
    from lepton.client import Client

    client = Client()
    if follow:
        _report(_follow(client, job_id))
        return
    offset = 0
    while True:
        chunk = client.jobs.logs(job_id, offset)
        sys.stdout.write(chunk.text)
        if not chunk.text:
            break
        offset = chunk.offset


@app.command()
def cancel(job_id: str = typer.Argument(..., callback=nonblank, help="Job id.")) -> None:
    """Cancel a queued or running job."""
    from lepton.client import Client

    job = Client().jobs.cancel(job_id)
    console.print(f"Job {job.id}: {job.state.value} (cancel requested).")


@app.command()
def metrics(
    job_id: str = typer.Argument(..., callback=nonblank, help="Job id."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The metrics a job logged: the last value of each, and how many points."""
    from lepton.client import Client

    points = Client().jobs.metrics(job_id)
    if json:
        print_json(points)
        return
    last: dict[str, tuple[int, float, int]] = {}
    for p in points:
        count = last.get(p.name, (0, 0.0, 0))[2] + 1
        last[p.name] = (p.step, p.value, count)
    table(
        ["metric", "last step", "last value", "points"],
        [(name, step, f"{value:.6g}", count) for name, (step, value, count) in last.items()],
    )


__all__ = ["LeptonError", "app", "run", "train"]
