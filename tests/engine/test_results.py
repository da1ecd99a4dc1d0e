import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from rich.console import Console

from paperzoo.engine import Claim, MethodRow, Result, atomic_write_json, format_table, summarize


def _result(claims: list[Claim], smoke: bool = False) -> Result:
    return Result(
        paper=28,
        key="28-multi-similarity-loss",
        title="MS loss",
        metrics=["R@1"],
        rows=[MethodRow("ms", {"R@1": [0.8, 0.9]}), MethodRow("contrastive", {"R@1": [0.7, 0.7]}, is_baseline=True)],
        paper_headline="65.7 R@1 on CUB",
        our_setting="digits",
        scale_note="small",
        verdict_rule="all claims hold",
        claims=claims,
        verdict=Result.verdict_from_claims(claims),
        seeds=[0, 1],
        smoke=smoke,
    )


def test_summarize() -> None:
    assert summarize([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert summarize([5.0])["std"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_verdict_rule() -> None:
    assert Result.verdict_from_claims([Claim("a", True), Claim("b", True)]) == "holds"
    assert Result.verdict_from_claims([Claim("a", False)]) == "does not hold"
    assert Result.verdict_from_claims([Claim("a", True), Claim("b", False)]) == "inconclusive"
    assert Result.verdict_from_claims([]) == "inconclusive"


def test_result_validation() -> None:
    with pytest.raises(ValueError, match="verdict"):
        Result(1, "k", "t", [], [], "", "", "", "", [], "maybe", [0], False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lacks metrics"):
        Result(1, "k", "t", ["a"], [MethodRow("m", {})], "", "", "", "", [], "holds", [0], False)


def test_write_and_table(tmp_path) -> None:
    res = _result([Claim("ms beats contrastive", True)])
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    res.write(tmp_path, fig)
    assert res.json_path == tmp_path / "28-multi-similarity-loss" / "result.json"
    assert res.png_path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(res.json_path.read_text())
    assert data["verdict"] == "holds"
    assert data["rows"][0]["summary"]["R@1"]["mean"] == pytest.approx(0.85)
    console = Console(record=True, width=120)
    console.print(format_table(res))
    text = console.export_text()
    assert "0.850 ± 0.071" in text and "contrastive (baseline)" in text and "Verdict: holds" in text
    assert not list(tmp_path.rglob("*.tmp"))


def test_smoke_results_do_not_overwrite_full(tmp_path) -> None:
    res = _result([Claim("x", False)], smoke=True)
    fig, _ = plt.subplots()
    res.write(tmp_path, fig)
    assert res.json_path.name == "result.smoke.json" and res.png_path.name == "plot.smoke.png"


def test_atomic_json_rejects_nothing_finite_and_maps_nan(tmp_path) -> None:
    p = atomic_write_json(tmp_path / "a" / "x.json", {"v": float("nan"), "w": [1, 2]})
    assert json.loads(p.read_text()) == {"v": None, "w": [1, 2]}
