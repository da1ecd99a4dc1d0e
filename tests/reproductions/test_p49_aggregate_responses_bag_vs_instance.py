"""Paper-49 checks (the shared suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the estimator written on shared Gram matrices, the bag-level cross-validation of
rho, the units and the agreement measure; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data.bags import make_linear_bag_data
from paperzoo.losses import fit_linear_aggregate
from paperzoo.reproductions import available
from paperzoo.reproductions import p49_aggregate_responses_bag_vs_instance as p49


def test_registered() -> None:
    assert available()[49] == "paperzoo.reproductions.p49_aggregate_responses_bag_vs_instance"
    assert p49.PAPER == 49 and p49.DATA == () and p49.BUDGETS == ()


def _stats(k: int = 4, n: int = 200, d: int = 8, sigma: float = 1.0, seed: int = 0):  # type: ignore[no-untyped-def]
    data = make_linear_bag_data(n, d, k, sigma, seed=seed)
    bags = data.bag_index.numpy()
    counts, xbar, xc = p49._bag_stats(data.X.numpy(), bags, int(bags.max()) + 1)
    return data, bags, counts, xbar, xc


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_gram_form_is_fit_linear_aggregate(rho: float) -> None:
    data, _, counts, xbar, xc = _stats()
    w1, w2 = p49._grams(counts, xbar, xc)
    theta = np.linalg.solve(w1 + rho * w2, (xbar.T * counts) @ data.ybar.numpy())
    assert np.allclose(theta, fit_linear_aggregate(data.X, data.ybar, data.bag_index, rho).numpy(), atol=1e-10)


def test_cv_picks_small_rho_at_low_noise_and_interior_rho_at_high_noise() -> None:
    rng = np.random.default_rng(0)
    low, high = [], []
    for seed in range(4):
        data, bags, counts, xbar, xc = _stats(k=5, n=1000, d=50, sigma=1.0, seed=seed)
        signal = (xbar @ data.theta.numpy())[:, None]
        ebar = data.ybar.numpy()[:, None] - signal
        chosen = p49._cv_rho(counts, xbar, xc, bags, signal + ebar * np.array([[0.1, 3.0]]), rng)
        assert set(chosen.tolist()) <= set(p49.CV_GRID)
        low.append(chosen[0])
        high.append(chosen[1])
    assert np.mean(low) <= 0.1 and 0.0 < np.mean(high) < 1.0


def test_units_are_deterministic_and_agreement_is_zero_on_theory() -> None:
    unit = ("A", 5, 3, p49.SMOKE)
    first, again = p49.run_unit(unit), p49.run_unit(unit)
    assert first == again
    assert p49.run_unit(("A", 5, 4, p49.SMOKE)) != first
    th = p49.theory_a(p49.SMOKE)
    exact = {
        k: {
            "bias": th[str(k)]["bias"],
            "var_unit": th[str(k)]["var_unit"],
            "risk": [
                [b + s**2 * v for s in p49.SMOKE.sigmas] for b, v in zip(th[str(k)]["bias"], th[str(k)]["var_unit"])
            ],
        }
        for k in p49.SMOKE.ks
    }
    assert p49.agreement(exact, th, p49.SMOKE) == {"bias": 0.0, "variance": 0.0, "risk": pytest.approx(0.0, abs=1e-15)}
    dp = p49.run_unit(("C", 5, 0, p49.SMOKE))
    assert np.asarray(dp["risk"]).shape == (len(p49.SMOKE.dp_eps), len(p49.SMOKE.dp_rhos))


def test_dp_theory_uses_the_laplace_variance() -> None:
    cfg = p49.SMOKE
    th = p49.theory_c(cfg)
    assert set(th) == {str(k) for k in cfg.dp_ks}
    assert p49.dp_bag_noise_var(cfg, 5, 1.0) == pytest.approx(2 * (2 * 2.5 * np.sqrt(np.log(cfg.n)) / 5) ** 2)
    assert torch.isfinite(torch.tensor(th["5"])).all()


def test_diabetes_split_and_network_selection() -> None:
    s = p49.diabetes_split(4, seed=0, split=0)
    n_test = round(p49.NN_TEST_FRACTION * 442)
    assert s["X_test"].shape == (n_test, 10) and s["X_train"].shape == (442 - n_test, 10)
    assert torch.allclose(s["X_train"].mean(0), torch.zeros(10), atol=1e-5)  # standardised on training rows
    assert torch.equal(torch.bincount(s["bags"])[:-1], torch.full((s["ybar"].shape[0] - 1,), 4))
    m = s["ybar"].shape[0]
    assert int(s["val_bag"].sum()) == round(p49.NN_VAL_FRACTION * m)
    again = p49.diabetes_split(4, seed=0, split=0)
    assert torch.equal(again["bags"], s["bags"]) and not torch.equal(p49.diabetes_split(4, 0, 1)["bags"], s["bags"])
    cfg = p49.SMOKE
    fake = {("B", k, 0, 0, rho): {"val": 1.0 - rho if k == 8 else rho, "test": 10 * k + rho} for k in cfg.nn_ks
            for rho in cfg.nn_rhos}  # fmt: skip
    sel = p49.select_networks(cfg, [0], fake)
    assert sel[0, 8]["rho"] == 1.0 and sel[0, 2]["rho"] == 0.0 and sel[0, 8][p49.INTERP] == 81.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p49.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert (
        result.json_path is not None and result.json_path.parent == tmp_path / "49-aggregate-responses-bag-vs-instance"
    )
    assert result.table.methods == list(p49.METHODS)
    assert result.table.metrics[-1] == p49.nn_metric(8)
    assert len(result.claims) == 15
    # the firm findings: measured bias / variance / risk agree with the asymptotic theory
    assert [c.outcome for c in result.claims[:3]] == ["holds"] * 3
