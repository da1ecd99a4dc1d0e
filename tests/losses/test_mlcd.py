"""Tests of the MLCD and MLC losses (An et al., ECCV 2024): golden values from a direct float64
evaluation of the equations, the factorisation identity, MLCD >= MLC > 0, the decoupling of the
positive and negative terms, gradient signs, the l = 1 closed form of MLC, permutation
invariance within each set, scale and margin, agreement with the naive formula, and the
multi-label conformance suite."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import MLCDLoss, MLCLoss, mlc_loss, mlcd_loss
from paperzoo.losses.mlcd import _naive_mlcd, _reference_mlcd
from paperzoo.testing import multilabel_loss_checks

D = torch.float64
S = torch.tensor([[0.8, 0.1, -0.2, 0.5, 0.0, 0.3], [0.2, 0.6, 0.4, -0.1, -0.5, 0.05]], dtype=D)
POS = torch.zeros(2, 6, dtype=torch.bool)
POS[0, [0, 3]] = True
POS[1, [1, 2]] = True
GOLDEN = [(1.0, (2.38344, 2.3624), (1.70702, 1.72513)), (32.0, (9.6018, 6.40991), (0.00166316, 0.00167672))]


def _case(n: int = 8, k: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, k, generator=g, dtype=D) * 2 - 1
    pos = torch.rand(n, k, generator=g) < 0.3
    pos[:, 0], pos[:, 1] = True, False
    return s, pos


@pytest.mark.parametrize(("scale", "mlcd", "mlc"), GOLDEN)
def test_golden_values(scale: float, mlcd: tuple, mlc: tuple) -> None:
    out = MLCDLoss(scale, reduction="none")(S, POS)
    torch.testing.assert_close(out, torch.tensor(mlcd, dtype=D), rtol=5e-6, atol=0)  # 6 significant digits
    torch.testing.assert_close(MLCLoss(scale, reduction="none")(S, POS), torch.tensor(mlc, dtype=D), rtol=5e-6, atol=0)


def test_factorisation_identity_and_naive_formula() -> None:
    s, pos = _case()
    sp = (torch.exp(-s) * pos).sum(1)
    sn = (torch.exp(s) * ~pos).sum(1)
    torch.testing.assert_close(MLCDLoss(reduction="none")(s, pos), torch.log(1 + sn * sp + sp + sn))
    torch.testing.assert_close(MLCLoss(reduction="none")(s, pos), torch.log(1 + sn * sp))
    torch.testing.assert_close(MLCDLoss()(s, pos), _naive_mlcd(s, pos))
    torch.testing.assert_close(MLCDLoss()(s.float(), pos), _reference_mlcd()(s.float(), pos))


def test_mlcd_bounds_mlc_and_is_positive() -> None:
    for seed in range(5):
        s, pos = _case(seed=seed)
        for scale in (1.0, 16.0, 64.0):
            a, b = MLCDLoss(scale, reduction="none")(s, pos), MLCLoss(scale, reduction="none")(s, pos)
            assert bool((a >= b - 1e-12 * b.abs()).all() and (a > 0).all())  # equal up to rounding at large scale


def test_positive_and_negative_terms_are_decoupled() -> None:
    s, pos = _case()
    x = s.clone().requires_grad_(True)
    MLCDLoss(16.0)(x, pos).backward()
    s2 = torch.where(pos, s, s + 0.3)  # move only the negatives
    y = s2.clone().requires_grad_(True)
    MLCDLoss(16.0)(y, pos).backward()
    torch.testing.assert_close(x.grad[pos], y.grad[pos])  # positives' gradients unchanged
    assert not torch.allclose(x.grad[~pos], y.grad[~pos])
    # MLC couples them: its positives' gradients move with the negatives (scale 1: not saturated)
    x, y = s.clone().requires_grad_(True), s2.clone().requires_grad_(True)
    MLCLoss()(x, pos).backward(), MLCLoss()(y, pos).backward()
    assert not torch.allclose(x.grad[pos], y.grad[pos])


def test_gradient_signs() -> None:
    s, pos = _case(seed=2)
    for loss in (MLCDLoss(4.0), MLCLoss(4.0)):
        x = s.clone().requires_grad_(True)
        loss(x, pos).backward()
        assert bool((x.grad[pos] < 0).all() and (x.grad[~pos] > 0).all())


def test_mlc_with_one_positive_is_softmax_cross_entropy() -> None:
    s, _ = _case()
    pos = torch.zeros_like(s, dtype=torch.bool)
    pos[torch.arange(s.shape[0]), torch.arange(s.shape[0]) % s.shape[1]] = True
    s_pos = s[pos]
    s_neg = torch.logsumexp(s.masked_fill(pos, -math.inf), dim=1)
    torch.testing.assert_close(MLCLoss(reduction="none")(s, pos), F.softplus(s_neg - s_pos))
    # log(1 + sum_N exp(s_j - s_p)) = -log softmax(s)_p: with one positive MLC IS softmax cross-entropy
    # (over all classes, the positive in the denominator); MLCD is not
    ce = F.cross_entropy(s, pos.long().argmax(1), reduction="none")
    torch.testing.assert_close(MLCLoss(reduction="none")(s, pos), ce)
    assert not torch.allclose(MLCDLoss(reduction="none")(s, pos), ce)


def test_permutation_invariance_within_sets() -> None:
    s, pos = _case()
    p = torch.randperm(s.shape[1], generator=torch.Generator().manual_seed(3))
    for loss in (MLCDLoss(8.0, 0.1, "none"), MLCLoss(8.0, 0.1, "none")):
        torch.testing.assert_close(loss(s[:, p], pos[:, p]), loss(s, pos))


def test_scale_and_margin() -> None:
    s, pos = _case()
    torch.testing.assert_close(MLCDLoss(scale=16.0)(s, pos), MLCDLoss()(16.0 * s, pos))
    shifted = torch.where(pos, s - 0.2, s + 0.2)
    torch.testing.assert_close(MLCDLoss(scale=8.0, margin=0.2)(s, pos), MLCDLoss(scale=8.0)(shifted, pos))
    torch.testing.assert_close(MLCLoss(scale=8.0, margin=0.2)(s, pos), MLCLoss(scale=8.0)(shifted, pos))


def test_empty_sets() -> None:
    s = torch.randn(3, 4, dtype=D, requires_grad=True)
    pos = torch.tensor([[True] * 4, [False] * 4, [True, False, False, False]])
    mlcd, mlc = MLCDLoss(reduction="none")(s, pos), MLCLoss(reduction="none")(s, pos)
    torch.testing.assert_close(mlcd[0], F.softplus(torch.logsumexp(-s[0], 0)))
    torch.testing.assert_close(mlcd[1], F.softplus(torch.logsumexp(s[1], 0)))
    assert mlc[0] == 0 and mlc[1] == 0 and mlc[2] > 0
    (mlcd.sum() + mlc.sum()).backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize(("kwargs", "match"), [({"scale": 0.0}, "scale"), ({"margin": math.inf}, "margin")])
def test_bad_parameters(kwargs: dict, match: str) -> None:
    for cls in (MLCDLoss, MLCLoss):
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)
    with pytest.raises(ValueError, match=match):
        mlcd_loss(S, POS, **kwargs)


CHECKS = [(f"mlcd:{n}", c) for n, c in multilabel_loss_checks(lambda **kw: MLCDLoss(scale=4.0, **kw),
          lambda x, t, reduction="mean": mlcd_loss(x, t, 4.0, reduction=reduction))]  # fmt: skip
CHECKS += [(f"mlc:{n}", c) for n, c in multilabel_loss_checks(lambda **kw: MLCLoss(scale=4.0, margin=0.1, **kw),
           lambda x, t, reduction="mean": mlc_loss(x, t, 4.0, 0.1, reduction=reduction))]  # fmt: skip


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
def test_conformance(name: str, check) -> None:
    check()


def test_one_set_far_above_the_other_is_exact_in_float32() -> None:
    # the row's maximum is a (badly wrong) positive far above the negatives, and the reverse
    s = torch.tensor([[-1.0, 0.05, 0.02, -0.3], [0.9, 0.5, 0.45, -0.2]])
    pos = torch.tensor([[True, False, False, False], [True, False, False, False]])
    t = torch.where(pos, -1000.0 * s.double(), 1000.0 * s.double())
    zero = torch.zeros(2, 1, dtype=D)
    want = torch.logsumexp(torch.cat([zero, t.masked_fill(~pos, -math.inf)], 1), 1) + torch.logsumexp(
        torch.cat([zero, t.masked_fill(pos, -math.inf)], 1), 1
    )
    x = s.clone().requires_grad_(True)
    got = MLCDLoss(scale=1000.0, reduction="none")(x, pos)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-4)
    got.sum().backward()
    assert torch.isfinite(x.grad).all()
