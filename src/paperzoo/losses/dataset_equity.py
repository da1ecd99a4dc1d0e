"""The likelihood-weighted loss of DatasetEquity (Shrivastava, Zhang, Nagesh & Parchami, "DatasetEquity:
Are All Samples Created Equal? In The Quest For Equity Within Datasets", ICCV 2023 Workshops,
arXiv:2308.09878).

Every training sample ``i`` carries a likelihood ``p_i`` in (0, 1] that says how common its
*appearance* is in the training set (the size of its cluster of deep perceptual embeddings over
the size of the largest cluster; :mod:`paperzoo.analysis.dataset_equity` computes it). The task
loss of sample ``i`` is scaled by what the authors call the "Generalized Focal Loss" weight
(not Li et al.'s GFL for dense detection)::

    w(p) = (eta + (1 - p)**gamma) / (eta + 1),        eta > 0, gamma >= 0

so that rare samples (``p -> 0``) keep weight ~1 and the most common ones (``p = 1``) are scaled
to ``eta / (eta + 1)``: the largest rare/common weight ratio is ``(eta + 1) / eta``. ``gamma = 0``
gives ``w = 1`` (the official repositories' baseline configuration); ``eta -> inf`` also gives 1.
Defaults ``eta = 1``, ``gamma = 5`` (the official README); the official BEVFormer configurations
use ``eta = 0.5``, ``gamma = 5``.

As in the official BEVFormer integration, the weighted loss is ``mean_i w(p_i) * loss_i``: the
weights are *not* renormalised, so the mean weight is below 1. ``normalize=True`` divides them by
their batch mean instead (a toolkit option).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import (
    Constraint,
    Interval,
    Options,
    check_logits_target,
    check_sample_weight,
    validate_params,
)
from paperzoo.losses.base import ClassificationLoss, reduce_loss, upcast_low_precision

__all__ = ["DatasetEquityLoss", "check_likelihood", "dataset_equity_loss", "dataset_equity_weight"]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "reduction": ClassificationLoss._parameter_constraints["reduction"],
    "eta": [Interval(float, 0, math.inf, closed="neither")],
    "gamma": [Interval(float, 0, math.inf, closed="left")],
    "normalize": [Options((False, True))],
}
"""Scalar parameters of the functions and the module of this module."""

ArrayLike = TypeVar("ArrayLike", torch.Tensor, np.ndarray, float)


# --------------------------------------------------------------------------- the weight
def check_likelihood(likelihood: torch.Tensor, n: int | None = None) -> None:
    """Sample likelihoods: a floating-point tensor (of shape ``(n,)`` if ``n`` is given), finite,
    with values in [0, 1] (``p = 0`` is the rare limit of the weight, allowed)."""
    if not isinstance(likelihood, torch.Tensor) or not likelihood.is_floating_point():
        shape = "" if n is None else f" of shape ({n},)"
        raise TypeError(f"likelihood must be a floating-point torch.Tensor{shape}")
    if n is not None and likelihood.shape != (n,):
        raise ValueError(f"likelihood must have shape ({n},), got {tuple(likelihood.shape)}")
    if not bool(torch.isfinite(likelihood).all()):
        raise ValueError("likelihood contains NaN or infinite values")
    if likelihood.numel() and bool(((likelihood < 0) | (likelihood > 1)).any()):
        lo, hi = float(likelihood.min()), float(likelihood.max())
        raise ValueError(f"likelihood must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def _weight(p: torch.Tensor, eta: float, gamma: float) -> torch.Tensor:
    """``(eta + (1 - p)**gamma) / (eta + 1)`` of trusted ``p`` (``0**0 = 1``, as ``torch.pow``)."""
    return (eta + (1.0 - p).pow(gamma)) / (eta + 1.0)


def dataset_equity_weight(p: ArrayLike, eta: float = 1.0, gamma: float = 5.0) -> ArrayLike:
    """The DatasetEquity ("Generalized Focal Loss") weight ``(eta + (1 - p)**gamma) / (eta + 1)``.

    Args:
        p: sample likelihoods in [0, 1]: a tensor (any shape), a NumPy array or a float.
        eta: > 0; the most common samples (``p = 1``) get ``eta / (eta + 1)``.
        gamma: >= 0; how fast the weight falls from 1 as ``p`` grows (0: no weighting).

    Returns the weights in ``[eta / (eta + 1), 1]``, of ``p``'s type (a float for a float);
    non-increasing in ``p``.

    >>> round(dataset_equity_weight(0.5, eta=1.0, gamma=5.0), 6)
    0.515625
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"eta": eta, "gamma": gamma}, owner="dataset_equity_weight")
    if isinstance(p, torch.Tensor):
        check_likelihood(p)
        return _weight(p, float(eta), float(gamma))
    arr = np.asarray(p)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"p must be a float, an array or a tensor of floats, got {type(p).__name__}")
    t = torch.from_numpy(np.array(arr, dtype=np.float64, ndmin=1))
    check_likelihood(t)
    out = _weight(t, float(eta), float(gamma)).numpy().reshape(arr.shape)
    return float(out) if arr.ndim == 0 else out  # type: ignore[return-value]


# --------------------------------------------------------------------------- the loss
def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction="none")


def _reduce(
    per_example: torch.Tensor,
    likelihood: torch.Tensor | None,
    eta: float,
    gamma: float,
    normalize: bool,
    reduction: str,
    weight: torch.Tensor | None,
) -> torch.Tensor:
    """Scale the per-example losses by ``w(p)`` (divided by its batch mean if ``normalize``),
    then reduce with the optional per-sample ``weight`` as every paperzoo classification loss does."""
    if likelihood is not None:
        w = _weight(likelihood.to(per_example.dtype), eta, gamma)
        if normalize:
            w = w / w.mean()
        per_example = w * per_example
    return reduce_loss(per_example, reduction, weight)


def dataset_equity_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    likelihood: torch.Tensor | None = None,
    eta: float = 1.0,
    gamma: float = 5.0,
    normalize: bool = False,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy scaled per sample by the DatasetEquity weight of its likelihood.

    Args:
        logits: (B, C) raw scores, C >= 2.
        target: (B,) integer classes in [0, C).
        likelihood: (B,) sample likelihoods in [0, 1] (``None``: every weight is 1, plain
            cross-entropy).
        eta, gamma: of :func:`dataset_equity_weight`.
        normalize: divide the batch's DatasetEquity weights by their mean (mean weight 1);
            ``False`` (the paper's integration) keeps them as they are.
        reduction: "mean" (default: ``mean_i w_i * ce_i``), "sum" or "none".
        weight: optional (B,) per-sample weights, >= 0, applied on top as in every paperzoo
            classification loss (``"mean"`` is then ``sum(weight * w * ce) / sum(weight)``).
    """
    check_logits_target(logits, target)
    validate_params(
        _PARAMETER_CONSTRAINTS,
        {"eta": eta, "gamma": gamma, "normalize": normalize, "reduction": reduction},
        owner="dataset_equity_loss",
    )
    if likelihood is not None:
        check_likelihood(likelihood, logits.shape[0])
    if weight is not None:
        check_sample_weight(weight, logits.shape[0])
    x = upcast_low_precision(logits)
    return _reduce(_cross_entropy(x, target), likelihood, float(eta), float(gamma), normalize, reduction, weight)


class DatasetEquityLoss(ClassificationLoss):
    """DatasetEquity's likelihood-weighted classification loss:
    ``forward(logits (B, C), target (B,), weight=None, likelihood=None)``.

    Per sample, the base loss (cross-entropy by default) times
    ``w(p) = (eta + (1 - p)**gamma) / (eta + 1)`` of the sample's likelihood ``p`` (see
    :func:`dataset_equity_weight`), then reduced over the batch; with ``reduction="mean"`` and no
    ``weight`` that is ``mean_i w(p_i) * loss_i``, as in the paper's BEVFormer integration.
    Without ``likelihood`` the loss is the base loss (every ``w = 1``). ``weight`` (optional
    per-sample weights) applies on top, with the reduction of every paperzoo classification loss.

    Args:
        eta: > 0 (default 1.0, the official README's value; BEVFormer configurations use 0.5).
        gamma: >= 0 (default 5.0, the official value; 0 switches the weighting off).
        normalize: divide the DatasetEquity weights of a batch by their mean (default False, as
            in the paper, whose mean weight is below 1).
        base_loss: the per-sample task loss: ``None`` (cross-entropy), a
            :class:`~paperzoo.losses.ClassificationLoss` (its ``per_example`` is used; its own
            reduction is ignored) or a module ``f(logits, target) -> (B,)`` of unreduced losses
            (e.g. ``nn.CrossEntropyLoss(reduction="none", label_smoothing=0.1)``).
        reduction: "mean" (default), "sum" or "none".
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("reduction", "eta", "gamma", "normalize")
    }

    def __init__(
        self,
        eta: float = 1.0,
        gamma: float = 5.0,
        normalize: bool = False,
        base_loss: nn.Module | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self._validate_params(eta=eta, gamma=gamma, normalize=normalize)
        if base_loss is not None and not isinstance(base_loss, nn.Module):
            raise TypeError(
                f"DatasetEquityLoss: base_loss must be None, a ClassificationLoss or a torch.nn.Module returning "
                f"per-sample losses, got {type(base_loss).__name__}"
            )
        self.eta = float(eta)
        self.gamma = float(gamma)
        self.normalize = bool(normalize)
        self.base_loss = base_loss

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The base loss per example (unweighted)."""
        if self.base_loss is None:
            return _cross_entropy(logits, target)
        if isinstance(self.base_loss, ClassificationLoss):
            return self.base_loss.per_example(logits, target)
        out = self.base_loss(logits, target)
        if not isinstance(out, torch.Tensor) or out.shape != (logits.shape[0],):
            raise ValueError(
                f"base_loss must return per-sample losses of shape ({logits.shape[0]},) (use reduction='none'), "
                f"got {getattr(out, 'shape', type(out).__name__)}"
            )
        return out

    def forward(  # type: ignore[override]
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        likelihood: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reduced loss; ``likelihood`` (B,) in [0, 1] scales each sample by ``w(p)``."""
        check_logits_target(logits, target)
        if weight is not None:
            check_sample_weight(weight, logits.shape[0])
        if likelihood is not None:
            check_likelihood(likelihood, logits.shape[0])
        per = self.per_example(upcast_low_precision(logits), target)
        return _reduce(per, likelihood, self.eta, self.gamma, self.normalize, self.reduction, weight)

    def extra_repr(self) -> str:
        return f"eta={self.eta}, gamma={self.gamma}, normalize={self.normalize}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- benchmark entries
_BENCH_LIKELIHOOD_CLASSES = 1000


def _bench_likelihood(target: torch.Tensor) -> torch.Tensor:
    """A fixed likelihood per class (the benchmark's stand-in for the data loader's ``p_i``)."""
    table = torch.linspace(0.001, 1.0, _BENCH_LIKELIHOOD_CLASSES)
    return table[target % _BENCH_LIKELIHOOD_CLASSES]


def bench_dataset_equity() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits, target)`` of :class:`DatasetEquityLoss` (defaults), its likelihood looked
    up per sample, for ``paperzoo bench losses``."""
    loss = DatasetEquityLoss()

    def fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return loss(logits, target, likelihood=_bench_likelihood(target))

    return fn


def bench_reference() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The paper's formula written naively in torch (no validation), the speed reference."""

    def fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = _bench_likelihood(target)
        w = (1.0 + (1.0 - p) ** 5.0) / 2.0
        return (F.cross_entropy(logits, target, reduction="none") * w).mean()

    return fn
