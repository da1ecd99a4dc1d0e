"""The reference-code GCD split (``per_class=False``): one uniform draw over all old-class samples,
as the official SimGCD / GCD ``subsample_instances``; the default (per class) is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data import gcd_split


def test_reference_split_is_one_uniform_draw_over_old_class_samples() -> None:
    y = np.repeat(np.arange(6), [30, 10, 20, 25, 5, 40])
    s = gcd_split(y, 3, labelled_fraction=0.5, seed=0, per_class=False)
    old_idx = np.flatnonzero(y < 3)
    want = np.sort(old_idx[np.random.RandomState(0).choice(old_idx.size, int(0.5 * old_idx.size), replace=False)])
    np.testing.assert_array_equal(s.labelled_idx, want)
    assert s.labelled_idx.size == 30 and set(y[s.labelled_idx]) <= {0, 1, 2}
    assert np.array_equal(np.sort(np.r_[s.labelled_idx, s.unlabelled_idx]), np.arange(y.size))
    np.testing.assert_array_equal(s.old_mask, y[s.unlabelled_idx] < 3)
    counts = np.bincount(y[s.labelled_idx], minlength=3)
    assert counts.sum() == 30 and not np.array_equal(counts, [15, 5, 10])  # per-class sizes vary
    again = gcd_split(y, 3, labelled_fraction=0.5, seed=0, per_class=False)
    np.testing.assert_array_equal(again.labelled_idx, s.labelled_idx)
    assert not np.array_equal(
        gcd_split(y, 3, labelled_fraction=0.5, seed=1, per_class=False).labelled_idx, s.labelled_idx
    )


def test_default_stays_per_class() -> None:
    y = np.repeat(np.arange(4), [10, 6, 8, 8])
    default = gcd_split(y, 2, labelled_fraction=0.5, seed=3)
    explicit = gcd_split(y, 2, labelled_fraction=0.5, seed=3, per_class=True)
    np.testing.assert_array_equal(default.labelled_idx, explicit.labelled_idx)
    assert np.bincount(y[default.labelled_idx], minlength=2).tolist() == [5, 3]


def test_old_class_without_labelled_sample_is_a_one_line_error() -> None:
    y = np.r_[np.zeros(200, int), [1], np.full(50, 2)]  # old class 1 has a single sample
    with pytest.raises(ValueError, match=r"known class 1 has no labelled sample") as info:
        for seed in range(50):  # some seed leaves it out (each seed: probability ~0.9)
            gcd_split(y, 2, labelled_fraction=0.1, seed=seed, per_class=False)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="per_class must be a bool"):
        gcd_split(y, 2, seed=0, per_class="no")  # type: ignore[arg-type]


@pytest.mark.slow  # decodes the three image sets into a fresh cache
def test_union30_effnet_features_are_computed_once_with_labels(module_cache, require_set) -> None:  # type: ignore[no-untyped-def]
    from paperzoo.data.pretrained_features import union30_effnet
    from paperzoo.models.pretrained import efficientnet_lite0_available

    for name in ("fashion-mnist", "mnist", "animal-mnist"):
        require_set(name)
    if not efficientnet_lite0_available():
        pytest.skip("the vision extra is not installed")
    feats = union30_effnet(max_per_class=2, size=32)
    assert feats.x.shape == (60, 1280) and feats.x.dtype == np.float32 and np.isfinite(feats.x).all()
    assert np.bincount(feats.y).tolist() == [2] * 30 and feats.num_classes == 30
    cached = list(module_cache.glob("efficientnet-lite0-union30-2-32px-*.npy"))
    assert len(cached) == 1
    np.testing.assert_array_equal(union30_effnet(max_per_class=2, size=32).x, feats.x)  # read back
    with pytest.raises(ValueError, match="max_per_class"):
        union30_effnet(max_per_class=0)
