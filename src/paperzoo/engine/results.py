"""A reproduction's result: method rows x metric columns over seeds, the paper's headline
beside ours, a verdict computed by a stated rule, and the JSON + PNG it wrote."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paperzoo.engine.io import atomic_write_json, save_figure

Verdict = Literal["holds", "does not hold", "inconclusive"]
VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive")


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value) and count of per-seed values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("no values to summarise")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}


@dataclass
class MethodRow:
    """One method's per-seed values for each metric."""

    method: str
    values: dict[str, list[float]]
    is_baseline: bool = False

    def summary(self) -> dict[str, dict[str, float]]:
        return {m: summarize(v) for m, v in self.values.items()}


@dataclass
class Claim:
    """One directional check of a reproduction and whether it held in this run."""

    statement: str
    held: bool


@dataclass
class Result:
    """What a reproduction measured and concluded.

    ``verdict`` must come from ``verdict_rule`` applied to the numbers (see
    :meth:`verdict_from_claims`), never be set by hand to a wished-for value.
    """

    paper: int
    key: str
    title: str
    metrics: list[str]
    rows: list[MethodRow]
    paper_headline: str
    our_setting: str
    scale_note: str
    verdict_rule: str
    claims: list[Claim]
    verdict: Verdict
    seeds: list[int]
    smoke: bool
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    json_path: Path | None = None
    png_path: Path | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        for row in self.rows:
            missing = set(self.metrics) - set(row.values)
            if missing:
                raise ValueError(f"row {row.method!r} lacks metrics {sorted(missing)}")

    @staticmethod
    def verdict_from_claims(claims: Sequence[Claim]) -> Verdict:
        """``holds`` if every claim held, ``does not hold`` if none did, else ``inconclusive``."""
        if not claims:
            return "inconclusive"
        held = [c.held for c in claims]
        if all(held):
            return "holds"
        if not any(held):
            return "does not hold"
        return "inconclusive"

    def row(self, method: str) -> MethodRow:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(method)

    def mean(self, method: str, metric: str) -> float:
        return summarize(self.row(method).values[metric])["mean"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper": self.paper,
            "key": self.key,
            "title": self.title,
            "smoke": self.smoke,
            "seeds": self.seeds,
            "metrics": self.metrics,
            "rows": [
                {
                    "method": r.method,
                    "baseline": r.is_baseline,
                    "values": r.values,
                    "summary": r.summary(),
                }
                for r in self.rows
            ],
            "paper_headline": self.paper_headline,
            "our_setting": self.our_setting,
            "scale_note": self.scale_note,
            "verdict_rule": self.verdict_rule,
            "claims": [{"statement": c.statement, "held": c.held} for c in self.claims],
            "verdict": self.verdict,
            "elapsed_s": round(self.elapsed_s, 2),
            "extra": self.extra,
            "png": str(self.png_path) if self.png_path else None,
        }

    def write(self, out_dir: str | Path, figure: Any) -> Result:
        """Write ``result.json`` and ``plot.png`` (``*.smoke.*`` for smoke runs) atomically
        under ``out_dir/NN-slug/`` and record their paths."""
        folder = Path(out_dir) / self.key
        suffix = ".smoke" if self.smoke else ""
        self.png_path = save_figure(figure, folder / f"plot{suffix}.png")
        self.json_path = atomic_write_json(folder / f"result{suffix}.json", self.to_dict())
        return self


def _fmt(s: Mapping[str, float], digits: int) -> str:
    if math.isnan(s["mean"]):
        return "n/a"
    if s["n"] > 1:
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
    return f"{s['mean']:.{digits}f}"


def format_table(result: Result, digits: int = 3) -> Any:
    """A ``rich`` renderable: the method table, the paper's headline beside ours, the claims
    and the verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    n = len(result.seeds)
    table = Table(
        title=f"#{result.paper} {result.title}\n(mean ± std over {n} seed{'s' if n != 1 else ''}"
        f"{', smoke run' if result.smoke else ''})",
        title_justify="left",
    )
    table.add_column("method")
    for m in result.metrics:
        table.add_column(m, justify="right")
    for r in result.rows:
        summ = r.summary()
        name = f"{r.method} (baseline)" if r.is_baseline else r.method
        table.add_row(name, *(_fmt(summ[m], digits) for m in result.metrics))
    lines = [
        Text(f"Paper:  {result.paper_headline}"),
        Text(f"Ours:   {result.our_setting}"),
        Text(f"Scale:  {result.scale_note}"),
        Text(f"Rule:   {result.verdict_rule}"),
    ]
    for c in result.claims:
        lines.append(Text(f"  [{'x' if c.held else ' '}] {c.statement}"))
    style = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}[result.verdict]
    lines.append(Text(f"Verdict: {result.verdict}", style=f"bold {style}"))
    if result.json_path:
        lines.append(Text(f"Wrote {result.json_path} and {result.png_path}"))
    return Group(table, *lines)


class Timer:
    """Wall-clock seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
