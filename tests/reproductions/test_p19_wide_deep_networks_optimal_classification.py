"""Paper-19 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the task data, the activations' predicted limit rules, the units' determinism,
the speed check's agreement with the reference; and the full (slow) run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from paperzoo.analysis.wide_deep_kernels import alpha_exponent, regime
from paperzoo.reproductions import available
from paperzoo.reproductions import p19_wide_deep_networks_optimal_classification as p19


def test_registered() -> None:
    assert available()[19] == "paperzoo.reproductions.p19_wide_deep_networks_optimal_classification"
    assert p19.PAPER == 19 and p19.DATA == () and p19.BUDGETS == ()


def test_task_data_is_the_official_dirichlet_setting_and_seeded() -> None:
    data = p19.task_data(3, 0, 200, 50)
    assert data["x"].shape == (200, 3) and data["xt"].shape == (50, 3) and data["sxt"].shape == (50, 3)
    assert int((data["y"] > 0).sum()) == 80 and int((data["yt"] > 0).sum()) == 20  # prior 0.4, exact counts
    np.testing.assert_allclose(np.linalg.norm(data["x"], axis=1), 1.0)
    again, other = p19.task_data(3, 0, 200, 50), p19.task_data(3, 1, 200, 50)
    np.testing.assert_array_equal(again["x"], data["x"])
    assert not np.array_equal(other["x"], data["x"])
    assert not np.array_equal(data["x"][:50], data["xt"])  # train and test are independent draws


@pytest.mark.parametrize("d", p19.DIMS)
def test_each_deep_method_is_in_the_regime_the_claims_assume(d: int) -> None:
    acts = p19.activations(d)
    assert alpha_exponent(acts[p19.OPT][0]) == pytest.approx(d - 1)  # the consistent activation
    assert acts[p19.OPT_NTK][1] == "ntk" and acts[p19.OPT_NTK][0] == acts[p19.OPT][0]
    assert alpha_exponent(acts[p19.P5D][0]) == pytest.approx(4.0)
    assert regime(acts[p19.NONZERO][0]).kind == "majority"
    assert regime(acts[p19.ERF][0]).kind == "singular"
    assert regime("hermite_2").kind == "1nn"


def test_units_are_deterministic_and_sized() -> None:
    cfg = p19.SMOKE
    a = p19.run_unit(("task", 3, 0, cfg))
    b = p19.task_unit(3, 0, cfg)
    assert a["values"] == b["values"] and a["limits"] == b["limits"]
    assert set(a["values"]) == set(p19.METHODS) and set(a["limits"]) == set(p19.DEEP)
    assert list(a["sweep"]) == [str(n) for n in cfg.sweep_n]
    relu = p19.relu_unit(0, cfg)
    assert len(relu["majority"]) == len(cfg.relu_depths) == len(relu["one_nn"])
    width = p19.width_unit(0, cfg)
    assert set(width["widths"]) == {str(k) for k in cfg.widths}
    assert all(len(rows) == len(cfg.width_depths) for rows in width["widths"].values())
    with pytest.raises(ValueError, match="unknown unit"):
        p19.run_unit(("nope", 0, 0, cfg))


def test_speed_check_compares_equal_kernels() -> None:
    rows = p19.speed_check(p19.SMOKE)
    assert [r["kernel"] for r in rows][0] == "NNGP 3d_opt" and len(rows) == 6
    for r in rows:
        assert r["max_rel_diff"] < 1e-6 and r["ours_s"] > 0 and math.isfinite(r["speedup"])


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p19.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None
    assert result.json_path.parent == tmp_path / "19-wide-deep-networks-optimal-classification"
    assert len(result.claims) == 10 and result.table.methods == list(p19.METHODS)
    for key in ("limits", "sweep", "relu", "width", "speed", "alphas"):
        assert key in result.extra
    # the singular NNGPs follow their exact infinite-depth rule g
    for d in ("2", "3"):
        assert result.extra["limits"][d][p19.OPT]["g_agreement_mean"] > 0.99
