"""UNPG, Unified Negative Pair Generation (Jung, Lee, Oh, Park, Park & Son, "Unified Negative Pair
Generation toward Well-discriminative Feature Space for Face Recognition", arXiv:2203.11593).

A margin-softmax loss (ArcFace, CosFace, ...) compares each sample with every class weight: its
negatives are sample-to-class-centre pairs, which become easy as the weights converge. A metric loss
compares samples of the mini-batch with each other. UNPG joins the two: the negative-pair similarities
of the batch, ``S^n = {cos(x_a, x_b) : a < b, y_a != y_b}``, after a box-and-whisker filter that drops
outlying ("noisy") values, are appended as extra logits to every row of the margin-softmax logits::

    L_i = -log( e^{s cos_m[i, y_i]} / ( sum_j e^{s cos_m[i, j]} + sum_{s_n in S^n'} e^{s s_n} ) )

where ``cos_m`` are the (unscaled) margin logits of the head and the same filtered set ``S^n'`` is
appended to every row (as the official code, ``Jung-Jun-Uk/UNPG``, does). The filter keeps
``Q1 - k IQR <= s_n <= Q3 + k IQR`` with ``Q1 = sorted[floor(0.25 M)]``, ``Q3 = sorted[floor(0.75 M)]``
(plain indices, no interpolation); the released configuration uses ``k = 1.5`` ("wisk").

Components:

* :func:`box_whisker_mask` / :func:`box_whisker_filter`: the filter (exact quantile convention);
* :func:`batch_negative_similarities`: ``S^n`` (upper triangle, different labels; differentiable);
* :func:`unpg_cross_entropy`: the loss on precomputed margin logits, so UNPG wraps any margin head;
* :class:`UNPGArcFaceLoss` / :class:`UNPGCosFaceLoss`: thin subclasses of pytorch-metric-learning's
  (PML) ``ArcFaceLoss`` / ``CosFaceLoss`` whose ``compute_loss`` reuses PML's margin head and adds the
  filtered batch negatives; PML miners' ``indices_tuple`` (as per-sample weights, like PML), reducers,
  regularisers and ``DistributedLossWrapper`` work as for the PML parents.

The sum over ``S^n'`` is shared by all rows, so it is computed once as a log-sum-exp and combined with
each row's log-sum-exp over the classes (``logaddexp``): memory stays O(B C + B^2) instead of the
O(B (C + M')) of literally concatenating the columns; the value is the same.

PML's ``ArcFaceLoss`` takes its margin in degrees (0.5 rad = 28.6479 degrees) and, for
``theta > pi - m``, uses ``cos(theta) - m sin(m)`` to keep the logit monotonic; the official head is the
plain ``cos(theta + m)``: ``plain_arcface=True`` gives that.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from paperzoo._validation import (
    REDUCTIONS,
    Constraint,
    Interval,
    Options,
    check_embeddings_labels,
    check_finite,
    check_labels,
    validate_params,
)
from paperzoo.losses.base import reduce_loss

__all__ = [
    "UNPGArcFaceLoss",
    "UNPGCosFaceLoss",
    "batch_negative_similarities",
    "box_whisker_filter",
    "box_whisker_mask",
    "unpg_cross_entropy",
]

ARCFACE_MARGIN_DEG = math.degrees(0.5)
"""The released ArcFace margin, 0.5 rad, in PML's degrees (28.6479)."""

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "wisk": [Interval(float, 0, math.inf, closed="both")],
    "scale": [Interval(float, 0, math.inf, closed="neither")],
    "reduction": [Options(REDUCTIONS)],
}
"""Scalar parameters of this module (see :func:`paperzoo._validation.validate_params`)."""


# --------------------------------------------------------------------------- filter
def _check_vector(values: torch.Tensor, name: str) -> None:
    if not isinstance(values, torch.Tensor) or not values.is_floating_point() or values.dim() != 1:
        raise ValueError(f"{name} must be a 1-D floating-point tensor, got {getattr(values, 'shape', type(values))}")
    check_finite(values, name)


def _whisker_mask(values: torch.Tensor, wisk: float) -> torch.Tensor:
    """The kept mask of the box-and-whisker filter (trusted input)."""
    m = values.shape[0]
    if m == 0 or math.isinf(wisk):
        return torch.ones(m, dtype=torch.bool, device=values.device)
    v = values.detach()
    # kthvalue is 1-indexed: the k-th smallest is sorted[k - 1]
    q1 = torch.kthvalue(v, m // 4 + 1).values
    q3 = torch.kthvalue(v, (3 * m) // 4 + 1).values
    iqr = q3 - q1
    return (v >= q1 - wisk * iqr) & (v <= q3 + wisk * iqr)


def box_whisker_mask(values: torch.Tensor, wisk: float = 1.5) -> torch.Tensor:
    """Boolean mask of the values the box-and-whisker filter keeps: ``Q1 - wisk IQR <= v <= Q3 + wisk IQR``
    (both inclusive), ``Q1 = sorted(v)[floor(M / 4)]``, ``Q3 = sorted(v)[floor(3 M / 4)]``, ``IQR = Q3 - Q1``.

    Args:
        values: (M,) similarities (M may be 0).
        wisk: the whisker factor k (>= 0; ``math.inf`` keeps everything).
    """
    _check_vector(values, "values")
    validate_params(_PARAMETER_CONSTRAINTS, {"wisk": wisk}, owner="box_whisker_mask")
    return _whisker_mask(values, float(wisk))


def box_whisker_filter(values: torch.Tensor, wisk: float = 1.5) -> torch.Tensor:
    """The kept values (in input order) of :func:`box_whisker_mask`; differentiable w.r.t. the kept ones."""
    return values[box_whisker_mask(values, wisk)]


# --------------------------------------------------------------------------- negative pairs
def _negative_pairs(
    sim: torch.Tensor, labels: torch.Tensor, ref_labels: torch.Tensor, self_pairs: bool
) -> torch.Tensor:
    neg = labels[:, None] != ref_labels[None, :]
    if self_pairs:
        neg = torch.triu(neg, diagonal=1)
    return sim[neg]


def batch_negative_similarities(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ref_emb: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The batch's negative-pair cosine similarities ``S^n`` (differentiable, no stop-gradient).

    Without ``ref_emb``: ``{cos(x_a, x_b) : a < b, y_a != y_b}`` (the strict upper triangle, row-major
    order). With ``ref_emb`` / ``ref_labels``: every cross pair ``(x_a, r_b)`` with different labels.

    Args:
        embeddings: (B, D) embeddings (normalised here).
        labels: (B,) integer labels.
        ref_emb, ref_labels: optional (R, D) reference embeddings and their (R,) labels.
    """
    check_embeddings_labels(embeddings, labels)
    x = F.normalize(embeddings, dim=1)
    if ref_emb is None:
        return _negative_pairs(x @ x.T, labels, labels, True)
    check_embeddings_labels(ref_emb, ref_labels)
    if ref_labels is None:
        raise ValueError("ref_labels are required with ref_emb")
    return _negative_pairs(x @ F.normalize(ref_emb, dim=1).T, labels, ref_labels, False)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)
"""Dtypes the CPU paths hand to NumPy (not bfloat16)."""

_SELECT_DIRECT = 1 << 16
"""Below this many values the quartiles come from one partition of all of them."""


def _partition_quartiles(v: np.ndarray) -> tuple[Any, Any]:
    """``sorted(v)[M // 4]`` and ``sorted(v)[3 M // 4]`` (exact) of a non-empty 1-D array.

    A strided sample of about 8k values brackets each rank; one pass counts the values below the
    bracket and only the values inside it are partitioned. The bracket is checked, never trusted:
    if the rank falls outside it (an unlucky sample), one partition of all the values decides."""
    m = v.shape[0]
    ranks = (m // 4, (3 * m) // 4)
    if m >= _SELECT_DIRECT:
        sample = np.sort(v[:: m // 8192])
        ns = sample.shape[0]
        half = 4 * math.isqrt(ns) + 2  # ~8 sample standard deviations of the rank
        found = []
        for k in ranks:
            pos = (k * ns) // m
            lo, hi = sample[max(0, pos - half)], sample[min(ns - 1, pos + half)]
            inside = v[(v >= lo) & (v <= hi)]
            j = k - int(np.count_nonzero(v < lo))
            if not 0 <= j < inside.shape[0]:
                break
            found.append(np.partition(inside, j)[j])
        else:
            return found[0], found[1]
    part = np.partition(v, ranks)
    return part[ranks[0]], part[ranks[1]]


def _negative_quartiles(S: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(Q1, Q3)`` of ``S[keep]`` as 0-dim tensors of ``S``'s dtype (``sorted[floor(M / 4)]``,
    ``sorted[floor(3 M / 4)]``), ``None`` when nothing is kept. On the CPU the selection runs in
    NumPy (:func:`_partition_quartiles`, several times faster than two ``torch.kthvalue`` over the
    ~B^2 / 2 values); elsewhere ``torch.kthvalue``. Both give the same order statistics."""
    if S.device.type == "cpu" and S.dtype in _NUMPY_FLOATS:
        v = S.detach().numpy()[keep.numpy()]
        if v.shape[0] == 0:
            return None
        q1, q3 = _partition_quartiles(v)
        return S.new_tensor(float(q1)), S.new_tensor(float(q3))
    vals = S[keep]
    m = vals.shape[0]
    if m == 0:
        return None
    return torch.kthvalue(vals, m // 4 + 1).values, torch.kthvalue(vals, (3 * m) // 4 + 1).values


_VECTOR_ON_CPU = True
"""CPU: filter and reduce the extracted negatives as a vector (see :class:`_BatchNegativeLSE`)."""


class _BatchNegativeLSE(torch.autograd.Function):
    """``log sum_{s_n in S^n'} exp(scale s_n)`` of the filtered batch negatives of unit embeddings ``xn``
    (the shared denominator term), with a closed-form backward: ``dlse/dS = softmax`` over the kept
    pairs (the matrix ``G``), ``dxn = (G + G^T) xn`` as two matmuls. Returns ``(lse, kept)``;
    ``lse = -inf`` (zero gradient) when no pair is kept.

    On the CPU the ~B^2 / 2 negatives are extracted once (NumPy boolean indexing) and the quartiles,
    the filter and the log-sum-exp run on that vector; only the negatives' softmax and the B x B bool
    mask are saved, and ``G`` is rebuilt in the backward. Elsewhere the filter and the log-sum-exp run
    on the masked B x B matrix, and ``G`` is saved. Both compute the same values (the sums may differ
    in the order of their terms only)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, xn: torch.Tensor, labels: torch.Tensor, scale: float, wisk: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        S = xn @ xn.T
        keep = torch.triu(labels[:, None] != labels[None, :], diagonal=1)
        ctx.vector = S.device.type == "cpu" and S.dtype in _NUMPY_FLOATS and _VECTOR_ON_CPU
        if ctx.vector:
            return _BatchNegativeLSE._forward_vector(ctx, xn, S, keep, scale, wisk)
        if not math.isinf(wisk):
            quartiles = _negative_quartiles(S, keep)
            if quartiles is not None:
                q1, q3 = quartiles
                iqr = q3 - q1
                keep &= (S >= q1 - wisk * iqr) & (S <= q3 + wisk * iqr)
        kept = keep.sum()
        ctx.mark_non_differentiable(kept)
        if int(kept) == 0:
            ctx.save_for_backward(torch.zeros_like(S), xn)
            return S.new_full((), -math.inf), kept
        S.mul_(scale).masked_fill_(~keep, -math.inf)
        mx = S.amax()
        S.sub_(mx).exp_()
        total = S.sum()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(S.mul_(scale / total), xn)
        return mx + torch.log(total), kept

    @staticmethod
    def _forward_vector(
        ctx: Any, xn: torch.Tensor, S: torch.Tensor, keep: torch.Tensor, scale: float, wisk: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.from_numpy(S.numpy()[keep.numpy()])  # the negatives, row-major (a copy)
        del S
        inside = None
        if not math.isinf(wisk) and v.numel() > 0:
            q1n, q3n = _partition_quartiles(v.numpy())
            q1, q3 = v.new_tensor(float(q1n)), v.new_tensor(float(q3n))
            iqr = q3 - q1
            inside = (v >= q1 - wisk * iqr) & (v <= q3 + wisk * iqr)
        kept = inside.sum() if inside is not None else torch.tensor(v.numel())
        ctx.mark_non_differentiable(kept)
        if int(kept) == 0:
            ctx.save_for_backward(None, None, xn)
            return xn.new_full((), -math.inf), kept
        z = v.mul_(scale)
        if inside is not None:
            z.masked_fill_(~inside, -math.inf)
        mx = z.amax()
        z.sub_(mx).exp_()
        total = z.sum()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(z.mul_(scale / total), keep, xn)
        return mx + torch.log(total), kept

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_kept: Any) -> tuple[Any, ...]:  # type: ignore[override]
        if ctx.vector:
            p, keep, xn = ctx.saved_tensors
            if p is None:
                return torch.zeros_like(xn), None, None, None
            G = xn.new_zeros(xn.shape[0], xn.shape[0])
            G.numpy()[keep.numpy()] = p.numpy()
        else:
            G, xn = ctx.saved_tensors
        dx = G @ xn
        dx.addmm_(G.T, xn)
        return dx.mul_(grad_out), None, None, None


# --------------------------------------------------------------------------- loss on logits
def _unpg_from_lse(
    margin_logits: torch.Tensor, neg_lse: torch.Tensor | None, labels: torch.Tensor, scale: float
) -> torch.Tensor:
    """Per-sample UNPG cross-entropy from the shared negative term ``neg_lse = log sum_n e^{s s_n}``
    (``None``: no negatives): ``-s cos_m[i, y_i] + logaddexp(logsumexp_j s cos_m[i, j], neg_lse)``."""
    z = margin_logits * scale
    lse_rows = torch.logsumexp(z, dim=1)
    if neg_lse is not None and bool(torch.isfinite(neg_lse)):
        lse_rows = torch.logaddexp(lse_rows, neg_lse)
    return lse_rows - z.gather(1, labels[:, None]).squeeze(1)


def _unpg_per_example(
    margin_logits: torch.Tensor, neg_sims: torch.Tensor, labels: torch.Tensor, scale: float
) -> torch.Tensor:
    """Per-sample UNPG cross-entropy (trusted input): ``-s cos_m[i, y_i] + log(sum_j e^{s cos_m[i,j]} +
    sum_n e^{s s_n})``, the shared negative term computed once."""
    neg_lse = torch.logsumexp(neg_sims * scale, dim=0) if neg_sims.numel() > 0 else None
    return _unpg_from_lse(margin_logits, neg_lse, labels, scale)


def unpg_cross_entropy(
    margin_logits: torch.Tensor,
    neg_sims: torch.Tensor,
    labels: torch.Tensor,
    scale: float = 64.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """UNPG cross-entropy on precomputed (unscaled) margin logits: cross-entropy over the ``C + M'``
    columns ``s [cos_m[i, :], S^n']``, the label always one of the first ``C``. Pass
    ``box_whisker_filter(batch_negative_similarities(x, y))`` as ``neg_sims`` for the paper's loss,
    ``neg_sims`` of length 0 for the plain margin softmax.

    Args:
        margin_logits: (B, C) margin-modified cosines (any head: ArcFace, CosFace, MagFace, ...).
        neg_sims: (M',) negative-pair similarities appended to every row.
        labels: (B,) integer labels in [0, C).
        scale: the scale s (> 0; released configuration 64).
        reduction: "mean", "sum" or "none".
    """
    if not isinstance(margin_logits, torch.Tensor) or not margin_logits.is_floating_point():
        raise TypeError("margin_logits must be a floating-point torch.Tensor of shape (B, C)")
    if margin_logits.dim() != 2 or margin_logits.shape[0] == 0 or margin_logits.shape[1] == 0:
        raise ValueError(f"margin_logits must have shape (B, C) with B, C >= 1, got {tuple(margin_logits.shape)}")
    check_finite(margin_logits, "margin_logits")
    _check_vector(neg_sims, "neg_sims")
    check_labels(labels, margin_logits.shape[0], "labels", num_classes=margin_logits.shape[1])
    validate_params(_PARAMETER_CONSTRAINTS, {"scale": scale, "reduction": reduction}, owner="unpg_cross_entropy")
    return reduce_loss(
        _unpg_per_example(margin_logits, neg_sims.to(margin_logits.dtype), labels, float(scale)), reduction
    )


class _MarginSoftmaxRows(torch.autograd.Function):
    """Per-sample UNPG cross-entropy of the module: ``logaddexp(logsumexp_j z[i, j], neg_lse) - zt[i]``
    with ``z = scale cosine`` and its target column replaced by the (detached) scaled margin logits
    ``zt``; ``dzt = d zt / d cos_t`` routes the target's gradient into ``cosine`` (``None``: no
    gradient). The forward is :func:`torch.logsumexp`'s own arithmetic on one B x C buffer, which the
    backward scales into the gradient: several B x C passes fewer than the composed ``cosine + mask *
    diff``, ``logsumexp``, ``logaddexp`` and ``gather`` graph (and no B x C target mask), same values."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        cosine: torch.Tensor,
        zt: torch.Tensor,
        dzt: torch.Tensor | None,
        neg_lse: torch.Tensor,
        labels: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        idx = labels[:, None]
        z = (cosine * scale).scatter_(1, idx, zt[:, None])
        mx = z.amax(dim=1, keepdim=True)
        mx.masked_fill_(mx.abs() == math.inf, 0)
        e = z.sub_(mx).exp_()
        lse = e.sum(dim=1).log_().add_(mx.squeeze(1))
        ctx.has_neg = bool(torch.isfinite(neg_lse))
        if ctx.has_neg:
            lse = torch.logaddexp(lse, neg_lse)
        ctx.scale = scale
        ctx.save_for_backward(e, mx, lse, neg_lse, dzt, labels)
        return lse - zt

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        e, mx, lse, neg_lse, dzt, labels = ctx.saved_tensors
        idx = labels[:, None]
        r = g * torch.exp(mx.squeeze(1) - lse)  # g_i / sum_j e^{z_ij - mx_i}, so p_ij g_i = e_ij r_i
        grad_zt = e.gather(1, idx).squeeze(1) * r - g  # g (p_t - 1)
        grad_cos = grad_neg = None
        if ctx.needs_input_grad[0]:
            grad_cos = e * (r * ctx.scale)[:, None]  # not in place: the graph may be retained
            grad_cos.scatter_(1, idx, (grad_zt * dzt)[:, None] if dzt is not None else 0.0)
        if ctx.needs_input_grad[3] and ctx.has_neg:
            grad_neg = (g * torch.exp(neg_lse - lse)).sum()
        return grad_cos, None, None, grad_neg, None, None


# --------------------------------------------------------------------------- PML losses
class _UNPGMixin:
    """``compute_loss`` of PML's ``LargeMarginSoftmaxLoss`` family with the filtered batch negatives
    appended (the margin head, target mask and scaling are the parent's)."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"wisk": _PARAMETER_CONSTRAINTS["wisk"]}
    wisk: float
    num_classes: int

    def _init_unpg(self, wisk: float) -> None:
        self.wisk = float(wisk)
        self.add_to_recordable_attributes(list_of_names=["wisk"], is_stat=False)  # type: ignore[attr-defined]
        self.add_to_recordable_attributes(name="kept_negatives", is_stat=True)  # type: ignore[attr-defined]

    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_embeddings_labels(embeddings, labels)
        if labels is None:
            raise ValueError("labels are required")
        check_labels(labels, embeddings.shape[0], "labels", num_classes=self.num_classes)
        if ref_emb is not None:
            check_embeddings_labels(ref_emb, ref_labels)
            if ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(f"ref_emb must have {embeddings.shape[1]} columns, got {tuple(ref_emb.shape)}")
            if ref_labels is None:
                raise ValueError("ref_labels are required with ref_emb")
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)  # type: ignore[misc]

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> dict[str, Any]:
        dtype = embeddings.dtype
        self.cast_types(dtype, embeddings.device)  # type: ignore[attr-defined]
        miner_weights = lmu.convert_to_weights(indices_tuple, labels, dtype=dtype)
        cosine = self.get_cosine(embeddings)  # type: ignore[attr-defined]
        scale = float(self.scale)  # type: ignore[attr-defined]
        # the target logit s (cos_t + (m(cos_t) - cos_t)) (as PML's cosine + mask * diff) and its
        # derivative in cos_t, on the (B,) targets only: _MarginSoftmaxRows routes it into cosine
        target_cos = cosine.detach().gather(1, labels[:, None]).squeeze(1)
        dzt = None
        with torch.enable_grad():
            ct = target_cos.requires_grad_(cosine.requires_grad)
            zt = (ct + (self.modify_cosine_of_target_classes(ct) - ct)) * scale  # type: ignore[attr-defined]
            if cosine.requires_grad:
                (dzt,) = torch.autograd.grad(zt, ct, torch.ones_like(zt))
        zt = zt.detach()
        d = self.distance  # type: ignore[attr-defined]
        if ref_emb is embeddings and type(d) is CosineSimilarity and d.power == 1 and d.normalize_embeddings:
            # fused path: the filtered negatives never leave the B x B matrix
            xn = F.normalize(embeddings, p=2, dim=1)
            neg_lse, kept = _BatchNegativeLSE.apply(xn, labels, scale, self.wisk)
        else:
            neg = _negative_pairs(d(embeddings, ref_emb), labels, ref_labels, ref_emb is embeddings)
            neg = neg[_whisker_mask(neg, self.wisk)]
            kept = neg.numel()
            neg_lse = torch.logsumexp(neg * scale, dim=0) if neg.numel() > 0 else None
        if self.collect_stats:  # type: ignore[attr-defined]
            self.kept_negatives = int(kept)
        if neg_lse is None:
            neg_lse = cosine.new_full((), -math.inf)
        losses = _MarginSoftmaxRows.apply(cosine, zt, dzt, neg_lse, labels, scale) * miner_weights
        loss_dict = {
            "loss": {
                "losses": losses,
                "indices": c_f.torch_arange_from_size(embeddings),
                "reduction_type": "element",
            }
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.W.t())  # type: ignore[attr-defined]
        return loss_dict


class UNPGArcFaceLoss(_UNPGMixin, ArcFaceLoss):
    """ArcFace + UNPG (the paper's loss with the ArcFace head), a PML ``ArcFaceLoss`` subclass.

    ``forward(embeddings (B, D), labels (B,), indices_tuple=None, ref_emb=None, ref_labels=None)``.
    With ``ref_emb`` the negatives are the cross pairs (embedding, reference) with different labels.
    With no kept negative pair (one label in the batch) it equals PML's ``ArcFaceLoss``.

    Args:
        num_classes, embedding_size: as PML (``W`` is stored as (embedding_size, num_classes)).
        margin: additive angular margin in degrees, as PML (default 28.6479 = 0.5 rad, released value).
        scale: s (released: 64).
        wisk: box-and-whisker factor k (released: 1.5; ``math.inf``: no filter).
        plain_arcface: use the official plain ``cos(theta + m)`` for every angle instead of PML's
            monotonic fallback for ``theta > pi - m``.
        **kwargs: PML's ``reducer``, ``weight_regularizer``, ...
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = ARCFACE_MARGIN_DEG,
        scale: float = 64.0,
        wisk: float = 1.5,
        plain_arcface: bool = False,
        **kwargs: Any,
    ) -> None:
        validate_params(self._parameter_constraints, {"wisk": wisk}, owner=type(self).__name__)
        super().__init__(num_classes=num_classes, embedding_size=embedding_size, margin=margin, scale=scale, **kwargs)
        self.plain_arcface = bool(plain_arcface)
        self._init_unpg(wisk)

    def modify_cosine_of_target_classes(self, cosine_of_target_classes: torch.Tensor) -> torch.Tensor:
        if not self.plain_arcface:
            return super().modify_cosine_of_target_classes(cosine_of_target_classes)
        return torch.cos(self.get_angles(cosine_of_target_classes) + self.margin)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, margin={np.degrees(self.margin):.4f} deg, scale={self.scale}, "
            f"wisk={self.wisk}, plain_arcface={self.plain_arcface}"
        )


class UNPGCosFaceLoss(_UNPGMixin, CosFaceLoss):
    """CosFace + UNPG, a PML ``CosFaceLoss`` subclass (see :class:`UNPGArcFaceLoss`).

    Args:
        num_classes, embedding_size: as PML.
        margin: additive cosine margin (default 0.35, the standard CosFace value; the released UNPG
            head config says 0.5, unconfirmed by the paper).
        scale: s (released: 64).
        wisk: box-and-whisker factor k (released: 1.5).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.35,
        scale: float = 64.0,
        wisk: float = 1.5,
        **kwargs: Any,
    ) -> None:
        validate_params(self._parameter_constraints, {"wisk": wisk}, owner=type(self).__name__)
        super().__init__(num_classes, embedding_size, margin=margin, scale=scale, **kwargs)
        self._init_unpg(wisk)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, margin={self.margin}, scale={self.scale}, wisk={self.wisk}"


# --------------------------------------------------------------------------- bench factories
BENCH_CLASSES = 2048
"""Classes of the benchmark losses (the metric bench draws B / 4 labels; B <= 8192)."""


def bench_unpg_arcface() -> UNPGArcFaceLoss:
    """UNPG + ArcFace as ``paperzoo bench losses`` builds it (128-d embeddings, 2048 classes)."""
    return UNPGArcFaceLoss(BENCH_CLASSES, 128)


def bench_pml_arcface() -> ArcFaceLoss:
    """The reference: PML's ``ArcFaceLoss`` with the same classes, margin and scale."""
    return ArcFaceLoss(BENCH_CLASSES, 128, margin=ARCFACE_MARGIN_DEG, scale=64.0)
