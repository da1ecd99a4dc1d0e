"""Offline time series for imputation (paper 06): the shared-latent sinusoid generator, the bundled
sktime / statsmodels sets, windowing, PyGrinder missingness and the BenchPOTS-style splits."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data.timeseries import (
    add_missingness,
    check_windows,
    indicating_mask,
    load_basic_motions,
    load_statsmodels_series,
    make_imputation_splits,
    shared_latent_sinusoids,
    sliding_windows,
    standardise,
)


def test_sinusoids_shape_determinism_and_shared_latents() -> None:
    x = shared_latent_sinusoids(20, 48, 8, seed=1)
    assert x.shape == (20, 48, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x, shared_latent_sinusoids(20, 48, 8, seed=1))
    assert not np.array_equal(x, shared_latent_sinusoids(20, 48, 8, seed=2))
    clean = shared_latent_sinusoids(5, 48, 8, noise=0.0, seed=1).astype(np.float64)
    # every channel is a mixture of the same 3 sinusoids: each window (T, F) has rank 3
    assert all(np.linalg.matrix_rank(w, tol=1e-4) == 3 for w in clean)
    # the mixing is one data set's (data_seed), not the window seed's
    a = shared_latent_sinusoids(1, 48, 8, noise=0.0, seed=1, data_seed=0)[0]
    b = shared_latent_sinusoids(1, 48, 8, noise=0.0, seed=1, data_seed=1)[0]
    assert not np.allclose(a, b)


def test_sinusoids_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_windows"):
        shared_latent_sinusoids(0)
    with pytest.raises(ValueError, match="noise"):
        shared_latent_sinusoids(3, noise=-1.0)
    with pytest.raises(ValueError, match="freq_range"):
        shared_latent_sinusoids(3, freq_range=(4.0, 1.0))


def test_mcar_rate_and_rng_hygiene() -> None:
    from pygrinder import calc_missing_rate

    x = np.random.default_rng(0).normal(size=(100, 10, 10))  # 10^4 entries
    state = np.random.get_state()
    for rate in (0.1, 0.5, 0.9):
        masked = add_missingness(x, rate, seed=0)
        assert abs(calc_missing_rate(masked) - rate) <= 0.02
    np.testing.assert_array_equal(add_missingness(x, 0.3, seed=4), add_missingness(x, 0.3, seed=4))
    assert np.array_equal(np.random.get_state()[1], state[1])  # NumPy's global RNG restored
    for pattern in ("subseq", "block"):
        out = add_missingness(x, 0.3, pattern, seed=0)
        assert np.isnan(out).any() and out.shape == x.shape


def test_splits_masks_follow_the_protocol() -> None:
    x = shared_latent_sinusoids(60, 24, 4, seed=0)
    x[0, :3, 1] = np.nan  # a natural gap in the ground truth
    sp = make_imputation_splits(x[:40], x[40:50], x[50:], 0.4, seed=3)
    assert sp.train_set().keys() == {"X"} and sp.val_set().keys() == {"X", "X_ori"}
    for masked, ori in ((sp.train_X, sp.train_X_ori), (sp.val_X, sp.val_X_ori), (sp.test_X, sp.test_X_ori)):
        missing_mask = (~np.isnan(masked)).astype(np.float32)
        ind = indicating_mask(masked, ori)
        assert not (ind * missing_mask).any()  # indicating and missing masks are disjoint
        np.testing.assert_array_equal(missing_mask + ind, (~np.isnan(ori)).astype(np.float32))
    assert np.isnan(sp.train_X_ori[0, :3, 1]).all()
    again = make_imputation_splits(x[:40], x[40:50], x[50:], 0.4, seed=3)
    np.testing.assert_array_equal(again.test_X, sp.test_X)
    np.testing.assert_array_equal(sp.test_indicating_mask, indicating_mask(sp.test_X, sp.test_X_ori))


def test_a_window_with_every_value_missing_is_rejected() -> None:
    x = shared_latent_sinusoids(6, 12, 3, seed=0)
    x[2] = np.nan
    with pytest.raises(ValueError, match=r"X: 1 window\(s\) have every value missing \(first: window 2\)"):
        check_windows(x, "X")
    with pytest.raises(ValueError, match="train: 1 window"):
        make_imputation_splits(x, x[:2] * 0, x[:2] * 0, 0.5, seed=0)
    with pytest.raises(ValueError, match="every value missing"):
        add_missingness(np.ones((2, 1, 1)), 0.99, seed=0)  # the missingness empties a window


def test_check_windows_bad_input() -> None:
    with pytest.raises(ValueError, match=r"X must have shape \(N windows, T steps, F features\)"):
        check_windows(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least one window"):
        check_windows(np.zeros((0, 4, 2)))
    with pytest.raises(ValueError, match="infinite"):
        check_windows(np.full((1, 2, 2), np.inf))
    with pytest.raises(TypeError, match="real-valued"):
        check_windows(np.zeros((1, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="rate must be"):
        add_missingness(np.zeros((1, 2, 2)), 1.0, seed=0)
    with pytest.raises(ValueError, match="pattern must be"):
        add_missingness(np.zeros((1, 2, 2)), 0.5, "random", seed=0)


def test_sliding_windows_and_standardise() -> None:
    series = np.arange(100 * 3, dtype=np.float64).reshape(100, 3)
    w = sliding_windows(series, 24, 12)
    assert w.shape[1:] == (24, 3) and w.dtype == np.float64
    np.testing.assert_array_equal(w[1], series[12:36])
    tr, te = standardise(w[:4], w[4:])
    np.testing.assert_allclose(np.nanmean(tr, axis=(0, 1)), 0, atol=1e-9)
    assert te.shape == w[4:].shape
    with pytest.raises(ValueError, match="window must be"):
        sliding_windows(series, 500)
    with pytest.raises(ValueError, match="stride must be"):
        sliding_windows(series, 10, 20)


@pytest.mark.slow  # importing sktime and statsmodels takes several seconds
def test_bundled_sets() -> None:
    x, y = load_basic_motions()
    assert x.shape == (80, 100, 6) and y.shape == (80,) and np.isfinite(x).all()
    macro = load_statsmodels_series("macrodata")
    assert macro.shape == (203, 12) and np.isfinite(macro).all()
    fert = load_statsmodels_series("fertility")
    assert fert.shape[0] == 54 and 0.05 < np.isnan(fert).mean() < 0.3  # natural missingness
    assert np.isnan(load_statsmodels_series("co2")).any()
    w = sliding_windows(macro, 24, 12)
    np.testing.assert_array_equal(w[1], macro[12:36])
    with pytest.raises(ValueError, match="name must be"):
        load_statsmodels_series("sunspots")
