"""Tests of the ProtoN losses (paper 1): golden values, limiting cases, gradcheck, bad input."""

from __future__ import annotations

import pytest
import torch

from paperzoo.losses.proton import (
    CrossGraphAlignmentLoss,
    HybridEpisodicGlobalLoss,
    alignment_terms,
    cross_graph_alignment_loss,
    episodic_prototype_loss,
)
from paperzoo.models.proton import ProtoNHead

H = [
    [[2.857204, 0.142796, 1.403602], [2.654616, 0.345384, 1.302308]],
    [[0.14798, 2.85202, 0.404039], [0.248846, 2.751154, 0.202309]],
]
P = [[1.856486, 0.143514, 0.903243], [0.148557, 1.851443, 0.202886]]


def golden_graph() -> tuple[torch.Tensor, torch.Tensor]:
    """Refined nodes from the parameter-free head (identity projections, no LayerNorm, one layer)."""
    head = ProtoNHead(3, n_layers=1, use_layernorm=False).double()
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.eye(3))
        head.token.copy_(torch.tensor([0.05, -0.05, 0.0]))
    x = torch.tensor([[[1.0, 0.0, 0.5], [0.8, 0.2, 0.4]], [[0.0, 1.0, 0.2], [0.1, 0.9, 0.0]]], dtype=torch.float64)
    return head(x)


def test_alignment_golden() -> None:
    h, p = golden_graph()
    intra, inter = alignment_terms(h, p, margin=3.0)
    assert intra.item() == pytest.approx(0.987491865, abs=1e-8)
    assert inter.item() == pytest.approx(0.485135529, abs=1e-8)
    assert CrossGraphAlignmentLoss(3.0)(h, p).item() == pytest.approx(1.47262739, abs=1e-8)


def test_episodic_golden() -> None:
    _, p = golden_graph()
    q = torch.tensor([[0.9, 0.1, 0.45], [0.05, 0.95, 0.1]], dtype=torch.float64)
    assert episodic_prototype_loss(q, torch.tensor([0, 1]), p).item() == pytest.approx(0.0487354792, abs=1e-9)


def test_alignment_zero_when_collapsed_and_separated() -> None:
    p = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    h = p[:, None, :].expand(3, 5, 2).clone()
    assert cross_graph_alignment_loss(h, p, margin=3.0).item() == 0.0
    assert cross_graph_alignment_loss(h, p, margin=3.5).item() > 0.0


def test_alignment_matches_naive_loops() -> None:
    torch.manual_seed(0)
    h, p = torch.randn(4, 3, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    intra = sum(((h[c, i] - p[c]) ** 2).sum() for c in range(4) for i in range(3)) / 12
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    inter = sum(torch.relu(2.0 - (p[a] - p[b]).norm()) for a, b in pairs) / len(pairs)
    torch.testing.assert_close(cross_graph_alignment_loss(h, p, 2.0), intra + inter)


def test_gradcheck() -> None:
    torch.manual_seed(1)
    h = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    q = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    yq = torch.tensor([0, 1, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda a, b: cross_graph_alignment_loss(a, b, 5.0), (h, p))
    assert torch.autograd.gradcheck(lambda a, b: episodic_prototype_loss(a, yq, b, 0.5), (q, p))
    loss = HybridEpisodicGlobalLoss(7, 4).double()
    yg = torch.tensor([0, 3, 6, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b, c: loss(a, yq, b, c, a, yg), (q, h, p))


def test_hybrid_is_the_weighted_sum() -> None:
    torch.manual_seed(2)
    h, p, q = torch.randn(3, 2, 4), torch.randn(3, 4), torch.randn(6, 4)
    yq, yg = torch.tensor([0, 1, 2, 2, 1, 0]), torch.tensor([0, 1, 2, 3, 4, 0])
    loss = HybridEpisodicGlobalLoss(5, 4, lambda_global=0.5, lambda_align=0.1)
    want = episodic_prototype_loss(q, yq, p) + 0.1 * cross_graph_alignment_loss(h, p) + 0.5 * loss.global_loss(q, yg)
    torch.testing.assert_close(loss(q, yq, h, p, q, yg), want)
    only_ep = HybridEpisodicGlobalLoss(5, 4, lambda_global=0.0, lambda_align=0.0)
    torch.testing.assert_close(only_ep(q, yq, h, p, q, yg), episodic_prototype_loss(q, yq, p))


def test_bad_input() -> None:
    h, p, q = torch.randn(3, 2, 4), torch.randn(3, 4), torch.randn(6, 4)
    with pytest.raises(ValueError, match="query_targets .*absent from the support set"):
        episodic_prototype_loss(q, torch.tensor([0, 1, 2, 3, 0, 1]), p)
    with pytest.raises(ValueError, match="query_targets must have shape"):
        episodic_prototype_loss(q, torch.tensor([0, 1]), p)
    with pytest.raises(ValueError, match="prototypes must have shape"):
        cross_graph_alignment_loss(h, torch.randn(2, 4))
    with pytest.raises(ValueError, match="mask leaves a class graph with no impression"):
        cross_graph_alignment_loss(h, p, mask=torch.tensor([[True, True], [False, False], [True, False]]))
    with pytest.raises(ValueError, match="queries contains NaN"):
        episodic_prototype_loss(torch.full((6, 4), float("nan")), torch.zeros(6, dtype=torch.long), p)
    with pytest.raises(ValueError, match="global_targets must lie in"):
        HybridEpisodicGlobalLoss(5, 4)(q, torch.zeros(6, dtype=torch.long), h, p, q, torch.full((6,), 5))
    with pytest.raises(ValueError, match="together"):
        HybridEpisodicGlobalLoss(5, 4)(q, torch.zeros(6, dtype=torch.long), h, p, q, None)
    with pytest.raises(ValueError, match="margin"):
        CrossGraphAlignmentLoss(-1.0)
    with pytest.raises(ValueError, match="temperature"):
        HybridEpisodicGlobalLoss(5, 4, temperature=0.0)
