"""MLLM-as-a-judge hard-negative mining of UniME-V2 (Gu et al., "UniME-V2: MLLM-as-a-Judge for
Universal Multimodal Embedding Learning", AAAI 2026, the hard-negative mining section), with offline
stand-ins for the judge.

The pipeline per training query ``q`` with labelled positive ``c+`` (:class:`JudgeMiner`):

1. **global retrieval**: cosine top-``top_k`` (50) of the candidate pool by an existing embedder,
   the labelled positive excluded; the **delta filter** keeps only candidates strictly less
   similar to ``q`` than ``c+`` is ("query-candidate >= query-positive => reject");
2. **judge scoring**: a judge gives each (q, c) its Yes-probability ``s = e_yes / (e_yes + e_no)``
   (:func:`yes_probability`), for the kept candidates and for ``c+``;
3. **false-negative (beta) filter**: candidates with ``s > s(q, c+) - beta`` (beta = 0.01) are
   dropped (they match the query about as well as the positive);
4. **cyclic sampling**: from the rest, in retrieval order, ``num_hard_negatives`` (10) are taken
   at ranks ``0, stride, 2 stride, ...`` with ``stride = max(1, n // num)``, wrapping around
   (duplicates only when fewer than ``num`` remain); a row with nothing left is filled with
   random pool candidates that pass the beta filter (scored by the judge).

The MLLM judge itself cannot run offline. Judges here share one interface, ``judge(query_idx (N,),
cand_idx (N, k)) -> (N, k) scores in [0, 1]`` (:class:`Judge`):

* :class:`StructuredOracleJudge`: for data with known slots (e.g. a scene's colour / noun per
  position), ``m`` = number of matching slots and ``s = sigmoid(a (m - offset))``, the same
  two-token softmax with a logit difference linear in ``m``;
* :class:`TeacherSimilarityJudge`: a stronger frozen encoder's cosine ``c``, ``s = sigmoid((c - b) / t)``
  with ``b`` fitted so the labelled positives average a target score (:meth:`TeacherSimilarityJudge.fit`);
* :class:`CrossEncoderJudge`: a sentence-transformers ``CrossEncoder`` over text pairs.

Also here: the metrics of the toolkit for judge-scored retrieval (:func:`rowwise_spearman`,
:func:`ndcg_at_k`, :func:`recall_at_k`). Everything is vectorised over queries (no loop over pairs
except the cross-encoder's batched ``predict``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params

__all__ = [
    "CrossEncoderJudge",
    "Judge",
    "JudgeMiner",
    "MinedNegatives",
    "StructuredOracleJudge",
    "TeacherSimilarityJudge",
    "cyclic_sample",
    "ndcg_at_k",
    "recall_at_k",
    "rowwise_spearman",
    "yes_probability",
]


class Judge(Protocol):
    """A judge: Yes-probabilities (N, k) in [0, 1] for queries ``query_idx`` (N,) and their
    candidates ``cand_idx`` (N, k) (indices into the judge's own query and candidate lists)."""

    def __call__(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor: ...


def yes_probability(logit_yes: torch.Tensor, logit_no: torch.Tensor) -> torch.Tensor:
    """The judge's score ``e_yes / (e_yes + e_no) = sigmoid(logit_yes - logit_no)``: the two-way
    softmax over the "Yes" and "No" tokens' logits at the answer position."""
    return torch.sigmoid(logit_yes - logit_no)


def _check_index(idx: torch.Tensor, name: str, n: int, dims: int) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer torch.Tensor")
    if idx.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimension(s), got shape {tuple(idx.shape)}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"{name} must lie in [0, {n}), got values in [{int(idx.min())}, {int(idx.max())}]")


def _check_pairs(query_idx: torch.Tensor, cand_idx: torch.Tensor, n_query: int, n_cand: int) -> None:
    _check_index(query_idx, "query_idx", n_query, 1)
    _check_index(cand_idx, "cand_idx", n_cand, 2)
    if cand_idx.shape[0] != query_idx.shape[0]:
        raise ValueError(f"cand_idx must have {query_idx.shape[0]} rows (one per query), got {cand_idx.shape[0]}")


def _check_matrix(x: torch.Tensor, name: str, cols: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N, D)")
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got {tuple(x.shape)}")
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got {x.shape[1]}")
    check_finite(x, name)


# --------------------------------------------------------------------------- judges
class StructuredOracleJudge:
    """An oracle judge for data whose queries and candidates are described by slots.

    ``m`` = number of the ``S`` slots on which candidate and query agree (slots are compared
    position by position, so the caller canonicalises paraphrases first: "a red bag to the
    right of a blue shoe" has the slots of "a blue shoe to the left of a red bag"). The judge's
    logit difference is ``a (m - offset)`` and its score ``sigmoid(a (m - offset))``, i.e. a
    Yes/No two-token softmax graded by the number of correct slots. With 4 slots, ``a = 4`` and
    ``offset = 3.5``: 0.881 for a full match, 0.119 with one slot wrong, 0.0025 with two.

    Args:
        query_slots: (Nq, S) integer slot values of the queries.
        cand_slots: (Nc, S) integer slot values of the candidates (canonical order).
        a: slope of the logit difference per correct slot.
        offset: the ``m`` at which the judge is undecided (0.5); default ``S - 0.5``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "a": [Interval(float, 0, math.inf, closed="neither")],
        "offset": [Interval(float, -math.inf, math.inf, closed="neither"), None],
    }

    def __init__(
        self, query_slots: torch.Tensor, cand_slots: torch.Tensor, a: float = 4.0, offset: float | None = None
    ) -> None:
        validate_params(self._parameter_constraints, {"a": a, "offset": offset}, owner=type(self).__name__)
        for name, s in (("query_slots", query_slots), ("cand_slots", cand_slots)):
            if not isinstance(s, torch.Tensor) or s.dtype.is_floating_point or s.dim() != 2 or s.shape[0] == 0:
                raise ValueError(f"{name} must be a non-empty integer torch.Tensor of shape (N, S)")
        if query_slots.shape[1] != cand_slots.shape[1]:
            raise ValueError(
                f"cand_slots must have as many slots as query_slots ({query_slots.shape[1]}), got {cand_slots.shape[1]}"
            )
        self.query_slots, self.cand_slots = query_slots.long(), cand_slots.long()
        self.a = float(a)
        self.offset = float(query_slots.shape[1] - 0.5 if offset is None else offset)

    def matches(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor:
        """(N, k) number of matching slots."""
        _check_pairs(query_idx, cand_idx, len(self.query_slots), len(self.cand_slots))
        return (self.query_slots[query_idx][:, None, :] == self.cand_slots[cand_idx]).sum(-1)

    def __call__(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor:
        m = self.matches(query_idx, cand_idx).double()
        return yes_probability(self.a * (m - self.offset), torch.zeros_like(m)).float()


class TeacherSimilarityJudge:
    """A judge from a stronger frozen encoder: ``s = sigmoid((cos(e_q, e_c) - bias) / scale)``.

    Args:
        query_emb: (Nq, D) teacher embeddings of the queries.
        cand_emb: (Nc, D) teacher embeddings of the candidates (normalised here).
        bias, scale: the calibration; :meth:`fit` chooses ``bias`` so the labelled positives
            average a target score.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "bias": [Interval(float, -math.inf, math.inf, closed="neither")],
        "scale": [Interval(float, 0, math.inf, closed="neither")],
        "target": [Interval(float, 0, 1, closed="neither")],
    }

    def __init__(self, query_emb: torch.Tensor, cand_emb: torch.Tensor, bias: float = 0.5, scale: float = 0.05) -> None:
        validate_params(self._parameter_constraints, {"bias": bias, "scale": scale}, owner=type(self).__name__)
        _check_matrix(query_emb, "query_emb")
        _check_matrix(cand_emb, "cand_emb", query_emb.shape[1])
        self.query_emb = F.normalize(query_emb.float(), dim=1)
        self.cand_emb = F.normalize(cand_emb.float(), dim=1)
        self.bias, self.scale = float(bias), float(scale)

    def cosine(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor:
        """(N, k) teacher cosines."""
        _check_pairs(query_idx, cand_idx, len(self.query_emb), len(self.cand_emb))
        return torch.einsum("nd,nkd->nk", self.query_emb[query_idx], self.cand_emb[cand_idx])

    def __call__(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((self.cosine(query_idx, cand_idx) - self.bias) / self.scale)

    @classmethod
    def fit(
        cls,
        query_emb: torch.Tensor,
        cand_emb: torch.Tensor,
        positive_idx: torch.Tensor,
        target: float = 0.9,
        scale: float = 0.05,
    ) -> TeacherSimilarityJudge:
        """The judge whose ``bias`` makes the mean score of the labelled positives ``target``
        (bisection; the mean is monotone in ``bias``), at the given ``scale``."""
        validate_params(cls._parameter_constraints, {"target": target, "scale": scale}, owner=cls.__name__)
        judge = cls(query_emb, cand_emb, 0.0, scale)
        _check_index(positive_idx, "positive_idx", len(judge.cand_emb), 1)
        if positive_idx.shape[0] != len(judge.query_emb):
            raise ValueError(f"positive_idx must have shape ({len(judge.query_emb)},), got {tuple(positive_idx.shape)}")
        cos = judge.cosine(torch.arange(len(judge.query_emb)), positive_idx[:, None]).double()
        lo, hi = float(cos.min()) - 40 * scale, float(cos.max()) + 40 * scale
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if float(torch.sigmoid((cos - mid) / scale).mean()) > target:
                lo = mid
            else:
                hi = mid
        judge.bias = 0.5 * (lo + hi)
        return judge


class CrossEncoderJudge:
    """A judge from a sentence-transformers ``CrossEncoder`` (or any object with
    ``predict(pairs, batch_size=...)`` returning one score per (query, candidate) text pair).

    Args:
        cross_encoder: the model.
        query_texts, cand_texts: the texts the indices refer to.
        activation: ``"sigmoid"`` to turn raw logits into Yes-probabilities, ``"none"`` when the
            model already outputs probabilities in [0, 1].
        batch_size: pairs per ``predict`` batch.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "activation": [Options(("sigmoid", "none"))],
        "batch_size": [Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(
        self,
        cross_encoder: Any,
        query_texts: Sequence[str],
        cand_texts: Sequence[str],
        activation: str = "sigmoid",
        batch_size: int = 64,
    ) -> None:
        validate_params(
            self._parameter_constraints, {"activation": activation, "batch_size": batch_size}, owner=type(self).__name__
        )
        if not hasattr(cross_encoder, "predict"):
            raise TypeError("cross_encoder must have a predict(pairs, batch_size=...) method")
        self.model, self.activation, self.batch_size = cross_encoder, activation, int(batch_size)
        self.query_texts, self.cand_texts = list(query_texts), list(cand_texts)

    def __call__(self, query_idx: torch.Tensor, cand_idx: torch.Tensor) -> torch.Tensor:
        _check_pairs(query_idx, cand_idx, len(self.query_texts), len(self.cand_texts))
        qi = query_idx[:, None].expand_as(cand_idx).reshape(-1).tolist()
        pairs = [(self.query_texts[q], self.cand_texts[c]) for q, c in zip(qi, cand_idx.reshape(-1).tolist())]
        scores = torch.as_tensor(np.asarray(self.model.predict(pairs, batch_size=self.batch_size)), dtype=torch.float32)
        if self.activation == "sigmoid":
            scores = torch.sigmoid(scores)
        return scores.reshape(cand_idx.shape)


# --------------------------------------------------------------------------- mining
def cyclic_sample(valid: torch.Tensor, num: int) -> torch.Tensor:
    """Cyclic sampling of ``num`` positions per row among the ``True`` entries of ``valid``
    (N, k), which are taken in column order (retrieval order): ranks ``0, stride, 2 stride, ...``
    of the valid list with ``stride = max(1, n // num)``, modulo ``n`` (wrapping around).

    Returns (N, num) column indices into ``valid``; -1 for rows without a valid entry. With
    ``n >= num`` the picks are distinct and span the list; with ``n < num`` every valid entry is
    taken and the list repeats.
    """
    if valid.dim() != 2 or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor of shape (N, k), got {valid.dtype} {tuple(valid.shape)}")
    n = valid.sum(1)  # (N,)
    # positions of the valid entries first, in column order (stable sort on "is invalid")
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
    stride = torch.clamp(n // num, min=1)
    ranks = (torch.arange(num, device=valid.device)[None, :] * stride[:, None]) % torch.clamp(n, min=1)[:, None]
    picks = order.gather(1, ranks)
    return torch.where(n[:, None] > 0, picks, torch.full_like(picks, -1))


@dataclass
class MinedNegatives:
    """What :class:`JudgeMiner.mine` returns, one row per query (tensors on the CPU).

    ``negatives`` (N, num) candidate indices (hard-negative order), ``negative_scores`` (N, num)
    their judge scores, ``positive_scores`` (N,) the judge's score of the labelled positive,
    ``negative_sims`` (N, num) their retrieval cosines, ``retrieved`` (N, top_k) the raw top-k,
    ``n_kept`` (N,) candidates left after both filters, ``n_delta_rejected`` / ``n_beta_rejected``
    (N,) how many each filter removed, ``filled_randomly`` (N,) rows with nothing left.
    """

    negatives: torch.Tensor
    negative_scores: torch.Tensor
    positive_scores: torch.Tensor
    negative_sims: torch.Tensor
    retrieved: torch.Tensor
    n_kept: torch.Tensor
    n_delta_rejected: torch.Tensor
    n_beta_rejected: torch.Tensor
    filled_randomly: torch.Tensor

    def to_rows(
        self,
        queries: Sequence[tuple[str, str | None]],
        candidates: Sequence[tuple[str, str | None]],
        positive_idx: torch.Tensor,
    ) -> list[dict[str, Any]]:
        """The rows in the layout of the released mined data: ``query_text, query_image,
        pos_text, pos_image, query_pos_scores, hard_negatives ([text, image] each),
        hard_negatives_scores``. ``queries`` / ``candidates`` are (text, image path or None)."""
        rows = []
        for i, (qt, qimg) in enumerate(queries):
            pt, pimg = candidates[int(positive_idx[i])]
            rows.append(
                {
                    "query_text": qt,
                    "query_image": qimg,
                    "pos_text": pt,
                    "pos_image": pimg,
                    "query_pos_scores": float(self.positive_scores[i]),
                    "hard_negatives": [list(candidates[int(c)]) for c in self.negatives[i]],
                    "hard_negatives_scores": [float(s) for s in self.negative_scores[i]],
                }
            )
        return rows


class JudgeMiner:
    """UniME-V2's judge-based hard-negative mining (retrieval, delta filter, judge scoring,
    beta false-negative filter, cyclic sampling); see the module docstring.

    Args:
        judge: a :class:`Judge`.
        top_k: candidates retrieved per query (the paper: 50).
        beta: the false-negative margin (0.01); ``None`` switches the filter off (hard negatives
            may then include candidates the judge rates as good as the positive).
        num_hard_negatives: negatives kept per query (10).
        sampling: ``"cyclic"`` (the paper) or ``"top"`` (the ``num`` most similar survivors).
        delta_filter: reject candidates at least as similar to the query as the positive.
        chunk_size: queries per similarity block (memory ``chunk_size x pool``).
        seed: for the random fill of rows with no surviving candidate.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "top_k": [Interval(int, 1, math.inf, closed="left")],
        "beta": [Interval(float, -math.inf, math.inf, closed="neither"), None],
        "num_hard_negatives": [Interval(int, 1, math.inf, closed="left")],
        "sampling": [Options(("cyclic", "top"))],
        "delta_filter": [Options((True, False))],
        "chunk_size": [Interval(int, 1, math.inf, closed="left")],
        "seed": [Interval(int, 0, math.inf, closed="left")],
    }

    def __init__(
        self,
        judge: Judge,
        top_k: int = 50,
        beta: float | None = 0.01,
        num_hard_negatives: int = 10,
        sampling: str = "cyclic",
        delta_filter: bool = True,
        chunk_size: int = 1024,
        seed: int = 0,
    ) -> None:
        params = {
            "top_k": top_k,
            "beta": beta,
            "num_hard_negatives": num_hard_negatives,
            "sampling": sampling,
            "delta_filter": delta_filter,
            "chunk_size": chunk_size,
            "seed": seed,
        }
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        if not callable(judge):
            raise TypeError("judge must be callable: judge(query_idx (N,), cand_idx (N, k)) -> (N, k) scores")
        self.judge = judge
        self.top_k, self.beta, self.num = int(top_k), beta, int(num_hard_negatives)
        self.sampling, self.delta_filter = sampling, delta_filter
        self.chunk_size, self.seed = int(chunk_size), int(seed)

    def retrieve(
        self, query_emb: torch.Tensor, cand_emb: torch.Tensor, positive_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cosine top-``top_k`` per query with the labelled positive excluded:
        (indices (N, k), cosines (N, k), cosine of the positive (N,))."""
        q = F.normalize(query_emb.float(), dim=1)
        c = F.normalize(cand_emb.float(), dim=1)
        k = min(self.top_k, c.shape[0] - 1)
        idx, sims, pos = [], [], []
        for start in range(0, q.shape[0], self.chunk_size):
            s = q[start : start + self.chunk_size] @ c.T
            p = positive_idx[start : start + self.chunk_size]
            rows = torch.arange(s.shape[0])
            pos.append(s[rows, p].clone())
            s[rows, p] = -math.inf
            v, i = s.topk(k, dim=1)
            idx.append(i)
            sims.append(v)
        return torch.cat(idx), torch.cat(sims), torch.cat(pos)

    def mine(
        self,
        query_emb: torch.Tensor,
        cand_emb: torch.Tensor,
        positive_idx: torch.Tensor,
        query_idx: torch.Tensor | None = None,
    ) -> MinedNegatives:
        """Mine hard negatives for every query.

        Args:
            query_emb: (N, D) retriever embeddings of the queries.
            cand_emb: (M, D) retriever embeddings of the candidate pool (M >= 2).
            positive_idx: (N,) each query's labelled positive in the pool.
            query_idx: (N,) the queries' indices in the judge's query list (default ``arange(N)``).
        """
        _check_matrix(query_emb, "query_emb")
        _check_matrix(cand_emb, "cand_emb", query_emb.shape[1])
        n_q, n_c = query_emb.shape[0], cand_emb.shape[0]
        if n_c < 2:
            raise ValueError(f"cand_emb must hold at least 2 candidates (the positive and one more), got {n_c}")
        _check_index(positive_idx, "positive_idx", n_c, 1)
        if positive_idx.shape[0] != n_q:
            raise ValueError(f"positive_idx must have shape ({n_q},), got {tuple(positive_idx.shape)}")
        query_idx = torch.arange(n_q) if query_idx is None else query_idx
        _check_index(query_idx, "query_idx", 2**62, 1)
        if query_idx.shape[0] != n_q:
            raise ValueError(f"query_idx must have shape ({n_q},), got {tuple(query_idx.shape)}")
        positive_idx = positive_idx.long()

        with torch.no_grad():
            top, sims, pos_sim = self.retrieve(query_emb, cand_emb, positive_idx)
            valid = sims < pos_sim[:, None] if self.delta_filter else torch.ones_like(sims, dtype=torch.bool)
            n_delta = (~valid).sum(1)
            scores = self.judge(query_idx, top).float()
            pos_scores = self.judge(query_idx, positive_idx[:, None]).float()[:, 0]
            n_beta = torch.zeros_like(n_delta)
            if self.beta is not None:
                false_neg = scores > pos_scores[:, None] - self.beta
                n_beta = (valid & false_neg).sum(1)
                valid = valid & ~false_neg
            if self.sampling == "cyclic":
                cols = cyclic_sample(valid, self.num)
            else:
                cols = _top_sample(valid, self.num)
            empty = cols[:, 0] < 0
            safe = cols.clamp(min=0)
            negatives = top.gather(1, safe)
            neg_scores = scores.gather(1, safe)
            neg_sims = sims.gather(1, safe)
            if bool(empty.any()):
                negatives, neg_scores, neg_sims = self._fill(
                    empty, negatives, neg_scores, neg_sims, query_emb, cand_emb, positive_idx, query_idx
                )
        return MinedNegatives(
            negatives=negatives,
            negative_scores=neg_scores,
            positive_scores=pos_scores,
            negative_sims=neg_sims,
            retrieved=top,
            n_kept=valid.sum(1),
            n_delta_rejected=n_delta,
            n_beta_rejected=n_beta,
            filled_randomly=empty,
        )

    def _fill(
        self,
        empty: torch.Tensor,
        negatives: torch.Tensor,
        neg_scores: torch.Tensor,
        neg_sims: torch.Tensor,
        query_emb: torch.Tensor,
        cand_emb: torch.Tensor,
        positive_idx: torch.Tensor,
        query_idx: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random pool candidates for the rows with no survivor: never the positive, and (with
        the beta filter on) redrawn, up to 20 times, while the judge rates them above
        ``s+ - beta``."""
        rows = empty.nonzero()[:, 0]
        gen = torch.Generator().manual_seed(self.seed)
        n_c = cand_emb.shape[0]
        pos_scores = self.judge(query_idx[rows], positive_idx[rows][:, None]).float()
        draw = torch.zeros(len(rows), self.num, dtype=torch.long)
        scores = torch.zeros(len(rows), self.num)
        redo = torch.ones(len(rows), self.num, dtype=torch.bool)
        for _ in range(20):
            new = torch.randint(0, n_c - 1, (len(rows), self.num), generator=gen)
            new = new + (new >= positive_idx[rows][:, None]).long()  # skip the positive
            draw = torch.where(redo, new, draw)
            scores = self.judge(query_idx[rows], draw).float()
            if self.beta is None:
                break
            redo = scores > pos_scores - self.beta
            if not bool(redo.any()):
                break
        negatives, neg_scores, neg_sims = negatives.clone(), neg_scores.clone(), neg_sims.clone()
        negatives[rows], neg_scores[rows] = draw, scores
        q = F.normalize(query_emb[rows].float(), dim=1)
        neg_sims[rows] = torch.einsum("nd,nkd->nk", q, F.normalize(cand_emb.float(), dim=1)[draw])
        return negatives, neg_scores, neg_sims


def _top_sample(valid: torch.Tensor, num: int) -> torch.Tensor:
    """The first ``num`` valid columns (retrieval order), repeating when fewer remain; -1 rows
    when none does."""
    n = valid.sum(1)
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
    ranks = torch.arange(num, device=valid.device)[None, :] % torch.clamp(n, min=1)[:, None]
    picks = order.gather(1, ranks)
    return torch.where(n[:, None] > 0, picks, torch.full_like(picks, -1))


# --------------------------------------------------------------------------- metrics
def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks (0-based) with ties given their average rank, (N, k)."""
    less = (x[:, None, :] < x[:, :, None]).sum(-1).double()
    equal = (x[:, None, :] == x[:, :, None]).sum(-1).double()
    return less + (equal - 1) / 2


def rowwise_spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (N, k) -> (N,),
    ties ranked by their average (as ``scipy.stats.spearmanr``); NaN for a constant row."""
    if a.shape != b.shape or a.dim() != 2 or a.shape[1] < 2:
        raise ValueError(f"a and b must have the same shape (N, k) with k >= 2, got {tuple(a.shape)}, {tuple(b.shape)}")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(den > 0, (ra * rb).sum(1) / den, torch.full_like(den, math.nan))


def ndcg_at_k(scores: torch.Tensor, relevance: torch.Tensor, k: int = 10) -> torch.Tensor:
    """nDCG@k per row (N,) of ranking the columns by ``scores`` with graded ``relevance`` (N, m)
    (e.g. judge scores), gains ``relevance`` and discounts ``1 / log2(rank + 2)``."""
    if scores.shape != relevance.shape or scores.dim() != 2:
        raise ValueError(f"scores and relevance must have the same shape (N, m), got {tuple(scores.shape)}")
    k = min(k, scores.shape[1])
    disc = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64) + 2)
    rel = relevance.double()
    dcg = (rel.gather(1, scores.topk(k, dim=1).indices) * disc).sum(1)
    ideal = (rel.topk(k, dim=1).values * disc).sum(1)
    return torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.zeros_like(dcg))


def recall_at_k(scores: torch.Tensor, correct: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """R@k: the fraction of rows whose top-k columns of ``scores`` (N, M) include a ``True`` of
    ``correct`` (N, M) (several correct candidates per query allowed, e.g. a caption and its
    paraphrase)."""
    if scores.shape != correct.shape or scores.dim() != 2:
        raise ValueError(f"scores and correct must have the same shape (N, M), got {tuple(scores.shape)}")
    top = scores.topk(max(ks), dim=1).indices
    hit = correct.gather(1, top)
    return {k: float(hit[:, :k].any(1).float().mean()) for k in ks}
