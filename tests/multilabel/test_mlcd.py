"""Tests of MLCD's clustering and sampling pieces (An et al., ECCV 2024): spherical k-means
centroids, top-l cluster labels by cosine, the positive mask, PartialFC-style class sampling
(every positive kept, max(#unique positives, ceil(r K)) classes) and the cosine head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paperzoo.losses import MLCDLoss
from paperzoo.multilabel.mlcd import (
    ClusterDiscriminationHead,
    PartialClassSampler,
    kmeans_centroids,
    multilabel_topk_cluster_labels,
    positive_mask,
)


def test_kmeans_centroids_find_planted_directions() -> None:
    rng = np.random.default_rng(0)
    dirs = np.eye(4, 8)
    x = np.concatenate([d + 0.05 * rng.normal(size=(30, 8)) for d in dirs])
    c = kmeans_centroids(x, 4, seed=0)
    assert c.shape == (4, 8) and np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.sort(np.abs(c @ dirs.T).max(0)), 1.0, atol=0.01)
    with pytest.raises(ValueError, match="num_clusters"):
        kmeans_centroids(x[:3], 4, seed=0)
    with pytest.raises(ValueError, match="embeddings"):
        kmeans_centroids(np.full((10, 2), np.nan), 2, seed=0)


def test_topk_labels_are_the_nearest_by_cosine() -> None:
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    top = multilabel_topk_cluster_labels(e, c, 2)
    assert top.tolist() == [[0, 3], [1, 3], [3, 0]] or top.tolist() == [[0, 3], [1, 3], [3, 1]]
    assert top.dtype == torch.int64 and multilabel_topk_cluster_labels(e * 5, c, 1).tolist() == [[0], [1], [3]]
    with pytest.raises(ValueError, match="l"):
        multilabel_topk_cluster_labels(e, c, 5)
    with pytest.raises(ValueError, match="columns"):
        multilabel_topk_cluster_labels(e, torch.ones(3, 3), 1)


def test_positive_mask() -> None:
    m = positive_mask(torch.tensor([[0, 2], [1, 2]]), 4)
    assert m.tolist() == [[True, False, True, False], [False, True, True, False]]
    with pytest.raises(ValueError, match="labels"):
        positive_mask(torch.tensor([[0, 4]]), 4)


@pytest.mark.parametrize(("k", "rate"), [(100, 0.1), (100, 0.5), (30, 1.0), (1000, 0.01)])
def test_sampler_keeps_every_positive(k: int, rate: float) -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, k, (16, 4), generator=g)
    sampler = PartialClassSampler(k, rate, seed=1)
    ids, mask, index = sampler(labels)
    n_pos = labels.unique().numel()
    assert ids.numel() == max(n_pos, math.ceil(rate * k))
    assert bool(torch.isin(labels.unique(), ids).all()) and bool((ids[1:] > ids[:-1]).all())
    assert torch.equal(ids[index[labels]], labels)  # the index map
    assert bool((index[ids] == torch.arange(ids.numel())).all()) and int((index >= 0).sum()) == ids.numel()
    assert torch.equal(mask, positive_mask(labels, k)[:, ids])  # positives remapped to the sampled columns


def test_sampler_draws_fresh_negatives_and_validates() -> None:
    labels = torch.tensor([[0, 1]])
    sampler = PartialClassSampler(1000, 0.05, seed=0)
    a, _, _ = sampler(labels)
    b, _, _ = sampler(labels)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="rate"):
        PartialClassSampler(10, 0.0)
    with pytest.raises(ValueError, match="labels"):
        sampler(torch.tensor([[1000]]))


def test_head_gives_cosines_and_trains_with_sampled_classes() -> None:
    torch.manual_seed(0)
    head = ClusterDiscriminationHead(8, 50)
    f = torch.randn(4, 8, requires_grad=True)
    s = head(f)
    assert s.shape == (4, 50) and bool((s.abs() <= 1 + 1e-6).all())
    ids, mask, _ = PartialClassSampler(50, 0.2, seed=0)(torch.tensor([[1, 2], [3, 4], [1, 5], [6, 7]]))
    loss = MLCDLoss(scale=16.0)(head(f, ids), mask)
    loss.backward()
    grad_rows = head.weight.grad.abs().sum(1) > 0
    assert torch.equal(torch.nonzero(grad_rows).squeeze(1), ids)  # unsampled classes get no gradient
    with pytest.raises(ValueError, match="features"):
        head(torch.randn(4, 7))
