"""Global MP, the Minimum Threshold allocation, the baselines, the gradual schedule and masked
fine-tuning (paper 22): exact counts, the global threshold, invariances, nesting, golden values."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from paperzoo.pruning import (
    GlobalMagnitudePruner,
    GradualGlobalPruner,
    Pruner,
    RandomPruner,
    UniformMagnitudePruner,
    cubic_sparsity,
    effective_weight,
    global_magnitude_masks,
    masked_finetune,
    minimum_threshold_allocation,
    prunable_parameters,
    random_pruning,
    uniform_magnitude_pruning,
)


class Net(nn.Module):
    """Conv + BN + two linears: every kind of parameter the prunable set must (not) touch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.fc2(torch.relu(self.fc1(h)))


def net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [effective_weight(m, n).detach() for m, n in prunable_parameters(model)]


def kept_sets(model: nn.Module) -> torch.Tensor:
    return torch.cat([(w != 0).flatten() for w in weights(model)])


# --------------------------------------------------------------------------- prunable set
def test_prunable_set_is_every_conv_and_linear_weight() -> None:
    model = net()
    params = prunable_parameters(model)
    assert [m for m, _ in params] == [model.conv, model.fc1, model.fc2]
    assert {n for _, n in params} == {"weight"}
    assert [m for m, _ in prunable_parameters(model, exclude=["fc2"])] == [model.conv, model.fc1]
    assert [m for m, _ in prunable_parameters(model, exclude=[model.conv])] == [model.fc1, model.fc2]
    with pytest.raises(ValueError, match="no Conv2d/Linear"):
        prunable_parameters(nn.Sequential(nn.ReLU()))


# --------------------------------------------------------------------------- golden case A
def golden_a() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.1, 0.05], [0.8, -0.02, 0.3]]))
        model[1].weight.copy_(torch.tensor([[-0.04, 0.6], [0.2, -0.07]]))
    return model


def test_golden_case_a_masks_and_layer_sparsities() -> None:
    model = golden_a()
    pruner = GlobalMagnitudePruner(0.6)
    np.testing.assert_allclose(pruner.layer_sparsities(model), [0.5, 0.75])
    pruner.apply(model)
    assert torch.equal(model[0].weight_mask, torch.tensor([[1.0, 0, 0], [1, 0, 1]]))
    assert torch.equal(model[1].weight_mask, torch.tensor([[0.0, 1], [0, 0]]))


def test_vanilla_global_mp_equals_torch_global_unstructured() -> None:
    ours, ref = net(1), net(1)
    GlobalMagnitudePruner().prune(ours, 0.73)
    prune.global_unstructured(prunable_parameters(ref), pruning_method=prune.L1Unstructured, amount=0.73)
    for (a, _), (b, _) in zip(prunable_parameters(ours), prunable_parameters(ref)):
        assert torch.equal(a.weight_mask, b.weight_mask)


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_exact_count_and_global_threshold(s: float) -> None:
    model = net(2)
    dense = torch.cat([w.abs().flatten() for w in weights(model)])
    assert dense.unique().numel() == dense.numel() and (dense > 0).all()  # tie-free, no zeros
    GlobalMagnitudePruner().prune(model, s)
    keep = kept_sets(model)
    assert int((~keep).sum()) == round(s * dense.numel())
    if 0 < s:
        assert dense[~keep].max() <= dense[keep].min()


def test_biases_and_batchnorm_are_untouched() -> None:
    model = net(3)
    before = {k: v.clone() for k, v in model.state_dict().items() if "weight" not in k or "bn" in k}
    GlobalMagnitudePruner().prune(model, 0.9)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert not hasattr(model.bn, "weight_mask")


def test_invariances_scale_and_layer_order() -> None:
    a, b = net(4), net(4)
    with torch.no_grad():
        for m, _ in prunable_parameters(b):
            m.weight.mul_(7.5)
    ma = global_magnitude_masks(prunable_parameters(a), 0.8)
    mb = global_magnitude_masks(prunable_parameters(b), 0.8)
    assert all(torch.equal(x, y) for x, y in zip(ma, mb))
    params = prunable_parameters(a)
    rev = global_magnitude_masks(params[::-1], 0.8)[::-1]
    assert all(torch.equal(x, y) for x, y in zip(ma, rev))


def test_scaling_one_layer_up_never_lowers_its_density() -> None:
    base = net(5)
    d0 = 1 - GlobalMagnitudePruner().layer_sparsities(base, 0.8)
    with torch.no_grad():
        base.fc1.weight.mul_(3.0)
    d1 = 1 - GlobalMagnitudePruner().layer_sparsities(base, 0.8)
    assert d1[1] >= d0[1] and d1[1] > d0[1]


def test_kept_sets_are_nested() -> None:
    model = net(6)
    kept = []
    for s in (0.2, 0.5, 0.8, 0.95):
        masks = global_magnitude_masks(prunable_parameters(model), s)
        kept.append(torch.cat([m.flatten() for m in masks]).bool())
    for lo, hi in zip(kept[:-1], kept[1:]):
        assert not (hi & ~lo).any()


def test_bad_sparsity_is_a_clear_error() -> None:
    model = net()
    for bad in (-0.1, 1.0, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 1\)"):
            GlobalMagnitudePruner().prune(model, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GlobalMagnitudePruner"):
        GlobalMagnitudePruner(1.0)
    with pytest.raises(ValueError, match="give a sparsity"):
        GlobalMagnitudePruner().apply(model)
    with pytest.raises(ValueError, match="min_weights"):
        GlobalMagnitudePruner(min_weights=-1)
    for cls in (UniformMagnitudePruner, RandomPruner):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            cls().prune(model, 1.0)


def test_pruners_are_pruner_modules() -> None:
    for p in (GlobalMagnitudePruner(), UniformMagnitudePruner(), RandomPruner(seed=1)):
        assert isinstance(p, Pruner) and isinstance(p, nn.Module) and not p.structured
        with pytest.raises(TypeError, match="prune"):
            p(net())


# --------------------------------------------------------------------------- baselines
def test_uniform_prunes_every_layer_alike_and_matches_l1_unstructured() -> None:
    ours, ref = net(7), net(7)
    uniform_magnitude_pruning(ours, 0.6)
    for m, _ in prunable_parameters(ref):
        prune.l1_unstructured(m, "weight", amount=0.6)
    for (a, _), (b, _) in zip(prunable_parameters(ours), prunable_parameters(ref)):
        assert torch.equal(a.weight_mask, b.weight_mask)
        assert int((a.weight_mask == 0).sum()) == round(0.6 * a.weight.numel())


def test_random_pruning_is_seeded_and_exact() -> None:
    a, b, c = net(8), net(8), net(8)
    random_pruning(a, 0.5, seed=1)
    random_pruning(b, 0.5, seed=1)
    random_pruning(c, 0.5, seed=2)
    assert torch.equal(kept_sets(a), kept_sets(b)) and not torch.equal(kept_sets(a), kept_sets(c))
    for m, _ in prunable_parameters(a):
        assert int((m.weight_mask == 0).sum()) == round(0.5 * m.weight.numel())


def test_re_pruning_keeps_pruned_weights_pruned() -> None:
    model = net(9)
    p = GlobalMagnitudePruner()
    p.prune(model, 0.5)
    first = kept_sets(model)
    p.prune(model, 0.8)
    second = kept_sets(model)
    assert not (second & ~first).any() and int((~second).sum()) == round(0.8 * second.numel())
    assert len(model.fc1._forward_pre_hooks) == 1  # masks updated in place, no pile of hooks


# --------------------------------------------------------------------------- Minimum Threshold
N_B = [300, 5000, 20000, 1000]
G_B = [0.0, 0.40, 0.93, 0.999]
S_B = 21599 / 26300


@pytest.mark.parametrize(
    ("target", "T", "expected", "c"),
    [
        (S_B, 526, [0, 0.410194175, 0.953701456, 0.474], 1.02548544),
        (S_B, 100, [0, 0.401922330, 0.934469417, 0.9], 1.00480583),
        (0.9, 526, [0, 0.7444, 0.9737, 0.474], 1.861),
    ],
    ids=["B1", "B2", "B3"],
)
def test_mt_golden_values(target: float, T: int, expected: list[float], c: float) -> None:
    s = minimum_threshold_allocation(N_B, G_B, target, T)
    np.testing.assert_allclose(s, expected, atol=5e-9 if T == 100 or target != 0.9 else 1e-4)
    assert np.dot(N_B, s) == pytest.approx(target * sum(N_B), rel=1e-12)
    free = (s > 0) & (s < 1 - T / np.array(N_B) - 1e-12)
    np.testing.assert_allclose(s[free] / np.array(G_B)[free], c, rtol=1e-3 if target == 0.9 else 1e-8)


@pytest.mark.parametrize(("target", "T"), [(S_B, 526), (S_B, 100)])
def test_mt_closed_form_equals_reference_loop(target: float, T: int) -> None:
    closed = minimum_threshold_allocation(N_B, G_B, target, T)
    loop = minimum_threshold_allocation(N_B, G_B, target, T, method="reference_loop")
    np.testing.assert_allclose(closed, loop, atol=1e-9)


def test_mt_reference_loop_stalls_where_closed_form_does_not() -> None:
    # golden case B3: the official `while S < s` loop never exits in float64; ours stops at max_iter
    loop = minimum_threshold_allocation(N_B, G_B, 0.9, 526, method="reference_loop", max_iter=2000)
    assert np.dot(N_B, loop) / sum(N_B) < 0.9
    closed = minimum_threshold_allocation(N_B, G_B, 0.9, 526)
    np.testing.assert_allclose(closed, loop, atol=1e-6)


def test_mt_limits_and_unreachable_target() -> None:
    np.testing.assert_allclose(minimum_threshold_allocation(N_B, G_B, S_B, 0), G_B, atol=1e-12)
    with pytest.raises(ValueError, match="unreachable"):
        minimum_threshold_allocation(N_B, G_B, 0.95, 2000)
    with pytest.raises(ValueError, match="sparsity"):
        minimum_threshold_allocation(N_B, G_B, 1.0, 10)


def test_mt_pruner_keeps_t_weights_per_layer_and_hits_the_target() -> None:
    model = net(10)
    n = [w.numel() for w in weights(model)]  # 72, 2048, 160
    N = sum(n)
    vanilla = GlobalMagnitudePruner().compute_masks(model, 0.95)
    with_t0 = GlobalMagnitudePruner(min_weights=0).compute_masks(model, 0.95)
    assert all(torch.equal(a, b) for a, b in zip(vanilla.values(), with_t0.values()))
    p = GlobalMagnitudePruner(min_weights=36)
    assert p.threshold(model) == 36 and GlobalMagnitudePruner(min_weights=0.02).threshold(model) == int(0.02 * N)
    p.prune(model, 0.95)
    kept = [int((w != 0).sum()) for w in weights(model)]
    assert all(k >= 36 for k in kept)
    assert abs(sum(n) - sum(kept) - 0.95 * N) <= len(n)
    gp_kept = [int(m.sum()) for m in vanilla.values()]
    assert min(gp_kept) < 36  # vanilla Global MP starves the conv layer here; MT lifts it
    with pytest.raises(ValueError, match="unreachable"):
        GlobalMagnitudePruner(min_weights=40).prune(net(10), 0.97)


def test_mt_small_layers_stay_dense() -> None:
    model = net(11)  # conv has 72 weights <= T = 100
    GlobalMagnitudePruner(min_weights=100).prune(model, 0.8)
    assert bool((model.conv.weight_mask == 1).all())


# --------------------------------------------------------------------------- gradual + fine-tuning
def test_cubic_schedule() -> None:
    assert cubic_sparsity(0, 0.9, 0.0, 10, 110) == 0.0
    assert cubic_sparsity(110, 0.9, 0.0, 10, 110) == 0.9
    assert cubic_sparsity(60, 0.9, 0.0, 10, 110) == pytest.approx(0.9 - 0.9 * 0.125)
    vals = [cubic_sparsity(t, 0.9, 0.1, 0, 50) for t in range(51)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))


def _loader(n: int = 64) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 2, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def test_masked_finetune_keeps_masks_under_momentum_and_weight_decay() -> None:
    model = net(12)
    GlobalMagnitudePruner().prune(model, 0.8)
    masks = [m.weight_mask.clone() for m, _ in prunable_parameters(model)]
    before = [w.clone() for w in weights(model)]
    masked_finetune(
        model,
        _loader(),
        2,
        optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    )
    for (m, _), mask, w0 in zip(prunable_parameters(model), masks, before):
        assert torch.equal(m.weight_mask, mask)
        assert bool((effective_weight(m)[mask == 0] == 0).all())
        assert not torch.equal(effective_weight(m), w0)  # it did train


def test_gradual_pruner_reaches_the_final_sparsity_monotonically() -> None:
    model = net(13)
    gradual = GradualGlobalPruner(0.9, start_step=0, end_step=6, frequency=2)
    masked_finetune(model, _loader(), 2, gradual=gradual)  # 8 steps
    assert [t for t, _ in gradual.history] == [2, 4, 6]
    assert [s for _, s in gradual.history] == sorted(s for _, s in gradual.history)
    keep = kept_sets(model)
    assert int((~keep).sum()) == round(0.9 * keep.numel())
    with pytest.raises(ValueError, match="end_step"):
        GradualGlobalPruner(0.5, start_step=5, end_step=5)


# --------------------------------------------------------------------------- performance
def test_global_mp_of_a_10m_parameter_model_to_90_percent_is_fast() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2000, 2500), nn.ReLU(), nn.Linear(2500, 2000))  # 10,000,000 weights
    t0 = time.perf_counter()
    GlobalMagnitudePruner().prune(model, 0.9)
    elapsed = time.perf_counter() - t0
    nnz = sum(int(torch.count_nonzero(effective_weight(m))) for m in (model[0], model[2]))
    assert nnz == 1_000_000
    assert elapsed < 5.0, f"{elapsed:.2f} s"
