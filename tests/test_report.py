"""``paperzoo report``: the static page, read back with :mod:`html.parser` from fixture summaries."""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from paperzoo import catalog, papers, report
from paperzoo.summaries import VERDICT_RULE, outcome_of, verdict_from_outcomes

EVIL = '<script>alert("x")</script>'


# --------------------------------------------------------------------------- fixtures
def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([200, 30, 30]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return report.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_summary(
    number: int,
    claims: Sequence[tuple[str, float, float | None, float | None]],
    seeds: Sequence[int] = (0, 1, 2),
    **fields: Any,
) -> dict[str, Any]:
    """A summary of the schema of :meth:`paperzoo.engine.results.Result.summary`; claims are
    ``(statement, estimate, lo, hi)`` with ``> 0`` claimed, outcomes and verdict derived."""
    paper = catalog.get(number)
    claim_dicts = []
    for statement, estimate, lo, hi in claims:
        claim = {
            "statement": statement,
            "direction": ">",
            "threshold": 0.0,
            "estimate": estimate,
            "interval": [lo, hi],
            "confidence": 0.95,
            "n": len(seeds),
        }
        claim_dicts.append({**claim, "outcome": outcome_of(claim)})
    n = len(seeds)
    summary = {
        "schema": 1,
        "paper": number,
        "key": paper.key,
        "title": paper.title,
        "budget": None,
        "seeds": list(seeds),
        "metrics": ["accuracy", "nll"],
        "methods": ["ours", "base"],
        "baselines": ["base"],
        "table": {
            "ours": {"accuracy": {"mean": 0.91234, "std": 0.01, "n": n}, "nll": {"mean": 0.3, "std": 0.02, "n": n}},
            "base": {"accuracy": {"mean": 0.85, "std": 0.015, "n": n}, "nll": {"mean": 0.4, "std": 0.03, "n": n}},
        },
        "claims": claim_dicts,
        "verdict_rule": VERDICT_RULE,
        "verdict": verdict_from_outcomes([c["outcome"] for c in claim_dicts]),
        "highlight": ["ours", "base", "accuracy"],
        "paper_result": f"Paper {number} reports a large gain.",
        "setting": f"Setting of paper {number}: a small synthetic task.",
        "scale_note": f"Scale of paper {number}: 100x smaller.",
        "notes": "",
        "environment": {
            "commit": "aaaaaaaaaaaa",
            "dirty": False,
            "torch": "2.13.0",
            "python": "3.11.2",
            "platform": "Linux x86_64",
            "cpus": 2,
            "jobs": 2,
            "threads_per_job": 1,
            "wall_s": 123.4,
            "date": "2025-01-02",
        },
    }
    summary.update(fields)
    return summary


def fixture_summaries() -> dict[int, dict[str, Any]]:
    """Three papers with a reproduction module: one verdict of each kind."""
    holds = make_summary(5, [("accuracy: ours > base", 0.06, 0.04, 0.08), ("nll: base > ours", 0.1, 0.05, 0.15)])
    one_seed = make_summary(
        28,
        [("accuracy: ours > base", 0.02, None, None)],
        seeds=(0,),
        notes="One seed only.",
        environment={**holds["environment"], "commit": "bbbbbbbbbbbb", "dirty": True, "date": "2025-01-05"},
    )
    one_seed["table"]["base"]["nll"] = {"mean": None, "std": 0.0, "n": 1}  # NaN, as JSON stores it
    fails = make_summary(9, [(EVIL, -0.2, -0.3, -0.1)], seeds=(0, 1), setting=f"a setting with {EVIL}")
    fails["methods"] = [EVIL, "base"]
    fails["table"][EVIL] = fails["table"].pop("ours")
    fails["highlight"] = [EVIL, "base", "accuracy"]
    return {5: holds, 28: one_seed, 9: fails}


def write_fixtures(folder: Path) -> dict[int, dict[str, Any]]:
    """Write :func:`fixture_summaries` as ``NN-slug.json`` into ``folder``, with a figure for 05 and 28."""
    folder.mkdir(parents=True, exist_ok=True)
    summaries = fixture_summaries()
    for number, summary in summaries.items():
        key = catalog.get(number).key
        (folder / f"{key}.json").write_text(json.dumps(summary))
        if number != 9:
            (folder / f"{key}.png").write_bytes(png_bytes(3 + number, 2))
    return summaries


# --------------------------------------------------------------------------- a small DOM
VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        """This node and its descendants (with ``tag`` only, if given), in document order."""
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter(tag)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def by_id(self, id_: str) -> Node:
        (found,) = [n for n in self.iter() if n.attrs.get("id") == id_]
        return found


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    """The page as a tree; every element must be closed in order."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_fixtures(folder)
    return folder


@pytest.fixture
def page(results: Path, tmp_path: Path) -> tuple[Path, str, Node]:
    out = report.build_report(tmp_path / "site" / "report.html", results_dir=results)
    text = out.read_text(encoding="utf-8")
    return out, text, parse(text)


# --------------------------------------------------------------------------- tests
def test_catalog_has_one_row_per_paper(page: tuple[Path, str, Node]) -> None:
    _, _, dom = page
    (tbody,) = dom.by_id("catalog").iter("tbody")
    rows = list(tbody.iter("tr"))
    assert len(rows) == len(catalog.PAPERS) == 54
    by_number = {int(next(r.iter("td")).text()): r for r in rows}
    assert list(by_number) == [p.number for p in catalog.PAPERS]
    for paper in catalog.PAPERS:
        cells = [c.text().strip() for c in by_number[paper.number].iter("td")]
        assert cells[1].startswith(paper.title) and cells[2] == str(paper.year) and cells[3] == paper.family
    assert [c.text() for c in by_number[5].iter("td")][4:6] == ["reproduced", "holds"]
    assert [c.text() for c in by_number[9].iter("td")][4:6] == ["reproduced", "does not hold"]
    assert [c.text() for c in by_number[28].iter("td")][4:6] == ["reproduced", "inconclusive"]
    assert [a.attrs["href"] for a in by_number[5].iter("a")] == ["#p05"]
    assert "accuracy: ours 0.912 ± 0.010 vs base 0.850 ± 0.015" in by_number[5].text()
    assert "baseline" in by_number[0].text()
    assert all(c.text() != "planned" for row in by_number.values() for c in row.iter("td"))


def test_a_planned_paper_has_no_verdict(planned_paper: int, results: Path, tmp_path: Path) -> None:
    out = report.build_report(tmp_path / "site" / "report.html", results_dir=results)
    (tbody,) = parse(out.read_text(encoding="utf-8")).by_id("catalog").iter("tbody")
    row = next(r for r in tbody.iter("tr") if [c.text() for c in r.iter("td")][0] == str(planned_paper))
    assert [c.text() for c in row.iter("td")][4:6] == ["planned", "–"]


def test_a_section_per_summary(page: tuple[Path, str, Node]) -> None:
    _, text, dom = page
    sections = {s.attrs["id"]: s for s in dom.iter("section") if s.attrs.get("class") == "paper"}
    assert list(sections) == ["p05", "p09", "p28"]  # catalog order
    for number, summary in fixture_summaries().items():
        section = sections[f"p{number:02d}"]
        body = section.text()
        for field_ in ("paper_result", "setting", "scale_note"):
            assert summary[field_] in body
        assert f"Verdict: {summary['verdict']}" in body
        results, claims = section.iter("table")
        assert [th.text() for th in results.iter("thead")][0] == "methodaccuracynll"
        baseline_rows = [tr for tr in results.iter("tr") if tr.attrs.get("class") == "baseline"]
        assert [next(tr.iter("th")).text() for tr in baseline_rows] == ["base baseline"]
        claim_rows = list(claims.iter("tbody"))[0].children
        assert [r.attrs["class"] for r in claim_rows if isinstance(r, Node)] == [
            f"outcome-{c['outcome'].replace(' ', '-')}" for c in summary["claims"]
        ]
        assert "2.13.0 · Python 3.11.2 · Linux x86_64 · 2 CPUs · 2 jobs × 1 threads · 123.4 s wall" in body
    assert "+0.060 [+0.040, +0.080]" in sections["p05"].text()
    assert "+0.020 (one seed: no interval)" in sections["p28"].text()
    assert "mean ± std over 1 seed" in sections["p28"].text() and "n/a" in sections["p28"].text()
    assert "0.912" in sections["p28"].text() and "0.912 ±" not in sections["p28"].text()  # one seed: no std
    assert "One seed only." in sections["p28"].text()
    assert "commit bbbbbbbbbbbb (dirty)" in sections["p28"].text()
    assert dom.text().count(VERDICT_RULE) == 1  # the rule once on the page
    assert "earlier verdict rule" not in text


def test_header_counts_dates_and_commits(page: tuple[Path, str, Node]) -> None:
    _, _, dom = page
    (header,) = dom.iter("header")
    text = header.text()
    assert "2025-01-02 to 2025-01-05" in text
    assert "aaaaaaaaaaaa (2 papers), bbbbbbbbbbbb (dirty) (1 paper)" in text
    with_record = len(papers.records())
    pills = {p.attrs["class"].split()[1]: p.text() for p in header.iter("span")}
    assert pills["status-reproduced"] == "reproduced: 3"
    assert pills["status-implemented"] == f"implemented: {with_record - 3}"
    assert pills["status-planned"] == f"planned: {len(catalog.PAPERS) - with_record}"
    assert [pills[f"verdict-{v}"] for v in ("holds", "does-not-hold", "inconclusive")] == [
        "holds: 1",
        "does not hold: 1",
        "inconclusive: 1",
    ]


def test_images_are_embedded_pngs(page: tuple[Path, str, Node]) -> None:
    _, _, dom = page
    images = list(dom.iter("img"))
    assert len(images) == 2
    prefix = "data:image/png;base64,"
    decoded = [base64.b64decode(img.attrs["src"].removeprefix(prefix), validate=True) for img in images]
    assert all(img.attrs["src"].startswith(prefix) and img.attrs["alt"] for img in images)
    assert decoded == [png_bytes(8, 2), png_bytes(31, 2)]


def test_nothing_external(page: tuple[Path, str, Node]) -> None:
    _, text, dom = page
    for node in dom.iter():
        for name in ("src", "href", "action", "srcset", "data", "poster"):
            value = (node.attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), (node.tag, name, value)
    assert not list(dom.iter("link")) and not list(dom.iter("iframe"))
    assert all("src" not in s.attrs for s in dom.iter("script"))
    (style,) = dom.iter("style")
    assert "url(" not in style.text() and "@import" not in style.text()


def test_text_is_escaped(page: tuple[Path, str, Node]) -> None:
    _, text, dom = page
    (script,) = dom.iter("script")  # the page's own script, nothing injected
    assert "sortBy" in script.text()
    section = dom.by_id("p09")
    assert f"a setting with {EVIL}" in section.text()
    assert section.text().count(EVIL) >= 3  # setting, method name, claim statement
    assert EVIL not in text and html_escaped(EVIL) in text


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def test_sorting_script_and_filter(page: tuple[Path, str, Node]) -> None:
    _, _, dom = page
    (script,) = dom.iter("script")
    for needle in ('getElementById("catalog")', "aria-sort", "localeCompare", 'getElementById("family")'):
        assert needle in script.text()
    heads = list(dom.by_id("catalog").iter("th"))
    assert [h.text() for h in heads] == ["#", "paper", "year", "family", "status", "verdict", "measured"]
    assert [h.attrs.get("data-type") for h in heads] == ["number", None, "number", None, "number", None, None]
    assert "hidden" in dom.by_id("filter").attrs  # shown by the script only
    options = [o.attrs["value"] for o in dom.by_id("family").iter("option")]
    assert options == ["", *catalog.families()]
    rows = list(dom.by_id("catalog").iter("tbody"))[0].iter("tr")
    assert {r.attrs["data-family"] for r in rows} == set(catalog.families())


def test_build_is_deterministic(results: Path, tmp_path: Path) -> None:
    a = report.build_report(tmp_path / "a.html", results_dir=results).read_bytes()
    b = report.build_report(tmp_path / "b.html", results_dir=results).read_bytes()
    assert a == b


def test_written_atomically(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site" / "report.html"
    out.parent.mkdir()
    out.write_text("old page")
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        replaced.append((src, dst))
        assert Path(src).parent == out.parent and Path(src).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        report.build_report(out, results_dir=results)
    assert out.read_text() == "old page" and sorted(out.parent.iterdir()) == [out]  # temp file removed
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    assert report.build_report(out, results_dir=results) == out
    assert len(replaced) == 2 and replaced[1][1] == out and sorted(out.parent.iterdir()) == [out]
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert out.stat().st_mode & 0o777 == 0o644  # readable by a web server, unlike a mkstemp file


def test_a_figure_that_is_not_a_png_is_refused(results: Path, tmp_path: Path) -> None:
    (results / f"{catalog.get(5).key}.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        report.build_report(tmp_path / "out.html", results_dir=results)


def test_committed_results(tmp_path: Path) -> None:
    """The page of whatever is committed now: every paper, a section per recorded summary."""
    dom = parse(report.build_report(tmp_path / "report.html").read_text(encoding="utf-8"))
    rows = list(list(dom.by_id("catalog").iter("tbody"))[0].iter("tr"))
    assert [list(r.iter("td"))[4].text() for r in rows] == [p.status for p in catalog.PAPERS]
    recorded = [f"p{p.number:02d}" for p in catalog.PAPERS if papers.recorded_result(p.key) is not None]
    assert [s.attrs["id"] for s in dom.iter("section") if s.attrs.get("class") == "paper"] == recorded
    assert len(list(dom.iter("img"))) == sum(papers.recorded_plot(p.key) is not None for p in catalog.PAPERS)


def test_status_follows_the_catalog(planned_paper: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the recorded results patched, the page's statuses are the catalog's own."""
    summaries = {catalog.get(n).key: s for n, s in fixture_summaries().items()}
    planned = planned_paper
    summaries[catalog.get(planned).key] = make_summary(planned, [("x", 1.0, 0.5, 1.5)])  # no record: still planned
    monkeypatch.setattr(papers, "recorded_result", lambda key: summaries.get(key))
    monkeypatch.setattr(papers, "recorded_plot", lambda key: None)
    dom = parse(report.build_report(tmp_path / "report.html").read_text(encoding="utf-8"))
    rows = list(list(dom.by_id("catalog").iter("tbody"))[0].iter("tr"))
    statuses = [list(r.iter("td"))[4].text() for r in rows]
    assert statuses == [p.status for p in catalog.PAPERS]
    assert statuses[planned] == "planned" and statuses[5] == "reproduced"
    assert not list(dom.iter("img"))


def test_import_and_build_are_torch_free(results: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; import paperzoo.report as r; "
        f"r.build_report(Path({str(tmp_path / 'r.html')!r}), Path({str(results)!r})); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").is_file()


def test_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    app.command("report")(report.report_command)
    app.command("other")(lambda: None)  # two commands: invoked by name, as in paperzoo's app
    opened: list[str] = []
    monkeypatch.setattr(report.webbrowser, "open", opened.append)
    out = tmp_path / "site" / "page.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and out.is_file() and not opened
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [out.resolve().as_uri()]
    assert "--open" in CliRunner().invoke(app, ["report", "--help"]).output


def test_cell_formatting() -> None:
    assert report._cell({"mean": 0.5, "std": 0.25, "n": 3}) == "0.500 ± 0.250"
    assert report._cell({"mean": 0.5, "std": 0.0, "n": 1}) == "0.500"
    assert report._cell({"mean": math.nan, "std": 0.0, "n": 3}) == "n/a"
    assert report._cell(None) == "n/a"
