"""The losses of ProtoN (Peddi et al., "ProtoN: Prototype Node Graph Neural Network for Unconstrained
Multi-Impression Ear Recognition", arXiv:2508.04381, 2025): cross-graph prototype alignment and the hybrid
episodic / global objective.

Only the abstract was available; this is a design that follows it (not a numerically verified copy):

* alignment (:func:`cross_graph_alignment_loss`): with refined impressions ``H_c'`` and prototypes ``p_c'`` of the
  N class graphs, ``L_align = mean_c mean_i ||h_ci' - p_c'||^2 + mean_{c != c'} max(0, m_a - ||p_c' - p_c''||)``;
* episodic (:func:`episodic_prototype_loss`): queries are embedded by the backbone only, logits
  ``-||f(q) - p_c'||^2 / T``, cross-entropy;
* global: a cosine classifier over all training identities, ``CE(s * cos(f(x), W_g))`` with s = 16, on every support
  and query embedding;
* :class:`HybridEpisodicGlobalLoss`: ``L = L_ep + lambda_g L_gl + lambda_a L_align`` (0.5 and 0.1 by default).

These are episode losses over class graphs (padded ``(N, K, d)`` tensors), not pair losses over an embedding batch,
so they are plain ``nn.Module`` s (like :class:`paperzoo.losses.FewShotLossCombo`) rather than
pytorch-metric-learning losses. Vectorised: one ``(N, N)`` prototype distance matrix and one ``(Q, N)`` query
distance matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, check_finite, check_labels, validate_params
from paperzoo.losses.episodic import EpisodicLoss
from paperzoo.models.proton import ProtoNHead, check_graphs

__all__ = [
    "CrossGraphAlignmentLoss",
    "HybridEpisodicGlobalLoss",
    "ProtoNEpisodeLoss",
    "alignment_terms",
    "cross_graph_alignment_loss",
    "episodic_prototype_loss",
]


def _check_prototypes(prototypes: torch.Tensor, n: int, d: int) -> None:
    if not isinstance(prototypes, torch.Tensor) or tuple(prototypes.shape) != (n, d):
        got = tuple(prototypes.shape) if isinstance(prototypes, torch.Tensor) else type(prototypes).__name__
        raise ValueError(f"prototypes must have shape ({n}, {d}), got {got}")
    check_finite(prototypes, "prototypes")


def alignment_terms(
    impressions: torch.Tensor, prototypes: torch.Tensor, margin: float = 1.0, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(intra, inter)`` of the cross-graph alignment: mean squared impression-to-own-prototype distance (mean over
    each class's real impressions, then over classes) and the mean hinge ``max(0, margin - ||p_c - p_c'||)`` over
    ordered pairs of different classes (0 when N = 1)."""
    validate_params({"margin": [Interval(float, 0, math.inf, closed="left")]}, {"margin": margin}, owner="alignment")
    mask = check_graphs(impressions, mask)
    n, _, d = impressions.shape
    _check_prototypes(prototypes, n, d)
    w = mask.to(impressions.dtype)
    sq = (impressions - prototypes[:, None, :]).pow(2).sum(-1)
    intra = ((sq * w).sum(1) / w.sum(1)).mean()
    if n == 1:
        return intra, prototypes.sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool, device=prototypes.device)
    d2 = (prototypes[:, None, :] - prototypes[None, :, :]).pow(2).sum(-1)[off]
    inter = torch.relu(margin - d2.clamp_min(1e-24).sqrt()).mean()
    return intra, inter


def cross_graph_alignment_loss(
    impressions: torch.Tensor, prototypes: torch.Tensor, margin: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``intra + inter`` of :func:`alignment_terms` (a scalar)."""
    intra, inter = alignment_terms(impressions, prototypes, margin, mask)
    return intra + inter


def episodic_prototype_loss(
    queries: torch.Tensor, query_targets: torch.Tensor, prototypes: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Cross-entropy of the logits ``-||q - p_c||^2 / temperature``; ``query_targets`` index the N prototypes (a
    query of a class absent from the support set is an error)."""
    validate_params(
        {"temperature": [Interval(float, 0, math.inf, closed="neither")]},
        {"temperature": temperature},
        owner="episodic",
    )
    if not isinstance(queries, torch.Tensor) or queries.dim() != 2 or queries.shape[0] == 0:
        raise ValueError("queries must be a non-empty tensor of shape (Q, d)")
    check_finite(queries, "queries")
    _check_prototypes(prototypes, prototypes.shape[0] if isinstance(prototypes, torch.Tensor) else -1, queries.shape[1])
    n = prototypes.shape[0]
    check_labels(query_targets, queries.shape[0], "query_targets")
    lo, hi = int(query_targets.min()), int(query_targets.max())
    if lo < 0 or hi >= n:
        raise ValueError(
            f"query_targets must index the {n} support classes (values in [0, {n})), got values in [{lo}, {hi}]: "
            "a query class is absent from the support set"
        )
    logits = -(queries[:, None, :] - prototypes[None, :, :]).pow(2).sum(-1) / temperature
    return F.cross_entropy(logits, query_targets)


class CrossGraphAlignmentLoss(nn.Module):
    """Module form of :func:`cross_graph_alignment_loss` (``forward(impressions, prototypes, mask=None)``)."""

    _parameter_constraints = {"margin": [Interval(float, 0, math.inf, closed="left")]}

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"margin": margin}, owner=type(self).__name__)
        self.margin = margin

    def forward(
        self, impressions: torch.Tensor, prototypes: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return cross_graph_alignment_loss(impressions, prototypes, self.margin, mask)


class HybridEpisodicGlobalLoss(nn.Module):
    """``L_ep + lambda_global * L_gl + lambda_align * L_align`` (see the module docstring).

    Args:
        num_classes: training identities of the global cosine classifier (its weights ``W_g`` live here, so pass
            this module's parameters to the optimiser). 0 disables the global term.
        dim: embedding size d.
        lambda_global, lambda_align: weights of the global and alignment terms.
        margin: alignment margin m_a.
        scale: s of the cosine classifier.
        temperature: T of the episodic logits.

    ``forward(queries (Q, d), query_targets (Q,) in [0, N), impressions (N, K, d), prototypes (N, d),
    embeddings (B, d) | None, global_targets (B,) | None, mask=None) -> scalar``.
    """

    _parameter_constraints = {
        "num_classes": [Interval(int, 0, math.inf, closed="left")],
        "dim": [Interval(int, 1, math.inf, closed="left")],
        "lambda_global": [Interval(float, 0, math.inf, closed="left")],
        "lambda_align": [Interval(float, 0, math.inf, closed="left")],
        "margin": [Interval(float, 0, math.inf, closed="left")],
        "scale": [Interval(float, 0, math.inf, closed="neither")],
        "temperature": [Interval(float, 0, math.inf, closed="neither")],
    }

    def __init__(
        self,
        num_classes: int,
        dim: int,
        lambda_global: float = 0.5,
        lambda_align: float = 0.1,
        margin: float = 1.0,
        scale: float = 16.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        params = dict(
            num_classes=num_classes,
            dim=dim,
            lambda_global=lambda_global,
            lambda_align=lambda_align,
            margin=margin,
            scale=scale,
            temperature=temperature,
        )
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.num_classes, self.dim = num_classes, dim
        self.lambda_global, self.lambda_align, self.margin = lambda_global, lambda_align, margin
        self.scale, self.temperature = scale, temperature
        self.global_weight = nn.Parameter(torch.randn(num_classes, dim) / math.sqrt(dim))

    def global_loss(self, embeddings: torch.Tensor, global_targets: torch.Tensor) -> torch.Tensor:
        if self.num_classes == 0:
            raise ValueError("global_targets given but num_classes = 0 (no global classifier)")
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must have shape (B, {self.dim}) with B >= 1, got {tuple(embeddings.shape)}")
        check_finite(embeddings, "embeddings")
        check_labels(global_targets, embeddings.shape[0], "global_targets", self.num_classes)
        cos = F.normalize(embeddings, dim=1) @ F.normalize(self.global_weight, dim=1).to(embeddings.dtype).T
        return F.cross_entropy(self.scale * cos, global_targets)

    def forward(
        self,
        queries: torch.Tensor,
        query_targets: torch.Tensor,
        impressions: torch.Tensor,
        prototypes: torch.Tensor,
        embeddings: torch.Tensor | None = None,
        global_targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss = episodic_prototype_loss(queries, query_targets, prototypes, self.temperature)
        if self.lambda_align > 0:
            loss = loss + self.lambda_align * cross_graph_alignment_loss(impressions, prototypes, self.margin, mask)
        if (embeddings is None) != (global_targets is None):
            raise ValueError("embeddings and global_targets must be given together")
        if embeddings is not None and global_targets is not None and self.lambda_global > 0:
            loss = loss + self.lambda_global * self.global_loss(embeddings, global_targets)
        return loss


class ProtoNEpisodeLoss(EpisodicLoss):
    """ProtoN as one :class:`~paperzoo.losses.episodic.EpisodicLoss`: the support set of each class is its graph
    of impressions, refined with the prototype node by a :class:`~paperzoo.models.proton.ProtoNHead`, and the
    episode is scored by :class:`HybridEpisodicGlobalLoss` (queries against the refined prototypes, alignment of
    the class graphs, and the global classifier on every support and query embedding, whose labels are the
    training identities ``0..num_classes-1``). The head's and the global classifier's parameters are this
    module's.

    ``forward(support (N*K, d), support_labels (N*K,), query (Q, d), query_labels (Q,))``: the support holds the
    same number K of samples of each class, grouped by class in increasing order (as
    :func:`~paperzoo.losses.episodic.episode_split` returns them); every query class has support.
    """

    def __init__(self, num_classes: int, dim: int, n_layers: int = 2, **loss_kwargs: float) -> None:
        super().__init__()
        self.head = ProtoNHead(dim, n_layers)
        self.loss = HybridEpisodicGlobalLoss(num_classes, dim, **loss_kwargs)

    def forward(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor
    ) -> torch.Tensor:
        classes, counts = torch.unique(support_labels, return_counts=True)
        if bool((counts != counts[0]).any()) or not bool((support_labels.diff() >= 0).all()):
            raise ValueError("support must hold the same number of samples of each class, grouped by class in order")
        missing = query_labels[~torch.isin(query_labels, classes)]
        if missing.numel():
            raise ValueError(f"query_labels: class {int(missing[0])} has no support samples in the episode")
        h, p = self.head(support.view(classes.numel(), int(counts[0]), -1))
        targets = torch.searchsorted(classes, query_labels)
        every = torch.cat([support, query])
        return self.loss(
            query, targets, h, p, embeddings=every, global_targets=torch.cat([support_labels, query_labels])
        )
