"""``paperzoo report``: one self-contained static HTML page of the catalog and the committed results.

The page needs no server and no network: its CSS and JavaScript are inline and each paper's
figure is embedded as a base64 ``data:`` URI. It holds a header (dates, commits and counts by
status and by verdict, all taken from the summaries, so rebuilding from the same results gives
the same bytes), the catalog of every paper as a sortable table with a family filter (the small
script only adds sorting and filtering; the table reads in catalog order without it), the
verdict rule, and one section per recorded summary (anchor ``#pNN``): the paper's headline,
our setting, the scale note, the method x metric table, the claims with their estimate,
interval and outcome, the verdict, the environment line and the figure.

Torch-free: it reads the summaries as data (:mod:`paperzoo.summaries`), like the catalog.
"""

from __future__ import annotations

import base64
import html
import json
import math
import webbrowser
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from paperzoo import catalog, papers
from paperzoo.engine.io import atomic_write_text
from paperzoo.summaries import CONFIDENCE, OUTCOMES, VERDICT_RULE, VERDICTS, format_interval, measured_line

__all__ = ["build_report", "load_results", "render_report", "report_command"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS = 3

Summaries = Mapping[str, Mapping[str, Any]]


# --------------------------------------------------------------------------- data
def load_results(results_dir: Path | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
    """The recorded summaries and figures, each by paper key (``NN-slug``).

    With ``results_dir`` None they are the committed ones (:func:`paperzoo.papers.recorded_result`
    and :func:`~paperzoo.papers.recorded_plot`); otherwise ``results_dir/NN-slug.json`` and
    ``.png``. Only catalog keys are read. A figure that is not a PNG raises ``ValueError``.
    """
    summaries: dict[str, dict[str, Any]] = {}
    plots: dict[str, bytes] = {}
    for paper in catalog.PAPERS:
        if results_dir is None:
            summary, plot = papers.recorded_result(paper.key), papers.recorded_plot(paper.key)
        else:
            json_path, png_path = results_dir / f"{paper.key}.json", results_dir / f"{paper.key}.png"
            summary = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else None
            plot = png_path if png_path.is_file() else None
        if summary is not None:
            summaries[paper.key] = summary
        if plot is not None:
            data = plot.read_bytes()
            if not data.startswith(PNG_SIGNATURE):
                raise ValueError(f"{plot} is not a PNG file")
            plots[paper.key] = data
    return summaries, plots


def _status(paper: catalog.Paper, summary: Mapping[str, Any] | None) -> catalog.Status:
    """The catalog's status rule (:attr:`paperzoo.catalog.Paper.status`) applied to ``summary``."""
    if paper.record is None:
        return "planned"
    return "reproduced" if paper.reproduction is not None and summary is not None else "implemented"


# --------------------------------------------------------------------------- formatting
def _e(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _slug(text: str) -> str:
    """A CSS class fragment for a status, verdict or outcome (``within noise`` -> ``within-noise``)."""
    return text.replace(" ", "-")


def _anchor(number: int) -> str:
    return f"p{number:02d}"


def _cell(stats: Mapping[str, Any] | None) -> str:
    """Mean ± std of one table cell (only the mean for one seed; ``n/a`` when missing or NaN)."""
    if not stats or stats.get("mean") is None or not math.isfinite(stats["mean"]):
        return "n/a"
    mean = f"{stats['mean']:.{DIGITS}f}"
    std = stats.get("std")
    if stats.get("n", 0) > 1 and std is not None and math.isfinite(std):
        return f"{mean} ± {std:.{DIGITS}f}"
    return mean


def _environment_line(env: Mapping[str, Any]) -> str:
    """One line of where and when a summary was produced (missing fields are left out)."""
    parts = []
    if env.get("commit"):
        parts.append(f"commit {env['commit']}{' (dirty)' if env.get('dirty') else ''}")
    for key, label in (("torch", "torch"), ("python", "Python")):
        if env.get(key):
            parts.append(f"{label} {env[key]}")
    if env.get("platform"):
        parts.append(str(env["platform"]))
    if env.get("cpus"):
        parts.append(f"{env['cpus']} CPUs")
    if env.get("jobs"):
        parts.append(f"{env['jobs']} jobs × {env.get('threads_per_job') or 1} threads")
    if env.get("wall_s") is not None:
        parts.append(f"{env['wall_s']:g} s wall")
    if env.get("date"):
        parts.append(str(env["date"]))
    return " · ".join(parts) if parts else "not recorded"


def _commits(summaries: Summaries) -> str:
    """The commits the summaries were produced at, most used first (with counts if several)."""
    counts = Counter(
        f"{env['commit']}{' (dirty)' if env.get('dirty') else ''}"
        for env in (s.get("environment") or {} for s in summaries.values())
        if env.get("commit")
    )
    if len(counts) <= 1:
        return next(iter(counts), "not recorded")
    return ", ".join(f"{c} ({n} paper{'s' if n != 1 else ''})" for c, n in counts.most_common())


def _dates(summaries: Summaries) -> str:
    """The range of the summaries' run dates."""
    dates = sorted({str(env["date"]) for s in summaries.values() if (env := s.get("environment") or {}).get("date")})
    if not dates:
        return "not recorded"
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def _pills(counts: Mapping[str, int], kind: str) -> str:
    return " ".join(
        f'<span class="pill {kind}-{_slug(name)}">{_e(name)}: <b>{n}</b></span>' for name, n in counts.items()
    )


# --------------------------------------------------------------------------- page parts
def _header(statuses: Mapping[str, str], summaries: Summaries) -> str:
    by_status = {s: sum(v == s for v in statuses.values()) for s in catalog.STATUSES}
    by_verdict = {v: sum(s.get("verdict") == v for s in summaries.values()) for v in VERDICTS}
    return "\n".join(
        [
            "<header>",
            "<h1>paperzoo</h1>",
            "<p>Tested PyTorch implementations and scaled-down, offline reproductions of 53 machine-learning "
            "papers (plus the SimGCD baseline). Every number below is generated from the committed result "
            "summaries.</p>",
            '<dl class="facts">',
            f"<dt>results recorded</dt><dd>{_e(_dates(summaries))}</dd>",
            f"<dt>commit</dt><dd><code>{_e(_commits(summaries))}</code></dd>",
            f"<dt>catalog</dt><dd>{len(statuses)} entries: {_pills(by_status, 'status')}</dd>",
            f"<dt>verdicts</dt><dd>{len(summaries)} recorded: {_pills(by_verdict, 'verdict')}</dd>",
            "</dl>",
            "</header>",
        ]
    )


def _catalog_table(statuses: Mapping[str, str], summaries: Summaries) -> str:
    options = "".join(f'<option value="{_e(f)}">{_e(f)}</option>' for f in catalog.families())
    rows = []
    for paper in catalog.PAPERS:
        summary = summaries.get(paper.key)
        title = _e(paper.title)
        if summary is not None:
            title = f'<a href="#{_anchor(paper.number)}">{title}</a>'
        if paper.baseline:
            title += ' <span class="tag">baseline</span>'
        verdict = str(summary.get("verdict", "")) if summary else ""
        verdict_cell = (
            f'<td data-sort="{_e(verdict)}" class="verdict-{_slug(verdict)}">{_e(verdict)}</td>'
            if verdict
            else '<td data-sort="">–</td>'
        )
        status = statuses[paper.key]
        rows.append(
            f'<tr data-family="{_e(paper.family)}">'
            f'<td data-sort="{paper.number}">{paper.number:02d}</td>'
            f"<td>{title}</td>"
            f"<td>{paper.year}</td>"
            f"<td>{_e(paper.family)}</td>"
            f'<td data-sort="{catalog.STATUSES.index(status)}" class="status-{status}">{status}</td>'
            f"{verdict_cell}"
            f'<td class="measured">{_e(measured_line(summary)) if summary else ""}</td>'
            "</tr>"
        )
    return "\n".join(
        [
            '<section id="catalog-section">',
            "<h2>Catalog</h2>",
            '<p id="filter" hidden><label>family <select id="family">'
            f'<option value="">all</option>{options}</select></label> <span id="shown"></span></p>',
            '<table id="catalog">',
            "<thead><tr>"
            '<th data-type="number">#</th><th>paper</th><th data-type="number">year</th><th>family</th>'
            '<th data-type="number">status</th><th>verdict</th><th>measured</th>'
            "</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            "</section>",
        ]
    )


def _results_table(summary: Mapping[str, Any]) -> str:
    metrics: Sequence[str] = summary.get("metrics", [])
    baselines = set(summary.get("baselines", []))
    table = summary.get("table", {})
    head = "".join(f'<th class="num">{_e(m)}</th>' for m in metrics)
    rows = []
    for method in summary.get("methods", []):
        baseline = method in baselines
        tag = ' <span class="tag">baseline</span>' if baseline else ""
        row_class = ' class="baseline"' if baseline else ""
        cells = "".join(f'<td class="num">{_e(_cell(table.get(method, {}).get(m)))}</td>' for m in metrics)
        rows.append(f'<tr{row_class}><th scope="row">{_e(method)}{tag}</th>{cells}</tr>')
    n = len(summary.get("seeds", []))
    caption = f"mean ± std over {n} seed{'s' if n != 1 else ''}"
    return "\n".join(
        [
            '<table class="results">',
            f"<caption>{_e(caption)}</caption>",
            f"<thead><tr><th>method</th>{head}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
        ]
    )


def _claims_table(claims: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        f'<tr class="outcome-{_slug(c["outcome"])}"><td>{_e(c["statement"])}</td>'
        f'<td class="num">{_e(format_interval(c, DIGITS))}</td>'
        f'<td class="num">{c.get("confidence", CONFIDENCE):.0%}</td><td class="num">{_e(c.get("n", ""))}</td>'
        f"<td><b>{_e(c['outcome'])}</b></td></tr>"
        for c in claims
    ]
    return "\n".join(
        [
            '<table class="claims">',
            '<thead><tr><th>claim</th><th class="num">estimate [interval]</th><th class="num">confidence</th>'
            '<th class="num">seeds</th><th>outcome</th></tr></thead>',
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
        ]
    )


def _paper_section(paper: catalog.Paper, summary: Mapping[str, Any], plot: bytes | None) -> str:
    verdict = str(summary.get("verdict", ""))
    facts = [
        ("paper's result", summary.get("paper_result") or (paper.record.paper_result if paper.record else "")),
        ("our setting", summary.get("setting", "")),
        ("scale", summary.get("scale_note", "")),
    ]
    if summary.get("budget"):
        facts.append(("budget", f"{summary['budget']} (not the full run)"))
    if summary.get("notes"):
        facts.append(("notes", summary["notes"]))
    parts = [
        f'<section class="paper" id="{_anchor(paper.number)}">',
        f"<h2>#{paper.number:02d} {_e(paper.title)} <small>({paper.year}, {_e(paper.family)})</small></h2>",
        '<dl class="facts">',
        *(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v),
        "</dl>",
        _results_table(summary),
        _claims_table(summary.get("claims", [])),
    ]
    if summary.get("verdict_rule") and summary["verdict_rule"] != VERDICT_RULE:
        parts.append(f'<p class="rule">Recorded under an earlier verdict rule: {_e(summary["verdict_rule"])}</p>')
    parts += [
        f'<p class="verdict verdict-{_slug(verdict)}">Verdict: <b>{_e(verdict)}</b></p>',
        f'<p class="env">{_e(_environment_line(summary.get("environment") or {}))}</p>',
    ]
    if plot is not None:
        src = "data:image/png;base64," + base64.b64encode(plot).decode("ascii")
        parts.append(f'<figure><img src="{src}" alt="{_e(f"Figure of #{paper.number:02d}: {paper.title}")}"></figure>')
    parts += ['<p class="top"><a href="#catalog-section">back to the catalog</a></p>', "</section>"]
    return "\n".join(parts)


_CSS = """
:root { --fg: #1d2125; --muted: #5f6b76; --bg: #fff; --line: #d8dde3; --head: #f3f5f7;
  --green: #1a7f37; --green-bg: #dafbe1; --red: #b42318; --red-bg: #fde8e7;
  --amber: #8a5a00; --amber-bg: #fff4d6; --grey-bg: #eef0f2; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ec; --muted: #9aa6b2; --bg: #15181b; --line: #343b42; --head: #1f2428;
    --green: #56d364; --green-bg: #12321c; --red: #ff7b72; --red-bg: #3d1715;
    --amber: #e3b341; --amber-bg: #3a2d0b; --grey-bg: #262c32; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; color: var(--fg); background: var(--bg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { margin: .5rem 0; } h2 { margin-top: 2.5rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
h2 small { color: var(--muted); font-weight: normal; font-size: .7em; }
a { color: inherit; }
code { font-size: .9em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .75rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: var(--head); position: sticky; top: 0; }
thead th button { all: inherit; cursor: pointer; padding: 0; }
thead th[aria-sort="ascending"] button::after { content: " ▲"; }
thead th[aria-sort="descending"] button::after { content: " ▼"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.measured { font-size: .85em; color: var(--muted); }
caption { caption-side: top; text-align: left; color: var(--muted); }
.tag { font-size: .75em; padding: 0 .35em; border: 1px solid var(--line); border-radius: .3em; color: var(--muted); }
tr.baseline th { font-weight: normal; font-style: italic; }
.pill { display: inline-block; padding: 0 .5em; margin: 0 .2em .2em 0; border-radius: 1em; background: var(--grey-bg); }
.status-reproduced, .verdict-holds, .outcome-holds { color: var(--green); background: var(--green-bg); }
.verdict-does-not-hold, .outcome-fails { color: var(--red); background: var(--red-bg); }
.status-implemented, .verdict-inconclusive, .outcome-within-noise { color: var(--amber); background: var(--amber-bg); }
.status-planned { color: var(--muted); }
p.verdict { display: inline-block; padding: .2rem .6rem; border-radius: .3rem; font-size: 1.1em; }
p.env, p.rule, p.top { color: var(--muted); font-size: .85em; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
footer { margin-top: 3rem; color: var(--muted); font-size: .85em; }
"""

# Sorting (click a header; again to reverse) and the family filter. Without it the table
# stays in catalog order and the (hidden) filter is not shown.
_JS = """
(function () {
  "use strict";
  var table = document.getElementById("catalog");
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(body.rows, function (row, i) { row.setAttribute("data-index", i); });
  function key(row, col) {
    var cell = row.cells[col];
    var value = cell.getAttribute("data-sort");
    return value === null ? cell.textContent.trim() : value;
  }
  function sortBy(col) {
    var th = heads[col];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = th.getAttribute("data-type") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      if (!ascending) { order = -order; }
      return order || Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = th.textContent;
    button.title = "sort by " + th.textContent;
    button.addEventListener("click", function () { sortBy(col); });
    th.textContent = "";
    th.appendChild(button);
  });
  var filter = document.getElementById("family");
  var shown = document.getElementById("shown");
  function applyFilter() {
    var family = filter.value, count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      row.hidden = family !== "" && row.getAttribute("data-family") !== family;
      if (!row.hidden) { count += 1; }
    });
    shown.textContent = count + " of " + body.rows.length + " shown";
  }
  filter.addEventListener("change", applyFilter);
  applyFilter();
  document.getElementById("filter").hidden = false;
})();
"""


def render_report(summaries: Summaries, plots: Mapping[str, bytes]) -> str:
    """The whole page for ``summaries`` and ``plots`` (both by paper key; other keys are ignored)."""
    known = {p.key for p in catalog.PAPERS}
    summaries = {k: v for k, v in summaries.items() if k in known}
    statuses = {p.key: _status(p, summaries.get(p.key)) for p in catalog.PAPERS}
    sections = [_paper_section(p, summaries[p.key], plots.get(p.key)) for p in catalog.PAPERS if p.key in summaries]
    legend = ", ".join(f'<span class="outcome-{_slug(o)}">{o}</span>' for o in OUTCOMES)
    body = [
        _header(statuses, summaries),
        "<main>",
        _catalog_table(statuses, summaries),
        '<section id="rule">',
        "<h2>How to read the verdicts</h2>",
        f"<p>{_e(VERDICT_RULE)}</p>",
        f"<p>Claim outcomes: {legend}. Tables show mean ± standard deviation over seeds; baselines are tagged.</p>",
        "</section>",
        *(sections or ["<p>No reproduction has a recorded result yet.</p>"]),
        "</main>",
        "<footer>Generated by <code>paperzoo report</code> from the committed result summaries "
        "(<code>paperzoo/papers/results</code>). Self-contained: no network access is needed.</footer>",
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>paperzoo: implementations and reproductions of 53 ML papers</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f"<script>{_JS}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def build_report(out: Path, results_dir: Path | None = None) -> Path:
    """Write the page to ``out`` (atomically) from the summaries in ``results_dir`` (None: the
    committed ones) and return ``out``."""
    summaries, plots = load_results(results_dir)
    return atomic_write_text(Path(out), render_report(summaries, plots))


def report_command(
    out: Path = typer.Option(Path("results/report.html"), "--out", help="Where to write the page."),
    open_: bool = typer.Option(False, "--open", help="Open the page in the default web browser."),
) -> None:
    """Build one self-contained HTML page of the catalog and the recorded results."""
    path = build_report(out)
    typer.echo(f"wrote {path}")
    if open_:
        webbrowser.open(path.resolve().as_uri())
