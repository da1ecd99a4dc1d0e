"""AnyLoss of Han, Moniz & Chawla (ECML-PKDD 2024), "AnyLoss: Transforming Classification Metrics
into Loss Functions" (arXiv:2405.14745).

A confusion-matrix metric (accuracy, F-beta, G-mean, balanced accuracy, MCC, ...) is made
differentiable by replacing every predicted probability ``p`` by the *approximation function*

    A(p) = sigmoid(L * (p - 0.5))            (L > 0, the paper's default L = 73)

which pushes ``p`` towards 0 or 1 while keeping a gradient, and by building the confusion
matrix from these near-binary values (the paper's soft confusion matrix, over the batch)::

    TP = sum_i y_i A(p_i)          FN = sum_i y_i (1 - A(p_i))
    FP = sum_i (1 - y_i) A(p_i)    TN = sum_i (1 - y_i)(1 - A(p_i))

The loss is ``1 - metric(TN, FP, FN, TP)``, with a small constant ``eps`` (the paper's 1e-5)
added to the denominators. It is a **batch-level** loss: the metric of the whole batch, not a
mean of per-example terms (so there is no ``reduction="none"``).

Forms provided here:

* :func:`anyloss_binary`: the paper's binary loss on probabilities ``p`` (N,) of the positive
  class (or on logits with ``from_logits=True``: ``p = sigmoid(logit)``; never the shortcut
  ``sigmoid(L * logit)``, a different function);
* :func:`any_loss` / :class:`AnyLoss`: on classification logits (B, C) and integer targets.
  ``average="binary"`` (C = 2) is the paper's loss with ``p = softmax(logits)[:, 1]``;
  ``average="macro"`` (the default) is a one-vs-rest extension that is not in the paper: every
  column is the paper's binary classifier (``p_ik = sigmoid(logits_ik)``, positives the samples
  of class k), its metric is computed from its own soft confusion matrix and the loss is
  ``1 - mean_k metric_k``. Per-class sigmoids (rather than a softmax) keep the gradient alive
  at initialisation: with a softmax over C classes every ``p_ik`` starts near 1/C, where
  ``A`` is flat to ~1e-13 at L = 73 for C = 10.
* :func:`soft_confusion_matrix` and :func:`approximation`, the building blocks.

Per-sample weights (an extension) weight the counts: ``TP = sum_i w_i y_i A(p_i)`` etc.

Metrics (``metric=``): ``"accuracy"``, ``"f1"``, ``"fbeta"`` (with ``beta``), ``"gmean"``
(``gmean_squared=True``, the reference code's default: ``TP*TN / (y1*y0 + eps)``, monotone
in the G-mean; ``False``: ``sqrt(TPR * TNR)``), ``"balanced_accuracy"``, ``"mcc"`` (an extension;
its loss ``1 - MCC`` lies in [0, 2]) or any callable ``metric(tn, fp, fn, tp) -> tensor``
(elementwise over classes). With ``amplify=False`` the loss is the common "pure" soft-metric
surrogate (``A(p) = p``), the paper's ablation baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from paperzoo._validation import (
    Constraint,
    Interval,
    Options,
    check_finite,
    check_logits_target,
    check_sample_weight,
    validate_params,
)
from paperzoo.losses.base import BatchLevelLoss, check_batch_reduction, upcast_low_precision

__all__ = ["ANYLOSS_METRICS", "AnyLoss", "any_loss", "anyloss_binary", "approximation", "soft_confusion_matrix"]

ANYLOSS_METRICS = ("accuracy", "f1", "fbeta", "gmean", "balanced_accuracy", "mcc")
"""The metric names AnyLoss knows (a callable ``metric(tn, fp, fn, tp)`` is accepted too)."""

MetricFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "reduction": [Options(("mean", "sum", "none"))],
    "L": [Interval(float, 0, math.inf, closed="neither")],
    "beta": [Interval(float, 0, math.inf, closed="neither")],
    "eps": [Interval(float, 0, math.inf, closed="left")],
    "gmean_squared": [Options((True, False))],
    "amplify": [Options((True, False))],
    "from_logits": [Options((True, False))],
    "average": [Options(("macro", "binary"))],
}
_ZERO_WEIGHT_MESSAGE = "weight sums to 0: the weighted mean (reduction='mean') is undefined"


# --------------------------------------------------------------------------- core (trusted inputs)
def approximation(p: torch.Tensor, L: float = 73.0) -> torch.Tensor:
    """The paper's approximation function ``A(p) = sigmoid(L * (p - 0.5))`` (elementwise).

    ``A(1 - p) = 1 - A(p)``; as L grows, ``A(p) -> 1[p > 0.5]`` for ``p != 0.5``.
    """
    return torch.sigmoid(L * (p - 0.5))


_BATCH_REASON = "AnyLoss is a batch-level metric with no per-example losses"


def _metric(
    metric: str | MetricFn,
    tn: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tp: torch.Tensor,
    beta: float,
    eps: float,
    gmean_squared: bool,
) -> torch.Tensor:
    """The metric (not the loss) from soft counts; elementwise, so per class for (C,) counts."""
    if callable(metric):
        return metric(tn, fp, fn, tp)
    if metric == "accuracy":
        return (tp + tn) / (tn + fp + fn + tp)
    if metric in ("f1", "fbeta"):
        b2 = 1.0 if metric == "f1" else beta * beta
        return (1.0 + b2) * tp / ((1.0 + b2) * tp + b2 * fn + fp + eps)
    y1, y0 = tp + fn, tn + fp
    if metric == "gmean":
        ratio = tp * tn / (y1 * y0 + eps)
        # the clamp keeps the square root's gradient finite at 0 (a G-mean of 0 learns nothing)
        return ratio if gmean_squared else torch.sqrt(ratio.clamp_min(1e-12))
    if metric == "balanced_accuracy":
        return (y0 * tp + y1 * tn) / (2.0 * y1 * y0 + eps)
    if metric == "mcc":
        den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        return (tp * tn - fp * fn) / torch.sqrt(den + eps)
    raise ValueError(f"unknown metric {metric!r}")  # unreachable behind the boundary


def _counts(
    a: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(TN, FP, FN, TP) over dim 0 of amplified predictions ``a`` and 0/1 targets ``y`` (same shape)."""
    if weight is not None:
        w = weight.reshape(-1, *([1] * (a.dim() - 1)))
        a_w, y_w = a * w, y * w
        n = weight.sum()
    else:
        a_w, y_w = a, y
        n = torch.tensor(float(a.shape[0]), dtype=a.dtype, device=a.device)
    tp = (y_w * a).sum(0)
    pred = a_w.sum(0)
    y1 = y_w.sum(0)
    return n - y1 - pred + tp, pred - tp, y1 - tp, tp


class _AmplifiedCounts(torch.autograd.Function):
    """``(pred_k, tp_k) = (sum_i w_i A_ik, sum_i w_i A_ik [y_i = k])`` of one-vs-rest
    ``A_ik = A(sigmoid(x_ik))``, with a hand-written backward (fewer passes over the (B, C)
    logits than autograd's; the metric on the (C,) counts stays in autograd).

    With ``t = 2 sigmoid(x) - 1`` (= tanh(x/2)): ``L (sigmoid(x) - 1/2) = (L/2) t``, so
    ``A = sigmoid((L/2) t)`` and ``dA/dx = A (1 - A) (L/4) (1 - t^2)``; without amplification
    ``A = sigmoid(x)``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, L: float, amplify: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # in-place chains: every fresh (B, C) buffer costs page faults at large B * C
        if amplify:
            t = torch.sigmoid(x).mul_(2.0).sub_(1.0)  # tanh(x / 2), cheaper through sigmoid
            a = t.mul(0.5 * L).sigmoid_()
        else:
            t = None
            a = torch.sigmoid(x)
        a_true = a.gather(1, target[:, None]).squeeze(1)
        if weight is None:
            pred = a.sum(0)
        else:
            pred = weight @ a
            a_true = a_true * weight
        tp = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, target, a_true)
        # dA/dx up to the constant L/4: A (1 - A) (1 - t^2), computed in place over A and t
        deriv = a.addcmul_(a, a, value=-1.0)
        if t is not None:
            deriv.addcmul_(deriv, t.mul_(t), value=-1.0)
        ctx.save_for_backward(deriv, target, weight)
        ctx.scale = 0.25 * L if amplify else 1.0
        return pred, tp

    @staticmethod
    def backward(ctx: Any, grad_pred: torch.Tensor, grad_tp: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        deriv, target, weight = ctx.saved_tensors
        grad = deriv * (grad_pred * ctx.scale)[None, :]
        extra = deriv.gather(1, target[:, None]).squeeze(1) * (grad_tp[target] * ctx.scale)
        if weight is not None:
            grad.mul_(weight[:, None])
            extra = extra * weight
        return grad.scatter_add_(1, target[:, None], extra[:, None]), None, None, None, None


def _anyloss_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    metric: str | MetricFn,
    L: float,
    beta: float,
    eps: float,
    gmean_squared: bool,
    amplify: bool,
    average: str,
) -> torch.Tensor:
    """The batch loss from validated logits (B, C) and targets (B,); vectorised, no one-hot for macro."""
    if average == "binary":
        p = torch.sigmoid(logits[:, 1] - logits[:, 0])  # softmax(logits)[:, 1]
        a = approximation(p, L) if amplify else p
        tn, fp, fn, tp = _counts(a, (target == 1).to(a.dtype), weight)
        return 1.0 - _metric(metric, tn, fp, fn, tp, beta, eps, gmean_squared)
    c = logits.shape[1]
    pred, tp = _AmplifiedCounts.apply(logits, target, weight, L, amplify)
    if weight is None:
        y1 = torch.bincount(target, minlength=c).to(logits.dtype)
        n = torch.tensor(float(logits.shape[0]), dtype=logits.dtype, device=logits.device)
    else:
        y1 = torch.zeros(c, dtype=logits.dtype, device=logits.device).index_add(0, target, weight)
        n = weight.sum()
    tn, fp, fn = n - y1 - pred + tp, pred - tp, y1 - tp
    return 1.0 - _metric(metric, tn, fp, fn, tp, beta, eps, gmean_squared).mean()


# --------------------------------------------------------------------------- validation helpers
def _check_metric(metric: Any, owner: str) -> None:
    if callable(metric):
        return
    if not isinstance(metric, str) or metric not in ANYLOSS_METRICS:
        raise ValueError(f"{owner}: metric must be one of {ANYLOSS_METRICS} or a callable, got {metric!r}")


def _check_weight(weight: torch.Tensor | None, n: int) -> None:
    if weight is None:
        return
    check_sample_weight(weight, n)
    if not bool(weight.sum() > 0):
        raise ValueError(_ZERO_WEIGHT_MESSAGE)


def _check_binary_pair(p: torch.Tensor, y: torch.Tensor, p_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``p`` (N,) / (N, 1) / (N, C) floating and finite, ``y`` of the same shape with values in {0, 1}."""
    if not isinstance(p, torch.Tensor) or not p.is_floating_point():
        raise TypeError(f"{p_name} must be a floating-point torch.Tensor of shape (N,), (N, 1) or (N, C)")
    if p.dim() == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.dim() not in (1, 2):
        raise ValueError(f"{p_name} must have shape (N,), (N, 1) or (N, C), got {tuple(p.shape)}")
    if p.shape[0] == 0:
        raise ValueError(f"empty batch: {p_name} has 0 rows")
    check_finite(p, p_name)
    if not isinstance(y, torch.Tensor):
        raise TypeError("y must be a torch.Tensor of 0/1 values")
    if y.dim() == 2 and y.shape[1] == 1 and p.dim() == 1:
        y = y[:, 0]
    if y.shape != p.shape:
        raise ValueError(f"y must have the shape of {p_name}, {tuple(p.shape)}, got {tuple(y.shape)}")
    if y.is_complex() or not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold only 0 and 1 (binary targets)")
    return p, y


# --------------------------------------------------------------------------- public functions
def soft_confusion_matrix(
    p: torch.Tensor,
    y: torch.Tensor,
    L: float = 73.0,
    amplify: bool = True,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's soft confusion matrix ``(TN, FP, FN, TP)`` of a batch.

    Args:
        p: (N,) probabilities of the positive class (or (N, C), one binary problem per column).
            Values outside [0, 1] are not rejected (A is defined everywhere), but mean nothing.
        y: 0/1 targets of the same shape (any real dtype, or bool).
        L: amplification of ``A(p) = sigmoid(L (p - 0.5))``, > 0 (paper default 73).
        amplify: ``False`` uses ``p`` itself (the "pure" soft confusion matrix).
        weight: optional (N,) non-negative per-sample weights.

    Returns:
        ``(TN, FP, FN, TP)``, scalars for (N,) inputs, (C,) for (N, C); ``TN + FP + FN + TP``
        equals N (or the weight sum).
    """
    p, y = _check_binary_pair(p, y, "p")
    validate_params(_PARAMETER_CONSTRAINTS, {"L": L, "amplify": amplify}, owner="soft_confusion_matrix")
    _check_weight(weight, p.shape[0])
    p = upcast_low_precision(p)
    a = approximation(p, float(L)) if amplify else p
    return _counts(a, y.to(a.dtype), None if weight is None else weight.to(a.dtype))


def anyloss_binary(
    p: torch.Tensor,
    y: torch.Tensor,
    metric: str | MetricFn = "f1",
    L: float = 73.0,
    beta: float = 1.0,
    eps: float = 1e-5,
    gmean_squared: bool = True,
    amplify: bool = True,
    from_logits: bool = False,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The paper's binary AnyLoss, ``1 - metric(soft confusion matrix)``, a scalar for the batch.

    Args:
        p: (N,) or (N, 1) probabilities of the positive class (sigmoid outputs, as in the
            reference code), or logits with ``from_logits=True`` (then ``p = sigmoid(p)``).
        y: (N,) or (N, 1) targets in {0, 1}.
        metric: a name of :data:`ANYLOSS_METRICS` or ``metric(tn, fp, fn, tp) -> tensor``.
        L: amplification, > 0 (paper default 73).
        beta: the F-beta weight (``metric="fbeta"`` only; ``"f1"`` is beta = 1).
        eps: the smoothing constant added to denominators (paper 1e-5), >= 0.
        gmean_squared: ``"gmean"`` as the reference code's squared G-mean (default) or the
            paper's ``sqrt(TPR * TNR)``.
        amplify: ``False`` gives the "pure" soft-metric surrogate (``A(p) = p``).
        from_logits: treat ``p`` as logits.
        weight: optional (N,) per-sample weights of the counts (an extension).
    """
    p, y = _check_binary_pair(p, y, "p")
    if p.dim() != 1:
        raise ValueError(f"p must have shape (N,) or (N, 1) for the binary loss, got {tuple(p.shape)}")
    owner = "anyloss_binary"
    _check_metric(metric, owner)
    params = {"L": L, "beta": beta, "eps": eps, "gmean_squared": gmean_squared, "amplify": amplify}
    validate_params(_PARAMETER_CONSTRAINTS, {**params, "from_logits": from_logits}, owner=owner)
    _check_weight(weight, p.shape[0])
    p = upcast_low_precision(p)
    if from_logits:
        p = torch.sigmoid(p)
    a = approximation(p, float(L)) if amplify else p
    tn, fp, fn, tp = _counts(a, y.to(a.dtype), None if weight is None else weight.to(a.dtype))
    return 1.0 - _metric(metric, tn, fp, fn, tp, float(beta), float(eps), gmean_squared)


def any_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    metric: str | MetricFn = "f1",
    L: float = 73.0,
    beta: float = 1.0,
    eps: float = 1e-5,
    gmean_squared: bool = True,
    amplify: bool = True,
    average: str = "macro",
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """AnyLoss on classification logits (B, C) and integer targets (B,), a scalar for the batch.

    ``average="binary"`` (C = 2): the paper's loss with ``p = softmax(logits)[:, 1]``, class 1
    positive. ``average="macro"``: one-vs-rest (an extension, not in the paper), ``p_ik =
    sigmoid(logits_ik)`` and ``1 - mean_k metric_k`` over the C columns. ``reduction`` must be
    ``"mean"`` (accepted for the common loss signature; a batch metric has no per-example
    terms). Other arguments as in :func:`anyloss_binary`.
    """
    owner = "any_loss"
    check_logits_target(logits, target)
    _check_metric(metric, owner)
    params = {"L": L, "beta": beta, "eps": eps, "gmean_squared": gmean_squared, "amplify": amplify}
    validate_params(_PARAMETER_CONSTRAINTS, {**params, "average": average}, owner=owner)
    check_batch_reduction(reduction, owner, _BATCH_REASON)
    if average == "binary" and logits.shape[1] != 2:
        raise ValueError(f"{owner}: average='binary' needs logits with 2 columns, got {logits.shape[1]}")
    _check_weight(weight, logits.shape[0])
    x = upcast_low_precision(logits)
    w = None if weight is None else weight.to(x.dtype)
    return _anyloss_logits(x, target, w, metric, float(L), float(beta), float(eps), gmean_squared, amplify, average)


# --------------------------------------------------------------------------- module
class AnyLoss(BatchLevelLoss):
    """AnyLoss (Han, Moniz & Chawla, 2024): ``1 - metric`` of the batch's soft confusion matrix
    built from amplified probabilities ``A(p) = sigmoid(L (p - 0.5))``.

    ``forward(logits (B, C), target (B,), weight=None) -> scalar``. A batch-level loss:
    ``reduction`` is ``"mean"`` only (the batch metric), and per-sample ``weight`` weights the
    confusion counts. Equals :func:`any_loss` with the same arguments.

    Args:
        metric: "accuracy", "f1" (default), "fbeta", "gmean", "balanced_accuracy", "mcc" or a
            callable ``metric(tn, fp, fn, tp)``.
        L: amplification (paper default 73).
        beta: F-beta weight for ``metric="fbeta"``.
        eps: denominator smoothing (paper 1e-5).
        gmean_squared: squared G-mean as in the reference code (default) or ``sqrt(TPR TNR)``.
        amplify: ``False``: the "pure" soft metric (``A(p) = p``), the paper's ablation.
        average: "macro" (one-vs-rest per-class sigmoid, averaged; an extension, works for any
            C) or "binary" (C = 2, the paper's loss on ``softmax(logits)[:, 1]``).
        reduction: "mean" only.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name]
        for name in ("reduction", "L", "beta", "eps", "gmean_squared", "amplify", "average")
    }

    def __init__(
        self,
        metric: str | MetricFn = "f1",
        L: float = 73.0,
        beta: float = 1.0,
        eps: float = 1e-5,
        gmean_squared: bool = True,
        amplify: bool = True,
        average: str = "macro",
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_metric(metric, type(self).__name__)
        self._validate_params(L=L, beta=beta, eps=eps, gmean_squared=gmean_squared, amplify=amplify, average=average)
        self.metric = metric
        self.L, self.beta, self.eps = float(L), float(beta), float(eps)
        self.gmean_squared, self.amplify, self.average = gmean_squared, amplify, average

    batch_reason = _BATCH_REASON

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_logits_target(logits, target)
        if self.average == "binary" and logits.shape[1] != 2:
            raise ValueError(f"AnyLoss: average='binary' needs logits with 2 columns, got {logits.shape[1]}")
        _check_weight(weight, logits.shape[0])
        x = upcast_low_precision(logits)
        w = None if weight is None else weight.to(x.dtype)
        return _anyloss_logits(
            x, target, w, self.metric, self.L, self.beta, self.eps, self.gmean_squared, self.amplify, self.average
        )

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, L={self.L}, average={self.average!r}, amplify={self.amplify}"


# --------------------------------------------------------------------------- naive reference (bench)
def _reference_anyloss() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The reference code's F1 AnyLoss written naively on dense one-hot targets, one-vs-rest
    and macro-averaged (``TN = N - sum y - sum yhat + sum y*yhat``, F1 denominator
    ``beta^2 * y1 + sum yhat + s``); for ``paperzoo bench losses``."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        yhat = 1.0 / (1.0 + torch.exp(-73.0 * (torch.sigmoid(logits) - 0.5)))
        tp = (y * yhat).sum(0)
        f1 = 2.0 * tp / (y.sum(0) + yhat.sum(0) + 1e-5)
        return 1.0 - f1.mean()

    return loss
