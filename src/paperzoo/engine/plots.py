"""Shared figure helpers for reproductions (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from paperzoo.engine.results import Result, Table


def subplots(
    ncols: int, *, width: float = 5.0, height: float = 4.5, width_ratios: Sequence[float] | None = None
) -> Any:
    """``(fig, axes)`` with the Agg backend; ``axes`` is always a 1-D array."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kw: dict[str, Any] = {"gridspec_kw": {"width_ratios": list(width_ratios)}} if width_ratios else {}
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, **kw)
    return fig, axes[0]


def grouped_bars(
    ax: Any,
    table: Table,
    metrics: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    ylabel: str = "mean ± std over seeds",
    ylim: tuple[float, float] | None = None,
    title: str = "",
) -> None:
    """One group of bars per metric, one bar per method, error bars = std over seeds."""
    methods = table.methods
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        summ = [table.summary(method, m) for m in metrics]
        xs = np.arange(len(metrics)) + (i - (len(methods) - 1) / 2) * width
        name = f"{method} (baseline)" if method in table.baselines else method
        ax.bar(xs, [s["mean"] for s in summ], width, yerr=[s["std"] for s in summ], capsize=2, label=name)
    ax.set_xticks(np.arange(len(metrics)), list(labels) if labels is not None else list(metrics))
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def curve_with_band(ax: Any, x: Sequence[float], mean: Sequence[float], std: Sequence[float], **kw: Any) -> None:
    """A mean curve with a ±std band (clipped at 0 below)."""
    x, mean, std = np.asarray(x), np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    (line,) = ax.plot(x, mean, **kw)
    ax.fill_between(x, np.clip(mean - std, 0, None), mean + std, color=line.get_color(), alpha=0.2)


def finish(fig: Any, result: Result, what: str) -> Any:
    """Title the figure with the paper, the seeds, the budget and the verdict; tighten it."""
    n = len(result.seeds)
    budget = f", {result.budget} budget" if result.budget else ""
    fig.suptitle(f"#{result.paper:02d} {what} ({n} seed{'s' if n != 1 else ''}{budget}): verdict {result.verdict}")
    fig.tight_layout()
    return fig
