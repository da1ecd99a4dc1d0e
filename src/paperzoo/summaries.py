"""Result summaries as data: the verdict rule, claim outcomes and their rendering.

Torch-free, so the catalog, ``paperzoo show`` and ``paperzoo report`` read committed summaries
without importing torch. :mod:`paperzoo.engine.results` builds the summaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Verdict = Literal["holds", "does not hold", "inconclusive"]
Outcome = Literal["holds", "fails", "within noise"]
VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive")
OUTCOMES: tuple[str, ...] = ("holds", "fails", "within noise")
CONFIDENCE = 0.95
VERDICT_RULE = (
    "Each claim is tested on its per-seed values (for 'A beats B': the paired differences A - B over "
    f"seeds) with a two-sided {CONFIDENCE:.0%} Student-t interval of the mean: it holds when the whole "
    "interval lies on the claimed side of the threshold, fails when the whole interval lies on the other "
    "side, and is within noise otherwise (always so with one seed). Verdict: holds if every claim holds, "
    "does not hold if every claim fails, inconclusive otherwise."
)
SUMMARY_SCHEMA = 1


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of the mean of ``values``.

    One value gives the interval (-inf, inf); zero spread gives the point itself.

    >>> mean, lo, hi = t_interval([0.02, 0.03, 0.04])
    >>> round(mean, 3), round(lo, 3), round(hi, 3)
    (0.03, 0.005, 0.055)
    >>> t_interval([0.5])
    (0.5, -inf, inf)
    """
    from scipy import stats

    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"a claim needs finite per-seed values, got {vals}")
    n = len(vals)
    mean = math.fsum(vals) / n
    if n == 1:
        return mean, -math.inf, math.inf
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def _bounds(claim: Mapping[str, Any]) -> tuple[float, float]:
    """A claim's interval; JSON stores an unbounded side (one seed) as null."""
    lo, hi = claim["interval"]
    return (-math.inf if lo is None else lo), (math.inf if hi is None else hi)


def outcome_of(claim: Mapping[str, Any]) -> Outcome:
    """The outcome a claim's interval implies (the rule of :data:`VERDICT_RULE`)."""
    lo, hi = _bounds(claim)
    above, below = lo > claim["threshold"], hi < claim["threshold"]
    if claim["direction"] == ">":
        return "holds" if above else "fails" if below else "within noise"
    return "holds" if below else "fails" if above else "within noise"


def verdict_from_outcomes(outcomes: Sequence[str]) -> Verdict:
    """:data:`VERDICT_RULE`: holds if every claim holds, does not hold if every claim fails.

    >>> verdict_from_outcomes(["holds", "within noise"])
    'inconclusive'
    """
    if outcomes and all(o == "holds" for o in outcomes):
        return "holds"
    if outcomes and all(o == "fails" for o in outcomes):
        return "does not hold"
    return "inconclusive"


def measured_line(summary: Mapping[str, Any], digits: int = 3) -> str:
    """The catalog's ``measured`` text, generated from a summary."""
    claims = summary["claims"]
    counts = {o: sum(c["outcome"] == o for c in claims) for o in OUTCOMES}
    parts = [f"{counts['holds']} of {len(claims)} claims hold"]
    parts += [f"{counts[o]} {o}" for o in ("within noise", "fails") if counts[o]]
    text = f"{summary['verdict']} ({', '.join(parts)}; {len(summary['seeds'])} seeds)"
    hl = summary.get("highlight")
    if hl:
        method, base, metric = hl
        a, b = summary["table"][method][metric], summary["table"][base][metric]
        text = f"{metric}: {method} {_fmt(a, digits)} vs {base} {_fmt(b, digits)}. {text[0].upper()}{text[1:]}"
    return text


def _decimals(value: float, digits: int) -> int:
    """``digits`` decimals below 10; above, four significant figures (246.7, 24807)."""
    if not math.isfinite(value) or abs(value) < 10:
        return digits
    return max(0, digits + 1 - (math.floor(math.log10(abs(value))) + 1))


def _fmt(s: Mapping[str, Any], digits: int) -> str:
    """``mean ± std``; JSON stores a missing (NaN) value as null, shown as n/a.

    >>> _fmt({"mean": 24807.0, "std": 2883.99, "n": 3}, 3), _fmt({"mean": 0.7291, "std": 0.006, "n": 3}, 3)
    ('24807 ± 2884', '0.729 ± 0.006')
    """
    if s["mean"] is None or math.isnan(s["mean"]):
        return "n/a"
    d = _decimals(s["mean"], digits)
    if s["n"] > 1 and s["std"] is not None and math.isfinite(s["std"]):
        return f"{s['mean']:.{d}f} ± {s['std']:.{d}f}"
    return f"{s['mean']:.{d}f}"


def format_interval(claim: Mapping[str, Any], digits: int = 3) -> str:
    lo, hi = _bounds(claim)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{claim['estimate']:+.{digits}f} (one seed: no interval)"
    return f"{claim['estimate']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def format_summary(summary: Mapping[str, Any], digits: int = 3) -> Any:
    """A ``rich`` renderable of a summary: the method x metric table (mean ± std), the paper's
    result beside our setting, each claim with its estimate and interval, and the verdict."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    n = len(summary["seeds"])
    budget = summary.get("budget")
    table = RichTable(
        title=f"#{summary['paper']:02d} {summary['title']}\n(mean ± std over {n} seed{'s' if n != 1 else ''}"
        f"{f', {budget} budget' if budget else ''})",
        title_justify="left",
    )
    table.add_column("method")
    for m in summary["metrics"]:
        table.add_column(m, justify="right")
    for method in summary["methods"]:
        name = f"{method} (baseline)" if method in summary["baselines"] else method
        table.add_row(name, *(_fmt(summary["table"][method][m], digits) for m in summary["metrics"]))
    lines = [
        Text(f"Paper:  {summary['paper_result']}"),
        Text(f"Ours:   {summary['setting']}"),
        Text(f"Scale:  {summary['scale_note']}"),
    ]
    if summary.get("notes"):
        lines.append(Text(f"Notes:  {summary['notes']}"))
    lines.append(Text(f"Claims (difference, {CONFIDENCE:.0%} interval over seeds):"))
    mark = {"holds": ("x", "green"), "fails": ("-", "red"), "within noise": ("~", "yellow")}
    for c in summary["claims"]:
        sym, colour = mark[c["outcome"]]
        lines.append(Text(f"  [{sym}] {c['statement']}: {format_interval(c, digits)} -> {c['outcome']}", style=colour))
    style = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}[summary["verdict"]]
    lines.append(Text(f"Verdict: {summary['verdict']}", style=f"bold {style}"))
    return Group(table, *lines)


def summary_markdown(summary: Mapping[str, Any], plot: str | None = None, digits: int = 3) -> str:
    """A summary as Markdown (the results block of a paper card): the method x metric table,
    the claims with their intervals, the verdict and the environment."""
    n = len(summary["seeds"])
    lines = [
        f"Measured by `paperzoo reproduce {summary['paper']}` ({n} seeds, mean ± std); generated from "
        f"`paperzoo/papers/results/{summary['key']}.json`.",
        "",
        "| method | " + " | ".join(summary["metrics"]) + " |",
        "|---|" + "---:|" * len(summary["metrics"]),
    ]
    for method in summary["methods"]:
        name = f"{method} (baseline)" if method in summary["baselines"] else method
        cells = [_fmt(summary["table"][method][m], digits) for m in summary["metrics"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Claims (difference, {CONFIDENCE:.0%} interval over seeds):", ""]
    for c in summary["claims"]:
        lines.append(f"- {c['statement']}: {format_interval(c, digits)} — **{c['outcome']}**")
    env = summary["environment"]
    lines += [
        "",
        f"**Verdict: {summary['verdict']}.** {summary['verdict_rule']}",
        "",
        f"Paper: {summary['paper_result']}.",
        "",
        f"Ours: {summary['setting']}.",
        "",
        f"Scale: {summary['scale_note']}.",
    ]
    if summary.get("notes"):
        lines += ["", f"Notes: {summary['notes']}"]
    lines += [
        "",
        f"Run: commit {env.get('commit')}{' (uncommitted changes)' if env.get('dirty') else ''}, torch {env.get('torch')}, "
        f"{env.get('jobs')} job(s) x {env.get('threads_per_job')} thread(s) on {env.get('cpus')} CPUs, "
        f"{env.get('wall_s')} s wall, {env.get('date')}.",
    ]
    if plot:
        lines += ["", f"![results of #{summary['paper']:02d}]({plot})"]
    return "\n".join(lines)
