"""General Pair Weighting (GPW), the analysis tool of Wang et al., "Multi-Similarity Loss with
General Pair Weighting for Deep Metric Learning" (CVPR 2019): the paper's General Pair Weighting
framework, Eqs. (1)-(3).

For a pair-based loss written as a function ``L(S, y)`` of the similarity matrix ``S``, the pair
weight is ``w_ij = |dL/dS_ij|`` with the sign convention ``dL/dS_ij <= 0`` on positive pairs and
``>= 0`` on negative pairs. Since ``dL/dtheta = sum_ij (dL/dS_ij) dS_ij/dtheta``, one SGD step on
``L`` equals one step on ``sum_i [sum_{j in N_i} w_ij S_ij - sum_{j in P_i} w_ij S_ij]`` with
``w`` held constant; losses then differ only in how they weight pairs.

* :func:`gpw_pair_weights` computes the weights of any loss of ``S`` by autograd;
* :func:`ms_pair_weights` gives the closed-form weights of the MS loss (the paper's
  Eqs. (13)-(14));
* the reference pair losses the paper analyses (its Eqs. (4)-(10)) written as functions of ``S``
  (each summed over its pairs, anchors or triplets, so that a pair's weight is not scaled by the
  batch):
  :func:`contrastive_pair_loss`, :func:`triplet_pair_loss`, :func:`binomial_deviance_pair_loss`,
  :func:`lifted_structure_pair_loss` (all in :data:`REFERENCE_PAIR_LOSSES`).

Rows are anchors: ``S_ij`` and ``S_ji`` are separate variables, as in the MS official code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from paperzoo._validation import check_similarity_labels, validate_params
from paperzoo.losses.multi_similarity import (
    DUPLICATE_EPS,
    MultiSimilarityLoss,
    _log1p_sum_exp,
    _mine,
)

__all__ = [
    "REFERENCE_PAIR_LOSSES",
    "binomial_deviance_pair_loss",
    "contrastive_pair_loss",
    "gpw_pair_weights",
    "lifted_structure_pair_loss",
    "ms_pair_weights",
    "pair_masks",
    "triplet_pair_loss",
]

PairLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (B, B) masks of all positive pairs (same label, ``i != j``) and negative pairs."""
    same = labels[:, None] == labels[None, :]
    pos = same.clone()
    pos.fill_diagonal_(False)
    return pos, ~same


# --------------------------------------------------------------------------- GPW weights
def gpw_pair_weights(loss_fn: PairLoss, S: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair weights of any loss of the similarity matrix, by autograd (the paper's Eqs. (1)-(3)).

    Args:
        loss_fn: ``loss_fn(S, labels) -> scalar`` (e.g. :func:`contrastive_pair_loss` or
            :func:`paperzoo.losses.multi_similarity.multi_similarity_loss`).
        S: (B, B) similarity matrix (a copy is differentiated; ``S`` is not modified).
        labels: (B,) integer labels.

    Returns:
        ``(W_pos, W_neg)``, each (B, B): ``W_pos = -dL/dS`` on positive pairs and
        ``W_neg = +dL/dS`` on negative pairs, 0 elsewhere (the diagonal included). Both are
        ``>= 0`` (equal to ``|dL/dS|``) for losses that follow the sign convention; a negative
        entry flags a loss that pushes that pair the wrong way.
    """
    check_similarity_labels(S, labels)
    leaf = S.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(leaf, labels)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        (grad,) = torch.autograd.grad(loss.reshape(()), leaf, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(leaf)
    pos, neg = pair_masks(labels.to(S.device))
    zero = torch.zeros((), dtype=S.dtype, device=S.device)
    return torch.where(pos, -grad, zero), torch.where(neg, grad, zero)


def ms_pair_weights(
    S: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
    *,
    mining: bool = True,
    exclude_duplicates: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form GPW weights of the MS loss, the paper's Eqs. (14) (``w+``) and (13) (``w-``),
    before the ``1/m`` of the mean::

        w+_ij = 1 / (exp(alpha (S_ij - base)) + sum_{k in P^_i} exp(-alpha (S_ik - S_ij)))
        w-_ij = 1 / (exp(-beta (S_ij - base)) + sum_{k in N^_i} exp( beta (S_ik - S_ij)))

    on the kept pairs ``P^_i``, ``N^_i`` of the paper's pair-mining step, 0 elsewhere; computed
    stably as ``exp(t_ij - log(1 + sum_k exp(t_ik)))``. So ``dL_MS/dS = (W_neg - W_pos) / m``.

    Returns:
        ``(W_pos, W_neg)``, each (B, B).
    """
    check_similarity_labels(S, labels)
    validate_params(
        MultiSimilarityLoss._parameter_constraints,
        {"alpha": alpha, "beta": beta, "base": base, "epsilon": epsilon},
        owner="ms_pair_weights",
    )
    same = labels[:, None] == labels[None, :]
    dup = 1.0 - DUPLICATE_EPS if exclude_duplicates else None
    S = S.detach()
    pos, neg = _mine(S, same, float(epsilon), mining, dup, exclude_diagonal=True)
    t_pos, t_neg = -alpha * (S - base), beta * (S - base)
    log_den_pos = _log1p_sum_exp(t_pos, pos)  # log(1 + sum_{P^_i} exp(t_pos))
    log_den_neg = _log1p_sum_exp(t_neg, neg)
    zero = torch.zeros((), dtype=S.dtype, device=S.device)
    w_pos = torch.where(pos, torch.exp(t_pos - log_den_pos[:, None]), zero)
    w_neg = torch.where(neg, torch.exp(t_neg - log_den_neg[:, None]), zero)
    return w_pos, w_neg


# --------------------------------------------------------------------------- reference pair losses
def contrastive_pair_loss(
    S: torch.Tensor, labels: torch.Tensor, pos_margin: float = 1.0, neg_margin: float = 0.5
) -> torch.Tensor:
    """Contrastive loss on similarities, summed over pairs (cf. the paper's Eq. (4))::

        sum_{j in P_i} [pos_margin - S_ij]_+ + sum_{j in N_i} [S_ij - neg_margin]_+

    With ``pos_margin = 1`` (cosine ``S <= 1``) the positive term is ``1 - S_ij``, Eq. (4)'s
    ``-S_ij`` up to a constant: weight 1 for every positive and for every negative with
    ``S_ij > neg_margin`` (self-similarity only).
    """
    check_similarity_labels(S, labels)
    pos, neg = pair_masks(labels.to(S.device))
    return (F.relu(pos_margin - S) * pos).sum() + (F.relu(S - neg_margin) * neg).sum()


def triplet_pair_loss(S: torch.Tensor, labels: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Triplet loss on similarities over all triplets ``(i, p, n)``, summed (the paper's Eq. (5))::

        sum_i sum_{p in P_i} sum_{n in N_i} [S_in - S_ip + margin]_+

    A pair's weight counts the margin-violating triplets it belongs to (1 per triplet).
    Builds a (B, B, B) tensor: for analysis-sized batches.
    """
    check_similarity_labels(S, labels)
    pos, neg = pair_masks(labels.to(S.device))
    viol = F.relu(S[:, None, :] - S[:, :, None] + margin)  # [i, p, n]
    return (viol * (pos[:, :, None] & neg[:, None, :])).sum()


def binomial_deviance_pair_loss(
    S: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5
) -> torch.Tensor:
    """Binomial deviance on similarities, summed over pairs (cf. the paper's Eq. (9))::

        sum_{j in P_i} (1/alpha) log(1 + exp(-alpha (S_ij - base)))
        + sum_{j in N_i} (1/beta) log(1 + exp(beta (S_ij - base)))

    Weights are sigmoids of the self-similarity: ``w+ = 1 / (1 + exp(alpha (S - base)))``,
    ``w- = 1 / (1 + exp(-beta (S - base)))`` (cf. Eq. (10)). Eq. (9) averages each anchor's terms
    with ``1/P_i`` and ``1/N_i`` instead of scaling them by ``1/alpha`` and ``1/beta``, so its
    weights are these times ``alpha/P_i`` and ``beta/N_i``.
    """
    check_similarity_labels(S, labels)
    pos, neg = pair_masks(labels.to(S.device))
    zero = torch.zeros((), dtype=S.dtype, device=S.device)
    # logaddexp(0, x) = log(1 + e^x) exactly (F.softplus switches to x above 20)
    lp = torch.logaddexp(zero, -alpha * (S - base)) / alpha
    ln = torch.logaddexp(zero, beta * (S - base)) / beta
    return (lp * pos).sum() + (ln * neg).sum()


def lifted_structure_pair_loss(S: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Lifted structure loss in the similarity form of the MS paper (its Eq. (6)), summed over
    anchors::

        sum_i [ log sum_{k in P_i} exp(margin - S_ik) + log sum_{k in N_i} exp(S_ik) ]_+

    (anchors with no positive or no negative contribute 0). A negative's weight is its softmax
    over the anchor's negatives: relative similarity to the other negatives (the weights of
    Eqs. (7)-(8)).
    """
    check_similarity_labels(S, labels)
    pos, neg = pair_masks(labels.to(S.device))
    valid = pos.any(1) & neg.any(1)
    # rows without both kinds use all entries (finite, discarded below) so no NaN gradient arises
    lse_pos = torch.logsumexp((margin - S).masked_fill(~pos & valid[:, None], float("-inf")), dim=1)
    lse_neg = torch.logsumexp(S.masked_fill(~neg & valid[:, None], float("-inf")), dim=1)
    inner = torch.where(valid, lse_pos + lse_neg, torch.zeros_like(lse_pos))
    return F.relu(inner).sum()


REFERENCE_PAIR_LOSSES: dict[str, PairLoss] = {
    "contrastive": contrastive_pair_loss,
    "triplet": triplet_pair_loss,
    "binomial deviance": binomial_deviance_pair_loss,
    "lifted structure": lifted_structure_pair_loss,
}
"""The reference pair losses (the paper's Eqs. (4)-(10)), with default hyper-parameters, by name."""
