"""The local-global convolution (LGC) of PU-MLC (Yuan, Zhang & Huang, ICME 2024, "Positive Label Is
All You Need for Multi-Label Classification", arXiv:2306.16016; official code ``TAKELAMAG/PU-MLC``,
``src/model/Global_Branch.py``, ``convert_to_lgconv``).

Every 3x3 convolution of a pretrained CNN becomes ``conv(x) + GlobalBranch(x)``: the branch pools
``H`` global vectors from the feature map with softmax attention over the positions, broadcasts
them back with sigmoid gates, adds them to the input and applies a strided 1x1 convolution and a
BatchNorm whose weight starts near 0 (``N(0, 1e-4)``), so the converted network starts as the
original one::

    x_loc = ReLU(conv1x1(C_in -> C_in / r)(x))           x_glb = spatial mean of x_loc, broadcast
    x_hid = concat(x_loc, x_glb)
    a_agg = softmax over positions of conv1x1(2 C_in / r -> H)(x_hid)
    a_brd = sigmoid(conv1x1(2 C_in / r -> H)(x_hid))
    v     = conv1x1(C_in -> C_in)(x), split into H heads of C_in / H channels
    g     = sum over positions of v * a_agg              (one global vector per head)
    v'    = g broadcast to the positions * a_brd
    y     = BN(conv1x1(C_in -> C_out, stride of the 3x3 conv)(x + v'))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = ["GlobalBranch", "LocalGlobalConv2d", "convert_to_local_global"]

_PARAMS = {
    "num_heads": [Interval(int, 1, math.inf, closed="left")],
    "reduction": [Interval(int, 1, math.inf, closed="left")],
}


class GlobalBranch(nn.Module):
    """The global branch of an LGC convolution (module docstring); output (B, C_out, h', w')."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int | tuple[int, int] = 1, num_heads: int = 8,
        reduction: int = 4,
    ) -> None:  # fmt: skip
        super().__init__()
        validate_params(_PARAMS, {"num_heads": num_heads, "reduction": reduction}, owner="GlobalBranch")
        if in_channels % num_heads:
            raise ValueError(f"GlobalBranch: in_channels ({in_channels}) must be divisible by num_heads ({num_heads})")
        mid = max(in_channels // reduction, 1)
        self.num_heads = num_heads
        self.local = nn.Sequential(nn.Conv2d(in_channels, mid, 1), nn.ReLU(inplace=False))
        self.aggregate = nn.Conv2d(2 * mid, num_heads, 1)
        self.broadcast = nn.Conv2d(2 * mid, num_heads, 1)
        self.value = nn.Conv2d(in_channels, in_channels, 1)
        self.out = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.normal_(self.bn.weight, 0.0, 1e-4)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_loc = self.local(x)
        x_hid = torch.cat([x_loc, x_loc.mean(dim=(2, 3), keepdim=True).expand_as(x_loc)], dim=1)
        a_agg = torch.softmax(self.aggregate(x_hid).flatten(2), dim=-1)  # (B, H, hw)
        a_brd = torch.sigmoid(self.broadcast(x_hid)).flatten(2)  # (B, H, hw)
        v = self.value(x).reshape(b, self.num_heads, c // self.num_heads, h * w)
        g = torch.einsum("bkcn,bkn->bkc", v, a_agg)  # one global vector per head
        v_brd = (g[..., None] * a_brd[:, :, None, :]).reshape(b, c, h, w)
        return self.bn(self.out(x + v_brd))


class LocalGlobalConv2d(nn.Module):
    """``conv(x) + GlobalBranch(x)`` around an existing convolution (PU-MLC's LGC)."""

    def __init__(self, conv: nn.Conv2d, num_heads: int = 8, reduction: int = 4) -> None:
        super().__init__()
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"LocalGlobalConv2d wraps an nn.Conv2d, got {type(conv).__name__}")
        self.conv = conv
        self.branch = GlobalBranch(conv.in_channels, conv.out_channels, conv.stride, num_heads, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.branch(x)


def convert_to_local_global(model: nn.Module, num_heads: int = 8, reduction: int = 4) -> nn.Module:
    """Replace, in place, every 3x3 ``nn.Conv2d`` of ``model`` (groups 1, input channels divisible
    by ``num_heads``) by a :class:`LocalGlobalConv2d` around it; returns ``model``. Other layers,
    and 3x3 convolutions that do not qualify (a stem on 3 channels), are left as they are."""
    validate_params(_PARAMS, {"num_heads": num_heads, "reduction": reduction}, owner="convert_to_local_global")
    for name, child in list(model.named_children()):
        if (
            isinstance(child, nn.Conv2d)
            and child.kernel_size == (3, 3)
            and child.groups == 1
            and child.in_channels % num_heads == 0
        ):
            setattr(model, name, LocalGlobalConv2d(child, num_heads, reduction))
        elif not isinstance(child, LocalGlobalConv2d):
            convert_to_local_global(child, num_heads, reduction)
    return model
