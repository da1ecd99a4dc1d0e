"""Tests of AnyLoss (Han, Moniz & Chawla, 2024): golden values from a direct float64 evaluation of
the paper's approximation function, soft confusion matrix and metric formulas, the paper's
limiting cases and identities, the one-vs-rest extension against a naive dense reference, and the
applicable part of the classification-loss conformance suite.

AnyLoss is a batch-level loss (the metric of the batch): the suite's checks built on per-example
losses (``reduction="none"``/``"sum"``) do not apply; their batch-level counterparts are below."""

from __future__ import annotations

import pickle
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import AnyLoss, any_loss, anyloss_binary, approximation, soft_confusion_matrix
from paperzoo.losses.anyloss import _reference_anyloss
from paperzoo.testing import classification_loss_checks

# --------------------------------------------------------------------------- golden values
P = [0.9, 0.2, 0.6, 0.45, 0.51, 0.05, 0.7, 0.3]
Y = [1, 0, 1, 0, 0, 0, 0, 1]
# L, (TN, FP, FN, TP), 1-acc, 1-F1, 1-F2, 1-F0.5, 1-Gmean (sqrt), 1-BAcc
GOLDEN = [
    (73.0, (3.29986, 1.70014, 1.00067, 1.99933), 0.337602, 0.403139, 0.36325, 0.438324, 0.336801, 0.336793),
    (10.0, (3.15827, 1.84173, 1.16772, 1.83228), 0.376182, 0.450922, 0.415505, 0.482292, 0.378882, 0.378794),
]
GRAD_F1 = {
    73.0: [-3.18439e-12, 2.00497e-09, -0.0103145, 0.160581, 1.42718, 3.52032e-14, 2.96795e-06, -6.97724e-06],
    10.0: [-0.0383985, 0.0371674, -0.427432, 0.19334, 0.205165, 0.00893977, 0.0863794, -0.228255],
}
GMEAN_SQUARED = {73.0: 0.560167, 10.0: 0.614212}
F1_WITH_EPS = {73.0: 0.403139, 10.0: 0.450923}


def golden() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(P, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64)


def close(actual: torch.Tensor, expected: float | list[float], rtol: float = 2e-5, atol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=rtol, atol=atol)


@pytest.mark.parametrize(("L", "counts", "acc", "f1", "f2", "f05", "gmean", "bacc"), GOLDEN)
def test_golden_values(L, counts, acc, f1, f2, f05, gmean, bacc) -> None:
    p, y = golden()
    close(torch.stack(soft_confusion_matrix(p, y, L)), list(counts))
    loss = partial(anyloss_binary, p, y, L=L, eps=0.0)
    close(loss("accuracy"), acc)
    close(loss("f1"), f1)
    close(loss("fbeta", beta=2.0), f2)
    close(loss("fbeta", beta=0.5), f05)
    close(loss("gmean", gmean_squared=False), gmean)
    close(loss("balanced_accuracy"), bacc)
    close(anyloss_binary(p, y, "gmean", L=L), GMEAN_SQUARED[L])  # reference-code squared G-mean, eps 1e-5
    close(anyloss_binary(p, y, "gmean", L=L, eps=0.0), GMEAN_SQUARED[L])
    close(anyloss_binary(p, y, "f1", L=L), F1_WITH_EPS[L])  # default eps = 1e-5


@pytest.mark.parametrize("L", [73.0, 10.0])
def test_golden_gradient_f1(L: float) -> None:
    p, y = golden()
    p.requires_grad_(True)
    (grad,) = torch.autograd.grad(anyloss_binary(p, y, "f1", L=L, eps=0.0), p)
    torch.testing.assert_close(grad, torch.tensor(GRAD_F1[L], dtype=torch.float64), rtol=1e-4, atol=1e-12)


# --------------------------------------------------------------------------- the paper's properties
def test_large_L_gives_the_hard_confusion_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, generator=g, dtype=torch.float64)
    p = torch.where((p - 0.5).abs() < 0.01, p + 0.03, p)  # keep p at least 0.01 away from 0.5
    y = (torch.rand(200, generator=g) < 0.3).double()
    hard = (p > 0.5).double()
    expected = [((1 - y) * (1 - hard)).sum(), ((1 - y) * hard).sum(), (y * (1 - hard)).sum(), (y * hard).sum()]
    torch.testing.assert_close(
        torch.stack(soft_confusion_matrix(p, y, L=1e4)), torch.stack(expected), atol=1e-9, rtol=0
    )


def test_counts_sum_to_n_and_weight_sum() -> None:
    g = torch.Generator().manual_seed(1)
    p, y = torch.rand(37, 5, generator=g, dtype=torch.float64), (torch.rand(37, 5, generator=g) < 0.5).double()
    w = torch.rand(37, generator=g, dtype=torch.float64)
    for L in (0.5, 10.0, 73.0):
        torch.testing.assert_close(sum(soft_confusion_matrix(p, y, L)), torch.full((5,), 37.0, dtype=torch.float64))
        torch.testing.assert_close(sum(soft_confusion_matrix(p, y, L, weight=w)), w.sum().expand(5))


@pytest.mark.parametrize("metric", ["accuracy", "f1", "fbeta", "balanced_accuracy", "gmean"])
def test_loss_in_unit_interval_and_perfect_predictions(metric: str) -> None:
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        p, y = torch.rand(50, generator=g, dtype=torch.float64), (torch.rand(50, generator=g) < 0.4).double()
        value = anyloss_binary(p, y, metric, beta=2.0)
        assert 0.0 <= float(value) <= 1.0
    assert float(anyloss_binary(y.clone(), y, metric, beta=2.0)) <= 1e-6  # p = y in {0, 1}


def test_f1_gradient_signs_near_half() -> None:
    p = torch.tensor([0.49, 0.51, 0.5, 0.48, 0.52, 0.3], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.float64)
    (grad,) = torch.autograd.grad(anyloss_binary(p, y, "f1"), p)
    assert bool((grad[:3] < 0).all()) and bool((grad[3:5] > 0).all())


def test_pure_surrogate_without_amplification() -> None:
    p, y = golden()
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    close(anyloss_binary(p, y, "f1", amplify=False, eps=0.0), float(1 - 2 * tp / (2 * tp + fp + fn)))
    assert abs(float(anyloss_binary(p, y, "f1", amplify=False)) - float(anyloss_binary(p, y, "f1"))) > 1e-3


def test_balanced_accuracy_equals_accuracy_on_a_balanced_batch() -> None:
    g = torch.Generator().manual_seed(3)
    p, y = torch.rand(40, generator=g, dtype=torch.float64), torch.tensor([0.0, 1.0] * 20, dtype=torch.float64)
    for L in (5.0, 73.0):
        close(anyloss_binary(p, y, "balanced_accuracy", L=L, eps=0.0), float(anyloss_binary(p, y, "accuracy", L=L)))


def test_batch_order_invariance_and_symmetry_of_A() -> None:
    p, y = golden()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(4))
    for metric in ("accuracy", "f1", "gmean", "balanced_accuracy", "mcc"):
        close(anyloss_binary(p[perm], y[perm], metric), float(anyloss_binary(p, y, metric)), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(approximation(1 - p, 73.0), 1 - approximation(p, 73.0))


def test_mcc_matches_the_hard_metric_at_large_L() -> None:
    g = torch.Generator().manual_seed(5)
    p, y = torch.rand(300, generator=g, dtype=torch.float64), (torch.rand(300, generator=g) < 0.3).double()
    hard = (p > 0.5).double()
    tp, tn = (y * hard).sum(), ((1 - y) * (1 - hard)).sum()
    fp, fn = ((1 - y) * hard).sum(), (y * (1 - hard)).sum()
    mcc = (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    p = torch.where((p - 0.5).abs() < 0.01, torch.where(p > 0.5, p + 0.01, p - 0.01), p)
    close(anyloss_binary(p, y, "mcc", L=1e4, eps=0.0), float(1 - mcc), rtol=1e-8, atol=1e-8)


def test_callable_metric_equals_named_metric() -> None:
    p, y = golden()

    def f1(tn, fp, fn, tp):
        return 2 * tp / (2 * tp + fp + fn + 1e-5)

    close(anyloss_binary(p, y, f1), float(anyloss_binary(p, y, "f1")), rtol=1e-12, atol=1e-14)


def test_from_logits_is_sigmoid_then_amplify_not_the_shortcut() -> None:
    p, y = golden()
    logits = torch.logit(p)
    close(anyloss_binary(logits, y, "f1", from_logits=True), float(anyloss_binary(p, y, "f1")), rtol=1e-10, atol=1e-12)
    shortcut = 1 - 2 * (torch.sigmoid(73 * logits) * y).sum() / (y.sum() + torch.sigmoid(73 * logits).sum())
    assert abs(float(shortcut) - float(anyloss_binary(logits, y, "f1", from_logits=True))) > 1e-3


# --------------------------------------------------------------------------- logits forms
def test_binary_average_is_the_paper_loss_on_softmax() -> None:
    g = torch.Generator().manual_seed(6)
    logits, target = torch.randn(30, 2, generator=g, dtype=torch.float64), torch.randint(0, 2, (30,), generator=g)
    p1 = torch.softmax(logits, 1)[:, 1]
    for metric in ("accuracy", "f1", "gmean", "balanced_accuracy", "mcc"):
        expected = anyloss_binary(p1, target.double(), metric, L=20.0)
        close(AnyLoss(metric, L=20.0, average="binary")(logits, target), float(expected), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "fbeta", "gmean", "balanced_accuracy", "mcc"])
def test_macro_equals_per_column_binary_loss(metric: str) -> None:
    g = torch.Generator().manual_seed(7)
    logits, target = torch.randn(40, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (40,), generator=g)
    w = torch.rand(40, generator=g, dtype=torch.float64)
    onehot = F.one_hot(target, 4).double()
    for weight in (None, w):
        cols = [
            anyloss_binary(logits[:, k], onehot[:, k], metric, L=30.0, beta=2.0, from_logits=True, weight=weight)
            for k in range(4)
        ]
        value = any_loss(logits, target, metric, L=30.0, beta=2.0, weight=weight)
        close(value, float(torch.stack(cols).mean()), rtol=1e-10, atol=1e-12)


def test_macro_agrees_with_naive_reference_value_and_gradient() -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(64, 9, generator=g, dtype=torch.float64) * 0.3
    target = torch.randint(0, 9, (64,), generator=g)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, ref = AnyLoss()(x1, target), _reference_anyloss()(x2, target)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-14)


# --------------------------------------------------------------------------- conformance (batch-level)
CHECKS = [
    (name, check)
    for name, check in classification_loss_checks(AnyLoss, any_loss)
    if name.startswith("bad_input") or name in ("pickle_round_trip", "state_dict_round_trip")
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
def test_conformance(name, check) -> None:
    check()


def _case(c: int = 5, b: int = 12, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(9)
    logits = 0.4 * torch.randn(b, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b,), generator=g)
    weight = 0.1 + torch.rand(b, generator=g, dtype=torch.float64)
    weight[0] = 0.0
    return logits.to(dtype), target, weight.to(dtype)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "fbeta", "gmean", "balanced_accuracy", "mcc"])
@pytest.mark.parametrize("average", ["macro", "binary"])
def test_gradcheck(metric: str, average: str) -> None:
    logits, target, weight = _case(c=2 if average == "binary" else 5)
    for amplify in (True, False):
        loss = AnyLoss(metric, L=8.0, beta=2.0, amplify=amplify, average=average, gmean_squared=metric != "gmean")
        for w in (None, weight):
            fn = (lambda z, w=w, loss=loss: loss(z, target, w)) if w is not None else partial(loss, target=target)
            assert torch.autograd.gradcheck(fn, (logits.clone().requires_grad_(True),))


def test_module_equals_functional_and_batch_level_behaviour() -> None:
    logits, target, weight = _case()
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(10))
    for w in (None, weight):
        x1, x2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        a, b = AnyLoss("mcc", L=10.0)(x1, target, w), any_loss(x2, target, "mcc", L=10.0, weight=w)
        torch.testing.assert_close(a, b)
        a.backward()
        b.backward()
        torch.testing.assert_close(x1.grad, x2.grad)
        assert a.shape == ()
        wp = None if w is None else w[perm]
        torch.testing.assert_close(AnyLoss("mcc", L=10.0)(logits[perm], target[perm], wp), a.detach())
        assert torch.equal(AnyLoss()(logits, target, w), AnyLoss()(logits, target, w))
    # a zero weight drops its sample; unit weights change nothing
    torch.testing.assert_close(AnyLoss()(logits, target, weight), AnyLoss()(logits[1:], target[1:], weight[1:]))
    torch.testing.assert_close(
        AnyLoss()(logits, target, torch.ones(12, dtype=torch.float64)), AnyLoss()(logits, target)
    )


def test_large_logits_bfloat16_dtype() -> None:
    logits, target, _ = _case(dtype=torch.float32)
    for x in (1e4 * logits / logits.abs().max(), logits.to(torch.bfloat16)):
        x = x.detach().requires_grad_(True)
        out = AnyLoss()(x, target)
        out.backward()
        assert out.dtype == torch.float32 and bool(torch.isfinite(out)) and bool(torch.isfinite(x.grad).all())
    for dtype in (torch.float32, torch.float64):
        assert AnyLoss()(logits.to(dtype), target).dtype == dtype


# --------------------------------------------------------------------------- errors
def test_errors_name_the_argument() -> None:
    logits, target, _ = _case()
    p, y = golden()
    for reduction in ("none", "sum"):
        with pytest.raises(ValueError, match="reduction must be 'mean'"):
            AnyLoss(reduction=reduction)
        with pytest.raises(ValueError, match="reduction must be 'mean'"):
            any_loss(logits, target, reduction=reduction)
    with pytest.raises(ValueError, match="metric must be one of"):
        AnyLoss("auc")
    with pytest.raises(ValueError, match="L must be"):
        anyloss_binary(p, y, L=0.0)
    with pytest.raises(ValueError, match="average='binary' needs logits with 2 columns"):
        AnyLoss(average="binary")(logits, target)
    with pytest.raises(ValueError, match="y must hold only 0 and 1"):
        anyloss_binary(p, y * 2)
    with pytest.raises(ValueError, match="y must have the shape of p"):
        anyloss_binary(p, y[:-1])
    with pytest.raises(ValueError, match="empty batch: p has 0 rows"):
        anyloss_binary(p[:0], y[:0])
    with pytest.raises(ValueError, match="p must have shape"):
        anyloss_binary(p[:, None, None], y)
    with pytest.raises(ValueError, match="p must be finite|p contains"):
        anyloss_binary(torch.tensor([0.2, float("nan")], dtype=torch.float64), y[:2])
    with pytest.raises(ValueError, match="weight must have shape"):
        anyloss_binary(p, y, weight=torch.ones(3))
    with pytest.raises(ValueError, match="weight must be non-negative"):
        soft_confusion_matrix(p, y, weight=-torch.ones(8))


def test_pickles_with_named_metric() -> None:
    loss = AnyLoss("balanced_accuracy", L=30.0, average="binary")
    copy = pickle.loads(pickle.dumps(loss))
    logits, target, _ = _case(c=2)
    assert torch.equal(copy(logits, target), loss(logits, target))
