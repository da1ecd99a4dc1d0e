"""Paper-specific checks of the ModHiFi reproduction (its calibration data, its budgets, its
control) and the full (slow) run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from paperzoo.pruning.modhifi import ModHiFiPruner
from paperzoo.reproductions import p16_modhifi


def test_split_is_stratified_and_fixed() -> None:
    x_tr, y_tr, x_te, y_te = p16_modhifi.digits_split()
    assert x_tr.shape[1:] == (1, 8, 8) and len(y_tr) + len(y_te) == 1797
    assert abs(len(y_te) / 1797 - 0.3) < 0.01
    assert torch.bincount(y_te).min() >= 50
    assert float(x_tr.min()) >= 0.0 and float(x_tr.max()) <= 1.0


def test_synthetic_calibration_is_balanced_unlabelled_and_seeded() -> None:
    x_tr, y_tr, _, _ = p16_modhifi.digits_split()
    a = p16_modhifi.synthetic_calibration(x_tr, y_tr, 5, seed=1)
    assert isinstance(a, torch.Tensor) and a.shape == (50, 1, 8, 8)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, p16_modhifi.synthetic_calibration(x_tr, y_tr, 5, seed=1))


@pytest.mark.parametrize("keep", [16, 8, 4])
def test_sparsity_for_keep_lands_exactly_on_the_kept_channels(keep: int) -> None:
    torch.manual_seed(0)
    model = p16_modhifi.SmallCNN().eval()
    sparsity = p16_modhifi.sparsity_for_keep(model, keep)
    out = ModHiFiPruner(ignored_layers=("conv2",), bn_recalibrate=False).prune(model, sparsity, torch.rand(16, 1, 8, 8))
    assert out.conv1.out_channels == out.conv2.in_channels == keep and out.conv2.out_channels == 64


def test_random_zeroing_control_zeroes_k_per_output() -> None:
    torch.manual_seed(1)
    model = p16_modhifi._mlp()
    p16_modhifi._RandomZero(("net.2",), 0.1)(model, seed=3)
    zeros = (model.net[2].weight == 0).sum(1)
    assert bool((zeros == math.ceil(0.1 * 256)).all())


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p16_modhifi.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "16-modhifi"
    assert result.table.methods == [*p16_modhifi.PRUNE_METHODS, *p16_modhifi.UNLEARN_METHODS]
    assert len(result.claims) == 9
    values = result.table.to_dict()
    for m in p16_modhifi.PRUNE_METHODS:
        assert all(0.0 <= v <= 1.0 for v in values[m]["acc keep 4/32"])
    # the reproduction's firm findings: compensation helps, and ModHiFi-U forgets the class
    assert result.claims[2].outcome == "holds" and result.claims[4].outcome == "holds"
