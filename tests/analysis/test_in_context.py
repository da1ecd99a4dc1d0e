"""Tests of the one-layer linear self-attention tools (paper 47, Mahankali, Hashimoto & Ma, ICLR
2024): the collapse of the LSA prediction to m^T Gamma x_q, the closed-form optimum (one step of
GD, preconditioned by Sigma^-1 when w ~ N(0, Sigma^-1)), its loss, Monte-Carlo cross-checks and
golden values computed from the closed forms in float64."""

from __future__ import annotations

import math

import pytest
import torch

from paperzoo.analysis.in_context import (
    LinearRegressionPrompts,
    LinearSelfAttention,
    PromptBatch,
    best_scalar_gd_step,
    build_prompt,
    compare_lsa_to_gd,
    cross_moment,
    least_squares_predict,
    monte_carlo_optimal_gamma,
    one_step_gd_predict,
    optimal_gamma,
    optimal_loss,
    optimal_step_size,
    population_loss,
    prompt_moments,
    ridge_posterior_mean_predict,
    tanh_single_index,
)

F64 = torch.float64
EYE2 = torch.eye(2, dtype=F64)
SIG2 = torch.diag(torch.tensor([2.0, 0.5], dtype=F64))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(d: int, seed: int) -> torch.Tensor:
    A = torch.randn(d, d, dtype=F64, generator=gen(seed))
    return A @ A.T / d + 0.3 * torch.eye(d, dtype=F64)


def random_model(d: int, seed: int, **kw: object) -> LinearSelfAttention:
    torch.manual_seed(seed)
    return LinearSelfAttention(d, init_std=0.5, dtype=F64, **kw)  # type: ignore[arg-type]


def golden_prompt() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
    return X, torch.tensor([1.0, -1.0, 0.5], dtype=F64), torch.tensor([0.5, 2.0], dtype=F64)


# --------------------------------------------------------------------------- the LSA layer
@pytest.mark.parametrize("parametrization", ["full", "merged"])
@pytest.mark.parametrize("mask_query", [True, False])
@pytest.mark.parametrize("normalize_by_n", [True, False])
def test_token_level_forward_and_fast_predict_agree(
    parametrization: str, mask_query: bool, normalize_by_n: bool
) -> None:
    model = random_model(4, 0, parametrization=parametrization, mask_query=mask_query, normalize_by_n=normalize_by_n)
    Z = torch.randn(7, 9, 5, dtype=F64, generator=gen(1))
    out = model(Z)
    assert out.shape == Z.shape
    torch.testing.assert_close(model.predict(Z), out[:, -1, -1], rtol=1e-10, atol=1e-10)


def test_forward_matches_the_per_token_formula() -> None:
    """out_j = z_j + (1/n) sum_{i <= n} (z_i^T W_KQ z_j) W_PV z_i, written as a loop over tokens."""
    model = random_model(3, 2)
    Z = torch.randn(2, 6, 4, dtype=F64, generator=gen(3))
    W_KQ, W_PV = model.merged_weights()
    n = Z.shape[1] - 1
    expected = torch.stack(
        [
            torch.stack(
                [
                    Z[b, j] + sum((Z[b, i] @ W_KQ @ Z[b, j]) * (W_PV @ Z[b, i]) for i in range(n)) / n
                    for j in range(n + 1)
                ]
            )
            for b in range(2)
        ]
    )
    torch.testing.assert_close(model(Z), expected)


def test_prediction_collapses_to_the_cross_moment_form() -> None:
    """y_hat = m^T Gamma x_q + v_x^T S A x_q + v_y s b^T x_q, Gamma = v_y A + v_x b^T."""
    d, n = 3, 8
    model = random_model(d, 4)
    batch = LinearRegressionPrompts(d, n, noise_std=0.3, generator=gen(5), dtype=F64).sample(6, return_parts=True)
    assert isinstance(batch, PromptBatch)
    p = model.blocks()
    m = cross_moment(batch.X, batch.y)
    S = batch.X.transpose(1, 2) @ batch.X / n
    s = (batch.y**2).mean(dim=1)
    gamma = model.effective_gamma()
    odd = torch.einsum("bi,ij,bj->b", m, gamma, batch.x_q)
    even = torch.einsum("i,bij,jk,bk->b", p["v_x"], S, p["A"], batch.x_q) + p["v_y"] * s * (batch.x_q @ p["b"])
    torch.testing.assert_close(model.predict(batch.Z), odd + even)
    torch.testing.assert_close(gamma, p["v_y"] * p["A"] + torch.outer(p["v_x"], p["b"]))


@pytest.mark.parametrize("parametrization", ["full", "merged"])
def test_from_gamma_implements_one_step_gd(parametrization: str) -> None:
    d, n = 4, 10
    Gamma = torch.randn(d, d, dtype=F64, generator=gen(6))  # any matrix, not only symmetric ones
    model = LinearSelfAttention.from_gamma(Gamma, parametrization=parametrization)
    batch = LinearRegressionPrompts(d, n, noise_std=0.5, generator=gen(7), dtype=F64).sample(20, return_parts=True)
    assert isinstance(batch, PromptBatch)
    expected = one_step_gd_predict(batch.X, batch.y, batch.x_q, Gamma)
    torch.testing.assert_close(model.predict(batch.Z), expected)
    torch.testing.assert_close(model(batch.Z)[:, -1, -1], expected)
    torch.testing.assert_close(model.effective_gamma(), Gamma)
    # the query token in the keys/values adds only v_x-terms, which are 0 here
    masked_off = LinearSelfAttention.from_gamma(Gamma, parametrization=parametrization, mask_query=False)
    torch.testing.assert_close(masked_off.predict(batch.Z), expected)
    # without the 1/n the prediction is n times larger, and effective_gamma(n) says so
    raw = LinearSelfAttention.from_gamma(Gamma, parametrization=parametrization, normalize_by_n=False)
    torch.testing.assert_close(raw.predict(batch.Z), n * expected)
    torch.testing.assert_close(raw.effective_gamma(n), n * Gamma)


def test_prediction_is_invariant_under_the_weight_symmetries() -> None:
    d = 3
    Z = torch.randn(5, 8, d + 1, dtype=F64, generator=gen(8))
    Z[:, -1, -1] = 0.0
    model = random_model(d, 9, parametrization="merged")
    base = model.predict(Z)
    with torch.no_grad():
        rescaled = random_model(d, 9, parametrization="merged")
        rescaled.W_PV[d].mul_(-2.5)  # v -> c v
        rescaled.W_KQ[:, :d].div_(-2.5)  # [A; b^T] -> [A; b^T] / c
        torch.testing.assert_close(rescaled.predict(Z), base)
        edited = random_model(d, 9, parametrization="merged")
        edited.W_PV[:d] = torch.randn(d, d + 1, dtype=F64, generator=gen(10))  # first d rows of W_V
        edited.W_KQ[:, d] = torch.randn(d + 1, dtype=F64, generator=gen(11))  # last column of W_KQ
        torch.testing.assert_close(edited.predict(Z), base)
        torch.testing.assert_close(edited.effective_gamma(), model.effective_gamma())
        full = random_model(d, 12, parametrization="full")
        before = full.predict(Z)
        R = torch.randn(d + 1, d + 1, dtype=F64, generator=gen(13)) + 3 * torch.eye(d + 1, dtype=F64)
        full.W_K.copy_(R @ full.W_K)
        full.W_Q.copy_(torch.linalg.inv(R).T @ full.W_Q)
        torch.testing.assert_close(full.predict(Z), before)


def test_residual_never_reaches_the_prediction_of_a_prompt() -> None:
    """The query's label slot is 0 in a prompt, so the residual adds nothing to y_hat."""
    model = LinearSelfAttention.from_gamma(torch.zeros(3, 3, dtype=F64))
    Z, _ = LinearRegressionPrompts(3, 5, generator=gen(14), dtype=F64).sample(4)
    assert torch.equal(model.predict(Z), torch.zeros(4, dtype=F64))
    torch.testing.assert_close(model(Z), Z)  # zero weights: only the residual


def test_gradcheck_of_both_forward_passes() -> None:
    model = random_model(2, 15)
    Z = torch.randn(3, 4, 3, dtype=F64, generator=gen(16), requires_grad=True)
    W = tuple(model.parameters())
    assert torch.autograd.gradcheck(lambda z, *w: model.predict(z), (Z, *W))
    assert torch.autograd.gradcheck(lambda z, *w: model(z), (Z, *W))


# --------------------------------------------------------------------------- golden values
def test_golden_closed_forms() -> None:
    inv = torch.linalg.inv(SIG2)
    assert optimal_step_size(2, 3, 0.1) == pytest.approx(0.491803, abs=1e-6)
    torch.testing.assert_close(optimal_gamma(EYE2, EYE2, 0.1, 3), 0.491803 * EYE2, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        optimal_gamma(SIG2, inv, 0.1, 3), torch.diag(torch.tensor([0.245902, 0.983607], dtype=F64)), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        optimal_gamma(SIG2, EYE2, 0.1, 3), torch.diag(torch.tensor([0.283019, 0.652174], dtype=F64)), atol=1e-6, rtol=0
    )
    assert optimal_loss(EYE2, EYE2, 0.1, 3) == pytest.approx(1.116393, abs=1e-6)
    assert optimal_loss(SIG2, inv, 0.1, 3) == pytest.approx(1.116393, abs=1e-6)
    assert optimal_loss(SIG2, EYE2, 0.1, 3) == pytest.approx(1.304881, abs=1e-6)
    eta = best_scalar_gd_step(SIG2, inv, 0.1, 3)
    assert eta == pytest.approx(0.289296, abs=1e-6)
    assert population_loss(eta, SIG2, inv, 0.1, 3) == pytest.approx(1.376760, abs=1e-6)
    S3 = torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=F64))
    assert optimal_loss(torch.eye(5, dtype=F64), torch.eye(5, dtype=F64), 0.25, 20) == pytest.approx(1.440476, abs=1e-6)
    assert optimal_loss(S3, torch.linalg.inv(S3), 0.25, 10) == pytest.approx(1.144737, abs=1e-6)
    torch.testing.assert_close(
        optimal_gamma(S3, torch.eye(3, dtype=F64), 0.25, 10).diagonal(),
        torch.tensor([0.202020, 0.606061, 1.212121], dtype=F64),
        atol=1e-6,
        rtol=0,
    )
    assert optimal_loss(S3, torch.eye(3, dtype=F64), 0.25, 10) == pytest.approx(1.585859, abs=1e-6)


def test_golden_predictions_on_one_prompt() -> None:
    X, y, x_q = golden_prompt()
    torch.testing.assert_close(cross_moment(X, y), torch.tensor([0.5, -1 / 6], dtype=F64))
    expected = {
        "iso": (optimal_gamma(EYE2, EYE2, 0.1, 3), -0.0409836),
        "precond": (optimal_gamma(SIG2, torch.linalg.inv(SIG2), 0.1, 3), -0.266393),
        "sigma_only": (optimal_gamma(SIG2, EYE2, 0.1, 3), -0.146637),
    }
    for gamma, value in expected.values():
        assert float(one_step_gd_predict(X, y, x_q, gamma)) == pytest.approx(value, abs=1e-6)
    assert float(one_step_gd_predict(X, y, x_q, optimal_step_size(2, 3, 0.1))) == pytest.approx(-0.0409836, abs=1e-6)
    lsa = LinearSelfAttention.from_gamma(expected["precond"][0], parametrization="full")
    Z = build_prompt(X[None], y[None], x_q[None])
    assert float(lsa(Z).detach()[0, -1, -1]) == pytest.approx(-0.266393, abs=1e-6)
    assert float(ridge_posterior_mean_predict(X, y, x_q, EYE2, 0.1)) == pytest.approx(-0.960411, abs=1e-6)


# --------------------------------------------------------------------------- the optimum
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_gamma_special_cases_and_symmetry(seed: int) -> None:
    d, n, s2 = 4, 7, 0.3
    eta = optimal_step_size(d, n, s2)
    eye = torch.eye(d, dtype=F64)
    torch.testing.assert_close(optimal_gamma(eye, eye, s2, n), eta * eye)
    Sigma = random_spd(d, seed)
    inv = torch.linalg.inv(Sigma)
    torch.testing.assert_close(optimal_gamma(Sigma, inv, s2, n), eta * inv)
    Omega = random_spd(d, seed + 10)
    G = optimal_gamma(Sigma, Omega, s2, n)
    torch.testing.assert_close(G, G.T)
    # the normal equations E[mm^T] Gamma* = E[mw^T], and the paper's form n((tr + s2) I + (n+1) Omega Sigma)^-1 Omega
    mm, mw = prompt_moments(Sigma, Omega, s2, n)
    torch.testing.assert_close(mm @ G, mw)
    c = float(torch.trace(Omega @ Sigma)) + s2
    torch.testing.assert_close(G, n * torch.linalg.solve(c * eye + (n + 1) * Omega @ Sigma, Omega))


def test_population_loss_is_a_strictly_convex_quadratic_minimised_at_gamma_star() -> None:
    d, n, s2 = 3, 6, 0.2
    Sigma, Omega = random_spd(d, 20), random_spd(d, 21)
    G = optimal_gamma(Sigma, Omega, s2, n)
    best = optimal_loss(Sigma, Omega, s2, n)
    assert population_loss(G, Sigma, Omega, s2, n) == pytest.approx(best, rel=1e-12)
    mm, _ = prompt_moments(Sigma, Omega, s2, n)
    for k in range(10):
        D = torch.randn(d, d, dtype=F64, generator=gen(30 + k))
        curvature = float(torch.trace(Sigma @ D.T @ mm @ D))
        for t in (1e-3, 0.1, 1.0, -0.5):
            excess = population_loss(G + t * D, Sigma, Omega, s2, n) - best
            assert excess > 0
            assert excess == pytest.approx(t * t * curvature, rel=1e-8)


def test_monte_carlo_loss_matches_the_closed_form() -> None:
    d, n, s2 = 3, 10, 0.25
    Sigma = torch.diag(torch.tensor([4.0, 1.0, 0.25], dtype=F64))
    Omega = torch.linalg.inv(Sigma)
    law = LinearRegressionPrompts(d, n, Sigma, Omega, math.sqrt(s2), generator=gen(40), dtype=F64)
    batch = law.sample(100_000, return_parts=True)
    assert isinstance(batch, PromptBatch)
    for gamma in (law.optimal_gamma(), 0.3 * torch.eye(d, dtype=F64), random_spd(d, 41) / 3):
        mc = float(((one_step_gd_predict(batch.X, batch.y, batch.x_q, gamma) - batch.y_q) ** 2).mean())
        assert mc == pytest.approx(population_loss(gamma, Sigma, Omega, s2, n), rel=0.02)
    m = cross_moment(batch.X, batch.y)
    mm, mw = prompt_moments(Sigma, Omega, s2, n)
    torch.testing.assert_close(m.T @ m / len(m), mm, atol=0.03 * float(mm.abs().max()), rtol=0)
    torch.testing.assert_close(m.T @ batch.w / len(m), mw, atol=0.03 * float(mw.abs().max()), rtol=0)


def test_optimal_loss_is_the_same_for_every_sigma_when_omega_is_its_inverse() -> None:
    d, n, s2 = 4, 9, 0.4
    eta = optimal_step_size(d, n, s2)
    expected = d * (d + 1 + s2) / (n + d + 1 + s2) + s2
    assert expected == pytest.approx(d * (1 - eta) + s2)
    for seed in range(5):
        Sigma = random_spd(d, 50 + seed)
        assert optimal_loss(Sigma, torch.linalg.inv(Sigma), s2, n) == pytest.approx(expected, rel=1e-10)
    # more context: eta -> 1 and the loss -> the noise floor
    eye = torch.eye(d, dtype=F64)
    assert optimal_step_size(d, 10**7, s2) == pytest.approx(1.0, abs=1e-5)
    assert optimal_loss(eye, eye, s2, 10**7) == pytest.approx(s2, abs=1e-5)


def test_preconditioning_beats_the_best_scalar_step_unless_sigma_is_isotropic() -> None:
    d, n, s2 = 4, 9, 0.25
    for seed in range(4):
        Sigma = random_spd(d, 60 + seed)
        inv = torch.linalg.inv(Sigma)
        scalar = population_loss(best_scalar_gd_step(Sigma, inv, s2, n), Sigma, inv, s2, n)
        assert optimal_loss(Sigma, inv, s2, n) < scalar - 1e-6
        # the best scalar step is the best multiple of I
        eta = best_scalar_gd_step(Sigma, inv, s2, n)
        for f in (0.9, 1.1):
            assert population_loss(f * eta, Sigma, inv, s2, n) > scalar
    iso = 2.5 * torch.eye(d, dtype=F64)
    inv = torch.linalg.inv(iso)
    scalar = population_loss(best_scalar_gd_step(iso, inv, s2, n), iso, inv, s2, n)
    assert optimal_loss(iso, inv, s2, n) == pytest.approx(scalar, rel=1e-12)
    # Omega = Sigma^-1: eta_scalar = n tr(Sigma) / ((n + d + 1 + s2) tr(Sigma^2))
    Sigma = random_spd(d, 70)
    expected = n * float(torch.trace(Sigma)) / ((n + d + 1 + s2) * float(torch.trace(Sigma @ Sigma)))
    assert best_scalar_gd_step(Sigma, torch.linalg.inv(Sigma), s2, n) == pytest.approx(expected, rel=1e-12)


def test_monte_carlo_optimum_matches_the_closed_form_for_linear_responses() -> None:
    Sigma = torch.diag(torch.tensor([2.0, 1.0, 0.5], dtype=F64))
    law = LinearRegressionPrompts(3, 12, Sigma, torch.linalg.inv(Sigma), 0.5, generator=gen(80), dtype=F64)
    est = monte_carlo_optimal_gamma(law, num_prompts=100_000)
    G = law.optimal_gamma()
    assert float(torch.linalg.norm(est.gamma - G) / torch.linalg.norm(G)) < 0.03
    assert est.loss == pytest.approx(law.optimal_loss(), rel=0.03)
    assert est.num_prompts == 100_000 and est.scalar_loss >= est.loss


def test_nonlinear_responses_keep_a_multiple_of_the_identity() -> None:
    """tanh(w^T x), w ~ N(0, I): Gamma* = eta_f I with eta_f = n E|g|^2 / (E[y^2 |x|^2] + (n - 1) E|g|^2)."""
    d, n = 4, 10
    law = LinearRegressionPrompts(d, n, noise_std=0.3, target_fn=tanh_single_index, generator=gen(81), dtype=F64)
    est = monte_carlo_optimal_gamma(law, num_prompts=100_000)
    iso = torch.trace(est.gamma) / d
    assert float(torch.linalg.norm(est.gamma - iso * torch.eye(d, dtype=F64)) / torch.linalg.norm(est.gamma)) < 0.05
    g2 = float(torch.trace(est.cross))  # E|g_f|^2 = E[y_i y_j x_i^T x_j]
    y2x2 = n * float(torch.trace(est.second_moment)) - (n - 1) * g2
    assert est.scalar_step == pytest.approx(n * g2 / (y2x2 + (n - 1) * g2), rel=1e-10)
    assert float(iso) == pytest.approx(est.scalar_step, rel=0.03)
    with pytest.raises(ValueError, match="linear responses"):
        law.optimal_gamma()


# --------------------------------------------------------------------------- predictors and prompts
def test_predictors_are_odd_in_y_and_ridge_limits() -> None:
    law = LinearRegressionPrompts(3, 8, noise_std=0.4, generator=gen(90), dtype=F64)
    b = law.sample(50, return_parts=True)
    assert isinstance(b, PromptBatch)
    G = random_spd(3, 91)
    torch.testing.assert_close(one_step_gd_predict(b.X, -b.y, b.x_q, G), -one_step_gd_predict(b.X, b.y, b.x_q, G))
    torch.testing.assert_close(
        one_step_gd_predict(b.X, b.y, b.x_q, G[None].expand(50, 3, 3)), one_step_gd_predict(b.X, b.y, b.x_q, G)
    )
    # ridge with no noise and n >= d is least squares; ridge = (X^T X + s2 Omega^-1)^-1 X^T y
    torch.testing.assert_close(
        ridge_posterior_mean_predict(b.X, b.y, b.x_q, None, 0.0), least_squares_predict(b.X, b.y, b.x_q)
    )
    Omega = random_spd(3, 92)
    A = b.X.transpose(1, 2) @ b.X + 0.16 * torch.linalg.inv(Omega)
    w = torch.linalg.solve(A, (b.X.transpose(1, 2) @ b.y[..., None]))[..., 0]
    torch.testing.assert_close(ridge_posterior_mean_predict(b.X, b.y, b.x_q, Omega, 0.16), (w * b.x_q).sum(1))


def test_bayes_ridge_beats_the_best_one_step_gd() -> None:
    law = LinearRegressionPrompts(5, 20, noise_std=0.5, generator=gen(93), dtype=F64)
    b = law.sample(5_000, return_parts=True)
    assert isinstance(b, PromptBatch)
    ridge = float(((ridge_posterior_mean_predict(b.X, b.y, b.x_q, None, 0.25) - b.y_q) ** 2).mean())
    gd = float(((one_step_gd_predict(b.X, b.y, b.x_q, law.optimal_gamma()) - b.y_q) ** 2).mean())
    assert ridge < 0.5 * gd
    assert gd == pytest.approx(law.optimal_loss(), rel=0.05)


def test_prompt_sampler_law_and_layout() -> None:
    d, n = 3, 6
    Sigma, Omega = random_spd(d, 100), random_spd(d, 101)
    law = LinearRegressionPrompts(d, n, Sigma, Omega, noise_std=0.0, generator=gen(102), dtype=F64)
    b = law.sample(40_000, return_parts=True)
    assert isinstance(b, PromptBatch)
    assert b.Z.shape == (40_000, n + 1, d + 1) and b.y_q.shape == (40_000,)
    assert torch.equal(b.Z[:, -1, -1], torch.zeros(40_000, dtype=F64))
    assert torch.equal(b.Z[:, :n, :d], b.X) and torch.equal(b.Z[:, :n, d], b.y) and torch.equal(b.Z[:, n, :d], b.x_q)
    torch.testing.assert_close(b.y, torch.einsum("bnd,bd->bn", b.X, b.w))  # noise-free: exactly linear
    torch.testing.assert_close(b.y_q, (b.x_q * b.w).sum(1))
    x = b.X.reshape(-1, d)
    torch.testing.assert_close(x.T @ x / len(x), Sigma, atol=0.03, rtol=0)
    torch.testing.assert_close(b.w.T @ b.w / len(b.w), Omega, atol=0.05, rtol=0)
    z1, _ = LinearRegressionPrompts(d, n, generator=gen(7)).sample(5)
    z2, _ = LinearRegressionPrompts(d, n, generator=gen(7)).sample(5)
    assert torch.equal(z1, z2) and z1.dtype == torch.float32
    noisy = LinearRegressionPrompts(1, 2000, noise_std=0.7, generator=gen(103), dtype=F64).sample(20, return_parts=True)
    assert isinstance(noisy, PromptBatch)
    resid = noisy.y - noisy.X[..., 0] * noisy.w
    assert float(resid.std()) == pytest.approx(0.7, rel=0.03)


def test_compare_lsa_to_gd_is_zero_at_the_optimum_and_detects_a_wrong_model() -> None:
    law = LinearRegressionPrompts(3, 10, noise_std=0.5, generator=gen(110), dtype=F64)
    G = law.optimal_gamma()
    at_opt = compare_lsa_to_gd(LinearSelfAttention.from_gamma(G, parametrization="full"), law, n_eval=3000)
    assert at_opt["gamma_rel_error"] < 1e-12 and at_opt["pred_rel_mse"] < 1e-20
    assert at_opt["vx_over_vy"] == 0.0 and at_opt["b_over_A"] == 0.0
    assert at_opt["loss_lsa"] == pytest.approx(at_opt["loss_gd"], rel=1e-12)
    assert at_opt["pop_loss_gamma"] == pytest.approx(at_opt["optimal_loss"], rel=1e-12)
    off = compare_lsa_to_gd(LinearSelfAttention.from_gamma(0.5 * G), law, n_eval=3000)
    assert off["gamma_rel_error"] == pytest.approx(0.5) and off["pop_loss_gamma"] > off["optimal_loss"]


def test_the_optimum_is_a_stationary_point_of_the_weights() -> None:
    """At the weights of Gamma* (v_x = 0, b = 0) the loss gradient in v_x and b vanishes on a batch
    closed under (w, eps) -> -(w, eps): the non-GD terms are even, the residual is odd. (The
    gradient in A is the normal equations, checked in closed form above.)"""
    d, n = 3, 10
    law = LinearRegressionPrompts(d, n, noise_std=0.5, generator=gen(120), dtype=F64)
    Z, y_q = law.sample(2_000)
    Z_flip = Z.clone()
    Z_flip[:, :, -1] *= -1
    Z, y_q = torch.cat([Z, Z_flip]), torch.cat([y_q, -y_q])

    def grads(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = LinearSelfAttention.from_gamma(gamma)
        ((model.predict(Z) - y_q) ** 2).mean().backward()
        return model.W_KQ.grad, model.W_PV.grad  # type: ignore[return-value]

    G = law.optimal_gamma()
    g_kq, g_pv = grads(G)
    assert float(g_pv[d, :d].abs().max()) < 1e-12 and float(g_kq[d, :d].abs().max()) < 1e-12  # v_x, b
    assert float(g_pv[:d].abs().max()) == 0.0  # the first d rows of W_V never reach the prediction
    g_kq, g_pv = grads(0.8 * G)  # away from Gamma*, v_y and A feel a pull (and v_x, b still none)
    assert float(g_kq[:d, :d].abs().max()) > 1e-3 and float(g_pv[d, d].abs()) > 1e-3
    assert float(g_pv[d, :d].abs().max()) < 1e-12 and float(g_kq[d, :d].abs().max()) < 1e-12


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    model = LinearSelfAttention(3)
    with pytest.raises(ValueError, match="d \\+ 1 = 4 columns"):
        model.predict(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="shape \\(B, n \\+ 1, d \\+ 1\\)"):
        model(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(torch.full((2, 5, 4), math.nan))
    with pytest.raises(ValueError, match="empty batch"):
        model.predict(torch.zeros(0, 5, 4))
    with pytest.raises(ValueError, match="at least one context token"):
        model.predict(torch.zeros(2, 1, 4))
    with pytest.raises(TypeError, match="floating-point"):
        model.predict(torch.zeros(2, 5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="parametrization must be one of"):
        LinearSelfAttention(3, parametrization="softmax")
    with pytest.raises(ValueError, match="d must be an int in \\[1, inf\\)"):
        LinearSelfAttention(0)
    with pytest.raises(ValueError, match="give the context length n"):
        LinearSelfAttention(3, normalize_by_n=False).effective_gamma()
    with pytest.raises(ValueError, match="Sigma must be positive definite"):
        LinearRegressionPrompts(2, 5, Sigma=torch.diag(torch.tensor([1.0, 0.0])))
    with pytest.raises(ValueError, match="Omega must be symmetric"):
        LinearRegressionPrompts(2, 5, Omega=torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="Sigma must have shape \\(2, 2\\)"):
        LinearRegressionPrompts(2, 5, Sigma=torch.eye(3))
    with pytest.raises(ValueError, match="noise_std must be a float in \\[0, inf\\)"):
        LinearRegressionPrompts(2, 5, noise_std=-1.0)
    with pytest.raises(ValueError, match="target_fn must return shape"):
        LinearRegressionPrompts(2, 5, target_fn=lambda X, w: X[..., 0, 0]).sample(3)
    with pytest.raises(ValueError, match="noise_var must be a float in \\[0, inf\\)"):
        optimal_gamma(EYE2, EYE2, -0.1, 3)
    with pytest.raises(ValueError, match="n must be an int in \\[1, inf\\)"):
        optimal_loss(EYE2, EYE2, 0.1, 0)
    with pytest.raises(ValueError, match="Gamma must have shape \\(2, 2\\)"):
        population_loss(torch.eye(3, dtype=F64), EYE2, EYE2, 0.1, 3)
    X, y, x_q = golden_prompt()
    with pytest.raises(ValueError, match="gamma must have shape"):
        one_step_gd_predict(X, y, x_q, torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match="y must have shape \\(3,\\)"):
        one_step_gd_predict(X, y[:2], x_q, 0.5)
    with pytest.raises(ValueError, match="x_q must have shape"):
        ridge_posterior_mean_predict(X[None], y[None], x_q, None, 0.1)
    with pytest.raises(ValueError, match="gamma must be a float"):
        one_step_gd_predict(X, y, x_q, math.nan)
    with pytest.raises(ValueError, match="n >= 2"):
        monte_carlo_optimal_gamma(LinearRegressionPrompts(2, 1), num_prompts=10)


# --------------------------------------------------------------------------- a user's model and prompt loader
def test_fit_effective_gamma_recovers_an_exact_gd_model_and_a_trained_lsa():
    from paperzoo.analysis.in_context import fit_effective_gamma

    f64 = torch.float64
    law = LinearRegressionPrompts(3, 10, torch.eye(3, dtype=f64), torch.eye(3, dtype=f64), 0.5, None,
                                  torch.Generator().manual_seed(0), f64)  # fmt: skip
    G = law.optimal_gamma() + 0.01 * torch.arange(9, dtype=f64).reshape(3, 3)
    loader = [law.sample(500) for _ in range(4)]  # (Z, y_q) batches, as a DataLoader gives
    fit = fit_effective_gamma(LinearSelfAttention.from_gamma(G), loader, progress=False)
    assert torch.allclose(fit.gamma, G, atol=1e-10) and fit.residual_fraction < 1e-10 and fit.num_prompts == 2000

    class Wrapped(torch.nn.Module):  # a user's module without .predict, token-level output
        def __init__(self) -> None:
            super().__init__()
            self.lsa = LinearSelfAttention.from_gamma(G, parametrization="full")

        def forward(self, Z: torch.Tensor) -> torch.Tensor:
            return self.lsa(Z)

    fit2 = fit_effective_gamma(Wrapped(), iter(loader), progress=True, max_batches=2)
    assert torch.allclose(fit2.gamma, G, atol=1e-10) and fit2.num_prompts == 1000
    with pytest.raises(ValueError, match="no prompt"):
        fit_effective_gamma(Wrapped(), [], progress=False)


def test_fit_effective_gamma_with_torch_dataloader_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch.utils.data import DataLoader, TensorDataset

    from paperzoo.analysis.in_context import fit_effective_gamma, plot_gamma

    f32 = torch.float32
    law = LinearRegressionPrompts(2, 8, torch.eye(2), torch.eye(2), 0.1, None, torch.Generator().manual_seed(1), f32)
    Z, y_q = law.sample(600)
    G = 0.5 * torch.eye(2)
    fit = fit_effective_gamma(LinearSelfAttention.from_gamma(G), DataLoader(TensorDataset(Z, y_q), batch_size=200),
                              progress=False)  # fmt: skip
    assert torch.allclose(fit.gamma, G.double(), atol=1e-5)
    fig = plot_gamma(fit.gamma, G.double(), tol=0.05, title="user model")
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
