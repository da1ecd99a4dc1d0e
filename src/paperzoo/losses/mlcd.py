"""The multi-label cluster-discrimination loss of An et al. (ECCV 2024), "Multi-label Cluster
Discrimination for Visual Representation Learning" (MLCD, arXiv:2407.17331; official repository
``deepglint/unicom``, which does not release the pre-training loss: the loss is written from the
paper's equations), and the pairwise multi-label loss it extends.

For one sample with similarities ``s`` to the (sampled) class centres, positive set ``P`` (its
``l`` nearest cluster centres) and negative set ``N``:

* MLC, the pairwise "every negative below every positive" loss (Circle-loss style)::

      L_MLC  = log(1 + sum_{j in N} exp(s_j) * sum_{i in P} exp(-s_i))

* MLCD adds "positives above 0" and "negatives below 0" inside the logarithm, which then
  factorises into an independent positive and negative term::

      L_MLCD = log(1 + sum_{i in P} exp(-s_i)) + log(1 + sum_{j in N} exp(s_j))
             = log(1 + S_n S_p + S_p + S_n),   S_p = sum_P exp(-s_i),  S_n = sum_N exp(s_j)

Both are computed with ``logsumexp`` (stable at any scale). ``scale`` and ``margin`` (whether the
paper scales the cosine similarities and adds a margin is unconfirmed; defaults 1 and 0 are the
formula as stated) transform the similarities first: ``scale * (s - margin)`` for positives and
``scale * (s + margin)`` for negatives. An empty positive or negative set contributes 0.

Targets are the multi-hot (or bool) positive mask, so both are
:class:`~paperzoo.losses.base.MultiLabelLoss` es with per-example losses, reductions and weights.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from paperzoo._validation import REDUCTIONS, Constraint, Interval, Options, check_logits_multihot, validate_params
from paperzoo.losses.base import MultiLabelLoss, reduce_loss, upcast_low_precision

__all__ = ["MLCDLoss", "MLCLoss", "mlc_loss", "mlcd_loss"]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "reduction": [Options(REDUCTIONS)],
    "scale": [Interval(float, 0, math.inf, closed="neither")],
    "margin": [Interval(float, -math.inf, math.inf, closed="neither")],
}


class _MLCDFunction(torch.autograd.Function):
    """Per-example MLCD losses of the similarities ``s`` (N, K) with positive mask ``pos``:
    ``log(1 + sum_P e^t) + log(1 + sum_N e^t)`` with ``t = -scale (s - m)`` on positives and
    ``scale (s + m)`` on negatives; with ``pairwise`` the MLC losses
    ``softplus(log sum_P e^t + log sum_N e^t)`` (0 for an empty set).

    One exponential pass, shifted by each row's per-set maximum (clamped at 0, the ``1`` of each
    sum) so that no set underflows against the other, and a closed-form backward,
    ``dL/dt = e^{t - L_set}``. Dense (N, K) work happens in place on one buffer (the allocation of
    (N, K) temporaries dominates at B = 4096, K = 1000); the positives are handled sparsely.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, s: torch.Tensor, pos: torch.Tensor, scale: float, margin: float, pairwise: bool
    ) -> torch.Tensor:
        n = s.shape[0]
        rows, cols = pos.nonzero(as_tuple=True)
        t = s * scale
        t[rows, cols] = -t[rows, cols]
        if margin:
            t.add_(scale * margin)
        ninf = torch.full((n,), -math.inf, dtype=s.dtype, device=s.device)
        t_pos = t[rows, cols]
        mp = ninf.scatter_reduce(0, rows, t_pos, reduce="amax", include_self=True)
        row_max = t.amax(dim=1)
        mn = row_max.clone()
        tied = mp >= row_max  # the row's maximum may be a positive: the negatives' maximum, exactly
        if bool(tied.any()):
            sub = t[tied].masked_fill(pos[tied], -math.inf)
            mn[tied] = sub.amax(dim=1)
        if pairwise:  # shifts = the per-set maxima (0 for an empty set, whose loss is 0)
            has = torch.isfinite(mp) & torch.isfinite(mn)
            mp, mn = torch.where(torch.isfinite(mp), mp, 0.0), torch.where(torch.isfinite(mn), mn, 0.0)
        else:  # shifts clamped at 0: the 1 of each sum
            mp, mn = mp.clamp(min=0.0), mn.clamp(min=0.0)
        e = t.sub_(mn[:, None])  # in place: t is not needed again
        e[rows, cols] = t_pos - mp[rows]
        e.exp_()
        sp = torch.zeros(n, dtype=s.dtype, device=s.device).index_add_(0, rows, e[rows, cols])
        sn = (e.sum(1) - sp).clamp(min=0.0)
        ctx.scale = scale
        if pairwise:
            a = torch.where(has, mp + torch.log(sp) + mn + torch.log(sn), 0.0)
            loss = torch.where(has, F.softplus(a), 0.0)
            sig = torch.where(has, torch.sigmoid(a), 0.0)
            ctx.save_for_backward(e, rows, cols, sig / sp.clamp(min=1e-300), sig / sn.clamp(min=1e-300))
            return loss
        lp = mp + torch.log(torch.exp(-mp) + sp)
        ln = mn + torch.log(torch.exp(-mn) + sn)
        ctx.save_for_backward(e, rows, cols, torch.exp(mp - lp), torch.exp(mn - ln))
        return lp + ln

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:  # type: ignore[override]
        e, rows, cols, ap, an = ctx.saved_tensors
        g = e * (grad * an * ctx.scale)[:, None]  # negatives: dt/ds = scale
        g[rows, cols] = -ctx.scale * e[rows, cols] * (grad * ap)[rows]  # positives: dt/ds = -scale
        return g, None, None, None, None


def _mlcd_per_example(s: torch.Tensor, pos: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    return _MLCDFunction.apply(s, pos, scale, margin, False)


def _mlc_per_example(s: torch.Tensor, pos: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    return _MLCDFunction.apply(s, pos, scale, margin, True)


def _functional(name: str, per_example, logits, targets, scale, margin, reduction):  # type: ignore[no-untyped-def]
    check_logits_multihot(logits, targets)
    validate_params(_PARAMETER_CONSTRAINTS, {"scale": scale, "margin": margin, "reduction": reduction}, owner=name)
    s = upcast_low_precision(logits)
    return reduce_loss(per_example(s, targets.bool(), float(scale), float(margin)), reduction)


def mlcd_loss(
    logits: torch.Tensor, targets: torch.Tensor, scale: float = 1.0, margin: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """MLCD loss ``log(1 + sum_P exp(-s)) + log(1 + sum_N exp(s))`` per sample (see the module
    docstring). ``logits``: (N, K) similarities to the (sampled) class centres; ``targets``: (N, K)
    positive mask (multi-hot or bool); ``reduction`` over the samples."""
    return _functional("mlcd_loss", _mlcd_per_example, logits, targets, scale, margin, reduction)


def mlc_loss(
    logits: torch.Tensor, targets: torch.Tensor, scale: float = 1.0, margin: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """Pairwise multi-label loss ``log(1 + sum_N exp(s) * sum_P exp(-s))`` per sample (the
    baseline MLCD extends); 0 for a sample without positives or without negatives."""
    return _functional("mlc_loss", _mlc_per_example, logits, targets, scale, margin, reduction)


class _Base(MultiLabelLoss):
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = _PARAMETER_CONSTRAINTS

    def __init__(self, scale: float = 1.0, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._validate_params(scale=scale, margin=margin)
        self.scale = float(scale)
        self.margin = float(margin)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, margin={self.margin}, reduction={self.reduction!r}"


class MLCDLoss(_Base):
    """MLCD loss (An et al., ECCV 2024): the factorised multi-label loss
    ``log(1 + sum_P exp(-s_i)) + log(1 + sum_N exp(s_j))`` on the similarities ``s`` of a sample
    to the sampled class centres, with its positive set (its ``l`` nearest clusters) given as the
    multi-hot / bool ``targets``.

    ``forward(similarities (N, K), targets (N, K), weight=None)``.

    Args:
        scale: multiplies the similarities (default 1.0, the formula as stated; the paper's value is
            unconfirmed; cosine similarities in [-1, 1] need 16-64 for the loss to approach 0).
        margin: ``s - margin`` on positives, ``s + margin`` on negatives (default 0).
        reduction: "mean" (default), "sum" or "none" over the samples.
    """

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _mlcd_per_example(logits, target.bool(), self.scale, self.margin)


class MLCLoss(_Base):
    """Pairwise multi-label loss ``log(1 + sum_N exp(s_j) sum_P exp(-s_i))`` (the MLC baseline of
    MLCD, An et al., ECCV 2024); same arguments as :class:`MLCDLoss`."""

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _mlc_per_example(logits, target.bool(), self.scale, self.margin)


def _naive_mlcd(logits: torch.Tensor, targets: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The paper's equation literally (sums of exponentials, no logsumexp), mean over samples."""
    s = scale * logits
    pos = targets.bool().to(s.dtype)
    s_p = (torch.exp(-s) * pos).sum(1)
    s_n = (torch.exp(s) * (1 - pos)).sum(1)
    return torch.log(1 + s_p * s_n + s_p + s_n).mean()


def _reference_mlcd() -> torch.nn.Module:
    """Factory of the naive reference for ``paperzoo bench losses``."""

    class _Naive(torch.nn.Module):
        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return _naive_mlcd(logits, targets)

    return _Naive()
