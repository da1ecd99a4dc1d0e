"""A small Vision Transformer for small images, built on torch's ``nn.TransformerEncoder``.

The standard ViT recipe (Dosovitskiy et al., ICLR 2021): non-overlapping patches embedded by a
strided convolution, a learnable class token, learnable position embeddings, pre-norm
transformer layers with GELU, and a final layer norm. :meth:`TinyViT.tokens` returns the class
token and the patch tokens separately, for methods that read token-level features (concept
attention over patches, local feature alignment); ``forward`` returns the class token passed
through the optional linear head.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, validate_params

__all__ = ["TinyViT"]


class TinyViT(nn.Module):
    """Pre-norm ViT: ``(N, C, H, W) -> (N, out_dim)`` (or the class token when ``out_dim`` is 0).

    Args:
        image_size: side of the square input images; must be divisible by ``patch_size``.
        patch_size: side of the square patches (``(image_size / patch_size) ** 2`` tokens).
        in_channels: input channels.
        dim: token width.
        depth: number of transformer layers.
        heads: attention heads (must divide ``dim``).
        mlp_ratio: width of each layer's MLP as a multiple of ``dim``.
        out_dim: classes of the linear head on the class token; 0 for no head.
        dropout: dropout inside the transformer layers.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "image_size": [Interval(int, 1, math.inf, closed="left")],
        "patch_size": [Interval(int, 1, math.inf, closed="left")],
        "in_channels": [Interval(int, 1, math.inf, closed="left")],
        "dim": [Interval(int, 1, math.inf, closed="left")],
        "depth": [Interval(int, 1, math.inf, closed="left")],
        "heads": [Interval(int, 1, math.inf, closed="left")],
        "mlp_ratio": [Interval(float, 0, math.inf, closed="neither")],
        "out_dim": [Interval(int, 0, math.inf, closed="left")],
        "dropout": [Interval(float, 0, 1, closed="left")],
    }

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 4,
        in_channels: int = 1,
        dim: int = 64,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        out_dim: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        params = {
            "image_size": image_size,
            "patch_size": patch_size,
            "in_channels": in_channels,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "out_dim": out_dim,
            "dropout": dropout,
        }
        validate_params(self._parameter_constraints, params, owner="TinyViT")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be divisible by patch_size ({patch_size})")
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.dim, self.out_dim = dim, out_dim
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=max(1, int(round(dim * mlp_ratio))),
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim) if out_dim > 0 else nn.Identity()

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised class token ``(N, dim)`` and patch tokens ``(N, num_patches, dim)``."""
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"TinyViT expects input of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        out = self.norm(self.encoder(torch.cat([cls, patches], dim=1) + self.pos_embed))
        return out[:, 0], out[:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tokens(x)[0])
