"""UniME-V2's symmetric soft-label KL loss: golden values of the official code, its invariants,
limiting cases, the reference batch layout, gradients and bad input."""

import pickle

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import (
    SymmetricSoftLabelKLLoss,
    deinterleave_reference_layout,
    interleave_reference_layout,
    symmetric_soft_label_kl,
    symmetric_soft_label_kl_parts,
)
from paperzoo.losses.soft_label_kl import _reference_symmetric_soft_label_kl


def _mk(n: int, off: float) -> torch.Tensor:
    x = torch.sin(0.7 * torch.arange(n * 6, dtype=torch.float64) + off).reshape(n, 6)
    return F.normalize(x, dim=1)


def _golden_inputs():
    q, pos, neg = _mk(2, 0.0), _mk(2, 1.0), _mk(8, 2.0).reshape(2, 4, 6)
    s_pos = torch.tensor([0.92, 0.75], dtype=torch.float64)
    s_neg = torch.tensor([[0.44, 0.23, 0.02, 0.08], [0.77, 0.44, 0.26, 0.36]], dtype=torch.float64)
    return q, pos, neg, s_pos, s_neg


def _scores(q, pos, neg, s_pos, s_neg):
    cands = torch.cat([pos[:, None], neg], dim=1)
    return torch.einsum("bd,bkd->bk", q, cands), torch.cat([s_pos[:, None], s_neg], dim=1)


def _official_distributed_call(x, y, x_s, y_s, k, tau):
    """The official DistributedSoftLabelSoftKLContrastiveLoss.__call__ with gather = identity, world size 1."""
    interval = int(k / 2 + 1)
    qry, pos = x[::interval], y[::interval]
    hard = []
    for i in range(1, interval):
        hard.append(x[i::interval])
        hard.append(y[i::interval])
    target = []
    for i in range(interval):
        target.append(x_s[i::interval])
        target.append(y_s[i::interval])
    understanding = torch.stack(target, dim=1)[:, 1:]
    cands = torch.cat([pos[:, None], torch.stack(hard, dim=1)], dim=1)
    scores = torch.bmm(qry[:, None], cands.transpose(1, 2)).squeeze(1)
    return _reference_symmetric_soft_label_kl(scores, understanding, tau)


def test_golden_model_scores():
    model, _ = _scores(*_golden_inputs())
    expected = torch.tensor(
        [[0.51518, -0.27797, 0.994652, -0.532968, -0.307222], [0.676638, -0.417822, 0.999149, -0.670574, -0.455406]],
        dtype=torch.float64,
    )
    assert torch.allclose(model, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("tau", "loss", "kl_qp", "kl_pq", "infonce"),
    [(0.02, 17.6658736, 17.8061067, 17.5256404, 20.0495515), (0.1, 5.89745408, 6.5675135, 5.22739477, 4.03352412)],
)
def test_golden_values(tau, loss, kl_qp, kl_pq, infonce):
    model, judge = _scores(*_golden_inputs())
    assert symmetric_soft_label_kl(model, judge, tau).item() == pytest.approx(loss, abs=1e-6)
    a, b = symmetric_soft_label_kl_parts(model, judge, tau)
    assert a.mean().item() == pytest.approx(kl_qp, abs=1e-6)
    assert b.mean().item() == pytest.approx(kl_pq, abs=1e-6)
    assert F.cross_entropy(model / tau, torch.zeros(2, dtype=torch.long)).item() == pytest.approx(infonce, abs=1e-6)
    assert torch.allclose(
        symmetric_soft_label_kl(model, judge, tau), _reference_symmetric_soft_label_kl(model, judge, tau)
    )


def test_eps_zero_is_the_exact_symmetric_kl():
    model, judge = _scores(*_golden_inputs())
    p, q = torch.softmax(model / 0.1, 1), torch.softmax(judge / 0.1, 1)
    exact = 0.5 * ((q * (q.log() - p.log())).sum(1) + (p * (p.log() - q.log())).sum(1)).mean()
    assert torch.allclose(symmetric_soft_label_kl(model, judge, 0.1, eps=0.0), exact, rtol=1e-12)
    # the eps of the official code matters where P has entries far below 1e-8 (tau = 0.02 here)
    assert abs(symmetric_soft_label_kl(model, judge, 0.02, eps=0.0).item() - 17.6658736) > 1.0


@pytest.mark.parametrize("k", [4, 8])
def test_reference_layout_round_trip_and_official_call(k):
    g = torch.Generator().manual_seed(k)
    b, d = 3, 5
    q, pos = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1), torch.randn(b, d, generator=g)
    pos = F.normalize(pos.double(), dim=1)
    neg = F.normalize(torch.randn(b, k, d, generator=g, dtype=torch.float64), dim=2)
    s_pos, s_neg = torch.rand(b, generator=g, dtype=torch.float64), torch.rand(b, k, generator=g, dtype=torch.float64)
    x, y, xs, ys = interleave_reference_layout(q, pos, neg, s_pos, s_neg)
    assert x.shape == (b * (1 + k // 2), d)
    q2, cands, judge = deinterleave_reference_layout(x, y, xs, ys, k)
    assert torch.equal(q2, q)
    assert torch.equal(cands, torch.cat([pos[:, None], neg], dim=1))
    assert torch.equal(judge, torch.cat([s_pos[:, None], s_neg], dim=1))
    model = torch.einsum("bd,bkd->bk", q2, cands)
    for tau in (0.02, 0.1):
        ours = symmetric_soft_label_kl(model, judge, tau)
        assert torch.allclose(ours, _official_distributed_call(x, y, xs, ys, k, tau), rtol=1e-12)


def test_golden_through_the_official_layout():
    q, pos, neg, s_pos, s_neg = _golden_inputs()
    x, y, xs, ys = interleave_reference_layout(q, pos, neg, s_pos, s_neg)
    assert _official_distributed_call(x, y, xs, ys, 4, 0.02).item() == pytest.approx(17.6658736, abs=1e-6)


def test_nonnegative_symmetric_and_zero_at_equality():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 9, generator=g, dtype=torch.float64), torch.rand(16, 9, generator=g, dtype=torch.float64)
    for tau in (0.02, 0.1, 1.0):
        la = symmetric_soft_label_kl(a, b, tau, reduction="none")
        assert bool((la > 0).all())
        assert torch.allclose(la, symmetric_soft_label_kl(b, a, tau, reduction="none"), rtol=1e-12)
        # softmax shift invariance: model = judge + per-row constant gives P = Q
        c = torch.randn(16, 1, generator=g, dtype=torch.float64)
        same = symmetric_soft_label_kl(b + c, b, tau, reduction="none")
        assert bool((same.abs() < 1e-6).all()) and bool((same > -10 * 9 * 1e-8).all())


def test_permutation_and_row_constant_invariance():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 9, generator=g, dtype=torch.float64), torch.rand(8, 9, generator=g, dtype=torch.float64)
    base = symmetric_soft_label_kl(a, b, 0.1, reduction="none")
    perm = torch.randperm(9, generator=g)
    assert torch.allclose(symmetric_soft_label_kl(a[:, perm], b[:, perm], 0.1, reduction="none"), base, rtol=1e-10)
    shift = torch.randn(8, 1, generator=g, dtype=torch.float64)
    assert torch.allclose(symmetric_soft_label_kl(a + shift, b, 0.1, reduction="none"), base, rtol=1e-9)
    assert torch.allclose(symmetric_soft_label_kl(a, b - shift, 0.1, reduction="none"), base, rtol=1e-9)


def test_one_hot_judge_gives_infonce_over_the_candidates():
    g = torch.Generator().manual_seed(2)
    model = torch.randn(32, 9, generator=g, dtype=torch.float64)
    judge = torch.zeros(32, 9, dtype=torch.float64)
    judge[:, 0] = 1.0
    tau_j = 0.01  # Q = softmax(judge / tau_j) is one-hot up to e^-100
    kl_qp, _ = symmetric_soft_label_kl_parts(model, judge / tau_j * 1.0, 1.0, eps=0.0)
    infonce = F.cross_entropy(model, torch.zeros(32, dtype=torch.long), reduction="none")
    assert torch.allclose(kl_qp, infonce, atol=1e-9)


def test_gradient_lowers_overrated_candidates():
    g = torch.Generator().manual_seed(3)
    tau = 0.5
    model = torch.randn(64, 9, generator=g, dtype=torch.float64).requires_grad_(True)
    judge = torch.rand(64, 9, generator=g, dtype=torch.float64)
    p, q = torch.softmax(model.detach() / tau, 1), torch.softmax(judge / tau, 1)
    # the KL(Q || P) half: the gradient is exactly (P - Q) / (B tau)
    kl_qp, _ = symmetric_soft_label_kl_parts(model, judge, tau, eps=0.0)
    (grad,) = torch.autograd.grad(kl_qp.mean(), model)
    assert torch.allclose(grad, (p - q) / (64 * tau), atol=1e-12)
    # the symmetric loss: the most over-rated candidate (largest P/Q) is pushed down and the most
    # under-rated one up (KL(P || Q) is a P-weighted mean of log(P/Q), so it lies between them)
    symmetric_soft_label_kl(model, judge, tau).backward()
    ratio = (p / q).log()
    rows = torch.arange(64)
    assert bool((model.grad[rows, ratio.argmax(1)] > 0).all())
    assert bool((model.grad[rows, ratio.argmin(1)] < 0).all())
    # with two candidates every over-rated one is pushed down
    two = torch.randn(64, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    j2 = torch.rand(64, 2, generator=g, dtype=torch.float64)
    symmetric_soft_label_kl(two, j2, tau).backward()
    over = torch.softmax(two.detach() / tau, 1) > torch.softmax(j2 / tau, 1)
    assert bool((two.grad[over] > 0).all()) and bool((two.grad[~over] < 0).all())


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(4)
    model = torch.randn(5, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    judge = torch.rand(5, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.rand(5, generator=g, dtype=torch.float64)
    for eps in (1e-8, 0.0):
        assert torch.autograd.gradcheck(lambda m, j, eps=eps: symmetric_soft_label_kl(m, j, 0.5, eps), (model, judge))
        assert torch.autograd.gradcheck(
            lambda m, eps=eps: symmetric_soft_label_kl(m, judge.detach(), 0.5, eps, "sum", w), (model,)
        )


def test_reductions_weights_module_and_dtypes():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(6, 4, generator=g), torch.rand(6, 4, generator=g)
    per = symmetric_soft_label_kl(a, b, reduction="none")
    assert per.shape == (6,)
    assert torch.allclose(symmetric_soft_label_kl(a, b), per.mean())
    assert torch.allclose(symmetric_soft_label_kl(a, b, reduction="sum"), per.sum())
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0, 3.0])
    assert torch.allclose(symmetric_soft_label_kl(a, b, weight=w), (w * per).sum() / w.sum())
    loss = SymmetricSoftLabelKLLoss(reduction="sum")
    assert torch.allclose(loss(a, b), per.sum())
    clone = pickle.loads(pickle.dumps(loss))
    assert torch.allclose(clone(a, b), per.sum()) and "temperature=0.02" in repr(loss)
    half = symmetric_soft_label_kl(a.bfloat16(), b.bfloat16())
    assert half.dtype == torch.float32 and torch.isfinite(half)
    assert symmetric_soft_label_kl(a.double(), b.double()).dtype == torch.float64
    big = symmetric_soft_label_kl(a * 1e4, b)
    assert torch.isfinite(big)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: symmetric_soft_label_kl(torch.randn(3, 4), torch.rand(3, 5)), "judge_scores must have the shape"),
        (lambda: symmetric_soft_label_kl(torch.randn(3), torch.rand(3)), "model_scores must have shape"),
        (lambda: symmetric_soft_label_kl(torch.randn(0, 4), torch.rand(0, 4)), "empty batch: model_scores"),
        (lambda: symmetric_soft_label_kl(torch.randn(3, 1), torch.rand(3, 1)), "at least 2 candidates"),
        (lambda: symmetric_soft_label_kl(torch.full((2, 3), float("nan")), torch.rand(2, 3)), "model_scores contains"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.full((2, 3), float("inf"))), "judge_scores contains"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.rand(2, 3), temperature=0.0), "temperature must"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.rand(2, 3), eps=-1.0), "eps must"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.rand(2, 3), reduction="avg"), "reduction must"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.rand(2, 3), weight=torch.ones(3)), "weight must"),
        (lambda: symmetric_soft_label_kl(torch.randn(2, 3), torch.rand(2, 3), weight=-torch.ones(2)), "non-negative"),
        (lambda: SymmetricSoftLabelKLLoss(temperature=-1.0), "SymmetricSoftLabelKLLoss: temperature"),
        (
            lambda: interleave_reference_layout(*_golden_inputs()[:2], torch.zeros(2, 3, 6), *_golden_inputs()[3:]),
            "even",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_integer_scores_rejected():
    with pytest.raises(TypeError, match="model_scores must be a floating-point"):
        symmetric_soft_label_kl(torch.ones(2, 3, dtype=torch.long), torch.rand(2, 3))


@pytest.mark.parametrize("eps", [1e-8, 0.0])
def test_fused_backward_matches_autograd(eps):
    from paperzoo.losses.soft_label_kl import _parts, _parts_autograd

    g = torch.Generator().manual_seed(6)
    x = (0.3 * torch.randn(7, 9, generator=g, dtype=torch.float64)).requires_grad_(True)
    j = torch.rand(7, 9, generator=g, dtype=torch.float64).requires_grad_(True)
    w1, w2 = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    for tau in (0.02, 0.1):
        fused = _parts(x, j, tau, eps)
        ref = _parts_autograd(x, j, tau, eps)
        assert all(torch.allclose(f, r, rtol=1e-12, atol=1e-12) for f, r in zip(fused, ref))
        gf = torch.autograd.grad((w1 * fused[0] + w2 * fused[1]).sum(), (x, j))
        gr = torch.autograd.grad((w1 * ref[0] + w2 * ref[1]).sum(), (x, j))
        assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(gf, gr))
