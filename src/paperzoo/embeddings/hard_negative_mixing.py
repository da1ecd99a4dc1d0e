"""Online hard-negative mixing of KaLM-Embedding-V2 (Zhao et al., 2025, arXiv:2506.20923).

The paper enriches each query's negatives during fine-tuning by synthesising new ones in
embedding space from the query's hardest negatives, so that mining need not be repeated. It
names MoCHi (Kalantidis et al., 2020) as the inspiration and gives no constants; this module
implements the MoCHi form, with the toolkit's defaults (not the paper's):

1. rank the query's candidate negatives by their current similarity and keep the top ``k_mix``;
2. pair mixing: ``h = normalize(lam * n_a + (1 - lam) * n_b)`` for ``n_pair_mix`` random pairs
   a != b of the top-k set, ``lam ~ U(0, 1)``;
3. query mixing: ``h' = normalize(beta * q + (1 - beta) * n_c)``, ``beta ~ U(0, beta_max)``,
   ``beta_max = 0.5`` (so ``h'`` stays closer to the negative), for ``n_query_mix`` random c;
4. the synthetic embeddings are detached (stop-gradient, as in MoCHi) and only their cosine
   similarities to their own query are returned, to be appended to that query's row.

:func:`mix_negatives` is the pure tensor form with given indices and coefficients;
:class:`HardNegativeMixer` draws them (``generator`` for reproducible draws) and is what
:class:`~paperzoo.embeddings.focal_infonce.FocalMultipleNegativesRankingLoss` takes as ``mixing=``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params

__all__ = ["HardNegativeMixer", "mix_negatives"]


def _check_qn(queries: Tensor, negatives: Tensor) -> None:
    if not isinstance(queries, Tensor) or not queries.is_floating_point() or queries.dim() != 2:
        raise ValueError("queries must be a floating-point tensor of shape (N, d)")
    if not isinstance(negatives, Tensor) or negatives.dim() != 3:
        raise ValueError(f"negatives must have shape (N, M, d), got {tuple(getattr(negatives, 'shape', ()))}")
    n, d = queries.shape
    if n == 0:
        raise ValueError("empty batch: queries has 0 rows")
    if negatives.shape[0] != n or negatives.shape[2] != d:
        raise ValueError(f"negatives must have shape ({n}, M, {d}), got {tuple(negatives.shape)}")
    if negatives.shape[1] == 0:
        raise ValueError("negatives has 0 candidates per query (M = 0)")
    check_finite(queries, "queries")
    check_finite(negatives, "negatives")


def mix_negatives(
    queries: Tensor,
    negatives: Tensor,
    pair_index: Tensor | None = None,
    lam: Tensor | None = None,
    query_index: Tensor | None = None,
    beta: Tensor | None = None,
    detach: bool = True,
) -> Tensor:
    """Synthetic negatives from given mixing indices and coefficients, (N, H1 + H2, d), unit norm.

    Args:
        queries: (N, d) query embeddings (normalised here).
        negatives: (N, M, d) each query's candidate negatives (normalised here).
        pair_index: (N, H1, 2) indices a, b into each row's M negatives; ``lam``: (N, H1) in [0, 1],
            giving ``normalize(lam * n_a + (1 - lam) * n_b)``.
        query_index: (N, H2) indices c; ``beta``: (N, H2), giving ``normalize(beta * q + (1 - beta) * n_c)``.
        detach: return the synthetic embeddings without gradient (MoCHi's stop-gradient).
    """
    _check_qn(queries, negatives)
    q = F.normalize(queries, dim=-1)
    neg = F.normalize(negatives, dim=-1)
    n, m, d = neg.shape
    rows = torch.arange(n, device=neg.device)
    parts = []
    if pair_index is not None:
        if lam is None or pair_index.dim() != 3 or pair_index.shape[::2] != (n, 2) or lam.shape != pair_index.shape[:2]:
            raise ValueError("pair_index must have shape (N, H1, 2) and lam shape (N, H1)")
        if pair_index.numel() and (int(pair_index.min()) < 0 or int(pair_index.max()) >= m):
            raise ValueError(f"pair_index must lie in [0, {m})")
        a = neg[rows[:, None], pair_index[..., 0]]
        b = neg[rows[:, None], pair_index[..., 1]]
        w = lam.to(neg.dtype).unsqueeze(-1)
        parts.append(F.normalize(w * a + (1 - w) * b, dim=-1))
    if query_index is not None:
        if beta is None or query_index.dim() != 2 or query_index.shape[0] != n or beta.shape != query_index.shape:
            raise ValueError("query_index must have shape (N, H2) and beta the same shape")
        if query_index.numel() and (int(query_index.min()) < 0 or int(query_index.max()) >= m):
            raise ValueError(f"query_index must lie in [0, {m})")
        c = neg[rows[:, None], query_index]
        w = beta.to(neg.dtype).unsqueeze(-1)
        parts.append(F.normalize(w * q.unsqueeze(1) + (1 - w) * c, dim=-1))
    out = torch.cat(parts, dim=1) if parts else neg.new_zeros(n, 0, d)
    return out.detach() if detach else out


class HardNegativeMixer(nn.Module):
    """Draws MoCHi-style synthetic hard negatives and returns their cosine similarity to their query.

    ``forward(queries (N, d), negatives (N, M, d)) -> (N, H1 + H2)`` similarities (not scaled by
    the temperature); gradients flow into ``queries`` only when ``detach`` (the default).

    Args:
        k_mix: how many of the query's most similar candidates are mixed (``None``: all M).
        n_pair_mix: H1, pair mixes per query (``None``: M, the toolkit default).
        n_query_mix: H2, query mixes per query (default 0: pair mixing only).
        beta_max: upper bound of the query-mixing coefficient, in (0, 0.5].
        detach: stop-gradient through the synthetic embeddings.
        generator: a ``torch.Generator`` for the draws (on the device of the inputs); ``None`` uses
            the global RNG.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "k_mix": [Interval(int, 1, math.inf, closed="left"), None],
        "n_pair_mix": [Interval(int, 0, math.inf, closed="left"), None],
        "n_query_mix": [Interval(int, 0, math.inf, closed="left")],
        "beta_max": [Interval(float, 0, 0.5, closed="right")],
        "detach": [Options((True, False))],
    }

    def __init__(
        self,
        k_mix: int | None = None,
        n_pair_mix: int | None = None,
        n_query_mix: int = 0,
        beta_max: float = 0.5,
        detach: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"k_mix": k_mix, "n_pair_mix": n_pair_mix, "n_query_mix": n_query_mix, "beta_max": beta_max,
             "detach": detach},
            owner=type(self).__name__,
        )  # fmt: skip
        self.k_mix, self.n_pair_mix, self.n_query_mix = k_mix, n_pair_mix, int(n_query_mix)
        self.beta_max, self.detach, self.generator = float(beta_max), bool(detach), generator

    def _draw(self, sims: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """Mixing indices and coefficients from the (N, M) query-candidate similarities."""
        n, m = sims.shape
        k = min(self.k_mix or m, m)
        h1 = m if self.n_pair_mix is None else self.n_pair_mix
        h2 = self.n_query_mix
        g, dev = self.generator, sims.device
        top = sims.topk(k, dim=1).indices  # (N, k), hardest first
        pair_index = lam = query_index = beta = None
        if h1 > 0 and k >= 2:
            a = torch.randint(0, k, (n, h1), generator=g, device=dev)
            b = (a + torch.randint(1, k, (n, h1), generator=g, device=dev)) % k  # b != a
            pair_index = torch.stack([top.gather(1, a), top.gather(1, b)], dim=-1)
            lam = torch.rand(n, h1, generator=g, device=dev, dtype=sims.dtype)
        if h2 > 0:
            query_index = top.gather(1, torch.randint(0, k, (n, h2), generator=g, device=dev))
            beta = self.beta_max * torch.rand(n, h2, generator=g, device=dev, dtype=sims.dtype)
        return pair_index, lam, query_index, beta

    def synthesize(self, queries: Tensor, negatives: Tensor) -> Tensor:
        """The synthetic negatives themselves, (N, H1 + H2, d), unit norm."""
        _check_qn(queries, negatives)
        with torch.no_grad():
            sims = torch.einsum("nd,nmd->nm", F.normalize(queries, dim=-1), F.normalize(negatives, dim=-1))
        return mix_negatives(queries, negatives, *self._draw(sims), detach=self.detach)

    def forward(self, queries: Tensor, negatives: Tensor) -> Tensor:
        _check_qn(queries, negatives)
        return self.logits(F.normalize(queries, dim=-1), F.normalize(negatives, dim=-1))

    def logits(self, q: Tensor, neg: Tensor) -> Tensor:
        """:meth:`forward` on inputs already normalised and validated (the losses' fast path).

        With ``detach`` the similarities are computed in closed form from ``q . n`` and the
        candidates' pairwise cosines, never materialising the synthetic embeddings:
        ``q . normalize(lam a + (1 - lam) b) = (lam q.a + (1 - lam) q.b) / sqrt(lam^2 + (1 - lam)^2 + 2 lam (1 - lam) a.b)``
        (and likewise for query mixes); the gradient reaches ``q`` only, as through detached embeddings.
        """
        if not self.detach:
            with torch.no_grad():
                sims = torch.einsum("nd,nmd->nm", q, neg)
            synthetic = mix_negatives(q, neg, *self._draw(sims), detach=False)
            return torch.einsum("nd,nhd->nh", q, synthetic)
        neg = neg.detach()
        s = torch.einsum("nd,nmd->nm", q, neg)  # (N, M), gradient into q only
        pair_index, lam, query_index, beta = self._draw(s.detach())
        parts = []
        if pair_index is not None and lam is not None:
            a, b = pair_index[..., 0], pair_index[..., 1]
            with torch.no_grad():
                gram = torch.bmm(neg, neg.transpose(1, 2))  # (N, M, M)
                ab = gram.flatten(1).gather(1, a * neg.shape[1] + b)
                norm = (lam * lam + (1 - lam) ** 2 + 2 * lam * (1 - lam) * ab).clamp_min(0).sqrt().clamp_min(1e-12)
            parts.append((lam * s.gather(1, a) + (1 - lam) * s.gather(1, b)) / norm)
        if query_index is not None and beta is not None:
            sc = s.gather(1, query_index)
            with torch.no_grad():
                norm = (beta * beta + (1 - beta) ** 2 + 2 * beta * (1 - beta) * sc).clamp_min(0).sqrt().clamp_min(1e-12)
            qq = (q * q.detach()).sum(-1, keepdim=True)  # 1, with the gradient of q . q_detached
            parts.append((beta * qq + (1 - beta) * sc) / norm)
        return torch.cat(parts, dim=1) if parts else s.new_zeros(s.shape[0], 0)

    def extra_repr(self) -> str:
        return (
            f"k_mix={self.k_mix}, n_pair_mix={self.n_pair_mix}, n_query_mix={self.n_query_mix}, "
            f"beta_max={self.beta_max}, detach={self.detach}"
        )
