"""Tests of the OutfitTransformer losses (paper 02): set-wise outfit ranking loss and binary focal loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses.outfit_ranking import (
    FocalBinaryLoss,
    SetWiseOutfitRankingLoss,
    focal_binary_loss,
    set_wise_ranking_loss,
)

D = torch.float64
E_T = torch.tensor([[0.2, -0.1, 0.5, 0.3]], dtype=D)
E_P = torch.tensor([[0.1, 0.0, 0.6, 0.2]], dtype=D)
NEG = torch.tensor([[[0.3, -0.2, 0.4, 0.5], [1.0, 0.5, -0.2, 0.0], [-0.4, 0.3, 0.9, 0.1]]], dtype=D)


@pytest.mark.parametrize(
    ("m", "total", "l_all", "grad"),
    [
        (0.5, 0.580566492, 0.145141623, (1.17062, -1.17062, -1.17062, 1.67457)),
        (2.0, 3.34539694, 1.40997207, (1.4804, -1.18771, -1.53245, 1.84978)),
    ],
)
def test_ranking_loss_golden_values(m: float, total: float, l_all: float, grad: tuple[float, ...]) -> None:
    et = E_T.clone().requires_grad_(True)
    loss = set_wise_ranking_loss(et, E_P, NEG, margin=m)
    (g,) = torch.autograd.grad(loss, et)
    assert loss.item() == pytest.approx(total, abs=1e-8)
    assert set_wise_ranking_loss(E_T, E_P, NEG, m, use_hard=False).item() == pytest.approx(l_all, abs=1e-8)
    assert torch.allclose(g[0], torch.tensor(grad, dtype=D), atol=1e-4)


def _naive(et: torch.Tensor, ep: torch.Tensor, neg: torch.Tensor, m: float) -> torch.Tensor:
    out = []
    for b in range(et.shape[0]):
        dp = torch.dist(et[b], ep[b])
        hinges = torch.stack([F.relu(m + dp - torch.dist(et[b], n)) for n in neg[b]])
        out.append(hinges.mean() + hinges.max())
    return torch.stack(out)


def test_ranking_loss_matches_naive_reference_and_properties() -> None:
    g = torch.Generator().manual_seed(0)
    et, ep, neg = (
        torch.randn(6, 5, generator=g, dtype=D),
        torch.randn(6, 5, generator=g, dtype=D),
        torch.randn(6, 7, 5, generator=g, dtype=D),
    )
    per = set_wise_ranking_loss(et, ep, neg, 0.7, reduction="none")
    assert torch.allclose(per, _naive(et, ep, neg, 0.7))
    l_all = set_wise_ranking_loss(et, ep, neg, 0.7, use_hard=False, reduction="none")
    l_hard = set_wise_ranking_loss(et, ep, neg, 0.7, use_all=False, reduction="none")
    assert torch.all(l_hard >= l_all - 1e-12)
    # |N| = 1: twice the triplet hinge
    one = set_wise_ranking_loss(et, ep, neg[:, :1], 0.7, reduction="none")
    trip = F.triplet_margin_loss(et, ep, neg[:, 0], margin=0.7, eps=0.0, reduction="none")
    assert torch.allclose(one, 2 * trip, atol=1e-6)
    # zero iff every negative is farther by >= m
    far = ep.unsqueeze(1) + 10.0 * torch.randn(6, 7, 5, generator=g, dtype=D).sign()
    assert set_wise_ranking_loss(ep, ep + 1e-3, far, 0.5).item() == 0.0
    assert SetWiseOutfitRankingLoss(0.7)(et, ep, neg).item() == pytest.approx(per.mean().item())


def test_ranking_loss_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(s, generator=g, dtype=D, requires_grad=True) for s in ((3, 4), (3, 4), (3, 5, 4))]
    assert torch.autograd.gradcheck(lambda a, p, n: set_wise_ranking_loss(a, p, n, 1.0), args)


def test_ranking_loss_bad_input() -> None:
    with pytest.raises(ValueError, match="margin"):
        SetWiseOutfitRankingLoss(margin=-1.0)
    with pytest.raises(ValueError, match="use_all"):
        SetWiseOutfitRankingLoss(use_all=False, use_hard=False)
    with pytest.raises(ValueError, match="negatives"):
        set_wise_ranking_loss(E_T, E_P, NEG[:, :0])
    with pytest.raises(ValueError, match="negatives"):
        set_wise_ranking_loss(E_T, E_P, NEG[0])
    with pytest.raises(ValueError, match="positive"):
        set_wise_ranking_loss(E_T, E_P[:, :3], NEG)
    with pytest.raises(ValueError, match="anchor"):
        set_wise_ranking_loss(E_T[:0], E_P[:0], NEG[:0])
    with pytest.raises(ValueError, match="anchor"):
        set_wise_ranking_loss(E_T * float("nan"), E_P, NEG)


P = torch.tensor([0.9, 0.2, 0.6, 0.05], dtype=D)
Y = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=D)
LOGIT = torch.log(P / (1 - P))


@pytest.mark.parametrize(
    ("gamma", "alpha", "value"), [(2.0, 0.25, 0.232567075), (2.0, 0.5, 0.380436548), (0.0, 0.5, 0.530065884)]
)
def test_focal_golden_values(gamma: float, alpha: float, value: float) -> None:
    assert focal_binary_loss(LOGIT, Y, gamma, alpha).item() == pytest.approx(value, abs=1e-8)


def test_focal_limits_and_gradcheck() -> None:
    bce = F.binary_cross_entropy_with_logits(LOGIT, Y)
    assert torch.allclose(focal_binary_loss(LOGIT, Y, 0.0, 0.5), 0.5 * bce)
    assert torch.allclose(FocalBinaryLoss(gamma=0.0)(LOGIT, Y), bce)
    assert torch.isfinite(focal_binary_loss(torch.tensor([80.0, -80.0], dtype=D), torch.tensor([0.0, 1.0], dtype=D)))
    x = LOGIT.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: focal_binary_loss(z, Y, 2.0, 0.25), (x,))


def test_focal_bad_input() -> None:
    with pytest.raises(ValueError, match="targets"):
        focal_binary_loss(LOGIT, torch.tensor([0.0, 2.0, 1.0, 0.0], dtype=D))
    with pytest.raises(ValueError, match="targets"):
        focal_binary_loss(LOGIT, Y[:3])
    with pytest.raises(ValueError, match="logits"):
        focal_binary_loss(LOGIT[:0], Y[:0])
    with pytest.raises(ValueError, match="gamma"):
        FocalBinaryLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalBinaryLoss(alpha=1.5)
