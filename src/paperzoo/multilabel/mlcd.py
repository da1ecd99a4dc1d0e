"""Multi-label cluster discrimination (MLCD; An et al., ECCV 2024, "Multi-label Cluster
Discrimination for Visual Representation Learning", arXiv:2407.17331): the clustering step and
the pieces of the discrimination step around :class:`paperzoo.losses.MLCDLoss`.

* Clustering (offline, once): L2-normalised embeddings of a frozen pre-trained encoder are
  clustered with k-means into ``K`` pseudo-classes (:func:`kmeans_centroids`; the paper uses faiss
  with K = 1M on LAION-400M, here scikit-learn's k-means on the unit sphere, a thin wrapper), and
  every sample gets its ``l`` nearest centroids by cosine similarity as positive labels
  (:func:`multilabel_topk_cluster_labels`; the paper's l = 8).
* Discrimination: an encoder's normalised features against a learnable, row-normalised
  class-centre matrix (:class:`ClusterDiscriminationHead`, cosine similarities), with negative
  classes subsampled per step (:class:`PartialClassSampler`, PartialFC-style: all positives of the
  batch plus random negatives up to a fraction ``r`` of the K classes; the paper's r = 0.1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = [
    "ClusterDiscriminationHead",
    "PartialClassSampler",
    "kmeans_centroids",
    "multilabel_topk_cluster_labels",
    "positive_mask",
]

_PARAMS = {
    "num_clusters": [Interval(int, 1, math.inf, closed="left")],
    "l": [Interval(int, 1, math.inf, closed="left")],
    "num_classes": [Interval(int, 1, math.inf, closed="left")],
    "rate": [Interval(float, 0, 1, closed="right")],
    "in_features": [Interval(int, 1, math.inf, closed="left")],
    "n_init": [Interval(int, 1, math.inf, closed="left")],
}


def _as_2d_float(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (N, D), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _normalize(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def kmeans_centroids(embeddings: Any, num_clusters: int, seed: int, n_init: int = 4) -> np.ndarray:
    """Spherical k-means centroids (K, D) of ``embeddings`` (N, D): the rows are L2-normalised,
    clustered with scikit-learn's ``KMeans`` (``n_init`` restarts, ``random_state=seed``) and the
    centroids L2-normalised (a thin wrapper; the paper uses faiss at K = 1M).

    Raises:
        ValueError: bad shapes or values, or fewer samples than clusters.
    """
    from sklearn.cluster import KMeans

    e = _normalize(_as_2d_float(embeddings, "embeddings"))
    validate_params(_PARAMS, {"num_clusters": num_clusters, "n_init": n_init}, owner="kmeans_centroids")
    if e.shape[0] < num_clusters:
        raise ValueError(f"kmeans_centroids: num_clusters ({num_clusters}) exceeds the {e.shape[0]} samples")
    km = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit(e)
    return _normalize(km.cluster_centers_).astype(np.float32)


def multilabel_topk_cluster_labels(embeddings: Any, centroids: Any, l: int) -> torch.Tensor:  # noqa: E741
    """The ``l`` nearest centroids of every sample by cosine similarity: LongTensor (N, l), most
    similar first (the paper's positive set of a sample; l = 8 in the paper)."""
    e = torch.from_numpy(_normalize(_as_2d_float(embeddings, "embeddings")))
    c = torch.from_numpy(_normalize(_as_2d_float(centroids, "centroids")))
    validate_params(_PARAMS, {"l": l}, owner="multilabel_topk_cluster_labels")
    if c.shape[1] != e.shape[1]:
        raise ValueError(f"centroids must have {e.shape[1]} columns like embeddings, got {c.shape[1]}")
    if l > c.shape[0]:
        raise ValueError(f"l ({l}) exceeds the number of centroids ({c.shape[0]})")
    return torch.topk(e @ c.T, l, dim=1).indices


def positive_mask(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Bool (N, K) mask of the positive cluster labels (N, l)."""
    _check_labels(labels, num_classes)
    mask = torch.zeros(labels.shape[0], num_classes, dtype=torch.bool, device=labels.device)
    return mask.scatter_(1, labels, True)


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) or labels.dim() != 2:
        raise TypeError("labels must be an integer torch.Tensor of shape (N, l)")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values in [{int(labels.min())}, {int(labels.max())}]"
        )


class PartialClassSampler:
    """PartialFC-style class sampling of the MLCD discrimination step: every positive class of the
    batch plus uniformly random other classes, ``max(#unique positives, ceil(rate * K))`` classes
    in all, sorted. ``rate = 1`` keeps every class.

    ``sampler(labels (N, l)) -> (class_ids (K',), mask (N, K') bool, index (K,))``: the sampled
    class ids, the positives remapped to the sampled columns, and for each of the K classes its
    column or -1 (not sampled: no logit and no gradient this step).

    Args:
        num_classes: K.
        rate: fraction r of the classes per step, in (0, 1] (the paper's r = 0.1).
        seed: seed of the sampler's own generator.
    """

    def __init__(self, num_classes: int, rate: float = 0.1, seed: int = 0) -> None:
        validate_params(_PARAMS, {"num_classes": num_classes, "rate": float(rate)}, owner="PartialClassSampler")
        self.num_classes, self.rate = int(num_classes), float(rate)
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def target_count(self) -> int:
        return min(self.num_classes, math.ceil(self.rate * self.num_classes))

    def __call__(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_labels(labels, self.num_classes)
        k = self.num_classes
        is_pos = torch.zeros(k, dtype=torch.bool)
        is_pos[labels.reshape(-1).cpu()] = True
        extra = max(self.target_count - int(is_pos.sum()), 0)
        others = torch.nonzero(~is_pos).squeeze(1)
        pick = others[torch.randperm(others.numel(), generator=self.generator)[:extra]]
        keep = is_pos.clone()
        keep[pick] = True
        class_ids = torch.nonzero(keep).squeeze(1)
        index = torch.full((k,), -1, dtype=torch.long)
        index[class_ids] = torch.arange(class_ids.numel())
        class_ids, index = class_ids.to(labels.device), index.to(labels.device)
        cols = index[labels]
        mask = torch.zeros(labels.shape[0], class_ids.numel(), dtype=torch.bool, device=labels.device)
        mask.scatter_(1, cols, True)
        return class_ids, mask, index


class ClusterDiscriminationHead(nn.Module):
    """The learnable class-centre matrix W (K, D) of cluster discrimination: ``forward(features
    (N, D), class_ids=None)`` returns the cosine similarities (N, K') between the L2-normalised
    features and the L2-normalised rows of W (all K classes, or the sampled ``class_ids``)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        validate_params(
            _PARAMS, {"in_features": in_features, "num_classes": num_classes}, owner="ClusterDiscriminationHead"
        )
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) / math.sqrt(in_features))

    def forward(self, features: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(f"features must have shape (N, {self.weight.shape[1]}), got {tuple(features.shape)}")
        w = self.weight if class_ids is None else self.weight[class_ids]
        return F.normalize(features, dim=1) @ F.normalize(w, dim=1).T
