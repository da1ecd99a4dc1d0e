"""KaLM-Embedding's Matryoshka InfoNCE (Zhao et al., 2025, arXiv:2506.20923), an exact replica of
the reference ``CustomMatryoshkaLoss`` for parity checks.

Training uses sentence-transformers' ``MatryoshkaLoss(model, loss, matryoshka_dims, matryoshka_weights)``
around :class:`~paperzoo.embeddings.focal_infonce.FocalMultipleNegativesRankingLoss` (or MNRL): it
truncates the embeddings to each dimension, the cosine similarity re-normalises them, and it sums
the weighted losses, which is what the reference does. This module re-states the reference on raw
tensors so that the equivalence is tested rather than assumed:

* query embeddings q (N, d) and passages P (N*G, d) laid out query-major
  ``[p_1^+, p_{1,1}^-, ..., p_{1,M}^-, p_2^+, ...]`` (G = 1 + M), un-normalised;
* for each dimension m: keep the first m coordinates, L2-normalise, scores ``q P^T / tau``
  (all N*G passages in every row with ``use_inbatch_neg``; only the query's own G otherwise),
  cross-entropy with target ``i*G`` (``0`` without in-batch negatives);
* the weighted sum over dimensions (not divided by the weights' sum). The released script uses
  dims (896, 512, 256, 128, 64) with weights (1, 0.3, 0.2, 0.1, 0.1).

``gamma > 0`` swaps the cross-entropy for :func:`~paperzoo.embeddings.focal_infonce.focal_infonce`
(KaLM-V2's focal weight); ``gamma = 0`` is the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params

from .focal_infonce import _focal

__all__ = ["KaLMMatryoshkaInfoNCE", "kalm_matryoshka_infonce"]

_CONSTRAINTS: dict[str, list[Constraint]] = {
    "temperature": [Interval(float, 0, math.inf, closed="neither")],
    "use_inbatch_neg": [Options((True, False))],
    "gamma": [Interval(float, 0, math.inf, closed="left")],
}


def _check(q: Tensor, p: Tensor, dims: Sequence[int], weights: Sequence[float] | None) -> list[float]:
    if not isinstance(q, Tensor) or not q.is_floating_point() or q.dim() != 2:
        raise ValueError("q_reps must be a floating-point tensor of shape (N, d)")
    if not isinstance(p, Tensor) or p.dim() != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"p_reps must have shape (N*G, {q.shape[1]}), got {tuple(getattr(p, 'shape', ()))}")
    if q.shape[0] == 0:
        raise ValueError("empty batch: q_reps has 0 rows")
    if p.shape[0] == 0 or p.shape[0] % q.shape[0]:
        raise ValueError(f"p_reps must have a positive multiple of N = {q.shape[0]} rows, got {p.shape[0]}")
    check_finite(q, "q_reps")
    check_finite(p, "p_reps")
    dims = list(dims)
    if not dims or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= q.shape[1] for m in dims):
        raise ValueError(f"dims must be a non-empty list of ints in [1, {q.shape[1]}], got {dims}")
    w = [1.0] * len(dims) if weights is None else [float(x) for x in weights]
    if len(w) != len(dims) or any(not math.isfinite(x) or x < 0 for x in w):
        raise ValueError(f"weights must be {len(dims)} finite non-negative numbers, got {weights}")
    return w


def kalm_matryoshka_infonce(
    q_reps: Tensor,
    p_reps: Tensor,
    dims: Sequence[int],
    weights: Sequence[float] | None = None,
    temperature: float = 0.02,
    use_inbatch_neg: bool = True,
    gamma: float = 0.0,
) -> Tensor:
    """The reference Matryoshka InfoNCE, a scalar (see the module docstring)."""
    validate_params(
        _CONSTRAINTS,
        {"temperature": temperature, "use_inbatch_neg": use_inbatch_neg, "gamma": gamma},
        owner="kalm_matryoshka_infonce",
    )
    w = _check(q_reps, p_reps, dims, weights)
    n = q_reps.shape[0]
    group = p_reps.shape[0] // n
    loss = q_reps.new_zeros(())
    for m, weight in zip(dims, w):
        q = F.normalize(q_reps[:, :m], dim=-1)
        p = F.normalize(p_reps[:, :m], dim=-1)
        if use_inbatch_neg:
            scores = q @ p.T / temperature
            target = torch.arange(n, device=q.device) * group
        else:
            scores = torch.einsum("nd,ngd->ng", q, p.view(n, group, -1)) / temperature
            target = torch.zeros(n, dtype=torch.long, device=q.device)
        loss = loss + weight * _focal(scores, target, float(gamma), False, "mean")
    return loss


class KaLMMatryoshkaInfoNCE(nn.Module):
    """Module form of :func:`kalm_matryoshka_infonce`: ``forward(q_reps, p_reps) -> scalar``."""

    def __init__(
        self,
        dims: Sequence[int],
        weights: Sequence[float] | None = None,
        temperature: float = 0.02,
        use_inbatch_neg: bool = True,
        gamma: float = 0.0,
    ) -> None:
        super().__init__()
        validate_params(
            _CONSTRAINTS,
            {"temperature": temperature, "use_inbatch_neg": use_inbatch_neg, "gamma": gamma},
            owner=type(self).__name__,
        )
        self.dims, self.weights = tuple(dims), None if weights is None else tuple(float(x) for x in weights)
        self.temperature, self.use_inbatch_neg, self.gamma = float(temperature), bool(use_inbatch_neg), float(gamma)

    def forward(self, q_reps: Tensor, p_reps: Tensor) -> Tensor:
        return kalm_matryoshka_infonce(
            q_reps, p_reps, self.dims, self.weights, self.temperature, self.use_inbatch_neg, self.gamma
        )
