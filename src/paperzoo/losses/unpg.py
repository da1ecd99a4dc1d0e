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


class _BatchNegativeLSE(torch.autograd.Function):
    """``log sum_{s_n in S^n'} exp(scale s_n)`` of the filtered batch negatives of unit embeddings ``xn``
    (the shared denominator term), with a closed-form backward: ``dlse/dS = softmax`` over the kept
    pairs (the matrix ``G``, the only B x B tensor saved), ``dxn = (G + G^T) xn`` as two matmuls. Returns
    ``(lse, kept)``; ``lse = -inf`` (zero gradient) when no pair is kept."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, xn: torch.Tensor, labels: torch.Tensor, scale: float, wisk: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        S = xn @ xn.T
        keep = torch.triu(labels[:, None] != labels[None, :], diagonal=1)
        if not math.isinf(wisk):
            vals = S[keep]
            m = vals.shape[0]
            if m > 0:
                q1 = torch.kthvalue(vals, m // 4 + 1).values
                q3 = torch.kthvalue(vals, (3 * m) // 4 + 1).values
                iqr = q3 - q1
                keep &= (S >= q1 - wisk * iqr) & (S <= q3 + wisk * iqr)
        kept = keep.sum()
        if int(kept) == 0:
            ctx.save_for_backward(torch.zeros_like(S), xn)
            return S.new_full((), -math.inf), kept
        S.mul_(scale).masked_fill_(~keep, -math.inf)
        mx = S.amax()
        S.sub_(mx).exp_()
        total = S.sum()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(S.mul_(scale / total), xn)
        ctx.mark_non_differentiable(kept)
        return mx + torch.log(total), kept

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_kept: Any) -> tuple[Any, ...]:  # type: ignore[override]
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
        mask = self.get_target_mask(embeddings, labels)  # type: ignore[attr-defined]
        cosine = self.get_cosine(embeddings)  # type: ignore[attr-defined]
        target_cos = cosine[mask == 1]
        diff = (self.modify_cosine_of_target_classes(target_cos) - target_cos).unsqueeze(1)  # type: ignore[attr-defined]
        margin_logits = cosine + mask * diff
        scale = float(self.scale)  # type: ignore[attr-defined]
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
        losses = _unpg_from_lse(margin_logits, neg_lse, labels, scale) * miner_weights
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
