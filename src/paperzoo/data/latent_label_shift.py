"""Semi-synthetic latent-label-shift domains, after Roberts, Mani, Garg & Lipton (NeurIPS 2022),
"Unsupervised Learning under Latent Label Shift" (the official ``class_prior.py`` and
``experiment_framework.py`` generation).

A labelled set is split into ``r`` domains that share p(x | y) and differ in p_d(y): each row of
the domain-class prior matrix ``P`` (r x K) is drawn from Dirichlet(alpha / K * 1), redrawn until
its condition number is at most ``max_cond`` (so p(d | y) has rank K and the classes are
identifiable), entries below 1e-7 are set to 0 and the rows renormalised. Two assignments:

* ``"counts"`` (the official one): domain ``d`` receives ``n[d, y] = floor(P[d, y] * N_min /
  max_y sum_d P[d, y])`` samples of class ``y`` (so the most demanded class uses ``N_min``
  samples, the size of the smallest class); all domains then have (up to rounding) the same
  size, the code's assumption p(d) = 1/r. Samples not demanded are left out.
* ``"per-sample"``: every sample is kept and draws its domain from p(d | y) proportional to
  ``P[d, y]`` (domain sizes then equal only in expectation for balanced classes).

This is a thin, vectorised data generator; :func:`paperzoo.data.synthetic.label_shift_domains`
draws Dirichlet(concentration) priors without the condition-number control this method needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paperzoo._validation import Interval, Options, validate_params
from paperzoo.data._sampling import as_labels, random_rank_within_class

__all__ = ["LatentLabelShift", "make_latent_label_shift", "sample_domain_priors"]


@dataclass(frozen=True)
class LatentLabelShift:
    """The domains of a latent-label-shift split.

    Attributes:
        index: (M,) indices into the labels given of the samples kept (sorted).
        domain: (M,) domain of each kept sample, ``0..r-1``.
        priors: (r, K) the drawn p_d(y) (rows sum to 1).
        counts: (r, K) number of kept samples of each class in each domain.
    """

    index: np.ndarray
    domain: np.ndarray
    priors: np.ndarray
    counts: np.ndarray

    @property
    def class_given_domain(self) -> np.ndarray:
        """(K, r) empirical p(y | d) of the kept samples (columns sum to 1)."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape), where=totals > 0).T


def sample_domain_priors(
    n_classes: int, n_domains: int, alpha: float, max_cond: float, rng: np.random.Generator, max_tries: int = 200_000
) -> np.ndarray:
    """(r, K) domain priors: rows ~ Dirichlet(alpha / K), redrawn until ``cond(P) <= max_cond``.

    Candidates are drawn in batches and checked at once; entries below 1e-7 are zeroed and the
    rows renormalised (a row that would vanish is rejected with its candidate).

    Raises:
        ValueError: no candidate within ``max_tries`` draws met the condition-number bound.
    """
    k, r = int(n_classes), int(n_domains)
    batch, drawn = 512, 0
    while drawn < max_tries:
        p = rng.dirichlet(np.full(k, alpha / k), size=(batch, r))
        p[p < 1e-7] = 0.0
        sums = p.sum(axis=2, keepdims=True)
        ok_rows = (sums[..., 0] > 0).all(axis=1)
        p = np.divide(p, sums, out=np.zeros_like(p), where=sums > 0)
        with np.errstate(all="ignore"):
            cond = np.linalg.cond(p)
        good = np.flatnonzero(ok_rows & np.isfinite(cond) & (cond <= max_cond))
        if good.size:
            return p[good[0]]
        drawn += batch
    raise ValueError(
        f"max_cond={max_cond} not reached in {max_tries} Dirichlet draws (K={k}, r={r}, alpha={alpha}); raise max_cond"
    )


def make_latent_label_shift(
    labels: np.ndarray,
    n_domains: int,
    *,
    alpha: float,
    max_cond: float = math.inf,
    assignment: str = "counts",
    seed: int,
) -> LatentLabelShift:
    """Split labelled samples into ``n_domains`` latent-label-shift domains (see the module).

    Args:
        labels: (N,) class labels ``0..K-1`` (every class present).
        n_domains: r, the number of domains (>= 1; identifiability needs r >= K).
        alpha: Dirichlet concentration (> 0); rows are Dirichlet(alpha / K); small = strong shift.
        max_cond: bound on the condition number of the (r, K) prior matrix (>= 1).
        assignment: ``"counts"`` (official, equal domain sizes) or ``"per-sample"``.
        seed: seed of the priors and the assignment.
    """
    y = as_labels(labels, "labels")
    if y.size == 0:
        raise ValueError("labels must not be empty")
    validate_params(
        {
            "n_domains": [Interval(int, 1, math.inf, closed="left")],
            "alpha": [Interval(float, 0, math.inf, closed="neither")],
            "max_cond": [Interval(float, 1, math.inf, closed="both")],
            "assignment": [Options(("counts", "per-sample"))],
            "seed": [Interval(int, 0, math.inf, closed="left")],
        },
        {"n_domains": n_domains, "alpha": alpha, "max_cond": max_cond, "assignment": assignment, "seed": seed},
        owner="make_latent_label_shift",
    )
    k = int(y.max()) + 1
    available = np.bincount(y, minlength=k)
    if (available == 0).any():
        raise ValueError(
            f"labels must contain every class 0..{k - 1}; missing {np.flatnonzero(available == 0).tolist()}"
        )
    r = int(n_domains)
    rng = np.random.default_rng(seed)
    priors = sample_domain_priors(k, r, float(alpha), float(max_cond), rng)
    if assignment == "per-sample":
        p_d_given_y = priors / priors.sum(axis=0, keepdims=True).clip(min=1e-300)  # (r, K)
        cum = np.cumsum(p_d_given_y[:, y], axis=0)  # (r, N)
        u = rng.random(y.size)
        domain = np.minimum((cum < u[None, :] * cum[-1][None, :]).sum(axis=0), r - 1)
        index = np.arange(y.size)
        counts = np.zeros((r, k), dtype=np.int64)
        np.add.at(counts, (domain, y), 1)
        return LatentLabelShift(index=index, domain=domain.astype(np.int64), priors=priors, counts=counts)
    demand = np.floor(priors * available.min() / priors.sum(axis=0).max()).astype(np.int64)  # (r, K)
    cum = np.cumsum(demand, axis=0)  # samples of class c with rank < cum[d, c] go to domains <= d
    rank = random_rank_within_class(y, rng)
    domain = (cum[:, y] <= rank[None, :]).sum(axis=0)  # == r: not used
    index = np.flatnonzero(domain < r)
    return LatentLabelShift(index=index, domain=domain[index].astype(np.int64), priors=priors, counts=demand)
