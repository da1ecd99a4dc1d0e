import json
import math

import pytest
from rich.console import Console

from paperzoo.engine import Claim, Result, Table, atomic_write_json, format_table, start, summarize
from paperzoo.summaries import format_summary, measured_line, outcome_of, t_interval, verdict_from_outcomes


def _table(ms: tuple[float, ...] = (0.8, 0.9, 0.85), con: tuple[float, ...] = (0.7, 0.72, 0.71)) -> Table:
    table = Table(["R@1"], ["ms", "contrastive"], baselines=["contrastive"])
    for seed, (a, b) in enumerate(zip(ms, con)):
        table.add("ms", seed, {"R@1": a})
        table.add("contrastive", seed, {"R@1": b})
    return table


def _result(claims: list[Claim], table: Table, **kw: object) -> Result:
    return Result(28, table, claims, seeds=[0, 1, 2], setting="digits", scale_note="small", **kw)  # type: ignore[arg-type]


def test_summarize() -> None:
    assert summarize([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert summarize([5.0])["std"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_table_bookkeeping() -> None:
    table = _table()
    assert table.values("ms", "R@1") == [0.8, 0.9, 0.85] and table.seeds("ms") == [0, 1, 2]
    assert table.paired("ms", "contrastive", "R@1") == pytest.approx([0.1, 0.18, 0.14])
    with pytest.raises(ValueError, match="already has a value"):
        table.add("ms", 0, {"R@1": 0.1})
    with pytest.raises(ValueError, match="missing metrics"):
        table.add("ms", 5, {})
    with pytest.raises(KeyError, match="unknown method"):
        table.values("nope", "R@1")
    with pytest.raises(ValueError, match="baselines"):
        Table(["a"], ["x"], baselines=["y"])
    table.add("late", 0, {"R@1": 0.5})
    with pytest.raises(ValueError, match="expected"):
        table.check_complete([0, 1, 2])
    with pytest.raises(ValueError, match="different seeds"):
        table.paired("ms", "late", "R@1")


def test_t_interval_matches_scipy() -> None:
    from scipy import stats

    values = [0.1, 0.18, 0.14, 0.12]
    mean, lo, hi = t_interval(values)
    ref = stats.t.interval(0.95, 3, loc=stats.tmean(values), scale=stats.sem(values))
    assert mean == pytest.approx(0.135) and (lo, hi) == pytest.approx(ref)
    assert t_interval([0.3]) == (0.3, -math.inf, math.inf)
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, float("nan")])


def test_claim_outcomes_use_the_seed_spread() -> None:
    clear = Claim.greater(_table(), "ms", "contrastive", "R@1")
    assert clear.outcome == "holds" and clear.statement == "R@1: ms > contrastive"
    # a 0.002 mean gain with seed noise of 0.01 is within noise, not a win
    noisy = Claim.greater(_table((0.981, 0.97, 0.992), (0.979, 0.985, 0.972)), "ms", "contrastive", "R@1")
    assert noisy.estimate > 0 and noisy.outcome == "within noise"
    assert Claim.greater(_table(), "contrastive", "ms", "R@1").outcome == "fails"
    assert Claim.greater(_table(), "ms", "contrastive", "R@1", margin=0.5).outcome == "fails"
    assert Claim.less(_table(), "contrastive", "ms", "R@1").outcome == "holds"
    worded = Claim.less(_table(), "contrastive", "ms", "R@1", margin=0.1, statement="the baseline trails")
    plain = Claim.less(_table(), "contrastive", "ms", "R@1", margin=0.1)
    assert worded.statement == "the baseline trails" and plain.statement == "R@1: contrastive < ms + 0.1"
    assert (worded.values, worded.threshold, worded.outcome) == (plain.values, plain.threshold, plain.outcome)
    assert Claim.about("ratio", [2.0], ">", 1.0).outcome == "within noise"  # one seed decides nothing
    with pytest.raises(ValueError, match="direction"):
        Claim("x", (1.0, 2.0), "=")  # type: ignore[arg-type]
    for claim in (clear, noisy):
        assert outcome_of(claim.summary()) == claim.outcome


def test_verdict_rule() -> None:
    assert verdict_from_outcomes(["holds", "holds"]) == "holds"
    assert verdict_from_outcomes(["fails", "fails"]) == "does not hold"
    assert verdict_from_outcomes(["holds", "fails"]) == "inconclusive"
    assert verdict_from_outcomes(["holds", "within noise"]) == "inconclusive"
    assert verdict_from_outcomes([]) == "inconclusive"


def test_result_takes_identity_from_the_catalog_and_derives_the_verdict() -> None:
    table = _table()
    res = _result([Claim.greater(table, "ms", "contrastive", "R@1")], table, highlight=("ms", "contrastive", "R@1"))
    assert res.key == "28-multi-similarity-loss" and res.title.startswith("Multi-Similarity")
    assert res.verdict == "holds"
    with pytest.raises(AttributeError):
        res.verdict = "does not hold"  # type: ignore[misc]
    assert res.measured().startswith("R@1: ms 0.850 ± 0.050 vs contrastive 0.710 ± 0.010. Holds (1 of 1 claims hold")
    with pytest.raises(ValueError, match="expected"):
        Result(28, table, [], seeds=[0, 1], setting="", scale_note="")
    with pytest.raises(KeyError):
        _result([], table, highlight=("ms", "nope", "R@1"))


def test_write_summary_and_table(tmp_path) -> None:
    import matplotlib.pyplot as plt

    table = _table()
    res = _result([Claim.greater(table, "ms", "contrastive", "R@1")], table)

    def figure(result: Result) -> object:
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        return fig

    res.write(tmp_path, figure=figure)
    folder = tmp_path / "28-multi-similarity-loss"
    assert res.json_path == folder / "result.json" and res.summary_path == folder / "summary.json"
    assert res.png_path.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(res.summary_path.read_text())
    assert summary["verdict"] == "holds" and summary["table"]["ms"]["R@1"]["mean"] == pytest.approx(0.85)
    assert summary["claims"][0]["outcome"] == "holds" and len(summary["claims"][0]["interval"]) == 2
    assert set(summary["environment"]) >= {"commit", "torch", "jobs", "threads_per_job", "wall_s"}
    assert json.loads(res.json_path.read_text())["values"]["ms"]["R@1"] == [0.8, 0.9, 0.85]
    console = Console(record=True, width=160)
    console.print(format_table(res))
    text = console.export_text()
    assert "0.850 ± 0.050" in text and "contrastive (baseline)" in text and "Verdict: holds" in text
    assert "+0.140 [" in text
    assert not list(tmp_path.rglob("*.tmp"))


def test_reduced_budgets_do_not_overwrite_full(tmp_path) -> None:
    table = Table(["R@1"], ["ms"])
    table.add("ms", 0, {"R@1": 0.5})
    res = Result(28, table, [Claim.about("x", [0.5], ">", 0.0)], seeds=[0], setting="", scale_note="", smoke=True)
    res.write(tmp_path)
    assert res.json_path.name == "result.smoke.json" and res.summary_path.name == "summary.smoke.json"
    assert res.png_path is None
    summary = res.summary()
    assert summary["claims"][0]["interval"] == [None, None] and summary["verdict"] == "inconclusive"
    assert "one seed" in str(format_summary(summary).renderables[-2])  # type: ignore[attr-defined]
    assert measured_line(summary).startswith("inconclusive (0 of 1 claims hold, 1 within noise; 1 seeds)")


def test_start_validates() -> None:
    rep = start(28, seeds=(2, 0), jobs=1, progress=False)
    assert rep.seeds == [2, 0] and rep.budget is None and rep.jobs == 1
    assert start(28, smoke=True, jobs=1).budget == "smoke"
    with pytest.raises(ValueError, match="no budget"):
        start(28, budget="huge")
    with pytest.raises(ValueError, match="not both"):
        start(28, smoke=True, budget="showcase", budgets=("showcase",))
    with pytest.raises(ValueError, match="seeds"):
        start(28, seeds=(1, 1))


def test_atomic_json_maps_nan(tmp_path) -> None:
    p = atomic_write_json(tmp_path / "a" / "x.json", {"v": float("nan"), "w": [1, 2]})
    assert json.loads(p.read_text()) == {"v": None, "w": [1, 2]}


def test_record_result_writes_the_summary_and_plot(tmp_path) -> None:
    from paperzoo.engine.recording import record_result
    from paperzoo.papers import results_dir

    table = _table()
    res = _result([Claim.greater(table, "ms", "contrastive", "R@1")], table)
    res.write(tmp_path / "out")
    written = record_result(res, folder=tmp_path / "recorded")
    assert [p.name for p in written] == ["28-multi-similarity-loss.json"]
    assert json.loads(written[0].read_text()) == json.loads(res.summary_path.read_text())
    assert (results_dir().parents[3] / "pyproject.toml").is_file()  # the default folder is in this checkout
    res.budget = "smoke"
    with pytest.raises(ValueError, match="only a full run"):
        record_result(res, folder=tmp_path / "recorded")
