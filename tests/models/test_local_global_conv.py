"""Tests of PU-MLC's local-global convolution (Yuan et al., ICME 2024): at initialisation the
converted network's outputs stay within 1e-2 (relative) of the original ones (BN weight ~1e-4),
shapes and strides are preserved, only qualifying 3x3 convolutions are wrapped, and the branch
trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.models.local_global_conv import GlobalBranch, LocalGlobalConv2d, convert_to_local_global


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 1)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
    )  # fmt: skip


def test_converted_model_starts_as_the_original() -> None:
    model = _cnn().eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        after = convert_to_local_global(model).eval()(x)
    assert after.shape == before.shape
    assert float((after - before).norm() / before.norm()) < 1e-2
    wrapped = [m for m in model.modules() if isinstance(m, LocalGlobalConv2d)]
    assert len(wrapped) == 2  # the 3-channel stem and the 1x1 convolution are left alone
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[4][2], nn.Conv2d)


def test_shape_and_stride_are_preserved() -> None:
    conv = nn.Conv2d(16, 24, 3, stride=2, padding=1)
    lgc = LocalGlobalConv2d(conv)
    x = torch.randn(2, 16, 9, 9)
    assert lgc(x).shape == conv(x).shape == (2, 24, 5, 5)


def test_branch_trains_and_mixes_global_context() -> None:
    torch.manual_seed(0)
    branch = GlobalBranch(16, 16, num_heads=4)
    nn.init.ones_(branch.bn.weight)
    branch.eval()
    x = torch.randn(1, 16, 6, 6)
    y = branch(x)
    x2 = x.clone()
    x2[..., 0, 0] += 5.0  # a change at one position moves the output everywhere (global context)
    assert bool(((branch(x2) - y)[..., 3:, 3:].abs() > 1e-6).any())
    lgc = LocalGlobalConv2d(nn.Conv2d(16, 16, 3, padding=1))
    lgc(torch.randn(2, 16, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in lgc.branch.parameters())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GlobalBranch(12, 12, num_heads=8)
    with pytest.raises(ValueError, match="num_heads"):
        convert_to_local_global(_cnn(), num_heads=0)
    with pytest.raises(TypeError, match="Conv2d"):
        LocalGlobalConv2d(nn.Linear(3, 3))  # type: ignore[arg-type]
