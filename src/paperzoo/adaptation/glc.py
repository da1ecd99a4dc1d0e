"""GLC: global and local clustering for source-free universal domain adaptation.

Qu, Zou, Röhrbein, Lu, Chen, Tao and Jiang, "Upcycling Models under Domain and Category Shift",
CVPR 2023 (arXiv:2303.07110; official code ``ispc-lab/GLC``, re-implemented here, not vendored).

Only a closed-set classifier trained on a labelled source domain (``C`` classes) is available; the
unlabelled target domain has shifted inputs and an unknown category shift (it may lack source
classes and contain classes the source never saw). GLC adapts the feature extractor, classifier
frozen, with two self-training signals:

* **global one-vs-all clustering** (:func:`one_vs_all_pseudo_labels`, recomputed at the start of
  every epoch): for every source class the most confident target samples define a positive
  prototype, the rest are clustered by k-means into negative prototypes; a sample is a positive
  of class ``c`` when its prior-weighted similarity to the positive prototype beats every negative
  prototype of ``c``; among those classes only the one with the nearest positive prototype is
  kept; samples claimed by no class get a uniform target (pushed to high entropy, "unknown").
  The number of clusters per class comes from :func:`estimate_category_ratio` (t-SNE + k-means
  silhouette, once, before adaptation);
* **local k-NN consensus** (:class:`KNNConsensusLoss` with a :class:`FeatureBank`): each sample's
  prediction is pulled towards the mean prediction of its ``k`` nearest target neighbours.

At test time a normalised entropy above ``w_0 = 0.55`` means "unknown" (:func:`entropy_rejection`);
:func:`universal_da_scores` gives the OPDA metrics (H-score of known and unknown accuracy).
:func:`train_source` (label-smoothed cross-entropy) and :func:`adapt_glc` (the adaptation epochs)
are small trainers on :func:`paperzoo.engine.fit`. Every ``1e-5`` / ``1e-4`` smoothing constant is
the official code's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params

__all__ = [
    "FeatureBank",
    "GLCConfig",
    "GLCHistory",
    "KNNConsensusLoss",
    "UniDANet",
    "adapt_glc",
    "entropy_rejection",
    "estimate_category_ratio",
    "glc_loss",
    "knn_consensus_loss",
    "normalized_entropy",
    "one_vs_all_pseudo_labels",
    "predict",
    "pseudo_label_loss",
    "train_source",
    "universal_da_scores",
]

EPS = 1e-5  # inside every log and in the accuracy / H-score denominators (official code)
TARGET_EPS = 1e-4  # in the normalisation of the one-vs-all targets (official code)

KMeansFn = Callable[[np.ndarray, int, int], np.ndarray]


# --------------------------------------------------------------------------- checks
def _check_matrix(t: Any, name: str, cols: int | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N, {cols or 'D'})")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, {cols or 'D'}), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if cols is not None and t.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got {t.shape[1]}")
    check_finite(t, name)
    return t


def _check_probs(probs: Any, name: str = "probs") -> torch.Tensor:
    p = _check_matrix(probs, name)
    if p.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes (columns), got {p.shape[1]}")
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones((), dtype=p.dtype), atol=1e-3):
        raise ValueError(f"{name} must be probabilities: non-negative rows summing to 1")
    return p


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x


# --------------------------------------------------------------------------- inference and metrics
def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``H(p) / log C`` per row, with ``1e-5`` inside the log (official code); (N,)."""
    p = _check_probs(probs)
    return -(p * torch.log(p + EPS)).sum(1) / math.log(p.shape[1])


_REJECT_CONSTRAINTS = {"threshold": [Interval(float, 0, 1, closed="both")]}


def entropy_rejection(probs: torch.Tensor, threshold: float = 0.55) -> tuple[torch.Tensor, torch.Tensor]:
    """GLC's test-time rule: predict "unknown" (label ``C``) where the normalised entropy exceeds
    ``threshold`` (``w_0 = 0.55``), else ``argmax p``. Returns (predictions (N,), uncertainty (N,))."""
    validate_params(_REJECT_CONSTRAINTS, {"threshold": threshold}, owner="entropy_rejection")
    u = normalized_entropy(probs)
    pred = probs.argmax(1)
    return torch.where(u > threshold, torch.full_like(pred, probs.shape[1]), pred), u


_SCORE_CONSTRAINTS = {
    "unknown_label": [Interval(int, 0, math.inf, closed="left")],
    "open_set": [Options((True, False))],
    "threshold": [Interval(float, 0, 1, closed="both")],
}


def universal_da_scores(
    probs: torch.Tensor,
    labels: torch.Tensor,
    known_classes: Sequence[int],
    unknown_label: int,
    open_set: bool = True,
    threshold: float = 0.55,
) -> tuple[float, float, float, list[float]]:
    """OPDA / OSDA / PDA metrics as the official code computes them.

    Open set (``open_set=True``): predictions by :func:`entropy_rejection`; per-class accuracy
    ``correct / (count + 1e-5)`` over ``known_classes`` then the unknown class; known accuracy =
    mean over the known classes, unknown accuracy = the unknown class's, H-score
    ``2 a_k a_u / (a_k + a_u + 1e-5)``. Closed set (``open_set=False``, partial-set DA): plain
    argmax, no rejection; known accuracy = overall accuracy over all samples, unknown accuracy and
    H-score 0.

    Returns:
        (h_score, known_acc, unknown_acc, per_class) with per_class over ``known_classes`` (+ unknown).
    """
    validate_params(
        _SCORE_CONSTRAINTS,
        {"unknown_label": unknown_label, "open_set": open_set, "threshold": threshold},
        owner="universal_da_scores",
    )
    p = _check_probs(probs)
    labels = _as_tensor(labels, "labels")
    check_labels(labels, p.shape[0], "labels")
    known = [int(c) for c in known_classes]
    if not known:
        raise ValueError("known_classes must name at least one class")
    if any(c < 0 or c >= p.shape[1] for c in known):
        raise ValueError(f"known_classes must lie in [0, {p.shape[1]}), got {known}")
    if not open_set:
        acc = float((p.argmax(1) == labels).double().mean())
        return 0.0, acc, 0.0, [acc]
    pred, _ = entropy_rejection(p, threshold)
    pred = torch.where(pred == p.shape[1], torch.full_like(pred, unknown_label), pred)
    classes = torch.tensor([*known, unknown_label], dtype=labels.dtype)
    member = labels.unsqueeze(0) == classes.unsqueeze(1)  # (K+1, N)
    correct = (member & (pred == labels).unsqueeze(0)).sum(1).double()
    per_class = correct / (member.sum(1).double() + EPS)
    a_k, a_u = float(per_class[:-1].mean()), float(per_class[-1])
    h = 2 * a_k * a_u / (a_k + a_u + EPS)
    return h, a_k, a_u, per_class.tolist()


# --------------------------------------------------------------------------- global clustering
def _sklearn_kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Centroids (k, D) of sklearn k-means (one init, 100 iterations), the replacement for the
    official code's faiss k-means."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit(x).cluster_centers_


_RATIO_CONSTRAINTS = {
    "n_source_classes": [Interval(int, 1, math.inf, closed="left")],
    "subsample": [None, Interval(int, 2, math.inf, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
    "tsne_iter": [Interval(int, 250, math.inf, closed="left")],
}


def estimate_category_ratio(
    features: torch.Tensor | np.ndarray,
    n_source_classes: int,
    coeffs: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 3.0),
    subsample: int | None = None,
    seed: int = 0,
    tsne_iter: int = 1000,
) -> float:
    """How many target categories there are, relative to the source's ``C`` (done once, before
    adaptation): t-SNE of the L2-normalised features to 2-D (``init="pca"``), then for every
    ``coeff`` k-means with ``max(int(C * coeff), 2)`` clusters on the embedding and its silhouette
    score; the ``coeff`` with the highest score. ``subsample``: embed a random subset of that many
    samples (the official code uses a third of VisDA / DomainNet)."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    validate_params(
        _RATIO_CONSTRAINTS,
        {"n_source_classes": n_source_classes, "subsample": subsample, "seed": seed, "tsne_iter": tsne_iter},
        owner="estimate_category_ratio",
    )
    f = _check_matrix(_as_tensor(features, "features").double(), "features")
    if not coeffs or any(not (isinstance(c, (int, float)) and c > 0) for c in coeffs):
        raise ValueError(f"coeffs must be a non-empty sequence of positive numbers, got {coeffs!r}")
    x = F.normalize(f, dim=1).numpy()
    if subsample is not None and subsample < x.shape[0]:
        x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], subsample, replace=False))]
    n = x.shape[0]
    ks = [max(int(n_source_classes * c), 2) for c in coeffs]
    if max(ks) >= n:
        raise ValueError(f"k = {max(ks)} clusters is not smaller than the number of samples ({n})")
    perplexity = min(30.0, (n - 1) / 3)
    emb = TSNE(2, init="pca", random_state=seed, perplexity=perplexity, max_iter=tsne_iter).fit_transform(x)
    scores = [silhouette_score(emb, KMeans(k, n_init=10, random_state=seed).fit_predict(emb)) for k in ks]
    return float(coeffs[int(np.argmax(scores))])


_OVA_CONSTRAINTS = {
    "coeff": [Interval(float, 0, math.inf, closed="neither")],
    "rho": [Interval(float, 0, 1, closed="both")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def one_vs_all_pseudo_labels(
    features: torch.Tensor,
    probs: torch.Tensor,
    coeff: float,
    rho: float = 0.75,
    kmeans_fn: KMeansFn | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GLC's global one-vs-all pseudo-labels (pure function).

    With ``KK = max(int(C * coeff), 1)`` negative clusters and ``n_pos = int(N / C / coeff)``
    positives per class (``KK = 0`` needs ``coeff < 1 / C``, where ``n_pos >= N`` leaves no
    negatives: a clear error here, a crash in the official code): for each class ``c`` the
    ``n_pos`` samples of highest ``p_c`` are its positives (prototype = normalised mean of their
    normalised features), the rest its negatives, clustered into ``KK`` normalised prototypes by
    ``kmeans_fn(x, KK, seed) -> centroids`` (default sklearn k-means, one init, 100 iterations; the
    official code uses faiss, so exact labels differ). Confidence prior ``pi_c = (1 - rho) *
    mean(top n_pos p_c) + rho``. Sample ``i`` is a positive of ``c`` iff ``pi_c <f_i, mu_c+>``
    beats every ``<f_i, mu_c,j->``; it keeps only the class of its nearest positive prototype.
    Targets: ``h_i / (sum h_i + 1e-4)`` with ``h_i`` that one-hot row, or all ones for a sample
    claimed by no class.

    Returns:
        (targets (N, C), unknown_mask (N,) bool: the samples with uniform targets).
    """
    validate_params(_OVA_CONSTRAINTS, {"coeff": coeff, "rho": rho, "seed": seed}, owner="one_vs_all_pseudo_labels")
    p = _check_probs(probs)
    f = _check_matrix(features, "features")
    n, c = p.shape
    if f.shape[0] != n:
        raise ValueError(f"features must have one row per row of probs ({n}), got {f.shape[0]}")
    kk = max(int(c * coeff), 1)
    n_pos = int(n / c / coeff)
    if n_pos < 1:
        raise ValueError(f"n_pos = int(N / C / coeff) = {n_pos}: too few samples ({n}) for C = {c}, coeff = {coeff}")
    if n_pos >= n:
        raise ValueError(f"coeff = {coeff} leaves no negative samples: n_pos = int(N / C / coeff) = {n_pos} >= N = {n}")
    if n - n_pos < kk:
        raise ValueError(f"k = {kk} negative clusters is larger than the number of negative samples ({n - n_pos})")
    kmeans = kmeans_fn or _sklearn_kmeans
    fn = F.normalize(f.detach().double(), dim=1)
    top_vals, order = p.detach().double().topk(n, dim=0)  # (N, C): per class, samples by confidence
    pos_idx, neg_idx = order[:n_pos].T, order[n_pos:].T  # (C, n_pos), (C, N - n_pos)
    mu_pos = F.normalize(fn[pos_idx].mean(1), dim=1)  # (C, D)
    prior = (1 - rho) * top_vals[:n_pos].mean(0) + rho  # (C,)
    fnp = fn.numpy()
    mu_neg = torch.stack(  # (C, KK, D); one k-means per class
        [
            F.normalize(torch.as_tensor(np.asarray(kmeans(fnp[neg_idx[k].numpy()], kk, seed)), dtype=fn.dtype), dim=1)
            for k in range(c)
        ]
    )
    s_pos = fn @ mu_pos.T  # (N, C)
    s_neg = torch.einsum("nd,ckd->nck", fn, mu_neg)  # (N, C, KK)
    positive = prior * s_pos > s_neg.max(2).values  # argmax v = 0 (ties go to the positive, as argmax does)
    gate = F.one_hot(s_pos.argmax(1), c).bool()
    h = (positive & gate).to(fn.dtype)
    unknown = h.sum(1) == 0
    h[unknown] = 1.0
    targets = h / (h.sum(1, keepdim=True) + TARGET_EPS)
    return targets.to(p.dtype), unknown


def pseudo_label_loss(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L_psd = mean_b -sum_c y_bc log(p_bc + 1e-5)`` (soft targets)."""
    return -(targets * torch.log(probs + EPS)).sum(1).mean()


# --------------------------------------------------------------------------- local consensus
class FeatureBank:
    """Normalised features (N, D) and predictions (N, C) of the whole target set, updated by index
    (no gradient). The official code initialises it from one pass over the target set and
    overwrites the batch's rows after each step."""

    def __init__(self, features: torch.Tensor, probs: torch.Tensor) -> None:
        f = _check_matrix(features, "features")
        p = _check_probs(probs)
        if f.shape[0] != p.shape[0]:
            raise ValueError(f"features and probs must have the same number of rows, got {f.shape[0]} and {p.shape[0]}")
        self.features = F.normalize(f.detach(), dim=1).clone()
        self.probs = p.detach().clone()

    def __len__(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def neighbours(self, features: torch.Tensor, k: int) -> torch.Tensor:
        """Indices (B, k) of the ``k`` most cosine-similar bank rows, the most similar one (the
        sample itself when it is in the bank) dropped."""
        if k + 1 > len(self):
            raise ValueError(f"k + 1 = {k + 1} neighbours is larger than the number of bank samples ({len(self)})")
        sim = F.normalize(features.detach(), dim=1) @ self.features.T.to(features.dtype)
        return sim.topk(k + 1, dim=1).indices[:, 1:]

    @torch.no_grad()
    def update(self, index: torch.Tensor, features: torch.Tensor, probs: torch.Tensor) -> None:
        """Overwrite rows ``index`` with the (detached) normalised features and predictions."""
        check_labels(index, features.shape[0], "index", len(self))
        self.features[index] = F.normalize(features.detach(), dim=1).to(self.features.dtype)
        self.probs[index] = probs.detach().to(self.probs.dtype)


def knn_consensus_loss(
    probs: torch.Tensor, features: torch.Tensor, bank_features: torch.Tensor, bank_probs: torch.Tensor, k: int = 4
) -> torch.Tensor:
    """``L_knn = mean_b -sum_c t_bc log(p_bc + 1e-5)``, ``t_b`` the mean bank prediction of the
    ``k`` nearest bank neighbours of ``f_b`` (cosine, the most similar entry dropped), no gradient
    through ``t``. Functional form of :class:`KNNConsensusLoss` (no bank update)."""
    return KNNConsensusLoss(k)(probs, features, FeatureBank(bank_features, bank_probs))


class KNNConsensusLoss(nn.Module):
    """GLC's local consensus term. ``forward(probs, features, bank, index=None)``: the loss of
    :func:`knn_consensus_loss` against ``bank``; with ``index`` (the batch's bank rows) the bank
    rows are then overwritten with the batch's detached features and predictions (after the
    loss is computed: the update does not change it)."""

    _parameter_constraints = {"k": [Interval(int, 1, math.inf, closed="left")]}

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"k": k}, owner=type(self).__name__)
        self.k = int(k)

    def forward(
        self, probs: torch.Tensor, features: torch.Tensor, bank: FeatureBank, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_probs(probs)
        _check_matrix(features, "features")
        if features.shape[0] != probs.shape[0]:
            raise ValueError(f"features must have one row per row of probs ({probs.shape[0]}), got {features.shape[0]}")
        if bank.probs.shape[1] != probs.shape[1]:
            raise ValueError(f"bank predictions have {bank.probs.shape[1]} classes, probs {probs.shape[1]}")
        nn_idx = bank.neighbours(features, self.k)
        target = bank.probs[nn_idx].mean(1).to(probs.dtype)  # (B, C), no gradient
        loss = pseudo_label_loss(probs, target)
        if index is not None:
            bank.update(index, features, probs)
        return loss


def glc_loss(
    probs: torch.Tensor,
    features: torch.Tensor,
    targets: torch.Tensor | None,
    bank: FeatureBank | None,
    index: torch.Tensor | None,
    lambda_psd: float = 0.3,
    lambda_knn: float = 1.0,
    k: int = 4,
) -> torch.Tensor:
    """``L = lambda_psd * L_psd + lambda_knn * L_knn`` of one batch (a term is skipped when its
    weight is 0 or its input ``None``); updates the bank rows ``index`` when given."""
    loss = probs.new_zeros(())
    if lambda_psd > 0 and targets is not None:
        loss = loss + lambda_psd * pseudo_label_loss(probs, targets)
    if lambda_knn > 0 and bank is not None:
        loss = loss + lambda_knn * KNNConsensusLoss(k)(probs, features, bank, index)
    return loss


# --------------------------------------------------------------------------- network and trainers
class UniDANet(nn.Module):
    """The official network's head on any ``backbone``: bottleneck ``Linear(d_in, d)`` +
    ``BatchNorm1d`` (no activation), then a weight-normalised ``Linear(d, C)`` with bias (xavier
    normal init). ``embed(x)`` gives the bottleneck features, ``forward(x)`` the logits."""

    def __init__(self, backbone: nn.Module, backbone_dim: int, n_classes: int, bottleneck: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        self.bottleneck = nn.Sequential(nn.Linear(backbone_dim, bottleneck), nn.BatchNorm1d(bottleneck))
        linear = nn.Linear(bottleneck, n_classes)
        nn.init.xavier_normal_(linear.weight)
        nn.init.zeros_(linear.bias)
        self.classifier = nn.utils.parametrizations.weight_norm(linear)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@torch.no_grad()
def predict(model: UniDANet, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode (features (N, d), probabilities (N, C)) of ``x``; restores the training mode."""
    was = model.training
    model.eval()
    feats = torch.cat([model.embed(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    model.train(was)
    return feats, model.classifier(feats).softmax(1)


def _inverse_decay(total: int, gamma: float = 10.0, power: float = 0.75) -> Callable[[int], float]:
    """The official schedule ``(1 + gamma p)^-power``, ``p`` = step / total steps."""
    return lambda step: (1 + gamma * min(step, total) / max(total, 1)) ** (-power)


def _sgd(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=1e-3)


def train_source(
    model: UniDANet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 50,
    lr: float = 0.01,
    batch_size: int = 64,
    label_smoothing: float = 0.1,
    noise: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Source training as the official ``train_source.py``: label-smoothed cross-entropy, SGD
    (momentum 0.9, Nesterov, weight decay 1e-3), backbone at ``0.1 lr``, the inverse-decay
    schedule; ``noise``: optional Gaussian input jitter (an augmentation for feature inputs).
    Returns the per-step losses (one :func:`paperzoo.engine.fit` run)."""
    from paperzoo.engine import TrainConfig, fit, make_loader

    loader = make_loader(TensorDataset(x, y), batch_size, seed=seed, drop_last=True)
    opt = _sgd(
        [
            {"params": model.backbone.parameters(), "lr": 0.1 * lr},
            {"params": [*model.bottleneck.parameters(), *model.classifier.parameters()], "lr": lr},
        ]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _inverse_decay(epochs * len(loader)))
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def compute(m: nn.Module, batch: Any) -> torch.Tensor:
        xb, yb = batch
        if noise > 0:
            xb = xb + noise * torch.randn_like(xb)
        return ce(m(xb), yb)

    cfg = TrainConfig(epochs=epochs, seed=seed, progress=False, desc="GLC source")
    return fit(model, None, loader, opt, cfg, scheduler=sched, compute_loss=compute).losses


@dataclass(frozen=True)
class GLCConfig:
    """Adaptation hyper-parameters (defaults: the official Office-31 / VisDA OPDA values, with
    ``lambda_psd = 1.5`` for Office-Home / DomainNet). ``lambda_psd = 0`` or ``lambda_knn = 0``
    gives the local-only or global-only ablation. ``coeff=None``: estimate it with
    :func:`estimate_category_ratio` (``ratio_subsample`` samples, ``tsne_iter`` iterations)."""

    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 64
    lambda_psd: float = 0.3
    lambda_knn: float = 1.0
    k: int = 4
    rho: float = 0.75
    coeff: float | None = None
    coeffs: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 3.0)
    ratio_subsample: int | None = None
    tsne_iter: int = 1000
    seed: int = 0

    _constraints = {
        "epochs": [Interval(int, 1, math.inf, closed="left")],
        "lr": [Interval(float, 0, math.inf, closed="neither")],
        "batch_size": [Interval(int, 1, math.inf, closed="left")],
        "lambda_psd": [Interval(float, 0, math.inf, closed="left")],
        "lambda_knn": [Interval(float, 0, math.inf, closed="left")],
        "k": [Interval(int, 1, math.inf, closed="left")],
        "rho": [Interval(float, 0, 1, closed="both")],
        "coeff": [None, Interval(float, 0, math.inf, closed="neither")],
        "seed": [Interval(int, 0, math.inf, closed="left")],
    }

    def __post_init__(self) -> None:
        params = {name: getattr(self, name) for name in self._constraints}
        validate_params(self._constraints, params, owner="GLCConfig")
        if self.lambda_psd == 0 and self.lambda_knn == 0:
            raise ValueError("GLCConfig: lambda_psd and lambda_knn are both 0 (nothing to train)")


@dataclass
class GLCHistory:
    """What :func:`adapt_glc` did: the coeff used, per-epoch fraction of samples with a uniform
    ("unknown") pseudo-label, per-epoch mean loss, and optional per-epoch callback values."""

    coeff: float
    unknown_fraction: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    evaluations: list[Any] = field(default_factory=list)


def adapt_glc(
    model: UniDANet,
    x: torch.Tensor,
    config: GLCConfig | None = None,
    *,
    kmeans_fn: KMeansFn | None = None,
    on_epoch_end: Callable[[UniDANet], Any] | None = None,
) -> GLCHistory:
    """Source-free adaptation of ``model`` to the unlabelled target inputs ``x`` (in place).

    Classifier frozen; bottleneck at ``lr``, backbone at ``0.1 lr`` (SGD as the source training,
    inverse-decay schedule over all adaptation steps). Before training: the feature bank from one
    eval pass and, if ``config.coeff`` is None, :func:`estimate_category_ratio`. Every epoch: the
    global pseudo-labels from an eval pass (:func:`one_vs_all_pseudo_labels`), then one
    :func:`paperzoo.engine.fit` epoch on :func:`glc_loss` (shuffled, ``drop_last``).
    ``on_epoch_end(model)`` values are collected in the history (e.g. per-epoch target scores).
    """
    from paperzoo.engine import TrainConfig, fit, make_loader

    cfg = config or GLCConfig()
    x = _as_tensor(x, "x")
    if x.dim() < 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"x must be a non-empty floating-point batch of target inputs (N, ...), got {tuple(x.shape)}")
    check_finite(x, "x")
    n = x.shape[0]
    if cfg.batch_size > n:
        raise ValueError(f"batch_size = {cfg.batch_size} is larger than the number of target samples ({n})")
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    feats, probs = predict(model, x)
    bank = FeatureBank(feats, probs) if cfg.lambda_knn > 0 else None
    coeff = cfg.coeff
    if coeff is None:
        coeff = (
            estimate_category_ratio(
                feats, probs.shape[1], cfg.coeffs, cfg.ratio_subsample, seed=cfg.seed, tsne_iter=cfg.tsne_iter
            )
            if cfg.lambda_psd > 0
            else 1.0
        )
    history = GLCHistory(coeff=float(coeff))
    index = torch.arange(n)
    n_steps = n // cfg.batch_size
    opt = _sgd(
        [
            {"params": model.backbone.parameters(), "lr": 0.1 * cfg.lr},
            {"params": model.bottleneck.parameters(), "lr": cfg.lr},
        ]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _inverse_decay(cfg.epochs * n_steps))
    targets: torch.Tensor | None = None

    def compute(m: nn.Module, batch: Any) -> torch.Tensor:
        xb, ib = batch
        f = m.embed(xb)
        p = m.classifier(f).softmax(1)
        t = targets[ib] if targets is not None else None
        return glc_loss(p, f, t, bank, ib, cfg.lambda_psd, cfg.lambda_knn, cfg.k)

    for epoch in range(cfg.epochs):
        if cfg.lambda_psd > 0:
            feats, probs = predict(model, x)
            targets, unknown = one_vs_all_pseudo_labels(
                feats, probs, float(coeff), cfg.rho, kmeans_fn=kmeans_fn, seed=cfg.seed + epoch
            )
            history.unknown_fraction.append(float(unknown.double().mean()))
        # one loader per epoch: fit's sampler reshuffles by its own epoch counter, here always 0
        loader = make_loader(TensorDataset(x, index), cfg.batch_size, seed=cfg.seed * 1000 + epoch, drop_last=True)
        tc = TrainConfig(epochs=1, seed=cfg.seed * 1000 + epoch, progress=False, desc="GLC adapt")
        losses = fit(model, None, loader, opt, tc, scheduler=sched, compute_loss=compute).losses
        history.losses.append(float(np.mean(losses)))
        if on_epoch_end is not None:
            history.evaluations.append(on_epoch_end(model))
    return history
