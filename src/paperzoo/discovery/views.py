"""Two-view augmentations for GCD training (SimGCD, Wen, Zhao & Qi, ICCV 2023, trains on two random
views of every image). Each augmentation is a callable ``x -> one random view of x`` drawing from
torch's global generator (seeded by :func:`paperzoo.engine.fit`); the trainer calls it twice.

* :class:`ImageViews`: a random shift by up to ``shift`` pixels in each axis (cyclic, like
  ``torch.roll``, per image) plus Gaussian pixel noise: the small-image stand-in for the official
  random crop + horizontal flip.
* :class:`FeatureViews`: dropout plus Gaussian noise on feature vectors, for frozen pretrained
  features where no image augmentation is possible (a decision of this toolkit, not the paper's).
"""

from __future__ import annotations

import math

import torch

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = ["FeatureViews", "ImageViews"]


class ImageViews:
    """A random cyclic shift (independently per image, ``-shift..shift`` pixels in each axis) and
    additive Gaussian noise of standard deviation ``noise_std``; input (N, C, H, W) or (N, H, W)."""

    _parameter_constraints = {
        "shift": [Interval(int, 0, math.inf, closed="left")],
        "noise_std": [Interval(float, 0.0, math.inf, closed="left")],
    }

    def __init__(self, shift: int = 1, noise_std: float = 0.1) -> None:
        validate_params(self._parameter_constraints, {"shift": shift, "noise_std": noise_std}, owner="ImageViews")
        self.shift, self.noise_std = int(shift), float(noise_std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim not in (3, 4):
            raise TypeError("x must be a floating-point torch.Tensor of shape (N, C, H, W) or (N, H, W)")
        squeeze = x.ndim == 3
        img = x.unsqueeze(1) if squeeze else x
        n, _, h, w = img.shape
        if self.shift:
            s = torch.randint(-self.shift, self.shift + 1, (n, 2), device=x.device)
            rows = (torch.arange(h, device=x.device)[None, :] - s[:, :1]) % h  # (N, H): roll by s_h
            cols = (torch.arange(w, device=x.device)[None, :] - s[:, 1:]) % w  # (N, W)
            idx = torch.arange(n, device=x.device)[:, None, None]
            img = img.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.noise_std:
            img = img + self.noise_std * torch.randn_like(img)
        return img.squeeze(1) if squeeze else img

    def __repr__(self) -> str:
        return f"ImageViews(shift={self.shift}, noise_std={self.noise_std})"


class FeatureViews:
    """Dropout (rate ``dropout``, survivors scaled by ``1 / (1 - dropout)``) then additive Gaussian
    noise of standard deviation ``noise_std``, on feature vectors (N, D)."""

    _parameter_constraints = {
        "noise_std": [Interval(float, 0.0, math.inf, closed="left")],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(self, noise_std: float = 0.1, dropout: float = 0.1) -> None:
        validate_params(self._parameter_constraints, {"noise_std": noise_std, "dropout": dropout}, owner="FeatureViews")
        self.noise_std, self.dropout = float(noise_std), float(dropout)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
            raise TypeError("x must be a floating-point torch.Tensor of shape (N, D)")
        check_finite(x, "x")
        if self.dropout:
            keep = torch.rand_like(x) >= self.dropout
            x = x * keep / (1.0 - self.dropout)
        if self.noise_std:
            x = x + self.noise_std * torch.randn_like(x)
        return x

    def __repr__(self) -> str:
        return f"FeatureViews(noise_std={self.noise_std}, dropout={self.dropout})"
