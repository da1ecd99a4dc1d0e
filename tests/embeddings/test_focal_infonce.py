"""Focal-weighted InfoNCE of KaLM-Embedding-V2 (paper 43): limiting cases, golden values,
gradient signs, and its sentence-transformers loss against MultipleNegativesRankingLoss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.focal_infonce import FocalMultipleNegativesRankingLoss, focal_infonce
from paperzoo.embeddings.hard_negative_mixing import HardNegativeMixer
from paperzoo.models.text_encoders import minilm_available

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss  # noqa: E402


def mk(n: int, off: float) -> torch.Tensor:
    return torch.sin(0.7 * torch.arange(n * 8, dtype=torch.float64) + off).reshape(n, 8)


Q, P = mk(3, 0.0), mk(9, 1.0)
TARGET = torch.arange(3) * 3


def golden_scores(tau: float) -> torch.Tensor:
    return F.normalize(Q, dim=-1) @ F.normalize(P, dim=-1).T / tau


def test_golden_values() -> None:
    s = golden_scores(0.2)
    assert focal_infonce(s, TARGET, 0.0).item() == pytest.approx(3.02122306, abs=1e-8)
    p = torch.softmax(s, 1)[torch.arange(3), TARGET]
    assert torch.allclose(p, torch.tensor([0.085311782, 0.421489303, 0.003220349], dtype=torch.float64), atol=1e-9)
    for gamma, value in ((0.5, 2.91341788), (1.0, 2.82368321), (2.0, 2.68329655)):
        assert focal_infonce(s, TARGET, gamma).item() == pytest.approx(value, abs=1e-8)


def test_gamma_zero_is_cross_entropy_and_mnrl() -> None:
    s = golden_scores(0.05)
    assert torch.allclose(focal_infonce(s, TARGET, 0.0), F.cross_entropy(s, TARGET))
    cols = [Q, *P.reshape(3, 3, 8).unbind(1)]
    mnrl = MultipleNegativesRankingLoss(model=None, scale=20.0).compute_loss_from_embeddings(cols, None)
    ours = FocalMultipleNegativesRankingLoss(model=None, scale=20.0, gamma=0.0).compute_loss_from_embeddings(cols)
    assert mnrl.item() == pytest.approx(9.55795423, abs=1e-8)
    assert torch.allclose(ours, mnrl, atol=1e-12)
    focal = FocalMultipleNegativesRankingLoss(model=None, scale=5.0, gamma=1.0).compute_loss_from_embeddings(cols)
    assert focal.item() == pytest.approx(2.82368321, abs=1e-8)


def test_focal_is_below_infonce_and_non_increasing_in_gamma() -> None:
    g = torch.Generator().manual_seed(0)
    s = 5 * torch.randn(64, 20, generator=g, dtype=torch.float64)
    t = torch.randint(0, 20, (64,), generator=g)
    ce = focal_infonce(s, t, 0.0, reduction="none")
    prev = ce
    for gamma in (0.25, 0.5, 1.0, 2.0, 5.0):
        cur = focal_infonce(s, t, gamma, reduction="none")
        assert bool((cur <= ce + 1e-12).all()) and bool((cur <= prev + 1e-12).all())
        prev = cur
    # the weight vanishes as p -> 1
    easy = torch.zeros(1, 5, dtype=torch.float64)
    easy[0, 0] = 60.0
    loss = focal_infonce(easy, torch.tensor([0]), 1.0, reduction="none")
    assert 0 <= loss.item() < 1e-40


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_gradient_signs(gamma: float, detach: bool) -> None:
    g = torch.Generator().manual_seed(1)
    s = (3 * torch.randn(32, 10, generator=g, dtype=torch.float64)).requires_grad_()
    t = torch.randint(0, 10, (32,), generator=g)
    focal_infonce(s, t, gamma, detach_weight=detach).backward()
    grad = s.grad
    pos = grad.gather(1, t.view(-1, 1)).squeeze(1)
    mask = torch.ones_like(grad, dtype=torch.bool).scatter_(1, t.view(-1, 1), False)
    assert bool((pos <= 1e-15).all()) and bool((grad[mask] >= -1e-15).all())


def test_gradcheck_and_reductions() -> None:
    g = torch.Generator().manual_seed(2)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 5, (6,), generator=g)
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda x, gamma=gamma: focal_infonce(x, t, gamma), (s,))
    # detached weight: the gradient of the weighted cross-entropy with the weight held fixed
    (g_det,) = torch.autograd.grad(focal_infonce(s, t, 2.0, detach_weight=True), s)
    p = torch.softmax(s.detach(), 1).gather(1, t.view(-1, 1)).squeeze(1)
    (g_ref,) = torch.autograd.grad((((1 - p) ** 2) * F.cross_entropy(s, t, reduction="none")).mean(), s)
    assert torch.allclose(g_det, g_ref)
    per = focal_infonce(s, t, 1.0, reduction="none")
    assert per.shape == (6,)
    assert torch.allclose(per.mean(), focal_infonce(s, t, 1.0)) and torch.allclose(
        per.sum(), focal_infonce(s, t, 1.0, reduction="sum")
    )
    half = focal_infonce(s.detach().half(), t, 1.0)
    assert half.dtype == torch.float16 and torch.isfinite(half)


def test_bad_input() -> None:
    s, t = torch.randn(4, 5), torch.randint(0, 5, (4,))
    with pytest.raises(ValueError, match="gamma"):
        focal_infonce(s, t, -1.0)
    with pytest.raises(ValueError, match="reduction"):
        focal_infonce(s, t, 1.0, reduction="max")
    with pytest.raises(ValueError, match="target"):
        focal_infonce(s, torch.tensor([0, 1, 2, 7]), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        focal_infonce(torch.full((4, 5), float("nan")), t, 1.0)
    with pytest.raises(ValueError, match="empty"):
        focal_infonce(torch.randn(0, 5), t[:0], 1.0)
    with pytest.raises(ValueError, match="scale"):
        FocalMultipleNegativesRankingLoss(model=None, scale=0.0)
    with pytest.raises(ValueError, match="gamma"):
        FocalMultipleNegativesRankingLoss(model=None, gamma=-0.5)
    with pytest.raises(TypeError, match="mixing"):
        FocalMultipleNegativesRankingLoss(model=None, mixing="yes")  # type: ignore[arg-type]
    loss = FocalMultipleNegativesRankingLoss(model=None)
    with pytest.raises(ValueError, match="anchor, positive"):
        loss.compute_loss_from_embeddings([torch.randn(4, 8)])
    with pytest.raises(ValueError, match="column 1"):
        loss.compute_loss_from_embeddings([torch.randn(4, 8), torch.randn(3, 8)])


def test_mixing_adds_columns_and_raises_the_loss() -> None:
    g = torch.Generator().manual_seed(3)
    cols = [torch.randn(8, 16, generator=g) for _ in range(4)]
    plain = FocalMultipleNegativesRankingLoss(model=None, scale=20.0, gamma=0.0)
    mixed = FocalMultipleNegativesRankingLoss(
        model=None, scale=20.0, gamma=0.0, mixing=HardNegativeMixer(generator=torch.Generator().manual_seed(0))
    )
    assert mixed.compute_loss_from_embeddings(cols) > plain.compute_loss_from_embeddings(cols)
    pairs = cols[:2]  # no hard-negative columns: in-batch candidates are mixed
    assert mixed.compute_loss_from_embeddings(pairs) > plain.compute_loss_from_embeddings(pairs)
    leaf = [c.clone().requires_grad_() for c in cols]
    mixed.compute_loss_from_embeddings(leaf).backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in leaf)


@pytest.mark.skipif(not minilm_available(), reason="needs the text extra (sentence-transformers + MiniLM)")
def test_drops_into_matryoshka_loss_with_minilm() -> None:
    from paperzoo.models.text_encoders import load_minilm

    model = load_minilm(trainable=True)
    texts = [["a cat", "a dog", "a car"], ["feline pet", "canine pet", "motor vehicle"], ["a boat", "a tree", "a sun"]]
    feats = [model.tokenize(t) for t in texts]
    dims, weights = [384, 96, 48], [1.0, 0.3, 0.2]
    ours = MatryoshkaLoss(model, FocalMultipleNegativesRankingLoss(model, scale=20.0, gamma=0.0), dims, weights)
    ref = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model, scale=20.0), dims, weights)
    model.eval()  # no dropout: both see the same embeddings
    a = ours([dict(f) for f in feats], None)
    b = ref([dict(f) for f in feats], None)
    assert torch.allclose(a, b, atol=1e-6)
    focal = MatryoshkaLoss(model, FocalMultipleNegativesRankingLoss(model, scale=20.0, gamma=1.0), dims, weights)
    value = focal([dict(f) for f in feats], None)
    assert value < a
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
