"""The Multi-Similarity (MS) loss of Wang, Han, Huang, Dong & Scott, "Multi-Similarity Loss with
General Pair Weighting for Deep Metric Learning" (CVPR 2019, arXiv:1904.06627).

For L2-normalised embeddings with cosine similarity matrix ``S = f f^T`` (as in the paper; ``S_ij``
as in its Eqs. (1)-(3)) and anchor ``i`` with positives ``P_i`` and negatives ``N_i``:

* the paper's pair-mining step: keep a negative ``j`` iff ``S_ij > min_{k in P_i} S_ik - epsilon``
  and a positive ``j`` iff ``S_ij < max_{k in N_i} S_ik + epsilon`` (both thresholds on the
  un-mined sets; the kept sets are empty or non-empty together). Like the official code, positives with
  ``S_ij >= 1 - 1e-5`` (the anchor itself and exact duplicates of it) are dropped first when
  ``exclude_duplicates=True``;
* the pair-weighting step, the MS loss of the paper's Eq. (15)::

      L = (1/m) sum_i { (1/alpha) log[1 + sum_{k in P^_i} exp(-alpha (S_ik - base))]
                       + (1/beta) log[1 + sum_{k in N^_i} exp( beta (S_ik - base))] }

  where anchors with empty kept sets contribute 0 but still count in ``m`` (the batch size).

The gradient is ``dL/dS_ij = -w+_ij / m`` on kept positives and ``+w-_ij / m`` on kept
negatives with the General-Pair-Weighting weights of the paper's Eqs. (13) (``w-``) and (14)
(``w+``) (see :func:`paperzoo.analysis.pair_weighting.ms_pair_weights`).

Hyper-parameters (the paper's experimental settings): ``alpha = 2`` and ``beta = 50`` as in the
paper (the official code uses ``beta = 40``); ``base`` (lambda) ``= 0.5`` as in the official code
(``thresh = 0.5``) and in pytorch-metric-learning (PML), because the paper's value (1, per PML's
documentation) is unconfirmed; ``epsilon = 0.1`` (paper; official code ``margin = 0.1``).

:class:`MultiSimilarityLoss` subclasses PML's ``BaseMetricLossFunction``, so PML miners,
reducers and distances work with it. Its value equals PML's ``MultiSimilarityLoss(alpha, beta,
base)`` called with ``MultiSimilarityMiner(epsilon)``'s pairs (or with no miner when
``mining=False``), except where the official code differs from PML (duplicates, see above, and
PML's shortcut that returns 0 when at most one positive and one negative pair are mined).
On the default path (no ``indices_tuple``, no ``ref_emb``, cosine similarity, mean reduction)
it runs a fused, vectorised forward with a closed-form backward
(:class:`_MultiSimilarityUnitFunction`): one B x B matmul, the mining thresholds by masked
min / max, both log-sum-exp terms with masks and per-row shifts taken from those same
thresholds, and only one B x B tensor (the GPW weight matrix) saved for backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity, DotProductSimilarity
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.reducers import MeanReducer
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
    check_similarity_labels,
    validate_params,
)
from paperzoo.losses.base import reduce_loss

__all__ = ["DUPLICATE_EPS", "MultiSimilarityLoss", "ms_pair_masks", "multi_similarity_loss", "pml_multi_similarity"]

DUPLICATE_EPS = 1e-5
"""Positives with similarity ``>= 1 - DUPLICATE_EPS`` are duplicates of the anchor (official code)."""

_INF = math.inf
_NORM_EPS = 1e-12  # F.normalize's default


_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "alpha": [Interval(float, 0, math.inf, closed="neither")],
    "beta": [Interval(float, 0, math.inf, closed="neither")],
    "base": [Interval(float, -math.inf, math.inf, closed="neither")],
    "epsilon": [Interval(float, 0, math.inf, closed="both")],
    "reduction": [Options(REDUCTIONS)],
}
"""Scalar parameters of the functions of this module (see :func:`paperzoo._validation.validate_params`)."""


# --------------------------------------------------------------------------- pure core (trusted inputs)
def _mine(
    sim: torch.Tensor,
    same: torch.Tensor,
    epsilon: float,
    mining: bool,
    duplicate_threshold: float | None,
    exclude_diagonal: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept-positive and kept-negative masks (the paper's pair-mining step) of a similarity matrix ``sim``
    (larger = more similar) given the same-label mask ``same``."""
    pos = same.clone()
    if exclude_diagonal:
        pos.fill_diagonal_(False)
    if duplicate_threshold is not None:
        pos &= sim < duplicate_threshold
    neg = ~same
    if not mining:
        return pos, neg
    min_pos = sim.masked_fill(~pos, _INF).amin(1)
    max_neg = sim.masked_fill(~neg, -_INF).amax(1)
    has_both = torch.isfinite(min_pos) & torch.isfinite(max_neg)
    thr_pos = torch.where(has_both, max_neg + epsilon, torch.full_like(max_neg, -_INF))
    thr_neg = torch.where(has_both, min_pos - epsilon, torch.full_like(min_pos, _INF))
    return pos & (sim < thr_pos[:, None]), neg & (sim > thr_neg[:, None])


def _log1p_sum_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(1 + sum_{j: mask_ij} exp(x_ij))``, stable, exactly 0 for empty rows."""
    xm = x.masked_fill(~mask, -_INF)
    shift = xm.amax(1).clamp_min(0.0).detach()  # the value is exactly invariant to the shift
    total = torch.exp(xm - shift[:, None]).sum(1)
    shifted = shift + torch.log(torch.exp(-shift) + total)
    return torch.where(shift > 0, shifted, torch.log1p(total))


def _ms_anchor_losses(
    pos_exp: torch.Tensor,
    neg_exp: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """Per-anchor MS losses (the summands of Eq. (15)) from ``pos_exp = base - S`` and
    ``neg_exp = S - base``."""
    return _log1p_sum_exp(alpha * pos_exp, pos) / alpha + _log1p_sum_exp(beta * neg_exp, neg) / beta


class _MultiSimilarityUnitFunction(torch.autograd.Function):
    """Mean MS loss of embeddings ``x`` (similarity ``S = x x^T``) with a closed-form backward.

    Forward, with every B x B step in place on two work matrices: ``P`` (S on positives, +inf
    elsewhere) and ``N`` (S on negatives, -inf elsewhere); min / max of each row give the mining
    thresholds (pair-mining step); pairs that fail them are set to +-inf; the row max of each kept term
    is known from the same min / max (the hardest positive / negative is always kept when any
    pair is), which gives the log-sum-exp shifts without another pass. The two exponential
    matrices become the GPW weight matrix ``G = dL/dS`` (Eqs. (13)-(14)), the only B x B tensor saved;
    backward is ``dL/dx = (G + G^T) x`` as two matmuls.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        labels: torch.Tensor,
        alpha: float,
        beta: float,
        base: float,
        epsilon: float,
        mining: bool,
        duplicate_threshold: float | None,
    ) -> torch.Tensor:
        m = x.shape[0]
        S = x @ x.T
        same = labels[:, None] == labels[None, :]
        P = torch.where(same, S, _INF)
        N = torch.where(same, -_INF, S)
        del S, same
        P.fill_diagonal_(_INF)
        if duplicate_threshold is not None:
            P.masked_fill_(P >= duplicate_threshold, _INF)
        min_pos = P.amin(1)
        max_neg = N.amax(1)
        has_pos, has_neg = torch.isfinite(min_pos), torch.isfinite(max_neg)
        if mining:
            keep = has_pos & has_neg
            thr_pos = torch.where(keep, max_neg + epsilon, torch.full_like(max_neg, -_INF))
            thr_neg = torch.where(keep, min_pos - epsilon, torch.full_like(min_pos, _INF))
            P.masked_fill_(P >= thr_pos[:, None], _INF)
            N.masked_fill_(N <= thr_neg[:, None], -_INF)
            # a kept pair exists iff the hardest positive (and negative) passes its threshold
            has_pos = has_neg = keep & (min_pos < thr_pos)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        # shifts = row max of the kept exponents, floored at 0 (the "1 +" term)
        s_pos = torch.where(has_pos, (alpha * (base - min_pos)).clamp_min(0.0), zero)
        s_neg = torch.where(has_neg, (beta * (max_neg - base)).clamp_min(0.0), zero)
        # P <- exp(-alpha (S - base) - s_pos), N <- exp(beta (S - base) - s_neg); inf -> 0
        torch.add((alpha * base - s_pos)[:, None], P, alpha=-alpha, out=P)
        P.exp_()
        torch.add((-beta * base - s_neg)[:, None], N, alpha=beta, out=N)
        N.exp_()
        sum_pos, sum_neg = P.sum(1), N.sum(1)
        den_pos, den_neg = torch.exp(-s_pos) + sum_pos, torch.exp(-s_neg) + sum_neg
        loss_pos = torch.where(s_pos > 0, s_pos + torch.log(den_pos), torch.log1p(sum_pos)) / alpha
        loss_neg = torch.where(s_neg > 0, s_neg + torch.log(den_neg), torch.log1p(sum_neg)) / beta
        loss = (loss_pos + loss_neg).sum() / m
        if ctx.needs_input_grad[0]:
            # G = dL/dS = (w- on kept negatives, -w+ on kept positives) / m   (Eqs. (13)-(14))
            N.mul_((1.0 / (m * den_neg))[:, None])
            N.addcmul_(P, (1.0 / (m * den_pos))[:, None], value=-1.0)
            ctx.save_for_backward(N, x)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        G, x = ctx.saved_tensors
        dx = G @ x
        dx.addmm_(G.T, x)
        return dx.mul_(grad_out), None, None, None, None, None, None, None


# --------------------------------------------------------------------------- public functions
def ms_pair_masks(
    S: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float = 0.1,
    *,
    mining: bool = True,
    exclude_duplicates: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs the MS loss uses (the paper's pair-mining step): boolean (B, B) masks
    ``(pos, neg)`` of the kept positives ``P^_i`` and negatives ``N^_i`` of each anchor (row) ``i``.

    Args:
        S: (B, B) similarity matrix (larger = more similar; cosine in the paper).
        labels: (B,) integer labels.
        epsilon: mining margin (>= 0; ``math.inf`` keeps every pair of anchors that have both a
            positive and a negative).
        mining: ``False`` keeps all positives (anchor excluded) and all negatives.
        exclude_duplicates: drop positives with ``S >= 1 - 1e-5`` before mining (official code).
    """
    check_similarity_labels(S, labels)
    validate_params(_PARAMETER_CONSTRAINTS, {"epsilon": epsilon}, owner="ms_pair_masks")
    same = labels[:, None] == labels[None, :]
    dup = 1.0 - DUPLICATE_EPS if exclude_duplicates else None
    with torch.no_grad():
        return _mine(S.detach(), same, float(epsilon), mining, dup, exclude_diagonal=True)


def multi_similarity_loss(
    S: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
    *,
    mining: bool = True,
    exclude_duplicates: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """MS loss (the paper's mining step and Eq. (15)) as a differentiable function of a similarity matrix.

    The readable reference: autograd through it gives ``dL/dS`` (the GPW weights, Eqs. (1)-(3)),
    which is what :func:`paperzoo.analysis.pair_weighting.gpw_pair_weights` uses.

    Args:
        S: (B, B) similarity matrix, row ``i`` = anchor ``i`` (``S = f f^T`` for unit ``f``).
        labels: (B,) integer labels.
        alpha, beta, base, epsilon: the hyper-parameters of mining and Eq. (15) (defaults: paper's
            alpha, beta; official base).
        mining, exclude_duplicates: see :func:`ms_pair_masks`.
        reduction: "mean" (divide by B, skipped anchors included, as the official code), "sum"
            or "none" (the (B,) per-anchor losses).
    """
    check_similarity_labels(S, labels)
    validate_params(
        _PARAMETER_CONSTRAINTS,
        {"alpha": alpha, "beta": beta, "base": base, "epsilon": epsilon, "reduction": reduction},
        owner="multi_similarity_loss",
    )
    same = labels[:, None] == labels[None, :]
    dup = 1.0 - DUPLICATE_EPS if exclude_duplicates else None
    with torch.no_grad():
        pos, neg = _mine(S.detach(), same, float(epsilon), mining, dup, exclude_diagonal=True)
    return reduce_loss(_ms_anchor_losses(base - S, S - base, pos, neg, float(alpha), float(beta)), reduction)


# --------------------------------------------------------------------------- module
class MultiSimilarityLoss(BaseMetricLossFunction):
    """Multi-Similarity loss with its built-in hard-pair mining (Wang et al., CVPR 2019;
    the paper's mining step and Eq. (15)), a pytorch-metric-learning ``BaseMetricLossFunction``.

    ``forward(embeddings (B, D), labels (B,), indices_tuple=None, ref_emb=None, ref_labels=None)``
    returns the scalar loss.

    Args:
        alpha: positive scale (paper and official code: 2).
        beta: negative scale (paper: 50, the default; official code: 40).
        base: similarity margin lambda (official code and PML: 0.5, the default; the paper's
            value, 1, is unconfirmed).
        epsilon: mining margin (paper and code: 0.1); ``math.inf`` disables the relative test.
        mining: apply the paper's pair-mining step; ``False`` uses every pair (ablation).
        exclude_duplicates: drop positives with similarity ``>= 1 - 1e-5`` (duplicates of the
            anchor) before mining, as the official code does (``pos_pair_ < 1 - epsilon``); PML drops only the
            anchor itself. With a distance (not a similarity), the test is ``d <= 1e-5``.
        **kwargs: PML's ``distance``, ``reducer``, ``embedding_regularizer``, ...

    Paths:
        * default (no ``indices_tuple`` / ``ref_emb``, ``CosineSimilarity`` or
          ``DotProductSimilarity`` with power 1, ``MeanReducer``, no regulariser, float32/64):
          the fused forward with closed-form backward (module docstring);
        * otherwise the general path: ``self.distance`` matrix, the paper's mining step on it
          (or, when ``indices_tuple`` is given, exactly the pairs it names, like PML's loss with
          a miner: the built-in mining and duplicate test are then not applied), per-anchor
          losses with ``distance.margin`` (so distances such as ``LpDistance`` work as in PML),
          reduced by ``self.reducer``.

    Differences from PML's ``MultiSimilarityLoss`` + ``MultiSimilarityMiner``: duplicates
    (above), and PML returns 0 whenever at most one positive and one negative pair are mined
    in the whole batch, while this class returns the loss of those pairs.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("alpha", "beta", "base", "epsilon")
    }

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float = 0.1,
        mining: bool = True,
        exclude_duplicates: bool = True,
        **kwargs: Any,
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"alpha": alpha, "beta": beta, "base": base, "epsilon": epsilon},
            owner=type(self).__name__,
        )
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)
        self.epsilon = float(epsilon)
        self.mining = bool(mining)
        self.exclude_duplicates = bool(exclude_duplicates)
        self.add_to_recordable_attributes(list_of_names=["alpha", "beta", "base", "epsilon"], is_stat=False)

    def get_default_distance(self) -> CosineSimilarity:
        return CosineSimilarity()

    # ------------------------------------------------------------------ entry point
    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._validate(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if labels is not None:
            labels = labels.to(embeddings.device)
        if self._use_fast_path(embeddings, labels, indices_tuple, ref_emb, ref_labels):
            self.reset_stats()
            x = F.normalize(embeddings, p=2, dim=1, eps=_NORM_EPS) if self.distance.normalize_embeddings else embeddings
            dup = 1.0 - DUPLICATE_EPS if self.exclude_duplicates else None
            return _MultiSimilarityUnitFunction.apply(
                x, labels, self.alpha, self.beta, self.base, self.epsilon, self.mining, dup
            )
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def _use_fast_path(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None,
        indices_tuple: Any,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> bool:
        d = self.distance
        return (
            labels is not None
            and indices_tuple is None
            and ref_emb is None
            and ref_labels is None
            and type(d) in (CosineSimilarity, DotProductSimilarity)
            and d.power == 1
            and (d.p == 2 or not d.normalize_embeddings)
            and type(self.reducer) is MeanReducer
            and self.embedding_regularizer is None
            and embeddings.dtype in (torch.float32, torch.float64)
        )

    @staticmethod
    def _validate(
        embeddings: torch.Tensor,
        labels: torch.Tensor | None,
        indices_tuple: Any,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> None:
        check_embeddings_labels(embeddings, labels)
        if labels is None and indices_tuple is None:
            raise ValueError("labels are required unless an indices_tuple is given")
        n_ref = embeddings.shape[0]
        if ref_emb is not None:
            if not isinstance(ref_emb, torch.Tensor) or not ref_emb.is_floating_point() or ref_emb.dim() != 2:
                raise ValueError("ref_emb must be a floating-point tensor of shape (R, D)")
            if ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(
                    f"ref_emb must have {embeddings.shape[1]} columns like embeddings, got shape {tuple(ref_emb.shape)}"
                )
            if ref_emb.shape[0] == 0:
                raise ValueError("empty reference set: ref_emb has 0 rows")
            check_finite(ref_emb, "ref_emb")
            n_ref = ref_emb.shape[0]
            if ref_labels is None and indices_tuple is None:
                raise ValueError("ref_labels are required with ref_emb unless an indices_tuple is given")
        if ref_labels is not None:
            check_labels(ref_labels, n_ref, "ref_labels")
        if indices_tuple is not None:
            if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
                raise ValueError("indices_tuple must be (anchors, positives, negatives) or (a1, p, a2, n)")
            sizes = (embeddings.shape[0], n_ref, embeddings.shape[0], n_ref)
            if len(indices_tuple) == 3:
                sizes = (embeddings.shape[0], n_ref, n_ref)
            for t, size in zip(indices_tuple, sizes):
                if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype.is_floating_point:
                    raise ValueError("indices_tuple entries must be 1-D integer tensors")
                if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
                    raise ValueError(
                        f"indices_tuple entries must lie in [0, {size}), got values in [{int(t.min())}, {int(t.max())}]"
                    )

    # ------------------------------------------------------------------ general path
    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor | None,
    ) -> dict[str, Any]:
        mat = self.distance(embeddings, ref_emb)
        if indices_tuple is None:
            assert labels is not None and ref_labels is not None
            sim = mat if self.distance.is_inverted else -mat
            dup: float | None = None
            if self.exclude_duplicates:
                dup = 1.0 - DUPLICATE_EPS if self.distance.is_inverted else -DUPLICATE_EPS
            same = labels[:, None] == ref_labels[None, :]
            self_pairs = ref_emb is embeddings or ref_labels is labels
            with torch.no_grad():
                pos, neg = _mine(sim.detach(), same, self.epsilon, self.mining, dup, exclude_diagonal=self_pairs)
        else:
            a1, p, a2, n = lmu.convert_to_pairs(indices_tuple, labels, ref_labels)
            pos = torch.zeros(mat.shape, dtype=torch.bool, device=mat.device)
            neg = torch.zeros_like(pos)
            pos[a1.to(mat.device), p.to(mat.device)] = True
            neg[a2.to(mat.device), n.to(mat.device)] = True
            if bool((pos & neg).any()):
                raise ValueError("indices_tuple names the same pair as both positive and negative")
        pos_exp = self.distance.margin(mat, self.base)
        neg_exp = self.distance.margin(self.base, mat)
        losses = _ms_anchor_losses(pos_exp, neg_exp, pos, neg, self.alpha, self.beta)
        return {
            "loss": {
                "losses": losses,
                "indices": c_f.torch_arange_from_size(mat),
                "reduction_type": "element",
            }
        }

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, base={self.base}, epsilon={self.epsilon}, "
            f"mining={self.mining}, exclude_duplicates={self.exclude_duplicates}"
        )


def pml_multi_similarity(
    alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, epsilon: float = 0.1
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """pytorch-metric-learning's ``MultiSimilarityLoss`` fed by its ``MultiSimilarityMiner``: the
    well-kept reference this module is checked and benchmarked against, as ``loss(emb, labels)``."""
    from pytorch_metric_learning.losses import MultiSimilarityLoss as PMLMultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    loss, miner = PMLMultiSimilarityLoss(alpha=alpha, beta=beta, base=base), MultiSimilarityMiner(epsilon=epsilon)

    def pml(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss(emb, labels, miner(emb, labels))

    return pml
