"""What a reproduction measured and concluded.

* :class:`Table`: per-seed values of every (method, metric) pair, filled as units finish.
* :class:`Claim`: one directional statement tested on per-seed values (for "A beats B", the
  paired differences over seeds) with a Student-t confidence interval; its outcome is
  ``holds``, ``fails`` or ``within noise``.
* :class:`Result`: the table, the claims and the setting; the paper's identity comes from the
  catalog and the verdict is derived from the claims (:data:`VERDICT_RULE`), never set by hand.
  :meth:`Result.write` writes ``result.json`` (everything), ``summary.json`` (the compact,
  committable summary) and ``plot.png`` atomically.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paperzoo.engine.io import atomic_write_json, save_figure
from paperzoo.summaries import (
    CONFIDENCE,
    SUMMARY_SCHEMA,
    VERDICT_RULE,
    Outcome,
    Verdict,
    format_summary,
    measured_line,
    outcome_of,
    t_interval,
    verdict_from_outcomes,
)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value) and count of per-seed values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("no values to summarise")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}


# --------------------------------------------------------------------------- table
class Table:
    """Method x metric x seed values of one reproduction.

    Methods keep the order in which they are declared (``methods``) or first added; each
    ``(method, seed)`` is added once, with a value for every metric.

    >>> table = Table(["acc"], ["new", "old"], baselines=["old"])
    >>> for seed, (a, b) in enumerate([(0.91, 0.85), (0.93, 0.86), (0.92, 0.88)]):
    ...     table.add("new", seed, {"acc": a})
    ...     table.add("old", seed, {"acc": b})
    >>> claim = Claim.greater(table, "new", "old", "acc")
    >>> claim.statement, round(claim.estimate, 3), claim.outcome
    ('acc: new > old', 0.057, 'holds')
    """

    def __init__(self, metrics: Sequence[str], methods: Sequence[str] = (), baselines: Sequence[str] = ()) -> None:
        if not metrics or len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics must be distinct and non-empty, got {list(metrics)}")
        self.metrics = list(metrics)
        self.methods = list(dict.fromkeys(methods))
        unknown = set(baselines) - set(self.methods) if self.methods else set()
        if unknown:
            raise ValueError(f"baselines {sorted(unknown)} are not among the methods {self.methods}")
        self.baselines = list(baselines)
        self._cells: dict[str, dict[int, dict[str, float]]] = {m: {} for m in self.methods}

    def add(self, method: str, seed: int, values: Mapping[str, float]) -> None:
        """Record ``method``'s value of every metric for ``seed``."""
        missing = set(self.metrics) - set(values)
        extra = set(values) - set(self.metrics)
        if missing or extra:
            raise ValueError(f"{method!r} seed {seed}: missing metrics {sorted(missing)}, unknown {sorted(extra)}")
        if method not in self._cells:
            self.methods.append(method)
            self._cells[method] = {}
        if seed in self._cells[method]:
            raise ValueError(f"{method!r} already has a value for seed {seed}")
        self._cells[method][int(seed)] = {k: float(values[k]) for k in self.metrics}

    def seeds(self, method: str) -> list[int]:
        return sorted(self._cells[self._known(method)])

    def values(self, method: str, metric: str) -> list[float]:
        """Per-seed values, in seed order."""
        cells = self._cells[self._known(method)]
        if metric not in self.metrics:
            raise KeyError(f"unknown metric {metric!r}; the table has {self.metrics}")
        return [cells[s][metric] for s in sorted(cells)]

    def summary(self, method: str, metric: str) -> dict[str, float]:
        return summarize(self.values(method, metric))

    def mean(self, method: str, metric: str) -> float:
        return self.summary(method, metric)["mean"]

    def paired(self, a: str, b: str, metric: str) -> list[float]:
        """Per-seed differences ``a - b`` (the two methods must share their seeds)."""
        if self.seeds(a) != self.seeds(b):
            raise ValueError(f"{a!r} and {b!r} were run on different seeds: {self.seeds(a)} vs {self.seeds(b)}")
        return [x - y for x, y in zip(self.values(a, metric), self.values(b, metric))]

    def check_complete(self, seeds: Sequence[int]) -> None:
        """Every method has a value for each of ``seeds`` (and no other)."""
        for m in self.methods:
            if self.seeds(m) != sorted(seeds):
                raise ValueError(f"{m!r} has seeds {self.seeds(m)}, expected {sorted(seeds)}")

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        return {m: {k: self.values(m, k) for k in self.metrics} for m in self.methods}

    def summaries(self) -> dict[str, dict[str, dict[str, float]]]:
        return {m: {k: self.summary(m, k) for k in self.metrics} for m in self.methods}

    def _known(self, method: str) -> str:
        if method not in self._cells:
            raise KeyError(f"unknown method {method!r}; the table has {self.methods}")
        return method


# --------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    """A directional claim, ``mean(values) > threshold`` (or ``<``), tested on per-seed values.

    Build one with :meth:`greater` / :meth:`less` (paired comparison of two methods of a
    :class:`Table`) or :meth:`about` (any per-seed quantity, e.g. a log-ratio).
    """

    statement: str
    values: tuple[float, ...]
    direction: Literal[">", "<"]
    threshold: float = 0.0
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        if self.direction not in (">", "<"):
            raise ValueError(f"direction must be '>' or '<', got {self.direction!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")
        t_interval(self.values, self.confidence)  # validates the values

    @classmethod
    def greater(
        cls, table: Table, a: str, b: str, metric: str, *, margin: float = 0.0, statement: str | None = None
    ) -> Claim:
        """``a`` beats ``b`` on ``metric`` by more than ``margin`` (paired over seeds); ``statement``
        replaces the generated ``"metric: a > b"`` wording."""
        return cls._paired(table, a, b, metric, ">", margin, statement)

    @classmethod
    def less(
        cls, table: Table, a: str, b: str, metric: str, *, margin: float = 0.0, statement: str | None = None
    ) -> Claim:
        """``a`` is below ``b`` on ``metric`` by more than ``-margin`` (``a - b < margin``); ``statement``
        replaces the generated wording."""
        return cls._paired(table, a, b, metric, "<", margin, statement)

    @classmethod
    def about(
        cls, statement: str, values: Sequence[float], direction: Literal[">", "<"], threshold: float = 0.0
    ) -> Claim:
        """A claim on any per-seed quantity: ``mean(values) {direction} threshold``."""
        return cls(statement, tuple(float(v) for v in values), direction, float(threshold))

    @classmethod
    def _paired(
        cls,
        table: Table,
        a: str,
        b: str,
        metric: str,
        direction: Literal[">", "<"],
        margin: float,
        statement: str | None,
    ) -> Claim:
        if statement is None:
            shift = f" {'+' if margin >= 0 else '-'} {abs(margin):g}" if margin else ""
            statement = f"{metric}: {a} {direction} {b}{shift}"
        return cls(statement, tuple(table.paired(a, b, metric)), direction, float(margin))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def estimate(self) -> float:
        return t_interval(self.values, self.confidence)[0]

    @property
    def interval(self) -> tuple[float, float]:
        _, lo, hi = t_interval(self.values, self.confidence)
        return lo, hi

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "statement": self.statement,
            "direction": self.direction,
            "threshold": self.threshold,
            "estimate": self.estimate,
            "interval": [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None],
            "confidence": self.confidence,
            "n": self.n,
        }

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` with the outcome."""
        return {**self.to_dict(), "outcome": self.outcome}


# --------------------------------------------------------------------------- result
@cache
def _git_commit() -> dict[str, Any]:
    """The checkout's commit and whether its code differs from it (once per process)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            # code changes only: recorded results being rewritten do not make a run "dirty"
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)src/paperzoo/papers/results",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if sha.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": sha.stdout.strip()[:12], "dirty": bool(status.stdout.strip())}


@dataclass
class Result:
    """What a reproduction measured and concluded; identity from the catalog, verdict from
    the claims.

    ``highlight`` names ``(method, baseline, metric)`` for the one-line ``measured`` text of
    the catalog; ``budget`` names a reduced budget (``None`` for the full run, ``"smoke"``
    for smoke runs).
    """

    paper: int
    table: Table
    claims: list[Claim]
    seeds: list[int]
    setting: str
    scale_note: str
    smoke: bool = False
    budget: str | None = None
    notes: str = ""
    highlight: tuple[str, str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    jobs: int = 1
    threads: int = 1
    json_path: Path | None = None
    summary_path: Path | None = None
    png_path: Path | None = None

    def __post_init__(self) -> None:
        from paperzoo import catalog

        self._paper = catalog.get(self.paper)
        self.table.check_complete(self.seeds)
        if self.smoke and self.budget is None:
            self.budget = "smoke"
        if self.highlight is not None:
            method, base, metric = self.highlight
            for m in (method, base):
                self.table.values(m, metric)

    @property
    def key(self) -> str:
        return self._paper.key

    @property
    def title(self) -> str:
        return self._paper.title

    @property
    def verdict(self) -> Verdict:
        return verdict_from_outcomes([c.outcome for c in self.claims])

    @property
    def files_suffix(self) -> str:
        return f".{self.budget}" if self.budget else ""

    def measured(self) -> str:
        """One line for the catalog: the highlighted comparison and the claims' outcomes."""
        return measured_line(self.summary())

    def summary(self) -> dict[str, Any]:
        """The compact summary committed beside the paper's record (no per-seed values)."""
        import torch

        record = self._paper.record
        return {
            "schema": SUMMARY_SCHEMA,
            "paper": self.paper,
            "key": self.key,
            "title": self.title,
            "budget": self.budget,
            "seeds": list(self.seeds),
            "metrics": list(self.table.metrics),
            "methods": list(self.table.methods),
            "baselines": list(self.table.baselines),
            "table": self.table.summaries(),
            "claims": [c.summary() for c in self.claims],
            "verdict_rule": VERDICT_RULE,
            "verdict": self.verdict,
            "highlight": list(self.highlight) if self.highlight else None,
            "paper_result": record.paper_result if record else "",
            "setting": self.setting,
            "scale_note": self.scale_note,
            "notes": self.notes,
            "environment": {
                **_git_commit(),
                "torch": torch.__version__.split("+")[0],
                "python": platform.python_version(),
                "platform": f"{platform.system()} {platform.machine()}",
                "cpus": os.cpu_count(),
                "jobs": self.jobs,
                "threads_per_job": self.threads,
                "wall_s": round(self.elapsed_s, 1),
                "date": date.today().isoformat(),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """The summary plus the per-seed values and the reproduction's extra data."""
        return {**self.summary(), "values": self.table.to_dict(), "extra": self.extra}

    def write(self, out_dir: str | Path, figure: Callable[[Result], Any] | None = None) -> Result:
        """Write ``result.json``, ``summary.json`` and (if ``figure`` is given) ``plot.png``
        under ``out_dir/NN-slug/``, atomically; a reduced budget adds ``.<budget>`` to each
        name (``result.smoke.json``)."""
        folder = Path(out_dir) / self.key
        sfx = self.files_suffix
        if figure is not None:
            self.png_path = save_figure(figure(self), folder / f"plot{sfx}.png")
        summary = self.summary()
        full = {**summary, "values": self.table.to_dict(), "extra": self.extra}
        self.json_path = atomic_write_json(folder / f"result{sfx}.json", full)
        self.summary_path = atomic_write_json(folder / f"summary{sfx}.json", summary)
        return self


def format_table(result: Result, digits: int = 3) -> Any:
    """:func:`format_summary` of a fresh result, plus the files it wrote."""
    from rich.console import Group
    from rich.text import Text

    parts = [format_summary(result.summary(), digits)]
    if result.json_path:
        written = ", ".join(str(p) for p in (result.json_path, result.summary_path, result.png_path) if p)
        parts.append(Text(f"Wrote {written}"))
    return Group(*parts)


class Timer:
    """Wall-clock seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
