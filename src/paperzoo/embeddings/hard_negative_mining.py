"""Hard-negative mining with ranking-consistency filtering, as in KaLM-Embedding (Zhao et al., 2025,
arXiv:2506.20923; the reference is ``train/hn_mine.py`` of the official repository).

For each training row (query, positives) the previous-stage model retrieves the top ``range_max``
passages of a candidate pool by inner product of normalised embeddings. Then:

* **ranking-consistency filter** (new in KaLM; sentence-transformers' ``mine_hard_negatives``
  has no such step): the row is dropped when its best positive scores below the passage at
  0-based rank ``top_k`` (default 50), i.e. when no positive is among the model's top-k, the
  sign of a mislabelled or ambiguous pair. Pools of at most ``top_k`` passages keep every row;
* **negatives**: ``num_negatives`` (default 7) drawn uniformly at random from the passages at
  ranks ``[range_min, range_max)`` (default 50-100) that are neither a positive nor the query text;
  rows short of candidates are padded with random non-positive pool passages.

:func:`ranking_consistency_filter` and :func:`sample_hard_negatives` work on embeddings (any
encoder, e.g. cached features plus an adapter); :func:`mine_and_filter` encodes texts with a
``SentenceTransformer`` (its ``encode``, with an optional query prompt) and applies both.
sentence-transformers' own ``util.mine_hard_negatives`` samples the same rank window
(``range_min=50, range_max=100, sampling_strategy="random"``) but needs the ``datasets`` package,
which the toolkit's ``text`` extra does not install; with it, filter its input rows with
:func:`ranking_consistency_filter` first and the result is the same recipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo._validation import Constraint, Interval, check_finite, validate_params

__all__ = ["mine_and_filter", "ranking_consistency_filter", "sample_hard_negatives"]

_CHUNK = 2048  # query rows per similarity block, bounds memory at _CHUNK x corpus

_PARAMS: dict[str, list[Constraint]] = {
    "top_k": [Interval(int, 0, math.inf, closed="left")],
    "range_min": [Interval(int, 0, math.inf, closed="left")],
    "range_max": [Interval(int, 1, math.inf, closed="left")],
    "num_negatives": [Interval(int, 1, math.inf, closed="left")],
}


def _check_emb(x: Tensor, name: str, d: int | None = None) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 2:
        raise ValueError(f"{name} must be a floating-point tensor of shape (n, d)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} must have {d} columns (the query width), got {x.shape[1]}")
    check_finite(x, name)


def _positive_ids(positive_ids: Tensor | Sequence[Sequence[int]], n_queries: int, n_corpus: int) -> Tensor:
    """(Q, P) long tensor padded with -1 from a tensor (Q,) / (Q, P) or a list of id lists."""
    if isinstance(positive_ids, Tensor):
        ids = positive_ids.long()
        ids = ids.view(-1, 1) if ids.dim() == 1 else ids
    else:
        rows = [list(r) if isinstance(r, (list, tuple, np.ndarray)) else [int(r)] for r in positive_ids]
        width = max((len(r) for r in rows), default=0)
        ids = torch.full((len(rows), max(width, 1)), -1, dtype=torch.long)
        for i, r in enumerate(rows):  # one row per training example, run once before training
            ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    if ids.dim() != 2 or ids.shape[0] != n_queries:
        raise ValueError(f"positive_ids must give the positives of each of the {n_queries} queries")
    if bool((ids >= n_corpus).any()) or bool((ids < -1).any()):
        raise ValueError(f"positive_ids must lie in [0, {n_corpus}) (-1 pads rows with fewer positives)")
    if bool((ids.max(dim=1).values < 0).any()):
        raise ValueError("positive_ids: every query needs at least one positive")
    return ids


def ranking_consistency_filter(
    query_emb: Tensor, positive_ids: Tensor | Sequence[Sequence[int]], corpus_emb: Tensor, top_k: int = 50
) -> Tensor:
    """Keep mask (Q,) bool: True iff the query's best positive scores at least as high as the
    corpus passage at 0-based rank ``top_k`` (the positive is within the top-k).

    Args:
        query_emb: (Q, d) query embeddings; corpus_emb: (C, d) pool embeddings (both normalised
            here, so scores are cosines).
        positive_ids: each query's positive passage(s) as indices into the pool: (Q,) / (Q, P)
            (pad with -1) or a list of lists.
        top_k: rank threshold (the reference default 50); a pool of at most ``top_k`` passages keeps all.
    """
    validate_params(_PARAMS, {"top_k": top_k}, owner="ranking_consistency_filter")
    _check_emb(query_emb, "query_emb")
    _check_emb(corpus_emb, "corpus_emb", query_emb.shape[1])
    ids = _positive_ids(positive_ids, query_emb.shape[0], corpus_emb.shape[0]).to(query_emb.device)
    q, c = F.normalize(query_emb, dim=-1), F.normalize(corpus_emb, dim=-1)
    if c.shape[0] <= top_k:
        return torch.ones(q.shape[0], dtype=torch.bool, device=q.device)
    keep = []
    for s in range(0, q.shape[0], _CHUNK):
        scores = q[s : s + _CHUNK] @ c.T
        kth = scores.topk(top_k + 1, dim=1).values[:, -1]
        pid = ids[s : s + _CHUNK]
        pos = scores.gather(1, pid.clamp_min(0)).masked_fill(pid < 0, -torch.inf).max(dim=1).values
        keep.append(pos >= kth)
    return torch.cat(keep)


def sample_hard_negatives(
    query_emb: Tensor,
    corpus_emb: Tensor,
    positive_ids: Tensor | Sequence[Sequence[int]],
    num_negatives: int = 7,
    range_min: int = 50,
    range_max: int = 100,
    exclude_ids: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(Q, num_negatives) pool indices: a uniform sample of ranks ``[range_min, range_max)`` of each
    query's retrieval list, minus its positives (and ``exclude_ids`` (Q,), e.g. the query's own text
    in the pool; -1 for none), padded with random non-positive passages when the window is short.
    """
    validate_params(
        _PARAMS,
        {"num_negatives": num_negatives, "range_min": range_min, "range_max": range_max},
        owner="sample_hard_negatives",
    )
    if range_min >= range_max:
        raise ValueError(f"range_min must be < range_max, got {range_min} >= {range_max}")
    _check_emb(query_emb, "query_emb")
    _check_emb(corpus_emb, "corpus_emb", query_emb.shape[1])
    n_q, n_c = query_emb.shape[0], corpus_emb.shape[0]
    ids = _positive_ids(positive_ids, n_q, n_c).to(query_emb.device)
    if exclude_ids is not None:
        ex = torch.as_tensor(exclude_ids, dtype=torch.long, device=ids.device).view(-1, 1)
        if ex.shape[0] != n_q or bool((ex >= n_c).any()):
            raise ValueError(f"exclude_ids must have shape ({n_q},) with values in [-1, {n_c})")
        ids = torch.cat([ids, ex], dim=1)
    if n_c - 1 < num_negatives:
        raise ValueError(f"num_negatives={num_negatives} exceeds the pool of {n_c} passages")
    q, c = F.normalize(query_emb, dim=-1), F.normalize(corpus_emb, dim=-1)
    hi = min(range_max, n_c)
    out = []
    for s in range(0, n_q, _CHUNK):
        scores = q[s : s + _CHUNK] @ c.T
        pid = ids[s : s + _CHUNK]
        window = scores.topk(hi, dim=1).indices[:, range_min:]  # (b, <= range_max - range_min)
        bad = (window.unsqueeze(-1) == pid.unsqueeze(1)).any(-1)
        # uniform sample without replacement: random keys, invalid candidates last
        keys = torch.rand(window.shape, generator=generator, device=window.device).masked_fill(bad, 2.0)
        take = min(num_negatives, window.shape[1])
        order = keys.topk(take, dim=1, largest=False)
        chosen = window.gather(1, order.indices)
        short = order.values > 1.0  # not enough valid candidates in the window
        if take < num_negatives:
            chosen = torch.cat([chosen, chosen.new_zeros(chosen.shape[0], num_negatives - take)], dim=1)
            short = torch.cat([short, short.new_ones(short.shape[0], num_negatives - take)], dim=1)
        if bool(short.any()):
            rows = short.any(1).nonzero().squeeze(1)
            taken = torch.cat([pid[rows], chosen[rows].masked_fill(short[rows], -1)], dim=1)
            used = torch.zeros((len(rows), n_c + 1), dtype=torch.bool, device=window.device)
            used.scatter_(1, taken + 1, True)  # column 0 collects the -1 padding
            pool_keys = torch.rand((len(rows), n_c), generator=generator, device=window.device)
            pool_keys = pool_keys.masked_fill(used[:, 1:], 2.0)
            fill = pool_keys.topk(num_negatives, dim=1, largest=False).indices  # distinct, non-positive
            rank = short[rows].long().cumsum(1) - 1
            chosen[rows] = torch.where(short[rows], fill.gather(1, rank.clamp_min(0)), chosen[rows])
        out.append(chosen)
    return torch.cat(out)


def mine_and_filter(
    queries: Sequence[str],
    positives: Sequence[str] | Sequence[Sequence[str]],
    model: Any,
    corpus: Sequence[str] | None = None,
    top_k: int | None = 50,
    num_negatives: int = 7,
    range_min: int = 50,
    range_max: int = 100,
    query_prompt: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Mine hard negatives for (query, positive(s)) rows with a ``SentenceTransformer`` and drop the
    rows that fail the ranking-consistency filter.

    The pool is ``corpus`` (default: every positive, de-duplicated) plus the positives. Returns the
    kept rows as ``{"index", "query", "pos": [...], "neg": [...]}`` (``index`` into the input), in input
    order, ready for an (anchor, positive, negative_1, ...) sentence-transformers dataset.
    ``top_k=None`` mines without filtering.
    """
    queries = list(queries)
    if not queries:
        raise ValueError("queries is empty: it has 0 entries")
    pos_lists = [[p] if isinstance(p, str) else list(p) for p in positives]
    if len(pos_lists) != len(queries):
        raise ValueError(f"positives must have one entry per query ({len(queries)}), got {len(pos_lists)}")
    if any(not p for p in pos_lists):
        raise ValueError("positives: every query needs at least one positive text")
    pool = list(dict.fromkeys([*(corpus or []), *(t for p in pos_lists for t in p)]))
    where = {t: i for i, t in enumerate(pool)}
    pos_ids = [[where[t] for t in p] for p in pos_lists]
    enc = dict(batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False)
    with torch.no_grad():
        q_emb = model.encode(queries, prompt=query_prompt, **enc).float().cpu()
        c_emb = model.encode(pool, **enc).float().cpu()
    keep = (
        ranking_consistency_filter(q_emb, pos_ids, c_emb, top_k)
        if top_k is not None
        else torch.ones(len(queries), dtype=torch.bool)
    )
    kept = keep.nonzero().squeeze(1)
    if len(kept) == 0:
        return []
    exclude = torch.tensor([where.get(queries[i], -1) for i in kept.tolist()])
    g = torch.Generator().manual_seed(seed)
    neg = sample_hard_negatives(
        q_emb[kept], c_emb, [pos_ids[i] for i in kept.tolist()], num_negatives, range_min, range_max, exclude, g
    )
    return [
        {"index": i, "query": queries[i], "pos": pos_lists[i], "neg": [pool[j] for j in row]}
        for i, row in zip(kept.tolist(), neg.tolist())
    ]
