"""Losses of OutfitTransformer (Sarkar et al., "OutfitTransformer: Learning Outfit Representations for
Fashion Recommendation", WACV 2023, arXiv 2204.04812).

* :func:`set_wise_ranking_loss` / :class:`SetWiseOutfitRankingLoss`: the set-wise outfit ranking loss of
  complementary item retrieval. For a target embedding ``e_t`` (the target-item token's output), its
  positive item ``e_p`` and a set ``N`` of negatives (same category as the positive in the paper),
  ``L_all = mean_n [m + d(e_t, e_p) - d(e_t, e_n)]_+``, ``L_hard = [m + d(e_t, e_p) - min_n d(e_t, e_n)]_+``
  and ``L = L_all + L_hard`` with d the Euclidean distance. This form is as recalled from the paper (not
  confirmed against its text); the margin is a parameter.
* :func:`focal_binary_loss` / :class:`FocalBinaryLoss`: the binary focal loss on the compatibility logit
  (``-alpha_t (1 - p_t)^gamma log p_t``); the paper's use of a focal loss for compatibility prediction is
  recalled, not confirmed; ``gamma = 0`` and ``alpha = None`` is plain BCE.

Neither is a pair-based metric loss on (embeddings, labels), so neither subclasses pytorch-metric-learning's
``BaseMetricLossFunction``: the ranking loss takes an explicit (query, positive, negatives) triple.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import REDUCTIONS, Constraint, Interval, Options, check_finite, validate_params

__all__ = ["FocalBinaryLoss", "SetWiseOutfitRankingLoss", "focal_binary_loss", "set_wise_ranking_loss"]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "margin": [Interval(float, 0, math.inf, closed="left")],
    "use_all": [Options((True, False))],
    "use_hard": [Options((True, False))],
    "reduction": [Options(REDUCTIONS)],
    "gamma": [Interval(float, 0, math.inf, closed="left")],
    "alpha": [None, Interval(float, 0, 1, closed="both")],
}


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_triple(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> None:
    for name, t in (("anchor", anchor), ("positive", positive), ("negatives", negatives)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
        check_finite(t, name)
    if anchor.dim() != 2 or anchor.shape[0] == 0:
        raise ValueError(f"anchor must be a non-empty (B, D) tensor, got shape {tuple(anchor.shape)}")
    if positive.shape != anchor.shape:
        raise ValueError(f"positive must have the anchor's shape {tuple(anchor.shape)}, got {tuple(positive.shape)}")
    if negatives.dim() != 3 or negatives.shape[0] != anchor.shape[0] or negatives.shape[2] != anchor.shape[1]:
        raise ValueError(
            f"negatives must be (B, N, D) = ({anchor.shape[0]}, N, {anchor.shape[1]}), got {tuple(negatives.shape)}"
        )
    if negatives.shape[1] == 0:
        raise ValueError("negatives must hold at least one negative per query (N >= 1)")


def set_wise_ranking_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    margin: float = 0.5,
    use_all: bool = True,
    use_hard: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """Set-wise outfit ranking loss ``L_all + L_hard`` (either term can be switched off).

    Args:
        anchor: (B, D) target embeddings ``e_t``.
        positive: (B, D) embeddings of the true complementary items.
        negatives: (B, N, D) embeddings of N negatives per query.
        margin: the hinge margin m >= 0.
        use_all, use_hard: include ``L_all`` (mean hinge over negatives) / ``L_hard`` (hinge of the nearest).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per query, shape (B,)).
    """
    validate_params(
        _PARAMETER_CONSTRAINTS,
        {"margin": margin, "use_all": use_all, "use_hard": use_hard, "reduction": reduction},
        owner="set_wise_ranking_loss",
    )
    if not (use_all or use_hard):
        raise ValueError("set_wise_ranking_loss: at least one of use_all and use_hard must be True")
    _check_triple(anchor, positive, negatives)
    # Euclidean distances; the clamp keeps the gradient of sqrt finite at coincident points
    d_pos = (anchor - positive).pow(2).sum(-1).clamp_min(1e-12).sqrt()  # (B,)
    d_neg = (anchor.unsqueeze(1) - negatives).pow(2).sum(-1).clamp_min(1e-12).sqrt()  # (B, N)
    loss = anchor.new_zeros(anchor.shape[0])
    if use_all:
        loss = loss + F.relu(margin + d_pos.unsqueeze(1) - d_neg).mean(1)
    if use_hard:
        loss = loss + F.relu(margin + d_pos - d_neg.min(1).values)
    return _reduce(loss, reduction)


class SetWiseOutfitRankingLoss(nn.Module):
    """Module form of :func:`set_wise_ranking_loss`: ``forward(anchor, positive, negatives)``."""

    def __init__(
        self, margin: float = 0.5, use_all: bool = True, use_hard: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        validate_params(
            _PARAMETER_CONSTRAINTS,
            {"margin": margin, "use_all": use_all, "use_hard": use_hard, "reduction": reduction},
            owner="SetWiseOutfitRankingLoss",
        )
        if not (use_all or use_hard):
            raise ValueError("SetWiseOutfitRankingLoss: at least one of use_all and use_hard must be True")
        self.margin, self.use_all, self.use_hard, self.reduction = margin, use_all, use_hard, reduction

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return set_wise_ranking_loss(
            anchor, positive, negatives, self.margin, self.use_all, self.use_hard, self.reduction
        )


def focal_binary_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Binary focal loss on logits: ``-alpha_t (1 - p_t)^gamma log p_t`` with ``p = sigmoid(logits)``.

    Args:
        logits: (B,) compatibility logits.
        targets: (B,) labels in {0, 1} (float or integer).
        gamma: focusing parameter >= 0 (0: BCE, weighted by alpha_t).
        alpha: weight of the positive class in [0, 1] (negatives get 1 - alpha); None: no weighting.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    validate_params(
        _PARAMETER_CONSTRAINTS, {"gamma": gamma, "alpha": alpha, "reduction": reduction}, owner="focal_binary_loss"
    )
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor")
    if logits.dim() != 1 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty (B,) tensor, got shape {tuple(logits.shape)}")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape:
        raise ValueError(f"targets must be a tensor of shape {tuple(logits.shape)}")
    check_finite(logits, "logits")
    t = targets.to(logits.dtype)
    if bool(((t != 0) & (t != 1)).any()):
        raise ValueError("targets must be in {0, 1}")
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")  # -log p_t, stable
    loss = ce if gamma == 0 else ce * (1.0 - torch.exp(-ce)).pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
    return _reduce(loss, reduction)


class FocalBinaryLoss(nn.Module):
    """Module form of :func:`focal_binary_loss`: ``forward(logits (B,), targets (B,))``."""

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean") -> None:
        super().__init__()
        validate_params(
            _PARAMETER_CONSTRAINTS, {"gamma": gamma, "alpha": alpha, "reduction": reduction}, owner="FocalBinaryLoss"
        )
        self.gamma, self.alpha, self.reduction = gamma, alpha, reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_binary_loss(logits, targets, self.gamma, self.alpha, self.reduction)
