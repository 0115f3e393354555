"""Charts drawn on the server as SVG: no script, no inline style (the CSP allows neither), every
label escaped. Colours come from presentation attributes the stylesheet can override."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["bars", "histogram", "lines"]

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


def lines(series: Mapping[str, Sequence[tuple[int, float]]], *, width: int = 480) -> Markup:
    """One polyline per metric over its steps, each scaled to its own range (metrics differ in
    units), with a legend giving the last value."""
    height, pad = 150, 6
    shown = {k: v for k, v in series.items() if v}
    if not shown:
        return Markup('<p class="muted">No metrics yet.</p>')
    steps = [s for points in shown.values() for s, _ in points]
    first, last = min(steps), max(steps)
    x_span = (last - first) or 1
    parts, legend = [], []
    for i, (name, points) in enumerate(sorted(shown.items())):
        values = [v for _, v in points if math.isfinite(v)]
        low, high = min(values), max(values)
        y_span = (high - low) or 1
        colour = _PALETTE[i % len(_PALETTE)]
        coords = " ".join(
            f"{pad + (width - 2 * pad) * (s - first) / x_span:.1f},"
            f"{height - pad - (height - 2 * pad) * (v - low) / y_span:.1f}"
            for s, v in points
        )
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        legend.append(
            f'<text x="{pad}" y="{height + 14 + 14 * i}" font-size="11" fill="{colour}">'
            f"{escape(name)}: {_num(points[-1][1])} at step {points[-1][0]} "
            f"(range {_num(low)} to {_num(high)})</text>"
        )
    total = height + 8 + 14 * len(shown)
    return Markup(
        f'<svg class="chart lines" role="img" viewBox="0 0 {width} {total}" width="{width}" '
        f'height="{total}"><rect x="0" y="0" width="{width}" height="{height}" fill="none" '
        f'stroke="#ccc"/>{"".join(parts)}{"".join(legend)}</svg>'
    )
