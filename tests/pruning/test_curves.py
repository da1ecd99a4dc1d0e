"""sparsity_curve: any Pruner on any model, the dense model left untouched, one point per sparsity."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from paperzoo.pruning import (
    GlobalMagnitudePruner,
    Pruner,
    RandomPruner,
    UniformMagnitudePruner,
    masked_finetune,
    sparsity_curve,
)
from paperzoo.pruning.curves import accuracy_of


def _trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 12, generator=g) * 3
    y = torch.arange(400) % 4
    x = centres[y] + torch.randn(400, 12, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_curve_points_and_the_dense_model_untouched() -> None:
    model, x, y = _trained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    points = sparsity_curve(model, GlobalMagnitudePruner(), [0.0, 0.5, 0.9], (x, y), x[:1], repeats=3)
    assert [p.sparsity for p in points] == [0.0, 0.5, 0.9]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not hasattr(model[0], "weight_mask")
    assert points[0].accuracy == pytest.approx(accuracy_of(model, x, y)) and points[0].accuracy > 0.9
    for p in points:
        assert p.achieved_sparsity == pytest.approx(p.sparsity, abs=1e-3)
        assert p.mac_reduction == pytest.approx(1 / (1 - p.sparsity), rel=1e-2)
        assert p.speedup > 0 and p.latency_dense_s > 0
    assert points[-1].nonzero_parameters < points[0].nonzero_parameters


def test_any_pruner_any_evaluate_and_finetune() -> None:
    model, x, y = _trained()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=100)
    for pruner in (UniformMagnitudePruner(), RandomPruner(seed=0)):
        pts = sparsity_curve(
            model,
            pruner,
            [0.8],
            lambda m: accuracy_of(m, x, y),
            x[:1],
            finetune=lambda m: masked_finetune(m, loader, 1, lr=1e-3),
            latency=False,
        )
        assert math.isnan(pts[0].speedup) and 0 <= pts[0].accuracy <= 1
        assert pts[0].achieved_sparsity == pytest.approx(0.8, abs=1e-3)


class Halve(Pruner):
    """A toy structured pruner: returns a new model with half the hidden units."""

    structured = True
    needs_calibration = True

    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        assert calibration is not None
        small = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
        with torch.no_grad():
            small[0].weight.copy_(model[0].weight[:32])
            small[0].bias.copy_(model[0].bias[:32])
            small[2].weight.copy_(model[2].weight[:, :32])
            small[2].bias.copy_(model[2].bias)
        return small


def test_a_structured_pruner_returning_a_new_model() -> None:
    model, x, y = _trained()
    (p,) = sparsity_curve(model, Halve(), [0.5], (x, y), x[:1], calibration=x[:16], latency=False)
    assert p.achieved_sparsity == pytest.approx(0.5) and p.mac_reduction == pytest.approx(2.0)


def test_bad_grid() -> None:
    model, x, y = _trained()
    with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 1\)"):
        sparsity_curve(model, GlobalMagnitudePruner(), [0.5, 1.0], (x, y), x[:1])
