"""A PNG of a job's metrics: one panel per metric, against the step."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lepton.schemas import MetricPoint

__all__ = ["plot_metrics"]


def plot_metrics(points: list[MetricPoint], path: Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        series[p.name].append((p.step, p.value))
    names = sorted(series) or ["(no metrics)"]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        values = sorted(series.get(name, []))
        ax.plot(
            [s for s, _ in values], [v for _, v in values], marker="." if len(values) < 50 else None
        )
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
