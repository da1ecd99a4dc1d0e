"""Heads placed on top of a backbone's features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Linear):
    """A plain linear classifier ``features -> logits``."""


class CosineHead(nn.Module):
    """Cosine classifier: ``scale * cos(feature, w_k)`` with unit-norm class weights.

    ``scale`` is fixed (``learn_scale=False``) or a learnable temperature inverse.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 16.0, learn_scale: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.01)
        s = torch.tensor(float(scale))
        self.scale = nn.Parameter(s) if learn_scale else nn.Parameter(s, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T


class EmbeddingHead(nn.Module):
    """Linear projection to ``dim`` followed by L2 normalisation (the usual metric-learning head)."""

    def __init__(self, in_features: int, dim: int = 64, normalize: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, dim)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj(x)
        return F.normalize(z, dim=1) if self.normalize else z
