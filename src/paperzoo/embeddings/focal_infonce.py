"""Focal-style reweighted InfoNCE of KaLM-Embedding-V2 (Zhao et al., 2025, arXiv:2506.20923), as a
sentence-transformers loss.

The paper's fine-tuning objective multiplies each query's InfoNCE term by ``(1 - p_i)^gamma``,
where ``p_i`` is the softmax probability of the query's positive among all candidates of the
batch (its positive, every other query's positive and every hard negative), so that queries
whose positive already wins contribute less::

    L = mean_i  -(1 - p_i)^gamma * log p_i,     p_i = exp(s(q_i, p_i^+)/tau) / Z_i

``gamma = 0`` recovers InfoNCE. The paper gives neither its gamma nor whether the weight is
detached; the toolkit keeps the gradient through the weight (as focal loss does) unless
``detach_weight=True``.

:func:`focal_infonce` is the pure tensor form on a score matrix. :class:`FocalMultipleNegativesRankingLoss`
is a subclass of sentence-transformers' ``MultipleNegativesRankingLoss`` (reused for the model, the scale
``1/tau``, the similarity and the cross-device gather): only the per-query weight is new, plus the optional
online hard-negative mixing of :mod:`paperzoo.embeddings.hard_negative_mixing` (``mixing=``). With
``gamma=0`` and no mixing it returns MNRL's value. It has MNRL's signature ``forward(sentence_features,
labels)``, so it drops into ``SentenceTransformerTrainer`` and can be wrapped by ``MatryoshkaLoss``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo._validation import REDUCTIONS, Constraint, Interval, Options, check_logits_target, validate_params

from .hard_negative_mixing import HardNegativeMixer

try:  # the ``text`` extra
    from sentence_transformers import util as _st_util
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss as _MNRL
except ImportError:  # pragma: no cover - exercised only without the extra
    _MNRL = None  # type: ignore[assignment,misc]
    _st_util = None  # type: ignore[assignment]

__all__ = ["FocalMultipleNegativesRankingLoss", "focal_infonce"]

_FOCAL_CONSTRAINTS: dict[str, list[Constraint]] = {
    "gamma": [Interval(float, 0, math.inf, closed="left")],
    "detach_weight": [Options((True, False))],
    "reduction": [Options(REDUCTIONS)],
}


def focal_infonce(
    scores: Tensor,
    target: Tensor,
    gamma: float = 1.0,
    detach_weight: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Focal-weighted InfoNCE ``-(1 - p_i)^gamma log p_i`` on a score matrix.

    Args:
        scores: (N, C) logits, i.e. similarities already divided by the temperature.
        target: (N,) column of each row's positive.
        gamma: focusing parameter, >= 0 (0 gives ``F.cross_entropy(scores, target)``).
        detach_weight: stop the gradient through ``(1 - p_i)^gamma``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-row losses).
    """
    validate_params(
        _FOCAL_CONSTRAINTS,
        {"gamma": gamma, "detach_weight": detach_weight, "reduction": reduction},
        owner="focal_infonce",
    )
    check_logits_target(scores, target, min_classes=1)
    return _focal(scores, target, float(gamma), detach_weight, reduction)


def _focal(scores: Tensor, target: Tensor, gamma: float, detach_weight: bool, reduction: str) -> Tensor:
    work = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
    log_p = work.gather(1, target.view(-1, 1)).squeeze(1) - torch.logsumexp(work, dim=1)
    if gamma == 0.0:
        per = -log_p
    else:
        # 1 - p as -expm1(log p): exact for p close to 1; clamped so that (1 - p)^gamma has a finite
        # derivative for gamma < 1 (the clamp only bites where the loss itself is ~0)
        one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(work.dtype).tiny)
        weight = one_minus_p.pow(gamma)
        if detach_weight:
            weight = weight.detach()
        per = -weight * log_p
    per = per.to(scores.dtype)
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    return per


if _MNRL is not None:
    _Base: Any = _MNRL
else:  # pragma: no cover

    class _Base(torch.nn.Module):  # type: ignore[no-redef]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(
                "FocalMultipleNegativesRankingLoss needs sentence-transformers (the 'text' extra): "
                "pip install 'paperzoo[text]'"
            )


class FocalMultipleNegativesRankingLoss(_Base):  # type: ignore[misc,valid-type]
    """``MultipleNegativesRankingLoss`` with KaLM-Embedding-V2's focal weight and optional online
    hard-negative mixing.

    Inputs are MNRL's: (anchor, positive) pairs or (anchor, positive, negative_1, ..., negative_M)
    tuples, no labels. For query i the candidates are every positive and every hard negative of the
    batch (MNRL's ``query_to_doc`` direction, the reference ``Z_i``), plus, with ``mixing``, the
    cosine similarities of its own synthetic negatives (appended to row i only).

    Args:
        model: the ``SentenceTransformer`` being trained.
        scale: ``1 / tau`` (KaLM's released script uses tau = 0.01, i.e. 100).
        gamma: focusing parameter (0: plain MNRL).
        detach_weight: stop the gradient through the focal weight.
        mixing: a :class:`~paperzoo.embeddings.hard_negative_mixing.HardNegativeMixer`, or ``None``.
            Its candidates are the query's own hard negatives; with pairs only (no negative
            columns) they are the query's most similar in-batch negatives.
        similarity_fct, gather_across_devices: as in MNRL (cosine by default).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "scale": [Interval(float, 0, math.inf, closed="neither")],
        "gamma": [Interval(float, 0, math.inf, closed="left")],
        "detach_weight": [Options((True, False))],
    }

    def __init__(
        self,
        model: Any,
        scale: float = 100.0,
        gamma: float = 1.0,
        detach_weight: bool = False,
        mixing: HardNegativeMixer | None = None,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] | None = None,
        gather_across_devices: bool = False,
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"scale": scale, "gamma": gamma, "detach_weight": detach_weight},
            owner=type(self).__name__,
        )
        if mixing is not None and not isinstance(mixing, HardNegativeMixer):
            raise TypeError(f"mixing must be a HardNegativeMixer or None, got {type(mixing).__name__}")
        sim = similarity_fct if similarity_fct is not None else _st_util.cos_sim
        super().__init__(model, scale=float(scale), similarity_fct=sim, gather_across_devices=gather_across_devices)
        self.gamma = float(gamma)
        self.detach_weight = bool(detach_weight)
        self.mixing = mixing

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        embeddings = [self.model(sentence_feature)["sentence_embedding"] for sentence_feature in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The loss from the (anchor, positive, negative_1, ...) embeddings, each (N, d)."""
        if len(embeddings) < 2:
            raise ValueError(f"embeddings must hold at least (anchor, positive), got {len(embeddings)} column(s)")
        n = embeddings[0].shape[0]
        if n == 0:
            raise ValueError("empty batch: the anchor embeddings have 0 rows")
        bad = [i for i, e in enumerate(embeddings) if e.dim() != 2 or e.shape != embeddings[0].shape]
        if bad:
            raise ValueError(
                f"embeddings must all have the anchor's shape {tuple(embeddings[0].shape)}; column {bad[0]} has "
                f"{tuple(embeddings[bad[0]].shape)}"
            )
        queries, docs = embeddings[0], embeddings[1:]
        offset = 0
        if self.gather_across_devices:
            queries = _st_util.all_gather_with_grad(queries)
            docs = [_st_util.all_gather_with_grad(d) for d in docs]
            if _st_util.is_dist_initialized():
                offset = torch.distributed.get_rank() * n
        local = torch.arange(offset, offset + n, device=queries.device)
        local_queries = queries[local]
        docs_all = torch.cat(docs, dim=0)
        if self.mixing is None:
            scores = self.similarity_fct(local_queries, docs_all) * self.scale  # (n, W * (1 + M)), as MNRL
            return _focal(scores, local, self.gamma, self.detach_weight, "mean")
        if self.similarity_fct is _st_util.cos_sim:  # normalise once, reuse for the mixed negatives
            q_n, d_n = F.normalize(local_queries, dim=-1), F.normalize(docs_all, dim=-1)
            scores = (q_n @ d_n.T) * self.scale
        else:
            scores = self.similarity_fct(local_queries, docs_all) * self.scale
            q_n, d_n = F.normalize(local_queries, dim=-1), F.normalize(docs_all, dim=-1)
        width = queries.shape[0]
        if len(docs) > 1:  # the query's own hard negatives, (n, M, d)
            cand = d_n.view(len(docs), width, -1)[1:, local].transpose(0, 1)
        else:  # pairs only: the query's most similar in-batch negatives
            k = min(self.mixing.k_mix or 8, docs_all.shape[0] - 1)
            if k < 1:
                raise ValueError("mixing needs at least one negative: a batch of one pair has none")
            masked = scores.detach().clone()
            masked[torch.arange(n, device=scores.device), local] = -torch.inf
            cand = d_n[masked.topk(k, dim=1).indices]
        extra = self.mixing.logits(q_n, cand) * self.scale
        return _focal(torch.cat([scores, extra], dim=1), local, self.gamma, self.detach_weight, "mean")

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        config.update(
            {
                "gamma": self.gamma,
                "detach_weight": self.detach_weight,
                "mixing": None if self.mixing is None else self.mixing.extra_repr(),
            }
        )
        return config

    @property
    def citation(self) -> str:
        return """
@misc{zhao2025kalmembeddingv2,
      title={KaLM-Embedding-V2: Superior Training Techniques and Data Inspire A Versatile Embedding Model},
      author={Xinping Zhao and Xinshuo Hu and Zifei Shan and others},
      year={2025},
      eprint={2506.20923},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
}
"""
