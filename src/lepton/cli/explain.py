"""``lepton explain TARGET``: why a model answers what it answers, as a ranked table in the
terminal and, with ``--html``, as a small self-contained page.

Where the explanation is computed:

* a deployment (``TARGET`` names it, or it serves the version ``TARGET`` names) answers
  ``POST /explain`` with its inference token (``--token``; none for a public one);
* otherwise the version is loaded into this process (``client.models.load``) and explained by
  ``lepton.explain.explainer_for``: the explainer a replica builds, so the numbers are the same.

A deployment whose token was not given is explained in this process instead. The output says
which way it went and why.
"""

from __future__ import annotations

import base64
import html
import json as jsonlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lepton.cli.output import console, err_console
from lepton.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    import numpy as np

    from lepton.client import Client
    from lepton.schemas import Deployment, ModelVersion

__all__ = ["explain"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_FILE_KINDS = ".json, .jsonl, .csv, .npy or an image (.png, .jpg)"
# Half the width of the terminal's diverging bar: 10 cells each side keeps a 30-feature table
# with names like "worst fractal dimension" inside 80 columns.
_HALF_BAR = 10


@dataclass
class Inputs:
    """What to explain: tabular or text rows (dicts), or images (an N x H x W [x C] array)."""

    rows: list[dict[str, Any]] | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.images)  # type: ignore[arg-type]


@dataclass
class Source:
    """Where the explanation comes from, in words for the output."""

    version: ModelVersion
    deployment: Deployment | None
    note: str | None = None  # why a deployment was not asked

    @property
    def remote(self) -> bool:
        return self.deployment is not None

    def describe(self) -> str:
        if self.deployment is not None:
            return f"deployment {self.deployment.name} ({self.deployment.url})"
        return "this process"


def explain(
    target: str = typer.Argument(
        ..., help="A deployment name, or a model version: NAME, NAME@N or NAME@ALIAS."
    ),
    row: list[str] = typer.Option(
        None,
        "--row",
        help="One input as JSON: an object for a table row ('{\"age\": 54, ...}'), or a nested "
        "list for an image. Repeat for more.",
    ),
    rows_file: Path = typer.Option(
        None,
        "--rows-file",
        help='Inputs from a file: .json (a row, a list of rows or {"rows": [...]}), .jsonl, '
        ".csv, .npy (images) or one image file (.png, .jpg).",
    ),
    class_: str = typer.Option(
        None, "--class", help="Explain this class instead of each row's predicted one."
    ),
    top: int = typer.Option(15, "--top", min=1, help="Features shown per row; the rest summed."),
    html_path: Path = typer.Option(
        None, "--html", help="Also write a self-contained HTML report to this file."
    ),
    token: str = typer.Option(
        None, "--token", help="The deployment's inference token (lepton deploy printed it)."
    ),
    local: bool = typer.Option(
        False, "--local", help="Explain in this process even when a deployment serves the model."
    ),
    json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
) -> None:
    """Explain a model's answers: each feature's push towards the output (SHAP), each pixel's
    (integrated gradients) or each word's, from base value to prediction."""
    from lepton.client import Client

    inputs = read_inputs(row or [], rows_file)
    client = Client()
    source = resolve(client, target, token=token, local=local)
    if source.note:
        err_console.print(f"[yellow]note:[/] {source.note}", soft_wrap=True)
    if inputs.images is not None:
        inputs = Inputs(images=_fit_images(inputs.images, source.version.signature))
    overlay = html_path is not None and inputs.images is not None
    if source.deployment is not None:
        data = _remote(client, source.deployment, inputs, token, class_, overlay=overlay)
    else:
        data = _local(client, source.version, inputs, class_, overlay=overlay)
    if html_path is not None and data["kind"] == "image" and inputs.images is not None:
        _add_overlays(data, inputs.images)
    if json:
        payload = {"model": source.version.ref, "source": source.describe(), **data}
        sys.stdout.write(jsonlib.dumps(payload) + "\n")
    else:
        print_explanation(data, inputs, source, top, wrote_html=html_path is not None)
    if html_path is not None:
        html_path.write_text(render_html(data, inputs, source, top), encoding="utf-8")
        err_console.print(f"Wrote {html_path}")


# --- inputs ---------------------------------------------------------------------------------


def read_inputs(rows: list[str], path: Path | None) -> Inputs:
    """Rows from ``--row`` and ``--rows-file``; one kind of input (rows or images) at a time."""
    if not rows and path is None:
        raise InvalidRequest(
            "nothing to explain: give --row or --rows-file",
            fix='e.g. lepton explain heart@1 --row \'{"age": 54, "chol": 230}\'',
        )
    parsed: list[Any] = []
    for i, text in enumerate(rows):
        try:
            parsed.append(jsonlib.loads(text))
        except jsonlib.JSONDecodeError as exc:
            raise InvalidRequest(
                f"--row number {i + 1} is not JSON ({exc.msg} at character {exc.pos})",
                fix='quote it for the shell: --row \'{"age": 54, "sex": "F"}\'',
            ) from None
    inputs = _from_values(parsed, "--row") if parsed else Inputs()
    if path is not None:
        more = _read_file(path)
        if inputs.rows is not None and more.rows is not None:
            return Inputs(rows=inputs.rows + more.rows)
        if parsed:
            raise InvalidRequest(
                "--row and --rows-file give different kinds of input (rows and images)",
                fix="give rows both ways, or images both ways",
            )
        inputs = more
    return inputs


def _from_values(values: list[Any], where: str) -> Inputs:
    import numpy as np

    if all(isinstance(v, dict) for v in values):
        return Inputs(rows=values)
    if all(isinstance(v, list) for v in values):
        try:
            images = np.asarray(values, dtype=np.float64)
        except ValueError:
            raise InvalidRequest(
                f"the images of {where} are ragged nested lists",
                fix="give each image as a list of rows of equal length",
            ) from None
        return Inputs(images=images)
    kinds = sorted({type(v).__name__ for v in values})
    raise InvalidRequest(
        f"{where} holds {', '.join(kinds)}; each input is a JSON object (a row) or a nested "
        "list (an image)",
        fix="e.g. --row '{\"age\": 54}' for a table, or --rows-file digit.png for an image",
    )


def _read_file(path: Path) -> Inputs:
    if not path.is_file():
        raise InvalidRequest(f"{path} is not a file", fix="check the path given to --rows-file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = jsonlib.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("rows", data.get("inputs", [data]))
            if (
                isinstance(data, list)
                and data
                and all(isinstance(v, (int, float)) for v in data[0])
            ):
                data = [data]  # one 2-D image
            return _from_values(data if isinstance(data, list) else [data], str(path))
        if suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            return _from_values([jsonlib.loads(line) for line in lines if line.strip()], str(path))
        if suffix in (".csv", ".tsv"):
            import pandas as pd

            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
            frame = frame.astype(object).where(frame.notna(), None)  # NaN is not JSON
            return Inputs(rows=frame.to_dict(orient="records"))
        if suffix == ".npy":
            import numpy as np

            array = np.load(path, allow_pickle=False)
            return Inputs(images=array[None] if array.ndim == 2 else array)
        if suffix in _IMAGE_SUFFIXES:
            return Inputs(images=_read_image(path)[None])
    except (jsonlib.JSONDecodeError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise InvalidRequest(
            f"cannot read {path}: {exc}", fix=f"give a well-formed {suffix or 'input'} file"
        ) from None
    raise InvalidRequest(
        f"--rows-file {path}: cannot tell its format from '{suffix or 'no suffix'}'",
        fix=f"give {_FILE_KINDS}",
    )


def _read_image(path: Path) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture.load()
            mode = "L" if picture.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            return np.asarray(picture.convert(mode))
    except UnidentifiedImageError:
        raise ValueError("not an image PIL can read") from None


def _fit_images(images: np.ndarray, signature: dict[str, Any]) -> np.ndarray:
    """Colour images for a greyscale model become grey (the model's own shape is checked by
    the explainer, which names both shapes)."""
    shape = (signature.get("inputs") or {}).get("shape") if signature else None
    if isinstance(shape, list) and len(shape) == 2 and images.ndim == 4 and images.shape[-1] == 3:
        return images.mean(axis=-1).round()  # type: ignore[no-any-return]
    return images


# --- where the explanation comes from -------------------------------------------------------


def resolve(client: Client, target: str, *, token: str | None, local: bool) -> Source:
    """The model version behind ``target`` and the deployment to ask, if one should be."""
    deployment = None
    if "@" not in target and not local:
        try:
            deployment = client.deployments.get(target)
        except NotFound:
            deployment = None
    if deployment is not None:
        if deployment.source != "model" or deployment.model is None:
            raise InvalidRequest(
                f"deployment '{target}' serves the photon {deployment.photon}; only deployments "
                "of registered models explain",
                fix="explain a model version instead: lepton explain NAME@N --row ...",
            )
        version = client.models.get(deployment.model)
    else:
        try:
            version = client.models.get(target)
        except NotFound as exc:
            raise NotFound(
                exc.message,
                fix="name a deployment (lepton deployment list) or a model version "
                "(lepton model list)",
            ) from None
        if not local:
            serving = [d for d in client.deployments.list() if d.model == version.ref]
            deployment = next((d for d in serving if d.state == "ready"), None)
    if deployment is None:
        return Source(version, None)
    if deployment.public or token is not None:
        return Source(version, deployment)
    why = f"deployment {deployment.name} needs its token (--token) to be asked"
    return Source(version, None, note=f"{why}; explaining {version.ref} in this process.")


def _remote(
    client: Client,
    deployment: Deployment,
    inputs: Inputs,
    token: str | None,
    explain_class: str | None,
    *,
    overlay: bool,
) -> Any:
    rows = inputs.rows
    images = None if inputs.images is None else inputs.images.tolist()
    return client.deployments.explain(
        deployment.name, rows, inputs=images, token=token, target=explain_class, overlay=overlay
    )


def _local(
    client: Client, version: ModelVersion, inputs: Inputs, explain_class: str | None, overlay: bool
) -> dict[str, Any]:
    from lepton.explain import explainer_for
    from lepton.registry.flavours import as_input

    model = client.models.load(version.ref)
    given = inputs.rows if inputs.rows is not None else inputs.images
    X = as_input(given, model.signature, model.flavour)
    explainer = explainer_for(model)
    return explainer.explain(X, target=explain_class, overlay=overlay).to_dict()


def _add_overlays(data: dict[str, Any], images: np.ndarray) -> None:
    """A replica answers the saliency map only: draw each overlay here from it and the image."""
    import numpy as np

    from lepton.explain.image import overlay_png

    for row, image in zip(data["rows"], images, strict=False):
        if row.get("overlay_png"):
            continue
        picture = np.asarray(image)
        if picture.ndim == 3:
            picture = np.moveaxis(picture, -1, 0)  # H x W x C -> C x H x W
        saliency = np.asarray(row["attributions"], dtype=np.float64)
        row["overlay_png"] = base64.b64encode(overlay_png(picture, saliency)).decode("ascii")


# --- terminal -------------------------------------------------------------------------------


@dataclass
class Item:
    """One line of a ranked table."""

    name: str
    value: Any
    attribution: float


def ranked(
    row: dict[str, Any], given: dict[str, Any] | None, top: int
) -> tuple[list[Item], float, int]:
    """The ``top`` largest attributions by absolute value, the sum of the rest, and how many
    the rest are."""
    names = row.get("names") or []
    values = [float(a) for a in row["attributions"]]
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))
    shown = [
        Item(str(names[i]), (given or {}).get(str(names[i]), ""), values[i]) for i in order[:top]
    ]
    rest = order[top:]
    return shown, sum(values[i] for i in rest), len(rest)


def check_line(data: dict[str, Any], row: dict[str, Any]) -> str:
    """``base + sum = output``, in numbers, with how far it is off."""
    import numpy as np

    total = float(np.sum(np.asarray(row["attributions"], dtype=np.float64)))
    base, output = float(row["base_value"]), float(row["output"])
    text = f"base value {base:.4f} + sum of attributions {total:+.4f} = {base + total:.4f}"
    if not data.get("additive", True):
        return f"{text}; output {output:.4f} (this method is not additive: {data['method']})"
    gap = abs(base + total - output)
    return f"{text}; output {output:.4f} (off by {gap:.1e})"


def headline(data: dict[str, Any], row: dict[str, Any], index: int) -> str:
    prediction = row.get("prediction")
    probability = row.get("probability")
    said = f"predicted {prediction}"
    target = row.get("target")
    if target is not None:
        said += f"; explaining class {target}"
    if probability is not None:
        said += f" (probability {probability:.3f})"
    space = data["output_space"].replace("_", "-")
    return f"row {index + 1}: {said}, in {space} space"


def _bar(attribution: float, scale: float) -> str:
    cells = round(_HALF_BAR * abs(attribution) / scale) if scale > 0 else 0
    if attribution >= 0:
        return " " * _HALF_BAR + "│" + f"[red]{'█' * cells}[/]"
    return " " * (_HALF_BAR - cells) + f"[blue]{'█' * cells}[/]" + "│"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def print_explanation(
    data: dict[str, Any], inputs: Inputs, source: Source, top: int, *, wrote_html: bool = False
) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    version = source.version
    console.print(
        f"[bold]{version.ref}[/] ({version.algorithm}): {data['method']}, computed "
        f"{'by' if source.remote else 'in'} {source.describe()}",
        soft_wrap=True,
    )
    for i, row in enumerate(data["rows"]):
        console.print()
        console.print(headline(data, row, i), soft_wrap=True)
        if data["kind"] == "image":
            console.print(_saliency_summary(row), soft_wrap=True)
        else:
            given = inputs.rows[i] if inputs.rows is not None and i < len(inputs.rows) else None
            items, rest, count = ranked(row, given, top)
            scale = max((abs(item.attribution) for item in items), default=0.0)
            grid = Table(box=box.SIMPLE_HEAD, pad_edge=False)
            grid.add_column("#", justify="right")
            grid.add_column("feature" if data["kind"] == "tabular" else "word", overflow="fold")
            if data["kind"] == "tabular":
                grid.add_column("value", justify="right")
            grid.add_column("attribution", justify="right")
            grid.add_column("lowers │ raises", no_wrap=True)
            for rank, item in enumerate(items, start=1):
                cells = [str(rank), escape(item.name)]
                if data["kind"] == "tabular":
                    cells.append(escape(_value(item.value)))
                cells += [f"{item.attribution:+.4f}", _bar(item.attribution, scale)]
                grid.add_row(*cells)
            if count:
                cells = ["", f"{count} more", *([""] if data["kind"] == "tabular" else [])]
                grid.add_row(*cells, f"{rest:+.4f}", "")
            console.print(grid)
        console.print(check_line(data, row), soft_wrap=True)
    if data["kind"] == "image" and not wrote_html:
        console.print("\nAdd --html report.html for the saliency overlay.")


def _saliency_summary(row: dict[str, Any]) -> str:
    import numpy as np

    saliency = np.asarray(row["attributions"], dtype=np.float64)
    magnitude = np.sort(np.abs(saliency).ravel())[::-1]
    total = float(magnitude.sum()) or 1.0
    strongest = max(1, magnitude.size // 10)
    share = float(magnitude[:strongest].sum()) / total
    positive = float(saliency[saliency > 0].sum())
    negative = float(saliency[saliency < 0].sum())
    h, w = saliency.shape[:2]
    return (
        f"saliency {h}x{w}: pixels raising the class add {positive:+.4f}, lowering it "
        f"{negative:+.4f}; the strongest 10% of pixels hold {share:.0%} of the attribution"
    )


# --- HTML -----------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222 }
table { border-collapse: collapse } td, th { padding: 2px 10px; text-align: right }
td:nth-child(2), th:nth-child(2) { text-align: left } .check { color: #555 }
img { image-rendering: pixelated; border: 1px solid #ccc }
"""


def render_html(data: dict[str, Any], inputs: Inputs, source: Source, top: int) -> str:
    """One page, no external references: an SVG bar chart per row (the overlay PNG as a data
    URI for images) and the ranked table."""
    e = html.escape
    version = source.version
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Explanation of {e(version.ref)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Why {e(version.ref)} answers what it answers</h1>",
        f"<p>{e(version.algorithm)} ({e(version.task)}), explained by {e(data['method'])} in "
        f"{e(source.describe())}. Red raises the explained output, blue lowers it.</p>",
    ]
    for i, row in enumerate(data["rows"]):
        parts.append(f"<h2>{e(headline(data, row, i))}</h2>")
        parts.append(f'<p class="check">{e(check_line(data, row))}</p>')
        if data["kind"] == "image":
            if row.get("overlay_png"):
                parts.append(
                    f'<img alt="saliency overlay of row {i + 1}" width="280" '
                    f'src="data:image/png;base64,{row["overlay_png"]}">'
                )
            parts.append(f"<p>{e(_saliency_summary(row))}</p>")
            continue
        given = inputs.rows[i] if inputs.rows is not None and i < len(inputs.rows) else None
        items, rest, count = ranked(row, given, top)
        parts.append(_svg(items))
        tabular = data["kind"] == "tabular"  # text rows have words, which carry no value
        head = f"<tr><th>#</th><th>{'feature</th><th>value' if tabular else 'word'}</th>"
        lines = [
            f"<tr><td>{n}</td><td>{e(item.name)}</td>"
            + (f"<td>{e(_value(item.value))}</td>" if tabular else "")
            + f"<td>{item.attribution:+.4f}</td></tr>"
            for n, item in enumerate(items, start=1)
        ]
        if count:
            blank = "<td></td>" if tabular else ""
            lines.append(f"<tr><td></td><td>{count} more</td>{blank}<td>{rest:+.4f}</td></tr>")
        head += "<th>attribution</th></tr>"
        parts.append(f"<table>{head}{''.join(lines)}</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _svg(items: list[Item]) -> str:
    """Diverging horizontal bars: names on the left, zero in the middle of the plot area."""
    label_w, half, bar_h, gap = 230, 220, 16, 6
    scale = max((abs(item.attribution) for item in items), default=0.0) or 1.0
    zero = label_w + half
    height = len(items) * (bar_h + gap) + gap
    shapes = [f'<line x1="{zero}" y1="0" x2="{zero}" y2="{height}" stroke="#888"/>']
    for n, item in enumerate(items):
        y = gap + n * (bar_h + gap)
        length = half * abs(item.attribution) / scale
        x = zero if item.attribution >= 0 else zero - length
        colour = "#d62728" if item.attribution >= 0 else "#1f5fd6"
        text_x = zero + (length if item.attribution >= 0 else 0) + 4  # clear of the names
        shapes += [
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end" font-size="12">'
            f"{html.escape(item.name)}</text>",
            f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="{colour}"/>',
            f'<text x="{text_x:.1f}" y="{y + 12}" font-size="11">{item.attribution:+.4f}</text>',
        ]
    width = label_w + 2 * half + 70
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="attributions">{"".join(shapes)}</svg>'
    )
