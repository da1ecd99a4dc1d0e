"""Tests of the PU-MLC loss (Yuan et al., ICME 2024): golden values of the official ``vpuLoss``
(float64), the plain-VPU limit, the positive-only property, the detached statistics, gradient
signs, classes without positives, weights as batch means, and the multi-label conformance
suite minus the checks that assume per-example losses (this loss is batch-level)."""

from __future__ import annotations

import math

import pytest
import torch

from paperzoo.losses import PUMultiLabelLoss, pu_mlc_loss
from paperzoo.losses.pu_mlc import _NaivePUMLC, _reference_pu_mlc
from paperzoo.multilabel.pu_mlc import drop_negatives
from paperzoo.testing import multilabel_loss_checks

D = torch.float64
LOGITS = [[2.0, -1.0, 0.5], [-0.5, 1.5, -2.0], [1.0, 0.2, 0.3], [-1.5, -0.7, 1.2]]
TERNARY = [[1, -1, 0], [0, 1, -1], [1, 0, 0], [-1, -1, 1]]
GOLDEN = [
    (
        0.55, 1.0, -0.695414,
        [[-0.0250506, 0.0686805, 0.0787732], [0.0773341, -0.129781, 0.0351938],
         [-0.0697705, 0.0875797, 0.0819424], [0.0490805, 0.0779596, -0.171845]],
    ),
    (
        0.85, 2.0, -0.441258,
        [[-0.0308349, 0.0546701, 0.0647842], [0.0643873, -0.140954, 0.0289439],
         [-0.0806022, 0.0688247, 0.0673906], [0.0408638, 0.0616497, -0.182434]],
    ),
    (
        0.0, 1e6, -1.28683,
        [[-0.0112579, 0.0998962, 0.112732], [0.108206, -0.106646, 0.0503656],
         [-0.0439421, 0.12576, 0.117267], [0.0686734, 0.11265, -0.146139]],
    ),
]  # fmt: skip


def _case(n: int = 16, c: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(n, c, generator=g, dtype=D)
    y = (torch.rand(n, c, generator=g) < 0.3).long()
    y[0] = 1
    return z, y


@pytest.mark.parametrize(("gamma", "alpha", "value", "grad"), GOLDEN)
def test_golden_values_of_the_official_loss(gamma: float, alpha: float, value: float, grad: list) -> None:
    z = torch.tensor(LOGITS, dtype=D, requires_grad=True)
    loss = PUMultiLabelLoss(gamma, alpha)(z, drop_negatives(torch.tensor(TERNARY)))
    loss.backward()
    assert loss.item() == pytest.approx(value, rel=5e-6)  # the golden values have 6 significant digits
    torch.testing.assert_close(z.grad, torch.tensor(grad, dtype=D), atol=1e-7, rtol=1e-5)


def test_matches_the_naive_reference() -> None:
    z, y = _case()
    for gamma, alpha in ((0.55, 1.0), (0.85, 2.0), (0.3, 0.2)):
        a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        ours, ref = PUMultiLabelLoss(gamma, alpha)(a, y), _NaivePUMLC(gamma, alpha)(b, y)
        ours.backward(), ref.backward()
        torch.testing.assert_close(ours, ref, atol=1e-8, rtol=0)
        torch.testing.assert_close(a.grad, b.grad, atol=1e-8, rtol=0)
    assert isinstance(_reference_pu_mlc(), torch.nn.Module)


def test_plain_vpu_limit() -> None:
    z, y = _case()
    pos = y.bool()
    s = torch.sigmoid(z)
    vpu = sum(torch.log(s[:, c].mean()) - torch.log(s[pos[:, c], c]).mean() for c in range(z.shape[1]))
    torch.testing.assert_close(PUMultiLabelLoss(gamma=0.0, alpha=1e8, eps=0.0)(z, y), vpu)


def test_negatives_are_ignored() -> None:
    ternary = torch.tensor(TERNARY)
    flipped = torch.where(ternary == 0, -1, torch.where(ternary == -1, 0, ternary))
    z = torch.tensor(LOGITS, dtype=D)
    assert torch.equal(drop_negatives(ternary), drop_negatives(flipped))
    loss = PUMultiLabelLoss()
    assert loss(z, drop_negatives(ternary)) == loss(z, drop_negatives(flipped))


def test_statistics_carry_no_gradient_and_lie_in_range() -> None:
    # with the statistics detached, the autograd gradient is the one with T_c and w_c held fixed
    z, y = _case(seed=3)
    alpha, gamma = 0.4, 0.7
    temp = (alpha * z.std(0, unbiased=False)).clamp(max=1.0)
    w = torch.sigmoid(z / temp).mean(0) ** gamma
    assert bool((temp > 0).all() and (temp <= 1).all() and (w > 0).all() and (w <= 1).all())
    x = z.clone().requires_grad_(True)
    PUMultiLabelLoss(gamma, alpha, eps=0.0)(x, y).backward()

    def fixed(zz: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(zz / temp)
        pos = y.to(D)
        return (w * torch.log(s.mean(0)) - (pos * torch.log(s)).sum(0) / pos.sum(0).clamp(min=1)).sum()

    x2 = z.clone().requires_grad_(True)
    fixed(x2).backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_gradient_signs() -> None:
    z, y = _case(seed=5)
    x = z.clone().requires_grad_(True)
    PUMultiLabelLoss()(x, y).backward()
    assert bool((x.grad[y == 0] >= 0).all())  # unlabelled entries are pushed down
    # a labelled positive gets the (negative) positive part plus the (positive) unlabelled part
    x = z.clone().requires_grad_(True)
    loss = PUMultiLabelLoss(gamma=0.0, alpha=1e8, reduction="none")(x, y)
    loss.sum().backward()
    n, n_pos = z.shape[0], y.sum(0).clamp(min=1).to(D)
    s = torch.sigmoid(z)
    unl_part = s * (1 - s) / (n * s.mean(0))
    pos_part = -(1 - s) / n_pos
    torch.testing.assert_close(x.grad, unl_part + y.to(D) * pos_part)


def test_class_without_positives_contributes_only_its_unlabelled_term() -> None:
    z, y = _case()
    y[:, 2] = 0
    per = PUMultiLabelLoss(reduction="none")(z, y)
    assert torch.isfinite(per).all()
    temp = (z[:, 2].std(unbiased=False)).clamp(max=1.0)
    s = torch.sigmoid(z[:, 2] / temp)
    expected = s.mean() ** 0.55 * torch.log(s.mean() + 1e-10)
    torch.testing.assert_close(per[2], expected)


def test_reductions_over_classes() -> None:
    z, y = _case()
    per = PUMultiLabelLoss(reduction="none")(z, y)
    assert per.shape == (z.shape[1],)
    torch.testing.assert_close(PUMultiLabelLoss()(z, y), per.sum())
    torch.testing.assert_close(PUMultiLabelLoss(reduction="mean")(z, y), per.mean())
    torch.testing.assert_close(pu_mlc_loss(z, y, reduction="none"), per)


def test_weights_are_weighted_batch_means() -> None:
    z, y = _case()
    loss = PUMultiLabelLoss()
    torch.testing.assert_close(loss(z, y, torch.ones(z.shape[0], dtype=D)), loss(z, y))
    w = torch.ones(z.shape[0], dtype=D)
    w[3] = 0.0
    keep = torch.arange(z.shape[0]) != 3
    torch.testing.assert_close(loss(z, y, w), loss(z[keep], y[keep]))
    dup = torch.cat([z, z[:1]]), torch.cat([y, y[:1]])
    w2 = torch.ones(z.shape[0], dtype=D)
    w2[0] = 2.0
    torch.testing.assert_close(loss(z, y, w2), loss(*dup))  # weight 2 == the row twice


def test_batch_permutation_invariance() -> None:
    z, y = _case()
    p = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(PUMultiLabelLoss(reduction="none")(z[p], y[p]), PUMultiLabelLoss(reduction="none")(z, y))


def test_degenerate_batch_is_finite() -> None:
    # all logits of a class equal (a zero-initialised head, a batch of one): the temperature clamp
    z = torch.zeros(4, 3, dtype=D, requires_grad=True)
    y = torch.eye(4, 3, dtype=torch.long)
    loss = PUMultiLabelLoss()(z, y)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(z.grad).all()
    assert torch.isfinite(PUMultiLabelLoss()(torch.randn(1, 3), torch.ones(1, 3))).all()


def test_gradcheck_of_the_exact_objective() -> None:
    # with gamma = 0 and T_c = 1 nothing is detached: the autograd gradient is the exact one
    z, y = _case(n=6, c=4)
    z = z.clone().requires_grad_(True)
    for r in ("sum", "mean", "none"):
        assert torch.autograd.gradcheck(lambda x, r=r: PUMultiLabelLoss(0.0, 1e8, reduction=r)(x, y), (z,))
    w = torch.rand(6, dtype=D) + 0.1
    assert torch.autograd.gradcheck(lambda x: pu_mlc_loss(x, y, 0.0, 1e8, weight=w), (z,))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"gamma": -0.1}, "gamma"), ({"alpha": 0.0}, "alpha"), ({"eps": 1.0}, "eps"), ({"reduction": "avg"}, "reduction")],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PUMultiLabelLoss(**kwargs)
    z, y = _case()
    with pytest.raises(ValueError, match=match):
        pu_mlc_loss(z, y, **kwargs)


def test_bad_inputs_name_the_argument() -> None:
    z, y = _case()
    with pytest.raises(ValueError, match="targets"):
        PUMultiLabelLoss()(z, y - 1)  # -1: map labelled negatives with drop_negatives first
    with pytest.raises(ValueError, match="weight"):
        PUMultiLabelLoss()(z, y, torch.zeros(z.shape[0], dtype=D))
    with pytest.raises(ValueError, match="weight"):
        PUMultiLabelLoss()(z, y, -torch.ones(z.shape[0], dtype=D))
    with pytest.raises(TypeError, match="batch-level"):
        PUMultiLabelLoss().per_example(z, y)


# the suite's checks that assume per-example losses ("none" of shape (B,), per-example weights,
# the permuted "none") do not apply to a batch-level loss: their batch-level analogues are above.
# gradcheck runs on the exact objective (gamma = 0, T = 1); at other settings the statistics are
# detached by design, so the numerical gradient differs from the autograd one.
_SKIP = {"reductions", "batch_permutation", "gradcheck"}
CHECKS = [(n, c) for n, c in multilabel_loss_checks(PUMultiLabelLoss, pu_mlc_loss) if n not in _SKIP]
EXACT = [
    (n, c)
    for n, c in multilabel_loss_checks(
        lambda **kw: PUMultiLabelLoss(gamma=0.0, alpha=1e8, **kw),
        lambda x, t, reduction="sum": pu_mlc_loss(x, t, 0.0, 1e8, reduction=reduction),
    )
    if n == "gradcheck"
]


@pytest.mark.parametrize(("name", "check"), CHECKS + EXACT, ids=[n for n, _ in CHECKS + EXACT])
def test_conformance(name: str, check) -> None:
    check()
