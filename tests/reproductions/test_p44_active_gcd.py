"""Paper-44 (Active GCD) checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs
every reproduction): the units reuse the SimGCD reproduction's settings at the paper's labelled
fraction, the budgets fit the pools, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p00_simgcd_baseline as p00
from paperzoo.reproductions import p44_active_gcd as p44


def test_registered_and_units() -> None:
    assert available()[44] == "paperzoo.reproductions.p44_active_gcd"
    assert p44.PAPER == 44 and set(p44.DATA) <= set(dataset_status())
    units = p44._units((0, 1, 2), p44.FULL)
    assert len(units) == 3 * 2
    for name, _, cfg, ac in units:
        assert cfg == p00.FULL[name]  # the SimGCD reproduction's epochs and sizes
        assert ac.n_rounds >= 2 and ac.n_query >= 10


def test_digits_budget_fits_the_pool_and_quota() -> None:
    from dataclasses import replace

    cfg = replace(p00.FULL["digits"], labelled_fraction=p44.LABELLED_FRACTION)
    prob = p00.make_problem(cfg, seed=0)
    ac = p44.FULL["digits"]
    assert ac.n_rounds * ac.n_query < prob.unlabelled_idx.size
    assert ac.n_query % 5 == 0  # an equal quota from each of the 5 new clusters
    assert int((prob.targets >= 0).sum()) == int(0.2 * (prob.y < 5).sum())


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p44.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p44.AGCD, "digits All") > 0.0
