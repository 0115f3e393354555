"""``lepton dataset push|list|show|pull|rm|transform|split``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lepton.cli.output import console, output_file, print_json, table, when, writing
from lepton.errors import InvalidRequest

if TYPE_CHECKING:
    from lepton.schemas import DatasetVersionDetail

app = typer.Typer(help="Versioned datasets with profiles and PII scans.", no_args_is_help=True)


def _progress(total: int, description: str) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    )
    return bar, bar.add_task(description, total=total or None)


@app.command()
def push(
    path: Path = typer.Argument(
        None, help="A file (CSV, TSV, Parquet, JSONL, NPZ, IDX) or a folder."
    ),
    name: str = typer.Option(None, help="Dataset name.", show_default="the file's name"),
    target: str = typer.Option(None, help="Target column.", show_default="guessed"),
    format: str = typer.Option(None, "--format", help="Override the format the name implies."),
    sample: str = typer.Option(
        None, help="Push a bundled sample: breast-cancer, digits, diabetes, co2, mnist."
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Push a new version; content already pushed returns the existing version."""
    from lepton.client import Client

    client = Client()
    data: Any = path
    if sample:
        from lepton.data.samples import load_sample

        data, name = load_sample(sample), name or sample
    elif path is None:
        raise InvalidRequest("nothing to push", fix="pass a PATH, or --sample breast-cancer")
    size = Path(data).stat().st_size if isinstance(data, Path) and Path(data).is_file() else 0
    bar, task = _progress(size, "uploading")
    with bar:
        version = client.datasets.push(
            data,
            name=name,
            target=target,
            format=format,
            progress=lambda n: bar.advance(task, n),
        )
    if json:
        print_json(version)
        return
    verb = "Pushed" if version.created else "Already stored as"
    console.print(
        f"{verb} [bold]{version.ref}[/]: {version.rows:,} rows, {len(version.schema_)} columns "
        f"({version.format}), target {version.target or '-'}."
    )
    _print_pii(version)
    console.print(f"Next: lepton dataset show {version.ref}")


@app.command("list")
def list_(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Datasets of your workspace."""
    from lepton.client import Client

    items = Client().datasets.list()
    if json:
        print_json(items)
        return
    table(
        ["name", "versions", "latest", "rows", "format", "created (UTC)"],
        [
            (
                d.name,
                d.versions,
                d.latest.ref if d.latest else None,
                f"{d.latest.rows:,}" if d.latest else None,
                d.latest.format if d.latest else None,
                when(d.created_at),
            )
            for d in items
        ],
    )


@app.command()
def show(
    ref: str = typer.Argument(..., help="NAME or NAME@vN."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Schema, profile and PII report of a version."""
    from lepton.client import Client

    version = Client().datasets.get(ref)
    if json:
        print_json(version)
        return
    profile = version.profile
    lineage = f", from {version.parent}" if version.parent else ""
    console.print(
        f"[bold]{version.ref}[/] ({version.format}, {version.source_name}{lineage}): "
        f"{profile.rows:,} rows, {profile.columns} columns, "
        f"{profile.duplicate_rows:,} duplicate rows, pushed {when(version.created_at)} UTC"
    )
    if version.transform:
        from lepton.data.transforms import describe

        console.print("transform: " + "; ".join(describe(version.transform.steps).splitlines()))
    rows = []
    for column in profile.column_profiles:
        if column.kind.value in ("numeric",) and column.mean is not None:
            stats = f"min {_num(column.min)}  mean {_num(column.mean)}  max {_num(column.max)}"
        elif column.image is not None:
            image = column.image
            stats = (
                f"{image.width_min}-{image.width_max} x {image.height_min}-{image.height_max} px"
            )
        elif column.top_values:
            stats = ", ".join(f"{v.value} ({v.count:,})" for v in column.top_values[:3])
        elif column.min is not None:
            stats = f"{column.min} .. {column.max}"
        else:
            stats = ""
        rows.append(
            (column.name, column.kind.value, f"{column.nulls:,}", f"{column.distinct:,}", stats)
        )
    table(["column", "kind", "nulls", "distinct", "summary"], rows)
    if profile.target:
        guessed = " (guessed; set it with --target)" if profile.target_guessed else ""
        console.print(f"target: [bold]{profile.target}[/]{guessed}")
        if profile.class_balance:
            total = sum(v.count for v in profile.class_balance) or 1
            console.print(
                "classes: "
                + ", ".join(
                    f"{v.value} {v.count:,} ({v.count / total:.0%})"
                    for v in profile.class_balance[:12]
                )
            )
    _print_pii(version)


def _num(value: float | str | None) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_pii(version: DatasetVersionDetail) -> None:
    findings = version.pii.findings
    hashed = version.pii.columns_hashed
    if hashed:
        console.print(f"Salted digests, not scanned for PII: {', '.join(hashed)}")
    if not findings:
        console.print("PII scan: nothing found.")
        return
    table(
        ["column", "personal data", "values", "examples (masked)"],
        [(f.column, f.kind.value, f"{f.count:,}", ", ".join(f.examples)) for f in findings],
        title="PII scan",
    )
    columns = ",".join(sorted({f.column for f in findings}))
    console.print(
        f"Anonymise before training: lepton dataset transform {version.ref} --anonymize {columns}"
    )


@app.command()
def pull(
    ref: str = typer.Argument(..., help="NAME or NAME@vN."),
    output: Path = typer.Option(
        None, "-o", "--output", help="File to write.", show_default="the pushed name"
    ),
) -> None:
    """Download the exact bytes that were pushed (verified against their sha256)."""
    from lepton.client import Client

    client = Client()
    version = client.datasets.get(ref)
    target = output_file(output, version.source_name)
    bar, task = _progress(version.source_size, "downloading")
    with bar, writing(target):
        client.datasets.pull(version.ref, target, progress=lambda n: bar.advance(task, n))
    console.print(
        f"Wrote {target} ({version.source_size:,} bytes, sha256 {version.source_digest[:12]}...)."
    )


@app.command()
def rm(
    ref: str = typer.Argument(..., help="NAME@vN for one version, NAME for the whole dataset."),
    force: bool = typer.Option(
        False, "--force", help="Delete even if other versions derive from it."
    ),
) -> None:
    """Delete a version (or a dataset) and erase its stored bytes."""
    from lepton.client import Client

    Client().datasets.delete(ref, force=force)
    console.print(f"Deleted {ref}.")


def _split_list(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, new = value.partition("=")
        if not sep or not key or not new:
            raise InvalidRequest(
                f"{option} {value!r} is not KEY=VALUE", fix=f"e.g. {option} age=float"
            )
        pairs[key] = new
    return pairs


@app.command()
def transform(
    ref: str = typer.Argument(..., help="NAME or NAME@vN to derive from."),
    select: str = typer.Option(None, help="Keep only these columns (comma-separated)."),
    drop: str = typer.Option(None, help="Remove these columns (comma-separated)."),
    rename: list[str] = typer.Option([], help="OLD=NEW; repeat for more."),
    cast: list[str] = typer.Option(
        [], help="COLUMN=TYPE (int, float, string, bool, datetime, category)."
    ),
    dropna: bool = typer.Option(False, "--dropna", help="Drop rows with a missing value."),
    deduplicate: bool = typer.Option(False, "--deduplicate", help="Drop repeated rows."),
    anonymize: str = typer.Option(None, help="Anonymise these columns (comma-separated)."),
    method: str = typer.Option("hash", help="How to anonymise: hash, mask or drop."),
    salt: str = typer.Option(None, help="Salt for hash.", show_default="random, never stored"),
    resize: str = typer.Option(None, help="Resize images to WIDTHxHEIGHT, e.g. 28x28."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make a new version linked to its parent. Steps run in the order of the options above."""
    from lepton.client import Client

    steps: list[dict[str, Any]] = []
    if select:
        steps.append({"op": "select", "columns": _split_list(select)})
    if drop:
        steps.append({"op": "drop", "columns": _split_list(drop)})
    if rename:
        steps.append({"op": "rename", "mapping": _pairs(rename, "--rename")})
    if cast:
        steps.append({"op": "cast", "types": _pairs(cast, "--cast")})
    if dropna:
        steps.append({"op": "drop_nulls"})
    if deduplicate:
        steps.append({"op": "deduplicate"})
    if anonymize:
        steps.append(
            {"op": "anonymize", "columns": _split_list(anonymize), "method": method, "salt": salt}
        )
    if resize:
        width, sep, height = resize.lower().partition("x")
        if not (sep and width.isdigit() and height.isdigit()):
            raise InvalidRequest(
                f"--resize {resize!r} is not WIDTHxHEIGHT", fix="e.g. --resize 28x28"
            )
        steps.append({"op": "resize_images", "width": int(width), "height": int(height)})
    if not steps:
        raise InvalidRequest(
            "no transform given", fix="pass at least one option, e.g. --drop patient_id"
        )
    version = Client().datasets.transform(ref, steps)
    if json:
        print_json(version)
        return
    verb = "Made" if version.created else "Already stored as"
    console.print(
        f"{verb} [bold]{version.ref}[/] from {version.parent}: {version.rows:,} rows, "
        f"{len(version.schema_)} columns."
    )
    _print_pii(version)


@app.command()
def split(
    ref: str = typer.Argument(..., help="NAME or NAME@vN."),
    train: float = typer.Option(0.8, help="Train share."),
    validation: float = typer.Option(0.1, help="Validation share."),
    test: float = typer.Option(0.1, help="Test share."),
    seed: int = typer.Option(0, help="Seed of the shuffle."),
    strategy: str = typer.Option("auto", help="auto, random, stratified or time."),
    target: str = typer.Option(None, help="Stratify on this column.", show_default="the target"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make (or show) the stored train/validation/test split of a version."""
    from lepton.client import Client

    result = Client().datasets.split(
        ref,
        train=train,
        validation=validation,
        test=test,
        seed=seed,
        strategy=strategy,
        target=target,
    )
    if json:
        print_json(result)
        return
    counts = result.counts
    console.print(
        f"{result.strategy} split (seed {result.spec.seed}): train {counts.get('train', 0):,}, "
        f"validation {counts.get('validation', 0):,}, test {counts.get('test', 0):,}."
    )
