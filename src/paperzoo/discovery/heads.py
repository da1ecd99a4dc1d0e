"""The SimGCD heads (Wen, Zhao & Qi, ICCV 2023): a cosine classifier over K prototypes and the
DINO-style head that returns both the contrastive projection and the classifier logits.

As in the official ``model.py``: the classifier is ``weight_norm(Linear(in_dim, K, bias=False))``
with its magnitude ``g`` filled with 1 and frozen, applied to the L2-normalised backbone feature,
so a logit is the cosine between the feature and a unit prototype; the projector is an MLP on the
*unnormalised* feature. Both branches back-propagate into the backbone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from paperzoo._validation import Interval, validate_params

__all__ = ["CosineClassifier", "DINOHead"]


class CosineClassifier(nn.Module):
    """Cosine classifier ``s_ik = <h_i / |h_i|, c_k / |c_k|>`` in [-1, 1] (no bias, no scale).

    A thin wrapper over ``torch.nn.utils.parametrizations.weight_norm`` (``dim=0``: one norm per
    class row) with ``g = 1``; ``fixed_norm=True`` freezes ``g`` (SimGCD), ``False`` lets it
    learn. The logits are invariant to positive rescaling of the input and of any raw weight row.

    Args:
        in_dim: feature dimension.
        n_classes: number of prototypes K (old + new classes).
        fixed_norm: freeze the magnitude ``g`` at 1.
    """

    _parameter_constraints = {
        "in_dim": [Interval(int, 1, math.inf, closed="left")],
        "n_classes": [Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(self, in_dim: int, n_classes: int, fixed_norm: bool = True) -> None:
        validate_params(
            self._parameter_constraints, {"in_dim": in_dim, "n_classes": n_classes}, owner=type(self).__name__
        )
        super().__init__()
        self.linear = weight_norm(nn.Linear(in_dim, n_classes, bias=False), dim=0)
        g = self.linear.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(not fixed_norm)
        self.in_dim, self.n_classes = in_dim, n_classes

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) of features ``h`` (N, in_dim)."""
        if h.ndim != 2 or h.shape[1] != self.in_dim:
            raise ValueError(f"h must be (N, {self.in_dim}), got shape {tuple(h.shape)}")
        return self.linear(F.normalize(h, dim=1))

    def prototypes(self) -> torch.Tensor:
        """The unit-norm class prototypes (K, in_dim) (times ``g``, i.e. unit rows while ``g = 1``)."""
        return self.linear.weight


class DINOHead(nn.Module):
    """SimGCD's head: ``forward(h) -> (z, logits)``.

    ``z = projector(h)`` (un-normalised; the contrastive terms normalise it) with the projector
    ``Linear(in_dim, hidden) -> GELU -> ... -> Linear(hidden, bottleneck)`` of ``nlayers``
    linear layers (1: a single ``Linear(in_dim, bottleneck)``), weights ``trunc_normal(std=0.02)``
    and zero biases, no batch-norm; ``logits = CosineClassifier(in_dim, n_classes)(h)``.

    Args:
        in_dim: backbone feature dimension.
        n_classes: K.
        hidden: hidden width of the projector (2048 in the paper).
        bottleneck: projection dimension (256 in the paper).
        nlayers: linear layers of the projector (3 in the paper).
    """

    _parameter_constraints = {
        "in_dim": [Interval(int, 1, math.inf, closed="left")],
        "n_classes": [Interval(int, 1, math.inf, closed="left")],
        "hidden": [Interval(int, 1, math.inf, closed="left")],
        "bottleneck": [Interval(int, 1, math.inf, closed="left")],
        "nlayers": [Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(
        self, in_dim: int, n_classes: int, hidden: int = 2048, bottleneck: int = 256, nlayers: int = 3
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"in_dim": in_dim, "n_classes": n_classes, "hidden": hidden, "bottleneck": bottleneck, "nlayers": nlayers},
            owner=type(self).__name__,
        )
        super().__init__()
        dims = [in_dim, *([hidden] * (nlayers - 1)), bottleneck]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < nlayers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.classifier = CosineClassifier(in_dim, n_classes, fixed_norm=True)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z (N, bottleneck), logits (N, n_classes))`` of features ``h`` (N, in_dim)."""
        return self.mlp(h), self.classifier(h)
