"""The k-means baseline of generalized category discovery: cluster all features into k groups
with scikit-learn's ``KMeans`` and read the clusters as predicted classes (evaluated with the one
Hungarian matching of :func:`paperzoo.metrics.cluster_accuracy`). SimGCD (Wen, Zhao & Qi, ICCV
2023) compares against it; the GCD paper (Vaze et al., CVPR 2022) reports it on raw features."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = ["KMeansBaseline", "kmeans_predict"]


def kmeans_predict(
    x: np.ndarray | torch.Tensor, k: int, *, seed: int = 0, n_init: int = 10, predict_on: np.ndarray | None = None
) -> np.ndarray:
    """Cluster ids (N,) of k-means with ``k`` clusters fitted on ``x`` (N, ...) (flattened).

    A thin wrapper over ``sklearn.cluster.KMeans(k, n_init=n_init, random_state=seed)``; with
    ``predict_on`` (M, ...) the fitted centres label those rows instead.

    Raises:
        ValueError: ``k`` is larger than the number of samples, or ``x`` holds NaN.
    """
    from sklearn.cluster import KMeans

    validate_params(
        {"k": [Interval(int, 1, math.inf, closed="left")], "n_init": [Interval(int, 1, math.inf, closed="left")]},
        {"k": k, "n_init": n_init},
        owner="kmeans_predict",
    )
    arr = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
    arr = arr.reshape(arr.shape[0], -1)
    if k > arr.shape[0]:
        raise ValueError(f"kmeans_predict: k={k} is larger than the number of samples ({arr.shape[0]})")
    if not np.isfinite(arr).all():
        raise ValueError("kmeans_predict: x holds NaN or infinite values")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(arr)
    if predict_on is None:
        return km.labels_.astype(np.int64)
    other = np.asarray(predict_on, dtype=np.float64).reshape(len(predict_on), -1)
    return km.predict(other).astype(np.int64)


class KMeansBaseline(nn.Module):
    """The k-means baseline as a component of ``paperzoo compare --task gcd`` (it trains nothing:
    the task clusters the standardised input features with :func:`kmeans_predict`)."""

    def __init__(self, n_init: int = 10) -> None:
        validate_params(
            {"n_init": [Interval(int, 1, math.inf, closed="left")]}, {"n_init": n_init}, owner="KMeansBaseline"
        )
        super().__init__()
        self.n_init = int(n_init)
