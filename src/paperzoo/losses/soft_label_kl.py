"""UniME-V2's symmetric soft-label KL contrastive loss (Gu et al., "UniME-V2: MLLM-as-a-Judge for
Universal Multimodal Embedding Learning", AAAI 2026, the training-objective section).

For each query ``i`` the embedding model scores its own candidates ``[c+, c-_1, ..., c-_K]`` (no
in-batch negatives) and an MLLM judge scores the same candidates with its "Yes" probability
``s in [0, 1]``. Both rows become distributions with one temperature ``tau``::

    P_i = softmax(model_scores_i / tau)      Q_i = softmax(judge_scores_i / tau)
    L   = (1/2) * mean_i [ KL(Q_i || P_i) + KL(P_i || Q_i) ]

The arithmetic follows the official ``SoftLabelSoftKLContrastiveLoss``: the ``eps`` (1e-8) is added
inside the log of each KL's *input* argument only (``log(P + eps)`` in KL(Q || P), ``log(Q + eps)``
in KL(P || Q)); the target's own log is exact. ``eps = 0`` gives the exact formula. With the
default ``reduction="mean"`` the value equals the reference's two ``F.kl_div(..., "batchmean")``
terms. The judge scores are data (no gradient is needed through them, but they are not detached,
so the loss is also symmetric as a function). The backward is written by hand (one fused pass
per input, first order only), so forward + backward costs a few soft cross-entropies.

A vectorised module over two softmaxes; the sentence-transformers wrapper that builds
``model_scores`` from (anchor, positive, negative_1..K) columns is
:class:`paperzoo.embeddings.judge_soft_label.JudgeSoftLabelKLLoss`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import (
    REDUCTIONS,
    Constraint,
    Interval,
    Options,
    check_finite,
    check_sample_weight,
    validate_params,
)
from paperzoo.losses.base import reduce_loss, upcast_low_precision

__all__ = [
    "SymmetricSoftLabelKLLoss",
    "deinterleave_reference_layout",
    "interleave_reference_layout",
    "symmetric_soft_label_kl",
    "symmetric_soft_label_kl_parts",
]

_CONSTRAINTS: dict[str, list[Constraint]] = {
    "temperature": [Interval(float, 0, math.inf, closed="neither")],
    "eps": [Interval(float, 0, math.inf, closed="left")],
    "reduction": [Options(REDUCTIONS)],
}


def _check_scores(model_scores: torch.Tensor, judge_scores: torch.Tensor) -> None:
    for name, t in (("model_scores", model_scores), ("judge_scores", judge_scores)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, 1 + K)")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (B, 1 + K), got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"empty batch: {name} has 0 rows")
    if model_scores.shape[1] < 2:
        raise ValueError(
            f"model_scores must have at least 2 candidates (columns: positive + negatives), got {model_scores.shape[1]}"
        )
    if judge_scores.shape != model_scores.shape:
        raise ValueError(
            f"judge_scores must have the shape of model_scores {tuple(model_scores.shape)}, "
            f"got {tuple(judge_scores.shape)}"
        )
    check_finite(model_scores, "model_scores")
    check_finite(judge_scores, "judge_scores")


def _log_softmax_and_softmax(x: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_softmax(x / tau), softmax(x / tau))`` row-wise.

    The probabilities are ``exp(max(log_softmax, floor))`` with ``floor`` = -80 in float32 (-700 in
    float64): probabilities below ``e^floor`` (1.8e-35 in float32) are raised to it, which changes
    the loss and its gradient by less than ``C * e^floor * |log e^floor|`` (far below the dtype's
    resolution) and keeps subnormal numbers, whose arithmetic is many times slower on CPUs, out of
    every later pass (a small temperature produces them in bulk).
    """
    log_p = F.log_softmax(x / tau, dim=1)
    floor = -700.0 if log_p.dtype == torch.float64 else -80.0
    return log_p, log_p.clamp(min=floor).exp_()


class _SymmetricKLFn(torch.autograd.Function):
    """Per-row ``(KL(Q || P), KL(P || Q))`` with a fused, hand-written backward.

    With ``P = softmax(x / tau)``, ``Q = softmax(j / tau)``, ``b = log Q - log(P + eps)``,
    ``a = log P - log(Q + eps)``, ``r = Q P / (P + eps)`` and ``s = P Q / (Q + eps)``, the
    gradients of ``L = w1 KL(Q || P) + w2 KL(P || Q)`` per row are::

        dL/dx = (w1 (P sum(r) - r) + w2 P (a - KL(P || Q))) / tau
        dL/dj = (w2 (Q sum(s) - s) + w1 Q (b - KL(Q || P))) / tau

    (first order only; tested against autograd of the composed formula and by gradcheck).
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, j: torch.Tensor, tau: float, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_p, p = _log_softmax_and_softmax(x, tau)
        log_q, q = _log_softmax_and_softmax(j, tau)
        # b = log Q - log(P + eps), a = log P - log(Q + eps), built in place (few large allocations)
        b = (p + eps).log_().neg_().add_(log_q) if eps > 0 else log_q - log_p
        a = (q + eps).log_().neg_().add_(log_p) if eps > 0 else log_p - log_q
        kl_qp = _rowdot(q, b)
        kl_pq = _rowdot(p, a)
        ctx.save_for_backward(p, q, a, b, kl_qp, kl_pq)
        ctx.tau, ctx.eps = tau, eps
        return kl_qp, kl_pq

    @staticmethod
    def backward(ctx: Any, g_qp: torch.Tensor, g_pq: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, q, a, b, kl_qp, kl_pq = ctx.saved_tensors
        w1, w2 = (g_qp / ctx.tau)[:, None], (g_pq / ctx.tau)[:, None]
        gx = gj = None
        if ctx.needs_input_grad[0]:
            r = torch.mul(q, p).div_(p + ctx.eps) if ctx.eps > 0 else q
            gx = (a - kl_pq[:, None]).mul_(w2).add_(w1 * r.sum(dim=1, keepdim=True)).mul_(p).sub_(r * w1)
        if ctx.needs_input_grad[1]:
            s = torch.mul(p, q).div_(q + ctx.eps) if ctx.eps > 0 else p
            gj = (b - kl_qp[:, None]).mul_(w1).add_(w2 * s.sum(dim=1, keepdim=True)).mul_(q).sub_(s * w2)
        return gx, gj, None, None


def _rowdot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products (B,) of two (B, C) tensors."""
    return (u * v).sum(dim=1)


def _parts(
    model_scores: torch.Tensor, judge_scores: torch.Tensor, temperature: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (KL(Q || P), KL(P || Q)) of validated float32/float64 inputs, each (B,)."""
    judge_scores = judge_scores.to(model_scores.dtype)
    return _SymmetricKLFn.apply(model_scores, judge_scores, float(temperature), float(eps))


def _parts_autograd(
    model_scores: torch.Tensor, judge_scores: torch.Tensor, temperature: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same two halves composed from torch ops (autograd backward), for the tests."""
    log_p = F.log_softmax(model_scores / temperature, dim=1)
    log_q = F.log_softmax(judge_scores.to(log_p.dtype) / temperature, dim=1)
    p, q = log_p.exp(), log_q.exp()
    log_p_in, log_q_in = (torch.log(p + eps), torch.log(q + eps)) if eps > 0 else (log_p, log_q)
    return (q * (log_q - log_p_in)).sum(dim=1), (p * (log_p - log_q_in)).sum(dim=1)


def symmetric_soft_label_kl_parts(
    model_scores: torch.Tensor, judge_scores: torch.Tensor, temperature: float = 0.02, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves per query: ``(KL(Q_i || P_i), KL(P_i || Q_i))``, each (B,), with the
    reference's ``eps`` placement (see the module docstring)."""
    validate_params(_CONSTRAINTS, {"temperature": temperature, "eps": eps}, owner="symmetric_soft_label_kl_parts")
    _check_scores(model_scores, judge_scores)
    return _parts(upcast_low_precision(model_scores), upcast_low_precision(judge_scores), temperature, eps)


def symmetric_soft_label_kl(
    model_scores: torch.Tensor,
    judge_scores: torch.Tensor,
    temperature: float = 0.02,
    eps: float = 1e-8,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """UniME-V2's loss ``(KL(Q || P) + KL(P || Q)) / 2`` per query, reduced.

    Args:
        model_scores: (B, 1 + K) the model's similarities (cosines) of each query to its own
            positive (any column, usually 0) and K hard negatives.
        judge_scores: (B, 1 + K) the judge's scores of the same candidates, used as logits
            (UniME-V2: Yes-probabilities in [0, 1]; any finite reals are accepted).
        temperature: ``tau`` of both softmaxes (the paper trains with 0.02).
        eps: added inside the log of each KL's input argument, as in the official code; 0 gives
            the exact formula.
        reduction: "mean" (the reference's ``batchmean``), "sum" or "none".
        weight: optional (B,) per-query weights (the weighted mean for ``"mean"``).

    Float16 / bfloat16 inputs are computed in float32; float64 stays float64.
    """
    validate_params(
        _CONSTRAINTS, {"temperature": temperature, "eps": eps, "reduction": reduction}, owner="symmetric_soft_label_kl"
    )
    _check_scores(model_scores, judge_scores)
    if weight is not None:
        check_sample_weight(weight, model_scores.shape[0])
    kl_qp, kl_pq = _parts(upcast_low_precision(model_scores), upcast_low_precision(judge_scores), temperature, eps)
    return reduce_loss(0.5 * (kl_qp + kl_pq), reduction, weight)


class SymmetricSoftLabelKLLoss(nn.Module):
    """Module form of :func:`symmetric_soft_label_kl`:
    ``forward(model_scores (B, 1 + K), judge_scores (B, 1 + K), weight=None)``.

    Args:
        temperature: ``tau`` (default 0.02, the paper's training value; the official class
            default 0.01 is overridden by its trainer).
        eps: the reference's 1e-8 inside the logs; 0 for the exact formula.
        reduction: "mean" (default), "sum" or "none".
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = _CONSTRAINTS

    def __init__(self, temperature: float = 0.02, eps: float = 1e-8, reduction: str = "mean") -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"temperature": temperature, "eps": eps, "reduction": reduction},
            owner=type(self).__name__,
        )
        self.temperature, self.eps, self.reduction = float(temperature), float(eps), reduction

    def forward(
        self, model_scores: torch.Tensor, judge_scores: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return symmetric_soft_label_kl(model_scores, judge_scores, self.temperature, self.eps, self.reduction, weight)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, eps={self.eps}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- the official batch layout
def interleave_reference_layout(
    query: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official data loader's layout, for parity with its loss: each query becomes
    ``1 + K/2`` (x, y) pairs ``(q, c+), (c-_1, c-_2), (c-_3, c-_4), ...`` with x-scores
    ``[0, s-_1, s-_3, ...]`` and y-scores ``[s+, s-_2, s-_4, ...]``.

    Args: ``query`` (B, D), ``positive`` (B, D), ``negatives`` (B, K, D) with K even,
    ``positive_scores`` (B,), ``negative_scores`` (B, K).
    Returns: ``x``, ``y`` (B (1 + K/2), D) and ``x_scores``, ``y_scores`` (B (1 + K/2),).
    """
    b, k, d = negatives.shape
    if k % 2:
        raise ValueError(f"negatives must hold an even number K of hard negatives per query, got K = {k}")
    x = torch.cat([query[:, None], negatives[:, 0::2]], dim=1).reshape(-1, d)
    y = torch.cat([positive[:, None], negatives[:, 1::2]], dim=1).reshape(-1, d)
    zero = torch.zeros_like(positive_scores)[:, None]
    x_scores = torch.cat([zero, negative_scores[:, 0::2]], dim=1).reshape(-1)
    y_scores = torch.cat([positive_scores[:, None], negative_scores[:, 1::2]], dim=1).reshape(-1)
    return x, y, x_scores, y_scores


def deinterleave_reference_layout(
    x: torch.Tensor, y: torch.Tensor, x_scores: torch.Tensor, y_scores: torch.Tensor, num_negatives: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Undo :func:`interleave_reference_layout` as the official loss does (stride
    ``1 + K/2``): returns ``query`` (B, D), ``candidates`` (B, 1 + K, D) ordered
    ``[c+, c-_1, ..., c-_K]`` and ``judge_scores`` (B, 1 + K) ``[s+, s-_1, ..., s-_K]``."""
    if num_negatives % 2 or num_negatives < 2:
        raise ValueError(f"num_negatives must be even and >= 2, got {num_negatives}")
    step = num_negatives // 2 + 1
    if x.shape[0] % step or x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape with a multiple of {step} rows, got {tuple(x.shape)}")
    b, d = x.shape[0] // step, x.shape[1]
    xs, ys = x.reshape(b, step, d), y.reshape(b, step, d)
    negatives = torch.stack([xs[:, 1:], ys[:, 1:]], dim=2).reshape(b, num_negatives, d)
    candidates = torch.cat([ys[:, :1], negatives], dim=1)
    sx, sy = x_scores.reshape(b, step), y_scores.reshape(b, step)
    judge = torch.cat([sy[:, :1], torch.stack([sx[:, 1:], sy[:, 1:]], dim=2).reshape(b, num_negatives)], dim=1)
    return xs[:, 0], candidates, judge


# --------------------------------------------------------------------------- naive reference
def _reference_symmetric_soft_label_kl(
    model_scores: torch.Tensor, judge_scores: torch.Tensor, temperature: float = 0.02
) -> torch.Tensor:
    """The official ``SoftLabelSoftKLContrastiveLoss.forward``, written as it is (two softmaxes,
    ``log(. + 1e-8)``, two ``F.kl_div(..., "batchmean")``), for parity tests and the benchmark."""
    q = F.softmax(judge_scores / temperature, dim=-1)
    p = F.softmax(model_scores / temperature, dim=-1)
    kl_qp = F.kl_div(torch.log(p + 1e-8), q, reduction="batchmean", log_target=False)
    kl_pq = F.kl_div(torch.log(q + 1e-8), p, reduction="batchmean", log_target=False)
    return 0.5 * (kl_qp + kl_pq)


def _bench_reference() -> nn.Module:
    """Zero-argument factory of the naive reference for ``paperzoo bench losses``."""
    return _ReferenceModule()


class _ReferenceModule(nn.Module):
    def forward(self, model_scores: torch.Tensor, judge_scores: torch.Tensor) -> torch.Tensor:
        return _reference_symmetric_soft_label_kl(model_scores, judge_scores)
