"""The thin base class of paperzoo's classification losses.

:class:`ClassificationLoss` owns what every classification loss shares: validation of the
inputs and of ``reduction``, optional per-sample weights, the reduction itself and the
precision policy. A subclass declares its hyper-parameters in ``_parameter_constraints`` and
writes only :meth:`ClassificationLoss.per_example`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

from paperzoo._validation import (
    REDUCTIONS,
    Constraint,
    Options,
    check_logits_multihot,
    check_logits_target,
    check_sample_weight,
    validate_params,
)

__all__ = [
    "BatchLevelLoss",
    "ClassificationLoss",
    "MultiLabelLoss",
    "check_batch_reduction",
    "reduce_loss",
    "upcast_low_precision",
]


def upcast_low_precision(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 to float32 (losses need the range and precision); other dtypes as is."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def reduce_loss(loss: torch.Tensor, reduction: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce per-example losses ``loss`` (B,), optionally weighted per example.

    ``reduction`` (already validated) is one of:

    * ``"none"``: ``weight * loss`` (B,) (``loss`` itself without weights);
    * ``"sum"``: ``sum_i weight_i * loss_i``;
    * ``"mean"``: the weighted mean ``sum_i weight_i * loss_i / sum_i weight_i`` (the plain mean
      without weights), as ``torch.nn.functional.cross_entropy`` does with class weights. It is
      undefined when every weight is 0 (``ValueError``).

    ``weight`` (B,), validated by the caller (finite, >= 0), is cast to the dtype of ``loss``.
    """
    if weight is not None:
        weight = weight.to(loss.dtype)
        loss = weight * loss
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    total = weight.sum()
    if not bool(total > 0):
        raise ValueError("weight sums to 0: the weighted mean (reduction='mean') is undefined")
    return loss.sum() / total


class ClassificationLoss(nn.Module, abc.ABC):
    """Base of the classification losses: ``forward(logits (B, C), target (B,), weight=None)``.

    The base validates the inputs (``logits`` a finite floating-point (B, C) tensor with B >= 1
    and C >= 2, ``target`` integer (B,) in [0, C), ``weight`` (B,) finite and >= 0) with the
    messages of :mod:`paperzoo._validation`, computes :meth:`per_example` and reduces it with
    :func:`reduce_loss` (``"mean"`` with weights is the weighted mean
    ``sum(w * l) / sum(w)``).

    Precision: float32 and float64 logits are used as they are, so the loss has their dtype
    and device; float16 and bfloat16 logits are upcast to float32 for the per-example math and
    the loss is returned in float32.

    A subclass declares its hyper-parameters and writes the per-example losses only::

        class MarginLoss(ClassificationLoss):
            _parameter_constraints = {
                **ClassificationLoss._parameter_constraints,
                "margin": [Interval(float, 0, math.inf, closed="left")],
            }

            def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
                super().__init__(reduction)
                self._validate_params(margin=margin)
                self.margin = float(margin)

            def per_example(self, logits, target):
                ...  # (B,) losses; inputs are already validated and float32 or float64

    ``reduction`` is validated on assignment too, so changing it later gives the same error.

    Args:
        reduction: "mean" (default), "sum" or "none".
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"reduction": [Options(REDUCTIONS)]}

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    @property
    def reduction(self) -> str:
        """ "mean", "sum" or "none"."""
        return self._reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self._validate_params(reduction=value)
        self._reduction = value

    def _validate_params(self, **params: Any) -> None:
        """Check ``params`` against ``_parameter_constraints``, naming this class in errors."""
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)

    @staticmethod
    def _check_inputs(logits: torch.Tensor, target: torch.Tensor) -> None:
        check_logits_target(logits, target)

    @abc.abstractmethod
    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-example losses (B,) of validated ``logits`` (B, C), float32 or float64, and
        ``target`` (B,)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The reduced loss; see the class docstring for shapes, weights and dtypes."""
        self._check_inputs(logits, target)
        if weight is not None:
            check_sample_weight(weight, logits.shape[0])
        return reduce_loss(self.per_example(upcast_low_precision(logits), target), self.reduction, weight)


def check_batch_reduction(reduction: str, owner: str, why: str) -> None:
    """``reduction`` must be ``"mean"`` for a loss of the whole batch; ``why`` says, in the error, why
    (``"AnyLoss is a batch-level metric with no per-example losses"``)."""
    validate_params(ClassificationLoss._parameter_constraints, {"reduction": reduction}, owner=owner)
    if reduction != "mean":
        raise ValueError(f"{owner}: reduction must be 'mean' ({why}), got {reduction!r}")


class BatchLevelLoss(ClassificationLoss):
    """Base of the classification losses that are a function of the whole batch (a metric surrogate,
    a batch regulariser): ``reduction`` can only be ``"mean"`` and there are no per-example losses.
    A subclass sets :attr:`batch_reason` (the error's explanation) and writes ``forward``."""

    batch_reason: ClassVar[str] = "a batch-level loss with no per-example losses"

    @property  # type: ignore[override]
    def reduction(self) -> str:
        """ "mean" (a batch-level loss); other values raise."""
        return self._reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        check_batch_reduction(value, type(self).__name__, self.batch_reason)
        self._reduction = value

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is a batch-level loss: it has no per-example losses")


class MultiLabelLoss(ClassificationLoss):
    """Base of the multi-label losses: ``forward(logits (B, C), targets (B, C), weight=None)``
    with multi-hot ``targets`` (0 or 1, any real dtype or bool; for positive-unlabelled data 1 is
    an observed positive and 0 unknown). Everything else (reduction over the B examples,
    per-sample weights, precision) is :class:`ClassificationLoss`'s; :meth:`per_example` gets
    validated ``targets`` of any dtype and returns (B,) losses."""

    @staticmethod
    def _check_inputs(logits: torch.Tensor, target: torch.Tensor) -> None:
        check_logits_multihot(logits, target)
