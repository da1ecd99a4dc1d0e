"""DDFA (latent label shift, Roberts et al. 2022): the golden topic-model example, the anchor
(SPA) recovery, NMF's non-uniqueness, permutation equivariance, the data generator, an
end-to-end run with strong and without shift, and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.adaptation.ddfa import (
    DDFA,
    DiscriminatorConfig,
    class_prior_error,
    discretize,
    domain_adjusted_posterior,
    domain_histogram,
    factorize_domain_histogram,
    hungarian_accuracy,
    naive_cluster_posterior,
    posterior_from_domain_posterior,
    successive_projection,
    topic_model_view,
)
from paperzoo.data.latent_label_shift import make_latent_label_shift, sample_domain_priors

# golden example: p(y|d) (K x r) and p(x|y) over 4 inputs (x0 anchor of y0, x3 anchor of y1)
P_Y_D = np.array([[0.8, 0.5, 0.1], [0.2, 0.5, 0.9]])
P_X_Y = np.array([[0.5, 0.0], [0.3, 0.2], [0.2, 0.3], [0.0, 0.5]])
M = P_X_Y @ P_Y_D  # p(x|d)
P_D_X = M / M.sum(axis=1, keepdims=True)  # uniform p(d)


def test_golden_domain_posterior_and_readout() -> None:
    expected_pdx = [
        [0.571429, 0.357143, 0.071429],
        [0.378378, 0.337838, 0.283784],
        [0.289474, 0.328947, 0.381579],
        [0.125, 0.3125, 0.5625],
    ]
    np.testing.assert_allclose(P_D_X, expected_pdx, atol=1e-6)
    pyx = posterior_from_domain_posterior(P_D_X, P_Y_D)
    np.testing.assert_allclose(pyx, [[1, 0], [0.567568, 0.432432], [0.368421, 0.631579], [0, 1]], atol=1e-6)
    adj = domain_adjusted_posterior(pyx, P_Y_D, np.array([0, 1, 2, 2]))
    np.testing.assert_allclose(adj, [[1, 0], [0.6, 0.4], [0.068966, 0.931034], [0, 1]], atol=1e-6)
    assert adj.argmax(axis=1).tolist() == [0, 0, 1, 1]


def test_exact_inputs_give_the_bayes_posterior_for_every_domain() -> None:
    pyx = posterior_from_domain_posterior(P_D_X, P_Y_D)
    for d in range(3):
        bayes = P_X_Y * P_Y_D[:, d]
        bayes /= bayes.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(domain_adjusted_posterior(pyx, P_Y_D, np.full(4, d)), bayes, atol=1e-12)


def test_spa_recovers_priors_exactly_on_the_anchor_example() -> None:
    assert successive_projection(P_D_X, 2).tolist() == [0, 3]
    p_y_d, p_x_y = topic_model_view(M, 2, method="spa")
    np.testing.assert_allclose(p_y_d, P_Y_D, atol=1e-10)
    np.testing.assert_allclose(p_x_y, P_X_Y, atol=1e-10)
    assert class_prior_error(P_Y_D, p_y_d) < 1e-9


def test_nmf_reconstructs_but_is_not_unique() -> None:
    errs = []
    for seed in range(4):
        p_y_d, p_x_y = factorize_domain_histogram(M, 2, method="nmf", seed=seed, max_iter=5000)
        np.testing.assert_allclose(p_y_d.sum(axis=0), 1.0, atol=1e-9)
        np.testing.assert_allclose(p_x_y.sum(axis=0), 1.0, atol=1e-9)
        np.testing.assert_allclose(p_x_y @ p_y_d, M, atol=2e-3)
        errs.append(class_prior_error(P_Y_D, p_y_d))
    assert max(errs) > 0.05  # the right reconstruction, not the right factors


def test_class_permutation_is_equivariant() -> None:
    perm = np.array([1, 0])
    pyx = posterior_from_domain_posterior(P_D_X, P_Y_D)
    pyx_p = posterior_from_domain_posterior(P_D_X, P_Y_D[perm])
    np.testing.assert_allclose(pyx_p, pyx[:, perm], atol=1e-12)
    d = np.array([0, 1, 2, 2])
    adj = domain_adjusted_posterior(pyx, P_Y_D, d)
    np.testing.assert_allclose(domain_adjusted_posterior(pyx_p, P_Y_D[perm], d), adj[:, perm], atol=1e-12)
    y = adj.argmax(axis=1)
    assert hungarian_accuracy(y, perm[y]) == 1.0
    assert class_prior_error(P_Y_D, P_Y_D[perm]) == 0.0


def test_naive_readout_and_histogram() -> None:
    h = domain_histogram(np.array([0, 1, 1, 2, 3, 3]), np.array([0, 0, 1, 1, 2, 2]), 4, 3)
    np.testing.assert_allclose(h.sum(axis=0), 1.0)
    post = naive_cluster_posterior(np.arange(4), np.array([0, 1, 2, 2]), P_X_Y, P_Y_D)
    np.testing.assert_allclose(post, [[1, 0], [0.6, 0.4], [0.068966, 0.931034], [0, 1]], atol=1e-6)


def test_generator_condition_number_and_equal_domains() -> None:
    y = np.repeat(np.arange(4), 300)
    lls = make_latent_label_shift(y, 6, alpha=0.5, max_cond=5.0, seed=1)
    assert np.linalg.cond(lls.priors) <= 5.0
    np.testing.assert_allclose(lls.priors.sum(axis=1), 1.0)
    sizes = np.bincount(lls.domain, minlength=6)
    assert sizes.max() - sizes.min() <= 4  # equal up to floor rounding (K = 4)
    np.testing.assert_array_equal(np.bincount(lls.domain * 4 + y[lls.index], minlength=24).reshape(6, 4), lls.counts)
    assert 300 - 6 <= lls.counts.sum(axis=0).max() <= 300  # the most demanded class: all its samples, less floors
    np.testing.assert_allclose(lls.class_given_domain, lls.priors.T, atol=0.02)
    per = make_latent_label_shift(y, 6, alpha=0.5, assignment="per-sample", seed=1)
    assert per.index.size == y.size and per.counts.sum() == y.size
    with pytest.raises(ValueError, match="max_cond"):
        sample_domain_priors(4, 5, 100.0, 1.0001, np.random.default_rng(0), max_tries=1024)


def _gaussian_domains(alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 500)
    x = rng.normal(size=(y.size, 6)) + 2.0 * np.eye(6)[y]
    lls = make_latent_label_shift(y, 6, alpha=alpha, max_cond=np.inf if alpha > 100 else 6.0, seed=seed)
    return x[lls.index], lls.domain, y[lls.index], lls.class_given_domain


@pytest.mark.parametrize("factorize", ["nmf", "spa"])
def test_end_to_end_strong_shift_recovers_classes(factorize: str) -> None:
    x, d, y, p_y_d = _gaussian_domains(0.5, 0)
    disc = DiscriminatorConfig(hidden=(), epochs=8, batch_size=128, lr=1e-2)
    model = DDFA(3, 6, 9, factorize=factorize, discriminator=disc, seed=0).fit(x, d)
    assert hungarian_accuracy(y, model.predict(x, d)) > 0.85
    assert class_prior_error(p_y_d, model.class_priors_) < 1.5  # of at most 2 r = 12
    proba = model.predict_proba(x, d)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_without_shift_the_domain_posterior_is_uninformative() -> None:
    # alpha -> infinity: every domain has (almost) the same prior, p(d|x) is constant and
    # DDFA's factorisation has nothing to work with; the exact read-out gives a constant posterior
    p_same = np.tile(np.array([[0.5], [0.5]]), (1, 3))
    m = P_X_Y @ p_same
    pdx = m / m.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pdx, 1 / 3)
    assert np.linalg.matrix_rank(pdx) == 1  # the K columns of p(d|y) cannot be told apart


def test_bad_input_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="n_clusters=10 is larger than the number of samples"):
        discretize(np.random.default_rng(0).random((5, 3)), 10)
    pyx = posterior_from_domain_posterior(P_D_X, P_Y_D)
    with pytest.raises(ValueError, match=r"domains must lie in \[0, 2\]"):
        domain_adjusted_posterior(pyx, P_Y_D, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match="domains must lie"):
        domain_adjusted_posterior(pyx, P_Y_D, np.array([0, -1, 2, 2]))
    with pytest.raises(ValueError, match="p_d_x must be finite"):
        posterior_from_domain_posterior(np.full((2, 3), np.nan), P_Y_D)
    with pytest.raises(ValueError, match="h must be non-negative"):
        factorize_domain_histogram(-M, 2)
    with pytest.raises(ValueError, match="n_classes=5 is larger than the number of clusters"):
        factorize_domain_histogram(M, 5)
    with pytest.raises(ValueError, match="method"):
        factorize_domain_histogram(M, 2, method="svd")
    with pytest.raises(ValueError, match="n_clusters=2 must be >= n_classes=3"):
        DDFA(3, 6, 2)
    with pytest.raises(ValueError, match="domains 2 have no samples|domains \\[2\\] have no samples"):
        domain_histogram(np.array([0, 1]), np.array([0, 1]), 2, 3)
    with pytest.raises(ValueError, match="alpha"):
        make_latent_label_shift(np.array([0, 1, 1]), 2, alpha=0.0, seed=0)
    with pytest.raises(ValueError, match="labels must not be empty"):
        make_latent_label_shift(np.array([], dtype=int), 2, alpha=1.0, seed=0)
    model = DDFA(2, 3, 4).fit_factorization(np.tile(P_D_X, (3, 1)), np.tile(np.array([0, 1, 2, 2]), 3))
    with pytest.raises(ValueError, match="domains must lie"):
        model.predict(None, np.array([0, 1, 5, 2]), p_d_x=P_D_X)
