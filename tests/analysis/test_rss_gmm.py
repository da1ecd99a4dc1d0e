"""Closed forms of paper 30's Gaussian-mixture experiments against simulation."""

from __future__ import annotations

import math

import pytest
import torch

from paperzoo.analysis.rss_gmm import (
    bayes_accuracy,
    linear_gmm_accuracy,
    mean_estimator_accuracy,
    shifted_direction_accuracy,
)
from paperzoo.data.shifted_gmm import make_shifted_gmm
from paperzoo.training.rss import mean_estimator


def test_closed_form_accuracy_matches_a_monte_carlo_test_set() -> None:
    data = make_shifted_gmm(30, 10, 0, 0.0, n_test=100_000, seed=0)
    w = mean_estimator(data.x, data.y)
    emp = ((data.x_test @ w).sign().long() == data.y_test).double().mean().item()
    assert emp == pytest.approx(linear_gmm_accuracy(w, data.mu0).item(), abs=0.006)  # ~4 standard errors


def test_limits_and_values() -> None:
    assert bayes_accuracy(1.0) == pytest.approx(0.8413447460685429)
    mu = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert linear_gmm_accuracy(mu, mu).item() == pytest.approx(bayes_accuracy(1.0))
    assert linear_gmm_accuracy(-mu, mu).item() == pytest.approx(1 - bayes_accuracy(1.0))
    assert linear_gmm_accuracy(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), mu).item() == pytest.approx(0.5)
    batch = torch.stack([mu, 5 * mu, -mu])  # scale-free, batched
    assert torch.allclose(
        linear_gmm_accuracy(batch, mu)[:2], torch.full((2,), bayes_accuracy(1.0), dtype=torch.float64)
    )
    assert shifted_direction_accuracy(0.0) == pytest.approx(bayes_accuracy(1.0))
    assert shifted_direction_accuracy(0.5) > shifted_direction_accuracy(2.0) > 0.5
    assert mean_estimator_accuracy(10**9, 200) == pytest.approx(bayes_accuracy(1.0), abs=1e-6)
    assert mean_estimator_accuracy(10, 200) < mean_estimator_accuracy(40, 200) < bayes_accuracy(1.0)


def test_mean_estimator_accuracy_approximation_tracks_simulation() -> None:
    accs = [
        linear_gmm_accuracy(mean_estimator(d.x, d.y), d.mu0).item()
        for d in (make_shifted_gmm(200, 40, 0, 0.0, n_test=0, seed=s) for s in range(60))
    ]
    assert sum(accs) / len(accs) == pytest.approx(mean_estimator_accuracy(40, 200), abs=0.02)


def test_generator_geometry_and_seeding() -> None:
    a = make_shifted_gmm(20, 7, 11, 0.5, mu_norm=2.0, sigma_unlabelled=1.5, n_test=5, seed=3)
    b = make_shifted_gmm(20, 7, 11, 0.5, mu_norm=2.0, sigma_unlabelled=1.5, n_test=5, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.x_unlabelled, b.x_unlabelled)
    assert a.x.shape == (7, 20) and a.x_unlabelled.shape == (11, 20) and a.x_test.shape == (5, 20)
    assert set(a.y.tolist()) <= {-1, 1} and a.sigma_unlabelled == 1.5
    assert a.mu0.norm().item() == pytest.approx(2.0)
    assert (a.mu1 - a.mu0).norm().item() == pytest.approx(0.5)  # alpha = distance between the means
    assert (a.mu1 - a.mu0).dot(a.mu0).item() == pytest.approx(0.0, abs=1e-12)
    c = make_shifted_gmm(20, 7, 11, 0.0, seed=3)
    assert torch.equal(c.mu0, c.mu1)


def test_unlabelled_sample_statistics() -> None:
    d = make_shifted_gmm(10, 1, 40_000, 1.0, n_test=0, seed=0)
    proj = d.x_unlabelled @ (d.mu1 / d.mu1.norm())
    assert proj.abs().mean().item() == pytest.approx(
        # E|N(+-|mu1|, 1)| for |mu1| = sqrt(2)
        math.sqrt(2 / math.pi) * math.exp(-1.0)
        + math.sqrt(2) * (1 - 2 * (0.5 * math.erfc(math.sqrt(2) / math.sqrt(2)))),
        abs=0.02,
    )


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="alpha"):
        make_shifted_gmm(5, 2, 2, -1.0, seed=0)
    with pytest.raises(ValueError, match="m must"):
        make_shifted_gmm(5, 0, 2, 0.0, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        bayes_accuracy(1.0, 0.0)
    with pytest.raises(ValueError, match="w must"):
        linear_gmm_accuracy(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="w must"):
        linear_gmm_accuracy(torch.ones(4), torch.ones(3))
