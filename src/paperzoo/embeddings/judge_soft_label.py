"""UniME-V2's symmetric soft-label KL loss as a sentence-transformers loss (Gu et al., "UniME-V2:
MLLM-as-a-Judge for Universal Multimodal Embedding Learning", AAAI 2026, the training-objective
section).

A thin subclass of sentence-transformers' ``DistillKLDivLoss``: the same inputs (columns
``(anchor, positive, negative_1, ..., negative_K)`` and a label column of K + 1 teacher scores,
here the judge's Yes-probabilities ``[s+, s-_1, ..., s-_K]``) and the same embedding pass
(``forward`` is inherited); only the scores and the divergence differ:

* the model's scores are cosines (the paper L2-normalises its embeddings);
* the divergence is UniME-V2's ``(KL(Q || P) + KL(P || Q)) / 2`` with ``P = softmax(cos / tau)``,
  ``Q = softmax(judge / tau)`` (:func:`paperzoo.losses.symmetric_soft_label_kl`, the official
  ``eps`` placement), not ``tau^2 KL(Q || P)``;
* each anchor sees only its own candidates (no in-batch negatives), as in the paper.

It lives here, next to the miner that produces its label column, because it needs
sentence-transformers (the ``text`` extra), which :mod:`paperzoo.losses` does not import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import util
from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

from paperzoo._validation import validate_params
from paperzoo.losses.soft_label_kl import _CONSTRAINTS, symmetric_soft_label_kl

__all__ = ["JudgeSoftLabelKLLoss"]


class JudgeSoftLabelKLLoss(DistillKLDivLoss):
    """UniME-V2's loss for a ``SentenceTransformer``: inputs ``(anchor, positive, negative_1..K)``,
    labels (B, 1 + K) judge scores in the candidates' order.

    Args:
        model: the SentenceTransformer being trained.
        temperature: ``tau`` of both softmaxes (the paper: 0.02).
        eps: the official 1e-8 inside the logs (0: the exact formula).
        similarity_fct: pairwise similarity of two (B, D) batches (default cosine).
    """

    def __init__(
        self,
        model: Any,
        temperature: float = 0.02,
        eps: float = 1e-8,
        similarity_fct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = util.pairwise_cos_sim,
    ) -> None:
        validate_params(_CONSTRAINTS, {"temperature": temperature, "eps": eps}, owner=type(self).__name__)
        super().__init__(model, similarity_fct=similarity_fct, temperature=float(temperature))
        self.eps = float(eps)

    def compute_loss_from_embeddings(self, embeddings: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if len(embeddings) < 2:
            raise ValueError(f"embeddings must hold an anchor and at least one candidate, got {len(embeddings)} column")
        anchor = embeddings[0]
        if self.similarity_fct is util.pairwise_cos_sim:  # the paper's cosine, in one batched pass
            cands = F.normalize(torch.stack(embeddings[1:], dim=1), dim=-1)
            scores = torch.einsum("bd,bkd->bk", F.normalize(anchor, dim=-1), cands)
        else:
            scores = torch.stack([self.similarity_fct(anchor, other) for other in embeddings[1:]], dim=1)
        if not isinstance(labels, torch.Tensor) or labels.shape != scores.shape:
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels must hold one judge score per candidate, shape {tuple(scores.shape)}, got {got}")
        return symmetric_soft_label_kl(scores, labels.to(scores.dtype), self.temperature, self.eps)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "eps": self.eps, "similarity_fct": self.similarity_fct.__name__}

    @property
    def citation(self) -> str:
        return """
@inproceedings{gu2026unimev2,
    title={UniME-V2: MLLM-as-a-Judge for Universal Multimodal Embedding Learning},
    author={Gu, Tiancheng and Yang, Kaicheng and Zhang, Kaichen and An, Xiang and Feng, Ziyong and Zhang, Yueyi
            and Cai, Weidong and Deng, Jiankang and Bing, Lidong},
    booktitle={AAAI},
    year={2026}
}
"""
