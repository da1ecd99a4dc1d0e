"""Paper-10 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the official code's largest-root rule, the imbalanced digits subset, the relative
error and the speed check's agreement; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.analysis.neural_collapse import beta_crit, solve_x
from paperzoo.data import load_digits
from paperzoo.reproductions import available
from paperzoo.reproductions import p10_neural_collapse_deep_linear as p10


def test_registered() -> None:
    assert available()[10] == "paperzoo.reproductions.p10_neural_collapse_deep_linear"
    assert p10.PAPER == 10 and p10.DATA == () and p10.BUDGETS == ()


def test_official_largest_root_rule() -> None:
    # below beta_crit both rules agree; between beta_crit and max g the official rule keeps the root
    for M in (1, 2, 3, 6):
        beta = 0.5 * beta_crit(M)
        assert p10.official_largest_root_x(beta, M) == pytest.approx(solve_x(beta, M), rel=1e-12)
    assert p10.official_largest_root_x(0.550083, 2) == pytest.approx(0.898654, abs=1e-6)
    assert solve_x(0.550083, 2) == 0.0
    assert p10.official_largest_root_x(0.7, 2) == 0.0  # above max g = 0.6495: no root
    assert p10.official_largest_root_x(4.0, 1) == 0.0  # M = 1: clipped at 0


def test_digits_subset_takes_the_first_images_of_each_class() -> None:
    n = p10.DIGITS_N
    x, y = p10.digits_subset(n)
    assert x.shape == (sum(n), 64) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == list(n)
    digits = load_digits()
    first_threes = np.asarray(digits.flat())[np.flatnonzero(digits.y == 3)[: n[3]]]
    np.testing.assert_array_equal(x[y == 3].numpy(), first_threes)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_relative_error_is_relative_to_the_largest_entry() -> None:
    assert p10._rel_err(np.array([2.0, 1e-3]), np.array([2.0, 0.0])) == pytest.approx(5e-4)
    assert p10._rel_err(np.zeros(2), np.zeros(2)) == 0.0


def test_speed_check_agrees_with_the_reference() -> None:
    (row,) = p10.speed_check([(300, 16, 5)], reps=1)
    assert row["max_rel_diff"] < 1e-9 and row["ours_s"] > 0 and row["reference_s"] > 0


def test_configs_keep_the_papers_values() -> None:
    full = p10.FULL
    assert full.ufm["imb3"].n == (200, 100, 50, 50) and full.ufm["imb3"].lam == 5e-4 and full.ufm["imb3"].d == 64
    assert [full.ufm[k].M for k in ("imb1", "imb3", "imb6")] == [1, 3, 6]
    assert full.ufm["bias3"].bias and full.ufm["ce2"].loss == "ce"
    assert set(p10.SMOKE.ufm) == set(full.ufm) and set(p10.SMOKE.net) == set(full.net)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p10.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "10-neural-collapse-deep-linear"
    assert len(result.table.metrics) == 7 and len(result.claims) == 13
    for key in ("speed", "imb3", "collapse2", "ce3", "mlp1", "mlp3"):
        assert key in result.extra
    # the imbalanced DL-UFM runs reach the closed-form minimum on every seed
    for key in ("imb1", "imb3", "imb6"):
        assert max(result.extra[key]["max_rel_err"]) < 1e-3
