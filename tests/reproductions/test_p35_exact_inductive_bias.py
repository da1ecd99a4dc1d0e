"""Paper-35 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the two tasks, the slope the dimension claims use, the units' content and
determinism; and the full (slow) run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from paperzoo.reproductions import available
from paperzoo.reproductions import p35_exact_inductive_bias as p35


def test_registered() -> None:
    assert available()[35] == "paperzoo.reproductions.p35_exact_inductive_bias"
    assert p35.PAPER == 35 and p35.DATA == () and p35.BUDGETS == ()
    assert p35.EPS_CLAIM in p35.FULL.digits_eps and p35.EPS_CLAIM in p35.SMOKE.digits_eps


def test_sweep_task_is_seeded_and_its_direction_has_norm_two() -> None:
    x, y, xt, yt = p35.sweep_task(8, 100, 50, seed=0)
    assert x.shape == (100, 8) and y.shape == (100, 1) and xt.shape == (50, 8) and yt.shape == (50, 1)
    assert np.abs(y).max() <= 1.0
    again = p35.sweep_task(8, 100, 50, seed=0)
    np.testing.assert_array_equal(again[0], x)
    assert not np.array_equal(p35.sweep_task(8, 100, 50, seed=1)[0], x)
    # y = sin(a^T x) with |a| = 2, so a^T x ~ N(0, 4) and E[y^2] = (1 - exp(-8)) / 2 at every D
    for dim in (1, 16):
        big_y = p35.sweep_task(dim, 20_000, 1, seed=3)[1]
        assert np.mean(big_y**2) == pytest.approx((1 - math.exp(-8)) / 2, abs=0.01)  # |a| = 1 would give 0.432


def test_digits_task_split() -> None:
    x, y, xt, yt = p35.digits_task(200, 300, seed=0)
    assert x.shape == (200, 64) and xt.shape == (300, 64) and y.shape == (200, 10)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(y.sum(1), 1.0)
    rows = {r.tobytes() for r in x}
    assert sum(r.tobytes() in rows for r in xt) < 5  # disjoint split (up to duplicate images)
    assert not np.array_equal(p35.digits_task(200, 300, seed=1)[0], x)
    assert 2.0 < p35.median_distance(x) < 4.5


def test_log2_slope() -> None:
    assert p35.log2_slope([1, 2, 4, 8], [3.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert p35.log2_slope([1, 4, 16], [0.0, 0.0, 0.0]) == pytest.approx(0.0)


def test_units_are_deterministic_and_complete() -> None:
    cfg = p35.SMOKE
    a = p35.run_unit(("digits", 0, 0, cfg))
    b = p35.digits_unit(0, cfg)
    assert a["I"] == b["I"] and set(a["I"]) == set(p35.METHODS)
    n_eps = len(cfg.digits_eps) + len(cfg.eps_grid)
    assert all(len(v) == n_eps and all(math.isfinite(x) and x >= 0 for x in v) for v in a["I"].values())
    sweep = p35.run_unit(("sweep", 4, 0, cfg))
    assert set(sweep["I"]) == set(p35.METHODS) and all(len(v) == 1 for v in sweep["I"].values())
    with pytest.raises(ValueError, match="unknown unit"):
        p35.run_unit(("nope", 0, 0, cfg))


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p35.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "35-exact-inductive-bias"
    assert len(result.claims) == 5 and result.table.methods == list(p35.METHODS)
    for key in ("digits_curves", "sweep_slopes", "fit_over_exact_digits", "speed"):
        assert key in result.extra
    # the toolkit's references agree with the fast paths they are timed against
    assert result.extra["speed"]["mlp"]["max_rel_diff"] < 1e-3
    assert result.extra["speed"]["fit"]["ours_loglik"] >= result.extra["speed"]["fit"]["ref_loglik"] - 1e-6
