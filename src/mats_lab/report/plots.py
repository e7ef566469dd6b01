"""Figures for `mats report`: hyper-parameter sweeps as line plots and the ablation as bars.

Plain matplotlib on the Agg backend (no display); inputs are plain numbers so the figures can
be redrawn from the report's cached JSON without any model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Series:
    """One line: y means and spreads (std over seeds; 0 with one seed) at x values."""

    label: str  # the metric, e.g. "sound-caption CIDEr-D"
    x: list[float]
    mean: list[float | None]  # None where the value is unavailable
    std: list[float]


@dataclass
class SweepPanel:
    param: str  # axis label, e.g. "lambda"
    series: list[Series]
    default: float | None = None  # the model's own value, marked with a dashed line


def _log_axis(x: list[float]) -> bool:
    pos = [v for v in x if v > 0]
    return len(pos) == len(x) and len(x) > 1 and max(pos) / min(pos) >= 20


def plot_sweeps(panels: list[SweepPanel], path: Path, title: str = "") -> Path:
    """A grid: one column per swept parameter, one row per metric."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(s.label for p in panels for s in p.series))
    rows, cols = max(1, len(metrics)), max(1, len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for c, panel in enumerate(panels):
        for r, metric in enumerate(metrics):
            ax = axes[r][c]
            for s in panel.series:
                if s.label != metric:
                    continue
                keep = [i for i, m in enumerate(s.mean) if m is not None]
                x = np.asarray([s.x[i] for i in keep], dtype=float)
                y = np.asarray([s.mean[i] for i in keep], dtype=float)
                e = np.asarray([s.std[i] for i in keep], dtype=float)
                ax.errorbar(x, y, yerr=e if e.any() else None, marker="o", ms=4, capsize=3)
                if len(x) and _log_axis(list(x)):
                    ax.set_xscale("log")
            if panel.default is not None:
                ax.axvline(panel.default, color="0.6", ls="--", lw=0.8)
            if r == rows - 1:
                ax.set_xlabel(panel.param)
            if c == 0:
                ax.set_ylabel(metric, fontsize=8)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_bars(groups: list[str], series: list[Series], path: Path, title: str = "") -> Path:
    """Grouped bars: one group per metric (x), one bar per variant (a Series' label).

    Here `Series.x` is unused; mean[i] / std[i] belong to groups[i].
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.4 + 1.8 * len(groups), 3.2 + 0.22 * len(series)))
    width = 0.8 / max(1, len(series))
    for j, s in enumerate(series):
        pos = np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width
        y = [np.nan if m is None else m for m in s.mean]
        ax.bar(pos, y, width, yerr=s.std if any(s.std) else None, capsize=2, label=s.label)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    # Below the axes: inside, it would hide bars.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Lay out, write as PNG (parents created) and close the figure."""
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
