"""Individual representation calibration of RCAL (Zhang et al., "When Noisy Labels Meet Long Tail
Dilemmas: A Representation Calibration Method", ICCV 2023).

While the classifier is trained on noisy long-tailed labels, RCAL keeps each sample's current
representation ``f(x_i)`` close to the representation ``z_i`` that the label-free contrastive
stage gave it, so that the noisy labels cannot drag the representations far from the structure
learnt without them (the paper's "individual calibration"):

    L_ind = beta * (1/B) * sum_i d(f(x_i), z_i),    d = ||.||_2 (default) or ||.||_2^2.

The distance type and ``beta`` are not confirmed from the paper's text; the defaults (plain
Euclidean distance, ``beta = 1``) are this toolkit's choice. ``frozen`` is detached: the gradient
flows only into ``current``. Pure PyTorch (no library implements it); the training procedure
that uses it is :mod:`paperzoo.training.rcal`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from paperzoo._validation import REDUCTIONS, Interval, Options, check_finite, validate_params

__all__ = ["IndividualCalibrationLoss", "individual_calibration_loss"]

_CONSTRAINTS: dict[str, list[Any]] = {
    "beta": [Interval(float, 0, math.inf, closed="left")],
    "distance": [Options(("l2", "sq_l2"))],
    "reduction": [Options(REDUCTIONS)],
}


def _check_pair(current: torch.Tensor, frozen: torch.Tensor) -> None:
    for name, t in (("current", current), ("frozen", frozen)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, D)")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (B, D), got {tuple(t.shape)}")
    if current.shape[0] == 0:
        raise ValueError("empty batch: current has 0 rows")
    if frozen.shape != current.shape:
        raise ValueError(f"frozen must have the shape of current {tuple(current.shape)}, got {tuple(frozen.shape)}")
    check_finite(current, "current")
    check_finite(frozen, "frozen")


def individual_calibration_loss(
    current: torch.Tensor,
    frozen: torch.Tensor,
    beta: float = 1.0,
    distance: str = "l2",
    reduction: str = "mean",
) -> torch.Tensor:
    """``beta * d(current_i, frozen_i)`` per row, reduced (``mean`` | ``sum`` | ``none``).

    Args:
        current: representations being trained, (B, D).
        frozen: the fixed contrastive representations of the same samples, (B, D); detached.
        beta: weight of the term (>= 0).
        distance: ``"l2"`` (Euclidean distance) or ``"sq_l2"`` (its square).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-row values, (B,)).

    The Euclidean distance has a zero (sub)gradient where ``current == frozen`` (PyTorch's
    ``vector_norm`` backward is 0 at a zero row), so the term is finite everywhere.
    """
    validate_params(
        _CONSTRAINTS, {"beta": beta, "distance": distance, "reduction": reduction}, owner="individual_calibration_loss"
    )
    _check_pair(current, frozen)
    diff = current - frozen.detach().to(current.dtype)
    per = torch.linalg.vector_norm(diff, dim=1)  # its backward gives 0 at a zero row, not NaN
    if distance == "sq_l2":
        per = per.square()
    per = beta * per
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    return per


class IndividualCalibrationLoss(nn.Module):
    """Module form of :func:`individual_calibration_loss`: ``forward(current, frozen)``."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = _CONSTRAINTS

    def __init__(self, beta: float = 1.0, distance: str = "l2", reduction: str = "mean") -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"beta": beta, "distance": distance, "reduction": reduction},
            owner=type(self).__name__,
        )
        self.beta, self.distance, self.reduction = float(beta), distance, reduction

    def forward(self, current: torch.Tensor, frozen: torch.Tensor) -> torch.Tensor:
        return individual_calibration_loss(current, frozen, self.beta, self.distance, self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, distance={self.distance!r}, reduction={self.reduction!r}"
