"""SuperGlobal's training-free pooling modules (Shao et al., "Global Features are All You Need for
Image Retrieval and Reranking", ICCV 2023).

The paper replaces a retrieval network's GeM pooling at test time by:

* :class:`GeMPlus`: GeM with a fixed, larger exponent (p = 4.6) instead of the learned one;
* :class:`RegionalGeM`: a stride-1 local power mean (p = 2.5, 5 x 5 window, reflection padding) of the
  feature map, averaged with the map itself (same shape out);
* :class:`ScaleGeM`: combines the descriptors of several input scales by an element-wise max of the
  L2-normalised descriptors (``mode="max"``, p = infinity, the default) or a shifted power mean
  (``mode="power"``, p = 10); :func:`multiscale_descriptor` runs a descriptor function at the scales
  (0.7071, 1, 1.4142) and combines them;
* :class:`ReLUPlus`: activations floored at 0.014 instead of 0 (a thin wrapper over ``clamp``).

:class:`GeM` is the usual learnable-exponent baseline (Radenovic et al.). All modules are vectorised
and follow the input's dtype and device. The values follow the official ``SuperGlobal`` modules
(``eps`` 1e-8 in GeM+; the ``1 / (k^2)^(1/p)`` scaling that turns ``nn.LPPool2d`` into a power mean).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = [
    "GeM",
    "GeMPlus",
    "RegionalGeM",
    "ReLUPlus",
    "ScaleGeM",
    "gem_pool",
    "multiscale_descriptor",
]

_POS = Interval(float, 0, math.inf, closed="neither")


def _check_map(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a feature map of shape (B, C, H, W) or (B, C, L), got {shape}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    check_finite(x, name)


def gem_pool(x: torch.Tensor, p: float | torch.Tensor, eps: float) -> torch.Tensor:
    """Generalised-mean pooling ``(mean_{spatial} max(x, eps)^p)^(1/p)`` over every dimension after
    the channel one: ``(B, C, H, W)`` or ``(B, C, L)`` -> ``(B, C)``. p = 1 is average pooling, p -> inf
    max pooling; positively homogeneous in ``x`` (for ``x >= eps``)."""
    _check_map(x)
    return x.clamp(min=eps).pow(p).flatten(2).mean(dim=2).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling with a learnable exponent (initialised at ``p``), the baseline SuperGlobal replaces."""

    _parameter_constraints = {"p": [_POS], "eps": [_POS]}

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"p": p, "eps": eps}, owner=type(self).__name__)
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem_pool(x, self.p.to(x.dtype), self.eps)


class GeMPlus(nn.Module):
    """GeM+: GeM with a fixed exponent ``p`` (4.6 in the paper's released configuration) and floor
    ``eps`` = 1e-8; no learnable parameter. ``(B, C, H, W)`` or ``(B, C, L)`` -> ``(B, C)``."""

    _parameter_constraints = {"p": [_POS], "eps": [_POS]}

    def __init__(self, p: float = 4.6, eps: float = 1e-8) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"p": p, "eps": eps}, owner=type(self).__name__)
        self.p, self.eps = float(p), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem_pool(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}"


class RegionalGeM(nn.Module):
    """Regional-GeM: ``0.5 * power_mean_{k x k window}(x; p) + 0.5 * x`` with stride 1 and reflection
    padding (k - 1) / 2, so the output has the input's shape ``(B, C, H, W)``. Built on ``nn.LPPool2d``
    (the window's p-norm) applied to ``x / (k^2)^(1/p)``, which makes it the window's power mean; a
    constant map is a fixed point. ``kernel_size`` must be odd (same-shape output) and the map at least
    ``(k + 1) / 2`` wide in each spatial dimension (reflection padding). The input should be
    non-negative (a post-ReLU map), as in the paper."""

    _parameter_constraints = {"p": [_POS], "kernel_size": [Interval(int, 1, math.inf, closed="left")]}

    def __init__(self, p: float = 2.5, kernel_size: int = 5) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"p": p, "kernel_size": kernel_size}, owner=type(self).__name__)
        if kernel_size % 2 == 0:
            raise ValueError(f"RegionalGeM: kernel_size must be odd, got {kernel_size}")
        self.p, self.kernel_size = float(p), int(kernel_size)
        self.pad = nn.ReflectionPad2d((kernel_size - 1) // 2)
        self.pool = nn.LPPool2d(norm_type=self.p, kernel_size=kernel_size, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x)
        if x.dim() != 4:
            raise ValueError(f"RegionalGeM: x must have shape (B, C, H, W), got {tuple(x.shape)}")
        half = (self.kernel_size - 1) // 2
        if min(x.shape[-2:]) <= half:
            raise ValueError(
                f"RegionalGeM: x's spatial size {tuple(x.shape[-2:])} is too small for kernel_size "
                f"{self.kernel_size} (reflection padding needs > {half})"
            )
        scaled = x / (self.kernel_size**2) ** (1.0 / self.p)
        return 0.5 * self.pool(self.pad(scaled)) + 0.5 * x

    def extra_repr(self) -> str:
        return f"p={self.p}, kernel_size={self.kernel_size}"


class ReLUPlus(nn.Module):
    """ReLU+: ``max(x, floor)`` (floor 0.014), a thin wrapper over ``clamp``. Swapping it into a
    torchvision ``Bottleneck`` needs a wrapped ``forward``, since that block shares one ``relu`` module
    between its inner and output activations."""

    _parameter_constraints = {"floor": [Interval(float, 0, math.inf, closed="left")]}

    def __init__(self, floor: float = 0.014) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"floor": floor}, owner=type(self).__name__)
        self.floor = float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.floor)

    def extra_repr(self) -> str:
        return f"floor={self.floor}"


class ScaleGeM(nn.Module):
    """Scale-GeM: combine per-scale descriptors ``(S, B, D)`` (or a sequence of S ``(B, D)``) into
    ``(B, D)``. ``mode="max"`` (p = infinity, the paper's default): L2-normalise each scale's
    descriptor, then take the element-wise max. ``mode="power"``: with ``g`` the minimum over all
    entries, ``(mean_s (v_s - g)^p)^(1/p) + g`` (the shift makes the entries non-negative). Neither
    output is re-normalised (the pipeline L2-normalises the final descriptor)."""

    _parameter_constraints = {"mode": [Options(("max", "power"))], "p": [_POS]}

    def __init__(self, mode: str = "max", p: float = 10.0) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"mode": mode, "p": p}, owner=type(self).__name__)
        self.mode, self.p = mode, float(p)

    def forward(self, descriptors: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        v = descriptors if isinstance(descriptors, torch.Tensor) else torch.stack(list(descriptors))
        if v.dim() != 3 or v.numel() == 0:
            raise ValueError(f"ScaleGeM: descriptors must have shape (S, B, D), got {tuple(v.shape)}")
        check_finite(v, "descriptors")
        if self.mode == "max":
            return F.normalize(v, dim=-1).amax(dim=0)
        shift = v.min()
        return (v - shift).pow(self.p).mean(dim=0).pow(1.0 / self.p) + shift

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, p={self.p}"


def multiscale_descriptor(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    scales: Sequence[float] = (0.7071, 1.0, 1.4142),
    combine: nn.Module | None = None,
) -> torch.Tensor:
    """Run ``model_fn`` (images ``(B, C, H, W)`` -> descriptors ``(B, D)``) on ``images`` resized
    (bilinear, antialiased) to ``floor(H * s) x floor(W * s)`` for each scale ``s``, combine with
    ``combine`` (default :class:`ScaleGeM` ``max`` mode) and L2-normalise: ``(B, D)``."""
    if images.dim() != 4 or images.numel() == 0:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if len(scales) == 0 or any(not (s > 0) for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {list(scales)}")
    h, w = images.shape[-2:]
    outs = []
    for s in scales:  # a handful of scales, not samples
        size = (max(1, math.floor(h * s)), max(1, math.floor(w * s)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", antialias=True)
        outs.append(model_fn(x))
    return F.normalize((combine or ScaleGeM())(torch.stack(outs)), dim=-1)
