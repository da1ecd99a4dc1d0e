"""A score-based analogue of the UniME-V2-Reranker objective (Gu et al., "UniME-V2: MLLM-as-a-Judge
for Universal Multimodal Embedding Learning", AAAI 2026, the reranker section).

The paper's reranker is a generative MLLM trained on the judge-mined negatives with three
sequences per query: "Yes" for (q, c+), "No" for (q, c-_1) (pairwise) and the index of ``c+`` in a
list of ``c+`` and the first hard negatives (listwise). With a reranker that outputs one real score
``r(q, c)`` per pair, the "Yes"/"No" tokens become a binary head and the index answer a softmax
over the list::

    L = BCE(r(q, c+), 1) + BCE(r(q, c-_1), 0) + CE(softmax([r(q, c+), r(q, c-_1..n)]), c+)

:func:`pairwise_listwise_rerank_loss` / :class:`PairwiseListwiseRerankLoss` compute it from
the reranker's scores; :class:`PairReranker` is a small MLP reranker over
``[e_q, e_c, e_q * e_c, |e_q - e_c|]`` for embedding features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import REDUCTIONS, Constraint, Interval, Options, check_finite, validate_params
from paperzoo.losses.base import reduce_loss, upcast_low_precision

__all__ = ["PairReranker", "PairwiseListwiseRerankLoss", "pairwise_listwise_rerank_loss"]

_CONSTRAINTS: dict[str, list[Constraint]] = {
    "list_size": [Interval(int, 1, math.inf, closed="left")],
    "reduction": [Options(REDUCTIONS)],
}


def pairwise_listwise_rerank_loss(scores: torch.Tensor, list_size: int = 5, reduction: str = "mean") -> torch.Tensor:
    """The joint pairwise + listwise reranking loss of reranker logits ``scores`` (B, 1 + K),
    column 0 the positive, columns 1.. the hard negatives in mined order.

    Per query: ``BCE(s_0, 1) + BCE(s_1, 0) + CE over columns [0, list_size]`` with target 0
    (the list holds the positive and the first ``list_size`` negatives, fewer if K is smaller;
    the paper uses 5).
    """
    validate_params(
        _CONSTRAINTS, {"list_size": list_size, "reduction": reduction}, owner="pairwise_listwise_rerank_loss"
    )
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError("scores must be a floating-point torch.Tensor of shape (B, 1 + K)")
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must have shape (B, 1 + K) with K >= 1, got {tuple(scores.shape)}")
    if scores.shape[0] == 0:
        raise ValueError("empty batch: scores has 0 rows")
    check_finite(scores, "scores")
    s = upcast_low_precision(scores)
    pairwise = F.softplus(-s[:, 0]) + F.softplus(s[:, 1])  # BCE-with-logits to 1 and to 0
    lst = s[:, : list_size + 1]
    listwise = torch.logsumexp(lst, dim=1) - lst[:, 0]
    return reduce_loss(pairwise + listwise, reduction)


class PairwiseListwiseRerankLoss(nn.Module):
    """Module form of :func:`pairwise_listwise_rerank_loss`: ``forward(scores (B, 1 + K))``."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = _CONSTRAINTS

    def __init__(self, list_size: int = 5, reduction: str = "mean") -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints, {"list_size": list_size, "reduction": reduction}, owner=type(self).__name__
        )
        self.list_size, self.reduction = int(list_size), reduction

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return pairwise_listwise_rerank_loss(scores, self.list_size, self.reduction)


class PairReranker(nn.Module):
    """An MLP reranker ``r(q, c)`` over ``[e_q, e_c, e_q * e_c, |e_q - e_c|]``.

    ``forward(query (B, Dq), candidates (B, k, Dc))`` -> (B, k) logits; ``query_dim`` and
    ``cand_dim`` are projected to ``dim`` first so image and text features can differ in size.
    """

    def __init__(self, query_dim: int, cand_dim: int, dim: int = 128, hidden: Sequence[int] = (256,)) -> None:
        super().__init__()
        for name, v in (("query_dim", query_dim), ("cand_dim", cand_dim), ("dim", dim)):
            validate_params({name: [Interval(int, 1, math.inf, closed="left")]}, {name: v}, owner="PairReranker")
        self.query_proj, self.cand_proj = nn.Linear(query_dim, dim), nn.Linear(cand_dim, dim)
        layers: list[nn.Module] = []
        width = 4 * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, query: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        if query.dim() != 2 or candidates.dim() != 3 or candidates.shape[0] != query.shape[0]:
            raise ValueError(
                f"query must be (B, Dq) and candidates (B, k, Dc) with the same B, got {tuple(query.shape)} and "
                f"{tuple(candidates.shape)}"
            )
        q = self.query_proj(query)[:, None, :].expand(-1, candidates.shape[1], -1)
        c = self.cand_proj(candidates)
        return self.mlp(torch.cat([q, c, q * c, (q - c).abs()], dim=-1)).squeeze(-1)
