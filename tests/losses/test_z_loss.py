"""Tests of the Z-loss (de Brébisson & Vincent, 2016): invariance properties and golden values
from an independent float64 evaluation of the definition. The generic classification-loss
behaviour (input errors, reductions, weights, gradcheck, dtypes, round trips) is covered by
:func:`paperzoo.testing.classification_loss_checks`; the tests below are the paper's."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from paperzoo.losses import ClassificationLoss, ZLoss, spherical_stats, z_loss, z_loss_from_stats
from paperzoo.testing import classification_loss_checks

TINY = 1e-30  # variance floor small enough not to disturb exact invariances in float64

# --------------------------------------------------------------------------- golden values
# from an independent float64 evaluation of the definition
OUTPUTS = [[1.0, 2.0, 0.5, -1.0, 3.0], [0.1, -0.2, 0.3, 0.0, 0.05]]
C = [4, 2]
GOLDEN = [
    # a, b, loss row 0, loss row 1, dL/do row 0
    (1.0, 1.0, 0.512735, 0.455334, [0.0530381, 0.114112, 0.022501, -0.0691103, -0.120541]),
    (0.1, 10.0, 12.1283, 12.0233, [0.0929017, 0.199879, 0.0394129, -0.121054, -0.21114]),
    (5.0, 1.5, 0.194381, 0.114998, [0.0821911, 0.176835, 0.034869, -0.107098, -0.186798]),
]


def golden_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(OUTPUTS, dtype=torch.float64), torch.tensor(C)


@pytest.mark.parametrize("a,b,l0,l1,g0", GOLDEN)
def test_golden_loss_and_gradient(a: float, b: float, l0: float, l1: float, g0: list[float]) -> None:
    o, c = golden_inputs()
    o.requires_grad_(True)
    loss = z_loss(o, c, a=a, b=b, reduction="none")
    torch.testing.assert_close(loss.detach(), torch.tensor([l0, l1], dtype=torch.float64), rtol=2e-5, atol=1e-6)
    (grad,) = torch.autograd.grad(loss[0], o)
    torch.testing.assert_close(grad[0], torch.tensor(g0, dtype=torch.float64), rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(grad[1], torch.zeros(5, dtype=torch.float64))  # row 1 does not touch row 0's loss


def test_golden_target_zscores() -> None:
    # invert the a=1, b=1 loss: z_c = b - softplus^{-1}(L) = 1 - log(exp(L) - 1)
    o, c = golden_inputs()
    loss = z_loss(o, c, 1.0, 1.0, reduction="none")
    z_c = 1.0 - torch.log(torch.expm1(loss))
    torch.testing.assert_close(z_c, torch.tensor([1.4007, 1.55043], dtype=torch.float64), rtol=0, atol=1e-4)


def test_golden_invariance_example() -> None:
    o, c = golden_inputs()
    loss = z_loss(3.7 * o - 2.0, c, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.512735, 0.455334], dtype=torch.float64), rtol=2e-5, atol=1e-6)


def test_golden_module_and_reductions() -> None:
    o, c = golden_inputs()
    per = torch.tensor([0.512735, 0.455334], dtype=torch.float64)
    torch.testing.assert_close(ZLoss()(o, c), per.mean(), rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(ZLoss(reduction="sum")(o, c), per.sum(), rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(ZLoss(1.0, 1.0, "none")(o, c), per, rtol=2e-5, atol=1e-6)
    weight = torch.tensor([1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(ZLoss()(o, c, weight), (per * weight).sum() / 4, rtol=2e-5, atol=1e-6)


def test_golden_stats_form() -> None:
    o, c = golden_inputs()
    o_c = o.gather(1, c[:, None]).squeeze(1)
    loss = z_loss_from_stats(o_c, o.sum(1), (o**2).sum(1), 5, a=5.0, b=1.5)
    torch.testing.assert_close(loss, torch.tensor([0.194381, 0.114998], dtype=torch.float64), rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------- properties
# shift and scale invariance (the paper's defining claims) and consequences of the definition
def random_case(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, d, generator=g, dtype=torch.float64) * 2.0 + 0.5
    c = torch.randint(0, d, (n,), generator=g)
    return o, c


case = dict(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 6),
    d=st.integers(2, 40),
    a=st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0]),
    b=st.sampled_from([-1.0, 0.5, 1.0, 2.0, 4.0]),
)


@settings(max_examples=25, deadline=None)
@given(**case, shift=st.floats(-100.0, 100.0), scale=st.floats(0.01, 100.0))
def test_shift_and_scale_invariance(seed: int, n: int, d: int, a: float, b: float, shift: float, scale: float) -> None:
    o, c = random_case(seed, n, d)
    ref = z_loss(o, c, a, b, "none", eps=TINY)
    t = torch.randn(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)) * shift
    torch.testing.assert_close(z_loss(o + t, c, a, b, "none", eps=TINY), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(z_loss(scale * o, c, a, b, "none", eps=TINY), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(z_loss(scale * o + t, c, a, b, "none", eps=TINY), ref, rtol=1e-9, atol=1e-9)


def test_negative_scale_is_not_invariant() -> None:
    o, c = golden_inputs()
    assert not torch.allclose(z_loss(-o, c, reduction="none"), z_loss(o, c, reduction="none"))


@settings(max_examples=25, deadline=None)
@given(**case)
def test_gradient_rows_sum_to_zero_and_orthogonal_to_outputs(seed: int, n: int, d: int, a: float, b: float) -> None:
    o, c = random_case(seed, n, d)
    o.requires_grad_(True)
    (g,) = torch.autograd.grad(z_loss(o, c, a, b, "sum", eps=TINY), o)
    assert g.sum(dim=1).abs().max().item() < 1e-10
    assert (g * o.detach()).sum(dim=1).abs().max().item() < 1e-10


@settings(max_examples=25, deadline=None)
@given(**case)
def test_closed_form_gradient_matches_autograd(seed: int, n: int, d: int, a: float, b: float) -> None:
    o, c = random_case(seed, n, d)
    o.requires_grad_(True)
    (g,) = torch.autograd.grad(z_loss(o, c, a, b, "sum", eps=TINY), o)
    # the closed-form gradient derived from the definition, written out independently of the implementation
    x = o.detach()
    mu = x.mean(1, keepdim=True)
    sigma = x.std(1, unbiased=False, keepdim=True)
    z = (x - mu) / sigma
    z_c = z.gather(1, c[:, None])
    s = torch.sigmoid(a * (b - z_c))
    delta = F.one_hot(c, d).to(x.dtype)
    expected = -s / sigma * (delta - 1.0 / d - z_c * z / d)
    # the gradient and its round-off scale as 1 / sigma (rows with close outputs, e.g. D = 2)
    torch.testing.assert_close(g, expected, rtol=1e-8, atol=1e-10 / float(sigma.min()))


@settings(max_examples=25, deadline=None)
@given(**case)
def test_stats_form_equals_dense_form(seed: int, n: int, d: int, a: float, b: float) -> None:
    o, c = random_case(seed, n, d)
    o_c = o.gather(1, c[:, None]).squeeze(1)
    stats = z_loss_from_stats(o_c, o.sum(1), (o**2).sum(1), d, a, b)
    torch.testing.assert_close(stats, z_loss(o, c, a, b, "none"), rtol=1e-9, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(**case)
def test_stats_gradients_match_closed_form(seed: int, n: int, d: int, a: float, b: float) -> None:
    o, c = random_case(seed, n, d)
    o_c = o.gather(1, c[:, None]).squeeze(1).requires_grad_(True)
    s1 = o.sum(1).requires_grad_(True)
    s2 = (o**2).sum(1).requires_grad_(True)
    g_oc, g_s1, g_s2 = torch.autograd.grad(z_loss_from_stats(o_c, s1, s2, d, a, b, eps=TINY).sum(), (o_c, s1, s2))
    mu = s1.detach() / d
    sigma = torch.sqrt(s2.detach() / d - mu**2)
    z_c = (o_c.detach() - mu) / sigma
    s = torch.sigmoid(a * (b - z_c))
    torch.testing.assert_close(g_oc, -s / sigma, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(g_s1, -s * (-1.0 / (d * sigma) + z_c * mu / (d * sigma**2)), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(g_s2, -s * (-z_c / (2 * d * sigma**2)), rtol=1e-8, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(**case)
def test_permutation_equivariance_and_non_negativity(seed: int, n: int, d: int, a: float, b: float) -> None:
    o, c = random_case(seed, n, d)
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    inverse = torch.argsort(perm)  # class k moves to column inverse[k]
    ref = z_loss(o, c, a, b, "none")
    torch.testing.assert_close(z_loss(o[:, perm], inverse[c], a, b, "none"), ref, rtol=1e-12, atol=1e-12)
    assert bool((ref >= 0).all())


@settings(max_examples=25, deadline=None)
@given(**{**case, "d": st.integers(3, 40)}, bump=st.floats(0.01, 5.0))
def test_monotone_in_target_output(seed: int, n: int, d: int, a: float, b: float, bump: float) -> None:
    # strict for D >= 3 unless all non-target outputs are equal (z_c = sqrt(D - 1)); see the D = 2 test
    o, c = random_case(seed, n, d)
    o.requires_grad_(True)
    loss = z_loss(o, c, a, b, "none")
    (g,) = torch.autograd.grad(loss.sum(), o)
    assert bool((g.gather(1, c[:, None]) < 0).all())
    raised = o.detach().clone()
    raised[torch.arange(n), c] += bump
    assert bool((z_loss(raised, c, a, b, "none") < loss.detach()).all())


def test_two_classes_is_piecewise_constant() -> None:
    # D = 2: z_c = +-1 always (sqrt(D - 1) = 1), so the loss only sees the order of the two outputs
    o = torch.tensor([[0.3, -2.0], [5.0, 4.9], [-1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0, 0, 0])
    loss = z_loss(o, c, 1.0, 0.5, reduction="none")
    expected = [math.log1p(math.exp(-0.5)), math.log1p(math.exp(-0.5)), math.log1p(math.exp(1.5))]
    torch.testing.assert_close(loss.detach(), torch.tensor(expected, dtype=torch.float64))
    (g,) = torch.autograd.grad(loss.sum(), o)
    assert g.abs().max().item() < 1e-6


@pytest.mark.parametrize("b", [-0.5, 0.3, 1.0, 1.6, 3.0])
def test_hinge_limit(b: float) -> None:
    o, c = random_case(7, 64, 12)
    x = o
    z_c = ((x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True)).gather(1, c[:, None]).squeeze(1)
    hinge = torch.clamp(b - z_c, min=0.0)
    torch.testing.assert_close(z_loss(o, c, a=1e4, b=b, reduction="none"), hinge, rtol=0, atol=1e-3)


def test_loss_vanishes_when_target_far_above_b() -> None:
    d = 401  # all non-target outputs equal and below the target: z_c = sqrt(D - 1) = 20
    o = torch.zeros(2, d, dtype=torch.float64)
    o[0, 3] = 1.0
    o[1, 100] = 7.0
    c = torch.tensor([3, 100])
    loss = z_loss(o, c, a=1.0, b=1.0, reduction="none")
    torch.testing.assert_close(loss, torch.full((2,), math.log1p(math.exp(-19.0)), dtype=torch.float64))
    assert float(loss.max()) < 1e-8
    # and it keeps decreasing towards 0 as b - z_c -> -inf
    assert float(z_loss(o, c, a=3.0, b=1.0, reduction="none").max()) < float(loss.max())


def test_zero_variance_gives_finite_loss_and_gradient() -> None:
    for dtype in (torch.float32, torch.float64):
        o = torch.full((3, 6), 0.25, dtype=dtype, requires_grad=True)
        c = torch.tensor([0, 2, 5])
        loss = z_loss(o, c, reduction="none")
        # sigma -> sqrt(eps), z_c = 0: L = softplus(a * b) / a = log(1 + e)
        torch.testing.assert_close(loss.detach(), torch.full((3,), math.log1p(math.e), dtype=dtype))
        (g,) = torch.autograd.grad(loss.sum(), o)
        assert bool(torch.isfinite(g).all())
        assert bool((g.gather(1, c[:, None]) < 0).all())  # still pushes the target up
    # stats path too (var clamped at 0)
    o_c, s1, s2 = (torch.tensor([0.0], requires_grad=True) for _ in range(3))
    loss = z_loss_from_stats(o_c, s1, s2, 4)
    loss.sum().backward()
    assert bool(torch.isfinite(loss).all()) and all(bool(torch.isfinite(t.grad).all()) for t in (o_c, s1, s2))


def test_low_precision_values_match_float64() -> None:
    o, c = random_case(3, 16, 9)
    ref = z_loss(o, c, 2.0, 1.5)
    torch.testing.assert_close(z_loss(o.float(), c, 2.0, 1.5).double(), ref, rtol=1e-5, atol=1e-6)
    for low in (torch.float16, torch.bfloat16):  # computed in float32 from the rounded inputs
        torch.testing.assert_close(z_loss(o.to(low), c, 2.0, 1.5).double(), ref, rtol=2e-2, atol=2e-2)


def test_gradcheck_stats_form() -> None:
    o, c = random_case(11, 4, 7)
    o_c = o.detach().gather(1, c[:, None]).squeeze(1).requires_grad_(True)
    s1 = o.detach().sum(1).requires_grad_(True)
    s2 = (o.detach() ** 2).sum(1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y, z: z_loss_from_stats(x, y, z, 7, 0.7, 1.3), (o_c, s1, s2))


# --------------------------------------------------------------------------- spherical statistics (S1, S2)
@pytest.mark.parametrize("with_bias", [False, True])
def test_spherical_stats_match_dense_outputs(with_bias: bool) -> None:
    g = torch.Generator().manual_seed(5)
    h = torch.randn(8, 6, generator=g, dtype=torch.float64)
    w = torch.randn(50, 6, generator=g, dtype=torch.float64)
    bias = torch.randn(50, generator=g, dtype=torch.float64) if with_bias else None
    o = F.linear(h, w, bias)
    s1, s2 = spherical_stats(h, w, bias)
    torch.testing.assert_close(s1, o.sum(1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s2, (o**2).sum(1), rtol=1e-10, atol=1e-10)


def test_spherical_path_matches_dense_loss_and_gradients() -> None:
    g = torch.Generator().manual_seed(9)
    h = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(30, 4, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(30, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randint(0, 30, (5,), generator=g)
    dense = z_loss(F.linear(h, w, bias), c, 2.0, 1.5, "sum")
    grads_dense = torch.autograd.grad(dense, (h, w, bias))
    s1, s2 = spherical_stats(h, w, bias)
    o_c = (h * w[c]).sum(1) + bias[c]  # O(d) per example
    sph = z_loss_from_stats(o_c, s1, s2, 30, 2.0, 1.5).sum()
    grads_sph = torch.autograd.grad(sph, (h, w, bias))
    torch.testing.assert_close(sph, dense, rtol=1e-10, atol=1e-10)
    for gs, gd in zip(grads_sph, grads_dense):
        torch.testing.assert_close(gs, gd, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- module, check suite and bad input
SUITES = {
    "defaults": classification_loss_checks(ZLoss, z_loss),
    "a3_b-0.5_eps1e-6": classification_loss_checks(
        partial(ZLoss, a=3.0, b=-0.5, eps=1e-6), partial(z_loss, a=3.0, b=-0.5, eps=1e-6), num_classes=7, seed=1
    ),
}
CHECKS = [(f"{suite}-{name}", check) for suite, checks in SUITES.items() for name, check in checks]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_classification_loss_suite(name: str, check: Callable[[], None]) -> None:
    check()


def test_module_is_a_classification_loss_with_repr() -> None:
    assert isinstance(ZLoss(), ClassificationLoss)
    assert "a=0.5, b=2.0" in repr(ZLoss(0.5, 2.0))
    assert "NOT" in (ZLoss.__doc__ or "") and "PaLM" in (ZLoss.__doc__ or "")


def test_loss_trains_a_linear_classifier() -> None:
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(5, 8, generator=g) * 3
    y = torch.randint(0, 5, (200,), generator=g)
    x = protos[y] + torch.randn(200, 8, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 5)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    crit = ZLoss(1.0, 1.0)
    start = crit(model(x), y).item()
    for _ in range(60):
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
    assert crit(model(x), y).item() < 0.5 * start
    assert (model(x).argmax(1) == y).float().mean().item() > 0.9


@pytest.mark.parametrize(
    ("logits", "exc", "match"),
    [
        (torch.randn(4, 1), ValueError, r"at least 2 classes"),
        (torch.randint(0, 3, (4, 3)), TypeError, r"logits must be a floating-point"),
    ],
)
def test_bad_inputs_beyond_the_suite_raise(logits: torch.Tensor, exc: type[Exception], match: str) -> None:
    target = torch.zeros(4, dtype=torch.long)
    with pytest.raises(exc, match=match):
        z_loss(logits, target)
    with pytest.raises(exc, match=match):
        ZLoss()(logits, target)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(a=0.0), r"a must be a float in \(0, inf\), got 0.0$"),
        (dict(a=-1.0), r"a must be a float in \(0, inf\), got -1.0$"),
        (dict(a=float("inf")), r"a must be a float in \(0, inf\), got inf$"),
        (dict(a=True), r"a must be a float in \(0, inf\), got True$"),
        (dict(b=float("nan")), r"b must be a float in \(-inf, inf\), got nan$"),
        (dict(b="1"), r"b must be a float in \(-inf, inf\), got '1'$"),
        (dict(eps=0.0), r"eps must be None or a float in \(0, inf\), got 0.0$"),
        (dict(eps=-1e-8), r"eps must be None or a float in \(0, inf\), got -1e-08$"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match="^ZLoss: " + match):
        ZLoss(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^z_loss: " + match):
        z_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]), **kwargs)  # type: ignore[arg-type]


def test_bad_stats_inputs_raise() -> None:
    x = torch.randn(3)
    with pytest.raises(ValueError, match=r"same shape"):
        z_loss_from_stats(x, x, torch.randn(4), 5)
    with pytest.raises(ValueError, match=r"o_c must have shape \(N,\)"):
        z_loss_from_stats(torch.randn(3, 1), x, x, 5)
    with pytest.raises(TypeError, match=r"s1 must be a floating-point"):
        z_loss_from_stats(x, torch.ones(3, dtype=torch.long), x, 5)
    with pytest.raises(ValueError, match=r"s2 contains NaN"):
        z_loss_from_stats(x, x, torch.tensor([1.0, float("nan"), 1.0]), 5)
    with pytest.raises(ValueError, match=r"^z_loss_from_stats: num_classes must be an int in \[2, inf\), got 1$"):
        z_loss_from_stats(x, x, x, 1)
    with pytest.raises(ValueError, match=r"empty batch"):
        z_loss_from_stats(torch.randn(0), torch.randn(0), torch.randn(0), 5)
    with pytest.raises(ValueError, match=r"^z_loss_from_stats: a must be a float in \(0, inf\), got 0.0$"):
        z_loss_from_stats(x, x, x, 5, a=0.0)


def test_bad_spherical_stats_inputs_raise() -> None:
    h, w = torch.randn(4, 3), torch.randn(10, 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(D, 3\)"):
        spherical_stats(h, torch.randn(10, 5))
    with pytest.raises(ValueError, match=r"h must be a floating-point tensor of shape \(N, d\)"):
        spherical_stats(torch.randn(4), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(10,\)"):
        spherical_stats(h, w, torch.randn(9))
    with pytest.raises(ValueError, match=r"h contains NaN"):
        spherical_stats(torch.full((2, 3), float("nan")), w)
