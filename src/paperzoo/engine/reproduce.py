"""The shared skeleton of a reproduction's ``run()``: the seeds, the unit runner and the
result's bookkeeping. ``run()`` stays a plain function::

    def run(smoke=False, seeds=(0, 1, 2), out_dir="results", progress=True, jobs=None, budget=None):
        rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget)
        outputs = rep.map(train_one, [(method, seed) for seed in rep.seeds for method in METHODS])
        table = Table(METRICS, METHODS, baselines=[BASELINE])
        for (method, seed), values in zip(units, outputs):
            table.add(method, seed, values)
        result = rep.result(table, claims=[Claim.greater(table, NEW, BASELINE, "R@1")], setting=..., scale_note=...)
        return result.write(out_dir, figure=make_figure)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from paperzoo.engine.parallel import resolve_jobs, run_units, unit_threads
from paperzoo.engine.results import Claim, Result, Table, Timer
from paperzoo.engine.seed import check_seeds

U = TypeVar("U")
R = TypeVar("R")


@dataclass
class Reproduction:
    """One call of a reproduction: which paper, seeds, budget, and how to run its units."""

    paper: int
    seeds: list[int]
    smoke: bool
    budget: str | None
    progress: bool
    jobs: int
    threads: int
    timer: Timer = field(default_factory=Timer)

    def map(self, fn: Callable[[U], R], units: Sequence[U], desc: str | None = None) -> list[R]:
        """``fn`` over ``units`` in up to ``jobs`` processes (see :func:`run_units`)."""
        label = desc or f"#{self.paper:02d}{f' ({self.budget})' if self.budget else ''}"
        return run_units(fn, units, jobs=self.jobs, threads=self.threads, progress=self.progress, desc=label)

    def result(self, table: Table, claims: list[Claim], **kwargs: Any) -> Result:
        """A :class:`Result` carrying this run's paper, seeds, budget, jobs and wall time."""
        return Result(
            paper=self.paper,
            table=table,
            claims=claims,
            seeds=self.seeds,
            smoke=self.smoke,
            budget=self.budget,
            jobs=self.jobs,
            threads=self.threads,
            elapsed_s=self.timer.elapsed,
            **kwargs,
        )


def start(
    paper: int,
    *,
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
    budgets: Sequence[str] = (),
) -> Reproduction:
    """Validate a reproduction's arguments and start its clock.

    ``budget`` must be ``None`` (the full run) or one of ``budgets``, the reduced budgets
    the reproduction offers; a smoke run is the ``"smoke"`` budget.
    """
    if budget is not None and budget not in budgets:
        raise ValueError(f"paper {paper} has no budget {budget!r}; it offers {list(budgets) or 'none'}")
    if smoke and budget is not None:
        raise ValueError("give smoke=True or a budget, not both")
    return Reproduction(
        paper=paper,
        seeds=check_seeds(seeds),
        smoke=smoke,
        budget="smoke" if smoke else budget,
        progress=progress,
        jobs=resolve_jobs(jobs),
        threads=unit_threads(),
    )
