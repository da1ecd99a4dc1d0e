"""Bias, variance and risk of the interpolating estimator for learning from aggregate responses
(Javanmard, Chen, Mirrokni, Badanidiyuru & Fu, ICLR 2024, arXiv 2401.11081): the exact values
given the design, and their proportional-asymptotic predictions.

Setting (the paper's linear-regression analysis): ``x_i ~ N(0, I_d)``, ``y_i = x_i^T theta* +
eps_i``, ``eps_i ~ N(0, sigma^2)``, n samples in ``m = n / k`` random bags of size k, and the
estimator ``theta_rho`` minimising ``L_bag + rho R`` (:func:`paperzoo.losses.fit_linear_aggregate`).

**Reduction** (derived here). Write ``W1 = k Xbar^T Xbar`` and ``W2 = X_c^T X_c`` (``Xbar`` the bag
means of the rows, ``X_c`` the rows centred at their bag mean). For Gaussian rows, ``W1`` and
``W2`` are independent Wishart matrices with ``m`` and ``n - m`` degrees of freedom, and

    theta_rho - theta* = -rho (W1 + rho W2)^{-1} W2 theta*  +  (W1 + rho W2)^{-1} Xbar^T (k ebar),

so, given the design, ``bias^2 = rho^2 |(W1 + rho W2)^{-1} W2 theta*|^2`` and
``variance = sigma_eff^2 tr((W1 + rho W2)^{-2} W1)`` with ``sigma_eff^2 = sigma^2 + k tau``
(``tau``: the variance of extra noise added to each bag mean, e.g. ``2 b^2`` for the Laplace
label-DP mechanism). The bag size enters only through ``m``; the estimation error
``|theta_rho - theta*|^2`` is the excess prediction risk for isotropic x.

**Asymptotic prediction** (n, d, m -> infinity at fixed ratios; a deterministic-equivalent
computation of this project, not the paper's fixed-point equations, which the paper states but
which are not reproduced here). Conditionally on ``W2``, with ``S1 = W1 / n`` and ``A = rho W2 / n``,
``(S1 + A + t I)^{-1}`` is equivalent to ``(c I + A + t I)^{-1}`` where ``c = (m/n) / (1 + delta)``
and ``delta = (1/n) tr (c I + A + t I)^{-1}``. The eigenvalues of ``W2 / (n - m)`` follow the
Marchenko-Pastur law of ratio ``d / (n - m)``. Differentiating in ``t`` (bias) and in a scaling of
``A`` (variance) gives, with ``mu`` the law of the eigenvalues ``lambda`` of ``A``,
``g = int 1/(lambda + c)``, ``h = int 1/(lambda + c)^2``, ``j = int lambda/(lambda + c)^2``,
``D = 1 + (d/n) g - c (d/n) h``, ``c_t = c (d/n) h / D``, ``c_s = c (d/n) j / D``:

    bias^2   ->  |theta*|^2  int lambda^2 (1 + c_t) / (lambda + c)^2 dmu
    variance ->  sigma_eff^2 (d/n) (g - j - c_s h)

Limits checked in the tests: ``rho = 0`` gives no bias and ``sigma^2 d / (m - d)`` (the exact
finite-sample value is ``sigma^2 d / (m - d - 1)``); ``k = 1`` gives ordinary least squares
``sigma^2 d / (n - d)``; ``rho = 1`` gives variance ``sigma^2 (m/n) d / (n - d)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from scipy.optimize import brentq

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = [
    "AggregateRisk",
    "asymptotic_bias_variance",
    "conditional_bias_variance",
    "marchenko_pastur_quadrature",
]


@dataclass(frozen=True)
class AggregateRisk:
    """Squared bias, variance and their sum ``risk = E |theta_rho - theta*|^2``."""

    bias: float
    variance: float

    @property
    def risk(self) -> float:
        return self.bias + self.variance


_POS = Interval(float, 0.0, math.inf, closed="neither")
_NONNEG = Interval(float, 0.0, math.inf, closed="left")


@cache
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (an eigenproblem: computed once per size)."""
    u, w = np.polynomial.legendre.leggauss(nodes)
    u.flags.writeable = w.flags.writeable = False
    return u, w


def marchenko_pastur_quadrature(ratio: float, nodes: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights (summing to 1) integrating against the Marchenko-Pastur law of ratio
    ``gamma = ratio`` (the limiting eigenvalue law of ``Z^T Z / N`` for Z (N, d) standard Gaussian,
    ``d / N -> gamma``), including its atom ``max(0, 1 - 1/gamma)`` at 0.

    The continuous part, density ``sqrt((b - x)(x - a)) / (2 pi gamma x)`` on ``[a, b] =
    [(1 - sqrt(gamma))^2, (1 + sqrt(gamma))^2]``, is integrated with Gauss-Legendre nodes in the
    angle ``x = (a + b)/2 + (b - a)/2 cos(phi)``, which removes the square-root endpoints.
    """
    validate_params({"ratio": [_POS], "nodes": [Interval(int, 2, math.inf, closed="left")]},
                    {"ratio": ratio, "nodes": nodes}, owner="marchenko_pastur_quadrature")  # fmt: skip
    a, b = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    u, w = _legendre(nodes)
    phi = (u + 1) * math.pi / 2
    half, mid = (b - a) / 2, (a + b) / 2
    x = mid + half * np.cos(phi)
    weights = w * (math.pi / 2) * half**2 * np.sin(phi) ** 2 / (2 * math.pi * ratio * x)
    atom = max(0.0, 1.0 - 1.0 / ratio)
    if atom > 0:
        x, weights = np.append(x, 0.0), np.append(weights, atom)
    return x, weights


def asymptotic_bias_variance(
    n: int,
    d: int,
    bag_size: int,
    rho: float,
    noise_var: float,
    theta_norm: float = 1.0,
    bag_noise_var: float = 0.0,
    nodes: int = 200,
) -> AggregateRisk:
    """The proportional-asymptotic squared bias and variance of ``theta_rho`` (module docstring).

    Args:
        n, d: samples and dimension; bag_size: k (``m = n / k`` bags, need not be an integer here).
        rho: in [0, 1]; ``rho = 0`` needs ``m > d``.
        noise_var: ``sigma^2`` of the individual responses.
        theta_norm: ``|theta*|`` (the bias is averaged over a uniformly random direction).
        bag_noise_var: variance of independent noise added to each released bag mean (``2 b^2`` for
            Laplace noise of scale b).
        nodes: quadrature nodes of the Marchenko-Pastur integral.
    """
    validate_params(
        {
            "n": [Interval(int, 2, math.inf, closed="left")],
            "d": [Interval(int, 1, math.inf, closed="left")],
            "bag_size": [Interval(int, 1, math.inf, closed="left")],
            "rho": [Interval(float, 0.0, 1.0, closed="both")],
            "noise_var": [_NONNEG],
            "theta_norm": [_NONNEG],
            "bag_noise_var": [_NONNEG],
        },
        {"n": n, "d": d, "bag_size": bag_size, "rho": rho, "noise_var": noise_var, "theta_norm": theta_norm,
         "bag_noise_var": bag_noise_var},
        owner="asymptotic_bias_variance",
    )  # fmt: skip
    if bag_size > n:
        raise ValueError(f"asymptotic_bias_variance: bag_size must be at most n = {n}, got {bag_size}")
    m = n / bag_size
    n2 = n - m
    if rho == 0.0 or n2 <= 0:
        lam, mu = np.zeros(1), np.ones(1)
    else:
        s, mu = marchenko_pastur_quadrature(d / n2, nodes)
        lam = rho * (n2 / n) * s
    gamma, frac = d / n, m / n
    atom0 = float(mu[lam == 0].sum())
    if d * atom0 >= m:
        raise ValueError(
            f"asymptotic_bias_variance: the estimator is not unique (rho={rho}, n={n}, d={d}, bag_size={bag_size}); "
            "it needs m = n / bag_size > d bags when rho = 0, or n > d when rho > 0"
        )

    def f(c: float) -> float:
        return c * (1 + gamma * float(np.sum(mu / (lam + c)))) - frac

    c = brentq(f, 1e-15, frac, xtol=1e-15, rtol=1e-14, maxiter=500)
    g = float(np.sum(mu / (lam + c)))
    h = float(np.sum(mu / (lam + c) ** 2))
    j = float(np.sum(mu * lam / (lam + c) ** 2))
    denom = 1 + gamma * g - c * gamma * h
    c_t, c_s = c * gamma * h / denom, c * gamma * j / denom
    bias = theta_norm**2 * float(np.sum(mu * lam**2 / (lam + c) ** 2)) * (1 + c_t)
    sigma_eff2 = noise_var + bag_size * bag_noise_var
    variance = sigma_eff2 * gamma * (g - j - c_s * h)
    return AggregateRisk(bias, variance)


def conditional_bias_variance(
    X: torch.Tensor,
    bag_index: torch.Tensor,
    theta: torch.Tensor,
    rho: float,
    noise_var: float,
    bag_noise_var: float = 0.0,
) -> AggregateRisk:
    """The exact squared bias ``|E[theta_rho | X] - theta*|^2`` and variance
    ``tr Cov(theta_rho | X)`` of :func:`~paperzoo.losses.fit_linear_aggregate` (no ridge) given the
    design ``X`` (n, d), the bags and ``theta*``, for responses ``x^T theta* + N(0, noise_var)``
    and ``bag_noise_var`` of extra independent noise on each bag mean. Any bag sizes."""
    validate_params(
        {"rho": [Interval(float, 0.0, 1.0, closed="both")], "noise_var": [_NONNEG], "bag_noise_var": [_NONNEG]},
        {"rho": rho, "noise_var": noise_var, "bag_noise_var": bag_noise_var},
        owner="conditional_bias_variance",
    )
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.dim() != 2 or X.shape[0] == 0:
        raise ValueError("X must be a non-empty floating-point torch.Tensor of shape (n, d)")
    check_finite(X, "X")
    if not isinstance(theta, torch.Tensor) or theta.shape != (X.shape[1],):
        raise ValueError(f"theta must be a torch.Tensor of shape ({X.shape[1]},)")
    from paperzoo.losses.aggregate_responses import _check_bag_index

    n, d = X.shape
    m = int(bag_index.max()) + 1 if isinstance(bag_index, torch.Tensor) and bag_index.numel() else 1
    _check_bag_index(bag_index, n, m)
    counts = torch.bincount(bag_index, minlength=m).to(X.dtype)
    xbar = torch.zeros(m, d, dtype=X.dtype).index_add_(0, bag_index, X) / counts[:, None]
    xc = X - xbar[bag_index]
    w1 = (xbar.T * counts) @ xbar  # sum_a k_a xbar_a xbar_a^T
    w2 = xc.T @ xc
    gram = w1 + rho * w2
    bias_vec = rho * torch.linalg.solve(gram, w2 @ theta.to(X.dtype))
    # theta_hat = gram^{-1} sum_a k_a xbar_a ybar_a; Var(ybar_a) = noise_var / k_a + bag_noise_var
    per_bag = counts**2 * (noise_var / counts + bag_noise_var)
    middle = (xbar.T * per_bag) @ xbar
    ginv = torch.linalg.inv(gram)
    variance = torch.trace(ginv @ middle @ ginv)
    return AggregateRisk(float(bias_vec @ bias_vec), float(variance))
