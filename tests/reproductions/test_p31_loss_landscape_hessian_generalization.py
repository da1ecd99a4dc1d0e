"""Paper-31 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the fixed digits split, the shifted evaluation sets, the label noise, the BatchNorm
CNN, the indicators of one model; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.analysis.hessian import HessianAnalyzer
from paperzoo.models import MLP
from paperzoo.reproductions import available
from paperzoo.reproductions import p31_loss_landscape_hessian_generalization as p31


def test_registered() -> None:
    assert available()[31] == "paperzoo.reproductions.p31_loss_landscape_hessian_generalization"
    assert p31.PAPER == 31 and p31.DATA == () and p31.BUDGETS == ()


def test_split_is_fixed_and_disjoint() -> None:
    xtr, ytr, xte, yte = p31.digits_split(p31.FULL)
    assert xtr.shape == (1000, 1, 8, 8) and xte.shape == (797, 1, 8, 8)
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) <= 1.0  # pixels / 16
    again = p31.digits_split(p31.FULL)
    assert torch.equal(again[0], xtr) and torch.equal(again[3], yte)
    flat = torch.cat([xtr, xte]).reshape(1797, -1)
    assert torch.unique(flat, dim=0).shape[0] >= 1790  # (the digits set has a few duplicate images)
    small = p31.digits_split(p31.SMOKE)
    assert torch.equal(small[0], xtr[:300]) and torch.equal(small[2], xte[-200:])


def test_shifted_sets() -> None:
    _, _, xte, _ = p31.digits_split(p31.SMOKE)
    sets = p31.shifted_sets(xte, 0)
    assert tuple(sets) == p31.SHIFTS
    assert torch.equal(sets["clean"], xte)
    noise = sets["noise 0.6"] - xte
    assert float(noise.std()) == pytest.approx(0.6, rel=0.05)
    zeroed = (sets["40% zeroed"] == 0) & (xte != 0)
    assert float(zeroed.sum() / (xte != 0).sum()) == pytest.approx(0.4, abs=0.03)
    assert torch.equal(sets["roll 2 px"][..., 2:], xte[..., :-2])
    assert torch.equal(p31.shifted_sets(xte, 0)["noise 0.3"], sets["noise 0.3"])
    assert not torch.equal(p31.shifted_sets(xte, 1)["noise 0.3"], sets["noise 0.3"])


def test_label_noise() -> None:
    y = torch.arange(10).repeat(100)
    noisy = p31.label_noise(y, 0.4, 0)
    changed = float((noisy != y).double().mean())
    assert changed == pytest.approx(0.4 * 0.9, abs=0.04)  # a tenth of the redraws hit the true class
    assert torch.equal(noisy, p31.label_noise(y, 0.4, 0))


def test_bn_cnn_and_indicators() -> None:
    net = p31.BNConvNet(4)
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    xtr, ytr, _, _ = p31.digits_split(p31.SMOKE)
    torch.manual_seed(0)
    model = MLP(64, (8,), 10).eval()
    x, y = xtr[:50], ytr[:50]
    ind = p31.indicators(model, x, y, p31.SMOKE, 0)
    assert set(ind) >= {"accuracy", "loss", "re", "kh", "lambda_max", "trace", "nodes", "weights"}
    assert ind == p31.indicators(model, x, y, p31.SMOKE, 0)  # seeded
    ha = HessianAnalyzer(model, torch.nn.CrossEntropyLoss(), (x, y))
    assert (ind["re"], ind["kh"]) == pytest.approx(ha.criteria(0.5, m=p31.SMOKE.slq_m, seed=0))
    assert p31._spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert p31._spearman([1.0, 1.0, 1.0], [3.0, 2.0, 1.0]) == 0.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p31.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert (
        result.json_path is not None
        and result.json_path.parent == tmp_path / "31-loss-landscape-hessian-generalization"
    )
    assert result.table.methods == list(p31.METHODS) and len(result.claims) == 6
    outcomes = [c.outcome for c in result.claims]
    # the recorded outcomes: re tracks the data shift, the typical spectrum holds for both networks
    assert outcomes[1] == "holds" and outcomes[4:] == ["holds", "holds"], [c.summary() for c in result.claims]
    assert all(v < 0 for v in result.table.values(p31.RE, p31.M_SHIFT))
    speed = result.extra["speed"]
    assert speed["rel_err_lanczos"] < 1e-3 and speed["speedup_lanczos"] > 1.0
