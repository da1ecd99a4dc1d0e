"""The check suite of classification losses (``forward(logits, target, weight=None)``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from paperzoo._validation import REDUCTIONS, check_logits_target, check_sample_weight, validate_params
from paperzoo.losses.base import ClassificationLoss, reduce_loss
from paperzoo.testing._common import (
    Check,
    as_checks,
    assert_close,
    assert_equal,
    assert_finite,
    assert_raises_like,
    perturb_state,
    pickle_copy,
    reference_error,
    run_checks,
    state_dict_copy,
)

__all__ = ["check_classification_loss", "classification_loss_checks"]

MakeLoss = Callable[..., nn.Module]
Functional = Callable[..., torch.Tensor]


class _Case:
    """Random logits (B, C), targets and per-sample weights (one of them 0), from one seed."""

    def __init__(self, num_classes: int, batch: int, seed: int, device: torch.device) -> None:
        self.num_classes, self.batch, self.seed, self.device = num_classes, batch, seed, device

    def __call__(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        logits = 2.0 * torch.randn(self.batch, self.num_classes, generator=g, dtype=torch.float64)
        target = torch.randint(0, self.num_classes, (self.batch,), generator=g)
        weight = 0.1 + torch.rand(self.batch, generator=g, dtype=torch.float64)
        weight[0] = 0.0  # a zero weight must drop its example, not break the reduction
        return logits.to(self.device, dtype), target.to(self.device), weight.to(self.device, dtype)

    def permutation(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + 1)
        return torch.randperm(self.batch, generator=g).to(self.device)


def _of_logits(loss: nn.Module, target: torch.Tensor, *weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``logits -> loss(logits, target, *weight)``, for gradcheck."""
    return lambda logits: loss(logits, target, *weight)


def _bad_input_checks(make: MakeLoss, functional: Functional | None, case: _Case) -> list[Check]:
    """One check per bad input: the loss (and the functional) must raise what the reference
    validation of :mod:`paperzoo._validation` raises for it."""
    logits, target, weight = case(torch.float32)
    b, c = logits.shape
    nan, inf = logits.clone(), logits.clone()
    nan[0, 0], inf[-1, -1] = float("nan"), float("inf")
    negative, too_large = target.clone(), target.clone()
    negative[0], too_large[-1] = -1, c
    tensor_cases: dict[str, tuple[torch.Tensor, torch.Tensor]] = {
        "logits_1d": (logits[:, 0], target),
        "logits_3d": (logits[:, :, None], target),
        "target_wrong_length": (logits, target[:-1]),
        "target_float": (logits, target.float()),
        "target_negative": (logits, negative),
        "target_too_large": (logits, too_large),
        "logits_nan": (nan, target),
        "logits_inf": (inf, target),
        "empty_batch": (logits[:0], target[:0]),
    }

    def zero_weights() -> None:
        expected = reference_error(partial(reduce_loss, torch.ones(b), "mean", torch.zeros(b)))
        assert_raises_like(partial(make(reduction="mean"), logits, target, torch.zeros_like(weight)), expected)

    def bad_reduction() -> None:
        owner = type(make()).__name__
        params = {"reduction": "avg"}
        constraints = ClassificationLoss._parameter_constraints
        expected = reference_error(partial(validate_params, constraints, params, owner=owner))
        assert_raises_like(partial(make, **params), expected)
        if functional is not None:
            assert_raises_like(partial(functional, logits, target, **params), expected, any_owner=True)

    checks = input_checks(make, functional, check_logits_target, tensor_cases, (logits, target, weight))
    checks += [("bad_input[weight_all_zero_mean]", zero_weights), ("bad_input[reduction]", bad_reduction)]
    return checks


def input_checks(
    make: MakeLoss,
    functional: Functional | None,
    boundary: Callable[[torch.Tensor, torch.Tensor], None],
    cases: dict[str, tuple[torch.Tensor, torch.Tensor]],
    valid: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> list[Check]:
    """``bad_input[name]`` for each ``(logits, target)`` of ``cases``: the loss (and the
    functional) raise what ``boundary`` raises for it; then weights of the wrong shape and a
    negative weight beside the ``valid`` inputs raise what ``check_sample_weight`` raises."""
    logits, target, weight = valid

    def tensor_check(x: torch.Tensor, t: torch.Tensor) -> None:
        expected = reference_error(partial(boundary, x, t))
        assert_raises_like(partial(make(), x, t), expected)
        if functional is not None:
            assert_raises_like(partial(functional, x, t), expected)

    def weight_check(w: torch.Tensor) -> None:
        expected = reference_error(partial(check_sample_weight, w, logits.shape[0]))
        assert_raises_like(partial(make(), logits, target, w), expected)

    negative_weight = weight.clone()
    negative_weight[1] = -0.5
    checks: list[Check] = [(f"bad_input[{name}]", partial(tensor_check, *xt)) for name, xt in cases.items()]
    checks += [
        ("bad_input[weight_wrong_shape]", partial(weight_check, weight[:-1])),
        ("bad_input[weight_negative]", partial(weight_check, negative_weight)),
    ]
    return checks


def classification_loss_checks(
    make_loss: MakeLoss,
    functional: Functional | None = None,
    *,
    num_classes: int = 5,
    batch: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[Check]:
    """The checks of a classification loss, as ``(name, check)`` pairs (``check()`` raises
    ``AssertionError`` on failure), for ``pytest.mark.parametrize``::

        CHECKS = classification_loss_checks(ZLoss, z_loss)

        @pytest.mark.parametrize("name, check", CHECKS, ids=[name for name, _ in CHECKS])
        def test_z_loss_suite(name, check):
            check()

    Args:
        make_loss: ``make_loss(**kwargs) -> nn.Module``, the loss with the hyper-parameters
            under test; ``kwargs`` may hold ``reduction``. The module is called as
            ``loss(logits, target)`` and ``loss(logits, target, weight)``.
        functional: the functional form, called as ``functional(logits, target, reduction=r)``
            and expected to equal the module (e.g. ``partial(z_loss, a=2.0)`` beside
            ``partial(ZLoss, a=2.0)``); ``None`` skips the comparison.
        num_classes, batch: the shape (B, C) of the random logits (B >= 2).
        seed: seed of the random inputs.
        device: where the inputs and the loss live (the loss is moved with ``.to(device)``).

    The checks:

    * ``bad_input[...]``: 1-D and 3-D logits, a target of the wrong length, a float target, a
      negative target and one >= C, NaN and infinite logits, an empty batch, weights of the
      wrong shape, negative weights, all-zero weights with ``"mean"``, and
      ``reduction="avg"`` each raise the error of :mod:`paperzoo._validation` (type and
      message; the functional's reduction error may name its own owner);
    * ``reductions``: ``"none"`` is (B,), ``"sum"`` and ``"mean"`` its sum and mean; with
      weights ``w``: ``w * l``, ``sum(w * l)`` and ``sum(w * l) / sum(w)``; unit weights
      change nothing;
    * ``module_equals_functional``: values and gradients, for each reduction;
    * ``gradcheck``: ``torch.autograd.gradcheck`` in float64 w.r.t. the logits, each
      reduction, with and without weights;
    * ``large_logits`` and ``bfloat16``: finite values and gradients for logits of magnitude
      1e4 (float32) and for bfloat16 logits (whose loss is float32, the base class's policy);
    * ``batch_permutation``: permuting the batch permutes ``"none"`` and leaves ``"sum"`` and
      ``"mean"`` unchanged (with and without weights);
    * ``determinism``: two calls give identical results;
    * ``pickle_round_trip`` and ``state_dict_round_trip``: the copy (pickle, or a fresh
      ``make_loss()`` with the state dict loaded) gives the same value, after the original's
      floating parameters and buffers were perturbed;
    * ``dtype_device``: float32 and float64 logits give a loss of their dtype, on their device.
    """
    if batch < 2 or num_classes < 2:
        raise ValueError(
            f"classification_loss_checks needs batch >= 2 and num_classes >= 2, got {batch}, {num_classes}"
        )
    dev = torch.device(device)
    return loss_checks(make_loss, functional, _Case(num_classes, batch, seed, dev), _bad_input_checks, seed, dev)


def loss_checks(
    make_loss: MakeLoss,
    functional: Functional | None,
    case: Any,
    bad_input_checks: Callable[[MakeLoss, Functional | None, Any], list[Check]],
    seed: int,
    dev: torch.device,
) -> list[Check]:
    """The checks every loss on :class:`~paperzoo.losses.base.ClassificationLoss` shares, on the
    inputs of ``case`` (``case(dtype) -> (logits, target, weight)``, ``case.permutation()``),
    after the kind's own ``bad_input_checks``."""
    batch = case.batch

    def make(**kwargs: Any) -> nn.Module:
        return make_loss(**kwargs).to(dev)

    def reductions() -> None:
        logits, target, weight = case()
        none = make(reduction="none")(logits, target)
        if none.shape != (batch,):
            raise AssertionError(f"reduction='none' must give shape ({batch},), got {tuple(none.shape)}")
        for r, expected, w in (
            ("sum", none.sum(), None),
            ("mean", none.mean(), None),
            ("mean", none.mean(), torch.ones_like(weight)),
            ("none", weight * none, weight),
            ("sum", (weight * none).sum(), weight),
            ("mean", (weight * none).sum() / weight.sum(), weight),
        ):
            out = make(reduction=r)(logits, target, *(() if w is None else (w,)))
            if out.shape != expected.shape:
                raise AssertionError(f"reduction={r!r} must give shape {tuple(expected.shape)}, got {tuple(out.shape)}")
            assert_close(out, expected, f"reduction={r!r}" + ("" if w is None else " with weights"))

    def module_equals_functional() -> None:
        assert functional is not None
        for r in REDUCTIONS:
            x1, target, _ = case()
            x2 = x1.clone()
            out1 = make(reduction=r)(x1.requires_grad_(True), target)
            out2 = functional(x2.requires_grad_(True), target, reduction=r)
            assert_close(out1, out2, f"module vs functional, reduction={r!r}")
            out1.sum().backward()
            out2.sum().backward()
            assert_close(x1.grad, x2.grad, f"module vs functional gradient, reduction={r!r}")

    def gradcheck() -> None:
        logits, target, weight = case()
        for r in REDUCTIONS:
            for w in (None, weight):
                fn = _of_logits(make(reduction=r), target, *(() if w is None else (w,)))
                x = logits.clone().requires_grad_(True)
                if not torch.autograd.gradcheck(fn, (x,), raise_exception=False):
                    raise AssertionError(f"gradcheck failed, reduction={r!r}" + ("" if w is None else " with weights"))

    def finite_at(logits: torch.Tensor, target: torch.Tensor, what: str) -> torch.Tensor:
        x = logits.detach().requires_grad_(True)
        out = make(reduction="none")(x, target)
        assert_finite(out, f"loss at {what}")
        out.sum().backward()
        assert x.grad is not None
        assert_finite(x.grad, f"gradient at {what}")
        return out

    def large_logits() -> None:
        logits, target, _ = case(torch.float32)
        finite_at(1e4 * logits / logits.abs().max(), target, "logits of magnitude 1e4")

    def bfloat16() -> None:
        logits, target, _ = case(torch.float32)
        out = finite_at(logits.to(torch.bfloat16), target, "bfloat16 logits")
        if out.dtype != torch.float32:
            raise AssertionError(f"bfloat16 logits must give a float32 loss, got {out.dtype}")

    def batch_permutation() -> None:
        logits, target, weight = case()
        p = case.permutation()
        for w in (None, weight):
            full = () if w is None else (w,)
            perm = () if w is None else (w[p],)
            suffix = "" if w is None else " with weights"
            none = make(reduction="none")
            assert_close(none(logits[p], target[p], *perm), none(logits, target, *full)[p], "'none' permuted" + suffix)
            for r in ("sum", "mean"):
                loss = make(reduction=r)
                assert_close(loss(logits[p], target[p], *perm), loss(logits, target, *full), f"{r!r} permuted" + suffix)

    def determinism() -> None:
        logits, target, weight = case()
        for r in REDUCTIONS:
            loss = make(reduction=r)
            assert_equal(loss(logits, target, weight), loss(logits, target, weight), f"two calls, reduction={r!r}")

    def round_trip(kind: str) -> None:
        logits, target, weight = case()
        loss = make()
        perturb_state(loss, seed)
        copy = pickle_copy(loss) if kind == "pickle" else state_dict_copy(loss, make)
        assert_equal(copy(logits, target, weight), loss(logits, target, weight), f"{kind} round trip")

    def dtype_device() -> None:
        for dtype in (torch.float32, torch.float64):
            logits, target, _ = case(dtype)
            for r in REDUCTIONS:
                out = make(reduction=r)(logits, target)
                if out.dtype != dtype or out.device != logits.device:
                    raise AssertionError(
                        f"{dtype} logits on {logits.device} gave a loss of {out.dtype} on {out.device} (reduction={r!r})"
                    )

    checks = bad_input_checks(make, functional, case)
    checks += [("reductions", reductions)]
    if functional is not None:
        checks += [("module_equals_functional", module_equals_functional)]
    checks += [
        ("gradcheck", gradcheck),
        ("large_logits", large_logits),
        ("bfloat16", bfloat16),
        ("batch_permutation", batch_permutation),
        ("determinism", determinism),
        ("pickle_round_trip", partial(round_trip, "pickle")),
        ("state_dict_round_trip", partial(round_trip, "state_dict")),
        ("dtype_device", dtype_device),
    ]
    return as_checks(checks)


def check_classification_loss(
    make_loss: MakeLoss,
    functional: Functional | None = None,
    *,
    num_classes: int = 5,
    batch: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> None:
    """Run every check of :func:`classification_loss_checks`; raise one ``AssertionError``
    naming each check that failed."""
    run_checks(
        classification_loss_checks(
            make_loss, functional, num_classes=num_classes, batch=batch, seed=seed, device=device
        )
    )
