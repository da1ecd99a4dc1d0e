"""The classification-loss check suite passes a correct loss and fails deliberately broken
ones, each on the check meant to catch it (a check that cannot fail tests nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.losses import ClassificationLoss
from paperzoo.testing import check_classification_loss, classification_loss_checks


class CrossEntropy(ClassificationLoss):
    """A correct reference: softmax cross-entropy on the base class."""

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, reduction="none")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return CrossEntropy(reduction)(logits, target)


# --------------------------------------------------------------------------- broken losses
class IgnoresReduction(CrossEntropy):
    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(logits, target, weight).mean()


class PositionWeighted(CrossEntropy):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().per_example(logits, target) * torch.linspace(1.0, 2.0, len(target), dtype=logits.dtype)


class Unvalidated(nn.Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(logits, target, reduction=self.reduction)


class _HalfGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 0.5 * grad


class WrongGradient(CrossEntropy):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _HalfGradient.apply(super().per_example(logits, target))


class NaiveSoftmax(CrossEntropy):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = logits.exp() / logits.exp().sum(1, keepdim=True)
        return -p.gather(1, target[:, None]).squeeze(1).log()


class KeepsLowPrecision(CrossEntropy):
    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(logits, target, weight).to(logits.dtype)


class Noisy(CrossEntropy):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().per_example(logits, target) + 1e-3 * torch.rand(len(target), dtype=logits.dtype)


class Unpicklable(CrossEntropy):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.transform = lambda x: x


class UnregisteredState(CrossEntropy):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.temperature = 1.0 + torch.rand(())  # neither a parameter nor a buffer

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().per_example(logits / self.temperature, target)


class AlwaysFloat32(CrossEntropy):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().per_example(logits.float(), target)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction=reduction, label_smoothing=0.1)


BROKEN: list[tuple[str, Callable[..., nn.Module], Callable[..., torch.Tensor] | None]] = [
    ("reductions", IgnoresReduction, None),
    ("module_equals_functional", CrossEntropy, smoothed_cross_entropy),
    ("gradcheck", WrongGradient, None),
    ("large_logits", NaiveSoftmax, None),
    ("bfloat16", KeepsLowPrecision, None),
    ("batch_permutation", PositionWeighted, None),
    ("determinism", Noisy, None),
    ("pickle_round_trip", Unpicklable, None),
    ("state_dict_round_trip", UnregisteredState, None),
    ("dtype_device", AlwaysFloat32, None),
]


# --------------------------------------------------------------------------- tests
def _fails(check: Callable[[], None]) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False


def test_a_correct_loss_passes_every_check() -> None:
    check_classification_loss(CrossEntropy, cross_entropy)
    check_classification_loss(CrossEntropy, cross_entropy, num_classes=2, batch=3, seed=7)


@pytest.mark.parametrize(("check_name", "make", "functional"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_check_fails_on_the_loss_it_targets(
    check_name: str, make: Callable[..., nn.Module], functional: Callable[..., torch.Tensor] | None
) -> None:
    checks = dict(classification_loss_checks(make, functional))
    with pytest.raises(AssertionError):
        checks[check_name]()


def test_an_unvalidated_loss_fails_every_bad_input_check() -> None:
    checks = [(n, c) for n, c in classification_loss_checks(Unvalidated) if n.startswith("bad_input[")]
    assert len(checks) == 13
    assert [name for name, check in checks if not _fails(check)] == []


def test_the_suite_names_the_failed_checks_only() -> None:
    with pytest.raises(AssertionError, match=r"1 of \d+ checks failed:\n  batch_permutation: ") as info:
        check_classification_loss(PositionWeighted)
    assert "determinism" not in str(info.value)


def test_a_crash_is_reported_as_a_failure() -> None:
    checks = dict(classification_loss_checks(Unpicklable))
    with pytest.raises(AssertionError, match=r"^raised \w+"):
        checks["pickle_round_trip"]()
    with pytest.raises(AssertionError, match=r"\n  pickle_round_trip: raised \w+"):
        check_classification_loss(Unpicklable)


def test_without_functional_there_is_no_comparison_and_bad_arguments_raise() -> None:
    assert "module_equals_functional" not in dict(classification_loss_checks(CrossEntropy))
    with pytest.raises(ValueError, match="batch >= 2"):
        classification_loss_checks(CrossEntropy, batch=1)
