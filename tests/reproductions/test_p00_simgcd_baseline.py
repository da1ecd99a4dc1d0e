"""Paper-00 (SimGCD baseline) checks (the generic suite, tests/reproductions/test_suite.py,
smoke-runs every reproduction): the GCD problems of both settings, the model, and the full
(slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p00_simgcd_baseline as p00


def test_registered() -> None:
    assert available()[0] == "paperzoo.reproductions.p00_simgcd_baseline"
    assert p00.PAPER == 0 and set(p00.DATA) <= set(dataset_status())
    assert len(p00._units((0, 1, 2), p00.FULL)) == 3 * 2 * 3


def test_digits_problem_is_the_reference_split() -> None:
    cfg = p00.FULL["digits"]
    prob = p00.make_problem(cfg, seed=1)
    assert prob.x.shape == (1797, 1, 8, 8) and prob.n_classes == 10 and prob.images
    lab = (prob.targets >= 0).numpy()
    assert lab.sum() == int(0.5 * (prob.y < 5).sum())  # one draw over all old-class images
    assert set(prob.y[lab]) == set(range(5)) and (prob.targets[lab].numpy() == prob.y[lab]).all()
    np.testing.assert_array_equal(prob.unlabelled_idx, np.flatnonzero(~lab))
    np.testing.assert_array_equal(prob.old_mask, prob.y[prob.unlabelled_idx] < 5)
    other = p00.make_problem(cfg, seed=2)
    assert not torch.equal(other.targets, prob.targets)
    model = p00.build_model(cfg, prob)
    z, logits = model(prob.x[:4])
    assert z.shape == (4, cfg.bottleneck) and logits.shape == (4, 10) and logits.abs().max() <= 1 + 1e-6


def test_union30_smoke_problem_has_20_old_classes() -> None:
    if not all(dataset_status()[n] for n in p00.DATA):
        pytest.skip("the union30 image sets are not installed")
    prob = p00.make_problem(p00.SMOKE["union30"], seed=0)
    assert prob.x.shape == (300, 1280) and not prob.images
    assert int(prob.targets.max()) < 20 and prob.old_mask.tolist() == (prob.y[prob.unlabelled_idx] < 20).tolist()
    assert abs(float(prob.x.mean())) < 0.1  # standardised


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p00.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p00.SIMGCD, "union30 All") > 0.0
    assert 0.0 < result.extra["overhead"]["ratio"]
