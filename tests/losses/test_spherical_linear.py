"""Tests of the O(d^2) spherical output layer for the Z-loss (paper 05; the exact update of
Vincent et al., 2015): every step must equal dense autograd + plain SGD on a small D."""

from __future__ import annotations

import pytest
import torch

from paperzoo.losses.spherical_linear import SphericalLinear
from paperzoo.losses.zloss import z_loss


def _compare_with_dense(reduction: str, renorm_every: int, steps: int = 10, lr: float = 0.5) -> None:
    g = torch.Generator().manual_seed(0)
    n_cls, d, m = 40, 6, 9
    w0 = torch.randn(n_cls, d, generator=g, dtype=torch.float64) * 0.3
    layer = SphericalLinear(d, n_cls, a=2.0, b=1.5, reduction=reduction, weight=w0, renorm_every=renorm_every)
    w = w0.clone().requires_grad_(True)
    for _ in range(steps):
        h = torch.randn(m, d, generator=g, dtype=torch.float64)
        c = torch.randint(0, n_cls, (m,), generator=g)
        c[1] = c[0]  # repeated targets in a batch hit the same row of V twice
        h_sph, h_dense = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
        loss_sph = layer(h_sph, c)
        loss_sph.backward()
        layer.sgd_step(lr)
        loss_dense = z_loss(h_dense @ w.T, c, 2.0, 1.5, reduction=reduction)
        loss_dense.backward()
        with torch.no_grad():
            w -= lr * w.grad
            w.grad = None
        torch.testing.assert_close(loss_sph, loss_dense, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h_sph.grad, h_dense.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(layer.weight, w.detach(), rtol=1e-9, atol=1e-12)
        # the maintained statistics stay exact between renormalisations
        torch.testing.assert_close(layer.gram, w.detach().T @ w.detach(), rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(layer.col_sum, w.detach().sum(0), rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(layer.logits(h), h @ w.detach().T, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("renorm_every", [1, 4, 1000])
def test_steps_equal_dense_sgd(reduction: str, renorm_every: int) -> None:
    _compare_with_dense(reduction, renorm_every)


def test_sgd_step_touches_only_batch_rows_of_v() -> None:
    layer = SphericalLinear(4, 30, dtype=torch.float64, renorm_every=1000)
    v0 = layer.V.clone()
    c = torch.tensor([3, 7, 7])
    layer(torch.randn(3, 4, dtype=torch.float64), c)  # no backward needed: h needs no gradient here
    layer.sgd_step(0.1)
    changed = (layer.V != v0).any(dim=1).nonzero().squeeze(1).tolist()
    assert changed == [3, 7]


def test_trains_without_dense_logits() -> None:
    g = torch.Generator().manual_seed(1)
    protos = torch.randn(20, 8, generator=g) * 3
    y = torch.randint(0, 20, (400,), generator=g)
    x = protos[y] + torch.randn(400, 8, generator=g)
    torch.manual_seed(0)
    layer = SphericalLinear(8, 20, a=1.0, b=2.0)
    start = layer(x, y).item()
    for i in range(200):
        idx = torch.arange(i * 32, (i + 1) * 32) % 400
        layer(x[idx], y[idx])
        layer.sgd_step(1.0)
    assert layer(x, y).item() < 0.5 * start
    assert (layer.logits(x).argmax(1) == y).float().mean().item() > 0.8


def test_bad_input_raises() -> None:
    layer = SphericalLinear(4, 10)
    with pytest.raises(ValueError, match=r"h must be a floating tensor of shape \(N, 4\)"):
        layer(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 10\)"):
        layer(torch.randn(3, 4), torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match=r"h contains NaN"):
        layer(torch.full((2, 4), float("nan")), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"empty batch"):
        layer(torch.randn(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(RuntimeError, match=r"needs a forward pass first"):
        layer.sgd_step(0.1)
    with pytest.raises(ValueError, match=r"^SphericalLinear: num_classes must be an int in \[2, inf\), got 1$"):
        SphericalLinear(4, 1)
    with pytest.raises(ValueError, match=r"^SphericalLinear: in_features must be an int in \[1, inf\), got True$"):
        SphericalLinear(True, 10)
    with pytest.raises(ValueError, match=r"^SphericalLinear: reduction must be one of \{'mean', 'sum'\}, got 'none'$"):
        SphericalLinear(4, 10, reduction="none")
    with pytest.raises(ValueError, match=r"^SphericalLinear: a must be a float in \(0, inf\), got 0.0$"):
        SphericalLinear(4, 10, a=0.0)
    with pytest.raises(ValueError, match=r"^SphericalLinear: renorm_every must be an int in \[1, inf\), got 0$"):
        SphericalLinear(4, 10, renorm_every=0)
    layer(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^SphericalLinear.sgd_step: lr must be a float in \(0, inf\), got 0$"):
        layer.sgd_step(0)
    with pytest.raises(ValueError, match=r"weight must be a floating tensor of shape \(10, 4\)"):
        SphericalLinear(4, 10, weight=torch.randn(4, 10))
