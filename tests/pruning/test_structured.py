"""ChannelMagnitudePruner: torch-pruning's global L1 channel pruning behind the Pruner interface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.pruning import ChannelMagnitudePruner, Pruner, sparsity_report


def _count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def test_mlp_is_returned_smaller_at_the_target_parameter_sparsity() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    x = torch.randn(8, 20)
    pruner = ChannelMagnitudePruner()
    assert isinstance(pruner, Pruner) and pruner.structured and pruner.needs_calibration
    small = pruner.prune(model, 0.7, x)
    removed = 1 - _count(small) / _count(model)
    assert 0.7 <= removed < 0.75
    assert small(x).shape == (8, 5) and model[0].out_features == 64  # the original is untouched
    assert small[4].out_features == 5  # the classifier's outputs are never pruned
    rep = sparsity_report(small, x[:1])
    assert rep["sparsity"] == 0.0  # no zeros: the channels are gone


def test_cnn_with_batchnorm_and_the_per_layer_cap() -> None:
    torch.manual_seed(1)
    cnn = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    x = torch.randn(2, 1, 8, 8)
    small = ChannelMagnitudePruner(max_pruning_ratio=0.5).prune(cnn, 0.4, x)
    assert small(x).shape == (2, 10) and small[1].num_features == small[0].out_channels
    assert small[0].out_channels >= 8 and small[3].out_channels >= 16


def test_bad_input() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 1\)"):
        ChannelMagnitudePruner().prune(model, 1.0, torch.randn(2, 4))
    with pytest.raises(ValueError, match="calibration"):
        ChannelMagnitudePruner().prune(model, 0.5)
    with pytest.raises(ValueError, match="max_pruning_ratio"):
        ChannelMagnitudePruner(max_pruning_ratio=0.0)
