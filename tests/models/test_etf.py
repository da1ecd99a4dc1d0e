"""Simplex / sparse ETF classifiers (FedLoGe's SSE-C): invariants and golden values."""

from __future__ import annotations

import math

import pytest
import torch

from paperzoo.models.etf import (
    FixedLinearClassifier,
    _etf_from_basis,
    simplex_etf,
    sparse_etf,
    sparse_etf_objective,
)

A = torch.tensor(
    [[0.3, 0.9, 0.1, 0.5], [0.7, 0.2, 0.8, 0.4], [0.6, 0.5, 0.3, 0.9],
     [0.1, 0.4, 0.6, 0.2], [0.8, 0.3, 0.2, 0.7], [0.4, 0.6, 0.9, 0.1]],
    dtype=torch.float64,
)  # fmt: skip
MASK = torch.tensor(
    [[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.float64
)


def _cosines(weight: torch.Tensor) -> torch.Tensor:
    u = weight / weight.norm(dim=1, keepdim=True)
    return u @ u.T


@pytest.mark.parametrize(("d", "c"), [(4, 4), (6, 4), (64, 10), (20, 2)])
def test_simplex_etf_gram_is_exact(d: int, c: int) -> None:
    w = simplex_etf(d, c, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert w.shape == (c, d)
    expected = (c / (c - 1)) * (torch.eye(c, dtype=torch.float64) - 1.0 / c)
    torch.testing.assert_close(w @ w.T, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(w.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-12, rtol=0)


def test_golden_etf_from_basis() -> None:
    p = torch.linalg.qr(A).Q
    torch.testing.assert_close(
        p[0],
        torch.tensor([-0.226778684, 0.749473225, -0.410131771, 0.229913140], dtype=torch.float64),
        atol=1e-8,
        rtol=0,
    )
    m = _etf_from_basis(p)
    gold = [-0.360725748, -0.501011682, -0.156283340, -0.160750154, -0.402161206, -0.637860093]
    torch.testing.assert_close(m[:, 0], torch.tensor(gold, dtype=torch.float64), atol=1e-8, rtol=0)
    gram = m.T @ m
    torch.testing.assert_close(gram.diagonal(), torch.ones(4, dtype=torch.float64))
    off = gram[~torch.eye(4, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, -1 / 3))


def test_golden_sparse_objective_and_masked_gradient() -> None:
    w = (_etf_from_basis(torch.linalg.qr(A).Q) * MASK).requires_grad_(True)
    loss = sparse_etf_objective(w, 0.1)
    gold_norms = torch.tensor([0.766324773, 0.544423023, 0.984595686, 0.752585226], dtype=torch.float64)
    torch.testing.assert_close(w.detach().norm(dim=0), gold_norms, atol=1e-8, rtol=0)
    assert loss.item() == pytest.approx(0.181189794, abs=1e-8)
    loss.backward()
    grad = w.grad * MASK
    gold = torch.tensor([-0.833636942, 0.0, -1.09453422, -0.0915589828], dtype=torch.float64)
    torch.testing.assert_close(grad[0], gold, atol=1e-8, rtol=0)


def test_objective_gradcheck() -> None:
    w = (_etf_from_basis(torch.linalg.qr(A).Q) * MASK).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: sparse_etf_objective(m, 0.1), (w,))


def test_sparse_etf_keeps_zero_pattern_and_reaches_fixed_point() -> None:
    d, c = 64, 10
    w = sparse_etf(d, c, sparsity=0.6, target_norm=1.0, steps=1000, lr=1e-3, seed=3)
    n_zero = math.floor(0.6 * d * c)
    # the zeros of the mask stay zero (the refinement never moves them); none is added here
    assert int((w == 0).sum()) == n_zero
    dense = sparse_etf(d, c, sparsity=0.6, target_norm=1.0, steps=0, seed=3)
    assert torch.equal(w == 0, dense == 0)
    assert (w.norm(dim=1) - 1.0).abs().max() < 1e-2
    cos = _cosines(w).masked_fill(torch.eye(c, dtype=torch.bool), -1.0)
    assert cos.max() <= -1 / (c - 1) + 0.01
    # before refinement the sparsified ETF is far from equiangular
    cos0 = _cosines(dense).masked_fill(torch.eye(c, dtype=torch.bool), -1.0)
    assert cos0.max() > cos.max() + 0.1


@pytest.mark.slow
def test_sparse_etf_official_settings() -> None:
    d, c = 64, 10
    w = sparse_etf(d, c)  # sparsity 0.6, target norm 0.1, Adam 1e-4 x 10,000
    # a few surviving entries can shrink below float32's range: at least the mask's zeros
    assert int((w == 0).sum()) >= math.floor(0.6 * d * c)
    assert abs(float(w.norm(dim=1).mean()) - 0.1) < 1e-2
    cos = _cosines(w).masked_fill(torch.eye(c, dtype=torch.bool), -1.0)
    assert cos.max() <= -1 / (c - 1) + 0.01


def test_sparse_etf_is_deterministic_and_cached_copy() -> None:
    a = sparse_etf(12, 4, steps=20, lr=1e-3, seed=5)
    b = sparse_etf(12, 4, steps=20, lr=1e-3, seed=5)
    assert torch.equal(a, b) and a is not b
    a.zero_()
    assert not torch.equal(a, sparse_etf(12, 4, steps=20, lr=1e-3, seed=5))
    assert not torch.equal(b, sparse_etf(12, 4, steps=20, lr=1e-3, seed=6))


def test_dense_sparse_etf_is_the_simplex_etf() -> None:
    w = sparse_etf(16, 5, sparsity=0.0, steps=0, seed=2)
    expected = simplex_etf(16, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64).float()
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"sparsity": float("nan")}, "sparsity"),
        ({"target_norm": 0.0}, "target_norm"),
        ({"steps": -1}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"dim": 3}, "dim must be >= num_classes"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_sparse_etf_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"dim": 8, "num_classes": 4, "steps": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        sparse_etf(**args)


def test_simplex_etf_rejects_too_few_dims() -> None:
    with pytest.raises(ValueError, match="dim must be >= num_classes"):
        simplex_etf(3, 4)


def test_fixed_classifier_has_no_parameters_and_gets_no_gradient() -> None:
    w = simplex_etf(8, 4, generator=torch.Generator().manual_seed(0))
    head = FixedLinearClassifier(w)
    assert list(head.parameters()) == []
    assert set(head.state_dict()) == {"weight", "bias"}
    assert torch.equal(head.bias, torch.zeros(4))
    f = torch.randn(5, 8, requires_grad=True)
    head(f).sum().backward()
    assert f.grad is not None and not head.weight.requires_grad
    torch.testing.assert_close(head(f), f @ w.T)
    rnd = FixedLinearClassifier(w, "random_frozen", generator=torch.Generator().manual_seed(0))
    assert rnd.bias.abs().max() <= 1 / math.sqrt(8) and rnd.bias.abs().sum() > 0


def test_fixed_classifier_rejects_bad_input() -> None:
    w = simplex_etf(8, 4)
    with pytest.raises(ValueError, match="bias"):
        FixedLinearClassifier(w, "learned")
    with pytest.raises(ValueError, match="bias must have shape"):
        FixedLinearClassifier(w, torch.zeros(3))
    with pytest.raises(ValueError, match="weight"):
        FixedLinearClassifier(torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        FixedLinearClassifier(torch.full((4, 8), float("nan")))
    with pytest.raises(ValueError, match="features"):
        FixedLinearClassifier(w)(torch.randn(2, 7))
