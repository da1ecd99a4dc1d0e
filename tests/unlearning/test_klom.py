"""KLoM (paper 45): golden values of the authors' formulas, limits and invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paperzoo.unlearning.klom import binned_kl, klom, klom_noise_floor, klom_summary

K = np.arange(40)
SIN, COS = 2 * np.sin(K), 2 * np.cos(0.7 * K) + 0.5
SMALL_U = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.0, -0.5]
SMALL_O = [1.0, 1.2, 2.2, 2.9, 3.1, 3.5, 4.0, 2.6]


@pytest.mark.parametrize(
    ("p", "q", "kw", "expected"),
    [
        (SIN, COS, {}, 5.06471267),
        (COS, SIN, {}, 2.74671958),
        (SIN, COS, {"legacy_binning": True}, 5.05469554),
        (COS, SIN, {"legacy_binning": True}, 2.57771538),
        (SMALL_U, SMALL_O, {}, 5.89592745),
        (SMALL_O, SMALL_U, {}, 5.89592745),
        (SMALL_U, SMALL_O, {"legacy_binning": True}, 5.84590318),
        (SMALL_O, SMALL_U, {"legacy_binning": True}, 5.52413363),
        (SMALL_U, SMALL_O, {"bins": 4}, 3.77624928),
        ([0.0] * 5, [10.0] * 5, {}, 11.5129255),
    ],
)
def test_golden_values(p, q, kw, expected):
    assert binned_kl(p, q, **kw) == pytest.approx(expected, abs=1e-7)


def test_disjoint_supports_reach_log_one_over_eps():
    assert binned_kl([0.0] * 5, [10.0] * 5) == pytest.approx(math.log(1e5), abs=1e-12)
    assert binned_kl([0.0] * 5, [10.0] * 5, eps=1e-3) == pytest.approx(math.log(1e3), abs=1e-12)


def test_identical_samples_give_zero_and_kl_is_nonnegative():
    rng = np.random.default_rng(0)
    assert binned_kl(SIN, SIN) == 0.0
    for _ in range(20):
        assert binned_kl(rng.normal(size=30), rng.normal(1, 2, size=25)) >= 0.0


def test_affine_invariance_and_clip():
    a = binned_kl(SMALL_U, SMALL_O)
    assert binned_kl(3 * np.array(SMALL_U) - 2, 3 * np.array(SMALL_O) - 2) == pytest.approx(a, abs=1e-9)
    assert binned_kl(-np.array(SMALL_U), -np.array(SMALL_O)) == pytest.approx(a, abs=1e-9)
    assert binned_kl([1e6, 0.0, 1.0], [0.5, 2.0, 3.0]) == binned_kl([100.0, 0.0, 1.0], [0.5, 2.0, 3.0])


def test_klom_matches_binned_kl_per_column_and_direction():
    rng = np.random.default_rng(1)
    u, o = rng.normal(size=(12, 7)), rng.normal(0.5, 1.5, size=(15, 7))
    per = klom(u, o)
    back = klom(u, o, direction="oracle||unlearned")
    for j in range(7):
        assert per[j] == pytest.approx(binned_kl(u[:, j], o[:, j]), abs=1e-12)
        assert back[j] == pytest.approx(binned_kl(o[:, j], u[:, j]), abs=1e-12)
        assert klom(u, o, legacy_binning=True)[j] == pytest.approx(binned_kl(u[:, j], o[:, j], legacy_binning=True))
    assert np.all(klom(torch.tensor(u), torch.tensor(u)) == 0)


def test_noise_floor_decreases_with_more_models():
    rng = np.random.default_rng(2)
    floors = [klom_noise_floor(rng.normal(size=(n, 300)), rng.normal(size=(n, 300))).mean() for n in (10, 40, 200)]
    assert floors[0] > floors[1] > floors[2] > 0


def test_summary():
    per = np.arange(100, dtype=float)
    s = klom_summary(per, {"a": np.arange(50), "b": np.arange(50, 100)})
    assert s["a"]["p95"] == pytest.approx(np.percentile(np.arange(50), 95))
    assert s["b"]["mean"] == pytest.approx(74.5)
    assert s["average_95"] == pytest.approx((s["a"]["p95"] + s["b"]["p95"]) / 2)
    assert "average_95" not in klom_summary(per, {"a": [1, 2]}, percentiles=(99,))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: binned_kl([], [1.0]), "non-empty"),
        (lambda: binned_kl([np.nan], [1.0]), "p_samples"),
        (lambda: binned_kl([1.0], [1.0], bins=0), "bins"),
        (lambda: binned_kl([1.0], [1.0], eps=0.0), "eps"),
        (lambda: klom(np.zeros((3, 4)), np.zeros((3, 5))), "same n"),
        (lambda: klom(np.zeros((3, 4)), np.zeros((3, 4)), direction="both"), "direction"),
        (lambda: klom_summary(np.zeros(4), {"forget": []}), "forget"),
        (lambda: klom_summary(np.zeros(4), {"forget": [7]}), "outside"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
