"""Tests of the distillation components of Dual-Head Knowledge Distillation (Yang et al., KDD 2025):
golden values of the official BinaryKL / BinaryKLNorm, the log-cosh identity, invariances,
gradients (closed form and gradcheck), the separation of the two heads' gradients, the gradient
alignment, and the objectives driven by ``engine.fit``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.models.dual_head import DualHeadClassifier
from paperzoo.training.distillation import (
    BinaryKLLoss,
    BinaryKLNormLoss,
    DHKDLoss,
    DHKDObjective,
    HintonKDLoss,
    HintonKDObjective,
    _reference_binary_kl,
    _reference_binary_kl_norm,
    align_gradients,
    aligned_surrogate,
    binary_kl,
    binary_kl_norm,
    ga_backward,
    gradient_cosine,
    hinton_kd,
)

STUDENT = [[1.0, -2.0, 0.5], [0.3, 0.3, -0.7]]
TEACHER = [[2.0, -1.0, -0.5], [0.0, 1.3, -0.2]]
# (T, BinaryKL-Norm, BinaryKL), official distiller_zoo code, CPU float64
GOLDEN = [(2.0, 0.268643, 0.250691), (4.0, 0.27059, 0.265742)]


def golden() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(STUDENT, dtype=torch.float64), torch.tensor(TEACHER, dtype=torch.float64)


def rand(n: int = 6, k: int = 5, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(n, k, generator=g, dtype=torch.float64)
    return z, scale * torch.randn(n, k, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- golden values
@pytest.mark.parametrize(("T", "norm", "bkl"), GOLDEN)
def test_golden_values(T: float, norm: float, bkl: float) -> None:
    z, t = golden()
    assert binary_kl_norm(z, t, T).item() == pytest.approx(norm, abs=1e-6)
    assert binary_kl(z, t, T).item() == pytest.approx(bkl, abs=1e-6)
    assert BinaryKLNormLoss(T)(z, t).item() == pytest.approx(norm, abs=1e-6)
    assert BinaryKLLoss(T)(z, t).item() == pytest.approx(bkl, abs=1e-6)


def test_golden_shifts() -> None:
    z, t = golden()
    assert binary_kl_norm(z + 3, t + 3, 2.0).item() == pytest.approx(0.268643, abs=1e-6)
    assert binary_kl_norm(z + 1, t, 2.0).item() == pytest.approx(0.359630, abs=1e-6)


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize("T", [0.5, 2.0, 4.0])
def test_log_cosh_identity_and_naive_reference(T: float) -> None:
    z, t = rand(8, 7, seed=1)
    closed = torch.log(torch.cosh((z - t) / (2 * T))).sum() * T**2 / z.shape[0]
    torch.testing.assert_close(binary_kl_norm(z, t, T), closed, rtol=0, atol=1e-10)
    # the naive official form clamps sigmoid outputs to [1e-8, 1 - 1e-8]: compare where it is inactive
    z, t = rand(8, 7, seed=1, scale=1.0)
    torch.testing.assert_close(binary_kl_norm(z, t, T), _reference_binary_kl_norm(z, t, T), rtol=0, atol=1e-10)
    torch.testing.assert_close(binary_kl(z, t, T), _reference_binary_kl(z, t, T), rtol=0, atol=1e-10)


def test_shift_invariance_only_of_both() -> None:
    z, t = rand(seed=2)
    torch.testing.assert_close(binary_kl_norm(z + 5.0, t + 5.0), binary_kl_norm(z, t), rtol=0, atol=1e-12)
    c = torch.randn(z.shape[0], 1, dtype=torch.float64)
    # a per-sample shift of the student alone changes it (softmax KD cannot see it)
    assert (binary_kl_norm(z + c, t) - binary_kl_norm(z, t)).abs() > 1e-3
    torch.testing.assert_close(hinton_kd(z + c, t), hinton_kd(z, t), rtol=0, atol=1e-12)
    # BinaryKL (the unnormalised one) is not invariant to a common shift
    assert (binary_kl(z + 5.0, t + 5.0) - binary_kl(z, t)).abs() > 1e-3


def test_nonnegative_and_zero_iff_equal() -> None:
    for seed in range(5):
        z, t = rand(seed=seed)
        assert binary_kl_norm(z, t) > 0 and binary_kl(z, t) > 0 and hinton_kd(z, t) >= 0
        assert binary_kl_norm(z, z) == 0
        assert binary_kl(z, z).abs() < 1e-12
    # only z - t matters for the normalised loss, and a single differing entry is penalised
    z, t = rand(seed=9)
    z2 = t.clone()
    z2[0, 0] += 1e-3
    assert binary_kl_norm(z2, t) > 0


def test_closed_form_gradient_and_bound() -> None:
    T = 2.0
    z, t = rand(5, 4, seed=3, scale=10.0)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(binary_kl_norm(z, t, T), z)
    expected = T / (2 * z.shape[0]) * torch.tanh((z.detach() - t) / (2 * T))
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-14)
    assert grad.abs().max() <= T / (2 * z.shape[0])


def test_limits_small_and_large_difference() -> None:
    T = 2.0
    t = torch.zeros(1, 1, dtype=torch.float64)
    small = torch.full((1, 1), 1e-3, dtype=torch.float64)
    assert binary_kl_norm(small, t, T).item() == pytest.approx(1e-6 / 8, rel=1e-5)
    big = torch.full((1, 1), 1e4, dtype=torch.float64)
    assert binary_kl_norm(big, t, T).item() == pytest.approx(T * 1e4 / 2 - T**2 * math.log(2), rel=1e-12)
    # finite where the naive sigmoid form saturates
    assert torch.isfinite(binary_kl_norm(torch.full((2, 3), 1e4), torch.full((2, 3), -1e4)))


def test_gradcheck() -> None:
    z, t = rand(4, 3, seed=4)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: binary_kl_norm(a, t, 2.0), (z,))
    assert torch.autograd.gradcheck(lambda a: binary_kl(a, t, 2.0), (z,))
    assert torch.autograd.gradcheck(lambda a: hinton_kd(a, t, 4.0), (z,))


def test_teacher_gets_no_gradient_and_hinton_matches_torch() -> None:
    z, t = rand(seed=5)
    t.requires_grad_(True)
    binary_kl_norm(z.requires_grad_(True), t).backward()
    assert t.grad is None
    T = 4.0
    expected = F.kl_div(F.log_softmax(z / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True)
    torch.testing.assert_close(hinton_kd(z, t, T), expected * T**2)
    torch.testing.assert_close(HintonKDLoss(T)(z, t), expected * T**2)


def test_low_precision_is_computed_in_float32() -> None:
    z, t = rand(seed=6)
    out = binary_kl_norm(z.bfloat16(), t.bfloat16())
    assert out.dtype == torch.float32 and torch.isfinite(out)


# --------------------------------------------------------------------------- input errors
@pytest.mark.parametrize("fn", [binary_kl_norm, binary_kl, hinton_kd])
def test_bad_inputs(fn) -> None:  # type: ignore[no-untyped-def]
    z, t = rand()
    with pytest.raises(ValueError, match="teacher_logits must have the shape"):
        fn(z, t[:, :-1])
    with pytest.raises(ValueError, match=r"student_logits must have shape \(N, K\)"):
        fn(z[0], t[0])
    with pytest.raises(ValueError, match="empty batch: student_logits"):
        fn(z[:0], t[:0])
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="student_logits contains NaN"):
        fn(bad, t)
    with pytest.raises(ValueError, match="teacher_logits contains NaN"):
        fn(z, bad)
    with pytest.raises(TypeError, match="teacher_logits must be a floating-point"):
        fn(z, t.long())
    with pytest.raises(ValueError, match="temperature must be a float in"):
        fn(z, t, 0.0)


def test_bad_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="BinaryKLNormLoss: temperature"):
        BinaryKLNormLoss(-1.0)
    with pytest.raises(ValueError, match="BinaryKLLoss: eps"):
        BinaryKLLoss(eps=0.7)
    with pytest.raises(ValueError, match="DHKDLoss: alpha"):
        DHKDLoss(alpha=-0.1)
    with pytest.raises(ValueError, match="DHKDObjective: kd_head"):
        DHKDObjective(kd_head="both")


# --------------------------------------------------------------------------- DHKD
def student(k: int = 4, aux: str = "linear") -> DualHeadClassifier:
    torch.manual_seed(0)
    return DualHeadClassifier(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), 8, k, aux_head=aux).double()


def test_dhkd_heads_get_gradient_from_their_own_term_only() -> None:
    model = student()
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 4, (10,))
    t = torch.randn(10, 4, dtype=torch.float64)
    main, aux = model(x)
    terms = DHKDLoss(gamma=1.0, alpha=1.0)(main, aux, t, y)
    torch.testing.assert_close(terms["total"], terms["ce"] + terms["kd"])
    g_ce = torch.autograd.grad(terms["ce"], [model.fc.weight, model.fc2.weight], retain_graph=True, allow_unused=True)
    g_kd = torch.autograd.grad(terms["kd"], [model.fc.weight, model.fc2.weight], retain_graph=True, allow_unused=True)
    assert g_ce[1] is None and g_kd[0] is None  # no KD gradient on fc, no CE gradient on fc2
    assert g_ce[0].abs().sum() > 0 and g_kd[1].abs().sum() > 0
    torch.testing.assert_close(terms["ce"], F.cross_entropy(main, y))
    torch.testing.assert_close(terms["kd"], binary_kl_norm(aux, t, 2.0))


def test_dhkd_alpha_zero_is_plain_cross_entropy() -> None:
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randint(0, 4, (32,))
    t = torch.randn(32, 4, dtype=torch.float64)
    loader = make_loader(TensorDataset(x, y, t), 8, seed=0)
    a, b = student(), student()
    fc2_before = a.fc2.weight.detach().clone()
    cfg = TrainConfig(epochs=2, seed=0, progress=False)
    fit(a, None, loader, torch.optim.SGD(a.parameters(), lr=0.1), cfg, compute_loss=DHKDObjective(alpha=0.0))

    def ce(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0], return_aux=False), batch[1])

    fit(b, None, loader, torch.optim.SGD(b.parameters(), lr=0.1), cfg, compute_loss=ce)
    torch.testing.assert_close(a.fc.weight, b.fc.weight)
    torch.testing.assert_close(a.backbone[0].weight, b.backbone[0].weight)
    torch.testing.assert_close(a.fc2.weight, fc2_before)  # head 2 untouched (zero gradient, plain SGD)


def test_dhkd_loss_bad_inputs() -> None:
    z, t = rand(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="target must lie in"):
        DHKDLoss()(z, z, t, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="target must have shape"):
        DHKDLoss()(z, z, t, y[:3])
    with pytest.raises(ValueError, match="logits_main must have the shape"):
        DHKDLoss()(z[:, :2], z, t, y)


# --------------------------------------------------------------------------- gradient alignment
def _flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in gs])


def test_alignment_projects_only_conflicting_gradients() -> None:
    w = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # conflicting: g1 = (a, 0), g2 = (-2a + e2, 3)
    l1 = (a * w).sum()
    l2 = (-2 * a * w).sum() + w[1] + 3 * v.sum()
    g = _flat(align_gradients([l1, l2], [w, v]))
    g1 = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    g2 = torch.tensor([-2.0, 1, 0, 3], dtype=torch.float64)
    g2p = g2 - (g2 @ g1) / (g1 @ g1) * g1
    torch.testing.assert_close(g, g1 + g2p)
    assert (g - g1) @ g1 >= -1e-8  # after projection the second gradient no longer conflicts
    # agreeing gradients are summed unchanged
    l1, l2 = (a * w).sum(), (a * w).sum() + 3 * v.sum()
    torch.testing.assert_close(_flat(align_gradients([l1, l2], [w, v])), torch.tensor([2.0, 0, 0, 3]).double())


def test_alignment_random_and_backward_forms_agree() -> None:
    torch.manual_seed(1)
    model = student()
    x, y, t = torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 4, (12,)), torch.randn(12, 4).double()
    params = list(model.parameters())

    def terms() -> dict[str, torch.Tensor]:
        main, aux = model(x)
        return DHKDLoss(alpha=3.0)(main, aux, t, y)

    tr = terms()
    raw = torch.autograd.grad(tr["ce"], params, retain_graph=True, allow_unused=True)
    g1 = _flat([torch.zeros_like(p) if g is None else g for p, g in zip(params, raw)])
    aligned = _flat(align_gradients([tr["ce"], tr["kd"]], params))
    assert (aligned - g1) @ g1 >= -1e-8
    tr = terms()
    ga_backward([tr["ce"], tr["kd"]], params)
    torch.testing.assert_close(_flat([p.grad for p in params]), aligned)
    model.zero_grad(set_to_none=True)
    tr = terms()
    surrogate = aligned_surrogate([tr["ce"], tr["kd"]], params)
    torch.testing.assert_close(surrogate.detach(), (tr["ce"] + tr["kd"]).detach())
    surrogate.backward()
    torch.testing.assert_close(_flat([p.grad for p in params]), aligned)


def test_alignment_bad_inputs() -> None:
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="losses must hold"):
        align_gradients([], [w])
    with pytest.raises(ValueError, match="params must hold"):
        align_gradients([w.sum()], [])
    with pytest.raises(ValueError, match=r"losses\[0\] must be a scalar"):
        align_gradients([w * 2], [w])


def test_gradient_cosine() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    assert gradient_cosine((w * torch.tensor([1.0, 0.0])).sum(), -(w * torch.tensor([1.0, 0.0])).sum(), [w]) == -1.0
    assert math.isnan(gradient_cosine(w.sum(), torch.zeros(()) * w.sum(), [w]))


# --------------------------------------------------------------------------- objectives under fit
def test_objectives_train_with_fit_teacher_module_or_logits() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(48, 6), torch.randint(0, 4, (48,))
    teacher = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        t = teacher(x)
    cfg = TrainConfig(epochs=2, seed=0, progress=False)
    finals = []
    for batch_has_logits in (False, True):
        torch.manual_seed(1)
        model = DualHeadClassifier(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), 8, 4)
        data = TensorDataset(x, y, t) if batch_has_logits else TensorDataset(x, y)
        obj = DHKDObjective(None if batch_has_logits else teacher, align=True, monitor={"fc": [model.fc.weight]})
        hist = fit(
            model, None, make_loader(data, 16, seed=0), torch.optim.Adam(model.parameters()), cfg, compute_loss=obj
        )
        assert len(hist.losses) == 6 and len(obj.cosines["fc"]) == 6 and obj.steps == 6
        assert 0 <= obj.projected_steps <= 6
        finals.append(model.fc.weight.detach().clone())
    torch.testing.assert_close(finals[0], finals[1])
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    kd = HintonKDObjective(teacher)
    model = DualHeadClassifier(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), 8, 4)
    fit(model, None, make_loader(TensorDataset(x, y), 16), torch.optim.Adam(model.parameters()), cfg, compute_loss=kd)
    assert set(kd.last) == {"ce", "kd", "total"}
    with pytest.raises(ValueError, match="teacher_logits"):
        DHKDObjective()(model, (x, y))
