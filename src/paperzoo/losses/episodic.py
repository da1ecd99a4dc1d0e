"""Episode losses of few-shot methods, and their use on ordinary P x K batches.

A few-shot method's loss sees an *episode*: support embeddings with their classes, and queries to
classify against them. :class:`EpisodicLoss` is that interface,
``forward(support (S, d), support_labels (S,), query (Q, d), query_labels (Q,)) -> scalar``
(labels are class ids; every query class has support). :class:`BatchEpisodes` turns one into a
loss on the batches of pytorch-metric-learning's ``MPerClassSampler`` (P classes x K samples,
``loss(embeddings, labels)``): in each class the first ``support`` samples of the batch are the
support, the others the queries. That is how ``paperzoo compare --task fewshot`` trains episodic
methods next to the metric losses, on the same batches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn

from paperzoo._validation import Interval, check_embeddings_labels, validate_params

__all__ = ["BatchEpisodes", "EpisodicLoss", "episode_split"]


class EpisodicLoss(nn.Module, ABC):
    """The loss of a few-shot method on one episode."""

    @abstractmethod
    def forward(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor
    ) -> torch.Tensor:
        """A scalar loss of the episode."""


def episode_split(labels: torch.Tensor, support: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(support_idx, query_idx)``: in each class, the first ``support`` samples (in batch order) and
    the rest. Support indices are grouped by class (classes in increasing order), so a support set
    with ``K`` samples per class reshapes to ``(N, K, d)``. Vectorised: one stable sort.

    Raises:
        ValueError: a class of the batch has ``support`` samples or fewer (no query left).
    """
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.ones_like(sorted_labels, dtype=torch.bool)
    starts[1:] = sorted_labels[1:] != sorted_labels[:-1]
    group_start = torch.cummax(torch.where(starts, torch.arange(len(labels)), 0), dim=0).values
    rank = torch.arange(len(labels)) - group_start
    classes, counts = torch.unique(sorted_labels, return_counts=True)
    if int(counts.min()) <= support:
        bad = int(classes[counts.argmin()])
        raise ValueError(
            f"class {bad} has {int(counts.min())} samples in the batch; an episode with {support} support samples per "
            f"class needs at least {support + 1} (one query)"
        )
    is_support = rank < support
    return order[is_support], order[~is_support]


class BatchEpisodes(nn.Module):
    """An :class:`EpisodicLoss` on P x K batches: ``forward(embeddings (B, d), labels (B,))`` splits the
    batch with :func:`episode_split` and returns ``loss(support, support_labels, query, query_labels)``.

    Args:
        loss: the episode loss (its parameters are this module's).
        support: support samples per class (the rest of each class's samples are queries).
    """

    def __init__(self, loss: nn.Module, support: int) -> None:
        super().__init__()
        validate_params(
            {"support": [Interval(int, 1, math.inf, closed="left")]}, {"support": support}, owner="BatchEpisodes"
        )
        self.loss = loss
        self.support = int(support)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_embeddings_labels(embeddings, labels)
        s, q = episode_split(labels, self.support)
        return self.loss(embeddings[s], labels[s], embeddings[q], labels[q])
