"""Paper 45 (Attribute-to-Delete): the reproduction's data, forget sets and speed check, and the
full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p45_attribute_to_delete as p45

CFG = p45.SMOKE


def test_digits_split_is_fixed_and_disjoint():
    x, y = p45.digits_split(CFG.n_train, CFG.n_val)
    assert x.shape == (CFG.n_train + CFG.n_val, 64) and y.shape == (CFG.n_train + CFG.n_val,)
    x2, _ = p45.digits_split(CFG.n_train, CFG.n_val)
    assert torch.equal(x, x2)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_forget_sets():
    sets = p45.forget_sets(CFG, 0)
    _, y = p45.digits_split(CFG.n_train, CFG.n_val)
    assert len(sets["random"]) == CFG.random_forget and len(np.unique(sets["random"])) == CFG.random_forget
    assert sets["random"].max() < CFG.n_train
    assert not np.array_equal(sets["random"], p45.forget_sets(CFG, 1)["random"])  # drawn per seed
    coherent = sets["coherent"]
    assert len(coherent) == CFG.coherent_forget and (y[coherent] == CFG.coherent_class).all()
    assert np.array_equal(coherent, p45.forget_sets(CFG, 1)["coherent"])  # fixed


def test_datamodel_rows_and_costs():
    from paperzoo.unlearning.datamodels import RegressionDatamodel

    dm = RegressionDatamodel()
    dm.beta, dm.bias, dm.lam = torch.arange(24.0, dtype=torch.float64).reshape(4, 3, 2), torch.zeros(3, 2), 1.0
    rows = p45._rows(dm, np.array([1, 3]))
    assert torch.allclose(rows.effect_of_removal([0, 1]).double(), dm.effect_of_removal([1, 3]))
    costs = p45._costs(p45.FULL)
    assert costs["random OM/DMM 30"] == pytest.approx(30 * 80 / 40_000)
    assert costs["random GD 10"] == pytest.approx(10 * 380 / 40_000)


def test_speed_check_matches_the_loop():
    sp = p45.speed_check(CFG)
    assert sp["max_logit_diff"] < 1e-3 and sp["speedup"] > 0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p45.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "45-attribute-to-delete"
    assert result.table.metrics == p45.METRICS and result.table.methods == p45.methods(p45.FULL)
    values = result.table.to_dict()
    assert all(0.0 <= v <= np.log(1e5) + 1e-9 for vals in values.values() for vs in vals.values() for v in vs)
    # do nothing is far from the oracles on the random forget set; OM with the true oracle gets close
    floor = result.table.mean(p45.FLOOR, "random: forget p95")
    assert result.table.mean(p45.NOTHING, "random: forget p95") > floor + 2
    assert result.table.mean(p45.om(30), "random: forget p95") < result.table.mean(p45.NOTHING, "random: forget p95")
