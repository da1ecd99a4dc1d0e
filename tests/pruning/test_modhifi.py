"""ModHiFi (paper 16): component similarity, fidelity scores, compensation, k-MFS and the
structured pruner. Golden values are the closed forms on a 4 x 3 example, checked by hand against
explicit-contribution least squares."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from paperzoo.pruning.modhifi import (
    CalibrationStats,
    L2StructuredPruner,
    ModHiFiImportance,
    ModHiFiPruner,
    bruteforce_kmfs,
    cholesky_rownorm_scores,
    component_scores,
    component_similarity,
    hifi_membership,
    hifi_sets,
    kmfs_monte_carlo,
    layer_scores,
    local_global_error_ratio,
    naive_kmfs,
    optimal_compensation,
    prunable_weight_count,
    rowsum_saliency,
    singleton_fidelity,
    subset_fidelity,
    synthetic_like,
)

D = torch.float64
X = torch.tensor([[1, 0, 2], [0, 1, 1], [2, 1, 0], [1, 2, 1]], dtype=D)
W = torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]], dtype=D)


def _golden_layer() -> tuple[nn.Linear, CalibrationStats]:
    lin = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(W)
    return lin, CalibrationStats.collect(lin, X, {"l": lin})


def _q(center: str = "none") -> torch.Tensor:
    lin, stats = _golden_layer()
    return component_similarity(lin, stats["l"], center=center)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- golden values
def test_golden_gram() -> None:
    _, stats = _golden_layer()
    g = torch.tensor([[1.5, 1, 0.75], [1, 1.5, 0.75], [0.75, 0.75, 1.5]], dtype=D)
    assert torch.allclose(stats["l"].second_moment, g)


def test_golden_uncentred() -> None:
    q = _q()
    s = torch.tensor([[0.00333333, 0.563333, 0], [0.828431, 0.593137, 0.0441176]], dtype=D)
    assert torch.allclose(singleton_fidelity(q), s, atol=1e-6)
    assert torch.allclose(rowsum_saliency(q), torch.tensor([[-0.03125, 0.8125, 0], [1.625, 0.6875, -0.1875]], dtype=D))
    alpha = torch.tensor([[-0.0833333, 0.541667, 0], [1.08333, 1.83333, -0.5]], dtype=D)
    assert torch.allclose(component_scores(q, "alpha"), alpha, atol=1e-5)
    assert torch.allclose(optimal_compensation(q[0], [0, 2], 0.0), torch.tensor([-1 / 9, 0, 1 / 9], dtype=D))
    assert torch.allclose(
        optimal_compensation(q[0], [0, 2], 1e-4), torch.tensor([-0.111032, 0, 0.111979], dtype=D), atol=1e-6
    )
    assert float(subset_fidelity(q[0], [0, 2])) == pytest.approx(0.00444444, abs=1e-7)
    assert float(subset_fidelity(q[0], [1])) == pytest.approx(0.563333, abs=1e-6)
    assert float(subset_fidelity(q[1], [0, 1])) == pytest.approx(0.876471, abs=1e-6)
    assert torch.allclose(subset_fidelity(q, [0, 1, 2]), torch.ones(2, dtype=D))


def test_golden_centred() -> None:
    q = _q("self")
    s = torch.tensor([[0.0978261, 0.880435, 0.173913], [0.694444, 0.25, 0.694444]], dtype=D)
    assert torch.allclose(singleton_fidelity(q), s, atol=1e-6)
    row = torch.tensor([[0.09375, 0.5625, 0.0625], [0.625, 0.1875, 0.3125]], dtype=D)
    assert torch.allclose(rowsum_saliency(q), row)
    assert torch.allclose(component_scores(q, "alpha"), torch.tensor([[0.75, 1.125, 2.0], [1.25, 1.5, 2.5]], dtype=D))
    assert torch.allclose(optimal_compensation(q[0], [0, 2], 0.0), torch.tensor([5 / 3, 0, 11 / 3], dtype=D))
    assert torch.allclose(
        optimal_compensation(q[0], [0, 2], 1e-4), torch.tensor([1.663128, 0, 3.654633], dtype=D), atol=1e-6
    )
    assert float(subset_fidelity(q[0], [0, 2])) == pytest.approx(0.536232, abs=1e-6)
    assert float(subset_fidelity(q[0], [1])) == pytest.approx(0.880435, abs=1e-6)
    assert float(subset_fidelity(q[1], [0, 1])) == pytest.approx(0.944444, abs=1e-6)


# --------------------------------------------------------------------------- CSM properties
def _contributions_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Explicit A (N, c_out, c_in, H', W'): one input channel at a time."""
    parts = []
    for i in range(conv.in_channels):
        xi = torch.zeros_like(x)
        xi[:, i] = x[:, i]
        parts.append(F.conv2d(xi, conv.weight, None, conv.stride, conv.padding, conv.dilation))
    return torch.stack(parts, 2)


def test_conv_csm_matches_explicit_contributions_and_output_energy() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1, stride=2).double()
    x = torch.randn(12, 4, 7, 7, dtype=D)
    stats = CalibrationStats.collect(conv, x, {"c": conv}, batch_size=5)["c"]
    q = component_similarity(conv, stats)
    a = _contributions_conv(conv, x)
    explicit = torch.einsum("ncihw,ncjhw->cij", a, a) / x.shape[0]
    assert torch.allclose(q, explicit, atol=1e-10)
    assert torch.allclose(q, q.transpose(1, 2)) and bool((torch.linalg.eigvalsh(q) > -1e-9).all())
    y = conv(x) - conv.bias[:, None, None]
    assert torch.allclose(q.sum((1, 2)), y.square().sum((2, 3)).mean(0), atol=1e-10)
    # centring: channel mean (a scalar per (c, i)) and map mean (per position)
    for mean, mu in (("channel", a.mean((0, 3, 4), keepdim=True)), ("map", a.mean(0, keepdim=True))):
        ac = a - mu
        explicit_c = torch.einsum("ncihw,ncjhw->cij", ac, ac) / x.shape[0]
        got = component_similarity(conv, stats, center="self", mean=mean)  # type: ignore[arg-type]
        assert torch.allclose(got, explicit_c, atol=1e-9), mean
    # chunking over output channels
    assert torch.allclose(component_similarity(conv, stats, out_channels=[1, 3]), q[[1, 3]])


def test_reference_centring_is_second_moment_about_the_reference_mean() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 3).double()
    x, xr = torch.rand(6, 3, 5, 5, dtype=D), torch.randn(9, 3, 5, 5, dtype=D)
    st, ref = (CalibrationStats.collect(conv, v, {"c": conv})["c"] for v in (x, xr))
    a, ar = _contributions_conv(conv, x), _contributions_conv(conv, xr)
    ac = a - ar.mean((0, 3, 4), keepdim=True)
    explicit = torch.einsum("ncihw,ncjhw->cij", ac, ac) / x.shape[0]
    assert torch.allclose(component_similarity(conv, st, "reference", "channel", ref), explicit, atol=1e-9)
    with pytest.raises(ValueError, match="ref_stats"):
        component_similarity(conv, st, center="reference")


def test_singleton_fidelity_is_one_component_regression_and_invariant_to_scale() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(6, 3, bias=False).double()
    x = torch.randn(50, 6, dtype=D)
    q = component_similarity(lin, CalibrationStats.collect(lin, x, {"l": lin})["l"])
    a = x[:, None, :] * lin.weight[None]  # (N, c, i)
    y = a.sum(-1, keepdim=True)
    alpha = (a * y).mean(0) / a.square().mean(0)
    explicit = 1 - (y - alpha * a).square().mean(0) / y.square().mean(0)
    s = singleton_fidelity(q)
    assert torch.allclose(s, explicit, atol=1e-10) and bool(((s >= 0) & (s <= 1)).all())
    scaled = q * torch.tensor([2.0, -3.0, 0.5], dtype=D)[:, None, None] ** 2  # W[c,:] scaled per row
    assert torch.allclose(singleton_fidelity(scaled), s)
    assert torch.allclose(singleton_fidelity(9 * q), s)  # all inputs scaled by 3
    assert torch.allclose(rowsum_saliency(9 * q), 9 * rowsum_saliency(q))


def test_subset_fidelity_limits_monotonicity_and_least_squares() -> None:
    torch.manual_seed(3)
    lin = nn.Linear(5, 1, bias=False).double()
    x = torch.randn(40, 5, dtype=D)
    q = component_similarity(lin, CalibrationStats.collect(lin, x, {"l": lin})["l"])[0]
    assert float(subset_fidelity(q, [])) == pytest.approx(0.0, abs=1e-12) and float(
        subset_fidelity(q, range(5))
    ) == pytest.approx(1.0)
    assert torch.allclose(optimal_compensation(q, list(range(5)), 0.0), torch.ones(5, dtype=D))
    a = x * lin.weight[0].detach()
    y = a.sum(1)
    prev = 0.0
    for k in range(1, 6):
        c = list(range(k))
        fs = float(subset_fidelity(q, c))
        assert fs >= prev - 1e-12
        prev = fs
        sol = torch.linalg.lstsq(a[:, c], y[:, None]).solution
        resid = (y - (a[:, c] @ sol)[:, 0]).square().mean()
        assert fs == pytest.approx(float(1 - resid / y.square().mean()), abs=1e-9)
        # the reconstruction error after compensation is (1 - FS) E||Y||^2, never above plain zeroing
        delta = optimal_compensation(q, c, 0.0)
        err = (y - a @ delta).square().mean()
        assert float(err) == pytest.approx((1 - fs) * float(y.square().mean()), abs=1e-9)
        assert float(err) <= float((y - a[:, c].sum(1)).square().mean()) + 1e-12


def test_diagonal_csm_naive_kmfs_is_optimal() -> None:
    torch.manual_seed(4)
    d = torch.rand(7, dtype=D) + 0.1
    q = torch.diag(d)
    s = singleton_fidelity(q)
    for k in range(0, 8):
        best, fs = bruteforce_kmfs(q, k)
        naive = naive_kmfs(q, k)
        assert float(subset_fidelity(q, naive)) == pytest.approx(fs, abs=1e-12)
        assert fs == pytest.approx(float(s[naive].sum()), abs=1e-12)
    assert naive_kmfs(q, 3).tolist() == sorted(torch.topk(d, 3).indices.tolist())


def test_monte_carlo_kmfs_never_beats_bruteforce() -> None:
    torch.manual_seed(5)
    a = torch.randn(6, 6, dtype=D)
    q = a @ a.T
    _, exact = bruteforce_kmfs(q, 3)
    idx, mc = kmfs_monte_carlo(q, 3, n_samples=400, generator=torch.Generator().manual_seed(0))
    assert mc <= exact + 1e-12 and mc == pytest.approx(exact)  # 400 draws cover all 20 subsets
    assert float(subset_fidelity(q, idx)) == pytest.approx(mc)


def test_dead_component_scores_zero_and_is_never_selected_first() -> None:
    torch.manual_seed(6)
    lin = nn.Linear(4, 3, bias=False).double()
    x = torch.rand(30, 4, dtype=D) + 0.1
    x[:, 2] = 0.0  # dead input channel
    q = component_similarity(lin, CalibrationStats.collect(lin, x, {"l": lin})["l"])
    for score in ("fidelity", "alpha"):
        s = component_scores(q, score)
        assert torch.isfinite(s).all() and bool((s[:, 2] == 0).all())
    s = singleton_fidelity(q)
    assert not (hifi_sets(s, k=1) == 2).any()
    assert bool((singleton_fidelity(torch.zeros(2, 3, 3, dtype=D)) == 0).all())  # silent output: 0, not NaN


def test_fast_layer_scores_match_full_csm() -> None:
    torch.manual_seed(7)
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    x, xr = torch.randn(8, 3, 5, 5, dtype=D), torch.randn(8, 3, 5, 5, dtype=D) + 1
    st, ref = (CalibrationStats.collect(conv, v, {"c": conv})["c"] for v in (x, xr))
    for score in ("fidelity", "rowsum", "alpha"):
        for center, mean in (("none", "channel"), ("self", "map"), ("reference", "channel"), ("reference", "map")):
            full = component_scores(component_similarity(conv, st, center, mean, ref), score)  # type: ignore[arg-type]
            assert torch.allclose(layer_scores(conv, st, score, center, mean, ref), full, atol=1e-10)  # type: ignore[arg-type]


def test_cholesky_rownorm_is_energy_plus_ridge() -> None:
    q = _q()
    diag = torch.diagonal(q, dim1=-2, dim2=-1)
    assert torch.allclose(cholesky_rownorm_scores(q, 1e-4), diag + 1e-4)
    with pytest.raises(ValueError, match="positive definite"):
        cholesky_rownorm_scores(-torch.eye(3, dtype=D))


def test_hifi_sets_and_membership() -> None:
    s = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.8, 0.1, 0.3, 0.7]], dtype=D)
    assert sorted(hifi_sets(s, k=2)[0].tolist()) == [1, 2]
    assert hifi_sets(s, keep_fraction=0.5).shape == (2, 2)
    assert hifi_sets(s, keep_fraction=0.3).shape == (2, 2)  # ceil(0.3 * 4)
    m = hifi_membership(s, threshold=0.5)
    assert m.tolist() == [[False, True, True, False], [True, False, False, True]]
    with pytest.raises(ValueError, match="exactly one"):
        hifi_sets(s, keep_fraction=0.5, k=2)
    with pytest.raises(ValueError, match="k must be"):
        hifi_sets(s, k=5)


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    q = _q()
    with pytest.raises(ValueError, match="Q must be"):
        singleton_fidelity(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="Q"):
        singleton_fidelity(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match="subset holds indices"):
        optimal_compensation(q[0], [0, 3])
    with pytest.raises(ValueError, match="ridge"):
        optimal_compensation(q[0], [0], ridge=-1.0)
    with pytest.raises(NotImplementedError, match="grouped"):
        CalibrationStats({"c": nn.Conv2d(4, 4, 3, groups=2)})
    with pytest.raises(TypeError, match="Conv2d and nn.Linear"):
        CalibrationStats({"b": nn.BatchNorm1d(3)})
    with pytest.raises(ValueError, match="empty"):
        CalibrationStats.collect(nn.Linear(3, 2), torch.zeros(0, 3), {"l": nn.Linear(3, 2)})
    with pytest.raises(ValueError, match="center"):
        component_similarity(*_golden_layer()[:1], _golden_layer()[1]["l"], center="mean")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pruner
def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 4),
    )  # fmt: skip


def _warm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.train()
    with torch.no_grad():
        model(x)  # non-trivial BatchNorm statistics
    return model.eval()


def test_zero_removal_leaves_outputs_unchanged() -> None:
    torch.manual_seed(8)
    x = torch.rand(40, 1, 8, 8)
    model = _warm(_cnn(), x)
    before = model(x)
    pruner = ModHiFiPruner(removal_fraction=0.0, selection="union")
    out = pruner.prune(copy.deepcopy(model), 0.5, x)
    assert pruner.last_report["channels_removed"] == 0
    assert torch.equal(out(x), before)
    same = ModHiFiPruner().prune(copy.deepcopy(model), 0.0, x)
    assert torch.equal(same(x), before)


def test_union_rule_keeps_exactly_the_union_of_hifi_sets() -> None:
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(64, 6)
    pruner = ModHiFiPruner(removal_fraction=0.9, selection="union", iterations=1, compensate=False, center="none")
    stats = CalibrationStats.collect(model, x, {"2": model[2]})
    member = hifi_membership(layer_scores(model[2], stats["2"], "fidelity"), keep_fraction=0.1)
    union = member.any(0)
    kept_rows = model[0].weight[union].clone()
    pruned = pruner.prune(copy.deepcopy(model), 0.99, x)
    assert pruned[0].out_features == int(union.sum()) < 16
    assert torch.equal(pruned[0].weight, kept_rows)


def test_physical_removal_matches_masked_model() -> None:
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(5, 20), nn.ReLU(), nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    x = torch.randn(50, 5)
    pruned = ModHiFiPruner(compensate=False, bn_recalibrate=False).prune(copy.deepcopy(model), 0.5, x)
    masked = copy.deepcopy(model)
    with torch.no_grad():
        keep0 = torch.tensor([any(torch.equal(r, s) for s in pruned[0].weight) for r in model[0].weight])
        rows2 = model[2].weight[:, keep0]
        keep2 = torch.tensor([any(torch.equal(r, s) for s in pruned[2].weight) for r in rows2])
        assert int(keep0.sum()) == pruned[0].out_features < 20 and int(keep2.sum()) == pruned[2].out_features < 10
        masked[2].weight[:, ~keep0] = 0.0
        masked[4].weight[:, ~keep2] = 0.0
    assert torch.allclose(pruned(x), masked(x), atol=1e-6)


def test_budget_reaches_sparsity_and_matches_l2_architecture() -> None:
    torch.manual_seed(11)
    x = torch.rand(32, 1, 8, 8)
    model = _warm(_cnn(), x)
    total = prunable_weight_count(model)
    a = ModHiFiPruner(score="rowsum").prune(copy.deepcopy(model), 0.6, x)
    b = L2StructuredPruner().prune(copy.deepcopy(model), 0.6, x)
    assert 1 - prunable_weight_count(a) / total >= 0.6
    assert [tuple(p.shape) for p in a.parameters()] == [tuple(p.shape) for p in b.parameters()]
    assert a[-1].out_features == 4 and torch.isfinite(a(x)).all()
    with pytest.raises(ValueError, match="out of reach"):
        ModHiFiPruner().prune(copy.deepcopy(model), 0.999, x)


def test_coupled_residual_channels_are_removed_together() -> None:
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.a, self.b = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 1)
            self.fc = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.stem(x))
            h = h + self.b(torch.relu(self.a(h)))  # stem, b outputs and a, b, fc inputs coupled
            return self.fc(h.mean((2, 3)))

    torch.manual_seed(12)
    model, x = Res().eval(), torch.rand(16, 1, 6, 6)
    out = ModHiFiPruner().prune(model, 0.3, x)
    assert out.stem.out_channels == out.b.out_channels == out.a.in_channels == out.fc.in_features < 6
    assert torch.isfinite(out(x)).all()


def test_importance_plugs_into_torch_pruning_groups() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 4))
    group = dg.get_pruning_group(model[0], tp.prune_linear_out_channels, list(range(6)))
    member = torch.zeros(2, 6, dtype=torch.bool)
    member[0, 1] = member[1, 1] = member[1, 4] = True
    imp = ModHiFiImportance({model[2]: member}, {model[2]: torch.arange(12.0).reshape(2, 6)})(group)
    assert imp is not None and imp.shape == (6,)
    assert imp.floor().tolist() == [0, 2, 0, 0, 1, 0]


def test_pruner_bad_input() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 1\)"):
        ModHiFiPruner().prune(model, 1.0, torch.randn(8, 4))
    with pytest.raises(ValueError, match="sparsity"):
        L2StructuredPruner().prune(model, -0.1, torch.randn(8, 4))
    with pytest.raises(ValueError, match="calibration"):
        ModHiFiPruner().prune(model, 0.5, None)
    with pytest.raises(ValueError, match="removal_fraction"):
        ModHiFiPruner(removal_fraction=1.0)
    with pytest.raises(ValueError, match="score"):
        ModHiFiPruner(score="taylor")
    with pytest.raises(TypeError, match="prune"):
        ModHiFiPruner()(model)
    assert ModHiFiPruner.structured and ModHiFiPruner.needs_calibration


def test_compensation_recovers_accuracy_on_a_trained_mlp() -> None:
    """The point of Proposition 3.8: compensated pruning tracks the dense outputs better."""
    torch.manual_seed(13)
    x = torch.randn(400, 8)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    with torch.no_grad():
        dense = teacher(x)
    errs = {}
    for comp in (True, False):
        pruned = ModHiFiPruner(compensate=comp).prune(copy.deepcopy(teacher), 0.5, x)
        with torch.no_grad():
            errs[comp] = float((pruned(x) - dense).square().mean())
    assert errs[True] < errs[False]


def test_synthetic_like_is_seeded_and_clipped() -> None:
    x = torch.rand(30, 1, 4, 4)
    a, b = synthetic_like(x, 20, seed=3), synthetic_like(x, 20, seed=3)
    assert a.shape == (20, 1, 4, 4) and torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


@pytest.mark.parametrize("k", [1, 2])
def test_bruteforce_enumerates_every_subset(k: int) -> None:
    q = torch.eye(4, dtype=D) * torch.tensor([1.0, 4.0, 2.0, 3.0], dtype=D)
    best, fs = bruteforce_kmfs(q, k)
    assert fs == pytest.approx(
        max(float(q.diagonal()[list(c)].sum()) / 10 for c in itertools.combinations(range(4), k))
    )
    assert best.tolist() == sorted(torch.topk(q.diagonal(), k).indices.tolist())


def test_local_global_error_ratio() -> None:
    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double().eval()
    x = torch.randn(32, 4, dtype=D)
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[:, :2] = False
    before = model[2].weight.detach().clone()
    out = local_global_error_ratio(model, "2", keep, x)
    # the masked layer is the last one: the global error is exactly the local one
    assert out["ratio"] == pytest.approx(1.0) and out["local"] > 0
    assert torch.equal(model[2].weight, before)  # the model is restored
    with pytest.raises(ValueError, match="bool mask"):
        local_global_error_ratio(model, "2", torch.ones(6, 3, dtype=torch.bool), x)
