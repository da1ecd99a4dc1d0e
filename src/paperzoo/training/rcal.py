"""RCAL, representation calibration for noisy long-tailed labels (Zhang et al., "When Noisy Labels
Meet Long Tail Dilemmas: A Representation Calibration Method", ICCV 2023, arXiv:2211.10955).

The method, in the order it runs:

1. **Label-free representations.** A contrastive encoder (MoCo in the paper; here SimCLR-style,
   :func:`contrastive_pretrain` with :func:`nt_xent`) gives every
   training sample a representation ``z_i = f(x_i)`` that never saw the corrupted labels.
2. **Distributional calibration.** Each (noisy) class is modelled as a Gaussian over the ``z_i``:
   :func:`robust_class_gaussians` drops the points scikit-learn's ``LocalOutlierFactor`` flags
   and estimates a mean and covariance from the rest; :func:`calibrate_tail_statistics` lets a
   tail class borrow the statistics of its ``q`` nearest head classes (the Gaussian calibration
   of Yang et al., ICLR 2021, which RCAL builds on):
   ``mu_k = (mu_k + sum_j mu_j) / (q + 1)``, ``Sigma_k = (Sigma_k + sum_j Sigma_j) / (q + 1) + alpha I``;
   :func:`sample_calibrated_features` draws synthetic representations from the calibrated
   Gaussians to bring every class up to the largest one.
3. **Classifier training with individual calibration.** :class:`RCALObjective` is the per-batch
   loss that :func:`paperzoo.engine.fit` drives: mixup cross-entropy on the inputs, cross-entropy
   of the classifier on a batch of synthetic representations, and ``beta * ||f(x_i) - z_i||``
   (:class:`paperzoo.losses.IndividualCalibrationLoss`). :func:`fit_rcal` ties 2 and 3 together.

The paper's equations were not readable from the available text: the exact calibration weights,
``alpha``, the number of sampled features, the distance type, the loss weights and the LOF
settings are unconfirmed, and the defaults here are this toolkit's (each is a parameter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params
from paperzoo.engine.loop import TrainConfig, TrainHistory, fit, make_loader
from paperzoo.losses.individual_calibration import IndividualCalibrationLoss

__all__ = [
    "ClassGaussian",
    "RCALClassifier",
    "RCALObjective",
    "RCALFit",
    "calibrate_tail_statistics",
    "contrastive_pretrain",
    "nt_xent",
    "fit_rcal",
    "robust_class_gaussians",
    "sample_calibrated_features",
    "simclr_augment",
    "tail_classes",
]


@dataclass(frozen=True)
class ClassGaussian:
    """One class's Gaussian over the representations: ``mean`` (D,), ``cov`` (D, D) and the number
    of points it was estimated from (after outlier removal)."""

    mean: torch.Tensor
    cov: torch.Tensor
    n_kept: int


_GAUSS_CONSTRAINTS: dict[str, list[Any]] = {
    "lof_neighbors": [Interval(int, 1, math.inf, closed="left")],
    "contamination": [Options(("auto",)), Interval(float, 0, 0.5, closed="right"), None],
    "ridge": [Interval(float, 0, math.inf, closed="left")],
}


def _check_z_y(z: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise TypeError("z must be a floating-point torch.Tensor of shape (N, D)")
    if z.dim() != 2:
        raise ValueError(f"z must have shape (N, D), got {tuple(z.shape)}")
    if z.shape[0] == 0:
        raise ValueError("empty batch: z has 0 rows")
    check_finite(z, "z")
    check_labels(y, z.shape[0], "y")
    if int(y.min()) < 0:
        raise ValueError(f"y must be non-negative class ids, got a minimum of {int(y.min())}")


def robust_class_gaussians(
    z: torch.Tensor,
    y: torch.Tensor,
    lof_neighbors: int = 20,
    contamination: str | float | None = "auto",
    ridge: float = 1e-4,
) -> dict[int, ClassGaussian]:
    """Mean and covariance of every class present in ``y`` after Local Outlier Factor removal.

    For class ``k`` with points ``S_k``, ``LocalOutlierFactor(n_neighbors=min(lof_neighbors,
    |S_k| - 1), contamination)`` flags outliers, which are dropped (classes with fewer than 3
    points, and ``contamination=None``, skip the removal); the mean and the unbiased covariance
    of the rest, plus ``ridge * I``, are returned in float64 (a single kept point has covariance
    ``ridge * I``).

    Args:
        z: representations (N, D).
        y: (noisy) labels (N,), integers >= 0.
        lof_neighbors: the LOF neighbourhood size (capped at ``|S_k| - 1``).
        contamination: LOF's ``contamination`` (``"auto"`` or a float in (0, 0.5]); ``None``: keep all.
        ridge: added to every covariance's diagonal (>= 0).
    """
    validate_params(
        _GAUSS_CONSTRAINTS,
        {"lof_neighbors": lof_neighbors, "contamination": contamination, "ridge": ridge},
        owner="robust_class_gaussians",
    )
    _check_z_y(z, y)
    from sklearn.neighbors import LocalOutlierFactor

    zz = z.detach().to(torch.float64).cpu()
    yy = y.detach().cpu()
    eye = torch.eye(zz.shape[1], dtype=torch.float64)
    out: dict[int, ClassGaussian] = {}
    for k in torch.unique(yy).tolist():  # one fit per class, not per sample
        pts = zz[yy == k]
        if contamination is not None and pts.shape[0] >= 3:
            lof = LocalOutlierFactor(n_neighbors=min(lof_neighbors, pts.shape[0] - 1), contamination=contamination)
            keep = torch.from_numpy(lof.fit_predict(pts.numpy()) == 1)
            if bool(keep.any()):
                pts = pts[keep]
        mean = pts.mean(0)
        cov = torch.cov(pts.T, correction=1).reshape(zz.shape[1], zz.shape[1]) if pts.shape[0] > 1 else eye * 0
        out[int(k)] = ClassGaussian(mean, cov + ridge * eye, int(pts.shape[0]))
    return out


def _counts_dict(counts: Mapping[int, int] | Sequence[int] | np.ndarray | torch.Tensor) -> dict[int, int]:
    if isinstance(counts, Mapping):
        return {int(k): int(v) for k, v in counts.items()}
    return {k: int(v) for k, v in enumerate(np.asarray(counts).tolist())}


def tail_classes(counts: Mapping[int, int] | Sequence[int], tail_threshold: str | float = "median") -> list[int]:
    """Classes whose count is strictly below ``tail_threshold`` (``"median"``: the median count)."""
    c = _counts_dict(counts)
    validate_params(
        {"tail_threshold": [Options(("median",)), Interval(float, 0, math.inf, closed="left")]},
        {"tail_threshold": tail_threshold},
        owner="tail_classes",
    )
    thr = float(np.median(list(c.values()))) if tail_threshold == "median" else float(tail_threshold)
    return sorted(k for k, n in c.items() if n < thr)


def calibrate_tail_statistics(
    stats: Mapping[int, ClassGaussian],
    counts: Mapping[int, int] | Sequence[int],
    q: int = 2,
    alpha: float = 0.0,
    tail_threshold: str | float = "median",
) -> dict[int, ClassGaussian]:
    """Tail classes borrow the statistics of their ``q`` nearest head classes.

    For a tail class ``k`` (:func:`tail_classes` of ``counts``) with ``C`` = the ``q`` head
    classes whose means are nearest to ``mu_k`` (Euclidean; all heads if fewer than ``q``):
    ``mu_k <- (mu_k + sum_C mu_j) / (|C| + 1)`` and ``Sigma_k <- (Sigma_k + sum_C Sigma_j) /
    (|C| + 1) + alpha I``. Head classes are returned unchanged; ``q = 0`` and ``alpha = 0`` change
    nothing. ``counts`` are the class sizes (the noisy-label counts, before outlier removal).
    """
    validate_params(
        {"q": [Interval(int, 0, math.inf, closed="left")], "alpha": [Interval(float, 0, math.inf, closed="left")]},
        {"q": q, "alpha": alpha},
        owner="calibrate_tail_statistics",
    )
    c = _counts_dict(counts)
    missing = sorted(set(stats) - set(c))
    if missing:
        raise ValueError(f"counts must give a size for every class of stats; missing {missing}")
    c = {k: c[k] for k in stats}
    tails = tail_classes(c, tail_threshold)
    heads = [k for k in stats if k not in tails]
    out = dict(stats)
    if not tails or not heads or q == 0:
        if alpha > 0:
            for k in tails:
                s = stats[k]
                out[k] = ClassGaussian(s.mean, s.cov + alpha * torch.eye(s.cov.shape[0], dtype=s.cov.dtype), s.n_kept)
        return out
    head_mu = torch.stack([stats[k].mean for k in heads])  # (H, D)
    head_cov = torch.stack([stats[k].cov for k in heads])  # (H, D, D)
    tail_mu = torch.stack([stats[k].mean for k in tails])  # (T, D)
    qq = min(q, len(heads))
    nearest = torch.cdist(tail_mu, head_mu).topk(qq, dim=1, largest=False).indices  # (T, q)
    mu = (tail_mu + head_mu[nearest].sum(1)) / (qq + 1)
    tail_cov = torch.stack([stats[k].cov for k in tails])
    eye = torch.eye(tail_mu.shape[1], dtype=tail_cov.dtype)
    cov = (tail_cov + head_cov[nearest].sum(1)) / (qq + 1) + alpha * eye
    for i, k in enumerate(tails):
        out[k] = ClassGaussian(mu[i], cov[i], stats[k].n_kept)
    return out


def sample_calibrated_features(
    stats: Mapping[int, ClassGaussian],
    counts: Mapping[int, int] | Sequence[int],
    target: str | int = "max",
    generator: torch.Generator | None = None,
    jitter: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic representations ``z ~ N(mu_k, Sigma_k)``, ``target - counts[k]`` for class ``k``
    (``target="max"``: the largest count, so every class reaches it; none for a class already at
    or above it). Returns ``(Z_syn float64 (M, D), y_syn int64 (M,))``, class by class.

    The draw is ``mu + eps @ L^T`` with ``L`` the Cholesky factor of ``Sigma`` (the
    reparametrisation of ``torch.distributions.MultivariateNormal``, written out so that a
    ``generator`` makes it reproducible); a covariance that is not numerically positive definite
    gets ``jitter * I`` added until it is.
    """
    validate_params(
        {"target": [Options(("max",)), Interval(int, 0, math.inf, closed="left")]},
        {"target": target},
        owner="sample_calibrated_features",
    )
    c = _counts_dict(counts)
    missing = sorted(set(stats) - set(c))
    if missing:
        raise ValueError(f"counts must give a size for every class of stats; missing {missing}")
    goal = max(c[k] for k in stats) if target == "max" else int(target)
    dim = next(iter(stats.values())).mean.shape[0]
    zs, ys = [torch.zeros(0, dim, dtype=torch.float64)], [torch.zeros(0, dtype=torch.int64)]
    for k, s in stats.items():
        m = goal - c[k]
        if m <= 0:
            continue
        cov = s.cov.to(torch.float64)
        chol, info = torch.linalg.cholesky_ex(cov)
        bump = jitter
        while int(info) != 0:
            chol, info = torch.linalg.cholesky_ex(cov + bump * torch.eye(dim, dtype=torch.float64))
            bump *= 10
        eps = torch.randn(m, dim, dtype=torch.float64, generator=generator)
        zs.append(s.mean.to(torch.float64) + eps @ chol.T)
        ys.append(torch.full((m,), int(k), dtype=torch.int64))
    return torch.cat(zs), torch.cat(ys)


# --------------------------------------------------------------------------- stage 2b
class RCALClassifier(nn.Module):
    """``g(f(x))``: an encoder ``f`` (initialised from the contrastive stage) and a linear head ``g``."""

    def __init__(self, encoder: nn.Module, repr_dim: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(repr_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class RCALObjective(nn.Module):
    """RCAL's per-batch classifier loss, a ``compute_loss(model, batch)`` for :func:`engine.fit`.

    ``batch = (x, y, z)``: inputs, noisy labels and the frozen contrastive representations of the
    same samples; ``model`` an :class:`RCALClassifier`. The loss is

        mixup CE(g(f(lam x + (1 - lam) x')), y, y') + syn_weight * CE(g(z_syn), y_syn)
        + beta * mean_i ||f(x_i) - z_i||

    with ``lam ~ Beta(mixup_alpha, mixup_alpha)`` (one per batch, ``mixup_alpha = 0``: no mixup),
    ``syn_batch_size`` synthetic representations drawn uniformly from ``(z_syn, y_syn)`` each
    step (none when the pool is empty or ``syn_batch_size = 0``). Randomness uses the global
    torch generator, which :func:`engine.fit` seeds.
    """

    def __init__(
        self,
        z_syn: torch.Tensor | None = None,
        y_syn: torch.Tensor | None = None,
        *,
        beta: float = 1.0,
        distance: str = "l2",
        mixup_alpha: float = 1.0,
        syn_batch_size: int = 64,
        syn_weight: float = 1.0,
    ) -> None:
        super().__init__()
        validate_params(
            {
                "mixup_alpha": [Interval(float, 0, math.inf, closed="left")],
                "syn_batch_size": [Interval(int, 0, math.inf, closed="left")],
                "syn_weight": [Interval(float, 0, math.inf, closed="left")],
            },
            {"mixup_alpha": mixup_alpha, "syn_batch_size": syn_batch_size, "syn_weight": syn_weight},
            owner=type(self).__name__,
        )
        if (z_syn is None) != (y_syn is None):
            raise ValueError("give both z_syn and y_syn, or neither")
        if z_syn is not None and y_syn is not None and z_syn.shape[0] > 0:
            _check_z_y(z_syn, y_syn)
        self.individual = IndividualCalibrationLoss(beta=beta, distance=distance)
        self.mixup_alpha, self.syn_batch_size, self.syn_weight = float(mixup_alpha), int(syn_batch_size), syn_weight
        self.register_buffer("z_syn", z_syn.float() if z_syn is not None else torch.zeros(0, 0))
        self.register_buffer("y_syn", y_syn.long() if y_syn is not None else torch.zeros(0, dtype=torch.long))

    def forward(self, model: RCALClassifier, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        x, y, z = batch[0], batch[1], batch[2]
        if self.mixup_alpha > 0:
            lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
            perm = torch.randperm(x.shape[0], device=x.device)
            logits = model(lam * x + (1 - lam) * x[perm])
            loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
        else:
            loss = F.cross_entropy(model(x), y)
        if self.individual.beta > 0:
            loss = loss + self.individual(model.encoder(x), z)
        n_syn = self.z_syn.shape[0]
        if n_syn and self.syn_batch_size and self.syn_weight > 0:
            idx = torch.randint(n_syn, (self.syn_batch_size,), device=self.z_syn.device)
            loss = loss + self.syn_weight * F.cross_entropy(model.head(self.z_syn[idx]), self.y_syn[idx])
        return loss


@dataclass
class RCALFit:
    """What :func:`fit_rcal` did: the statistics before and after calibration, the tail classes,
    the synthetic pool's size and the training history."""

    stats: dict[int, ClassGaussian]
    calibrated: dict[int, ClassGaussian]
    tails: list[int]
    n_synthetic: int
    history: TrainHistory
    kept: dict[int, int] = field(default_factory=dict)


def fit_rcal(
    model: RCALClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    *,
    batch_size: int = 128,
    lof_neighbors: int = 20,
    contamination: str | float | None = "auto",
    ridge: float = 1e-4,
    q: int = 2,
    alpha: float = 0.0,
    tail_threshold: str | float = "median",
    distributional: bool = True,
    beta: float = 1.0,
    distance: str = "l2",
    mixup_alpha: float = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> RCALFit:
    """Stages 2a + 2b of RCAL on a model whose encoder holds the contrastive representation.

    Computes the frozen ``z = f(x)`` with the model's current encoder, the robust class Gaussians
    of ``z`` under the noisy labels ``y``, calibrates the tail classes and samples a synthetic
    pool up to the largest class (skipped when ``distributional=False``), then trains the whole
    model with :class:`RCALObjective` through :func:`paperzoo.engine.fit` (the synthetic batch per
    step is the pool's share of a step: ``ceil(batch_size * M / N)``). The synthetic draw uses
    ``config.seed``.
    """
    check_labels(y, x.shape[0], "y")
    model.eval()
    with torch.no_grad():
        z = model.encoder(x).detach().clone()
    counts = {int(k): int(v) for k, v in zip(*torch.unique(y, return_counts=True))}
    stats = robust_class_gaussians(z, y, lof_neighbors=lof_neighbors, contamination=contamination, ridge=ridge)
    tails = tail_classes(counts, tail_threshold)
    if distributional:
        calibrated = calibrate_tail_statistics(stats, counts, q=q, alpha=alpha, tail_threshold=tail_threshold)
        gen = torch.Generator().manual_seed(int(config.seed) + 1)
        z_syn, y_syn = sample_calibrated_features(calibrated, counts, "max", generator=gen)
    else:
        calibrated, z_syn, y_syn = dict(stats), torch.zeros(0, z.shape[1]), torch.zeros(0, dtype=torch.long)
    syn_bs = math.ceil(batch_size * z_syn.shape[0] / x.shape[0]) if z_syn.shape[0] else 0
    objective = RCALObjective(
        z_syn, y_syn, beta=beta, distance=distance, mixup_alpha=mixup_alpha, syn_batch_size=syn_bs
    )
    loader = make_loader(TensorDataset(x, y, z), batch_size, seed=config.seed)
    model.train()
    history = fit(model, None, loader, optimizer, config, scheduler=scheduler, compute_loss=objective)
    model.eval()
    return RCALFit(stats, calibrated, tails, int(z_syn.shape[0]), history, {k: s.n_kept for k, s in stats.items()})


# --------------------------------------------------------------------------- stage 1
def nt_xent(embeddings: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (SimCLR) of ``2B`` embeddings whose rows ``i`` and ``i + B`` are two views of one
    sample: mean over the ``2B`` anchors of ``-log softmax`` of the positive's cosine similarity
    / ``temperature`` against every other row.

    The same value as pytorch-metric-learning's ``NTXentLoss(temperature)`` with labels
    ``[0..B-1, 0..B-1]`` (tested), computed as one ``(2B, 2B)`` cross-entropy: that library
    enumerates positive x negative pairs and is ~500x slower at ``2B = 512`` on a CPU.
    """
    check_finite(embeddings, "embeddings")
    if embeddings.dim() != 2 or embeddings.shape[0] < 2 or embeddings.shape[0] % 2:
        raise ValueError(f"embeddings must have shape (2B, D) with B >= 1, got {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    e = F.normalize(embeddings, dim=1)
    sim = (e @ e.T) / temperature
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=e.device), float("-inf"))
    partner = (torch.arange(n, device=e.device) + n // 2) % n
    return F.cross_entropy(sim, partner)


def simclr_augment(
    x: torch.Tensor,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    *,
    max_shift: int = 2,
    noise: float = 0.1,
    erase: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cheap SimCLR-style views of a batch of images, vectorised over the batch: a random shift of
    up to ``max_shift`` pixels (zero padding), Gaussian pixel noise of std ``noise`` and one
    erased ``erase x erase`` square at a random place. ``x``: (B, C*H*W) or (B, C, H, W); the
    output has the input's shape."""
    c, h, w = image_shape
    b = x.shape[0]
    img = x.reshape(b, c, h, w)
    dev = x.device
    if max_shift > 0:
        pad = F.pad(img, (max_shift,) * 4)
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(dev)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator).to(dev)
        rows = (torch.arange(h, device=dev)[None] + dy[:, None])[:, None, :, None]  # (B, 1, H, 1)
        cols = (torch.arange(w, device=dev)[None] + dx[:, None])[:, None, None, :]  # (B, 1, 1, W)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        img = pad[bi, ci, rows, cols]
    if noise > 0:
        img = img + noise * torch.randn(img.shape, generator=generator).to(dev, img.dtype)
    if erase > 0:
        r0 = torch.randint(0, h - erase + 1, (b,), generator=generator).to(dev)[:, None, None]
        c0 = torch.randint(0, w - erase + 1, (b,), generator=generator).to(dev)[:, None, None]
        r = torch.arange(h, device=dev)[None, :, None]
        cc = torch.arange(w, device=dev)[None, None, :]
        mask = (r >= r0) & (r < r0 + erase) & (cc >= c0) & (cc < c0 + erase)  # (B, H, W)
        img = img.masked_fill(mask[:, None], 0.0)
    return img.reshape(x.shape)


def contrastive_pretrain(
    encoder: nn.Module,
    projector: nn.Module,
    x: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    *,
    batch_size: int = 256,
    temperature: float = 0.2,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    augment: Mapping[str, Any] | None = None,
) -> TrainHistory:
    """SimCLR-style label-free pre-training of ``encoder`` (the stand-in for RCAL's MoCo stage):
    two :func:`simclr_augment` views per image, ``projector(encoder(view))``, :func:`nt_xent` with
    ``temperature`` (the two views of an image are the positive pair, every other view in the
    batch a negative), driven by :func:`engine.fit`."""
    validate_params(
        {"temperature": [Interval(float, 0, math.inf, closed="neither")]},
        {"temperature": temperature},
        owner="contrastive_pretrain",
    )
    aug = dict(augment or {})

    def compute(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        xb = batch[0]
        v = torch.cat([simclr_augment(xb, image_shape, **aug), simclr_augment(xb, image_shape, **aug)])
        return nt_xent(model(v), temperature)

    model = nn.Sequential(encoder, projector)
    loader = make_loader(TensorDataset(x), batch_size, seed=config.seed, drop_last=x.shape[0] > batch_size)
    model.train()
    history = fit(model, None, loader, optimizer, config, compute_loss=compute)
    model.eval()
    return history
