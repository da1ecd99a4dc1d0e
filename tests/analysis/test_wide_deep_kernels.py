"""Tests of the infinitely wide and deep kernels and their limit classifiers (paper 19,
Radhakrishnan, Belkin & Uhler: the NNGP / NTK recursions, the three infinite-depth regimes, the
singular-kernel exponent alpha = 2 ln(1/xi'(0)) / ln xi'(1), the Dirichlet task, and finite-width
networks against the infinite-width kernels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paperzoo.analysis.wide_deep_kernels import (
    DIRICHLET_SETTINGS,
    DeepFCNet,
    ErfActivation,
    FunctionDual,
    HermiteActivation,
    NormalizedReLU,
    PolynomialDual,
    SineActivation,
    SineDual,
    agreement,
    alpha_exponent,
    deep_kernel_classifier,
    dirichlet_bayes_classifier,
    dirichlet_sphere_data,
    dual_activation,
    empirical_nngp,
    empirical_ntk,
    from_hermite_coeffs,
    hilbert_estimate,
    kernel_interpolation_classifier,
    kernel_pair,
    koenigs_function,
    majority_vote,
    nngp_kernel,
    ntk_kernel,
    one_nn,
    optimal_activation,
    reference_nngp_kernel,
    reference_ntk_kernel,
    regime,
    sine_parameter,
    singular_kernel_classifier,
    to_sphere,
)

F64 = torch.float64
NAMED = ["relu", "erf", "2d_opt", "3d_opt", "5d_opt", "9d_opt", "sine_1", "sine_2.676", "sine_13.8258", "hermite_2"]
# x1 = (1,0,0), x2 = (0.6,0.8,0), x3 = (0,0.6,0.8): <x1,x2> = 0.6, <x1,x3> = 0, <x2,x3> = 0.48
X3 = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]], dtype=F64)
PAIRS = [(0, 1), (0, 2), (1, 2)]


def sphere(n: int, d: int, seed: int) -> torch.Tensor:
    return to_sphere(torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64))


@pytest.fixture(scope="module")
def task3() -> tuple[np.ndarray, ...]:
    a1, a2 = DIRICHLET_SETTINGS[3]
    x, y, _ = dirichlet_sphere_data(120, a1, a2, 0.4, seed=3)
    xt, yt, sxt = dirichlet_sphere_data(400, a1, a2, 0.4, seed=4)
    return x, y, xt, yt, sxt


# --------------------------------------------------------------------------- golden values (float64 recursions)
GOLDEN = [
    # act, L, NNGP (12, 13, 23), NTK diag, NTK (12, 13, 23), unnormalised
    ("3d_opt", 1, (0.408, 0.0, 0.295296), 3.0, (1.032, 0.0, 0.701184)),
    ("3d_opt", 2, (0.237959, 0.0, 0.160523), 7.0, (1.01164, 0.0, 0.602829)),
    ("3d_opt", 5, (0.032056, 0.0, 0.0207575), 63.0, (0.254541, 0.0, 0.145952)),
    ("relu", 1, (0.677548, 0.318310, 0.595738), 2.0, (1.10045, 0.318310, 0.912232)),
    ("relu", 2, (0.733434, 0.493731, 0.674547), 3.0, (1.54442, 0.685709, 1.31597)),
    ("relu", 5, (0.833217, 0.735946, 0.806332), 6.0, (2.69959, 1.79220, 2.42175)),
    ("erf", 1, (0.563932, 0.0, 0.446371), 2.2257, (1.16201, 0.0, 0.909229)),
    ("erf", 5, (0.426201, 0.0, 0.326553), 10.5929, (2.84109, 0.0, 2.08429)),
    ("sine_2.676", 1, (0.330617, 0.0, 0.230736), 3.70148, (0.906049, 0.0, 0.576295)),
    ("sine_2.676", 5, (0.00724108, 0.0, 0.00466613), 227.859, (0.0555101, 0.0, 0.0321861)),
]


@pytest.mark.parametrize(("act", "L", "nngp", "diag", "ntk"), GOLDEN, ids=[f"{g[0]}-L{g[1]}" for g in GOLDEN])
def test_golden_kernels(act: str, L: int, nngp: tuple[float, ...], diag: float, ntk: tuple[float, ...]) -> None:
    S = nngp_kernel(X3, None, act, L)
    K = ntk_kernel(X3, None, act, L, normalize=False)
    for (i, j), s, k in zip(PAIRS, nngp, ntk):
        assert float(S[i, j]) == pytest.approx(s, rel=2e-5, abs=1e-9)
        assert float(K[i, j]) == pytest.approx(k, rel=2e-5, abs=1e-9)
    assert torch.allclose(torch.diagonal(K), torch.full((3,), diag, dtype=F64), rtol=1e-5)
    assert torch.equal(torch.diagonal(S), torch.ones(3, dtype=F64))
    # normalised NTK = unnormalised / its diagonal; the cross form agrees with the Gram form
    torch.testing.assert_close(ntk_kernel(X3, None, act, L) * K[0, 0], K, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(nngp_kernel(X3, X3, act, L).fill_diagonal_(1.0), S, rtol=1e-12, atol=1e-15)


DUAL_GOLDEN = {
    "3d_opt": (-0.3125, 0.1635, 0.5215),
    "5d_opt": (-0.03125, 0.12675, 0.50575),
    "9d_opt": (23 / 128, 0.0991875, 0.4939375),  # -1/32 + 7/32 - 1/128 = 23/128 exactly
    "sine_2.676": (-0.245472, 0.123371, 0.439580),
    "erf": (-0.465704, 0.275936, 0.665342),
}


@pytest.mark.parametrize("name", list(DUAL_GOLDEN))
def test_golden_duals(name: str) -> None:
    got = dual_activation(name)(torch.tensor([-0.5, 0.3, 0.7], dtype=F64))
    np.testing.assert_allclose(got.numpy(), DUAL_GOLDEN[name], rtol=5e-6)  # golden values to 6 digits


def test_golden_exponents_and_sine_parameters() -> None:
    for name, alpha in [("2d_opt", 1), ("3d_opt", 2), ("5d_opt", 4), ("9d_opt", 8), ("erf", 0.888215)]:
        assert alpha_exponent(name) == pytest.approx(alpha, rel=1e-6)
    for a, alpha in [(1.0, 1.18557), (2.676, 1.99996), (6.13539, 4.00000), (13.8258, 7.99998)]:
        assert alpha_exponent(SineDual(a)) == pytest.approx(alpha, abs=1e-5)
    for target in (2.0, 4.0, 8.0, 3.3):
        assert alpha_exponent(SineDual(sine_parameter(target))) == pytest.approx(target, rel=1e-10)
    assert sine_parameter(2.0) == pytest.approx(2.676, abs=1e-3)
    # the two-term family rho/2 + rho^m/2: alpha = 2 ln 2 / ln((1 + m) / 2), m = 7 -> 1, m = 3 -> 2
    for m in (3, 5, 7, 9):
        dual = PolynomialDual([0.0, 0.5] + [0.0] * (m - 2) + [0.5])
        assert alpha_exponent(dual) == pytest.approx(2 * math.log(2) / math.log((1 + m) / 2))


def test_optimal_activation_matches_the_intrinsic_dimension() -> None:
    for d in range(2, 12):
        dual = optimal_activation(d)
        assert regime(dual).kind == "singular" and alpha_exponent(dual) == pytest.approx(d - 1, rel=1e-9)
    assert dual_activation("3d_opt").coeffs == optimal_activation(3).coeffs  # type: ignore[attr-defined]
    assert isinstance(optimal_activation(3, prefer="sine"), SineDual)
    assert isinstance(optimal_activation(2, prefer="sine"), PolynomialDual)  # the sine family has alpha > 1
    with pytest.raises(ValueError, match="d must be"):
        optimal_activation(1)
    with pytest.raises(ValueError, match="target_alpha"):
        sine_parameter(0.9)


# --------------------------------------------------------------------------- normalisation and dual = E[phi phi]
def _gauss_hermite_dual(phi: torch.nn.Module, rho: float, nodes: int = 80) -> float:
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    u = np.repeat(z, nodes)
    e = np.tile(z, nodes)
    v = rho * u + math.sqrt(max(1.0 - rho * rho, 0.0)) * e
    ww = np.repeat(w, nodes) * np.tile(w, nodes)
    with torch.no_grad():
        pu = phi(torch.from_numpy(u)).numpy()
        pv = phi(torch.from_numpy(v)).numpy()
    return float(np.sum(ww * pu * pv))


@pytest.mark.parametrize("name", NAMED)
def test_dual_is_the_gaussian_expectation_of_its_activation(name: str) -> None:
    dual = dual_activation(name)
    assert float(dual(torch.ones(1, dtype=F64))) == pytest.approx(1.0, abs=1e-12)
    phi = dual.module()
    tol = 5e-3 if name == "relu" else 1e-6  # the kink of ReLU limits the quadrature
    for rho in (-0.7, 0.0, 0.3, 0.9):
        expected = float(dual(torch.tensor([rho], dtype=F64)))
        assert _gauss_hermite_dual(phi, rho) == pytest.approx(expected, abs=tol), rho


@pytest.mark.parametrize("name", NAMED)
def test_in_place_evaluations_match_the_reference(name: str) -> None:
    dual = dual_activation(name)
    rho = torch.linspace(-1.0, 1.0, 101, dtype=F64)[1:-1]
    leaf = rho.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(dual(leaf).sum(), leaf)
    torch.testing.assert_close(dual.derivative(rho), auto, rtol=1e-10, atol=1e-12)
    work = [torch.empty_like(rho) for _ in range(max(dual.n_work, 2))]
    got, d_out = rho.clone(), torch.empty_like(rho)
    dual.apply_(got, work)
    torch.testing.assert_close(got, dual(rho), rtol=1e-13, atol=1e-15)
    dual.derivative_into(rho, d_out, work)
    torch.testing.assert_close(d_out, dual.derivative(rho), rtol=1e-13, atol=1e-15)
    r2, d2 = rho.clone(), torch.empty_like(rho)
    dual.step_(r2, d2, work)
    torch.testing.assert_close(r2, dual(rho), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(d2, dual.derivative(rho), rtol=1e-13, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(coeffs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12).filter(lambda c: sum(c) > 1e-3))
def test_sparse_horner_matches_the_power_sum(coeffs: list[float]) -> None:
    dual = from_hermite_coeffs(coeffs)
    rho = torch.linspace(-1.0, 1.0, 33, dtype=F64)
    work = [torch.empty_like(rho) for _ in range(2)]
    got, d_out = rho.clone(), torch.empty_like(rho)
    dual.apply_(got, work)
    dual.derivative_into(rho, d_out, work)
    c = np.asarray(dual.coeffs)
    r = rho.numpy()
    np.testing.assert_allclose(got.numpy(), np.polyval(c[::-1], r), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d_out.numpy(), np.polyval(np.polyder(c[::-1]), r), rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- regimes
def test_regime_rules() -> None:
    assert regime("relu").kind == "majority"  # xi(0) = 1/pi
    assert regime(from_hermite_coeffs([1, 0, 3])).kind == "majority"
    for k in (2, 3, 5):
        assert regime(f"hermite_{k}") == ("1nn", math.inf)
    assert regime("hermite_1").kind == "linear"
    assert regime("3d_opt") == ("singular", pytest.approx(2.0))
    assert dual_activation("relu").value_at_zero == pytest.approx(1 / math.pi)
    assert dual_activation("relu").slope_at_one == pytest.approx(1.0)
    with pytest.raises(ValueError, match="majority"):
        alpha_exponent("relu")


# --------------------------------------------------------------------------- recursions
def test_nngp_is_psd_with_unit_diagonal_and_ntk_diagonal_is_a_geometric_sum() -> None:
    x = sphere(40, 5, 0)
    for name in ("3d_opt", "relu", "sine_2.676", "erf"):
        S = nngp_kernel(x, None, name, [1, 3, 10])
        assert torch.equal(torch.diagonal(S, dim1=1, dim2=2), torch.ones(3, 40, dtype=F64))
        assert float(torch.linalg.eigvalsh(S).min()) > -1e-10
        assert torch.equal(S, S.transpose(1, 2))
        K = ntk_kernel(x, x, name, 4, normalize=False)
        slope = dual_activation(name).slope_at_one
        torch.testing.assert_close(torch.diagonal(K), torch.full((40,), sum(slope**j for j in range(5)), dtype=F64))
    assert float(ntk_kernel(X3, None, "3d_opt", 10, normalize=False)[0, 0]) == 2.0**11 - 1
    assert float(ntk_kernel(X3, None, "relu", 10, normalize=False)[0, 0]) == 11.0


@pytest.mark.parametrize("name", ["3d_opt", "2d_opt", "5d_opt", "relu", "erf", "sine_2.676", "hermite_3"])
def test_chunked_recursion_matches_the_naive_reference(name: str) -> None:
    x1, x2 = sphere(15, 4, 1), sphere(23, 4, 2)
    depths = [0, 1, 2, 7, 20]
    S = nngp_kernel(x1, x2, name, depths, chunk=17)
    K = ntk_kernel(x1, x2, name, depths, normalize=False, chunk=17)
    for i, L in enumerate(depths):
        torch.testing.assert_close(S[i], reference_nngp_kernel(x1, x2, name, L), rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(K[i], reference_ntk_kernel(x1, x2, name, L), rtol=1e-9, atol=1e-14)
        # element-wise recursion: the chunk size and the depth list change at most the last bits
        # (vectorised and scalar transcendental functions may round differently)
        torch.testing.assert_close(S[i], nngp_kernel(x1, x2, name, L), rtol=1e-13, atol=1e-300)
    g, c = kernel_pair(x1, x2, name, depths, "ntk")
    torch.testing.assert_close(g, ntk_kernel(x1, None, name, depths), rtol=1e-13, atol=1e-300)
    torch.testing.assert_close(c, ntk_kernel(x1, x2, name, depths), rtol=1e-13, atol=1e-300)


def test_deep_ntk_without_normalisation_overflows_but_the_normalised_one_does_not() -> None:
    K = ntk_kernel(X3, None, "3d_opt", 2000)
    assert bool(torch.isfinite(K).all()) and float(K[0, 0]) == 1.0
    assert not bool(torch.isfinite(ntk_kernel(X3, None, "3d_opt", 2000, normalize=False)).all())


def test_log_space_equals_the_rescaled_plain_kernel_where_nothing_underflows() -> None:
    x1, x2 = sphere(10, 3, 3), sphere(12, 3, 4)
    for k, L in [(2, 3), (3, 2)]:
        plain = nngp_kernel(x1, x2, f"hermite_{k}", L)
        logk = nngp_kernel(x1, x2, f"hermite_{k}", L, log_space=True)
        torch.testing.assert_close(logk, plain / plain.abs().amax(dim=0, keepdim=True), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        nngp_kernel(x1, None, "hermite_2", 3, log_space=True), nngp_kernel(x1, None, "hermite_2", 3), rtol=1e-9, atol=0
    )
    with pytest.raises(ValueError, match="monomial"):
        nngp_kernel(x1, x2, "3d_opt", 3, log_space=True)


# --------------------------------------------------------------------------- the Koenigs limit g
def test_koenigs_constants_and_functional_equation() -> None:
    eps = torch.tensor([1e-1, 1e-2, 1e-4, 1e-6], dtype=F64)
    np.testing.assert_allclose(
        (koenigs_function("3d_opt", 1 - eps) * eps).numpy(), [0.559116, 0.600622, 0.605122, 0.605167], rtol=2e-6
    )
    assert float(koenigs_function("5d_opt", torch.tensor([1 - 1e-6], dtype=F64))[0]) * 1e-12 == pytest.approx(
        1.4649, rel=1e-4
    )
    assert float(koenigs_function("9d_opt", torch.tensor([1 - 1e-4], dtype=F64))[0]) * 1e-16 == pytest.approx(
        11.50, rel=1e-3
    )
    rho = torch.linspace(-0.99, 0.99, 41, dtype=F64)
    for name in ("3d_opt", "sine_2.676", "erf", "5d_opt"):
        dual = dual_activation(name)
        g = koenigs_function(dual, rho)
        # g(xi(rho)) = xi'(0) g(rho), g(0) = 0, g'(0) = 1
        torch.testing.assert_close(koenigs_function(dual, dual(rho)), dual.slope_at_zero * g, rtol=1e-9, atol=1e-12)
        small = torch.tensor([1e-8, -1e-8], dtype=F64)
        torch.testing.assert_close(koenigs_function(dual, small), small, rtol=1e-6, atol=0)
    assert float(koenigs_function("3d_opt", torch.tensor([1.0]))[0]) == math.inf
    with pytest.raises(ValueError, match="regime"):
        koenigs_function("relu", rho)


# --------------------------------------------------------------------------- classifiers and the three regimes
def test_deep_kernels_reach_their_predicted_limit_rules(task3: tuple[np.ndarray, ...]) -> None:
    x, y, xt, _, _ = task3
    deep = deep_kernel_classifier(x, y, xt, "3d_opt", 100)
    assert agreement(deep, singular_kernel_classifier(x, y, xt, "3d_opt")) >= 0.995
    assert agreement(deep, hilbert_estimate(x, y, xt, 2.0)) >= 0.98
    nonzero_mean = deep_kernel_classifier(x, y, xt, from_hermite_coeffs([1, 0, 3]), 200)
    np.testing.assert_array_equal(nonzero_mean, majority_vote(y, xt))
    k_train = nngp_kernel(x, None, "hermite_2", 24, log_space=True)
    k_test = nngp_kernel(x, xt, "hermite_2", 24, log_space=True)
    assert agreement(kernel_interpolation_classifier(k_train, y, k_test), one_nn(x, y, xt)) >= 0.99


def test_interpolation_classifier_fits_the_training_labels_and_handles_many_classes() -> None:
    x = sphere(30, 4, 5)
    K = nngp_kernel(x, None, "relu", 3)
    y2 = np.where(np.arange(30) % 3 == 0, 1.0, -1.0)
    np.testing.assert_array_equal(kernel_interpolation_classifier(K, y2, K), y2)
    y3 = np.arange(30) % 3
    np.testing.assert_array_equal(kernel_interpolation_classifier(K, y3, K), y3)
    np.testing.assert_array_equal(kernel_interpolation_classifier(K, np.zeros(30), K[:, :5]), np.zeros(5))
    with pytest.raises(ValueError, match="square"):
        kernel_interpolation_classifier(K[:, :5], y2, K)
    with pytest.raises(ValueError, match="K_test"):
        kernel_interpolation_classifier(K, y2, K[:5])
    with pytest.raises(ValueError, match=r"shape \(30,\)"):
        kernel_interpolation_classifier(K, y2[:5], K)
    with pytest.raises(ValueError, match="singular"):
        kernel_interpolation_classifier(np.ones((3, 3)), np.array([1.0, -1.0, 1.0]), np.ones((3, 1)))


def test_hilbert_estimate_limits_and_classical_rules() -> None:
    x, xt = sphere(25, 3, 6).numpy(), sphere(40, 3, 7).numpy()
    y = np.where(np.arange(25) < 10, 1.0, -1.0)
    # alpha = 0: equal weights, the sign of sum y = the majority vote
    np.testing.assert_array_equal(hilbert_estimate(x, y, xt, 0.0), majority_vote(y, xt))
    # alpha -> inf: the nearest training point dominates
    np.testing.assert_array_equal(hilbert_estimate(x, y, xt, 400.0), one_nn(x, y, xt))
    # a test point on a training point takes its label; the log-space weights do not overflow
    np.testing.assert_array_equal(hilbert_estimate(x, y, x, 2.0), y)
    assert majority_vote(np.array([1, 1, -1, -1]), np.zeros((3, 2))).tolist() == [-1, -1, -1]  # tie: smaller
    assert agreement([1, 2, 3], np.array([1, 0, 3])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="alpha"):
        hilbert_estimate(x, y, xt, -1.0)


# --------------------------------------------------------------------------- Dirichlet data
def test_dirichlet_data_and_bayes_classifier() -> None:
    from scipy.stats import dirichlet

    a1, a2 = DIRICHLET_SETTINGS[3]
    x, y, sx = dirichlet_sphere_data(500, a1, a2, 0.4, seed=9)
    assert x.shape == (500, 3) and sx.shape == (500, 3) and set(np.unique(y)) == {-1.0, 1.0}
    assert int((y > 0).sum()) == 200  # exactly int(n * prior1) of class +1, as the official generator
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0)
    np.testing.assert_allclose(sx.sum(axis=1), 1.0)
    np.testing.assert_array_equal(dirichlet_sphere_data(500, a1, a2, 0.4, seed=9)[0], x)
    assert not np.array_equal(dirichlet_sphere_data(500, a1, a2, 0.4, seed=10)[0], x)
    pred = dirichlet_bayes_classifier(sx, a1, a2, 0.4)
    inside = (sx > 1e-12).all(axis=1)
    ref = np.where(
        dirichlet.logpdf(sx[inside].T, a1) + np.log(0.4) > dirichlet.logpdf(sx[inside].T, a2) + np.log(0.6), 1.0, -1.0
    )
    np.testing.assert_array_equal(pred[inside], ref)
    assert float(np.mean(pred == y)) > 0.9  # the d = 3 setting is easy for the Bayes classifier
    with pytest.raises(ValueError, match="alpha1"):
        dirichlet_sphere_data(10, (1.0, -1.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="prior1"):
        dirichlet_sphere_data(10, a1, a2, prior1=1.0)
    with pytest.raises(ValueError, match="same length"):
        dirichlet_sphere_data(10, a1, (1.0, 1.0))


# --------------------------------------------------------------------------- finite width
def test_empirical_ntk_equals_the_parameter_jacobian_gram() -> None:
    torch.manual_seed(0)
    net = DeepFCNet(3, 7, 3, "3d_opt", generator=torch.Generator().manual_seed(1)).double()
    x = sphere(5, 3, 8)
    params = dict(net.named_parameters())

    def f(p: dict[str, torch.Tensor], xx: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(net, p, (xx,)).squeeze(-1)

    jac = torch.func.jacrev(f)(params, x)
    flat = torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], dim=1)
    torch.testing.assert_close(empirical_ntk(net, x), flat @ flat.T, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(net, x, x[:2]), (flat @ flat.T)[:, :2], rtol=1e-10, atol=1e-12)


def test_wide_random_networks_approach_the_infinite_width_kernels() -> None:
    gen = torch.Generator().manual_seed(0)
    net = DeepFCNet(3, 3000, 2, SineActivation(2.676), generator=gen).double()
    S, K = nngp_kernel(X3, None, "sine_2.676", 2), ntk_kernel(X3, None, "sine_2.676", 2, normalize=False)
    assert float((empirical_nngp(net, X3) - S).abs().max()) < 0.05
    assert float(((empirical_ntk(net, X3) - K).abs() / K[0, 0]).max()) < 0.05
    # polynomial activations drift in norm with depth at finite width (the squared-norm map has
    # slope > 1 at its fixed point); pre-activation normalisation keeps the kernel near its limit
    plain = DeepFCNet(3, 1000, 4, "3d_opt", generator=torch.Generator().manual_seed(0)).double()
    normed = DeepFCNet(3, 1000, 4, "3d_opt", normalize_preactivations=True, generator=torch.Generator().manual_seed(0))
    normed = normed.double()
    target = nngp_kernel(X3, None, "3d_opt", 4)
    err_plain = float((empirical_nngp(plain, X3) - target).abs().max())
    err_normed = float((empirical_nngp(normed, X3) - target).abs().max())
    assert err_normed < 0.3 and err_plain > 1.0
    with pytest.raises(ValueError, match="normalisation"):
        empirical_ntk(normed, X3)


@pytest.mark.parametrize(
    "module",
    [HermiteActivation([0.1, 0.5, -0.3, 0.7]), SineActivation(2.676), ErfActivation(), NormalizedReLU()],
    ids=["hermite", "sine", "erf", "relu"],
)
def test_activation_gradcheck(module: torch.nn.Module) -> None:
    z = torch.linspace(-2.3, 2.1, 9, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradcheck(module, (z,))


def test_reference_kernel_gradcheck() -> None:
    x1 = (sphere(3, 3, 11) * 0.9).requires_grad_(True)  # inside the ball: no clipping at +-1
    x2 = sphere(4, 3, 12) * 0.9
    assert torch.autograd.gradcheck(lambda a: reference_nngp_kernel(a, x2, "3d_opt", 3), (x1,))
    assert torch.autograd.gradcheck(lambda a: reference_ntk_kernel(a, x2, "sine_2.676", 2), (x1,))


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors() -> None:
    x = sphere(4, 3, 0)
    with pytest.raises(ValueError, match="unit sphere"):
        nngp_kernel(x * 2.0, None, "3d_opt", 2)
    with pytest.raises(ValueError, match="NaN"):
        nngp_kernel(torch.full((2, 3), float("nan")), None, "3d_opt", 2)
    with pytest.raises(ValueError, match="empty"):
        nngp_kernel(torch.zeros(0, 3), None, "3d_opt", 2)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        nngp_kernel(torch.ones(3), None, "3d_opt", 2)
    with pytest.raises(ValueError, match="columns"):
        ntk_kernel(x, sphere(4, 5, 1), "3d_opt", 2)
    with pytest.raises(ValueError, match="depth must be an int in"):
        nngp_kernel(x, None, "3d_opt", -1)
    with pytest.raises(ValueError, match="depth"):
        nngp_kernel(x, None, "3d_opt", [])
    with pytest.raises(ValueError, match="unknown activation"):
        dual_activation("swish")
    with pytest.raises(ValueError, match="sum to 1"):
        PolynomialDual([0.5, 0.2])
    with pytest.raises(ValueError, match="non-negative"):
        from_hermite_coeffs([1.0, -0.5])
    with pytest.raises(ValueError, match="a must be"):
        SineDual(0.0)
    with pytest.raises(ValueError, match="xi\\(1\\) must be 1"):
        FunctionDual("half", lambda r: r / 2, lambda r: torch.full_like(r, 0.5))
    with pytest.raises(ValueError, match="kernel must be"):
        kernel_pair(x, x, "3d_opt", 2, "gp")
    with pytest.raises(ValueError, match="zero rows"):
        to_sphere(torch.zeros(2, 3))


# --------------------------------------------------------------------------- a user's own model
def _last_layer_trained(width: int, seed: int = 0):
    from torch.utils.data import DataLoader, TensorDataset

    from paperzoo.analysis.wide_deep_kernels import DeepFCNet, dirichlet_sphere_data

    x, y, _ = dirichlet_sphere_data(60, (0.5, 0.5, 2.5), (2.5, 0.1, 0.5), 0.4, seed)
    xt, yt, _ = dirichlet_sphere_data(200, (0.5, 0.5, 2.5), (2.5, 0.1, 0.5), 0.4, seed + 1)
    net = DeepFCNet(3, width, 2, "sine_2.676", generator=torch.Generator().manual_seed(seed)).double()
    with torch.no_grad():
        a = net.hidden(torch.from_numpy(x))[-1]
        net.weights[-1].copy_((torch.linalg.pinv(a) @ torch.from_numpy(y)[:, None]).T)
    train = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16)
    test = DataLoader(TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt)), batch_size=50)
    return net, train, test


def test_limit_agreement_user_model_wide_network_matches_the_limit():
    from paperzoo.analysis.wide_deep_kernels import limit_agreement, plot_limit_agreement

    wide, train, test = _last_layer_trained(4096)
    narrow, _, _ = _last_layer_trained(8)
    res_w = limit_agreement(wide, train, test, "sine_2.676", 2, progress=False)
    res_n = limit_agreement(narrow, train, test, "sine_2.676", 2, progress=False)
    assert res_w.agree_limit > 0.95 and res_w.agree_limit > res_n.agree_limit
    assert res_w.rule.startswith("singular") and 0.0 <= res_w.agree_rule <= 1.0
    assert res_w.model_pred.shape == (200,) and set(np.unique(res_w.model_pred)) <= {-1.0, 1.0}
    fig = plot_limit_agreement({"width 4096": res_w, "width 8": res_n})
    assert len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_limit_agreement_bad_input():
    from paperzoo.analysis.wide_deep_kernels import limit_agreement, plot_limit_agreement

    net, train, test = _last_layer_trained(16)
    with pytest.raises(ValueError):
        limit_agreement(net, [], test, "sine_2.676", 2, progress=False)
    with pytest.raises(TypeError):
        limit_agreement(lambda x: x, train, test, "sine_2.676", 2, progress=False)
    with pytest.raises(ValueError):
        limit_agreement(net, train, test, "sine_2.676", 2, kernel="rbf", progress=False)
    with pytest.raises(ValueError):
        plot_limit_agreement({})
