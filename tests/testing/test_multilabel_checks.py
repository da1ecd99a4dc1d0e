"""The multi-label check suite passes a correct loss and fails broken ones on the check meant
to catch them."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import MultiLabelLoss
from paperzoo.testing import check_multilabel_loss, multilabel_loss_checks


class BCE(MultiLabelLoss):
    """A correct reference: binary cross-entropy summed over the classes."""

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none").sum(1)


def bce(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return BCE(reduction)(logits, targets)


class AcceptsAnyTarget(BCE):
    """Validates nothing about the targets (fractional or out-of-range targets go through)."""

    @staticmethod
    def _check_inputs(logits: torch.Tensor, target: torch.Tensor) -> None:
        return None


class PositionWeighted(BCE):
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().per_example(logits, target) * torch.linspace(1.0, 2.0, len(target), dtype=logits.dtype)


CHECKS = multilabel_loss_checks(BCE, bce)


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
def test_reference_passes(name, check) -> None:
    check()


@pytest.mark.parametrize(
    ("loss", "failing"),
    [(AcceptsAnyTarget, "bad_input[targets_value_2]"), (PositionWeighted, "batch_permutation")],
)
def test_broken_losses_fail_their_check(loss, failing) -> None:
    checks = dict(multilabel_loss_checks(loss))
    with pytest.raises(AssertionError):
        checks[failing]()
    with pytest.raises(AssertionError, match=re.escape(failing)):
        check_multilabel_loss(loss)


def test_suite_needs_a_real_shape() -> None:
    with pytest.raises(ValueError, match="num_classes >= 2"):
        multilabel_loss_checks(BCE, num_classes=1)
