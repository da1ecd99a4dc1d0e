"""A cheap domain + category shift for universal domain adaptation (open-partial, OPDA).

Built for paper 15 (GLC, Qu et al., CVPR 2023), whose benchmarks (Office-31, Office-Home, VisDA,
DomainNet) pair a labelled source domain with an unlabelled target domain that differs in style
and in its label set. Here both domains come from one offline image set:

* :func:`corrupt_images`: the *domain* shift, a fixed synthetic corruption of grey images
  (Gaussian blur, then contrast reduction with a grey offset, then additive Gaussian noise,
  clipped to [0, 1]), vectorised over the batch;
* :func:`opda_split`: the *category* shift, classes split into shared, source-private and
  target-private; the source keeps shared + source-private classes (labels ``0..C_s-1`` in the
  order shared, source-private), the target keeps shared + target-private classes, every
  target-private class mapped to the single label ``C_s`` ("unknown"), the paper's convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import Interval, validate_params

__all__ = ["OPDASplit", "corrupt_images", "diagonal_shift_noise", "opda_split"]

_CORRUPT_CONSTRAINTS = {
    "blur_sigma": [Interval(float, 0, math.inf, closed="left")],
    "contrast": [Interval(float, 0, 1, closed="right")],
    "noise": [Interval(float, 0, math.inf, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def corrupt_images(
    images: np.ndarray, blur_sigma: float = 1.0, contrast: float = 0.5, noise: float = 0.1, seed: int = 0
) -> np.ndarray:
    """The target domain's corruption of grey images (N, 1, H, W) in [0, 1].

    ``x -> clip(contrast * blur(x) + (1 - contrast) / 2 + noise * N(0, 1), 0, 1)``, where ``blur``
    is a separable Gaussian blur of standard deviation ``blur_sigma`` pixels (radius
    ``ceil(2 sigma)``, reflect padding; ``0`` switches it off). Deterministic given ``seed``.
    """
    validate_params(
        _CORRUPT_CONSTRAINTS,
        {"blur_sigma": blur_sigma, "contrast": contrast, "noise": noise, "seed": seed},
        owner="corrupt_images",
    )
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be a numpy array of shape (N, 1, H, W), got {getattr(images, 'shape', images)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty (0 images)")
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if blur_sigma > 0:
        r = max(1, math.ceil(2 * blur_sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / blur_sigma) ** 2)
        k = k / k.sum()
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    g = torch.Generator().manual_seed(int(seed))
    x = contrast * x + (1 - contrast) / 2 + noise * torch.randn(x.shape, generator=g)
    return x.clamp_(0, 1).numpy()


_DIAG_CONSTRAINTS = {
    "scale": [Interval(float, 0, 1, closed="right")],
    "offset": [Interval(float, 0, 1, closed="both")],
    "noise": [Interval(float, 0, math.inf, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def diagonal_shift_noise(
    images: np.ndarray, scale: float = 0.8, offset: float = 0.15, noise: float = 0.15, seed: int = 0
) -> np.ndarray:
    """A small-image target domain: each image averaged with itself shifted one pixel down and right
    (zeros enter at the border: a directional blur), then ``scale * x + offset + noise * N(0, 1)``
    (not clipped). For the 8x8 digits proxy of paper 15's reproduction."""
    validate_params(
        _DIAG_CONSTRAINTS,
        {"scale": scale, "offset": offset, "noise": noise, "seed": seed},
        owner="diagonal_shift_noise",
    )
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be a numpy array of shape (N, 1, H, W), got {getattr(images, 'shape', images)}")
    if images.shape[0] == 0:
        raise ValueError("images is empty (0 images)")
    x = np.asarray(images, dtype=np.float64)
    shifted = np.zeros_like(x)
    shifted[:, :, 1:, 1:] = x[:, :, :-1, :-1]
    out = scale * 0.5 * (x + shifted) + offset
    out += noise * np.random.default_rng(seed).standard_normal(out.shape)
    return out.astype(np.float32)


@dataclass(frozen=True)
class OPDASplit:
    """Index sets and relabelled targets of an OPDA split.

    Attributes:
        source_idx: indices (into the source labels) of samples of shared + source-private classes.
        source_y: their labels in ``0..C_s-1`` (shared first, then source-private, each in the
            order given).
        target_idx: indices (into the target labels) of samples of shared + target-private classes.
        target_y: their labels: shared classes as in the source, target-private ones ``C_s``.
        n_source_classes: ``C_s``.
        n_shared: number of shared classes (labels ``0..n_shared-1``).
    """

    source_idx: np.ndarray
    source_y: np.ndarray
    target_idx: np.ndarray
    target_y: np.ndarray
    n_source_classes: int
    n_shared: int

    @property
    def unknown_label(self) -> int:
        return self.n_source_classes


def opda_split(
    source_labels: np.ndarray,
    target_labels: np.ndarray,
    shared: Sequence[int],
    source_private: Sequence[int],
    target_private: Sequence[int],
) -> OPDASplit:
    """Split two labelled sets into an OPDA source / target pair (see the module docstring).

    Raises:
        ValueError: overlapping or empty class groups, or a class id absent from the labels.
    """
    groups = {"shared": list(shared), "source_private": list(source_private), "target_private": list(target_private)}
    if not groups["shared"]:
        raise ValueError("shared must name at least one class")
    every = groups["shared"] + groups["source_private"] + groups["target_private"]
    if len(set(every)) != len(every):
        raise ValueError(f"shared, source_private and target_private must not overlap, got {groups}")
    src, tgt = np.asarray(source_labels), np.asarray(target_labels)
    for name, labels in (("source_labels", src), ("target_labels", tgt)):
        if labels.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {labels.shape}")
    present_s, present_t = set(np.unique(src).tolist()), set(np.unique(tgt).tolist())
    missing = [c for c in groups["shared"] + groups["source_private"] if c not in present_s]
    missing += [c for c in groups["shared"] + groups["target_private"] if c not in present_t]
    if missing:
        raise ValueError(f"classes {sorted(set(missing))} are absent from the labels they must come from")
    source_classes = groups["shared"] + groups["source_private"]
    c_s = len(source_classes)
    lut = np.full(max(int(src.max()), int(tgt.max()), *every) + 1, -1, dtype=np.int64)
    lut[source_classes] = np.arange(c_s)
    lut[groups["target_private"]] = c_s
    s_idx = np.flatnonzero(np.isin(src, source_classes))
    t_idx = np.flatnonzero(np.isin(tgt, groups["shared"] + groups["target_private"]))
    return OPDASplit(s_idx, lut[src[s_idx]], t_idx, lut[tgt[t_idx]], c_s, len(groups["shared"]))
