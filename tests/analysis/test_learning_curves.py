"""The paper's linear-evaluation protocol (paper 09), samples_to_reach (the official simulation's
stopping rule) and the feature statistics that check the theory's assumptions."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.neighbors import NearestCentroid

from paperzoo.analysis.learning_curves import (
    default_classifiers,
    feature_statistics,
    learning_curve_comparison,
    samples_to_reach,
)
from paperzoo.data import make_dis_gen_gaussian
from paperzoo.models.gaussian_nb import SharedVarianceGaussianNB


def _blobs(seed: int, m: int, k: int = 3, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=m)
    return rng.normal(size=(m, n)) + 3.0 * np.eye(k, n)[y], y


class _Recorder:
    """A classifier factory that remembers the training sets it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self) -> _Recorder.Model:
        return _Recorder.Model(self)

    class Model:
        def __init__(self, owner: _Recorder) -> None:
            self.owner = owner

        def fit(self, x: np.ndarray, y: np.ndarray) -> _Recorder.Model:
            self.owner.seen.append((x.copy(), y.copy()))
            self.label = y[0]
            return self

        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.full(len(x), self.label)


def test_shapes_and_values() -> None:
    xtr, ytr = _blobs(0, 300)
    xte, yte = _blobs(1, 200)
    out = learning_curve_comparison(xtr, ytr, xte, yte, [50, 10, 300], default_classifiers(), repeats=2, seed=0)
    np.testing.assert_array_equal(out["sizes"], [10, 50, 300])  # sorted
    for name in ("NB", "LR"):
        err = out["errors"][name]
        assert err.shape == (2, 3) and ((err >= 0) & (err <= 1)).all()
        np.testing.assert_allclose(out["mean"][name], err.mean(axis=0))
        np.testing.assert_allclose(out["std"][name], err.std(axis=0))
    assert out["mean"]["NB"][-1] < 0.1  # well separated blobs
    # the full pool is one draw (up to order): identical errors for the deterministic NB
    assert out["errors"]["NB"][0, 2] == out["errors"]["NB"][1, 2]


def test_every_draw_has_all_classes_and_the_right_size() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200, int), np.ones(200, int), np.full(3, 2)]  # class 2 is rare
    x = rng.normal(size=(len(y), 2))
    rec = _Recorder()
    out = learning_curve_comparison(x, y, x[:10], y[:10], [3, 5, 20], {"rec": rec}, repeats=4, minmax=False, seed=1)
    assert len(rec.seen) == 12 and out["redraws"] > 0
    for xs, ys in rec.seen:
        assert len(np.unique(ys)) == 3 and len(xs) in (3, 5, 20)
        # a draw is a subset of the pool, without repetition
        assert len({tuple(r) for r in xs}) == len(xs)


def test_same_draw_for_every_classifier_and_deterministic() -> None:
    xtr, ytr = _blobs(2, 150)
    a, b = _Recorder(), _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [15, 40], {"a": a, "b": b}, repeats=3, seed=5)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a.seen, b.seen))
    c = _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [15, 40], {"c": c}, repeats=3, seed=5)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a.seen, c.seen))
    d = _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [15, 40], {"d": d}, repeats=3, seed=6)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a.seen, d.seen))


def test_draws_at_a_size_do_not_depend_on_the_grid() -> None:
    xtr, ytr = _blobs(3, 120)
    a, b = _Recorder(), _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [30], {"a": a}, repeats=2, seed=0)
    learning_curve_comparison(xtr, ytr, xtr, ytr, [10, 30], {"b": b}, repeats=2, seed=0)
    assert np.array_equal(a.seen[0][0], b.seen[2][0])  # b: (10, r0), (10, r1), (30, r0), ...


def test_minmax_fitted_on_the_draw() -> None:
    xtr, ytr = _blobs(4, 100)
    xtr = xtr * 50 + 7
    rec = _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [20], {"r": rec}, repeats=2, minmax=True)
    for xs, _ in rec.seen:
        np.testing.assert_allclose(xs.min(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(xs.max(axis=0), 1.0, atol=1e-12)
    raw = _Recorder()
    learning_curve_comparison(xtr, ytr, xtr, ytr, [20], {"r": raw}, repeats=1, minmax=False)
    assert raw.seen[0][0].max() > 10


def test_accepts_estimator_instances_and_factories() -> None:
    xtr, ytr = _blobs(5, 100)
    out = learning_curve_comparison(
        xtr, ytr, xtr, ytr, [30], {"nc": NearestCentroid(), "dummy": partial(DummyClassifier, strategy="most_frequent")}
    )
    assert out["mean"]["nc"][0] < out["mean"]["dummy"][0]


def test_nb_learns_faster_than_lr_in_the_simulation() -> None:
    """The paper's Gaussian-mixture simulation in miniature (O(log n) vs O(n)): n = 100, K = 2,
    few samples."""
    x, y = make_dis_gen_gaussian(100, 2, 2000, seed=0)
    xt, yt = make_dis_gen_gaussian(100, 2, 2000, seed=1)
    out = learning_curve_comparison(x, y, xt, yt, [10, 20], default_classifiers(), repeats=3, minmax=False, seed=0)
    assert (out["mean"]["NB"] < 0.02).all() and (out["mean"]["LR"] > 0.1).all()


def test_samples_to_reach() -> None:
    sizes = [4, 10, 50, 100]
    assert samples_to_reach(sizes, [0.4, 0.2, 0.005, 0.0], 0.01) == 50
    assert samples_to_reach(sizes, [0.4, 0.2, 0.05, 0.02], 0.01) is None
    assert samples_to_reach(sizes, [0.0, 0.2, 0.0, 0.0], 0.01) == 4  # first crossing
    per_draw = np.array([[0.5, 0.0, 0.0, 0.0], [0.5, 0.03, 0.0, 0.0]])
    assert samples_to_reach(sizes, per_draw, 0.01) == 50  # mean at 10 is 0.015
    with pytest.raises(ValueError, match="shape"):
        samples_to_reach(sizes, [0.1, 0.2], 0.01)


def test_bad_input() -> None:
    x, y = _blobs(0, 50)
    clf = default_classifiers()
    with pytest.raises(ValueError, match="X_train must have shape"):
        learning_curve_comparison(x[:, 0], y, x, y, [10], clf)
    with pytest.raises(ValueError, match=r"y_train must have shape \(50,\)"):
        learning_curve_comparison(x, y[:-1], x, y, [10], clf)
    with pytest.raises(ValueError, match="NaN"):
        learning_curve_comparison(np.where(x > 2, np.nan, x), y, x, y, [10], clf)
    with pytest.raises(ValueError, match="X_test must have 4 features"):
        learning_curve_comparison(x, y, x[:, :2], y, [10], clf)
    with pytest.raises(ValueError, match="empty"):
        learning_curve_comparison(x[:0], y[:0], x, y, [10], clf)
    with pytest.raises(ValueError, match=r"sizes must lie in \[3, 50\]"):
        learning_curve_comparison(x, y, x, y, [2, 10], clf)
    with pytest.raises(ValueError, match=r"sizes must lie in \[3, 50\]"):
        learning_curve_comparison(x, y, x, y, [51], clf)
    with pytest.raises(ValueError, match="at least one classifier"):
        learning_curve_comparison(x, y, x, y, [10], {})
    with pytest.raises(ValueError, match=r"^learning_curve_comparison: repeats must be an int in \[1, inf\), got 0$"):
        learning_curve_comparison(x, y, x, y, [10], clf, repeats=0)
    with pytest.raises(TypeError, match="factory"):
        learning_curve_comparison(x, y, x, y, [10], {"bad": 3})
    y_rare = np.r_[np.zeros(49, int), [1]]
    with pytest.raises(RuntimeError, match="contained all 2 classes"):
        learning_curve_comparison(x, y_rare, x, y_rare, [2], clf, max_redraws=3)


# --------------------------------------------------------------------------- feature statistics
def _reference_statistics(x: np.ndarray, y: np.ndarray, divisor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direct loops over (k, k1, k2), written from the statistics' definitions."""
    classes = np.unique(y)
    pis = np.array([np.mean(y == c) for c in classes])
    mus = np.stack([x[y == c].mean(axis=0) for c in classes])
    var = sum(p * (x[y == c].var(axis=0) + 1e-9) for p, c in zip(pis, classes))
    loglik = np.stack([-0.5 * np.sum((x - mu) ** 2 / var + np.log(2 * np.pi * var), axis=1) for mu in mus], axis=1)
    kl, vd = [], []
    for k in range(len(classes)):
        rows = loglik[y == classes[k]]
        for k1 in range(len(classes)):
            for k2 in range(len(classes)):
                if k1 != k2:
                    kl.append(abs(np.mean(rows[:, k1] - rows[:, k2])) / divisor)
                    vd.append(abs(np.var(rows[:, k1] - rows[:, k2])) / divisor)
    return var, np.array(kl), np.array(vd)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 4), official=st.booleans())
def test_feature_statistics_match_direct_loops(seed: int, k: int, official: bool) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(6 * k, 40))
    y = np.r_[np.arange(k), rng.integers(0, k, size=m - k)]  # unbalanced, every class present
    x = rng.normal(size=(m, 5)) + rng.normal(size=(k, 5))[y]
    out = feature_statistics(x, y, official_divisor=official, minmax=False)
    var, kl, vd = _reference_statistics(x, y, float(k if official else 5))
    np.testing.assert_allclose(out["sigmas"], var, rtol=1e-10)
    np.testing.assert_allclose(out["kl"], kl, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out["var_likelihood_diff"], vd, rtol=1e-8, atol=1e-10)
    assert out["pairs"].shape == (k * k * (k - 1), 3) and (out["pairs"][:, 1] != out["pairs"][:, 2]).all()
    assert out["percentiles"]["kl"].shape == (11,)


def test_feature_statistics_minmax_and_divisor() -> None:
    x, y = _blobs(7, 80, k=3, n=6)
    scaled = feature_statistics(x * 100 + 3, y)  # min-max scaling removes the affine change
    base = feature_statistics(x, y)
    np.testing.assert_allclose(scaled["sigmas"], base["sigmas"], rtol=1e-8)
    official = feature_statistics(x, y, official_divisor=True)
    np.testing.assert_allclose(official["kl"] * 3, base["kl"] * 6, rtol=1e-10)
    assert base["divisor"] == 6 and official["divisor"] == 3
    with pytest.raises(ValueError, match="at least 2 classes"):
        feature_statistics(x, np.zeros(80, int))
    with pytest.raises(ValueError, match=r"y must have shape \(80,\)"):
        feature_statistics(x, y[:5])


def test_default_classifiers() -> None:
    c = default_classifiers()
    assert isinstance(c["NB"](), SharedVarianceGaussianNB)
    lr = c["LR"]()
    assert lr.C == 1.0 and lr.max_iter == 1000 and lr.solver == "lbfgs"
