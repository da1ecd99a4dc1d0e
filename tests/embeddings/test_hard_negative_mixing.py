"""Online hard-negative mixing (paper 43): unit-norm synthetic negatives, stop-gradient, limiting
coefficients, the golden values, and that extra negatives can only raise InfoNCE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.focal_infonce import focal_infonce
from paperzoo.embeddings.hard_negative_mixing import HardNegativeMixer, mix_negatives


def mk(n: int, off: float) -> torch.Tensor:
    return torch.sin(0.7 * torch.arange(n * 8, dtype=torch.float64) + off).reshape(n, 8)


def test_golden_values() -> None:
    q, p = F.normalize(mk(3, 0.0), dim=-1), F.normalize(mk(9, 1.0), dim=-1)
    negs = p.view(3, 3, 8)[:, 1:]
    h = mix_negatives(
        q,
        negs,
        pair_index=torch.tensor([[[0, 1]]] * 3),
        lam=torch.full((3, 1), 0.3, dtype=torch.float64),
        query_index=torch.zeros(3, 1, dtype=torch.long),
        beta=torch.full((3, 1), 0.2, dtype=torch.float64),
    )
    target = torch.arange(3) * 3
    for tau, gamma, value in ((0.2, 0.0, 3.28774049), (0.2, 1.0, 3.11489189), (0.05, 0.0, 9.91786834)):
        scores = torch.cat([q @ p.T, torch.einsum("nd,nhd->nh", q, h)], dim=1) / tau
        assert focal_infonce(scores, target, gamma).item() == pytest.approx(value, abs=1e-8)


def test_unit_norm_detach_and_extremes() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 16, generator=g, dtype=torch.float64, requires_grad=True)
    negs = torch.randn(5, 4, 16, generator=g, dtype=torch.float64, requires_grad=True)
    mixer = HardNegativeMixer(n_query_mix=3, generator=torch.Generator().manual_seed(1))
    h = mixer.synthesize(q, negs)
    assert h.shape == (5, 4 + 3, 16) and not h.requires_grad
    assert torch.allclose(h.norm(dim=-1), torch.ones(5, 7, dtype=torch.float64))
    logits = mixer(q, negs)
    logits.sum().backward()
    assert negs.grad is None and q.grad is not None  # stop-gradient: nothing reaches the negatives
    # lam in {0, 1}: a pair mix is one of the originals
    nn_ = F.normalize(negs.detach(), dim=-1)
    idx = torch.tensor([[[0, 2], [1, 3]]] * 5)
    for lam, pick in ((1.0, idx[..., 0]), (0.0, idx[..., 1])):
        hm = mix_negatives(q.detach(), negs.detach(), idx, torch.full((5, 2), lam, dtype=torch.float64))
        assert torch.allclose(hm, nn_[torch.arange(5)[:, None], pick])
    kept = mix_negatives(q, negs, idx, torch.full((5, 2), 0.5, dtype=torch.float64), detach=False)
    assert kept.requires_grad


def test_more_negatives_only_raise_infonce() -> None:
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=-1)
    docs = F.normalize(torch.randn(18, 8, generator=g, dtype=torch.float64), dim=-1)
    negs = docs[6:].view(6, 2, 8)
    base = q @ docs.T * 20
    extra = HardNegativeMixer(n_pair_mix=4, n_query_mix=2, generator=g)(q, negs) * 20
    before = focal_infonce(base, torch.arange(6), 0.0, reduction="none")
    after = focal_infonce(torch.cat([base, extra], 1), torch.arange(6), 0.0, reduction="none")
    assert bool((after > before).all())


def test_mixes_the_hardest_candidates_and_is_reproducible() -> None:
    q = torch.tensor([[1.0, 0.0, 0.0]])
    negs = torch.tensor([[[0.9, 0.1, 0.0], [0.8, 0.3, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    h = HardNegativeMixer(k_mix=2, n_pair_mix=16, generator=torch.Generator().manual_seed(0)).synthesize(q, negs)
    assert bool((h[0, :, 2].abs() < 1e-6).all()) and bool((h[0, :, 0] > 0.9).all())  # only the two hardest mixed
    a = HardNegativeMixer(generator=torch.Generator().manual_seed(5))(q, negs)
    b = HardNegativeMixer(generator=torch.Generator().manual_seed(5))(q, negs)
    assert torch.equal(a, b)


def test_bad_input() -> None:
    q, negs = torch.randn(4, 8), torch.randn(4, 3, 8)
    with pytest.raises(ValueError, match="beta_max"):
        HardNegativeMixer(beta_max=0.8)
    with pytest.raises(ValueError, match="k_mix"):
        HardNegativeMixer(k_mix=0)
    with pytest.raises(ValueError, match="negatives"):
        HardNegativeMixer()(q, torch.randn(3, 3, 8))
    with pytest.raises(ValueError, match="M = 0"):
        HardNegativeMixer()(q, torch.randn(4, 0, 8))
    with pytest.raises(ValueError, match="NaN"):
        HardNegativeMixer()(q, negs * float("nan"))
    with pytest.raises(ValueError, match="pair_index"):
        mix_negatives(q, negs, torch.tensor([[[0, 5]]] * 4), torch.zeros(4, 1))


def test_closed_form_logits_match_the_explicit_mixes() -> None:
    g = torch.Generator().manual_seed(4)
    q = torch.randn(6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    negs = torch.randn(6, 5, 12, generator=g, dtype=torch.float64)
    fast = HardNegativeMixer(n_pair_mix=4, n_query_mix=3, generator=torch.Generator().manual_seed(9))
    slow = HardNegativeMixer(n_pair_mix=4, n_query_mix=3, generator=torch.Generator().manual_seed(9))
    a = fast(q, negs)  # closed form (detach=True)
    h = slow.synthesize(q, negs)  # the same draws, materialised
    b = torch.einsum("nd,nhd->nh", F.normalize(q, dim=-1), h)
    assert torch.allclose(a, b, atol=1e-12)
    (ga,) = torch.autograd.grad(a.sum(), q)
    (gb,) = torch.autograd.grad(b.sum(), q)
    assert torch.allclose(ga, gb, atol=1e-12)
