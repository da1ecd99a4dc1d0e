"""Tests of the robust self-supervised (RSS) objective of paper 30 (Saberi et al., ICLR 2024)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from paperzoo.engine import TrainConfig, fit
from paperzoo.training.rss import (
    RSSObjective,
    WassersteinRobustLoss,
    fit_linear_rss,
    mean_estimator,
    ramp_loss,
    robust_ramp_linear,
    rss_linear_objective,
)

# (margin, ||w||, slope, gamma) -> (phi, plain ramp): golden values of the closed form, checked by brute force
GOLDEN = [
    ((2.0, 1.0, 1.0, 1.0), 0.0, 0.0),
    ((0.5, 2.0, 1.0, 4.0), 0.75, 0.5),
    ((-0.3, 1.5, 2.0, 0.5), 1.0, 1.0),
    ((3.0, 0.5, 1.0, 0.05), 0.0, 0.0),
    ((1.2, 1.0, 1.0, 0.25), 0.64, 0.0),
    ((0.9, 3.0, 1.0, 10.0), 0.325, 0.1),
    ((0.2, 2.0, 1.0, 0.5), 0.995, 0.8),
]


def _brute(mu: torch.Tensor, wn: float, s: float, g: float, points: int = 2_000_001) -> torch.Tensor:
    t = torch.linspace(0.0, 20.0, points, dtype=torch.float64)
    return ((1 - s * mu[:, None] + s * wn * t).clamp(0, 1) - g * t * t).amax(-1)


@pytest.mark.parametrize(("args", "phi", "plain"), GOLDEN)
def test_golden_values_and_brute_force(args, phi, plain) -> None:
    mu, wn, s, g = args
    m = torch.tensor([mu], dtype=torch.float64)
    out = robust_ramp_linear(m, wn, s, g)
    assert out.item() == pytest.approx(phi, abs=1e-12)
    assert _brute(m, wn, s, g).item() == pytest.approx(phi, abs=1e-6)
    assert ramp_loss(m, s).item() == pytest.approx(plain, abs=1e-12)


def test_closed_form_matches_brute_force_on_random_inputs() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(40, generator=gen, dtype=torch.float64) * 1.5
    points = 200_001
    for wn, s, g in [(1.0, 1.0, 1.0), (0.3, 2.0, 0.2), (2.5, 0.7, 5.0)]:
        closed, brute = robust_ramp_linear(mu, wn, s, g), _brute(mu, wn, s, g, points)
        # the grid is a lower bound, below the true max by at most slope * ||w|| * grid step
        assert bool((brute <= closed + 1e-12).all())
        assert float((closed - brute).max()) <= s * wn * 20.0 / (points - 1) + 1e-12


def test_properties_phi_ge_loss_monotone_in_gamma_and_limits() -> None:
    mu = torch.linspace(-3, 3, 601, dtype=torch.float64)
    plain = ramp_loss(mu)
    prev = torch.ones_like(mu)
    for g in [0.0, 0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 1e3, math.inf]:
        phi = robust_ramp_linear(mu, 1.3, 1.0, g)
        assert bool((phi >= plain - 1e-12).all()) and bool((phi <= prev + 1e-12).all())
        assert bool((phi >= 0).all()) and bool((phi <= 1).all())
        prev = phi
    assert torch.equal(robust_ramp_linear(mu, 1.3, 1.0, math.inf), plain)  # phi_inf = loss
    assert torch.equal(robust_ramp_linear(mu, 1.3, 1.0, 0.0), torch.ones_like(mu))  # free adversary
    assert torch.equal(robust_ramp_linear(mu, 0.0, 1.0, 1.0), plain)  # w = 0: nothing to move along


def test_gradient_flows() -> None:
    mu = torch.tensor([0.2, 0.7, 1.5], dtype=torch.float64, requires_grad=True)
    robust_ramp_linear(mu, 1.0, 1.0, 1.0).sum().backward()
    assert mu.grad is not None and bool(torch.isfinite(mu.grad).all()) and mu.grad[0] < 0


def test_bad_inputs_name_the_argument() -> None:
    mu = torch.zeros(3)
    with pytest.raises(ValueError, match="gamma"):
        robust_ramp_linear(mu, 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="slope"):
        robust_ramp_linear(mu, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="w_norm"):
        robust_ramp_linear(mu, -1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="margin"):
        robust_ramp_linear(torch.tensor([float("nan")]), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        WassersteinRobustLoss(gamma=0.0)
    with pytest.raises(ValueError, match="inner_steps"):
        WassersteinRobustLoss(inner_steps=-1)
    with pytest.raises(ValueError, match="lam"):
        RSSObjective(lam=-0.5)
    x, y = torch.randn(4, 3), torch.tensor([1, -1, 1, -1])
    with pytest.raises(ValueError, match="y must"):
        fit_linear_rss(x, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="x_unlabelled"):
        fit_linear_rss(x, y, torch.randn(5, 2))
    with pytest.raises(ValueError, match="x must"):
        mean_estimator(torch.zeros(0, 3), torch.zeros(0))
    loss = WassersteinRobustLoss()
    with pytest.raises(ValueError, match="target"):
        loss(nn.Linear(3, 2), x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="batch"):
        RSSObjective()(nn.Linear(3, 2), (x, y))


def test_generic_wrm_matches_closed_form_for_a_linear_ramp() -> None:
    """For a linear model and the ramp, one ascent step of 1/(2 gamma) reaches the interior optimum."""
    torch.manual_seed(0)
    d, gamma = 5, 2.0
    w = torch.randn(d, dtype=torch.float64)
    w = w / w.norm()
    x = torch.randn(200, d, dtype=torch.float64)
    y = torch.where(torch.rand(200) < 0.5, -1.0, 1.0).to(torch.float64)

    def model(z: torch.Tensor) -> torch.Tensor:
        return z @ w

    def ramp(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ramp_loss(t * f)

    # margins where the optimum is interior: 0 < u and u + a^2/(2 gamma) < 1
    u = 1 - y * (x @ w)
    a = w.norm()
    keep = (u > 1e-3) & (u + a * a / (2 * gamma) < 1 - 1e-3)
    assert int(keep.sum()) > 5
    phi = WassersteinRobustLoss(ramp, gamma=gamma, inner_steps=15)(model, x[keep], y[keep])
    closed = robust_ramp_linear(y[keep] * (x[keep] @ w), a, 1.0, gamma)
    assert torch.allclose(phi, closed, atol=1e-10)


def test_wrm_properties_on_a_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, t = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    plain = WassersteinRobustLoss(gamma=math.inf)(net, x, t)
    assert torch.allclose(plain, nn.functional.cross_entropy(net(x), t, reduction="none"))
    prev = None
    for g in [100.0, 10.0, 2.0]:  # smaller gamma, larger phi; always >= the loss
        phi = WassersteinRobustLoss(gamma=g)(net, x, t)
        assert bool((phi >= plain - 1e-12).all())
        if prev is not None:
            assert bool((phi >= prev - 1e-9).all())
        prev = phi
    phi.sum().backward()  # gradient reaches the parameters (Danskin), not the detached maximiser
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())


def test_rss_objective_reduces_to_erm_and_self_training() -> None:
    torch.manual_seed(1)
    net = nn.Linear(4, 2).double()
    xl, yl, xu = (
        torch.randn(6, 4, dtype=torch.float64),
        torch.randint(0, 2, (6,)),
        torch.randn(9, 4, dtype=torch.float64),
    )
    rob = WassersteinRobustLoss(gamma=3.0)
    erm = RSSObjective(rob, lam=0.0)(net, (xl, yl, xu))
    assert torch.allclose(erm, rob(net, xl, yl).mean())
    st = RSSObjective(WassersteinRobustLoss(gamma=math.inf), lam=0.7)(net, (xl, yl, xu))
    ce = nn.functional.cross_entropy
    expected = ce(net(xl), yl) + 0.7 * ce(net(xu), net(xu).argmax(-1))
    assert torch.allclose(st, expected)


def test_rss_objective_drives_engine_fit() -> None:
    torch.manual_seed(0)
    xl, yl, xu = torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(32, 4)
    net = nn.Linear(4, 2)
    loader = [(xl, yl, xu)]
    hist = fit(net, None, loader, torch.optim.SGD(net.parameters(), lr=0.1), TrainConfig(epochs=3),
               compute_loss=RSSObjective(lam=1.0))  # fmt: skip
    assert hist.steps == 3 and all(math.isfinite(v) for v in hist.losses)


def test_linear_objective_sign_invariance_and_lambda_zero() -> None:
    gen = torch.Generator().manual_seed(3)
    x, xu = (
        torch.randn(10, 6, generator=gen, dtype=torch.float64),
        torch.randn(30, 6, generator=gen, dtype=torch.float64),
    )
    y = torch.where(torch.rand(10, generator=gen) < 0.5, -1, 1)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    w = w / w.norm()
    unl = rss_linear_objective(w, x, y, xu, lam=1.0) - rss_linear_objective(w, x, y, None)
    unl_flip = rss_linear_objective(-w, x, y, xu, lam=1.0) - rss_linear_objective(-w, x, y, None)
    assert unl.item() == pytest.approx(unl_flip.item(), abs=1e-12)  # only |<w, x'>| matters
    assert rss_linear_objective(w, x, y, xu, lam=0.0).item() == rss_linear_objective(w, x, y, None).item()
    w0 = fit_linear_rss(x, y, xu, lam=0.0, steps=0)
    assert torch.allclose(w0, mean_estimator(x, y))  # no steps: the mean-estimator start
    assert fit_linear_rss(x, y, xu, steps=20).norm().item() == pytest.approx(1.0)


def test_unlabelled_data_from_the_mixture_improves_the_direction() -> None:
    from paperzoo.analysis.rss_gmm import linear_gmm_accuracy
    from paperzoo.data.shifted_gmm import make_shifted_gmm

    accs = []
    for seed in range(2):
        data = make_shifted_gmm(50, 5, 3000, 0.0, mu_norm=1.5, n_test=0, seed=seed)
        erm = mean_estimator(data.x, data.y)
        rss = fit_linear_rss(data.x, data.y, data.x_unlabelled, steps=150)
        accs.append((linear_gmm_accuracy(erm, data.mu0).item(), linear_gmm_accuracy(rss, data.mu0).item()))
    assert all(r > e + 0.03 for e, r in accs), accs
