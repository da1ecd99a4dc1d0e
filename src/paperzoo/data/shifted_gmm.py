"""Shifted two-component Gaussian mixture of Saberi et al., "Out-Of-Domain Unlabeled Data Improves
Generalization" (ICLR 2024): labelled samples from ``P_0(X | y) = N(y mu_0, sigma^2 I)`` and
unlabelled out-of-domain samples from ``1/2 sum_u N(u mu_1, sigma_1^2 I)`` with ``mu_1 = mu_0 + alpha v``.

``mu_0`` is a random direction of norm ``mu_norm``; ``v`` is a random unit direction orthogonal to
``mu_0`` (in high dimension a random direction is nearly orthogonal anyway; exact orthogonality makes
``alpha`` the distance between the two mixtures' means and the cosine between ``mu_0`` and ``mu_1``
``||mu_0|| / sqrt(||mu_0||^2 + alpha^2)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from paperzoo._validation import Interval, validate_params

__all__ = ["ShiftedGMM", "make_shifted_gmm"]


@dataclass(frozen=True)
class ShiftedGMM:
    """One draw: labelled ``(x, y)``, unlabelled ``x_unlabelled``, in-domain test ``(x_test, y_test)``
    (labels in ``{-1, +1}``, float64 inputs) and the means ``mu0``, ``mu1``."""

    x: torch.Tensor
    y: torch.Tensor
    x_unlabelled: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mu0: torch.Tensor
    mu1: torch.Tensor
    sigma: float
    sigma_unlabelled: float


_CONSTRAINTS = {
    "d": [Interval(int, 2, math.inf, closed="left")],
    "m": [Interval(int, 1, math.inf, closed="left")],
    "n": [Interval(int, 0, math.inf, closed="left")],
    "n_test": [Interval(int, 0, math.inf, closed="left")],
    "alpha": [Interval(float, 0.0, math.inf, closed="left")],
    "sigma": [Interval(float, 0.0, math.inf, closed="neither")],
    "sigma_unlabelled": [None, Interval(float, 0.0, math.inf, closed="neither")],
    "mu_norm": [Interval(float, 0.0, math.inf, closed="neither")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def make_shifted_gmm(
    d: int,
    m: int,
    n: int,
    alpha: float,
    *,
    sigma: float = 1.0,
    sigma_unlabelled: float | None = None,
    mu_norm: float = 1.0,
    n_test: int = 20_000,
    seed: int,
) -> ShiftedGMM:
    """Draw the paper's isotropic Gaussian-mixture setting.

    Args:
        d: dimension; m: labelled samples; n: unlabelled samples; n_test: in-domain test samples.
        alpha: distance ``||mu_1 - mu_0||`` of the unlabelled mixture's mean from the labelled one's.
        sigma: labelled (and test) noise level; sigma_unlabelled: unlabelled noise (default ``sigma``).
        mu_norm: ``||mu_0||``.
        seed: seed of the means and of every sample (the means depend on the seed only).

    Returns:
        A :class:`ShiftedGMM`; labels are independent fair coin flips.
    """
    validate_params(
        _CONSTRAINTS,
        {"d": d, "m": m, "n": n, "n_test": n_test, "alpha": alpha, "sigma": sigma,
         "sigma_unlabelled": sigma_unlabelled, "mu_norm": mu_norm, "seed": seed},
        owner="make_shifted_gmm",
    )  # fmt: skip
    s1 = sigma if sigma_unlabelled is None else sigma_unlabelled
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(2, d, generator=gen, dtype=torch.float64)
    mu0 = means[0] / means[0].norm() * mu_norm
    v = means[1] - (means[1] @ mu0) / mu0.dot(mu0) * mu0
    v = v / v.norm()
    mu1 = mu0 + alpha * v

    def draw(k: int, mu: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        lab = torch.randint(0, 2, (k,), generator=gen).to(torch.float64) * 2 - 1
        return lab[:, None] * mu + s * torch.randn(k, d, generator=gen, dtype=torch.float64), lab.long()

    x, y = draw(m, mu0, sigma)
    xu, _ = draw(n, mu1, s1)
    xt, yt = draw(n_test, mu0, sigma)
    return ShiftedGMM(x, y, xu, xt, yt, mu0, mu1, float(sigma), float(s1))
