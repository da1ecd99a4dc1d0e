"""DomainMix (Wang, Liao, Zhao, Cui & Shao, BMVC 2021, arXiv 2011.11953): generalizable re-ID
from a labelled source domain plus an unlabelled target domain, without human annotations.

Each round the unlabelled target features are clustered into pseudo-identities (DBSCAN on the
k-reciprocal Jaccard distance of Zhong et al. 2017, keeping only *reliable* clusters by the
SpCL independence/compactness criterion); source identities and target pseudo-identities are
then trained jointly with one classifier (label-smoothed cross-entropy on logits / 2) and a
soft-margin batch-hard triplet loss, while a small domain discriminator predicts
source-vs-target from the feature and the feature extractor minimises the **domain balance
loss** (the negative entropy of the discriminator's prediction, plus 1), alternating updates.

Components:

* :func:`jaccard_distance` - k-reciprocal Jaccard distance (vectorised with boolean N x N
  matrices; the row-wise ``sum_l min(V_il, V_jl)`` in row chunks);
* :func:`reliability_scores`, :func:`reliable_dbscan_pseudo_labels` - DBSCAN at eps and
  eps -/+ gap (scikit-learn, ``metric="precomputed"``) and the reliability filter;
* :func:`domain_balance_loss` / :class:`DomainBalanceLoss`, :class:`DomainDiscriminator`;
* :func:`soft_triplet_loss` - a thin wrapper over pytorch-metric-learning's
  ``TripletMarginLoss(margin=0, smooth_loss=True)`` with a ``BatchHardMiner``, both on the
  un-normalised Euclidean distance (the paper's soft-margin batch-hard triplet);
* :class:`DomainMixObjective` - the ``compute_loss(model, batch)`` that :func:`paperzoo.engine.fit`
  drives: identity + triplet (+ domain balance, with its own discriminator update every
  ``d_every``-th call).
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
    "DomainBalanceLoss",
    "DomainDiscriminator",
    "DomainMixObjective",
    "domain_balance_loss",
    "jaccard_distance",
    "reliability_scores",
    "reliable_dbscan_pseudo_labels",
    "soft_triplet_loss",
]


# --------------------------------------------------------------------------- Jaccard distance
def _check_features(features: Any, name: str = "features") -> np.ndarray:
    x = np.asarray(features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.astype(np.float32)


def _reciprocal(rank: np.ndarray, size: int) -> np.ndarray:
    """Boolean (N, N): ``j`` is in the ``size``-long NN list of ``i`` (self included) and vice versa."""
    n = rank.shape[0]
    knn = np.zeros((n, n), dtype=bool)
    knn[np.arange(n)[:, None], rank[:, :size]] = True
    return knn & knn.T


def jaccard_distance(features: Any, k1: int = 30, k2: int = 6, chunk: int = 64) -> np.ndarray:
    """k-reciprocal Jaccard distance (Zhong et al., CVPR 2017, as used by DomainMix's clustering).

    Features are L2-normalised; neighbours are ranked by Euclidean distance (stable order). With
    ``R(i, k)`` the k-reciprocal neighbours (kNN lists of min(k+1, k1) points including the point
    itself, as the reference slices a k1-long neighbour list),
    ``R*(i) = R(i, k1)`` united with every ``R(c, round(k1/2))``, ``c in R(i, k1)``, sharing more
    than 2/3 of its members with ``R(i, k1)``; ``V_ij`` = softmax over ``R*(i)`` of
    ``-(2 - 2 <x_i, x_j>)`` (float32), averaged over the ``k2`` nearest neighbours of ``i``
    (local query expansion); ``d_J = 1 - s / (2 - s)`` with ``s = sum_l min(V_il, V_jl)``.

    Returns:
        (N, N) float32 distances in [0, 1], symmetric, zero on the diagonal.
    """
    validate_params(
        {"k1": [Interval(int, 1, math.inf, closed="left")], "k2": [Interval(int, 1, math.inf, closed="left")],
         "chunk": [Interval(int, 1, math.inf, closed="left")]},
        {"k1": k1, "k2": k2, "chunk": chunk},
        owner="jaccard_distance",
    )  # fmt: skip
    x = _check_features(features)
    n = x.shape[0]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    dist = np.maximum(2.0 - 2.0 * sim, 0.0)
    np.fill_diagonal(dist, -1.0)  # the point itself ranks first
    rank = np.argsort(dist, axis=1, kind="stable")
    np.fill_diagonal(dist, 0.0)
    # the reference searches k1 neighbours (self included) and slices [:k + 1] of that list
    r1 = _reciprocal(rank, min(k1, n))
    r_half = _reciprocal(rank, min(int(np.around(k1 / 2)) + 1, k1, n))
    inter = r1.astype(np.float32) @ r_half.T.astype(np.float32)  # |R(c, k1/2) ∩ R(i, k1)|
    size_half = r_half.sum(1).astype(np.float32)
    cand = r1 & (inter > (2.0 / 3.0) * size_half[None, :])
    expanded = r1 | ((cand.astype(np.float32) @ r_half.astype(np.float32)) > 0)
    logits = np.where(expanded, -dist, -np.inf).astype(np.float32)
    logits -= logits.max(1, keepdims=True)
    v = np.exp(logits)
    v /= v.sum(1, keepdims=True)
    if k2 > 1:
        v = v[rank[:, : min(k2, n)]].mean(1)
    out = np.empty((n, n), dtype=np.float32)
    for s in range(0, n, chunk):  # row chunks bound the (chunk, N, N) minimum
        m = np.minimum(v[s : s + chunk, None, :], v[None, :, :]).sum(-1)
        out[s : s + chunk] = 1.0 - m / (2.0 - m)
    out = np.clip(out, 0.0, 1.0)
    out = np.minimum(out, out.T)  # exact symmetry against float summation order
    np.fill_diagonal(out, 0.0)
    return out


# --------------------------------------------------------------------------- reliable clustering
def _check_labels(labels: Any, name: str, n: int | None = None) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or (n is not None and y.shape[0] != n):
        raise ValueError(f"{name} must be 1-D of length {n if n is not None else 'N'}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _singletons(labels: np.ndarray) -> np.ndarray:
    """DBSCAN noise (-1) becomes unique labels after the largest."""
    out = labels.copy()
    noise = out < 0
    out[noise] = out.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return out


def reliability_scores(normal: Any, tight: Any, loose: Any) -> tuple[np.ndarray, np.ndarray]:
    """SpCL reliability of each sample: ``R_comp(i) = 1 - IoU(same(normal)_i, same(tight)_i)``
    and ``R_indep(i) = 1 - IoU(same(normal)_i, same(loose)_i)`` (row-wise IoU of same-label sets)."""
    a = _check_labels(normal, "normal")
    b = _check_labels(tight, "tight", a.shape[0])
    c = _check_labels(loose, "loose", a.shape[0])
    same_a, same_b, same_c = (y[:, None] == y[None, :] for y in (a, b, c))

    def iou(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (p & q).sum(1) / (p | q).sum(1)

    return 1.0 - iou(same_a, same_b), 1.0 - iou(same_a, same_c)


def reliable_dbscan_pseudo_labels(
    dist: Any,
    eps: float = 0.6,
    eps_gap: float = 0.02,
    min_samples: int = 4,
    indep_quantile: float = 0.9,
    min_cluster_size: int = 5,
    fixed_threshold: float | None = None,
) -> tuple[np.ndarray, float]:
    """Pseudo-labels from a precomputed distance: DBSCAN at ``eps`` (and ``eps -/+ eps_gap`` for
    the reliability criteria), unreliable samples become singletons, clusters smaller than
    ``min_cluster_size`` are discarded.

    The independence threshold is the value at index ``round(indep_quantile * M)`` of the sorted
    per-cluster ``R_indep`` over the M multi-member clusters, unless ``fixed_threshold`` is given
    (the paper computes it at the first epoch and then keeps it).

    Returns:
        ``(labels, threshold)``: labels 0..K-1 for kept samples, -1 for discarded ones.
    """
    validate_params(
        {"eps": [Interval(float, 0, math.inf, closed="neither")], "eps_gap": [Interval(float, 0, math.inf, closed="left")],
         "min_samples": [Interval(int, 1, math.inf, closed="left")],
         "indep_quantile": [Interval(float, 0, 1, closed="both")],
         "min_cluster_size": [Interval(int, 1, math.inf, closed="left")],
         "fixed_threshold": [Interval(float, -math.inf, math.inf, closed="neither"), None]},
        {"eps": eps, "eps_gap": eps_gap, "min_samples": min_samples, "indep_quantile": indep_quantile,
         "min_cluster_size": min_cluster_size, "fixed_threshold": fixed_threshold},
        owner="reliable_dbscan_pseudo_labels",
    )  # fmt: skip
    from sklearn.cluster import DBSCAN

    d = _check_features(dist, "dist")
    if d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be square (N, N), got shape {d.shape}")

    def cluster(e: float) -> np.ndarray:
        return _singletons(DBSCAN(eps=max(e, 1e-12), min_samples=min_samples, metric="precomputed").fit_predict(d))

    normal, tight, loose = cluster(eps), cluster(eps - eps_gap), cluster(eps + eps_gap)
    r_comp, r_indep = reliability_scores(normal, tight, loose)
    k = normal.max() + 1
    big = np.full(k, np.inf)
    np.minimum.at(big, normal, r_indep)  # Ri(c) = min over members
    rc = np.full(k, np.inf)
    np.minimum.at(rc, normal, r_comp)  # Rc(c)
    counts = np.bincount(normal, minlength=k)
    if fixed_threshold is None:
        ri_multi = np.sort(big[counts > 1])
        threshold = (
            float(ri_multi[min(int(round(indep_quantile * ri_multi.size)), ri_multi.size - 1)])
            if ri_multi.size
            else 0.0
        )
    else:
        threshold = float(fixed_threshold)
    keep = (big[normal] <= threshold) & (r_comp <= rc[normal])
    labels = np.where(keep, normal, -1)
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    labels = np.where((labels >= 0) & (sizes[np.maximum(labels, 0)] >= min_cluster_size), labels, -1)
    kept = np.unique(labels[labels >= 0])
    remap = np.full(k, -1)
    remap[kept] = np.arange(kept.size)
    return np.where(labels >= 0, remap[np.maximum(labels, 0)], -1), threshold


# --------------------------------------------------------------------------- losses and modules
def domain_balance_loss(logits: torch.Tensor) -> torch.Tensor:
    """Domain balance loss: ``mean_i sum_d (p_id log p_id + 0.5)`` with ``p = softmax(logits)`` over
    the 2 domains, i.e. ``1 - mean entropy``; minimum ``1 - ln 2`` at a 50/50 prediction."""
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must have shape (B, 2), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits is empty: the batch has 0 rows")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contains NaN or infinite values")
    logp = F.log_softmax(logits, dim=1)
    return (logp.exp() * logp + 0.5).sum(1).mean()


class DomainBalanceLoss(nn.Module):
    """Module form of :func:`domain_balance_loss` (the generator's adversarial objective)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return domain_balance_loss(logits)


class DomainDiscriminator(nn.Sequential):
    """The paper's domain classifier: Linear-BN-LeakyReLU(0.2) blocks of widths ``hidden``, then a
    Linear to 2 domains (source 0, target 1)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (1024, 512, 256)) -> None:
        validate_params(
            {"in_dim": [Interval(int, 1, math.inf, closed="left")]}, {"in_dim": in_dim}, owner="DomainDiscriminator"
        )
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2)]
            d = h
        layers.append(nn.Linear(d, 2))
        super().__init__(*layers)


def soft_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Soft-margin batch-hard triplet on un-normalised Euclidean distances,
    ``mean_i softplus(d(a_i, p_i) - d(a_i, n_i))`` (hardest positive / negative per anchor).
    A thin wrapper over pytorch-metric-learning (``TripletMarginLoss(margin=0, smooth_loss=True)``,
    ``BatchHardMiner``, ``LpDistance(normalize_embeddings=False)``)."""
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
        raise ValueError(
            f"embeddings must be (B, D) and labels (B,), got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    dist = LpDistance(normalize_embeddings=False)
    miner = BatchHardMiner(distance=dist)
    loss = TripletMarginLoss(margin=0.0, smooth_loss=True, distance=dist)
    return loss(embeddings, labels, miner(embeddings, labels))


class DomainMixObjective(nn.Module):
    """The DomainMix training objective as an :func:`paperzoo.engine.fit` ``compute_loss``.

    ``model(x)`` must return ``(feat, feat_bn, logits)`` (pooled feature for the triplet, the
    BN-neck feature for the discriminator, identity logits over source + pseudo classes). A batch
    is ``(x, y, domain)``; rows with ``y < 0`` are ignored by the identity and triplet terms.
    Loss = ``id_weight * CE_ls(logits / temperature) + L_tri`` (+ ``L_bal`` when ``adversarial``).
    With ``adversarial`` the objective owns the discriminator and its Adam optimiser and updates it
    with cross-entropy (same temperature) on detached features every ``d_every``-th call. Unlike
    the reference, the generator is also updated on those iterations (fit steps every call).
    """

    def __init__(
        self,
        feat_dim: int,
        *,
        adversarial: bool = True,
        id_weight: float = 1.0,
        epsilon: float = 0.1,
        temperature: float = 2.0,
        d_every: int = 10,
        d_lr: float = 3.5e-4,
        hidden: tuple[int, ...] = (64, 32),
    ) -> None:
        super().__init__()
        validate_params(
            {"epsilon": [Interval(float, 0, 1, closed="left")], "temperature": [Interval(float, 0, math.inf, closed="neither")],
             "d_every": [Interval(int, 1, math.inf, closed="left")], "id_weight": [Interval(float, 0, math.inf, closed="left")]},
            {"epsilon": epsilon, "temperature": temperature, "d_every": d_every, "id_weight": id_weight},
            owner="DomainMixObjective",
        )  # fmt: skip
        self.adversarial, self.id_weight, self.temperature, self.d_every = adversarial, id_weight, temperature, d_every
        self.ce = nn.CrossEntropyLoss(label_smoothing=epsilon)
        self.discriminator = DomainDiscriminator(feat_dim, hidden) if adversarial else None
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr) if self.discriminator else None
        self.calls = 0
        #: switch the adversarial term off (warm-up) without dropping the discriminator
        self.active = True

    def forward(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y, domain = batch
        feat, feat_bn, logits = model(x)
        lab = y >= 0
        loss = self.id_weight * self.ce(logits[lab] / self.temperature, y[lab]) + soft_triplet_loss(feat[lab], y[lab])
        if self.active and self.discriminator is not None and self.d_opt is not None:
            if domain.min() < 0 or domain.max() > 1:
                raise ValueError("domain must hold 0 (source) or 1 (target)")
            if self.calls % self.d_every == 0 and domain.unique().numel() == 2:
                self.d_opt.zero_grad()
                d_loss = F.cross_entropy(self.discriminator(feat_bn.detach()) / self.temperature, domain)
                d_loss.backward()
                self.d_opt.step()
                self.d_opt.zero_grad(set_to_none=True)
            self.calls += 1
            self.discriminator.requires_grad_(False)
            loss = loss + domain_balance_loss(self.discriminator(feat_bn))
            self.discriminator.requires_grad_(True)
        return loss
