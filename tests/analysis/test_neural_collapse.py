"""Neural collapse in deep linear networks (paper 10): the closed-form minimisers against golden
values, their invariants and the objective evaluated at a constructed minimiser; the NC metrics
against golden values, the literal NumPy reference and their invariances; the objective's
gradient; trained models reaching the closed form; and the input checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperzoo.analysis.neural_collapse import (
    DeepLinearHead,
    DeepLinearUFM,
    beta_crit,
    class_means,
    dlufm_objective,
    fit_ufm,
    minority_collapse_threshold,
    nc_metrics,
    nc_metrics_reference,
    predict_dlufm_geometry,
    solve_x,
)
from paperzoo.engine import limit_threads

F64 = torch.float64
HYP = settings(max_examples=25, deadline=None)
N_IMB = (200, 100, 50, 50)
LAM = 5e-4


# --------------------------------------------------------------------------- golden values of the closed form
GOLDEN = {
    # M: (B, x, sigma^2, ||mu_k||, w_k . mu_k, f*)
    1: (0.04, (69.710678, 49, 34.355339), (13.942136, 9.8, 6.871068), (0.264028, 0.313050, 0.370704),
        (0.985858, 0.98, 0.971716), 0.0189421),
    2: (0.178885, (13.025473, 10.314374, 8.156211), (33.932591, 21.277263, 13.304756), (0.170663, 0.214773, 0.270095),
        (0.994140, 0.990688, 0.985190), 0.0133466),
    3: (0.350882, (6.418415, 5.390237, 4.522701), (52.882676, 31.322298, 18.502206), (0.136995, 0.177545, 0.229995),
        (0.996232, 0.993655, 0.989306), 0.0122184),
    6: (0.917669, (2.785790, 2.521900, 2.282073), (93.480337, 51.451414, 28.249295), (0.103208, 0.138873, 0.186824),
        (0.997865, 0.996128, 0.992970), 0.0132204),
}  # fmt: skip


def _four(three: tuple[float, ...]) -> np.ndarray:
    return np.array([*three, three[-1]])


@pytest.mark.parametrize("M", sorted(GOLDEN))
def test_closed_form_golden_values(M: int) -> None:
    B, x, s2, h, logit, f = GOLDEN[M]
    g = predict_dlufm_geometry(N_IMB, LAM, LAM, M)
    assert g.B == pytest.approx(B, abs=1e-6)
    np.testing.assert_allclose(g.x, _four(x), atol=1e-6)
    np.testing.assert_allclose(g.sigma2, _four(s2), atol=1e-6)
    np.testing.assert_allclose(g.classifier_norms2, _four(s2), atol=1e-6)
    np.testing.assert_allclose(g.mean_norms, _four(h), atol=1e-6)
    np.testing.assert_allclose(g.own_logits, _four(logit), atol=1e-6)
    assert g.objective == pytest.approx(f, abs=1e-7)
    np.testing.assert_allclose(g.WWt, np.diag(g.sigma2))
    np.testing.assert_allclose(g.MMt, np.diag(g.mean_norms**2))
    if M == 3:
        np.testing.assert_allclose(
            g.layer_singular_values, np.tile([1.937398, 1.775452, 1.626312, 1.626312], (3, 1)), atol=1e-6
        )


def test_beta_crit_and_minority_collapse_golden_values() -> None:
    expected = (1.0, 0.5, 0.529134, 0.569877, 0.637270, 0.705512)
    assert [beta_crit(m) for m in (1, 2, 3, 4, 6, 9)] == pytest.approx(expected, abs=1e-6)
    g1 = predict_dlufm_geometry(N_IMB, 0.02165, 0.02165, 1)
    np.testing.assert_allclose(g1.sigma2, [5.482136, 1.34, 0, 0], atol=1e-6)
    g2 = predict_dlufm_geometry(N_IMB, 0.01435, 0.01435, 2)
    np.testing.assert_allclose(g2.beta, [0.137521, 0.275041, 0.550083, 0.550083], atol=1e-6)
    np.testing.assert_allclose(g2.sigma2, [26.280001, 13.388642, 0, 0], atol=1e-6)
    assert g2.collapsed.tolist() == [False, False, True, True]
    np.testing.assert_array_equal(g2.mean_norms[2:], 0.0)
    threshold = minority_collapse_threshold(2, g2.B)
    assert 50 <= threshold < 100 and threshold == pytest.approx(g2.B / 0.5)


def test_argmin_rule_differs_from_the_largest_root() -> None:
    """For beta_crit <= beta < max g the largest root (the official code's rule) is a worse
    stationary point than x = 0: psi(0.898654) = 1.047560 > psi(0) = 1."""
    beta, M = 0.550083, 2
    assert solve_x(beta, M) == 0.0
    x_root = 0.898654
    assert M * x_root ** (M - 1) / (1 + x_root**M) ** 2 == pytest.approx(beta, abs=1e-6)
    assert 1 / (1 + x_root**M) + beta * x_root == pytest.approx(1.047560, abs=1e-6)
    # just below beta_crit the non-zero root wins; at and above it, 0 does
    assert solve_x(0.5 - 1e-9, 2) == pytest.approx(1.0, abs=1e-3)
    assert solve_x(0.5, 2) == 0.0


# --------------------------------------------------------------------------- invariants of the closed form
@HYP
@given(
    n=st.lists(st.integers(1, 400), min_size=2, max_size=6),
    M=st.integers(1, 7),
    log_lam=st.floats(-5.0, -1.0),
)
def test_closed_form_invariants(n: list[int], M: int, log_lam: float) -> None:
    lam = 10.0**log_lam
    g = predict_dlufm_geometry(n, lam, lam, M)
    order = np.argsort(g.n, kind="stable")
    # larger classes: larger x, sigma^2 and own logit, shorter class means (unless collapsed)
    assert np.all(np.diff(g.x[order]) >= -1e-12)
    assert np.all(np.diff(g.sigma2[order]) >= -1e-9 * max(1.0, g.sigma2.max()))
    # ||mu_k|| ~ x^(M/2) / (1 + x^M) falls with n_k only where x^M >= 1: always for live classes
    # when M >= 2 (x^M >= M - 1 there), but not for M = 1 with 1/4 < beta_k < 1
    big = order[g.x[order] ** M >= 1]
    assert np.all(np.diff(g.mean_norms[big]) <= 1e-12)
    if M >= 2:
        assert np.all(g.x[~g.collapsed] ** M >= M - 1 - 1e-9)
    assert np.all((g.own_logits >= 0) & (g.own_logits < 1))
    # x = 0 exactly when beta >= beta_crit(M)
    np.testing.assert_array_equal(g.x == 0, g.beta >= beta_crit(M))
    # psi(x_k) <= psi(0) = 1, and x is a stationary point when positive
    psi = 1 / (1 + g.x**M) + g.beta * g.x
    assert np.all(psi <= 1 + 1e-12)
    # s^(2M) = sigma^2, ||w||^2 / ||mu||^2 = (sigma^2 + N lambda_H)^2
    np.testing.assert_allclose(g.layer_singular_values[0] ** (2 * M), g.sigma2, rtol=1e-9)
    live_ratio = g.classifier_norms2[~g.collapsed] / g.mean_norms[~g.collapsed] ** 2
    np.testing.assert_allclose(live_ratio, g.ratio[~g.collapsed], rtol=1e-9)
    if M == 1:
        np.testing.assert_allclose(live_ratio, g.n[~g.collapsed] * 1.0, rtol=1e-9)  # n_k lambda_H / lambda_W
    # the threshold separates collapsed from live classes
    threshold = minority_collapse_threshold(M, g.B)
    np.testing.assert_array_equal(g.collapsed, g.n <= threshold * (1 + 1e-12))


def test_class_mean_norms_are_not_monotone_for_one_layer_and_strong_decay() -> None:
    g = predict_dlufm_geometry([1, 2, 56], 0.01, 0.01, 1)
    assert np.all(np.diff(g.classifier_norms2) > 0)  # ||w_k|| still grows with n_k
    assert g.x[0] < 1 and g.mean_norms[0] < g.mean_norms[1]  # but the smallest class has the shorter mean


def test_balanced_input_gives_equal_entries_and_fit_scale_rescales_lambda() -> None:
    g = predict_dlufm_geometry([100] * 4, LAM, LAM, 3)
    assert np.ptp(g.x) == 0 and np.ptp(g.sigma2) == 0
    K = 4
    # dividing the fit term by K (nn.MSELoss-style mean over N K entries) = multiplying every lambda by K
    mean_fit = predict_dlufm_geometry(N_IMB, LAM, LAM, 3, fit_scale=1.0 / K)
    heavier = predict_dlufm_geometry(N_IMB, LAM * K, LAM * K, 3)
    np.testing.assert_allclose(mean_fit.x, heavier.x, rtol=1e-12)
    np.testing.assert_allclose(mean_fit.WWt, heavier.WWt, rtol=1e-12)
    assert mean_fit.objective == pytest.approx(heavier.objective / K, rel=1e-12)
    assert not np.allclose(heavier.x, predict_dlufm_geometry(N_IMB, LAM, LAM, 3).x)


def test_unequal_layer_decays_follow_their_geometric_mean() -> None:
    lams = [1e-4, 5e-4, 2e-3]
    g = predict_dlufm_geometry(N_IMB, lams, LAM, 3)
    ref = predict_dlufm_geometry(N_IMB, float(np.exp(np.mean(np.log(lams)))), LAM, 3)
    np.testing.assert_allclose(g.x, ref.x, rtol=1e-12)
    np.testing.assert_allclose(np.prod(g.layer_singular_values, axis=0) ** 2, g.sigma2, rtol=1e-10)
    # balancedness: lambda_m s_m^2 is the same at every layer
    balanced = np.asarray(lams)[:, None] * g.layer_singular_values**2
    np.testing.assert_allclose(balanced, np.broadcast_to(balanced[0], balanced.shape), rtol=1e-10)


def _orthonormal(K: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, K, dtype=F64, generator=g))
    return q.T  # (K, d), orthonormal rows


def _stack(labels: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    return means[labels]


@pytest.mark.parametrize("M", [1, 2, 3, 6])
@pytest.mark.parametrize("lam", [LAM, 0.01435])
def test_objective_at_the_constructed_minimiser_equals_f_star(M: int, lam: float) -> None:
    """Build W_m and H from the prediction in an orthonormal basis and evaluate the objective."""
    g = predict_dlufm_geometry(N_IMB, lam, lam, M)
    K, d = 4, 7
    Q = _orthonormal(K, d)
    s = torch.as_tensor(g.layer_singular_values)  # (M, K)
    weights = [Q.T @ torch.diag(s[m]) @ Q for m in range(M - 1)] + [torch.diag(s[-1]) @ Q]
    labels = torch.repeat_interleave(torch.arange(K), torch.tensor(N_IMB))
    H = _stack(labels, torch.as_tensor(g.mean_norms)[:, None] * Q)
    f = dlufm_objective(H, weights, labels, lam, lam)
    assert float(f) == pytest.approx(g.objective, rel=1e-10)
    W = weights[-1]
    for w in reversed(weights[:-1]):
        W = W @ w
    np.testing.assert_allclose((W @ W.T).numpy(), g.WWt, atol=1e-9)
    # a small perturbation does not decrease it
    torch.manual_seed(1)
    assert float(dlufm_objective(H + 1e-4 * torch.randn_like(H), weights, labels, lam, lam)) >= float(f) - 1e-12


@pytest.mark.parametrize("M", [1, 3])
def test_bias_and_ce_minimisers_evaluate_to_their_objective(M: int) -> None:
    K, d, n = 4, 6, 100
    labels = torch.arange(K).repeat_interleave(n)
    Q = _orthonormal(K, d, seed=2)
    P = torch.eye(K, dtype=F64) - 1.0 / K
    # MSE with a bias: sigma^2 P, ||mu||^2 P, b = 1/K
    g = predict_dlufm_geometry([n] * K, LAM, LAM, M, bias=True)
    s = float(g.layer_singular_values[0, 0])
    proj = Q.T @ P @ Q
    weights = [s * proj for _ in range(M - 1)] + [s * P @ Q]
    H = _stack(labels, math.sqrt(g.MMt[0, 0] / (1 - 1 / K)) * P @ Q)
    f = dlufm_objective(H, weights, labels, LAM, LAM, bias=torch.as_tensor(g.bias_vector))
    assert float(f) == pytest.approx(g.objective, rel=1e-10)
    assert g.objective == pytest.approx({1: 0.01485, 3: 0.009471785}[M], rel=1e-6)
    # CE (balanced): the best simplex ETF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        c = predict_dlufm_geometry([n] * K, LAM, LAM, M, loss="ce")
    sig, eta = math.sqrt(c.sigma2[0]), math.sqrt(c.MMt[0, 0] / (1 - 1 / K))
    s = sig ** (1.0 / M)
    weights = [s * proj for _ in range(M - 1)] + [s * P @ Q]
    f = dlufm_objective(_stack(labels, eta * P @ Q), weights, labels, LAM, LAM, loss="ce")
    assert float(f) == pytest.approx(c.objective, rel=1e-9)


def test_ce_golden_values_and_the_deep_warning() -> None:
    g1 = predict_dlufm_geometry([100] * 4, LAM, LAM, 1, loss="ce")
    assert g1.objective == pytest.approx(0.0943617, abs=1e-7)
    assert g1.sigma2[0] == pytest.approx(52.832037, rel=1e-6)
    assert g1.WWt[0, 0] == pytest.approx(39.624028, rel=1e-6) and g1.MMt[0, 0] == pytest.approx(0.396240, rel=1e-5)
    g2 = predict_dlufm_geometry([100] * 4, LAM, LAM, 2, loss="ce")
    assert g2.objective == pytest.approx(0.0408023, abs=1e-7)
    with pytest.warns(UserWarning, match="need not be the global minimiser"):
        g3 = predict_dlufm_geometry([100] * 4, LAM, LAM, 3, loss="ce")
    assert g3.objective == pytest.approx(0.0276368, abs=1e-7)
    # very strong decay: everything collapses to 0 and the objective is log K
    g0 = predict_dlufm_geometry([10] * 4, 10.0, 10.0, 1, loss="ce")
    assert g0.objective == pytest.approx(math.log(4)) and g0.sigma2[0] == 0.0


# --------------------------------------------------------------------------- metrics
def _tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    H = torch.tensor(
        [[1, 0, 0], [1.2, 0.1, 0], [0.8, -0.1, 0.1], [0, 1, 0], [0.1, 0.9, 0],
         [0, 0, 1], [0, 0.2, 1.1], [0.1, 0, 0.9], [-0.1, 0, 1.0]], dtype=F64,
    )  # fmt: skip
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    W = torch.tensor([[1, 0.1, 0], [0, 1, 0], [0.1, 0, 0.8]], dtype=F64)
    return H, y, W


def test_metrics_golden_values() -> None:
    H, y, W = _tiny()
    etf, of = nc_metrics(H, y, W, target="etf"), nc_metrics(H, y, W, target="of")
    assert isinstance(etf, dict) and isinstance(of, dict)
    assert etf["NC1"] == pytest.approx(0.0129012, abs=1e-7) and of["NC1"] == etf["NC1"]
    assert etf["NC2_W"] == pytest.approx(0.726642, abs=1e-6) and of["NC2_W"] == pytest.approx(0.224978, abs=1e-6)
    assert etf["NC2_H"] == pytest.approx(0.267898, abs=1e-6) and of["NC2_H"] == pytest.approx(0.0796660, abs=1e-7)
    assert etf["NC3_WH"] == pytest.approx(0.239297, abs=1e-6) and of["NC3_WH"] == pytest.approx(0.154523, abs=1e-6)
    assert of["NC3_W"] == pytest.approx(0.150567, abs=1e-6)
    g = predict_dlufm_geometry([3, 2, 4], 0.05, 0.05, 1)
    assert g.B == pytest.approx(0.2025)
    np.testing.assert_allclose(g.x, [2.849002, 2.142697, 3.444444], atol=1e-6)
    np.testing.assert_allclose(g.sigma2, [1.282051, 0.964214, 1.55], atol=1e-6)
    gof = nc_metrics(H, y, W, target="gof", prediction=g)
    assert isinstance(gof, dict)
    for key, value in (("NC2_W", 0.375745), ("NC2_H", 0.148241), ("NC3_WH", 0.180228), ("NC3_W", 0.264167)):
        assert gof[key] == pytest.approx(value, abs=1e-6), key


def _random_problem(seed: int, N: int = 60, d: int = 9, K: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.arange(K), torch.randint(0, K, (N - K,), generator=g)])
    centres = 3.0 * torch.randn(K, d, dtype=F64, generator=g)
    H = centres[labels] + torch.randn(N, d, dtype=F64, generator=g)
    W = torch.randn(K, d, dtype=F64, generator=g)
    return H, labels, W


@HYP
@given(seed=st.integers(0, 10_000), target=st.sampled_from(["etf", "of", "gof"]), d=st.integers(3, 12))
def test_metrics_match_the_literal_reference(seed: int, target: str, d: int) -> None:
    H, y, W = _random_problem(seed, d=d, K=3)
    pred = predict_dlufm_geometry(torch.bincount(y).tolist(), 1e-3, 1e-3, 2) if target == "gof" else None
    ours = nc_metrics(H, y, W, target=target, prediction=pred)  # type: ignore[arg-type]
    ref = nc_metrics_reference(H.numpy(), y.numpy(), W.numpy(), target=target, prediction=pred)  # type: ignore[arg-type]
    assert isinstance(ours, dict)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_metrics_invariances_and_zeros() -> None:
    H, y, W = _random_problem(3)
    base = nc_metrics(H, y, W, target="etf")
    assert isinstance(base, dict)
    # NC1 = 0 when every sample is its class mean
    mu, _ = class_means(H, y, 4)
    collapsed = nc_metrics(mu[y], y, W)
    assert isinstance(collapsed, dict) and collapsed["NC1"] < 1e-25
    # rotating features and classifier together changes nothing; rescaling changes only NC1 (not at all here)
    Q, _ = torch.linalg.qr(torch.randn(9, 9, dtype=F64, generator=torch.Generator().manual_seed(0)))
    rotated = nc_metrics(H @ Q, y, W @ Q, target="etf")
    scaled = nc_metrics(3.0 * H, y, 0.2 * W, target="etf")
    assert isinstance(rotated, dict) and isinstance(scaled, dict)
    for key in ("NC1", "NC2_W", "NC2_H", "NC3_WH", "NC3_W"):
        assert rotated[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12)
        assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12)
    # the target frames score 0
    K, d = 4, 9
    P = torch.eye(K, dtype=F64) - 1.0 / K
    Q4 = _orthonormal(K, d)
    labels = torch.arange(K).repeat_interleave(5)
    etf = nc_metrics(2.0 * (P @ Q4)[labels] + 0.7, labels, 5.0 * P @ Q4, target="etf")  # shifted global mean
    of = nc_metrics((0.3 * Q4)[labels], labels, 2.0 * Q4, target="of")
    assert isinstance(etf, dict) and isinstance(of, dict)
    for key in ("NC1", "NC2_W", "NC2_H", "NC3_WH", "NC3_W"):
        assert etf[key] < 1e-12 and of[key] < 1e-12, key


def test_layerwise_metrics_follow_the_geometry_through_layers() -> None:
    """At the constructed minimiser every layer's features and classifier match ``at_layer``."""
    M = 3
    g = predict_dlufm_geometry(N_IMB, LAM, LAM, M)
    K, d = 4, 6
    Q = _orthonormal(K, d, seed=5)
    head = DeepLinearHead(d, K, M, init="default", dtype=F64)
    s = torch.as_tensor(g.layer_singular_values)
    with torch.no_grad():
        for m, layer in enumerate(head.layers):
            layer.weight.copy_(Q.T @ torch.diag(s[m]) @ Q if m < M - 1 else torch.diag(s[m]) @ Q)
    labels = torch.repeat_interleave(torch.arange(K), torch.tensor(N_IMB))
    H = (torch.as_tensor(g.mean_norms)[:, None] * Q)[labels]
    layers = head.nc_metrics(H, labels, target="gof", prediction=g, layerwise=True)
    assert isinstance(layers, list) and len(layers) == M
    for m, met in enumerate(layers):
        assert max(met[k] for k in ("NC1", "NC2_W", "NC2_H", "NC3_WH", "NC3_W")) < 1e-10, m
        np.testing.assert_allclose(met["mean_norms"].numpy(), g.at_layer(m).mean_norms, rtol=1e-10)
        np.testing.assert_allclose(met["classifier_norms"].numpy() ** 2, g.at_layer(m).classifier_norms2, rtol=1e-10)
    # layer-m class-mean norms are s_k^m ||mu_k||
    np.testing.assert_allclose(g.at_layer(2).mean_norms, s[0].numpy() ** 2 * g.mean_norms, rtol=1e-12)


def test_metrics_reject_bad_input() -> None:
    H, y, W = _tiny()
    with pytest.raises(ValueError, match="features must be 2-D"):
        nc_metrics(H[0], y, W)
    with pytest.raises(ValueError, match=r"W must have shape \(K, 3\)"):
        nc_metrics(H, y, W[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        nc_metrics(H.clone().fill_(float("nan")), y, W)
    with pytest.raises(ValueError, match="empty batch"):
        nc_metrics(H[:0], y[:0], W)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        nc_metrics(H, y + 1, W)
    with pytest.raises(ValueError, match=r"classes \[1\] have none"):
        nc_metrics(H[y != 1], y[y != 1], W)
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        nc_metrics(H, y.double(), W)
    with pytest.raises(ValueError, match="target must be one of"):
        nc_metrics(H, y, W, target="simplex")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs prediction"):
        nc_metrics(H, y, W, target="gof")
    with pytest.raises(ValueError, match="prediction has 4 classes"):
        nc_metrics(H, y, W, target="gof", prediction=predict_dlufm_geometry(N_IMB, LAM, LAM, 1))
    with pytest.raises(ValueError, match="same length"):
        nc_metrics([H, H], y, [W])


def test_predictor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n_per_class"):
        predict_dlufm_geometry([100], LAM, LAM, 1)
    with pytest.raises(ValueError, match="n_per_class"):
        predict_dlufm_geometry([100, 0], LAM, LAM, 1)
    with pytest.raises(ValueError, match="equal class sizes only"):
        predict_dlufm_geometry(N_IMB, LAM, LAM, 2, bias=True)
    with pytest.raises(ValueError, match="equal class sizes only"):
        predict_dlufm_geometry(N_IMB, LAM, LAM, 1, loss="ce")
    with pytest.raises(ValueError, match=r"lambda_H must be a float in \(0\.0, inf\)"):
        predict_dlufm_geometry(N_IMB, LAM, 0.0, 1)
    with pytest.raises(ValueError, match="lambda_W must be"):
        predict_dlufm_geometry(N_IMB, [LAM, LAM], LAM, 3)
    with pytest.raises(ValueError, match="lambda_W must be positive"):
        predict_dlufm_geometry(N_IMB, -1.0, LAM, 1)
    with pytest.raises(ValueError, match=r"M must be an int in \[1, inf\)"):
        predict_dlufm_geometry(N_IMB, LAM, LAM, 0)
    with pytest.raises(ValueError, match="beta must be"):
        solve_x(0.0, 2)


# --------------------------------------------------------------------------- objective, head, model, training
@pytest.mark.parametrize(("loss", "bias"), [("mse", False), ("mse", True), ("ce", False)])
def test_objective_gradcheck_and_formula(loss: str, bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    H = torch.randn(7, 4, dtype=F64, generator=g, requires_grad=True)
    ws = [torch.randn(4, 4, dtype=F64, generator=g, requires_grad=True), torch.randn(3, 4, dtype=F64, generator=g)]
    ws[1].requires_grad_(True)
    b = torch.randn(3, dtype=F64, generator=g, requires_grad=True) if bias else None
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    inputs = (H, *ws) + ((b,) if b is not None else ())

    def f(*args: torch.Tensor) -> torch.Tensor:
        bb = args[3] if bias else None
        return dlufm_objective(args[0], list(args[1:3]), y, [0.1, 0.2], 0.3, bias=bb, loss=loss, fit_scale=0.7)  # type: ignore[arg-type]

    assert torch.autograd.gradcheck(f, inputs)
    logits = H @ ws[0].T @ ws[1].T + (b if b is not None else 0)
    if loss == "mse":
        data = ((logits - torch.nn.functional.one_hot(y, 3)) ** 2).sum() / (2 * 7)
    else:
        data = torch.nn.functional.cross_entropy(logits, y)
    manual = 0.7 * data + 0.05 * (ws[0] ** 2).sum() + 0.1 * (ws[1] ** 2).sum() + 0.15 * (H**2).sum()
    torch.testing.assert_close(f(*inputs), manual)


def test_objective_rejects_bad_input() -> None:
    H, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="at least one layer"):
        dlufm_objective(H, [], y, 0.1, 0.1)
    with pytest.raises(ValueError, match="empty batch"):
        dlufm_objective(H[:0], [torch.randn(2, 3)], y[:0], 0.1, 0.1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        dlufm_objective(H, [torch.randn(2, 3)], y + 1, 0.1, 0.1)
    with pytest.raises(ValueError, match="loss must be one of"):
        dlufm_objective(H, [torch.randn(2, 3)], y, 0.1, 0.1, loss="hinge")  # type: ignore[arg-type]


def test_head_products_and_sep_decay_loss() -> None:
    head = DeepLinearHead(6, 3, 3, bias=True, generator=torch.Generator().manual_seed(0), dtype=F64)
    h = torch.randn(5, 6, dtype=F64)
    W = head.end_to_end()
    torch.testing.assert_close(head(h), h @ W.T + head.bias)
    feats, ws = head.layerwise(h)
    assert [f.shape for f in feats] == [(5, 6)] * 3 and [w.shape for w in ws] == [(3, 6)] * 3
    for f, w in zip(feats, ws):
        torch.testing.assert_close(f @ w.T, h @ W.T)
    # orthogonal init: the first layer is orthogonal
    torch.testing.assert_close(head.layers[0].weight @ head.layers[0].weight.T, torch.eye(6, dtype=F64))
    y = torch.tensor([0, 1, 2, 0, 1])
    expected = dlufm_objective(h, head.weights(), y, 0.01, 0.02, bias=head.bias)
    torch.testing.assert_close(head.sep_decay_loss(h, y, 0.01, 0.02), expected)
    with pytest.raises(ValueError, match="DeepLinearHead: depth"):
        DeepLinearHead(6, 3, 0)


def test_ufm_layout() -> None:
    model = DeepLinearUFM((3, 1, 2), d=4, M=2, generator=torch.Generator().manual_seed(0))
    assert model.H.shape == (6, 4) and model.H.dtype == F64
    assert model.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert model().shape == (6, 3)
    with pytest.raises(ValueError, match="n_per_class"):
        DeepLinearUFM((3,), d=4, M=2)


def test_trained_model_reaches_the_closed_form() -> None:
    """Imbalanced MSE, M = 2: SGD + L-BFGS reach f*, the class-wise norms, orthogonality and
    balanced layers (lambda_2 W_2^T W_2 = lambda_1 W_1 W_1^T; its precision is the gradient's / lambda)."""
    geo = predict_dlufm_geometry(N_IMB, LAM, LAM, 2)
    with limit_threads(1):
        model = DeepLinearUFM(N_IMB, d=8, M=2, generator=torch.Generator().manual_seed(0))
        hist = fit_ufm(model, sgd_iters=300, lbfgs_iters=1500)
    assert hist["final_loss"] == pytest.approx(geo.objective, rel=1e-9)
    m = model.nc_metrics(target="gof", prediction=geo)
    assert isinstance(m, dict)
    assert m["NC1"] < 1e-12 and m["NC2_W"] < 1e-5 and m["NC3_W"] < 1e-5
    W = model.head.end_to_end().detach()
    np.testing.assert_allclose((W @ W.T).numpy(), geo.WWt, atol=1e-5 * geo.sigma2.max())
    np.testing.assert_allclose(m["mean_norms"].numpy(), geo.mean_norms, rtol=1e-5)
    w1, w2 = (layer.weight.detach() for layer in model.head.layers)
    assert float((w2.T @ w2 - w1 @ w1.T).abs().max()) < 1e-5
    layers = model.nc_metrics(target="gof", prediction=geo, layerwise=True)
    assert isinstance(layers, list)
    np.testing.assert_allclose(layers[1]["mean_norms"].numpy(), geo.at_layer(1).mean_norms, rtol=1e-5)


def test_minority_collapse_is_a_minimum_that_no_start_beats() -> None:
    """M = 2, strong decay: from random starts nothing ends below f* (starts can stop at local
    minima: x = 0 is a local minimiser of the per-class problem for M >= 2); from a perturbed copy
    of the closed form, training returns to f* with the 50-sample classes at exactly 0."""
    lam, M, d = 0.01435, 2, 16
    geo = predict_dlufm_geometry(N_IMB, lam, lam, M)
    gen = torch.Generator().manual_seed(0)
    with limit_threads(1):
        for _ in range(2):
            model = DeepLinearUFM(N_IMB, d=d, M=M, init_std=0.5, generator=gen)
            hist = fit_ufm(model, lambda_W=lam, lambda_H=lam, sgd_iters=200, lr=0.02, lbfgs_iters=300)
            assert hist["final_loss"] >= geo.objective * (1 - 1e-12)
        Q = _orthonormal(4, d, seed=7)
        s = torch.as_tensor(geo.layer_singular_values)
        with torch.no_grad():
            model.H.copy_((torch.as_tensor(geo.mean_norms)[:, None] * Q)[model.labels])
            model.head.layers[0].weight.copy_(Q.T @ torch.diag(s[0]) @ Q)
            model.head.layers[1].weight.copy_(torch.diag(s[1]) @ Q)
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, dtype=F64, generator=gen))
        hist = fit_ufm(model, lambda_W=lam, lambda_H=lam, sgd_iters=0, lbfgs_iters=500)
    assert hist["final_loss"] == pytest.approx(geo.objective, rel=1e-9)
    W = model.head.end_to_end().detach()
    np.testing.assert_allclose((W**2).sum(1).numpy(), geo.classifier_norms2, atol=1e-6)


def test_fit_tracks_and_validates() -> None:
    model = DeepLinearUFM((2, 2), d=2, M=1, generator=torch.Generator().manual_seed(0))
    hist = fit_ufm(model, sgd_iters=4, lbfgs_iters=0, track=lambda m: {"loss": float(m.loss())}, track_every=2)
    assert [s for s, _ in hist["track"]] == [0, 2, 4, 4] and len(hist["sgd_losses"]) == 4
    with pytest.raises(ValueError, match="fit_ufm: lr"):
        fit_ufm(model, lr=-1.0)


# --------------------------------------------------------------------------- the official rule behind a flag
def test_largest_root_flag_keeps_the_official_configuration() -> None:
    """rule='largest_root' keeps the non-zero root between beta_crit and max g (a worse
    configuration: a larger objective); below beta_crit both rules agree."""
    assert solve_x(0.550083, 2, rule="largest_root") == pytest.approx(0.898654, abs=1e-6)
    assert solve_x(0.7, 2, rule="largest_root") == 0.0  # above max g = 0.6495...: no root at all
    for M in (1, 2, 3, 6):
        beta = 0.5 * beta_crit(M)
        assert solve_x(beta, M, rule="largest_root") == pytest.approx(solve_x(beta, M), rel=1e-12)
    n, lam = (200, 100, 50, 50), 0.01435  # the 50-sample classes sit between beta_crit and max g at M = 2
    ours = predict_dlufm_geometry(n, lam, lam, 2)
    code = predict_dlufm_geometry(n, lam, lam, 2, rule="largest_root")
    assert ours.collapsed.tolist() == [False, False, True, True]
    assert not code.collapsed.any() and code.objective > ours.objective
    np.testing.assert_allclose(code.sigma2[:2], ours.sigma2[:2], rtol=1e-12)
    with pytest.raises(ValueError, match="rule"):
        solve_x(0.1, 2, rule="largest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="official MSE rule"):
        predict_dlufm_geometry((10, 10), 1e-3, 1e-3, 2, loss="ce", rule="largest_root")


# --------------------------------------------------------------------------- a user's model and loader
def _net_and_loader(seed: int = 0) -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(40, 6, generator=g)
    y = torch.arange(40) % 3
    return net, [(x[i : i + 16], y[i : i + 16]) for i in range(0, 40, 16)]


def test_collect_features_matches_a_manual_forward() -> None:
    from paperzoo.analysis.neural_collapse import collect_features, nc_metrics_of_model

    net, loader = _net_and_loader()
    net.train()
    H, y, W = collect_features(net, loader, progress=False)
    assert net.training  # the mode is restored
    x_all = torch.cat([b[0] for b in loader])
    with torch.no_grad():
        expected = net[1](net[0](x_all))
    torch.testing.assert_close(H, expected)
    assert torch.equal(y, torch.cat([b[1] for b in loader])) and W is not net[2].weight
    torch.testing.assert_close(W, net[2].weight.detach())
    by_name = collect_features(net, loader, classifier="2", progress=False)
    torch.testing.assert_close(by_name[0], H)
    m = nc_metrics_of_model(net, loader, progress=False)
    ref = nc_metrics(H, y, W, target="etf")
    assert m["NC1"] == pytest.approx(ref["NC1"]) and m["NC2_W"] == pytest.approx(ref["NC2_W"])
    assert len(collect_features(net, loader, max_batches=1, progress=False)[0]) == 16
    with pytest.raises(ValueError, match="not a submodule"):
        collect_features(net, loader, classifier="head", progress=False)
    with pytest.raises(ValueError, match="empty loader"):
        collect_features(net, [], progress=False)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        collect_features(net, [torch.randn(4, 6)], progress=False)
    with pytest.raises(ValueError, match="no nn.Linear"):
        collect_features(torch.nn.ReLU(), loader, progress=False)


def test_plot_nc_metrics_returns_a_figure() -> None:
    import matplotlib.pyplot as plt

    from paperzoo.analysis.neural_collapse import plot_nc_metrics

    net, loader = _net_and_loader()
    H, y, W = (torch.randn(30, 5, dtype=F64), torch.arange(30) % 3, torch.randn(3, 5, dtype=F64))
    one = nc_metrics(H, y, W)
    for fig in (plot_nc_metrics(one), plot_nc_metrics([one, one], x=[1, 2], xlabel="epoch", title="t")):
        assert fig.axes and fig.axes[0].get_yscale() == "log"
        plt.close(fig)
    with pytest.raises(ValueError, match="no metrics"):
        plot_nc_metrics([])
    with pytest.raises(ValueError, match="x has"):
        plot_nc_metrics([one], x=[1, 2])


# --------------------------------------------------------------------------- the performance target
@pytest.mark.slow
def test_nc_metrics_on_50k_by_512_features_take_under_two_seconds() -> None:
    """The family's target: the NC metrics of 50,000 x 512 float32 features over 10 classes in < 2 s
    on 2 threads (best of 3, after a warm-up)."""
    import time

    g = torch.Generator().manual_seed(0)
    K, d, N = 10, 512, 50_000
    y = torch.arange(N) % K
    H = torch.randn(K, d, generator=g)[y] + 0.5 * torch.randn(N, d, generator=g)
    W = torch.randn(K, d, generator=g)
    with limit_threads(2):
        nc_metrics(H[:1000], y[:1000], W)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = nc_metrics(H, y, W, target="etf")
            times.append(time.perf_counter() - t0)
    assert math.isfinite(out["NC1"]) and out["NC1"] > 0
    assert min(times) < 2.0, times
