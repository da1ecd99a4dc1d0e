"""Generators: statistics, exact counts, determinism under the seed, argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperzoo import data
from paperzoo.data._sampling import random_rank_within_class


# --------------------------------------------------------------------------- Gaussian mixture
def test_gaussian_mixture_statistics() -> None:
    x, y, means = data.gaussian_mixture(
        6000, 3, 5, separation=4.0, noise=0.5, weights=np.array([0.5, 0.3, 0.2]), seed=0
    )
    assert x.shape == (6000, 5) and x.dtype == np.float32 and y.dtype == np.int64 and means.shape == (3, 5)
    assert np.bincount(y).tolist() == [3000, 1800, 1200]  # exact proportions
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert dists[np.triu_indices(3, 1)] == pytest.approx(np.full(3, 4.0), rel=1e-5)
    for k in range(3):
        assert x[y == k].mean(0) == pytest.approx(means[k], abs=0.05)
        assert x[y == k].std(0) == pytest.approx(np.full(5, 0.5), abs=0.04)
    assert not np.all(np.diff(y) >= 0)  # shuffled
    again = data.gaussian_mixture(6000, 3, 5, separation=4.0, noise=0.5, weights=np.array([0.5, 0.3, 0.2]), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((x, y, means), again))
    assert not np.array_equal(x, data.gaussian_mixture(6000, 3, 5, seed=1)[0])
    many = data.gaussian_mixture(100, 7, 2, seed=0)  # more classes than dimensions
    assert np.bincount(many[1]).tolist() == [15, 15, 14, 14, 14, 14, 14]
    with pytest.raises(ValueError, match="weights"):
        data.gaussian_mixture(10, 2, 2, weights=np.array([0.9, 0.9]), seed=0)
    with pytest.raises(ValueError, match="n_samples"):
        data.gaussian_mixture(0, 2, 2, seed=0)
    with pytest.raises(ValueError, match="separation"):
        data.gaussian_mixture(10, 2, 2, separation=0.0, seed=0)


# --------------------------------------------------------------------------- long tail
def test_long_tailed_counts() -> None:
    y = np.tile(np.arange(5), 100)  # 100 per class
    idx = data.long_tailed(y, 10.0, seed=0)
    assert np.all(np.diff(idx) > 0)
    expected = np.floor(100 * 10.0 ** (-np.arange(5) / 4) + 1e-9).astype(int)
    assert np.bincount(y[idx], minlength=5).tolist() == expected.tolist() == [100, 56, 31, 17, 10]
    step = data.long_tailed(y, 4.0, profile="step", seed=0)
    assert np.bincount(y[step], minlength=5).tolist() == [100, 100, 25, 25, 25]
    assert np.array_equal(idx, data.long_tailed(y, 10.0, seed=0))
    assert not np.array_equal(idx, data.long_tailed(y, 10.0, seed=1))
    assert data.long_tailed(y, 1.0, seed=0).size == 500
    # n_max is the smallest class; labels need not be contiguous
    y2 = np.r_[np.full(80, 3), np.full(50, 7), np.full(60, 9)]
    counts = np.bincount(y2[data.long_tailed(y2, 5.0, seed=2)], minlength=10)
    assert counts[[3, 7, 9]].tolist() == [50, 22, 10]
    x = np.arange(500.0)[:, None]
    xl, yl = data.make_long_tailed(x, y, 10.0, seed=0)
    assert np.array_equal(xl[:, 0].astype(int), idx) and np.array_equal(yl, y[idx])
    with pytest.raises(ValueError, match="imbalance_ratio"):
        data.long_tailed(y, 0.5, seed=0)
    with pytest.raises(ValueError, match="profile"):
        data.long_tailed(y, 2.0, profile="linear", seed=0)


# --------------------------------------------------------------------------- label noise
def test_symmetric_label_noise() -> None:
    y = np.repeat(np.arange(10), 2000)
    noisy, flipped = data.label_noise(y, 0.3, seed=0)
    assert noisy.dtype == np.int64 and flipped.dtype == np.bool_
    assert flipped.mean() == pytest.approx(0.3, abs=0.015)
    assert np.array_equal(noisy != y, flipped)  # never flipped onto the true class
    assert np.array_equal(noisy[~flipped], y[~flipped])
    # among class-0 samples that flipped, the new class is uniform over the 9 others
    new = np.bincount(noisy[flipped & (y == 0)], minlength=10)
    assert new[0] == 0 and new[1:] / new.sum() == pytest.approx(np.full(9, 1 / 9), abs=0.035)
    assert np.array_equal(noisy, data.label_noise(y, 0.3, seed=0)[0])
    assert data.label_noise(y, 0.0, seed=0)[1].sum() == 0
    assert data.label_noise(y, 1.0, seed=0)[1].all()


def test_pairflip_label_noise() -> None:
    y = np.repeat(np.arange(4), 1000)
    noisy, flipped = data.label_noise(y, 0.2, kind="pairflip", seed=1)
    assert flipped.mean() == pytest.approx(0.2, abs=0.02)
    assert np.array_equal(noisy[flipped], (y[flipped] + 1) % 4)
    # with n_classes larger than the labels, class 3 may go to 4
    noisy6, f6 = data.label_noise(y, 1.0, n_classes=6, kind="pairflip", seed=0)
    assert set(noisy6.tolist()) == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="rate"):
        data.label_noise(y, 1.5, seed=0)
    with pytest.raises(ValueError, match="kind"):
        data.label_noise(y, 0.1, kind="asym", seed=0)
    with pytest.raises(ValueError, match="n_classes"):
        data.label_noise(y, 0.1, n_classes=3, seed=0)
    with pytest.raises(TypeError, match="y must hold integers"):
        data.label_noise(y.astype(float), 0.1, seed=0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=60),
    st.floats(0.0, 1.0),
    st.sampled_from(["symmetric", "pairflip"]),
    st.integers(0, 2**31),
)
def test_label_noise_properties(labels: list[int], rate: float, kind: str, seed: int) -> None:
    y = np.array(labels)
    noisy, flipped = data.label_noise(y, rate, n_classes=7, kind=kind, seed=seed)
    assert np.array_equal(noisy != y, flipped)
    assert noisy.min() >= 0 and noisy.max() < 7


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=0, max_size=50), st.integers(0, 1000))
def test_random_rank_is_a_permutation_within_each_class(labels: list[int], seed: int) -> None:
    y = np.array(labels, dtype=np.int64)
    rank = random_rank_within_class(y, np.random.default_rng(seed))
    for c in np.unique(y):
        assert sorted(rank[y == c].tolist()) == list(range(int((y == c).sum())))


# --------------------------------------------------------------------------- label shift
def test_label_shift_domains() -> None:
    y = np.repeat(np.arange(4), 500)
    doms = data.label_shift_domains(y, 3, concentration=0.5, domain_size=300, seed=0)
    assert doms.priors.shape == (3, 4) and doms.priors.sum(1) == pytest.approx(np.ones(3))
    assert (doms.priors >= 0).all()
    all_idx = np.concatenate(doms.indices)
    assert len(np.unique(all_idx)) == len(all_idx)  # disjoint, no sample twice
    assert [len(i) for i in doms.indices] == [300] * 3
    for idx, p, counts in zip(doms.indices, doms.priors, doms.counts):
        assert np.all(np.diff(idx) > 0)
        assert np.array_equal(np.bincount(y[idx], minlength=4), counts)
        assert counts / 300 == pytest.approx(p, abs=1 / 300 + 1e-9)  # rounding only
    indices, priors = doms  # unpacks as a tuple
    assert indices is doms.indices and priors is doms.priors
    again = data.label_shift_domains(y, 3, concentration=0.5, domain_size=300, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(doms.indices, again.indices))
    # concentration controls how peaked the priors are
    flat = data.label_shift_domains(y, 50, concentration=100.0, domain_size=10, seed=0).priors
    peaked = data.label_shift_domains(y, 50, concentration=0.05, domain_size=10, seed=0).priors
    assert flat.max(1).mean() < 0.4 < 0.8 < peaked.max(1).mean()


def test_label_shift_domains_cap_by_availability() -> None:
    y = np.r_[np.zeros(30, int), np.ones(1000, int)]
    doms = data.label_shift_domains(y, 4, concentration=1.0, domain_size=250, seed=3)
    all_idx = np.concatenate(doms.indices)
    assert len(np.unique(all_idx)) == len(all_idx) <= len(y)
    assert doms.counts[:, 0].sum() <= 30 and doms.counts.sum(1).max() <= 250
    assert np.array_equal(doms.counts.sum(0), np.bincount(y[all_idx], minlength=2))
    default = data.label_shift_domains(y, 2, seed=0)
    assert sum(len(i) for i in default.indices) <= len(y)
    assert doms.empirical_priors().sum(1) == pytest.approx(np.ones(4))
    with pytest.raises(ValueError, match="concentration"):
        data.label_shift_domains(y, 2, concentration=0.0, seed=0)
    with pytest.raises(ValueError, match="n_domains"):
        data.label_shift_domains(y, 0, seed=0)


# --------------------------------------------------------------------------- Zheng et al. 2023
def test_dis_gen_easy_statistics() -> None:
    n, k, m = 6, 3, 60001
    x, y = data.make_dis_gen_gaussian(n, k, m, mode="easy", seed=0)
    assert x.shape == (m, n) and x.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20001, 20000, 20000]
    for cls, mu in enumerate([-1.0, 1.0, 2.0]):
        assert x[y == cls].mean(0) == pytest.approx(np.full(n, mu), abs=0.06)
    cov = np.cov((x - np.array([-1.0, 1.0, 2.0])[y][:, None]).T)
    assert np.diag(cov) == pytest.approx([6, 6, 6, 1, 1, 1], rel=0.04)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.1
    x2, y2 = data.make_dis_gen_gaussian(n, k, m, mode="easy", seed=0)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, data.make_dis_gen_gaussian(n, k, m, mode="easy", seed=1)[0])


def test_dis_gen_hard_covariance() -> None:
    p4 = data.dis_gen_gaussian_params(4, 2, mode="hard")
    u = np.random.default_rng(0).uniform(-1, 1, size=(4, 4))
    a = u.T @ u
    expected = a - np.diag(np.diag(a)) + np.diag([4.0, 4.0, 1.0, 1.0])
    assert np.allclose(p4.covariance, expected) and not p4.clipped
    x, y = data.make_dis_gen_gaussian(4, 2, 80000, mode="hard", seed=5)
    centred = x - p4.means[y]
    assert np.cov(centred.T) == pytest.approx(expected, abs=0.08)
    # n = 8: the specified matrix is indefinite; sampling uses its clipped PSD version
    p8 = data.dis_gen_gaussian_params(8, 3, mode="hard")
    assert p8.clipped and np.linalg.eigvalsh(p8.covariance).min() < 0
    assert np.linalg.eigvalsh(p8.sampling_covariance).min() > -1e-9
    w, v = np.linalg.eigh(p8.covariance)
    assert np.allclose(p8.sampling_covariance, (v * np.clip(w, 0, None)) @ v.T)
    x8, y8 = data.make_dis_gen_gaussian(8, 3, 60000, mode="hard", seed=0)
    assert np.cov((x8 - p8.means[y8]).T) == pytest.approx(p8.sampling_covariance, abs=0.15)
    # the hard matrix does not depend on the sampling seed
    assert np.array_equal(data.dis_gen_gaussian_params(8, 3, mode="hard").covariance, p8.covariance)
    assert np.array_equal(p8.means[3 - 1], np.full(8, 2.0)) and np.array_equal(p8.means[0], -np.ones(8))
    with pytest.raises(ValueError, match="mode"):
        data.make_dis_gen_gaussian(4, 2, 10, mode="medium")
    with pytest.raises(ValueError, match="m must be >= K"):
        data.make_dis_gen_gaussian(4, 5, 3)
