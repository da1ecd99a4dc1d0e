"""Tests of the Metrix input / feature mixup procedures (paper 32): with an identity (or affine) network
they must equal the embedding variant of :class:`paperzoo.losses.MetrixLoss`, since mixing commutes with
affine maps; ``w = 0`` gives the clean loss; the hardest-negative choice of the input variant; a
training step through :func:`paperzoo.engine.fit`; errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.losses import MetrixContrastiveLoss, MetrixMultiSimilarityLoss
from paperzoo.training.metrix import FeatureMixupHook, MetrixFeatureMixup, MetrixInputMixup

F64 = torch.float64


def batch(classes: int = 4, per_class: int = 3, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)[torch.randperm(classes * per_class, generator=g)]
    return torch.randn(classes * per_class, dim, generator=g, dtype=F64), labels


@pytest.mark.parametrize("cls", [MetrixContrastiveLoss, MetrixMultiSimilarityLoss])
def test_input_mixup_of_identity_equals_embed_variant(cls):
    x, y = batch()
    loss = cls(lam=0.3)
    got = MetrixInputMixup(loss, top_k=None)(nn.Identity(), (x, y))
    torch.testing.assert_close(got, loss(x, y))


@pytest.mark.parametrize("cls", [MetrixContrastiveLoss, MetrixMultiSimilarityLoss])
def test_feature_mixup_before_affine_layer_equals_embed_variant(cls):
    torch.manual_seed(0)
    x, y = batch()
    feat, lin = nn.Identity(), nn.Linear(5, 4).double()
    model = nn.Sequential(feat, lin)
    loss = cls(lam=0.6)
    got = MetrixFeatureMixup(loss, feat)(model, (x, y))
    torch.testing.assert_close(got, loss(model(x), y))


def test_w_zero_gives_clean_loss():
    x, y = batch()
    loss = MetrixContrastiveLoss(w=0.0)
    clean = loss.loss(x, y)
    assert torch.equal(MetrixInputMixup(loss)(nn.Identity(), (x, y)), clean)
    assert torch.equal(MetrixFeatureMixup(loss, nn.Identity())(nn.Identity(), (x, y)), clean)


def test_input_mixup_uses_hardest_negative():
    x, y = batch(classes=3, per_class=2, dim=3, seed=1)
    seen = []

    class Spy(nn.Module):
        def forward(self, inp):
            seen.append(inp.clone())
            return inp

    loss = MetrixContrastiveLoss(lam=1.0 - 1e-9, w=1.0)  # mixed input ~ the positive
    MetrixInputMixup(loss, top_k=1)(Spy(), (x, y))
    assert len(seen) == 2 and seen[1].shape[0] == 6  # one mixed input per (anchor, positive)
    MetrixInputMixup(MetrixContrastiveLoss(lam=0.0, w=1.0), top_k=1)(Spy(), (x, y))
    e = torch.nn.functional.normalize(x, dim=1)
    d = torch.cdist(e, e).masked_fill(y[:, None] == y[None, :], float("inf"))
    torch.testing.assert_close(seen[-1], x[d.argmin(1)])  # lam = 0: each anchor's hardest negative


def test_hook_is_inactive_outside_mixing_and_removable():
    feat = nn.Identity()
    hook = FeatureMixupHook(feat)
    x = torch.randn(4, 2)
    assert feat(x).shape == (4, 2)
    with hook.mixing(torch.tensor([0]), torch.tensor([1]), 0.5):
        out = feat(x)
    torch.testing.assert_close(out[4], 0.5 * x[0] + 0.5 * x[1])
    assert feat(x).shape == (4, 2)
    hook.remove()


def test_trains_with_fit():
    torch.manual_seed(0)
    x = torch.randn(40, 6)
    y = torch.arange(40) // 5
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    loader = make_loader(TensorDataset(x, y), 20)
    for proc in (MetrixInputMixup(MetrixContrastiveLoss()), MetrixFeatureMixup(MetrixMultiSimilarityLoss(), model[1])):
        hist = fit(
            model,
            None,
            loader,
            torch.optim.Adam(model.parameters(), 1e-2),
            TrainConfig(epochs=2, progress=False),
            compute_loss=proc,
        )
        assert len(hist.losses) == 4 and all(torch.isfinite(torch.tensor(hist.losses)))


def test_errors():
    with pytest.raises(TypeError, match="MetrixLoss"):
        MetrixInputMixup(nn.MSELoss())
    with pytest.raises(TypeError, match="MetrixLoss"):
        MetrixFeatureMixup(nn.MSELoss(), nn.Identity())
    with pytest.raises(ValueError, match="top_k must be"):
        MetrixInputMixup(MetrixContrastiveLoss(), top_k=0)
    with pytest.raises(ValueError, match="batch"):
        MetrixInputMixup(MetrixContrastiveLoss())(nn.Identity(), torch.randn(3, 2))
    # a hook whose rows do not reach the output one-to-one
    x, y = batch()
    model = nn.Sequential(nn.Identity(), nn.Flatten(0))
    with pytest.raises(ValueError, match="one-to-one"):
        MetrixFeatureMixup(MetrixContrastiveLoss(), model[0])(
            lambda inp: model(inp)[: inp.shape[0]].reshape(-1, 1), (x, y)
        )
