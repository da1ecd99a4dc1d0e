"""SuperGlobal re-ranking (Shao et al., "Global Features are All You Need for Image Retrieval and
Reranking", ICCV 2023) over an exact torch k-NN index.

For each query, the top-M shortlist of an exact inner-product search is re-ranked with global features
only, at a cost of M x M per query instead of M x N:

* **Step A** (database-side refinement, ``MDescAug`` in the official code): every shortlisted
  descriptor ``x_j`` is replaced by the weighted mean of its K + 1 nearest neighbours *inside the
  shortlist* (itself first), weights ``1`` for the first and ``beta * a_t`` (their similarity) for the
  others: ``x~_j = sum_t w_t x_{n_t} / sum_t w_t`` (not re-normalised); ``r_j = q . x~_j``.
* **Step B** (query refinement, ``RerankwMDA``): ``q~`` = element-wise max of the K + 1 refined
  descriptors with the largest ``r``; the final score is ``(r_j + q~ . x~_j) / 2``.

The shortlist is re-sorted by the final score (by ``r`` with ``query_refine=False``); positions after M
keep the initial order. Vectorised over queries (batched gathers instead of the official per-query
loop) and chunked so memory stays O(chunk x M^2). Since ``x~_j`` is linear in the shortlist, the
scores are computed from similarities (``q . x~_j = sum_t w_t (q . x_{n_t}) / sum_t w_t``), so only
the K + 1 descriptors that form ``q~`` are ever materialised. faiss is not installed here:
:func:`knn_search` (matmul + top-k) is the exact ``IndexFlatIP`` equivalent.

Layout: ``gallery`` (N, d), ``queries`` (Q, d), ranks ``(Q, L)`` (query-major, unlike the official
``(N, Q)``); all descriptors are expected L2-normalised, as in the paper.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = ["SuperGlobalReranker", "knn_search", "refine_descriptors", "superglobal_rerank"]

_CONSTRAINTS = {
    "M": [Interval(int, 1, math.inf, closed="left")],
    "K": [Interval(int, 0, math.inf, closed="left")],
    "beta": [Interval(float, 0, math.inf, closed="left")],
}
_CHUNK_FLOATS = 2**24  # about 64 MB of float32 per M x M chunk


def _check_pair(gallery: torch.Tensor, queries: torch.Tensor) -> None:
    for name, t in (("gallery", gallery), ("queries", queries)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 2-D tensor of descriptors (rows, d), got {shape}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.shape[0] == 0 or t.shape[1] == 0:
            raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
        check_finite(t, name)
    if gallery.shape[1] != queries.shape[1]:
        raise ValueError(
            f"gallery has width {gallery.shape[1]} but queries have width {queries.shape[1]}: "
            "gallery and queries must have the same descriptor width d"
        )
    if gallery.dtype != queries.dtype:
        raise TypeError(f"gallery ({gallery.dtype}) and queries ({queries.dtype}) must have the same dtype")


def _check_ranks(ranks: torch.Tensor, n_queries: int, n_gallery: int) -> None:
    if not isinstance(ranks, torch.Tensor) or ranks.dim() != 2 or ranks.shape[0] != n_queries or ranks.shape[1] == 0:
        shape = tuple(ranks.shape) if isinstance(ranks, torch.Tensor) else type(ranks).__name__
        raise ValueError(f"ranks must have shape (queries, L) = ({n_queries}, L >= 1), got {shape}")
    if ranks.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ranks must be an integer (int64) tensor of gallery indices, got {ranks.dtype}")
    if int(ranks.min()) < 0 or int(ranks.max()) >= n_gallery:
        raise ValueError(
            f"ranks must hold gallery indices in [0, {n_gallery}), got [{int(ranks.min())}, {int(ranks.max())}]"
        )


def knn_search(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product k-NN (faiss ``IndexFlatIP`` semantics): ``(scores, indices)``, each
    ``(Q, min(k, N))``, best first. Chunked over queries to bound memory at about 64 MB."""
    validate_params({"k": [Interval(int, 1, math.inf, closed="left")]}, {"k": k}, owner="knn_search")
    _check_pair(gallery, queries)
    k = min(k, gallery.shape[0])
    chunk = max(1, _CHUNK_FLOATS // gallery.shape[0])
    scores, indices = [], []
    with torch.no_grad():
        for i in range(0, queries.shape[0], chunk):
            s, ix = (queries[i : i + chunk] @ gallery.T).topk(k, dim=1)
            scores.append(s)
            indices.append(ix)
    return torch.cat(scores), torch.cat(indices)


def _topk_last(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly ``sims.topk(k, dim=-1)`` (largest first), faster on the CPU (the re-ranker's hot spot:
    a top-(K+1) of every row of every M x M shortlist matrix).

    On the CPU, NumPy's ``argpartition`` (one selection pass per row) picks the k + 1 largest and
    they are sorted; where those k + 1 values are all distinct the top k is unique, so it is
    ``torch.topk``'s. Rows with a tie among them (bit-equal similarities, a few per million rows in
    float32) are handed to ``torch.topk`` itself, whose pick among equal values is its own."""
    n = sims.shape[-1]
    if sims.device.type != "cpu" or sims.dtype not in (torch.float32, torch.float64) or k + 1 >= n:
        return sims.topk(k, dim=-1)
    flat = sims.reshape(-1, n)
    a = flat.numpy()
    part = np.argpartition(a, n - k - 1, axis=1)[:, n - k - 1 :]  # the k + 1 largest, any order
    top = np.take_along_axis(a, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    part = np.take_along_axis(part, order, axis=1)
    vals, idx = torch.from_numpy(top[:, :k]), torch.from_numpy(part[:, :k])
    tied = torch.from_numpy((top[:, 1:] == top[:, :-1]).any(axis=1)).nonzero().squeeze(1)
    if tied.numel():
        vals[tied], idx[tied] = flat[tied].topk(k, dim=-1)
    shape = (*sims.shape[:-1], k)
    return vals.reshape(shape), idx.reshape(shape)


def _neighbour_weights(xt: torch.Tensor, K: int, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-(K+1) neighbours of each shortlist row inside the shortlist, and their weights
    (1 for the first, beta * similarity for the others). ``xt`` (c, M, d) -> (c, M, K+1) each."""
    vals, nb = _topk_last(xt @ xt.transpose(1, 2), K + 1)
    w = vals * beta
    w[..., 0] = 1.0
    return nb, w


def refine_descriptors(shortlist: torch.Tensor, K: int = 9, beta: float = 0.15) -> torch.Tensor:
    """Step A's refined descriptors, materialised: ``shortlist`` (B, M, d) of (L2-normalised)
    shortlisted descriptors -> ``x~`` (B, M, d), each the weighted mean of its K + 1 nearest
    neighbours in its own shortlist (weights 1, beta * a_1, ..., beta * a_K). Not re-normalised."""
    validate_params(_CONSTRAINTS, {"M": 1, "K": K, "beta": beta}, owner="refine_descriptors")
    if shortlist.dim() != 3 or shortlist.shape[1] < K + 1:
        raise ValueError(f"shortlist must have shape (B, M >= K + 1 = {K + 1}, d), got {tuple(shortlist.shape)}")
    nb, w = _neighbour_weights(shortlist, K, beta)
    b, m, k1 = nb.shape
    rows = torch.arange(b, device=nb.device)[:, None]
    neigh = shortlist[rows, nb.reshape(b, m * k1)].reshape(b, m, k1, -1)
    return (w.unsqueeze(-1) * neigh).sum(2) / w.sum(-1, keepdim=True)


def _rerank_chunk(
    gallery: torch.Tensor, q: torch.Tensor, idx: torch.Tensor, K: int, beta: float, query_refine: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    c, m = idx.shape
    xt = gallery[idx]  # (c, M, d)
    s = torch.einsum("cmd,cd->cm", xt, q)  # q . x_j
    nb, w = _neighbour_weights(xt, K, beta)
    wsum = w.sum(-1)
    flat = nb.reshape(c, m * (K + 1))
    r = (w * s.gather(1, flat).view(c, m, K + 1)).sum(-1) / wsum  # q . x~_j  (step A)
    if not query_refine:
        return r, torch.argsort(r, dim=1, descending=True, stable=True)
    top = torch.argsort(r, dim=1, descending=True, stable=True)[:, : K + 1]  # (c, K+1)
    rows = torch.arange(c, device=idx.device)[:, None]
    nb_top, w_top = nb[rows, top], w[rows, top]  # (c, K+1, K+1)
    x_top = xt[rows[:, :, None], nb_top]  # (c, K+1, K+1, d)
    refined_top = (w_top.unsqueeze(-1) * x_top).sum(2) / w_top.sum(-1, keepdim=True)
    q_ref = refined_top.amax(dim=1)  # (c, d)
    u = torch.einsum("cmd,cd->cm", xt, q_ref)
    final = (r + (w * u.gather(1, flat).view(c, m, K + 1)).sum(-1) / wsum) / 2
    return final, torch.argsort(final, dim=1, descending=True, stable=True)


def superglobal_rerank(
    gallery: torch.Tensor,
    queries: torch.Tensor,
    ranks: torch.Tensor | None = None,
    M: int = 400,
    K: int = 9,
    beta: float = 0.15,
    query_refine: bool = True,
) -> torch.Tensor:
    """SuperGlobal re-ranking of each query's top-M.

    Args:
        gallery: (N, d) L2-normalised database descriptors.
        queries: (Q, d) L2-normalised query descriptors (same width and dtype as ``gallery``).
        ranks: (Q, L) initial rankings (gallery indices, best first), e.g. the indices of
            :func:`knn_search`; ``None`` ranks the whole gallery by exact inner product (L = N).
        M: shortlist length (capped at L); K: neighbours besides the descriptor itself
            (M must be at least K + 1); beta: neighbour weight scale.
        query_refine: run Step B (query max-refinement and the averaged score); False stops after
            Step A.

    Returns:
        (Q, L) new rankings: the first min(M, L) re-sorted, the rest as in ``ranks``.
    """
    validate_params(_CONSTRAINTS, {"M": M, "K": K, "beta": beta}, owner="superglobal_rerank")
    _check_pair(gallery, queries)
    if ranks is None:
        ranks = knn_search(gallery, queries, gallery.shape[0])[1]
    _check_ranks(ranks, queries.shape[0], gallery.shape[0])
    m = min(M, ranks.shape[1])
    if m < K + 1:
        raise ValueError(f"the shortlist (M = {m}) must hold at least K + 1 = {K + 1} candidates")
    ranks = ranks.long()
    chunk = max(1, _CHUNK_FLOATS // (m * m))
    out = ranks.clone()
    with torch.no_grad():
        for i in range(0, queries.shape[0], chunk):  # chunks of queries bound the M x M memory
            idx = ranks[i : i + chunk, :m]
            _, order = _rerank_chunk(gallery, queries[i : i + chunk], idx, K, float(beta), query_refine)
            out[i : i + chunk, :m] = idx.gather(1, order)
    return out


class SuperGlobalReranker(nn.Module):
    """Module form of :func:`superglobal_rerank` (defaults M = 400, K = 9, beta = 0.15, the paper's
    released configuration): ``forward(gallery, queries, ranks=None) -> ranks``."""

    _parameter_constraints = _CONSTRAINTS

    def __init__(self, M: int = 400, K: int = 9, beta: float = 0.15, query_refine: bool = True) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"M": M, "K": K, "beta": beta}, owner=type(self).__name__)
        self.M, self.K, self.beta, self.query_refine = int(M), int(K), float(beta), bool(query_refine)

    def forward(self, gallery: torch.Tensor, queries: torch.Tensor, ranks: torch.Tensor | None = None) -> torch.Tensor:
        return superglobal_rerank(gallery, queries, ranks, self.M, self.K, self.beta, self.query_refine)

    def extra_repr(self) -> str:
        return f"M={self.M}, K={self.K}, beta={self.beta}, query_refine={self.query_refine}"


def _reference_rerank(
    gallery: torch.Tensor, queries: torch.Tensor, M: int, K: int, beta: float, query_refine: bool = True
) -> torch.Tensor:
    """Naive per-query port of the official ``MDescAug`` + ``RerankwMDA`` (materialised refined
    descriptors, full ranking); for tests only."""
    ranks = torch.argsort(gallery @ queries.T, dim=0, descending=True).T  # (Q, N)
    out = ranks.clone()
    for i in range(queries.shape[0]):
        top = ranks[i, :M]
        xt = gallery[top]
        vals, nb = (xt @ xt.T).topk(K + 1, dim=1)
        w = beta * vals
        w[:, 0] = 1.0
        refined = (w.unsqueeze(-1) * xt[nb]).sum(1) / w.sum(1, keepdim=True)
        r = refined @ queries[i]
        if query_refine:
            order = torch.argsort(r, descending=True)
            q_ref = refined[order[: K + 1]].amax(dim=0)
            r = (r + refined @ q_ref) / 2
        out[i, :M] = top[torch.argsort(r, descending=True)]
    return out
