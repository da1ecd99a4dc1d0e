"""Paper-17 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the data sets each seed draws, the units' bookkeeping and the exact Table 1 row;
and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.analysis.large_step_gd import hard_margin
from paperzoo.reproductions import available
from paperzoo.reproductions import p17_logistic_regression_large_step_sizes as p17


def test_registered() -> None:
    assert available()[17] == "paperzoo.reproductions.p17_logistic_regression_large_step_sizes"
    assert p17.PAPER == 17 and p17.DATA == () and p17.BUDGETS == ()
    assert len(p17.METHODS) == 3 + 2 * len(p17.STEPS) and p17.BASELINE in p17.METHODS


@pytest.mark.parametrize("name", p17.DATASETS)
def test_data_sets_are_separable_seeded_and_sized(name: str) -> None:
    cfg = p17.SMOKE
    A, y = p17.make_dataset(name, cfg, 0)
    again, _ = p17.make_dataset(name, cfg, 0)
    other, _ = p17.make_dataset(name, cfg, 1)
    assert torch.equal(A, again) and not torch.equal(A, other)  # the seed draws the data set
    assert A.dtype == torch.float64 and set(y.tolist()) == {-1, 1}
    assert hard_margin(A, y).margin > 0  # separable through the origin
    expected_n = {
        "1v8": 2 * cfg.per_class,
        "5v9": 2 * cfg.per_class,
        "1v8 imb.": sum(cfg.imbalance),
        "5v9 imb.": sum(cfg.imbalance),
        "Gaussian": cfg.gauss[0],
        "worst case": cfg.worst_n,
    }[name]
    assert A.shape[0] == expected_n
    if name.endswith("imb."):
        assert int((y == 1).sum()) == cfg.imbalance[0] and int((y == -1).sum()) == cfg.imbalance[1]
    with pytest.raises(ValueError, match="unknown data set"):
        p17.make_dataset("cifar", cfg, 0)


def test_data_unit_bookkeeping() -> None:
    out = p17.data_unit(("5v9", 0, p17.SMOKE))
    assert set(out["iters"]) == set(p17.METHODS)
    assert all(1 <= v <= p17.SMOKE.max_iter for v in out["iters"].values())
    assert out["bound_violations"] == [] and out["margin"] <= out["margin_upper"] + 1e-12
    assert len(out["max_loss"]) == len(p17.STEPS) and out["max_loss"][0] == pytest.approx(0.6931471805599453)
    for curve in out["trajectories"]["loss"]:  # each ends at its separation
        assert curve["t"][-1] == curve["end"] == out["iters"][p17.lr_name(curve["gamma"])]


def test_exact_worst_case_row_and_nonseparable_unit() -> None:
    row = p17.exact_worst_case_unit(p17.SMOKE)[0]
    assert row["n"] == 10 and row[p17.BP] == 4 and row[p17.NBP] == 2
    assert [row[p17.lr_name(g)] for g in p17.TABLE1_STEPS] == [366, 37, 4, 4]
    assert [row[p17.nlr_name(g)] for g in p17.TABLE1_STEPS] == [60, 7, 2, 2]
    ns = p17.nonseparable_unit((0, p17.SMOKE))
    assert ns["margin_upper"] < 1e-6  # certified not separable
    assert len(ns["final_loss"]) == len(p17.STEPS) and ns["loss_increases"][0] == 0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p17.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert (
        result.json_path is not None and result.json_path.parent == tmp_path / "17-logistic-regression-large-step-sizes"
    )
    assert len(result.table.metrics) == len(p17.DATASETS) and len(result.claims) == 11
    # the paper's Table 1 worst-case row, exactly (n = 1000)
    row = result.extra["exact_worst_case"][-1]
    assert row["n"] == 1000 and row[p17.BP] == 301 and row[p17.NBP] == 2
    assert [row[p17.lr_name(g)] for g in p17.TABLE1_STEPS] == [73133, 7313, 729, 308]
    assert [row[p17.nlr_name(g)] for g in p17.TABLE1_STEPS] == [157, 16, 2, 2]
    assert result.extra["bound_violations"] == [] and result.extra["not_separated_within_cap"] == []
    assert result.claims[0].outcome == "holds"  # the reduction (Theorem 3.2)
