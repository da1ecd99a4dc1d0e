"""How common is each training sample's appearance? The data side of DatasetEquity (Shrivastava,
Zhang, Nagesh & Parchami, "DatasetEquity: Are All Samples Created Equal? In The Quest For Equity
Within Datasets", ICCV 2023 Workshops, arXiv:2308.09878).

The paper estimates, without labels, a likelihood for every training image from the clusters of
its deep perceptual embedding; the official analysis notebooks do it in four steps:

1. embed every image with an ImageNet CNN (ResNet-101 without its classifier, 2048-d);
2. reduce the embeddings to 3-D with t-SNE (perplexity 30, 500 iterations, PCA initialisation);
3. cluster the 3-D points with DBSCAN (``eps = 1.0``, ``min_samples = 10``); DBSCAN's noise
   points (label -1) count as one ordinary cluster;
4. ``p_i = |cluster of i| / |largest cluster|``, so ``p = 1`` for the largest cluster.

:class:`SampleLikelihoodEstimator` runs steps 2-4 with scikit-learn (t-SNE / PCA / none, then
DBSCAN / k-means / HDBSCAN), :func:`likelihood_from_labels` is step 4 alone, and
:func:`embed_images` is step 1 with an encoder that works offline (ImageNet EfficientNet-Lite0,
1280-d, or PCA of the pixels). On a user's own feature extractor and data: :func:`embed_loader`
(any ``nn.Module`` over a data loader of ``(x, y)`` batches, with a progress bar),
:func:`estimate_likelihood` (steps 1-4 on a loader) and :func:`plot_likelihood` (the
distribution of ``p`` and of the weight ``w(p)``). :func:`paperzoo.losses.dataset_equity_weight` turns ``p`` into the
loss weight and :class:`paperzoo.losses.DatasetEquityLoss` applies it.

Two options are not in the paper: ``eps="auto"`` (DBSCAN's radius from the data, for sets whose
size makes the paper's ``eps = 1.0`` leave most points as noise) and ``noise="singleton"`` (each
noise point a cluster of its own, ``p = 1 / largest``; the paper's rule makes a large noise set
the *most common* cluster).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = [
    "NOISE_RULES",
    "SampleLikelihoodEstimator",
    "auto_eps",
    "cluster_sizes",
    "embed_images",
    "embed_loader",
    "estimate_likelihood",
    "likelihood_from_labels",
    "plot_likelihood",
]

NOISE_RULES = ("as_cluster", "singleton")

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "noise": [Options(NOISE_RULES)],
    "min_samples": [Interval(int, 1, math.inf, closed="left")],
    "encoder": [Options(("efficientnet-lite0", "pixels-pca"))],
    "size": [Interval(int, 32, math.inf, closed="left")],
    "n_components": [Interval(int, 1, math.inf, closed="left")],
    "random_state": [None, Interval(int, 0, 2**32 - 1, closed="both")],
}
"""Scalar parameters of the functions of this module."""


# --------------------------------------------------------------------------- step 4: sizes -> p
def _check_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of cluster labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("labels is empty: it has 0 entries")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels must be integers (negative = noise), got dtype {arr.dtype}")
    return arr


def cluster_sizes(labels: Any, noise: str = "as_cluster") -> np.ndarray:
    """The size of each sample's cluster, (N,) int64.

    Args:
        labels: (N,) integer cluster labels; negative labels are noise (DBSCAN's -1).
        noise: ``"as_cluster"`` (the paper's rule): every label value is one cluster, the noise
            label included, so a noise point's size is the number of noise points with its label;
            ``"singleton"``: each noise point is a cluster of size 1.

    >>> cluster_sizes([0, 0, 0, 1, 1, -1, 2, 2, 2, 2]).tolist()
    [3, 3, 3, 2, 2, 1, 4, 4, 4, 4]
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"noise": noise}, owner="cluster_sizes")
    arr = _check_labels(labels)
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    sizes = counts[inverse].astype(np.int64)
    if noise == "singleton":
        sizes[arr < 0] = 1
    return sizes


def likelihood_from_labels(labels: Any, noise: str = "as_cluster") -> np.ndarray:
    """Scaled sample likelihood ``p_i = size(cluster of i) / size(largest cluster)``, (N,) float64
    in (0, 1], 1 for the largest cluster (with ``noise="as_cluster"`` the noise cluster competes
    for "largest" like any other).

    >>> likelihood_from_labels([0, 0, 0, -1, -1, -1, 2, 2, 2, 2]).tolist()
    [0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0]
    >>> likelihood_from_labels([0, 0, 0, -1, -1, -1, 2, 2, 2, 2], noise="singleton").tolist()
    [0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 1.0, 1.0, 1.0, 1.0]
    """
    sizes = cluster_sizes(labels, noise)
    return sizes / float(sizes.max())


def auto_eps(points: Any, min_samples: int = 10) -> float:
    """A DBSCAN radius from the data: the median over points of the distance to their
    ``(min_samples - 1)``-th nearest other point, so that about half the points are DBSCAN core
    points (scikit-learn counts a point in its own neighbourhood). Not in the paper, whose fixed
    ``eps = 1.0`` depends on the size of the t-SNE map and hence on the number of samples."""
    from sklearn.neighbors import NearestNeighbors

    validate_params(_PARAMETER_CONSTRAINTS, {"min_samples": min_samples}, owner="auto_eps")
    x = check_array(points, dtype=np.float64, ensure_min_samples=2)
    k = min(int(min_samples), x.shape[0])
    dist, _ = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    eps = float(np.median(dist[:, -1]))
    return eps if eps > 0 else float(np.finfo(np.float64).tiny)


# --------------------------------------------------------------------------- steps 2-4
class SampleLikelihoodEstimator(BaseEstimator):
    """Label-free sample likelihoods from the clusters of embeddings (DatasetEquity's pipeline).

    ``fit(X)`` reduces the embeddings ``X`` (N, D), clusters the reduced points and sets
    ``likelihood_ = cluster size / largest cluster size`` per sample. The defaults are the
    paper's: t-SNE to 3-D (perplexity 30, 500 iterations, PCA initialisation, automatic learning
    rate), DBSCAN with ``eps = 1.0`` and ``min_samples = 10``, noise as one cluster.

    Args:
        reducer: ``"tsne"`` (scikit-learn's ``TSNE``; Barnes-Hut below 4 components, exact
            otherwise), ``"pca"`` or ``"none"`` (cluster ``X`` itself).
        n_components: dimension of the reduced points (t-SNE / PCA).
        perplexity, max_iter: t-SNE's (``max_iter >= 250``, scikit-learn's minimum).
        clusterer: ``"dbscan"``, ``"kmeans"`` (scikit-learn ``KMeans``, 4 initialisations) or
            ``"hdbscan"`` (scikit-learn ``HDBSCAN`` with ``min_cluster_size = min_samples``).
        eps: DBSCAN's radius, or ``"auto"`` (:func:`auto_eps` of the reduced points).
        min_samples: DBSCAN's core-point count (HDBSCAN's minimum cluster size).
        n_clusters: k-means' number of clusters.
        noise: ``"as_cluster"`` (the paper's rule) or ``"singleton"``; see :func:`cluster_sizes`.
        random_state: seed of t-SNE, PCA and k-means (``None``: scikit-learn's global RNG).

    Attributes (after ``fit``):
        embedding_: (N, n_components) reduced points (``X`` itself for ``reducer="none"``).
        labels_: (N,) cluster labels (-1: noise of DBSCAN / HDBSCAN).
        cluster_sizes_: (N,) size of each sample's cluster (after the noise rule).
        largest_cluster_size_: size of the largest cluster.
        likelihood_: (N,) ``cluster_sizes_ / largest_cluster_size_``, in (0, 1].
        n_clusters_: number of clusters found (noise excluded).
        n_noise_: number of noise points.
        eps_: the DBSCAN radius used (``None`` for the other clusterers).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "reducer": [Options(("tsne", "pca", "none"))],
        "n_components": [Interval(int, 1, math.inf, closed="left")],
        "perplexity": [Interval(float, 0, math.inf, closed="neither")],
        "max_iter": [Interval(int, 250, math.inf, closed="left")],
        "clusterer": [Options(("dbscan", "kmeans", "hdbscan"))],
        "eps": [Interval(float, 0, math.inf, closed="neither"), Options(("auto",))],
        "min_samples": [Interval(int, 1, math.inf, closed="left")],
        "n_clusters": [Interval(int, 1, math.inf, closed="left")],
        "noise": [Options(NOISE_RULES)],
        "random_state": [None, Interval(int, 0, 2**32 - 1, closed="both")],
    }

    def __init__(
        self,
        reducer: str = "tsne",
        n_components: int = 3,
        perplexity: float = 30.0,
        max_iter: int = 500,
        clusterer: str = "dbscan",
        eps: float | str = 1.0,
        min_samples: int = 10,
        n_clusters: int = 30,
        noise: str = "as_cluster",
        random_state: int | None = None,
    ) -> None:
        self.reducer = reducer
        self.n_components = n_components
        self.perplexity = perplexity
        self.max_iter = max_iter
        self.clusterer = clusterer
        self.eps = eps
        self.min_samples = min_samples
        self.n_clusters = n_clusters
        self.noise = noise
        self.random_state = random_state

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        if self.reducer == "none":
            return x
        if self.reducer == "pca":
            from sklearn.decomposition import PCA

            if self.n_components > min(x.shape):
                raise ValueError(
                    f"n_components={self.n_components} exceeds min(n_samples, n_features) = {min(x.shape)} of X"
                )
            return PCA(n_components=self.n_components, random_state=self.random_state).fit_transform(x)
        from sklearn.manifold import TSNE

        if not self.perplexity < x.shape[0]:
            raise ValueError(f"perplexity={self.perplexity} must be below the number of samples {x.shape[0]}")
        tsne = TSNE(
            n_components=self.n_components,
            perplexity=float(self.perplexity),
            max_iter=int(self.max_iter),
            learning_rate="auto",
            init="pca",
            method="barnes_hut" if self.n_components < 4 else "exact",
            random_state=self.random_state,
        )
        return tsne.fit_transform(x)

    def _cluster(self, z: np.ndarray) -> np.ndarray:
        self.eps_: float | None = None
        if self.clusterer == "kmeans":
            from sklearn.cluster import KMeans

            if self.n_clusters > z.shape[0]:
                raise ValueError(f"n_clusters={self.n_clusters} exceeds the number of samples {z.shape[0]}")
            return KMeans(n_clusters=self.n_clusters, n_init=4, random_state=self.random_state).fit_predict(z)
        if self.clusterer == "hdbscan":
            from sklearn.cluster import HDBSCAN

            return HDBSCAN(min_cluster_size=max(2, self.min_samples), copy=True).fit_predict(z)
        from sklearn.cluster import DBSCAN

        self.eps_ = auto_eps(z, self.min_samples) if self.eps == "auto" else float(self.eps)
        return DBSCAN(eps=self.eps_, min_samples=self.min_samples).fit_predict(z)

    def fit(self, X: Any, y: Any = None) -> SampleLikelihoodEstimator:
        """Reduce, cluster and set :attr:`likelihood_` for the rows of ``X`` (N, D); ``y`` is ignored."""
        validate_params(self._parameter_constraints, self.get_params(), owner=type(self).__name__)
        x = check_array(X, dtype=np.float64, ensure_min_samples=2)
        self.n_features_in_ = x.shape[1]
        self.embedding_ = self._reduce(x)
        self.labels_ = np.asarray(self._cluster(self.embedding_), dtype=np.int64)
        self.cluster_sizes_ = cluster_sizes(self.labels_, self.noise)
        self.largest_cluster_size_ = int(self.cluster_sizes_.max())
        self.likelihood_ = self.cluster_sizes_ / float(self.largest_cluster_size_)
        self.n_noise_ = int((self.labels_ < 0).sum())
        self.n_clusters_ = int(np.unique(self.labels_[self.labels_ >= 0]).size)
        return self

    def fit_likelihood(self, X: Any) -> np.ndarray:
        """``fit(X).likelihood_``: the (N,) sample likelihoods."""
        return self.fit(X).likelihood_


# --------------------------------------------------------------------------- step 1
def embed_images(
    images: Any,
    encoder: str = "efficientnet-lite0",
    size: int = 64,
    n_components: int = 50,
    cache_key: str | None = None,
    random_state: int | None = 0,
) -> np.ndarray:
    """Step 1 offline: an embedding per image, (N, d) float.

    Args:
        images: (N, 1, H, W) or (N, 3, H, W) floats in [0, 1].
        encoder: ``"efficientnet-lite0"`` (frozen ImageNet EfficientNet-Lite0, 1280-d global
            average pool, :func:`paperzoo.models.pretrained.efficientnet_lite0_features`; a
            stand-in for the paper's ResNet-101, whose weights do not ship offline) or
            ``"pixels-pca"`` (PCA of the flattened pixels to ``n_components`` dimensions, for
            fast tests).
        size: EfficientNet input resolution.
        n_components: PCA dimension of ``"pixels-pca"``.
        cache_key: EfficientNet feature-cache entry (see ``efficientnet_lite0_features``).
        random_state: seed of the PCA.
    """
    validate_params(
        _PARAMETER_CONSTRAINTS,
        {"encoder": encoder, "size": size, "n_components": n_components, "random_state": random_state},
        owner="embed_images",
    )
    if encoder == "efficientnet-lite0":
        from paperzoo.models.pretrained import efficientnet_lite0_features

        return efficientnet_lite0_features(images, size=size, cache_key=cache_key)
    from sklearn.decomposition import PCA

    arr = np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float64)
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(f"images must have shape (N, C, H, W) with N >= 1, got {arr.shape}")
    flat = check_array(arr.reshape(arr.shape[0], -1), ensure_min_samples=2)
    k = min(int(n_components), *flat.shape)
    return PCA(n_components=k, random_state=random_state).fit_transform(flat)


# --------------------------------------------------------------------------- a user's own model and data
def embed_loader(model: Any, loader: Any, device: Any = None, progress: bool = True) -> np.ndarray:
    """Step 1 with a user's own feature extractor: ``model(x)`` flattened to (N, D) float64 for
    every batch of ``loader`` (an iterable of ``(x, y)`` batches or bare tensors, e.g. a torch
    ``DataLoader``; ``y`` is ignored), in eval mode under ``torch.no_grad``, with a progress bar
    (``progress=False``: none). The model's training flag is restored afterwards."""
    import torch

    from paperzoo.engine.progress import progress as bar

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    total = len(loader) if hasattr(loader, "__len__") else None
    was_training = model.training
    model.eval()
    parts: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for batch in bar(loader, desc="embed", total=total, enabled=progress):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = torch.as_tensor(x)
                if device is not None:
                    x = x.to(device)
                f = model(x)
                parts.append(f.detach().reshape(f.shape[0], -1).double().cpu().numpy())
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("loader yielded no batches")
    out = np.concatenate(parts)
    if not np.isfinite(out).all():
        raise ValueError("the model's features contain NaN or inf")
    return out


def estimate_likelihood(
    model: Any,
    loader: Any,
    estimator: SampleLikelihoodEstimator | None = None,
    device: Any = None,
    progress: bool = True,
) -> SampleLikelihoodEstimator:
    """Steps 1-4 on a user's own feature extractor and data: :func:`embed_loader`, then
    ``estimator.fit`` (default: the paper's :class:`SampleLikelihoodEstimator`); returns the
    fitted estimator (``.likelihood_`` in the loader's order, which must not shuffle)."""
    feats = embed_loader(model, loader, device=device, progress=progress)
    est = SampleLikelihoodEstimator() if estimator is None else estimator
    return est.fit(feats)


def plot_likelihood(
    likelihood: Any, eta: float = 1.0, gamma: float = 5.0, groups: Any = None, bins: int = 30, title: str = ""
) -> Any:
    """Two panels: the histogram of the sample likelihoods ``p`` and the DatasetEquity weight
    ``w(p) = (eta + (1 - p)**gamma) / (eta + 1)`` (the curve) with each sample's weight on it;
    ``groups`` (N,) optional labels colour the samples (e.g. a known rare group). Returns the
    matplotlib Figure."""
    from paperzoo.engine.plots import subplots
    from paperzoo.losses.dataset_equity import dataset_equity_weight

    p = check_array(np.asarray(likelihood, dtype=np.float64).reshape(-1, 1), ensure_min_samples=1)[:, 0]
    if ((p <= 0) | (p > 1)).any():
        raise ValueError("likelihood must lie in (0, 1]")
    g = np.zeros(p.size, dtype=np.int64) if groups is None else np.asarray(groups)
    if g.shape != p.shape:
        raise ValueError(f"groups must have shape {p.shape}, got {g.shape}")
    w = np.asarray(dataset_equity_weight(p, eta, gamma))
    fig, (ax0, ax1) = subplots(2, width=4.2, height=3.4)
    values = np.unique(g)
    for i, v in enumerate(values):
        sel = g == v
        label = None if groups is None else f"group {v} (n={int(sel.sum())})"
        ax0.hist(p[sel], bins=bins, range=(0, 1), alpha=0.6, color=f"C{i}", label=label)
        ax1.scatter(p[sel], w[sel], s=10, color=f"C{i}", label=label, zorder=3)
    grid = np.linspace(1e-3, 1, 200)
    ax1.plot(grid, dataset_equity_weight(grid, eta, gamma), color="k", lw=1, label="w(p)")
    ax0.set_xlabel("sample likelihood p")
    ax0.set_ylabel("samples")
    ax1.set_xlabel("sample likelihood p")
    ax1.set_ylabel(f"weight w(p) (eta={eta:g}, gamma={gamma:g})")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if groups is not None:
        ax0.legend(fontsize=7)
    fig.suptitle(title or "DatasetEquity: likelihood and weight per sample")
    fig.tight_layout()
    return fig
