"""The check suite of multi-label losses (``forward(logits (B, C), targets (B, C), weight=None)``
with multi-hot targets, on :class:`~paperzoo.losses.base.MultiLabelLoss`)."""

from __future__ import annotations

import torch

from paperzoo._validation import check_logits_multihot
from paperzoo.testing._classification import Functional, MakeLoss, input_checks, loss_checks
from paperzoo.testing._common import Check, run_checks

__all__ = ["check_multilabel_loss", "multilabel_loss_checks"]


class _Case:
    """Random logits (B, C), multi-hot targets (every row and column with a 1 and a 0 where the
    shape allows) and per-sample weights (one of them 0), from one seed."""

    def __init__(self, num_classes: int, batch: int, seed: int, device: torch.device) -> None:
        self.num_classes, self.batch, self.seed, self.device = num_classes, batch, seed, device

    def __call__(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        logits = 2.0 * torch.randn(self.batch, self.num_classes, generator=g, dtype=torch.float64)
        targets = (torch.rand(self.batch, self.num_classes, generator=g) < 0.4).long()
        rows = torch.arange(self.batch)
        targets[rows, rows % self.num_classes] = 1
        targets[rows, (rows + 1) % self.num_classes] = 0
        weight = 0.1 + torch.rand(self.batch, generator=g, dtype=torch.float64)
        weight[0] = 0.0
        return logits.to(self.device, dtype), targets.to(self.device), weight.to(self.device, dtype)

    def permutation(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + 1)
        return torch.randperm(self.batch, generator=g).to(self.device)


def _bad_input_checks(make: MakeLoss, functional: Functional | None, case: _Case) -> list[Check]:
    logits, targets, weight = case(torch.float32)
    nan = logits.clone()
    nan[0, 0] = float("nan")
    two, minus = targets.clone(), targets.clone()
    two[0, 0], minus[-1, -1] = 2, -1
    cases: dict[str, tuple[torch.Tensor, torch.Tensor]] = {
        "logits_1d": (logits[:, 0], targets[:, 0]),
        "targets_1d": (logits, targets[:, 0]),
        "targets_wrong_classes": (logits, targets[:, :-1]),
        "targets_wrong_length": (logits, targets[:-1]),
        "targets_value_2": (logits, two),
        "targets_value_minus_1": (logits, minus),
        "targets_fractional": (logits, targets.double() * 0.5),
        "logits_nan": (nan, targets),
        "empty_batch": (logits[:0], targets[:0]),
    }

    return input_checks(make, functional, check_logits_multihot, cases, (logits, targets, weight))


def multilabel_loss_checks(
    make_loss: MakeLoss,
    functional: Functional | None = None,
    *,
    num_classes: int = 5,
    batch: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[Check]:
    """The checks of a multi-label loss, as ``(name, check)`` pairs for ``pytest.mark.parametrize``
    (see :func:`~paperzoo.testing.classification_loss_checks` for the pattern).

    ``bad_input[...]``: 1-D logits or targets, targets of the wrong shape, target values 2, -1
    or 0.5, NaN logits, an empty batch, weights of the wrong shape or negative each raise the
    error of :mod:`paperzoo._validation`; then the checks every classification loss passes
    (reductions and weights, module vs functional, float64 gradcheck, logits of magnitude 1e4
    and bfloat16, batch permutation, determinism, pickle and state-dict round trips, dtype and
    device), on multi-hot targets.
    """
    if batch < 2 or num_classes < 2:
        raise ValueError(f"multilabel_loss_checks needs batch >= 2 and num_classes >= 2, got {batch}, {num_classes}")
    dev = torch.device(device)
    return loss_checks(make_loss, functional, _Case(num_classes, batch, seed, dev), _bad_input_checks, seed, dev)


def check_multilabel_loss(
    make_loss: MakeLoss,
    functional: Functional | None = None,
    *,
    num_classes: int = 5,
    batch: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> None:
    """Run every check of :func:`multilabel_loss_checks`; raise one ``AssertionError`` naming
    each check that failed."""
    run_checks(
        multilabel_loss_checks(make_loss, functional, num_classes=num_classes, batch=batch, seed=seed, device=device)
    )
