"""Charts drawn on the server as SVG: no script, no inline style (the CSP allows neither), every
label escaped. Colours come from presentation attributes the stylesheet can override."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["bars", "heatmap", "histogram", "lineage", "lines"]

_PALETTE = ("#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285")


def _num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def histogram(edges: Sequence[float], counts: Sequence[int], *, width: int = 240) -> Markup:
    """Bars of a histogram, with its range under it."""
    height, top = 56, max(counts, default=0) or 1
    step = width / max(len(counts), 1)
    rects = "".join(
        f'<rect x="{i * step:.1f}" y="{height - height * c / top:.1f}" width="{max(step - 1, 1):.1f}" '
        f'height="{height * c / top:.1f}" fill="{_PALETTE[0]}"><title>{_num(edges[i])} to '
        f"{_num(edges[i + 1])}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    label = f"{_num(edges[0])} to {_num(edges[-1])}" if edges else ""
    return Markup(
        f'<svg class="chart histogram" role="img" viewBox="0 0 {width} {height + 14}" '
        f'width="{width}" height="{height + 14}"><title>histogram, {escape(label)}</title>{rects}'
        f'<text x="0" y="{height + 12}" font-size="10">{escape(label)}</text></svg>'
    )


def bars(items: Sequence[tuple[str, float]], *, width: int = 360, signed: bool = False) -> Markup:
    """Horizontal bars, one per (label, value); ``signed`` draws negatives leftwards in another
    colour (attributions)."""
    row, label_w = 18, 140
    span = max((abs(v) for _, v in items), default=0) or 1
    area = width - label_w - 60
    zero = label_w + (area / 2 if signed else 0)
    scale = (area / 2 if signed else area) / span
    parts = []
    for i, (label, value) in enumerate(items):
        length = abs(value) * scale
        x = zero - length if signed and value < 0 else zero
        colour = _PALETTE[1] if signed and value < 0 else _PALETTE[0]
        y = i * row
        parts.append(
            f'<text x="{label_w - 4}" y="{y + 13}" font-size="11" text-anchor="end">'
            f"{escape(label[:24])}</text>"
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(length, 0.5):.1f}" height="{row - 6}" '
            f'fill="{colour}"><title>{escape(label)}: {_num(value)}</title></rect>'
            f'<text x="{width - 56}" y="{y + 13}" font-size="11">{_num(value)}</text>'
        )
    height = row * max(len(items), 1)
    return Markup(
        f'<svg class="chart bars" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}">{"".join(parts)}</svg>'
    )


def lines(
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    width: int = 480,
    where: str = "at step {step}",
) -> Markup:
    """One polyline per metric over its steps, each scaled to its own range (metrics differ in
    units), with a legend giving the last value (``where`` says where it is; ``{step}`` is its
    step). The last point gets a dot, so a series of one point shows too."""
    height, pad = 150, 6
    shown = {k: v for k, v in series.items() if v}
    if not shown:
        return Markup('<p class="muted">No metrics yet.</p>')
    steps = [s for points in shown.values() for s, _ in points]
    first, last = min(steps), max(steps)
    x_span = (last - first) or 1
    parts, legend = [], []
    for i, (name, points) in enumerate(sorted(shown.items())):
        values = [v for _, v in points if math.isfinite(v)] or [0.0]
        low, high = min(values), max(values)
        y_span = (high - low) or 1
        colour = _PALETTE[i % len(_PALETTE)]
        coords = " ".join(
            f"{pad + (width - 2 * pad) * (s - first) / x_span:.1f},"
            f"{height - pad - (height - 2 * pad) * (v - low) / y_span:.1f}"
            for s, v in points
        )
        end_x, end_y = coords.rsplit(" ", 1)[-1].split(",")
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2">'
            f'<title>{escape(name)}</title></polyline><circle cx="{end_x}" cy="{end_y}" r="3" '
            f'fill="{colour}"/>'
        )
        at = where.format(step=points[-1][0])
        legend.append(
            f'<text x="{pad}" y="{height + 14 + 14 * i}" font-size="11" fill="{colour}">'
            f"{escape(name)}: {_num(points[-1][1])}{' ' + escape(at) if at else ''} "
            f"(range {_num(low)} to {_num(high)})</text>"
        )
    total = height + 8 + 14 * len(shown)
    return Markup(
        f'<svg class="chart lines" role="img" viewBox="0 0 {width} {total}" width="{width}" '
        f'height="{total}"><rect x="0" y="0" width="{width}" height="{height}" fill="none" '
        f'stroke="#ccc"/>{"".join(parts)}{"".join(legend)}</svg>'
    )


def heatmap(
    grid: Sequence[Sequence[float]],
    *,
    labels: Sequence[str] | None = None,
    size: int = 224,
    counts: bool = False,
) -> Markup:
    """A grid of cells, darker for larger values: an image's saliency, or (with ``labels`` for
    rows and columns, and ``counts`` written in the cells) a confusion matrix."""
    rows = len(grid)
    cols = max((len(r) for r in grid), default=0)
    if not rows or not cols:
        return Markup("")
    top = max((abs(float(v)) for r in grid for v in r if math.isfinite(float(v))), default=0) or 1
    left, top_margin = (70, 18) if labels else (0, 0)
    cell = max(1.0, (size - left) / max(rows, cols))
    parts = []
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            shade = abs(float(value)) / top if math.isfinite(float(value)) else 0
            x, y = left + j * cell, top_margin + i * cell
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{_PALETTE[1] if not labels else _PALETTE[0]}" '
                f'fill-opacity="{0.04 + 0.96 * shade:.3f}"><title>'
                + (f"{escape(labels[i])} as {escape(labels[j])}: " if labels else f"({i}, {j}): ")
                + f"{_num(float(value))}</title></rect>"
            )
            if counts:
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" font-size="11" '
                    f'text-anchor="middle">{_num(float(value))}</text>'
                )
    fits = max(3, int(cell / 6))  # characters of a 10 px label that fit over one cell
    for k, label in enumerate(labels or []):
        middle = k + 0.5
        parts.append(
            f'<text x="{left - 4}" y="{top_margin + middle * cell + 4:.1f}" font-size="10" '
            f'text-anchor="end">{escape(str(label)[:11])}</text>'
            f'<text x="{left + middle * cell:.1f}" y="{top_margin - 5}" font-size="10" '
            f'text-anchor="middle">{escape(str(label)[:fits])}</text>'
        )
    width = left + cell * cols
    height = top_margin + cell * rows
    kind = "confusion" if labels else "saliency"
    return Markup(
        f'<svg class="chart heatmap {kind}" role="img" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}">{"".join(parts)}</svg>'
    )


_COLUMNS = ("dataset_version", "job", "model_version", "deployment")
_LINKS = {"dataset_version": "/datasets/{name}?version={version}", "job": "/jobs/{ref}",
          "model_version": "/models/{name}?version={version}", "deployment": "/deployments/{ref}"}  # fmt: skip


def lineage(nodes: Sequence[Any], edges: Sequence[Any], root: str) -> Markup:
    """The lineage graph left to right: datasets, jobs, models, deployments, one column each,
    edges as lines, every node a link to its page and the one asked about outlined."""
    box_w, box_h, gap_x, gap_y = 170, 34, 60, 14
    columns: dict[str, list[Any]] = {kind: [] for kind in _COLUMNS}
    for node in nodes:
        columns.setdefault(node.kind, []).append(node)
    where: dict[str, tuple[float, float]] = {}
    for c, kind in enumerate(columns):
        for r, node in enumerate(columns[kind]):
            where[node.id] = (c * (box_w + gap_x), r * (box_h + gap_y))
    parts = []
    for edge in edges:
        if edge.source in where and edge.target in where:
            (x1, y1), (x2, y2) = where[edge.source], where[edge.target]
            if x1 == x2:  # within one column (a derived dataset, a parent model): a side arc
                parts.append(
                    f'<path d="M{x1 + box_w:.0f},{y1 + box_h / 2:.0f} C{x1 + box_w + 30:.0f},'
                    f"{y1 + box_h / 2:.0f} {x2 + box_w + 30:.0f},{y2 + box_h / 2:.0f} "
                    f'{x2 + box_w:.0f},{y2 + box_h / 2:.0f}" fill="none" stroke="#8a94a6">'
                    f"<title>{escape(edge.relation)}</title></path>"
                )
            else:
                parts.append(
                    f'<line x1="{x1 + box_w:.0f}" y1="{y1 + box_h / 2:.0f}" x2="{x2:.0f}" '
                    f'y2="{y2 + box_h / 2:.0f}" stroke="#8a94a6"><title>{escape(edge.relation)}'
                    "</title></line>"
                )
    for node in nodes:
        x, y = where[node.id]
        name, _, version = str(node.ref).partition("@")
        href = _LINKS.get(node.kind, "").format(
            name=escape(name), version=escape(version.lstrip("v")), ref=escape(node.ref)
        )
        stroke = ' stroke="#1d2330" stroke-width="2"' if node.id == root else ' stroke="#c5cbd6"'
        parts.append(
            f'<a href="{href}"><rect class="node {escape(node.kind)}" x="{x:.0f}" y="{y:.0f}" '
            f'width="{box_w}" height="{box_h}" rx="4" fill="#f1f4f9"{stroke}/>'
            f'<text x="{x + 8:.0f}" y="{y + 14:.0f}" font-size="10" fill="#6b7385">'
            f"{escape(node.kind.replace('_', ' '))}</text>"
            f'<text x="{x + 8:.0f}" y="{y + 28:.0f}" font-size="12">{escape(str(node.ref)[:24])}'
            "</text></a>"
        )
    rows = max((len(v) for v in columns.values()), default=1)
    width = len(columns) * (box_w + gap_x)
    height = max(rows, 1) * (box_h + gap_y) + 10
    return Markup(
        f'<svg class="chart lineage" role="img" viewBox="-2 -2 {width} {height}" width="{width}" '
        f'height="{height}">{"".join(parts)}</svg>'
    )
