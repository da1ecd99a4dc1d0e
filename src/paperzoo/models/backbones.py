"""Small backbones for 28x28 (or any small) inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected network: ``in_dim -> hidden... -> out_dim`` with ReLU between layers.

    Inputs of any shape (N, ...) are flattened to (N, in_dim).
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int] = (256, 256), out_dim: int = 10, dropout: float = 0.0
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.in_dim:
            raise ValueError(f"MLP expects {self.in_dim} input features, got {x.shape[1]}")
        return self.net(x)


class ConvNet(nn.Module):
    """Four 3x3 conv blocks (conv-BN-ReLU, max-pool after the first two), global average
    pooling, then a linear layer to ``out_dim``. About 0.1M parameters at ``width=32``."""

    def __init__(self, in_channels: int = 1, width: int = 32, out_dim: int = 64) -> None:
        super().__init__()

        def block(a: int, b: int, pool: bool) -> list[nn.Module]:
            mods: list[nn.Module] = [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
            return mods + [nn.MaxPool2d(2)] if pool else mods

        w = width
        self.features = nn.Sequential(
            *block(in_channels, w, True),
            *block(w, 2 * w, True),
            *block(2 * w, 2 * w, False),
            *block(2 * w, 4 * w, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * w, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ConvNet expects (N, C, H, W) input, got shape {tuple(x.shape)}")
        return self.fc(self.features(x))
