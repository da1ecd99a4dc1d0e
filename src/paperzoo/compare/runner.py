"""Run a comparison: every chosen method of a task on the same seeds, data, model and budget.

Units are ``(method, seed)`` pairs run by :func:`paperzoo.engine.run_units` (worker processes,
one thread each), so ``jobs=N`` gives the same numbers as ``jobs=1``. The outcome is a
:class:`Comparison`: a :class:`paperzoo.engine.Table` of per-seed values, rendered with rich
and written as ``result.json`` and ``plot.png`` under ``out_dir/compare/<task>-<data>/``.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from paperzoo.compare import DEFAULT_MAX_TRAIN
from paperzoo.compare.data import Data, folder_name, load_data
from paperzoo.compare.registry import TaskMethod, get_task, methods_of
from paperzoo.compare.task import Setting, Task, count
from paperzoo.engine import Table, Timer, check_seeds, resolve_jobs, run_units, unit_threads
from paperzoo.engine.io import atomic_write_json, save_figure
from paperzoo.papers import Method

__all__ = ["SCHEMA", "Comparison", "Unit", "compare", "run_unit", "select_methods"]

SCHEMA = "paperzoo-compare/1"


@dataclass(frozen=True)
class Unit:
    """One ``(method, seed)`` unit; ``data`` is the built-in name or the ``.npz`` path."""

    task: str
    method: Method
    seed: int
    data: str
    setting: Setting


def run_unit(unit: Unit) -> dict[str, float]:
    """Train and evaluate one unit (in a worker process or in this one)."""
    return get_task(unit.task).run(unit.method, unit.seed, load_data(unit.data), unit.setting)


@dataclass
class Comparison:
    """What a comparison measured, and under which setting."""

    task: Task
    data: Data
    methods: list[TaskMethod]
    table: Table
    seeds: list[int]
    setting: Setting
    split: str
    jobs: int
    threads: int
    wall_s: float
    json_path: Path | None = None
    png_path: Path | None = None

    @property
    def budget(self) -> str:
        """The budget in words, e.g. ``"10 epochs, at most 10,000 training samples"``."""
        limit = f"at most {self.setting.max_train:,}" if self.setting.max_train else "all"
        noise = f", label noise {self.setting.noise:g}" if self.setting.noise else ""
        return f"{count(self.setting.budget, self.task.budget_unit)}, {limit} training samples{noise}"

    def folder(self, out_dir: str | Path) -> Path:
        return Path(out_dir) / "compare" / f"{self.task.name}-{folder_name(self.data.name)}"

    def to_dict(self) -> dict[str, Any]:
        """Setting, per-seed values and mean/std summaries, as written to ``result.json``."""
        import torch

        return {
            "schema": SCHEMA,
            "task": self.task.name,
            "data": {
                "name": self.data.name,
                "source": self.data.source,
                "features": self.data.features,
                "classes": self.data.num_classes,
                "n": len(self.data.y),
                "n_test": None if self.data.y_test is None else len(self.data.y_test),
                "split": self.split,
            },
            "seeds": self.seeds,
            "budget": {
                self.task.budget_unit: self.setting.budget,
                "max_train": self.setting.max_train,
                "noise": self.setting.noise,
                "text": self.budget,
            },
            "noise": self.task.noise if self.setting.noise else None,
            "protocol": self.task.protocol(self.setting),
            "jobs": self.jobs,
            "threads_per_job": self.threads,
            "metrics": self.table.metrics,
            "methods": [
                {
                    "name": m.name,
                    "source": m.source,
                    "factory": m.method.factory,
                    "kwargs": json.loads(json.dumps(dict(m.method.kwargs), default=repr)),
                    "description": m.method.description,
                }
                for m in self.methods
            ],
            "summary": self.table.summaries(),
            "values": self.table.to_dict(),
            "environment": {
                "torch": torch.__version__.split("+")[0],
                "python": platform.python_version(),
                "platform": f"{platform.system()} {platform.machine()}",
                "cpus": os.cpu_count(),
                "wall_s": round(self.wall_s, 1),
                "date": date.today().isoformat(),
            },
        }

    def figure(self) -> Any:
        """Grouped bars: one group per metric, one bar per method, error bars = std over seeds."""
        from paperzoo.engine.plots import grouped_bars, subplots

        metrics = self.table.metrics
        fig, axes = subplots(1, width=max(5.0, 2.0 + 0.5 * len(metrics) * len(self.methods)))
        n = len(self.seeds)
        grouped_bars(
            axes[0],
            self.table,
            metrics,
            ylim=(0.0, 1.05),
            title=f"{self.task.name} on {self.data.name} ({n} seed{'s' if n != 1 else ''}; {self.budget})",
        )
        axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(4, len(self.methods)))
        fig.tight_layout()
        return fig

    def write(self, out_dir: str | Path) -> Comparison:
        """Write ``plot.png`` and ``result.json`` atomically under :meth:`folder`."""
        folder = self.folder(out_dir)
        self.png_path = save_figure(self.figure(), folder / "plot.png")
        self.json_path = atomic_write_json(folder / "result.json", self.to_dict())
        return self

    def render(self, digits: int = 3) -> Any:
        """A rich renderable: the table (best mean of each metric in bold, the lowest for the task's
        ``lower_is_better`` metrics), the budget, the
        protocol and the files written."""
        from rich.console import Group
        from rich.table import Table as RichTable
        from rich.text import Text

        n = len(self.seeds)
        table = RichTable(
            title=f"{self.task.name} on {self.data.name}: mean ± std over {n} seed{'s' if n != 1 else ''}"
        )
        table.add_column("method")
        table.add_column("from")
        for metric in self.table.metrics:
            table.add_column(metric, justify="right")
        pick = {k: min if k in self.task.lower_is_better else max for k in self.table.metrics}
        best = {k: pick[k](self.table.mean(m.name, k) for m in self.methods) for k in self.table.metrics}
        for m in self.methods:
            cells = []
            for k in self.table.metrics:
                s = self.table.summary(m.name, k)
                text = f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
                cells.append(f"[bold]{text}[/bold]" if s["mean"] == best[k] else text)
            table.add_row(m.name, m.source, *cells)
        lines = [
            f"budget: {self.budget}; seeds {self.seeds}; {self.jobs} job(s) x {self.threads} thread(s); "
            f"{self.wall_s:.1f} s",
            f"data: {self.split}",
            f"protocol: {self.task.protocol(self.setting)}",
        ]
        if self.setting.noise:
            lines.append(
                f"label noise {self.setting.noise:g}: " + re.sub(r"\br\b", f"{self.setting.noise:g}", self.task.noise)
            )
        if self.json_path is not None:
            lines.append(f"wrote {self.json_path}" + (f" and {self.png_path}" if self.png_path else ""))
        return Group(table, *(Text(line) for line in lines))


def select_methods(task: str, names: Sequence[str] | None) -> list[TaskMethod]:
    """The methods ``names`` of ``task`` (repeats dropped), or all of them for None.

    Raises:
        KeyError: an unknown task, an unknown method, or no method (the message lists what exists).
    """
    available = methods_of(task)
    chosen = list(available) if names is None else list(dict.fromkeys(names))
    unknown = [m for m in chosen if m not in available]
    if unknown or not chosen:
        raise KeyError(
            f"unknown method{'s' if len(unknown) > 1 else ''} {', '.join(unknown) or '(none given)'} for task "
            f"{task!r}; methods: {', '.join(available)}"
        )
    return [available[m] for m in chosen]


def compare(
    task: str,
    data: str,
    methods: Sequence[str] | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    budget: int | None = None,
    max_train: int | None = DEFAULT_MAX_TRAIN,
    noise: float = 0.0,
    jobs: int | None = None,
    progress: bool = True,
) -> Comparison:
    """Run ``methods`` (default: all of the task) of ``task`` on ``data`` over ``seeds``.

    Args:
        task: a task name (:func:`paperzoo.compare.registry.tasks`).
        data: a built-in data name or the path of a ``.npz`` (:func:`paperzoo.compare.data.load_data`).
        methods: method names of the task, in the order of the table.
        seeds: the seeds; every method runs on each.
        budget: epochs or steps (the task's ``budget_unit``); default: the task's.
        max_train: at most this many training samples (a seeded subsample); None keeps all.
        noise: label noise rate in [0, 1) of the training labels, drawn per seed (the task's
            ``noise`` attribute says what it does: flipped classes, hidden positives).
        jobs: worker processes (default: ``PAPERZOO_JOBS`` or the usable cores).
        progress: show a progress bar over the units.

    Raises:
        KeyError: an unknown task or method (the message lists what exists).
        paperzoo.compare.data.DataError: unusable data.
    """
    timer = Timer()
    the_task = get_task(task)
    chosen = select_methods(task, methods)
    names = [m.name for m in chosen]
    seeds = check_seeds(seeds)
    loaded = load_data(data)
    the_task.check(loaded)
    setting = Setting(the_task.default_budget if budget is None else budget, max_train, noise)
    spec = data if loaded.source == "built-in" else str(Path(loaded.source).resolve())
    units = [Unit(task, m.method, seed, spec, setting) for seed in seeds for m in chosen]
    jobs, threads = resolve_jobs(jobs), unit_threads()
    outputs = run_units(run_unit, units, jobs=jobs, threads=threads, progress=progress, desc=f"compare {task}")
    table = Table(the_task.metrics(loaded), names, baselines=[m.name for m in chosen if m.is_baseline])
    for unit, values in zip(units, outputs):
        table.add(unit.method.name, unit.seed, values)
    return Comparison(
        task=the_task,
        data=loaded,
        methods=chosen,
        table=table,
        seeds=seeds,
        setting=setting,
        split=the_task.split(loaded, seeds[0], setting).description,
        jobs=min(jobs, len(units)),
        threads=threads,
        wall_s=timer.elapsed,
    )
