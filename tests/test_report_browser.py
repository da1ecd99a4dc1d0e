"""The report in a real browser: headless Chromium opens the page offline; every catalog row is
shown, no figure is broken, and the sorting and family-filter script works.

Needs a Chromium binary (Debian: ``apt-get install -y --no-install-recommends chromium-headless-shell``);
skipped without one.
"""

from __future__ import annotations

import html
import json
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from paperzoo import catalog, papers, report

pytestmark = pytest.mark.slow

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install -y --no-install-recommends chromium-headless-shell"
FIXTURES = runpy.run_path(str(Path(__file__).with_name("test_report.py")))

# Runs after the page's own script, on load: counts what is shown, lists the broken images
# (a deliberately broken control image proves the check can fail), then sorts and filters
# through the page's controls and records what the table shows.
PROBE = """
<img id="control" alt="control" src="data:image/png;base64,AAAA">
<pre id="probe"></pre>
<script>
window.addEventListener("load", function () {
  var body = document.querySelector("#catalog tbody");
  function shown() {
    return Array.prototype.filter.call(body.rows, function (r) { return r.getClientRects().length > 0; });
  }
  function column(col) { return shown().map(function (r) { return r.cells[col].textContent.trim(); }); }
  var out = {rows: body.rows.length, shown: shown().length, images: document.images.length};
  out.broken = Array.prototype.filter.call(document.images, function (img) {
    return !img.complete || img.naturalWidth === 0;
  }).map(function (img) { return img.alt; });
  var buttons = document.querySelectorAll("#catalog thead th button");
  out.buttons = buttons.length;
  buttons[2].click();
  out.yearsAscending = column(2);
  buttons[2].click();
  out.yearsDescending = column(2);
  buttons[0].click();
  out.numbers = column(0);
  out.filterShown = !document.getElementById("filter").hidden;
  var select = document.getElementById("family");
  select.value = "theory";
  select.dispatchEvent(new Event("change"));
  out.theory = column(3);
  out.shownText = document.getElementById("shown").textContent;
  document.getElementById("probe").textContent = JSON.stringify(out);
});
</script>
"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless Chromium ({', '.join(BROWSERS)}); on Debian: {INSTALL}")


def _probe(page: Path, tmp_path: Path) -> dict[str, Any]:
    """Load ``page`` (with :data:`PROBE` added) in headless Chromium, offline, and return the probe's record."""
    probed = tmp_path / "probed.html"
    text = page.read_text(encoding="utf-8")
    probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [
        _browser(),
        "--headless",
        "--no-sandbox",  # containers and root: the page is our own local file
        "--disable-gpu",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network, whatever the page asked for
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probed.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert proc.returncode == 0 and match and match.group(1), proc.stderr[-2000:]
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.parametrize("source", ["fixtures", "committed"])
def test_page_renders_in_chromium(source: str, tmp_path: Path) -> None:
    if source == "fixtures":
        results: Path | None = tmp_path / "results"
        FIXTURES["write_fixtures"](results)
        n_images = 2
    else:
        results = None
        n_images = sum(papers.recorded_plot(p.key) is not None for p in catalog.PAPERS)
    out = _probe(report.build_report(tmp_path / "report.html", results_dir=results), tmp_path)
    assert out["rows"] == out["shown"] == len(catalog.PAPERS) == 54
    assert out["images"] == n_images + 1 and out["broken"] == ["control"]
    assert out["buttons"] == 7 and out["filterShown"]
    years = [int(y) for y in out["yearsAscending"]]
    assert years == sorted(years) and [int(y) for y in out["yearsDescending"]] == sorted(years, reverse=True)
    assert [int(n) for n in out["numbers"]] == [p.number for p in catalog.PAPERS]
    theory = [p for p in catalog.PAPERS if p.family == "theory"]
    assert out["theory"] == ["theory"] * len(theory)
    assert out["shownText"] == f"{len(theory)} of 54 shown"
