"""sparsity_report (counts, dense and sparse MACs), collapsed_layers, deployment and CPU latency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.pruning import (
    GlobalMagnitudePruner,
    SparseLinear,
    collapsed_layers,
    cpu_latency,
    deployable,
    latency_comparison,
    sparsity_report,
)


def test_conv_with_nine_nonzeros_on_an_8x8_map_costs_576_macs() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight.view(-1)[torch.arange(9) * 5] = 1.0
    rep = sparsity_report(conv, torch.randn(4, 2, 8, 8))
    (layer,) = rep["layers"]
    assert layer["n"] == 54 and layer["nnz"] == 9 and layer["sparse_macs"] == 576
    assert layer["dense_macs"] == 54 * 64 and rep["mac_reduction"] == pytest.approx(6.0)


def test_dense_model_reduction_is_one_and_counts_add_up() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    rep = sparsity_report(model, torch.randn(2, 1, 8, 8))
    assert rep["mac_reduction"] == 1.0 and rep["sparsity"] == 0.0
    assert rep["prunable"] == 36 + 1440
    assert rep["parameters"] == sum(p.numel() for p in model.parameters()) == rep["nonzero_parameters"]
    assert rep["dense_macs"] == 36 * 36 + 1440
    assert [r["name"] for r in rep["layers"]] == ["0", "3"]


def test_pruned_model_report_and_linear_tokens() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    GlobalMagnitudePruner().prune(model, 0.75)
    rep = sparsity_report(model, torch.randn(3, 16))
    assert rep["sparsity"] == pytest.approx(0.75) and rep["nonzero"] == 160
    assert rep["parameters"] == 16 * 32 + 32 + 32 * 4 + 4
    assert rep["nonzero_parameters"] == rep["parameters"] - 480
    assert rep["sparse_macs"] == 160 and rep["dense_macs"] == 640
    # a linear layer applied to 5 tokens per sample costs 5x per sample
    seq = sparsity_report(nn.Linear(16, 4), torch.randn(2, 5, 16))
    assert seq["dense_macs"] == 5 * 64


def test_collapsed_layers() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)
    GlobalMagnitudePruner().prune(model, 0.85)
    assert collapsed_layers(model) == ["2"]
    assert collapsed_layers(model, min_density=0.5) == ["0", "2"]


def test_deployable_and_sparse_linear_give_the_same_outputs() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    GlobalMagnitudePruner().prune(model, 0.9)
    x = torch.randn(5, 32)
    shipped = deployable(model)
    assert any(isinstance(m, SparseLinear) for m in shipped.modules())
    torch.testing.assert_close(shipped(x), model(x), rtol=1e-5, atol=1e-5)
    rep = sparsity_report(shipped, x)
    assert rep["nonzero"] == sparsity_report(model, x)["nonzero"]
    assert not any(isinstance(m, SparseLinear) for m in deployable(model, None).modules())
    assert hasattr(model[0], "weight_mask")  # the original keeps its masks


def test_cpu_latency_and_comparison() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    x = torch.randn(8, 64)
    t = cpu_latency(model, x, warmup=1, repeats=3)
    assert 0 < t < 1
    pruned = GlobalMagnitudePruner().prune(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)), 0.95)
    lat = latency_comparison(model, pruned, x, warmup=1, repeats=3)
    assert (
        lat["dense_s"] > 0 and lat["pruned_s"] > 0 and lat["speedup"] == pytest.approx(lat["dense_s"] / lat["pruned_s"])
    )
    with pytest.raises(ValueError, match="repeats"):
        cpu_latency(model, x, repeats=0)
    with pytest.raises(ValueError, match="example_input"):
        sparsity_report(model, torch.randn(0, 64))
