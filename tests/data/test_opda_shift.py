"""Tests of the OPDA split and the target-domain corruptions (paper 15's data)."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data.opda_shift import corrupt_images, diagonal_shift_noise, opda_split


def test_opda_split_relabels() -> None:
    ys = np.array([0, 1, 2, 3, 4, 5, 0, 4])
    yt = np.array([5, 0, 1, 3, 2, 4, 3])
    sp = opda_split(ys, yt, shared=[0, 1], source_private=[2, 3], target_private=[4, 5])
    assert sp.n_source_classes == 4 and sp.n_shared == 2 and sp.unknown_label == 4
    assert sp.source_idx.tolist() == [0, 1, 2, 3, 6] and sp.source_y.tolist() == [0, 1, 2, 3, 0]
    assert sp.target_idx.tolist() == [0, 1, 2, 5] and sp.target_y.tolist() == [4, 0, 1, 4]


def test_opda_split_bad_input() -> None:
    y = np.arange(6)
    with pytest.raises(ValueError, match="must not overlap"):
        opda_split(y, y, [0, 1], [1], [2])
    with pytest.raises(ValueError, match="absent"):
        opda_split(y, y, [0], [1], [9])
    with pytest.raises(ValueError, match="shared must name"):
        opda_split(y, y, [], [1], [2])


def test_corrupt_images_properties() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 12, 12)).astype(np.float32)
    out = corrupt_images(x, blur_sigma=1.0, contrast=0.5, noise=0.0)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert out.std() < 0.5 * x.std()  # blur + contrast shrink the spread
    assert np.allclose(corrupt_images(x, 0.0, 1.0, 0.0), x)  # identity
    const = np.full((1, 1, 8, 8), 0.6, np.float32)
    assert np.allclose(corrupt_images(const, 1.0, 0.5, 0.0), 0.55)  # blur keeps constants (reflect padding)
    assert np.array_equal(corrupt_images(x, noise=0.1, seed=3), corrupt_images(x, noise=0.1, seed=3))
    with pytest.raises(ValueError, match="contrast"):
        corrupt_images(x, contrast=0.0)
    with pytest.raises(ValueError, match="images must be"):
        corrupt_images(x[:, 0])


def test_diagonal_shift_noise() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = 1.0
    out = diagonal_shift_noise(x, scale=1.0, offset=0.0, noise=0.0)
    assert out[0, 0, 1, 1] == 0.5 and out[0, 0, 2, 2] == 0.5 and out.sum() == 1.0
    with pytest.raises(ValueError, match="noise"):
        diagonal_shift_noise(x, noise=-1.0)
