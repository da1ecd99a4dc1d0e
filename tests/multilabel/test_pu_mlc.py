"""Tests of PU-MLC's training pieces (Yuan et al., ICME 2024): the label utilities of the
positive-only and partial-label protocols, VPU's MixUp regulariser (zero when lambda is 1 and the
model reproduces its soft targets; gradients through the soft targets unless detached) and the
``compute_loss`` that plugs both into ``engine.fit``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything
from paperzoo.losses import PUMultiLabelLoss
from paperzoo.multilabel.pu_mlc import (
    PUMixupRegularizer,
    drop_negatives,
    hide_positives,
    partial_label_mask,
    pu_mlc_compute_loss,
)


def test_drop_negatives() -> None:
    t = torch.tensor([[1, 0, -1], [-1, 1, 0]])
    assert torch.equal(drop_negatives(t), torch.tensor([[1, 0, 0], [0, 1, 0]]))
    with pytest.raises(ValueError, match="target"):
        drop_negatives(torch.tensor([[2, 0]]))


def test_partial_label_mask_keeps_entries_with_the_given_probability() -> None:
    y = (torch.rand(400, 50, generator=torch.Generator().manual_seed(0)) < 0.2).long()
    m = partial_label_mask(y, 0.1, seed=3)
    assert torch.equal(m, partial_label_mask(y, 0.1, seed=3))
    kept = m != 0
    assert abs(kept.float().mean().item() - 0.1) < 0.01
    assert torch.equal(m[kept], torch.where(y[kept] == 1, 1, -1))  # kept entries are the true labels
    assert bool((partial_label_mask(y, 1.0, seed=0) == torch.where(y == 1, 1, -1)).all())
    with pytest.raises(ValueError, match="keep_prob"):
        partial_label_mask(y, 1.5, seed=0)


def test_hide_positives() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((2000, 30)) < 0.1).astype(np.int64)
    obs = hide_positives(y, 0.3, np.random.default_rng(1))
    assert obs.dtype == np.int64 and bool((obs <= y).all())  # never invents a positive
    assert abs(obs.sum() / y.sum() - 0.7) < 0.02
    assert np.array_equal(hide_positives(y, 0.0, rng), y) and hide_positives(y, 1.0, rng).sum() == 0
    with pytest.raises(ValueError, match="rate"):
        hide_positives(y, -0.1, rng)
    with pytest.raises(ValueError, match="target"):
        hide_positives(y - 1, 0.1, rng)


class _Stub(nn.Module):
    """Maps every input row to fixed logits: with lambda = 1 the mixed soft targets are the
    permuted first half's sigmoid(logits), which this model reproduces exactly."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]]


def test_mixup_is_zero_when_the_model_reproduces_its_targets() -> None:
    z = torch.full((6, 4), 0.7, dtype=torch.float64)
    y = torch.zeros(6, 4, dtype=torch.long)  # no observed positive: mu = sigmoid(z) everywhere
    reg = PUMixupRegularizer(eps=0.0)
    assert reg(_Stub(z), torch.randn(6, 3, dtype=torch.float64), y, z, lam=1.0).item() == pytest.approx(0.0, abs=1e-12)
    # an observed positive makes mu = 1 where sigmoid(z) < 1: the regulariser is positive
    y[0, 0] = 1
    torch.manual_seed(0)
    assert reg(_Stub(z), torch.randn(6, 3, dtype=torch.float64), y, z, lam=1.0).item() > 0


def test_mixup_matches_the_formula() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 4).double()
    x = torch.randn(5, 3, dtype=torch.float64)  # odd batch: x2 starts at ceil(5 / 2) = 3
    y = (torch.rand(5, 4) < 0.4).long()
    z = model(x)
    torch.manual_seed(1)
    got = PUMixupRegularizer()(model, x, y, z, lam=0.3)
    torch.manual_seed(1)
    perm = torch.randperm(2)
    mu = torch.where(y == 1, torch.ones_like(z), torch.sigmoid(z))
    xm = 0.3 * x[:2][perm] + 0.7 * x[3:]
    mm = 0.3 * mu[:2][perm] + 0.7 * mu[3:]
    want = ((torch.log(mm + 1e-10) - torch.log(torch.sigmoid(model(xm)) + 1e-10)) ** 2).sum(1).mean()
    torch.testing.assert_close(got, want)


def test_detach_targets() -> None:
    model = nn.Linear(3, 4).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.zeros(8, 4, dtype=torch.long)
    grads = []
    for detach in (False, True):
        z = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
        torch.manual_seed(0)
        PUMixupRegularizer(detach_targets=detach)(model, x, y, z, lam=0.5).backward()
        grads.append(z.grad)
    assert grads[0] is not None and grads[0].abs().sum() > 0  # the reference: gradient into the soft targets
    assert grads[1] is None


def test_mixup_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mix_alpha"):
        PUMixupRegularizer(mix_alpha=0.0)
    with pytest.raises(TypeError, match="detach_targets"):
        PUMixupRegularizer(detach_targets=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="logits"):
        PUMixupRegularizer()(nn.Identity(), torch.randn(4, 3), torch.zeros(4, 3), torch.randn(3, 3))


def test_compute_loss_trains_with_fit() -> None:
    seed_everything(0)
    x = torch.randn(64, 8)
    y = (x[:, :3] > 0.5).long()
    model = nn.Linear(8, 3)
    loader = make_loader(TensorDataset(x, y), 32, seed=0)
    compute = pu_mlc_compute_loss(PUMultiLabelLoss(), PUMixupRegularizer())
    hist = fit(model, None, loader, torch.optim.Adam(model.parameters(), 1e-2), TrainConfig(epochs=5, progress=False),
               compute_loss=compute)  # fmt: skip
    assert len(hist.losses) == 10 and all(np.isfinite(hist.losses))
