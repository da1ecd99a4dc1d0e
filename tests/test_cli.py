import json

from typer.testing import CliRunner

from paperzoo import catalog
from paperzoo.cli import app

runner = CliRunner()


def test_list_json_is_the_catalog() -> None:
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert len(data) == len(catalog.PAPERS)
    assert {d["status"] for d in data} <= set(catalog.STATUSES)


def test_list_filters() -> None:
    res = runner.invoke(app, ["list", "--status", "planned", "--json"])
    assert all(d["status"] == "planned" for d in json.loads(res.output))
    res = runner.invoke(app, ["list", "--family", "astrology"])
    assert res.exit_code == 2 and "unknown family" in res.output
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "Z-loss" in res.output


def test_show_prints_the_recorded_results_table(planned_paper: int) -> None:
    res = runner.invoke(app, ["show", "28"])
    assert res.exit_code == 0 and "Multi-Similarity" in res.output
    result = catalog.get(28).result
    assert result is not None
    assert f"Verdict: {result['verdict']}" in res.output and "contrastive (baseline)" in res.output
    res = runner.invoke(app, ["show", str(planned_paper)])
    assert res.exit_code == 0 and "Not implemented yet" in res.output
    res = runner.invoke(app, ["show", "99"])
    assert res.exit_code == 2 and "no paper number 99" in res.output


def test_reproduce_unknown_paper_budget_or_record(planned_paper: int) -> None:
    res = runner.invoke(app, ["reproduce", str(planned_paper)])
    assert res.exit_code == 2 and "no reproduction" in res.output
    res = runner.invoke(app, ["reproduce", "28", "--budget", "huge", "--jobs", "1"])
    assert res.exit_code == 2 and "no budget 'huge'" in res.output
    res = runner.invoke(app, ["reproduce", "28", "--smoke", "--record"])
    assert res.exit_code == 2 and "full run only" in res.output


def test_docs_check() -> None:
    res = runner.invoke(app, ["docs", "--check"])
    assert res.exit_code == 0, res.output


def test_markdown() -> None:
    res = runner.invoke(app, ["list", "--markdown"])
    assert res.exit_code == 0 and res.output.strip() == catalog.markdown_table()


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, paperzoo, paperzoo.losses, paperzoo.catalog, paperzoo.summaries; paperzoo.catalog.check_catalog; [p.status for p in paperzoo.catalog.PAPERS]; heavy = [m for m in ('torch', 'matplotlib', 'sklearn', 'pytorch_metric_learning') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
