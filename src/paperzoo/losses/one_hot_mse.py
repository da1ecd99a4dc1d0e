"""Squared error on one-hot targets, the baseline member of the spherical family.

The spherical family (Vincent et al., 2015) holds the losses that depend on the outputs ``o``
only through ``o_c``, ``sum_k o_k`` and ``sum_k o_k**2``; the squared error to the one-hot
target, ``sum_k (o_k - [k = c])**2 = S2 - 2 o_c + 1``, is its simplest member, and the
baseline the Z-loss paper (de Brébisson & Vincent, 2016) compares with.
"""

from __future__ import annotations

import torch

from paperzoo.losses.base import ClassificationLoss

__all__ = ["OneHotMSELoss"]


class OneHotMSELoss(ClassificationLoss):
    """Per example ``sum_k (logits_k - onehot(target)_k)**2`` (summed over the classes), then
    reduced over the batch; ``forward(logits (B, C), target (B,), weight=None)``.

    Args:
        reduction: "mean" (default), "sum" or "none".
    """

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype)
        return (logits - onehot).pow(2).sum(1)
