"""SharedVarianceGaussianNB (paper 09's naive Bayes with a class-shared diagonal covariance):
properties and golden values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import check_estimator

from paperzoo.models.gaussian_nb import SharedVarianceGaussianNB

# golden values computed by hand from the model's formulas (mirroring the official code)
X_GOLD = np.array([[0, 1], [0.5, 1.5], [1, 0.5], [3, 2], [3.5, 3], [2.5, 2.5], [4, 2.2]], dtype=np.float64)
Y_GOLD = np.array([0, 0, 0, 1, 1, 1, 1])
T_GOLD = np.array([[1.8, 1.7], [2.2, 2.0], [3.0, 2.5]])


def _data(seed: int, m: int = 60, n: int = 5, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(m) % k
    x = rng.normal(size=(m, n)) * rng.uniform(0.5, 2.0, size=n) + 1.5 * rng.normal(size=(k, n))[y]
    return x, y


def test_golden_values() -> None:
    nb = SharedVarianceGaussianNB().fit(X_GOLD, Y_GOLD)
    np.testing.assert_allclose(nb.theta_, [[0.5, 1.0], [3.25, 2.425]], atol=1e-6)
    np.testing.assert_allclose(nb.class_prior_, [0.428571, 0.571429], atol=1e-6)
    np.testing.assert_allclose(nb.class_var_, [[0.166667, 0.166667], [0.3125, 0.141875]], atol=1e-6)
    np.testing.assert_allclose(nb.var_, [0.25, 0.1525], atol=1e-6)
    scores = nb.class_scores(T_GOLD)
    np.testing.assert_allclose(
        scores, [[-5.833855, -6.487976], [-9.905986, -3.356829], [-20.724347, -0.703058]], atol=1e-5
    )
    np.testing.assert_array_equal(nb.predict(T_GOLD), [0, 1, 1])
    np.testing.assert_array_equal(np.argmax(T_GOLD @ nb.coef_.T + nb.intercept_, axis=1), [0, 1, 1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5))
def test_linear_form_matches_predictions(seed: int, k: int) -> None:
    x, y = _data(seed, k=k)
    nb = SharedVarianceGaussianNB().fit(x, y)
    xt = _data(seed + 1, k=k)[0]
    np.testing.assert_array_equal(nb.predict(xt), nb.classes_[np.argmax(xt @ nb.coef_.T + nb.intercept_, axis=1)])
    # the linear form differs from the scores by a class-independent term only
    gap = xt @ nb.coef_.T + nb.intercept_ - nb.class_scores(xt)
    np.testing.assert_allclose(gap, np.repeat(gap[:, :1], k, axis=1), rtol=1e-9, atol=1e-8)


def test_pooled_variance_formula() -> None:
    x, y = _data(3, m=47, k=4)  # unbalanced classes
    nb = SharedVarianceGaussianNB(var_smoothing=1e-3).fit(x, y)
    pis = np.array([np.mean(y == c) for c in range(4)])
    v = np.stack([x[y == c].var(axis=0) + 1e-3 for c in range(4)])
    np.testing.assert_allclose(nb.class_var_, v, rtol=1e-12)
    np.testing.assert_allclose(nb.var_, (pis[:, None] * v).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(nb.coef_, nb.theta_ / nb.var_, rtol=1e-12)


def test_equals_nearest_class_mean_with_equal_priors_and_variances() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(10, 4))
    base -= base.mean(axis=0)
    base /= base.std(axis=0)  # every feature has within-class variance exactly 1
    means = rng.normal(scale=2.0, size=(3, 4))
    x = np.concatenate([base + mu for mu in means])
    y = np.repeat(np.arange(3), 10)
    nb = SharedVarianceGaussianNB().fit(x, y)
    np.testing.assert_allclose(nb.var_, np.ones(4), rtol=1e-6)
    xt = rng.normal(scale=3.0, size=(200, 4))
    nearest = np.argmin(((xt[:, None, :] - nb.theta_[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nb.predict(xt), nearest)


def test_equals_sklearn_gaussian_nb_when_class_spreads_coincide() -> None:
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(25, 3)) * np.array([0.5, 1.0, 2.0])
    x1 = x0 + np.array([2.0, -1.0, 3.0])  # class 1 = class 0 shifted: same per-class variances
    x = np.concatenate([x0, x1])
    y = np.repeat([0, 1], 25)
    ours = SharedVarianceGaussianNB().fit(x, y)
    ref = GaussianNB().fit(x, y)
    np.testing.assert_allclose(ours.var_, ref.var_[0], rtol=1e-6)
    xt = rng.normal(scale=3.0, size=(500, 3))
    np.testing.assert_array_equal(ours.predict(xt), ref.predict(xt))
    np.testing.assert_allclose(ours.predict_proba(xt), ref.predict_proba(xt), atol=1e-6)


def test_differs_from_sklearn_gaussian_nb_when_spreads_differ() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(scale=0.2, size=(200, 1)), rng.normal(scale=3.0, size=(200, 1))])
    y = np.repeat([0, 1], 200)
    xt = np.linspace(-8, 8, 161)[:, None]
    ours = SharedVarianceGaussianNB().fit(x, y).predict(xt)
    quad = GaussianNB().fit(x, y).predict(xt)
    assert (ours != quad).any()  # GaussianNB is quadratic (class 0 only near 0), ours linear


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_invariant_to_shift_and_positive_rescaling(seed: int) -> None:
    x, y = _data(seed)
    rng = np.random.default_rng(seed)
    xt = _data(seed + 7)[0]
    scale, shift = rng.uniform(0.2, 5.0, size=x.shape[1]), rng.normal(scale=10.0, size=x.shape[1])
    a = SharedVarianceGaussianNB(var_smoothing=0.0).fit(x, y)
    b = SharedVarianceGaussianNB(var_smoothing=0.0).fit(x * scale + shift, y)
    np.testing.assert_allclose(b.class_scores(xt * scale + shift), a.class_scores(xt), rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(b.predict(xt * scale + shift), a.predict(xt))


def test_not_invariant_to_rotation() -> None:
    rng = np.random.default_rng(4)
    # correlated classes: a diagonal model is not rotation invariant
    x = np.concatenate([rng.normal(size=(300, 2)) * [3.0, 0.3], rng.normal(size=(300, 2)) * [3.0, 0.3] + [0.0, 1.0]])
    y = np.repeat([0, 1], 300)
    theta = np.pi / 5
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    xt = rng.normal(scale=2.0, size=(2000, 2)) + [0.0, 0.5]
    a = SharedVarianceGaussianNB().fit(x, y).predict(xt)
    b = SharedVarianceGaussianNB().fit(x @ rot.T, y).predict(xt @ rot.T)
    assert (a != b).any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(10, 50))
def test_partial_fit_on_two_halves_equals_fit(seed: int, cut: int) -> None:
    x, y = _data(seed)
    whole = SharedVarianceGaussianNB().fit(x, y)
    parts = SharedVarianceGaussianNB().partial_fit(x[:cut], y[:cut], classes=[0, 1, 2]).partial_fit(x[cut:], y[cut:])
    for attr in ("class_count_", "class_prior_", "theta_", "class_var_", "var_", "coef_", "intercept_"):
        np.testing.assert_allclose(getattr(parts, attr), getattr(whole, attr), rtol=1e-9, atol=1e-12, err_msg=attr)


def test_partial_fit_with_a_class_missing_from_the_first_batch() -> None:
    x, y = _data(5)
    first = y != 2
    nb = SharedVarianceGaussianNB().partial_fit(x[first], y[first], classes=[0, 1, 2])
    assert nb.class_prior_[2] == 0 and (nb.predict(x) != 2).all()
    nb.partial_fit(x[~first], y[~first])
    whole = SharedVarianceGaussianNB().fit(x, y)
    np.testing.assert_allclose(nb.var_, whole.var_, rtol=1e-9)
    np.testing.assert_array_equal(nb.predict(x), whole.predict(x))


def test_probabilities_and_binary_decision_function() -> None:
    nb = SharedVarianceGaussianNB().fit(X_GOLD, Y_GOLD)
    proba = nb.predict_proba(T_GOLD)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log(proba), nb.predict_log_proba(T_GOLD))
    s = nb.class_scores(T_GOLD)
    np.testing.assert_allclose(nb.decision_function(T_GOLD), s[:, 1] - s[:, 0])
    x, y = _data(0, k=3)
    assert SharedVarianceGaussianNB().fit(x, y).decision_function(x).shape == (len(y), 3)


def test_string_labels() -> None:
    y = np.where(Y_GOLD == 0, "cat", "dog")
    nb = SharedVarianceGaussianNB().fit(X_GOLD, y)
    np.testing.assert_array_equal(nb.predict(T_GOLD), ["cat", "dog", "dog"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_sklearn_check_estimator() -> None:
    results = check_estimator(SharedVarianceGaussianNB(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed


def test_bad_input() -> None:
    nb = SharedVarianceGaussianNB()
    with pytest.raises(ValueError, match="NaN"):
        nb.fit(np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        nb.fit(X_GOLD, Y_GOLD[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        nb.fit(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="Unknown label type"):
        nb.fit(X_GOLD, np.linspace(0, 1, 7))
    with pytest.raises(
        ValueError, match=r"^SharedVarianceGaussianNB: var_smoothing must be a float in \[0, inf\), got -1.0$"
    ):
        SharedVarianceGaussianNB(var_smoothing=-1.0).fit(X_GOLD, Y_GOLD)
    with pytest.raises(ValueError, match="var_smoothing"):
        SharedVarianceGaussianNB(var_smoothing=np.inf).partial_fit(X_GOLD, Y_GOLD)
    fitted = SharedVarianceGaussianNB().fit(X_GOLD, Y_GOLD)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not in classes"):
        SharedVarianceGaussianNB().partial_fit(X_GOLD, Y_GOLD).partial_fit(X_GOLD[:1], [5])
    with pytest.raises(ValueError, match="differ from those"):
        SharedVarianceGaussianNB().partial_fit(X_GOLD, Y_GOLD).partial_fit(X_GOLD, Y_GOLD, classes=[0, 1, 2])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SharedVarianceGaussianNB().predict(T_GOLD)
