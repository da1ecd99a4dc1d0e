"""Paper-09 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the oracle (Bayes) error, the simulation's draws, the settings' units and the
simulation claim's handling of an m* beyond the grid; and the full (slow) run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paperzoo.data import dataset_status, make_dis_gen_gaussian
from paperzoo.reproductions import available
from paperzoo.reproductions import p09_discriminative_vs_generative as p09


def test_registered() -> None:
    assert available()[9] == "paperzoo.reproductions.p09_discriminative_vs_generative"
    assert p09.PAPER == 9
    assert set(p09.DATA) <= set(dataset_status())


def test_oracle_error_is_near_zero_for_separated_classes() -> None:
    # n = 100, K = 2, easy: Mahalanobis distance between the means is ~14, Bayes error ~ 0
    x, y = make_dis_gen_gaussian(100, 2, 4000, seed=3)
    assert p09.oracle_error(100, 2, x, y) <= 1e-3
    # n = 2: heavy overlap, the oracle still beats chance but is far from perfect
    x2, y2 = make_dis_gen_gaussian(2, 2, 4000, seed=3)
    assert 0.02 < p09.oracle_error(2, 2, x2, y2) < 0.3


def test_settings_grids() -> None:
    for cfg in (p09.FULL, p09.SMOKE):
        assert {cfg.digits_small_m, cfg.digits_large_m} <= set(cfg.digits_sizes)
        for K in cfg.sim_ks:
            assert min(p09.simulation_sizes(cfg, K)) >= 2 * K
    assert p09.simulation_sizes(p09.FULL, 2)[-1] == 1000 and p09.FULL.fm_sizes[-1] == 2000


def test_seeds_vary_the_draws_and_units_are_deterministic() -> None:
    cfg = p09.SMOKE
    a = p09.curve_unit(("sim", 2, 0, cfg))
    b = p09.simulation_curves(cfg, 2, seed=0)
    c = p09.curve_unit(("sim", 2, 1, cfg))
    for clf in ("NB", "LR"):
        np.testing.assert_array_equal(a["errors"][clf], b["errors"][clf])
    assert not np.array_equal(a["errors"]["LR"], c["errors"]["LR"])
    # the simulation's clear-cut part holds even at smoke scale: NB is near-perfect with few samples
    assert p09.m_star(a, "NB") < p09.m_star(a, "LR")


def _curve(nb: list[float], lr: list[float], bayes: float = 0.0) -> dict[str, Any]:
    return {"sizes": np.array([10, 100, 1000]), "mean": {"NB": np.array(nb), "LR": np.array(lr)}, "bayes": bayes}


def test_simulation_claim_handles_m_star_beyond_the_grid() -> None:
    cfg, K = p09.FULL, 2
    reached = _curve([0.0, 0.0, 0.0], [0.5, 0.0, 0.0])  # m*: NB 10, LR 100
    lr_never = _curve([0.0, 0.0, 0.0], [0.5, 0.5, 0.5])  # LR beyond 1000: 1000 stands in (lower bound)
    nb_never = _curve([0.5, 0.5, 0.5], [0.5, 0.0, 0.0])  # NB beyond 1000: the seed counts against
    claim = p09._simulation_claim(cfg, [reached, lr_never, nb_never], [0, 1, 2], K)
    assert claim.values == pytest.approx((math.log(10), math.log(100), math.log(100 / 1000)))
    assert claim.direction == ">" and claim.threshold == pytest.approx(math.log(5))
    assert "LR never got there" in claim.statement and "seed(s) [1]" in claim.statement
    assert "NB never got there" in claim.statement and "seed(s) [2]" in claim.statement
    clean = p09._simulation_claim(cfg, [reached, reached], [0, 1], K)
    assert "never" not in clean.statement and clean.outcome == "holds"
    assert p09._simulation_claim(cfg, [nb_never, nb_never], [0, 1], K).outcome == "fails"


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p09.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "09-discriminative-vs-generative"
    assert len(result.table.metrics) == 6 and len(result.claims) == 5
    for key in ("simulation", "fmnist_features", "digits"):
        assert key in result.extra
    # NB reaches Bayes + 0.01 within the grid on every seed and K
    assert not [s for s in result.extra["m_star_not_reached"] if s.startswith("NB")]
