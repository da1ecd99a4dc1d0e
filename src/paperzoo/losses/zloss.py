"""The Z-loss of de Brébisson & Vincent (2016), "The Z-loss: a shift and scale invariant
classification loss belonging to the Spherical Family" (arXiv:1604.08859).

The raw outputs ``o`` (N, D) of the last layer are standardised across classes and a shifted,
scaled softplus is applied to the standardised score of the target class (the Z-loss as the
paper defines it)::

    S1 = sum_k o_k    S2 = sum_k o_k**2    mu = S1 / D    sigma = sqrt(S2 / D - mu**2)
    z_c = (o_c - mu) / sigma
    L_Z(o, c) = (1 / a) * softplus(a * (b - z_c))

The loss depends on ``o`` only through ``(o_c, S1, S2)``: as the paper shows, it belongs to the
*spherical family* of Vincent et al. (2015), whose exact gradient for a linear output layer can
be computed in O(d^2) per example independently of the number of classes D.

Not to be confused with the PaLM / T5X / OLMo "z-loss" (an auxiliary penalty
``1e-4 * log(Z)**2`` on the softmax normaliser): that is a different, unrelated quantity, and
nothing here computes it.

Numerical safety (an implementation choice, not from the paper): ``sigma = sqrt(var + eps)``
with ``var`` clamped at 0, so that all-equal outputs (``var = 0``, e.g. a zero-initialised last
layer) give a finite loss and a finite gradient. ``eps=None`` picks ``1e-12`` for float64
and ``1e-8`` otherwise; half and bfloat16 inputs are computed in float32. ``eps`` breaks exact
scale invariance only for outputs whose per-row variance is comparable to ``eps``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from paperzoo._validation import Constraint, Interval, check_finite, check_logits_target, validate_params
from paperzoo.losses.base import ClassificationLoss, reduce_loss, upcast_low_precision

__all__ = ["ZLoss", "spherical_stats", "z_loss", "z_loss_from_stats"]

_EPS_FLOAT64 = 1e-12
_EPS_DEFAULT = 1e-8

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "reduction": ClassificationLoss._parameter_constraints["reduction"],
    "a": [Interval(float, 0, math.inf, closed="neither")],
    "b": [Interval(float, -math.inf, math.inf, closed="neither")],
    "eps": [None, Interval(float, 0, math.inf, closed="neither")],
    "num_classes": [Interval(int, 2, math.inf, closed="left")],
}
"""Scalar parameters of the functions of this module (see :func:`paperzoo._validation.validate_params`)."""


def _resolve_eps(eps: float | None, dtype: torch.dtype) -> float:
    if eps is not None:
        return float(eps)
    return _EPS_FLOAT64 if dtype == torch.float64 else _EPS_DEFAULT


# --------------------------------------------------------------------------- core (trusted inputs)
def _softplus_head(z_c: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``(1/a) * softplus(a * (b - z_c))``, with torch's stable softplus."""
    return F.softplus(a * (b - z_c)) / a


class _TargetZScore(torch.autograd.Function):
    """``z_c = (o_c - mu) / sigma`` per row, with a hand-written backward.

    Forward: one ``var_mean`` pass (population variance, stable). Backward, with ``g`` the
    incoming gradient of ``z_c``: ``dL/do_j = (g / sigma) * ([j = c] - 1/D - z_c (o_j - mu) /
    (sigma D))``, built in place from one ``o - mu`` buffer, so the pass costs about what
    ``F.cross_entropy``'s does (autograd through the composed ops makes several B x D temporaries
    and was ~2.5x slower at B = 4096, D = 1000). First-order only (no double backward)."""

    @staticmethod
    def forward(ctx, o: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        var, mu = torch.var_mean(o, dim=1, correction=0)
        sigma = torch.sqrt(var + eps)
        z_c = (o.gather(1, target[:, None]).squeeze(1) - mu) / sigma
        ctx.save_for_backward(o, target, mu, sigma, z_c)
        return z_c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        o, target, mu, sigma, z_c = ctx.saved_tensors
        d = o.shape[1]
        g = grad / sigma
        out = (o - mu[:, None]).mul_((-g * z_c / (sigma * d))[:, None]).sub_((g / d)[:, None])
        return out.scatter_add_(1, target[:, None], g[:, None]), None, None


def _z_loss_dense(o: torch.Tensor, target: torch.Tensor, a: float, b: float, eps: float) -> torch.Tensor:
    """Per-example Z-loss from dense outputs (:class:`_TargetZScore`, then the softplus head)."""
    return _softplus_head(_TargetZScore.apply(o, target, eps), a, b)


def _z_loss_stats(
    o_c: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, num_classes: int, a: float, b: float, eps: float
) -> torch.Tensor:
    """Per-example Z-loss from the sufficient statistics (o_c, S1, S2); ``var`` clamped at 0."""
    mu = s1 / num_classes
    var = torch.clamp(s2 / num_classes - mu * mu, min=0.0)
    sigma = torch.sqrt(var + eps)
    z_c = (o_c - mu) / sigma
    return _softplus_head(z_c, a, b)


# --------------------------------------------------------------------------- public functions
def z_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    a: float = 1.0,
    b: float = 1.0,
    reduction: str = "mean",
    eps: float | None = None,
) -> torch.Tensor:
    """Z-loss of de Brébisson & Vincent (2016) (dense path).

    Args:
        logits: (N, D) raw outputs of the last layer, D >= 2.
        target: (N,) integer class indices in [0, D).
        a: softplus sharpness, > 0 (a -> inf gives the hinge ``max(0, b - z_c)``).
        b: target location of the standardised target score z_c; note
            ``z_c <= sqrt(D - 1)``, so choose b relative to that bound.
        reduction: "mean" (default), "sum" or "none" (per-example losses, shape (N,)).
        eps: added to the per-row variance before the square root; ``None`` gives 1e-12 for
            float64 and 1e-8 otherwise (an implementation choice, not from the paper).

    Shift and scale invariant per row: ``z_loss(s * o + t, c) == z_loss(o, c)`` for s > 0.
    This is NOT the PaLM "z-loss" penalty on log of the softmax normaliser.
    """
    check_logits_target(logits, target)
    validate_params(_PARAMETER_CONSTRAINTS, {"a": a, "b": b, "reduction": reduction, "eps": eps}, owner="z_loss")
    o = upcast_low_precision(logits)
    return reduce_loss(_z_loss_dense(o, target, float(a), float(b), _resolve_eps(eps, o.dtype)), reduction)


def z_loss_from_stats(
    o_c: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    num_classes: int,
    a: float = 1.0,
    b: float = 1.0,
    eps: float | None = None,
) -> torch.Tensor:
    """Per-example Z-loss from the spherical-family sufficient statistics.

    Args:
        o_c: (N,) output of the target class.
        s1: (N,) sum of the outputs over the D classes, ``S1 = sum_k o_k``.
        s2: (N,) sum of squared outputs, ``S2 = sum_k o_k**2``.
        num_classes: D >= 2.
        a, b, eps: as in :func:`z_loss`.

    Returns the unreduced (N,) losses. ``sigma = sqrt(max(S2/D - mu**2, 0) + eps)`` (the S1/S2
    formula, as the spherical path requires; it loses precision when |mu| >> sigma, unlike the
    centred formula of the dense path). Autograd through this function gives the gradients
    w.r.t. (o_c, S1, S2) that the spherical algorithm needs (the tests check them against the
    closed form derived from the definition).
    """
    for name, t in (("o_c", o_c), ("s1", s1), ("s2", s2)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N,)")
        if t.dim() != 1:
            raise ValueError(f"{name} must have shape (N,), got {tuple(t.shape)}")
        check_finite(t, name)
    if not (o_c.shape == s1.shape == s2.shape):
        raise ValueError(
            f"o_c, s1 and s2 must have the same shape (N,), got {tuple(o_c.shape)}, {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    if o_c.shape[0] == 0:
        raise ValueError("empty batch: o_c has 0 entries")
    validate_params(
        _PARAMETER_CONSTRAINTS, {"num_classes": num_classes, "a": a, "b": b, "eps": eps}, owner="z_loss_from_stats"
    )
    o_c, s1, s2 = (upcast_low_precision(t) for t in (o_c, s1, s2))
    return _z_loss_stats(o_c, s1, s2, num_classes, float(a), float(b), _resolve_eps(eps, o_c.dtype))


def spherical_stats(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sufficient statistics (S1, S2) of the outputs ``o = h W^T + bias`` without forming o
    (Vincent et al., 2015; the bias terms are derived here).

    With the column sum ``w_bar = W^T 1`` (d,) and the Gram matrix ``Q = W^T W`` (d, d)::

        S1 = h . w_bar + sum(bias)
        S2 = h^T Q h + 2 (W^T bias) . h + ||bias||^2

    Given ``w_bar`` and ``Q`` (which a spherical layer maintains), this costs O(d^2) per
    example, independent of D; here they are recomputed from ``weight`` (O(D d^2) once per
    call, shared by the batch).

    Args:
        h: (N, d) hidden features.
        weight: (D, d) output weight matrix (``nn.Linear.weight`` layout).
        bias: optional (D,) output bias.

    Returns:
        (S1, S2), each of shape (N,).
    """
    if not isinstance(h, torch.Tensor) or not h.is_floating_point() or h.dim() != 2:
        raise ValueError(f"h must be a floating-point tensor of shape (N, d), got {getattr(h, 'shape', type(h))}")
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point() or weight.dim() != 2:
        raise ValueError(
            f"weight must be a floating-point tensor of shape (D, d), got {getattr(weight, 'shape', type(weight))}"
        )
    if weight.shape[1] != h.shape[1]:
        raise ValueError(f"weight must have shape (D, {h.shape[1]}) to match h, got {tuple(weight.shape)}")
    check_finite(h, "h")
    check_finite(weight, "weight")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {getattr(bias, 'shape', type(bias))}")
        check_finite(bias, "bias")
    w_bar = weight.sum(dim=0)  # (d,)
    gram = weight.T @ weight  # (d, d)
    s1 = h @ w_bar
    s2 = ((h @ gram) * h).sum(dim=1)
    if bias is not None:
        s1 = s1 + bias.sum()
        s2 = s2 + 2.0 * (h @ (weight.T @ bias)) + bias.pow(2).sum()
    return s1, s2


# --------------------------------------------------------------------------- module
class ZLoss(ClassificationLoss):
    """Z-loss (de Brébisson & Vincent, 2016): a shift- and scale-invariant
    classification loss of the spherical family, ``(1/a) * softplus(a * (b - z_c))`` on the
    z-score ``z_c`` of the target output across classes.

    NOT the PaLM / T5X "z-loss" auxiliary penalty ``1e-4 * log(Z)**2``; the two are unrelated.

    Args:
        a: softplus sharpness, > 0. Default 1.0 (a toolkit choice; the paper tunes (a, b) per
            task on validation data and its values are not confirmed).
        b: target location for z_c (z_c <= sqrt(D - 1)). Default 1.0 (toolkit choice).
        reduction: "mean" (default), "sum" or "none".
        eps: variance floor inside the square root; ``None`` = 1e-12 (float64) / 1e-8 (else).

    ``forward(logits (N, D), target (N,), weight=None) -> Tensor`` (see
    :class:`~paperzoo.losses.ClassificationLoss` for per-sample weights and dtypes); without
    weights it equals :func:`z_loss`. Rank classes by the logits at inference (the z-transform
    is monotone per row); no probabilities are implied.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("reduction", "a", "b", "eps")
    }

    def __init__(self, a: float = 1.0, b: float = 1.0, reduction: str = "mean", eps: float | None = None) -> None:
        super().__init__(reduction)
        self._validate_params(a=a, b=b, eps=eps)
        self.a = float(a)
        self.b = float(b)
        self.eps = eps

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _z_loss_dense(logits, target, self.a, self.b, _resolve_eps(self.eps, logits.dtype))

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, reduction={self.reduction!r}, eps={self.eps}"
