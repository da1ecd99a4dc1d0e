"""Closed forms for the Gaussian-mixture experiments of Saberi et al., "Out-Of-Domain Unlabeled Data
Improves Generalization" (ICLR 2024): the exact accuracy of a linear classifier on the symmetric
isotropic mixture ``P_0(X | y) = N(y mu_0, sigma^2 I)``, the Bayes accuracy, the concentration
approximation of the mean estimator's (ERM's) accuracy, and the accuracy of the direction of the
shifted unlabelled mixture's mean (what self-training on unlabelled data alone would find).
"""

from __future__ import annotations

import math

import torch

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = ["bayes_accuracy", "linear_gmm_accuracy", "mean_estimator_accuracy", "shifted_direction_accuracy"]

_POS = [Interval(float, 0.0, math.inf, closed="neither")]


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def linear_gmm_accuracy(w: torch.Tensor, mu0: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Exact accuracy of ``sign(<w, x>)`` on ``N(y mu_0, sigma^2 I)``, ``y`` uniform on ``{-1, +1}``:
    ``Phi(<w, mu_0> / (sigma ||w||))``. ``w`` may be a batch ``(..., d)``."""
    validate_params({"sigma": _POS}, {"sigma": sigma}, owner="linear_gmm_accuracy")
    check_finite(w, "w")
    if w.shape[-1] != mu0.shape[-1]:
        raise ValueError(f"w must end in dimension {mu0.shape[-1]}, got shape {tuple(w.shape)}")
    norm = w.norm(dim=-1)
    if bool((norm == 0).any()):
        raise ValueError("w must be non-zero")
    z = (w @ mu0.to(w.dtype)) / (sigma * norm)
    return 0.5 * torch.erfc(-z / math.sqrt(2.0))


def bayes_accuracy(mu_norm: float, sigma: float = 1.0) -> float:
    """``Phi(||mu_0|| / sigma)``, reached by ``w = mu_0``."""
    validate_params({"mu_norm": _POS, "sigma": _POS}, {"mu_norm": mu_norm, "sigma": sigma}, owner="bayes_accuracy")
    return _phi(mu_norm / sigma)


def mean_estimator_accuracy(m: int, d: int, mu_norm: float = 1.0, sigma: float = 1.0) -> float:
    """Concentration approximation of the mean estimator's accuracy with ``m`` labelled samples:
    ``w = mu_0 + (sigma / sqrt(m)) g`` has ``<w, mu_0> ~ ||mu_0||^2`` and ``||w||^2 ~ ||mu_0||^2 + sigma^2 d / m``,
    so the accuracy is about ``Phi(||mu_0||^2 / (sigma sqrt(||mu_0||^2 + sigma^2 d / m)))`` (the (d/m)^(1/2)
    behaviour of ERM that unlabelled data improves on)."""
    validate_params(
        {"m": [Interval(int, 1, math.inf, closed="left")], "d": [Interval(int, 1, math.inf, closed="left")],
         "mu_norm": _POS, "sigma": _POS},
        {"m": m, "d": d, "mu_norm": mu_norm, "sigma": sigma},
        owner="mean_estimator_accuracy",
    )  # fmt: skip
    return _phi(mu_norm**2 / (sigma * math.sqrt(mu_norm**2 + sigma**2 * d / m)))


def shifted_direction_accuracy(alpha: float, mu_norm: float = 1.0, sigma: float = 1.0) -> float:
    """In-domain accuracy of ``w = mu_1 = mu_0 + alpha v`` (``v`` a unit vector orthogonal to ``mu_0``):
    ``Phi(||mu_0||^2 / (sigma sqrt(||mu_0||^2 + alpha^2)))``; the limit of fitting the unlabelled
    mixture alone, so the ceiling the shift ``alpha`` sets on what unlabelled data can teach."""
    validate_params(
        {"alpha": [Interval(float, 0.0, math.inf, closed="left")], "mu_norm": _POS, "sigma": _POS},
        {"alpha": alpha, "mu_norm": mu_norm, "sigma": sigma},
        owner="shifted_direction_accuracy",
    )
    return _phi(mu_norm**2 / (sigma * math.sqrt(mu_norm**2 + alpha**2)))
