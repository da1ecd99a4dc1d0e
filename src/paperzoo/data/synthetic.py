"""Data generators: Gaussian mixtures, long-tailed and noisy-label versions of any labelled set,
label-shift domains, and the Gaussian simulation of Zheng et al. (ICML 2023).

Every function takes an explicit ``seed`` and is deterministic given it; all sampling is
vectorised over samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from paperzoo.data._sampling import as_labels, check_int, check_seed, random_rank_within_class

__all__ = [
    "DisGenParams",
    "LabelShiftDomains",
    "dis_gen_gaussian_params",
    "gaussian_mixture",
    "label_noise",
    "label_shift_domains",
    "long_tailed",
    "make_dis_gen_gaussian",
    "make_long_tailed",
]


def _apportion(totals: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Integer counts (R, C) with row sums ``totals`` (R,) proportional to the rows of ``p``
    (R, C; rows sum to 1), by largest remainder: floor first, then one more to the entries
    with the largest fractional parts (ties to the lower column)."""
    raw = totals[:, None] * p
    base = np.floor(raw).astype(np.int64)
    short = totals - base.sum(axis=1)
    order = np.argsort(-(raw - base), axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(p.shape[1])[None, :].repeat(p.shape[0], 0), axis=1)
    return base + (position < short[:, None])


# --------------------------------------------------------------------------- Gaussian mixture
def gaussian_mixture(
    n_samples: int,
    n_classes: int,
    dim: int,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    weights: np.ndarray | None = None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotropic Gaussian classes ``x = mean_y + noise * N(0, I)``.

    Class means are ``separation / sqrt(2)`` times random orthonormal directions when
    ``n_classes <= dim`` (every pair of means is exactly ``separation`` apart), and random
    unit directions with the same scale otherwise. Class sizes follow ``weights`` exactly
    (largest-remainder rounding of ``n_samples * weights``; default equal), and the samples
    are returned in random order.

    Args:
        n_samples: number of samples N.
        n_classes: number of classes C.
        dim: dimension D.
        separation: distance between class means (> 0).
        noise: standard deviation of each coordinate around its mean (>= 0).
        weights: class proportions (C,), non-negative, summing to 1.
        seed: seed of the means, the order and the noise.

    Returns:
        ``(X float32 (N, D), y int64 (N,), means float32 (C, D))``.
    """
    n = check_int(n_samples, "n_samples", 1)
    c = check_int(n_classes, "n_classes", 1)
    d = check_int(dim, "dim", 1)
    if not np.isfinite(separation) or separation <= 0:
        raise ValueError(f"separation must be a positive number, got {separation}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a non-negative number, got {noise}")
    if weights is None:
        p = np.full(c, 1.0 / c)
    else:
        p = np.asarray(weights, dtype=np.float64)
        if p.shape != (c,) or not np.isfinite(p).all() or (p < 0).any() or not np.isclose(p.sum(), 1.0):
            raise ValueError(
                f"weights must be {c} non-negative numbers summing to 1, got {np.asarray(weights).tolist()}"
            )
        p = p / p.sum()
    rng = np.random.default_rng(check_seed(seed))
    g = rng.standard_normal((d, c))
    if c <= d:
        directions = np.linalg.qr(g)[0].T  # (C, D), orthonormal rows
    else:
        directions = (g / np.linalg.norm(g, axis=0, keepdims=True)).T
    means = directions * (separation / np.sqrt(2.0))
    counts = _apportion(np.array([n]), p[None, :])[0]
    y = rng.permutation(np.repeat(np.arange(c, dtype=np.int64), counts))
    x = means[y] + noise * rng.standard_normal((n, d))
    return x.astype(np.float32), y, means.astype(np.float32)


# --------------------------------------------------------------------------- long tail
def _long_tail_sizes(counts: np.ndarray, imbalance_ratio: float, profile: str) -> np.ndarray:
    c = counts.shape[0]
    n_max = int(counts.min())
    k = np.arange(c)
    if profile == "exp":
        sizes = n_max * float(imbalance_ratio) ** (-k / max(c - 1, 1))
    elif profile == "step":
        sizes = np.where(k < c // 2, float(n_max), n_max / float(imbalance_ratio))
    else:
        raise ValueError(f"profile must be 'exp' or 'step', got {profile!r}")
    return np.maximum(np.floor(sizes + 1e-9).astype(np.int64), 1)


def long_tailed(y: np.ndarray, imbalance_ratio: float, *, profile: str = "exp", seed: int) -> np.ndarray:
    """Indices (sorted) of a long-tailed subset of a labelled set.

    Classes are ordered by label; with ``n_max`` the size of the smallest class (so every
    target is available), class ``k`` of ``C`` keeps ``floor(n_max * ratio^(-k/(C-1)))``
    samples (``profile="exp"``, Cao et al. 2019) or ``n_max`` for the first ``C // 2`` classes
    and ``floor(n_max / ratio)`` for the rest (``"step"``); at least 1 each. Samples are
    chosen uniformly at random within each class.

    Args:
        y: labels (N,).
        imbalance_ratio: size of the largest kept class over the smallest (>= 1).
        profile: ``"exp"`` or ``"step"``.
        seed: seed of the choice of samples.
    """
    labels = as_labels(y)
    if labels.size == 0:
        raise ValueError("y must not be empty")
    if not np.isfinite(imbalance_ratio) or imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be a number >= 1, got {imbalance_ratio}")
    classes, counts = np.unique(labels, return_counts=True)
    sizes = _long_tail_sizes(counts, imbalance_ratio, profile)
    rank = random_rank_within_class(labels, np.random.default_rng(check_seed(seed)))
    return np.flatnonzero(rank < sizes[np.searchsorted(classes, labels)])


def make_long_tailed(
    x: np.ndarray, y: np.ndarray, imbalance_ratio: float, *, profile: str = "exp", seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` restricted to :func:`long_tailed` indices (``x`` indexed on its first axis)."""
    labels = as_labels(y)
    if len(x) != labels.shape[0]:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {labels.shape[0]}")
    idx = long_tailed(labels, imbalance_ratio, profile=profile, seed=seed)
    return x[idx], labels[idx]


# --------------------------------------------------------------------------- label noise
def label_noise(
    y: np.ndarray, rate: float, *, n_classes: int | None = None, kind: str = "symmetric", seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt labels: each label is flipped independently with probability ``rate``.

    ``kind="symmetric"``: to a uniformly random *other* class; ``"pairflip"``: class ``c``
    to ``(c + 1) mod C``. A flipped label therefore always differs from the true one.

    Args:
        y: labels (N,) in ``[0, n_classes)``.
        rate: flip probability in [0, 1].
        n_classes: number of classes C (default ``max(y) + 1``; at least 2).
        kind: ``"symmetric"`` or ``"pairflip"``.
        seed: seed of the flips.

    Returns:
        ``(noisy_y int64 (N,), is_noisy bool (N,))``.
    """
    labels = as_labels(y)
    if not np.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if kind not in ("symmetric", "pairflip"):
        raise ValueError(f"kind must be 'symmetric' or 'pairflip', got {kind!r}")
    c = (int(labels.max()) + 1 if labels.size else 0) if n_classes is None else check_int(n_classes, "n_classes", 2)
    if c < 2:
        raise ValueError(f"label noise needs at least 2 classes; y has max label {c - 1} (pass n_classes)")
    if labels.size and int(labels.max()) >= c:
        raise ValueError(f"y must lie in [0, n_classes={c}), got max {int(labels.max())}")
    rng = np.random.default_rng(check_seed(seed))
    flip = rng.random(labels.shape[0]) < rate
    shift = rng.integers(1, c, size=labels.shape[0]) if kind == "symmetric" else np.ones_like(labels)
    noisy = np.where(flip, (labels + shift) % c, labels)
    return noisy.astype(np.int64), flip


# --------------------------------------------------------------------------- label shift
@dataclass(frozen=True)
class LabelShiftDomains:
    """Disjoint domains that share p(x | y) and differ in p(y).

    Attributes:
        indices: one sorted index array per domain.
        priors: (n_domains, C) class priors drawn from the Dirichlet; rows sum to 1.
        counts: (n_domains, C) number of samples of each class actually in each domain.

    Unpacks as ``indices, priors = label_shift_domains(...)``.
    """

    indices: list[np.ndarray]
    priors: np.ndarray
    counts: np.ndarray

    def __iter__(self) -> Iterator[object]:
        return iter((self.indices, self.priors))

    def empirical_priors(self) -> np.ndarray:
        """(n_domains, C) class proportions of each domain (zeros for an empty domain)."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape), where=totals > 0)


def label_shift_domains(
    y: np.ndarray,
    n_domains: int,
    *,
    concentration: float = 1.0,
    domain_size: int | None = None,
    seed: int,
) -> LabelShiftDomains:
    """Split a labelled set into ``n_domains`` disjoint domains with Dirichlet class priors.

    Each domain's prior over the ``C = max(y) + 1`` classes is drawn from
    Dirichlet(``concentration`` * 1); the domain asks for ``domain_size`` samples in those
    proportions (largest-remainder rounding). Sampling is without replacement and the domains
    are disjoint: where the domains together ask for more samples of a class than exist, the
    class's available samples are shared among them in proportion to what they asked for, so
    such domains come out smaller than ``domain_size``.

    Args:
        y: labels (N,).
        n_domains: number of domains (>= 1).
        concentration: Dirichlet concentration (> 0); small values give peaked priors.
        domain_size: samples asked for per domain (default ``N // n_domains``).
        seed: seed of the priors and of the choice of samples.
    """
    labels = as_labels(y)
    if labels.size == 0:
        raise ValueError("y must not be empty")
    d = check_int(n_domains, "n_domains", 1)
    if not np.isfinite(concentration) or concentration <= 0:
        raise ValueError(f"concentration must be a positive number, got {concentration}")
    size = labels.shape[0] // d if domain_size is None else check_int(domain_size, "domain_size", 1)
    if size < 1:
        raise ValueError(f"n_domains={d} exceeds the number of samples ({labels.shape[0]})")
    c = int(labels.max()) + 1
    rng = np.random.default_rng(check_seed(seed))
    priors = rng.dirichlet(np.full(c, float(concentration)), size=d)
    demand = _apportion(np.full(d, size), priors)  # (D, C)
    available = np.bincount(labels, minlength=c)
    asked = demand.sum(axis=0)
    over = np.flatnonzero(asked > available)
    if over.size:
        share = (demand[:, over] / asked[over]).T  # (|over|, D)
        demand[:, over] = _apportion(available[over], share).T
    cum = np.cumsum(demand, axis=0)  # (D, C): samples of class c with rank < cum[k, c] go to domains <= k
    rank = random_rank_within_class(labels, rng)
    domain = (cum[:, labels] <= rank[None, :]).sum(axis=0)  # == D: not used
    used = np.flatnonzero(domain < d)
    order = used[np.argsort(domain[used], kind="stable")]
    per_domain = demand.sum(axis=1)
    indices = np.split(order, np.cumsum(per_domain)[:-1])
    return LabelShiftDomains(indices=list(indices), priors=priors, counts=demand)


# --------------------------------------------------------------------------- Zheng et al. 2023
@dataclass(frozen=True)
class DisGenParams:
    """Parameters of the Gaussian simulation of :func:`make_dis_gen_gaussian`.

    Attributes:
        means: (K, n) class means.
        covariance: (n, n) covariance as specified (for ``"hard"`` possibly indefinite).
        factor: (n, n) matrix ``L`` used for sampling, ``x = mean + L z``.
        clipped: True when ``covariance`` was not positive definite and ``L`` comes from its
            eigen-decomposition with negative eigenvalues set to 0, so the samples have
            covariance ``L L^T`` (the nearest positive semi-definite matrix) instead.
    """

    means: np.ndarray
    covariance: np.ndarray
    factor: np.ndarray
    clipped: bool

    @property
    def sampling_covariance(self) -> np.ndarray:
        """Covariance of the generated samples, ``factor @ factor.T``."""
        return self.factor @ self.factor.T


def dis_gen_gaussian_params(n: int, K: int, *, mode: str = "easy") -> DisGenParams:
    """Means, covariance and sampling factor of the simulation of Zheng et al. (2023),
    "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications" (ICML).

    Means: ``mu_0 = -1 * ones(n)``, ``mu_k = 2^(k-1) * ones(n)`` for ``k >= 1``.
    ``"easy"``: covariance ``diag(n, ..., n, 1, ..., 1)`` with ``n`` on the first
    ``floor(n/2)`` coordinates. ``"hard"``: ``A = U^T U`` with ``U ~ Uniform[-1, 1]^(n x n)``
    from a generator seeded 0 (the same matrix on every call), and the covariance is ``A``
    with its diagonal replaced by the easy one. That matrix need not be positive definite;
    if it is not, sampling uses its eigen-decomposition with negative eigenvalues clipped to 0
    (see :class:`DisGenParams`).
    """
    n = check_int(n, "n", 1)
    k = check_int(K, "K", 2)
    if mode not in ("easy", "hard"):
        raise ValueError(f"mode must be 'easy' or 'hard', got {mode!r}")
    diag = np.ones(n)
    diag[: n // 2] = float(n)
    means = np.concatenate([-np.ones((1, n)), (2.0 ** np.arange(k - 1))[:, None] * np.ones((1, n))])
    if mode == "easy":
        cov = np.diag(diag)
    else:
        u = np.random.default_rng(0).uniform(-1.0, 1.0, size=(n, n))
        a = u.T @ u
        cov = a - np.diag(np.diag(a)) + np.diag(diag)
    try:
        factor, clipped = np.linalg.cholesky(cov), False
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        factor, clipped = v * np.sqrt(np.clip(w, 0.0, None)), True
    return DisGenParams(means=means, covariance=cov, factor=factor, clipped=clipped)


def make_dis_gen_gaussian(
    n: int, K: int, m: int, *, mode: str = "easy", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the Gaussian-mixture simulation of Zheng et al. (ICML 2023); parameters as
    in :func:`dis_gen_gaussian_params`.

    Classes are balanced: ``m // K`` samples each, the remainder going one each to the first
    classes. Each sample is ``x = mu_y + L z`` with ``z ~ N(0, I)``; samples come in random
    order.

    Args:
        n: dimension.
        K: number of classes (>= 2).
        m: number of samples (>= K).
        mode: ``"easy"`` (diagonal covariance) or ``"hard"`` (correlated).
        seed: seed of the labels' order and of ``z`` (the ``"hard"`` matrix does not use it).

    Returns:
        ``(X float64 (m, n), y int64 (m,))``.
    """
    params = dis_gen_gaussian_params(n, K, mode=mode)
    m = check_int(m, "m", 1)
    if m < K:
        raise ValueError(f"m must be >= K so that every class has a sample, got m={m}, K={K}")
    counts = np.full(K, m // K)
    counts[: m % K] += 1
    rng = np.random.default_rng(check_seed(seed))
    y = rng.permutation(np.repeat(np.arange(K, dtype=np.int64), counts))
    x = params.means[y] + rng.standard_normal((m, params.means.shape[1])) @ params.factor.T
    return x, y
