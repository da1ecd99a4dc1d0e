"""Paper 49: the exact (given the design) and asymptotic bias / variance of the interpolating
estimator, against closed-form limits and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.analysis.aggregate_risk import (
    asymptotic_bias_variance,
    conditional_bias_variance,
    marchenko_pastur_quadrature,
)
from paperzoo.data.bags import aggregate_responses, make_linear_bag_data
from paperzoo.losses import fit_linear_aggregate


@pytest.mark.parametrize("ratio", [0.05, 0.3, 1.0, 2.5])
def test_marchenko_pastur_moments(ratio: float) -> None:
    x, w = marchenko_pastur_quadrature(ratio)
    assert w.sum() == pytest.approx(1.0, abs=1e-10)
    assert (w * x).sum() == pytest.approx(1.0, abs=1e-10)
    assert (w * x**2).sum() == pytest.approx(1.0 + ratio, abs=1e-10)
    assert (w * x**3).sum() == pytest.approx(1.0 + 3 * ratio + ratio**2, abs=1e-9)


def test_limits_in_closed_form() -> None:
    n, d, s2 = 2000, 100, 4.0
    for k in (2, 5, 10):
        m = n / k
        zero = asymptotic_bias_variance(n, d, k, 0.0, s2)
        assert zero.bias == 0.0 and zero.variance == pytest.approx(s2 * d / (m - d), rel=1e-10)
        one = asymptotic_bias_variance(n, d, k, 1.0, s2)  # instance level: (W1 + W2) is Wishart(n)
        assert one.variance == pytest.approx(s2 * (m / n) * d / (n - d), rel=1e-8)
    ols = asymptotic_bias_variance(n, d, 1, 0.7, s2)  # bags of one: least squares, rho irrelevant
    assert ols.bias == 0.0 and ols.variance == pytest.approx(s2 * d / (n - d), rel=1e-10)
    dp = asymptotic_bias_variance(n, d, 5, 0.3, s2, bag_noise_var=0.5)
    base = asymptotic_bias_variance(n, d, 5, 0.3, 1.0)
    assert dp.variance == pytest.approx((s2 + 5 * 0.5) * base.variance, rel=1e-12)
    assert dp.risk == pytest.approx(dp.bias + dp.variance)


def test_bias_grows_and_variance_shrinks_with_rho() -> None:
    preds = [asymptotic_bias_variance(1000, 50, 5, rho, 4.0) for rho in np.linspace(0, 1, 11)]
    assert all(b.bias > a.bias for a, b in zip(preds, preds[1:])) and preds[0].bias == 0.0
    assert all(b.variance < a.variance for a, b in zip(preds, preds[1:]))
    risks = [p.risk for p in preds]
    assert 0 < int(np.argmin(risks)) < 10  # sigma = 2, k = 5: interior optimum
    low = [asymptotic_bias_variance(1000, 50, 5, rho, 0.25).risk for rho in np.linspace(0, 1, 11)]
    assert int(np.argmin(low)) == 0  # sigma = 0.5: the unbiased bag-level estimator is best


def test_conditional_bias_and_variance_match_repeated_noise_draws() -> None:
    data = make_linear_bag_data(60, 4, 3, noise_std=1.0, seed=0)
    signal = data.X @ data.theta
    rng = np.random.default_rng(1)
    for rho, tau in ((0.0, 0.0), (0.4, 0.3)):
        exact = conditional_bias_variance(data.X, data.bag_index, data.theta, rho, 1.0, bag_noise_var=tau)
        mean_fit = fit_linear_aggregate(data.X, aggregate_responses(signal, data.bag_index), data.bag_index, rho)
        assert float(((mean_fit - data.theta) ** 2).sum()) == pytest.approx(exact.bias, abs=1e-12)
        fits = []
        for _ in range(400):
            y = signal + torch.from_numpy(rng.standard_normal(60))
            ybar = aggregate_responses(y, data.bag_index) + torch.from_numpy(rng.normal(0, np.sqrt(tau), 20))
            fits.append(fit_linear_aggregate(data.X, ybar, data.bag_index, rho))
        spread = torch.stack(fits).var(0).sum()
        assert float(spread) == pytest.approx(exact.variance, rel=0.1)


def test_asymptotics_match_monte_carlo_at_small_size() -> None:
    n, d, k, s2 = 400, 20, 4, 4.0
    for rho in (0.0, 0.3, 1.0):
        theory = asymptotic_bias_variance(n, d, k, rho, s2)
        sims = [
            conditional_bias_variance(
                (dt := make_linear_bag_data(n, d, k, 2.0, seed=r)).X, dt.bag_index, dt.theta, rho, s2
            )
            for r in range(30)
        ]
        bias, var = np.mean([s.bias for s in sims]), np.mean([s.variance for s in sims])
        assert bias == pytest.approx(theory.bias, rel=0.15, abs=0.01)
        assert var == pytest.approx(theory.variance, rel=0.15)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="not unique"):
        asymptotic_bias_variance(1000, 100, 10, 0.0, 1.0)  # m = d with the bag-level loss
    with pytest.raises(ValueError, match="asymptotic_bias_variance: rho must be"):
        asymptotic_bias_variance(1000, 10, 5, 1.5, 1.0)
    with pytest.raises(ValueError, match="bag_size must be at most"):
        asymptotic_bias_variance(100, 10, 200, 0.5, 1.0)
    data = make_linear_bag_data(40, 3, 4, 1.0, seed=0)
    with pytest.raises(ValueError, match="theta must be"):
        conditional_bias_variance(data.X, data.bag_index, data.theta[:2], 0.5, 1.0)
    with pytest.raises(ValueError, match=r"bag_index must have shape"):
        conditional_bias_variance(data.X, data.bag_index[:-1], data.theta, 0.5, 1.0)
    with pytest.raises(ValueError, match="conditional_bias_variance: noise_var must be"):
        conditional_bias_variance(data.X, data.bag_index, data.theta, 0.5, -1.0)
