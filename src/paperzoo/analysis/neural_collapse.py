"""Neural collapse metrics, the closed-form global minimisers of the deep linear
unconstrained-features model, and that model.

Dang, Tran, Osher, Tran-The, Ho, Nguyen, "Neural Collapse in Deep Linear Networks: From Balanced
to Imbalanced Data" (ICML 2023, arXiv:2301.00437); official code
``Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks`` (read for the protocol and the metrics,
not copied).

The paper puts ``M`` linear layers between free ("unconstrained") last-layer features ``H`` and
the targets, with weight decay on every layer and on the features, and characterises every
global minimiser:

* balanced classes: neural collapse at every linear layer; bias-free MSE gives an orthogonal
  frame (OF), MSE with an unregularised last-layer bias and cross-entropy give a simplex
  equiangular tight frame (ETF);
* imbalanced classes, bias-free MSE (the paper's main new result): features still collapse to
  their class means (NC1), but class means and classifier rows form an orthogonal frame whose
  lengths depend on the class sizes ``n_k`` through a scalar equation per class; classes below
  a size threshold collapse to zero ("minority collapse").

Components:

* :func:`nc_metrics` — NC1, NC2 (classifier and class means), NC3 (logit matrix and alignment)
  of any model's penultimate features and classifier, against the ETF, the OF or the paper's
  predicted geometry; vectorised (``O(N d K)``, no ``d x d`` matrix, no loop over classes).
  :func:`nc_metrics_reference` is the literal formula (per-class loops, ``d x d`` covariances,
  ``scipy.linalg.pinv``), kept for tests and the speed comparison.
* :func:`predict_dlufm_geometry` — the closed-form minimiser (:class:`NCGeometry`) for any class
  sizes (bias-free MSE), balanced MSE with bias, and balanced cross-entropy;
  :func:`solve_x`, :func:`beta_crit` and :func:`minority_collapse_threshold` are its scalar
  parts.
* :func:`dlufm_objective` — the regularised objective as a pure function of tensors;
  :class:`DeepLinearHead` (a bias-free deep linear classifier head for real networks, with the
  official code's "sep_decay" loss: decay on the head's weights and on its input features only),
  :class:`DeepLinearUFM` (free features + head) and :func:`fit_ufm` (full-batch SGD with
  momentum, the official synthetic experiment's optimiser, then an L-BFGS polish).

Conventions: features are rows (``(N, d)``); a classifier ``W`` is ``(K, d)`` (``nn.Linear``
layout), its rows ``w_k``; class means ``mu_k`` are rows of ``(K, d)``; the end-to-end
classifier of a deep head is ``W = W_M ... W_1``. The data term is ``fit_scale / (2N) * ||WH^T +
b 1^T - Y||_F^2`` (MSE) or ``fit_scale`` times the mean cross-entropy; ``nn.MSELoss()`` (the
element-wise mean over ``N K`` entries) halved, as in the official real-network code, is
``fit_scale = 1 / K``. The minimisers depend on ``lambda / fit_scale`` only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params

__all__ = [
    "DeepLinearHead",
    "DeepLinearUFM",
    "NCGeometry",
    "beta_crit",
    "class_means",
    "collect_features",
    "dlufm_objective",
    "fit_ufm",
    "minority_collapse_threshold",
    "nc_metrics",
    "nc_metrics_of_model",
    "nc_metrics_reference",
    "plot_nc_metrics",
    "predict_dlufm_geometry",
    "solve_x",
]

Target = Literal["etf", "of", "gof"]
Loss = Literal["mse", "ce"]
Rule = Literal["argmin", "largest_root"]

_POSITIVE = Interval(float, 0.0, math.inf, closed="neither")
_CONSTRAINTS: dict[str, list[Constraint]] = {
    "M": [Interval(int, 1, math.inf, closed="left")],
    "lambda_H": [_POSITIVE],
    "fit_scale": [_POSITIVE],
    "beta": [_POSITIVE],
    "B": [_POSITIVE],
    "loss": [Options(("mse", "ce"))],
    "target": [Options(("etf", "of", "gof"))],
    "bias": [Options((False, True))],
    "d": [Interval(int, 1, math.inf, closed="left")],
    "in_dim": [Interval(int, 1, math.inf, closed="left")],
    "num_classes": [Interval(int, 2, math.inf, closed="left")],
    "depth": [Interval(int, 1, math.inf, closed="left")],
    "init_std": [_POSITIVE],
    "init": [Options(("normal", "orthogonal", "default"))],
    "sgd_iters": [Interval(int, 0, math.inf, closed="left")],
    "lbfgs_iters": [Interval(int, 0, math.inf, closed="left")],
    "lr": [_POSITIVE],
    "momentum": [Interval(float, 0.0, 1.0, closed="left")],
    "track_every": [Interval(int, 0, math.inf, closed="left")],
    "rule": [Options(("argmin", "largest_root"))],
    "classifier_rows": [Interval(int, 2, math.inf, closed="left")],
}


# --------------------------------------------------------------------------- scalar parts of the closed form
def beta_crit(M: int) -> float:
    """The largest ``beta`` for which ``psi(x) = 1 / (1 + x^M) + beta x`` has its global
    minimum on ``x > 0``: ``(M - 1)^((M - 1) / M) / M`` (1 for ``M = 1``).

    At ``beta_crit`` the non-zero stationary point ``x = (M - 1)^(1/M)`` ties with ``x = 0``
    (both give ``psi = 1``); for larger ``beta`` the class collapses.

    >>> [round(beta_crit(m), 6) for m in (1, 2, 3, 6)]
    [1.0, 0.5, 0.529134, 0.63727]
    """
    validate_params(_CONSTRAINTS, {"M": M}, owner="beta_crit")
    return 1.0 if M == 1 else (M - 1) ** ((M - 1) / M) / M


def solve_x(beta: float, M: int, *, rule: Rule = "argmin") -> float:
    """``argmin_{x >= 0} 1 / (1 + x^M) + beta x``, the per-class scalar of the closed form.

    ``M = 1``: the problem is convex, ``x = max(0, 1 / sqrt(beta) - 1)``. ``M >= 2``: ``x = 0``
    is always a local minimiser; the other candidate is the larger root of ``M x^(M-1) /
    (1 + x^M)^2 = beta`` (found with ``scipy.optimize.brentq`` on ``[((M-1)/(M+1))^(1/M),
    (M/beta)^(1/(M+1))]``, where the left side decreases), and it is the global minimiser iff
    ``beta < beta_crit(M)``. The official code takes the largest root whenever one exists,
    which is wrong for ``beta_crit <= beta < max g``; this function compares with ``x = 0``.
    ``rule="largest_root"`` reproduces the official code's rule (the largest root, ``0`` only
    when there is no root), for comparisons.

    >>> round(solve_x(0.04 / 200, 1), 6), round(solve_x(0.35088209 / 200, 3), 5)
    (69.710678, 6.41842)
    """
    validate_params(_CONSTRAINTS, {"beta": beta, "M": M, "rule": rule}, owner="solve_x")
    if M == 1:
        return max(0.0, 1.0 / math.sqrt(beta) - 1.0)
    from scipy.optimize import brentq

    def g(x: float) -> float:
        return M * x ** (M - 1) / (1.0 + x**M) ** 2 - beta

    lo = ((M - 1) / (M + 1)) ** (1.0 / M)  # the maximum of M x^(M-1) / (1 + x^M)^2
    if (beta >= beta_crit(M) and rule == "argmin") or g(lo) < 0:
        return 0.0
    hi = (M / beta) ** (1.0 / (M + 1))  # beyond it the left side is < M / x^(M+1) <= beta
    return float(brentq(g, lo, max(hi, lo), xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def minority_collapse_threshold(M: int, B: float) -> float:
    """Class size at or below which a class collapses (``w_k = 0``, ``mu_k = 0``) at the global
    minimum of the bias-free MSE problem: ``B / beta_crit(M)``, with ``B = M N (N lambda_H
    prod_m lambda_m)^(1/M)`` (:attr:`NCGeometry.B`).

    >>> round(minority_collapse_threshold(2, 27.5041), 3)  # n = (200, 100, 50, 50), lambda = 0.01435
    55.008
    """
    validate_params(_CONSTRAINTS, {"M": M, "B": B}, owner="minority_collapse_threshold")
    return B / beta_crit(M)


# --------------------------------------------------------------------------- the predicted geometry
@dataclass(frozen=True)
class NCGeometry:
    """The closed-form global minimiser of the deep linear unconstrained-features problem.

    Per-class arrays have shape ``(K,)``; Gram matrices ``(K, K)``. For the ETF cases (balanced
    MSE with bias, balanced CE) the per-class singular values are the common non-zero one.

    Attributes:
        n: class sizes; ``N`` their sum; ``M`` the number of linear layers.
        lambda_W: the per-layer weight decays (``(M,)``, divided by ``fit_scale``);
            ``lambda_H`` the feature decay (divided by ``fit_scale``).
        loss, bias: the problem solved; ``centred``: whether the prediction is about centred
            class means (the ETF cases; the OF cases are uncentred).
        B, beta, x: ``B = M N (N lambda_H prod lambda_m)^(1/M)``, ``beta_k = B / n_k`` and
            ``x_k = argmin psi_k`` (MSE only; ``nan`` for CE).
        sigma2: squared non-zero singular value of the end-to-end ``W`` for class ``k``
            (``= ||w_k||^2`` in the OF cases).
        classifier_norms2, mean_norms, own_logits: ``||w_k||^2``, ``||mu_k||`` and
            ``w_k . mu_k`` (the diagonals of the Gram matrices).
        alignment: ``W = diag(alignment) @ means``, i.e. ``w_k = alignment_k mu_k``.
        layer_singular_values: ``(M, K)``, the non-zero singular values of ``W_m`` for class ``k``.
        WWt, MMt, WMt: predicted ``W W^T``, ``means means^T``, ``W means^T``.
        bias_vector: the predicted last-layer bias (``1/K`` for MSE with bias, zeros otherwise).
        objective: the minimum value of the objective (with ``fit_scale`` applied).
        layer: the layer whose input features the Gram matrices describe (0: the input of the
            linear stack; see :meth:`at_layer`).
    """

    n: np.ndarray
    N: int
    M: int
    lambda_W: np.ndarray
    lambda_H: float
    fit_scale: float
    loss: str
    bias: bool
    centred: bool
    B: float
    beta: np.ndarray
    x: np.ndarray
    sigma2: np.ndarray
    classifier_norms2: np.ndarray
    mean_norms: np.ndarray
    own_logits: np.ndarray
    alignment: np.ndarray
    layer_singular_values: np.ndarray
    WWt: np.ndarray
    MMt: np.ndarray
    WMt: np.ndarray
    bias_vector: np.ndarray
    objective: float
    layer: int = 0

    @property
    def K(self) -> int:
        return int(self.n.shape[0])

    @property
    def collapsed(self) -> np.ndarray:
        """Classes whose classifier row and class mean are zero at the minimum."""
        return self.sigma2 == 0.0

    @property
    def ratio(self) -> np.ndarray:
        """``||w_k||^2 / ||mu_k||^2 = alignment_k^2`` (``n_k lambda_H / lambda_W`` for ``M = 1``)."""
        return self.alignment**2

    def at_layer(self, m: int) -> NCGeometry:
        """The prediction for the features entering layer ``m + 1`` (``W_m ... W_1 H``, ``0 <=
        m < M``) and the classifier ``W_M ... W_{m+1}``: class means scale by ``prod_{j<=m}
        s_{j,k}``, classifier rows by its inverse; logits are unchanged."""
        validate_params({"m": [Interval(int, 0, self.M - 1, closed="both")]}, {"m": m}, owner="NCGeometry.at_layer")
        if m == self.layer:
            return self
        if self.layer != 0:
            raise ValueError("at_layer applies to the layer-0 geometry")
        scale = np.prod(self.layer_singular_values[:m], axis=0)  # (K,)
        safe = np.where(scale > 0, scale, 1.0)
        outer = np.outer(scale, scale)
        inv = np.outer(1.0 / safe, 1.0 / safe)
        return replace(
            self,
            classifier_norms2=self.classifier_norms2 / safe**2,
            mean_norms=self.mean_norms * scale,
            alignment=self.alignment / safe**2,
            WWt=self.WWt * inv,
            MMt=self.MMt * outer,
            layer=m,
        )


def _as_lambdas(lambda_W: float | Sequence[float], M: int) -> np.ndarray:
    lam = np.atleast_1d(np.asarray(lambda_W, dtype=np.float64))
    if lam.ndim != 1 or lam.size not in (1, M):
        raise ValueError(f"lambda_W must be a float or a sequence of M = {M} floats, got {lambda_W!r}")
    if not (np.isfinite(lam).all() and (lam > 0).all()):
        raise ValueError(f"lambda_W must be positive and finite, got {lambda_W!r}")
    return np.broadcast_to(lam, (M,)).copy()


def predict_dlufm_geometry(
    n_per_class: Sequence[int],
    lambda_W: float | Sequence[float],
    lambda_H: float,
    M: int,
    *,
    bias: bool = False,
    loss: Loss = "mse",
    fit_scale: float = 1.0,
    rule: Rule = "argmin",
) -> NCGeometry:
    """The global minimiser's geometry for class sizes ``n_per_class`` (the paper's theorems).

    * ``loss="mse", bias=False`` (any class sizes): per class ``x_k = argmin 1/(1 + x^M) +
      beta_k x`` (:func:`solve_x`), ``sigma_k^2 = N lambda_H x_k^M``; ``W W^T = diag(sigma^2)``,
      ``means means^T = diag(||mu_k||^2)`` with ``||mu_k|| = sigma_k / (sigma_k^2 + N lambda_H)``,
      ``W means^T = diag(sigma^2 / (sigma^2 + N lambda_H))`` and ``w_k = (sigma_k^2 + N
      lambda_H) mu_k``. Equal sizes give an orthogonal frame; classes with ``beta_k >=
      beta_crit(M)`` collapse to 0.
    * ``loss="mse", bias=True`` (equal sizes only): the same scalar on the ``K - 1`` directions
      orthogonal to ``1``: a simplex ETF, ``b = 1/K``, zero global mean.
    * ``loss="ce"`` (equal sizes only; ``bias`` does not change the geometry, the bias is
      any multiple of ``1``): a simplex ETF with ``W W^T = sigma^2 P``, ``means means^T = eta^2
      P`` (``P = I - 11^T/K``), ``(sigma, eta)`` minimising ``log(1 + (K-1) e^(-sigma eta)) +
      (K-1)[(M lambda/2) sigma^(2/M) + (n lambda_H/2) eta^2]`` (``scipy.optimize.minimize``).
      For ``M >= 3`` a ``UserWarning`` says that lower-objective low-rank configurations exist
      at some decays, so the ETF need not be the global minimiser.

    Args:
        n_per_class: class sizes ``n_k >= 1`` (``K >= 2``).
        lambda_W: weight decay of every layer, or one per layer (``M`` values; the problem
            depends on their geometric mean, the per-layer singular values on each).
        lambda_H: feature decay.
        M: number of linear layers.
        bias: an unregularised last-layer bias.
        loss: ``"mse"`` or ``"ce"``.
        fit_scale: the data term's factor (see the module docstring); decays act as
            ``lambda / fit_scale``.
        rule: ``"argmin"`` (default, the global minimiser) or ``"largest_root"`` (the official
            code's per-class rule, see :func:`solve_x`; MSE only): then the result is the
            configuration that code predicts, and ``objective`` is that configuration's value,
            larger than the minimum where a class at or above ``beta_crit`` has a root.
    """
    validate_params(
        _CONSTRAINTS,
        {"lambda_H": lambda_H, "M": M, "bias": bias, "loss": loss, "fit_scale": fit_scale, "rule": rule},
        owner="predict_dlufm_geometry",
    )
    n = np.asarray(n_per_class)
    if n.ndim != 1 or n.size < 2 or n.dtype.kind not in "iu" or (n < 1).any():
        raise ValueError(f"n_per_class must be at least 2 positive integer class sizes, got {n_per_class!r}")
    n = n.astype(np.int64)
    K, N = int(n.size), int(n.sum())
    lam = _as_lambdas(lambda_W, M) / fit_scale
    lam_h = float(lambda_H) / fit_scale
    lam_bar = float(np.exp(np.mean(np.log(lam))))
    balanced = bool((n == n[0]).all())
    if (bias or loss == "ce") and not balanced:
        raise ValueError(
            "the closed form with a bias or for cross-entropy covers equal class sizes only; "
            f"got n_per_class={n.tolist()} (use loss='mse', bias=False for imbalanced classes)"
        )
    layer_scale = np.sqrt(lam_bar / lam)  # s_{m,k} = sqrt(lambda_bar / lambda_m) sigma_k^(1/M)
    if loss == "ce":
        if rule != "argmin":
            raise ValueError("rule='largest_root' is the official MSE rule; cross-entropy has no such choice")
        return _ce_geometry(n, M, lam, lam_h, lam_bar, layer_scale, bias, fit_scale)

    B = M * N * (N * lam_h * float(np.prod(lam))) ** (1.0 / M)
    beta = B / n
    x = np.array([solve_x(float(b), M, rule=rule) for b in beta])
    xm = x**M
    nlh = N * lam_h
    sigma2 = nlh * xm
    h = np.sqrt(xm / nlh) / (1.0 + xm)  # ||mu_k|| (the common singular value in the ETF case)
    logit = xm / (1.0 + xm)
    align = nlh * (1.0 + xm)
    s = layer_scale[:, None] * sigma2[None, :] ** (1.0 / (2 * M))
    if bias:
        P = np.eye(K) - 1.0 / K
        f_star = fit_scale * (K - 1) * (n[0] / (1.0 + xm[0]) + B * x[0]) / (2 * N)
        WWt, MMt, WMt = sigma2[0] * P, h[0] ** 2 * P, logit[0] * P
        bias_vector = np.full(K, 1.0 / K)
    else:
        f_star = fit_scale * float(np.sum(n / (1.0 + xm) + B * x)) / (2 * N)
        WWt, MMt, WMt = np.diag(sigma2), np.diag(h**2), np.diag(logit)
        bias_vector = np.zeros(K)
    return NCGeometry(
        n=n, N=N, M=M, lambda_W=lam, lambda_H=lam_h, fit_scale=float(fit_scale), loss=loss, bias=bias,
        centred=bias, B=B, beta=beta, x=x, sigma2=sigma2, classifier_norms2=np.diag(WWt).copy(),
        mean_norms=np.sqrt(np.diag(MMt)), own_logits=np.diag(WMt).copy(), alignment=align,
        layer_singular_values=s, WWt=WWt, MMt=MMt, WMt=WMt, bias_vector=bias_vector, objective=float(f_star),
    )  # fmt: skip


def _ce_geometry(
    n: np.ndarray,
    M: int,
    lam: np.ndarray,
    lam_h: float,
    lam_bar: float,
    layer_scale: np.ndarray,
    bias: bool,
    fit_scale: float,
) -> NCGeometry:
    """Balanced cross-entropy: the best simplex ETF (two scalars, ``scipy.optimize.minimize``)."""
    from scipy.optimize import minimize

    if M >= 3:
        warnings.warn(
            f"cross-entropy with M = {M} linear layers: the simplex ETF need not be the global minimiser "
            "(gradient descent finds lower-objective low-rank configurations at some decays, e.g. M = 3, K = 4, "
            "n = 100, lambda = 5e-4); the returned geometry is the best ETF",
            UserWarning,
            stacklevel=3,
        )
    K, N, n0 = int(n.size), int(n.sum()), float(n[0])

    def F_(p: np.ndarray) -> float:  # p = (log sigma, log eta)
        sig, eta = math.exp(p[0]), math.exp(p[1])
        margin = sig * eta
        ce = float(np.logaddexp(0.0, math.log(K - 1) - margin))
        return ce + (K - 1) * (0.5 * M * lam_bar * sig ** (2.0 / M) + 0.5 * n0 * lam_h * eta**2)

    best = None
    for start in ((0.0, 0.0), (2.0, -1.0), (-1.0, 2.0), (4.0, -2.0)):
        res = minimize(F_, np.array(start), method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
        res = minimize(F_, res.x, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-16, "maxiter": 20_000})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    f_val = float(best.fun)
    if f_val >= math.log(K):  # the origin (everything zero) is the minimum
        sig = eta = 0.0
        f_val = math.log(K)
    else:
        sig, eta = math.exp(best.x[0]), math.exp(best.x[1])
    P = np.eye(K) - 1.0 / K
    nan = np.full(K, np.nan)
    sigma2 = np.full(K, sig**2)
    s = layer_scale[:, None] * sigma2[None, :] ** (1.0 / (2 * M))
    return NCGeometry(
        n=n, N=N, M=M, lambda_W=lam, lambda_H=lam_h, fit_scale=float(fit_scale), loss="ce", bias=bias, centred=True,
        B=math.nan, beta=nan, x=nan.copy(), sigma2=sigma2, classifier_norms2=np.diag(sig**2 * P).copy(),
        mean_norms=np.sqrt(np.diag(eta**2 * P)), own_logits=np.diag(sig * eta * P).copy(),
        alignment=np.full(K, sig / eta if eta > 0 else 0.0), layer_singular_values=s, WWt=sig**2 * P,
        MMt=eta**2 * P, WMt=sig * eta * P, bias_vector=np.zeros(K), objective=fit_scale * f_val,
    )  # fmt: skip


# --------------------------------------------------------------------------- metrics
def _check_finite_fast(t: torch.Tensor, name: str) -> None:
    """A finite sum proves every entry finite (a NaN or inf anywhere makes it NaN or inf); only
    otherwise (a NaN, an inf, or an overflowing sum) run the element-wise check."""
    if not bool(torch.isfinite(t.sum())):
        check_finite(t, name)


def _check_features_weights(features: torch.Tensor, labels: torch.Tensor, W: torch.Tensor) -> None:
    for name, t in (("features", features), ("W", W)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
        _check_finite_fast(t, name)
    if features.shape[0] == 0:
        raise ValueError("empty batch: features has 0 rows")
    if W.shape[0] < 2:
        raise ValueError(f"W must have at least 2 classes (rows), got {W.shape[0]}")
    if W.shape[1] != features.shape[1]:
        raise ValueError(f"W must have shape (K, {features.shape[1]}) like the features' width, got {tuple(W.shape)}")
    check_labels(labels, features.shape[0], "labels", W.shape[0])


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means ``(K, d)`` and class counts ``(K,)`` in one ``index_add_`` (no loop over
    classes). A class without samples gets a zero mean and count 0."""
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes]
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    return sums / counts.clamp_min(1).to(features.dtype)[:, None], counts


def _unit(A: torch.Tensor) -> torch.Tensor:
    """``A / ||A||_F`` (a zero matrix stays zero)."""
    norm = torch.linalg.matrix_norm(A)
    return A / norm if norm > 0 else A


def _fixed_target(kind: str, K: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    eye = torch.eye(K, dtype=dtype, device=device)
    if kind == "etf":
        return (eye - 1.0 / K) / math.sqrt(K - 1)
    return eye / math.sqrt(K)


def nc_metrics(
    features: torch.Tensor | Sequence[torch.Tensor],
    labels: torch.Tensor,
    W: torch.Tensor | Sequence[torch.Tensor],
    *,
    target: Target = "of",
    prediction: NCGeometry | None = None,
) -> dict[str, Any] | list[dict[str, Any]]:
    """Neural-collapse metrics of features ``(N, d)`` with integer labels ``(N,)`` and a
    classifier ``W`` ``(K, d)`` (the metrics of the official ``validate_NC*.py``).

    With class means ``mu_k``, sample-weighted global mean ``mu_G``, ``Sigma_W = (1/N)
    sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, ``Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k -
    mu_G)^T`` and ``U(A) = A / ||A||_F``:

    * ``NC1 = tr(Sigma_W Sigma_B^+) / K``, computed as ``||R C^+||_F^2 / N`` with ``R`` the
      within-class residuals and ``C`` the centred means: one ``K x d`` SVD and one ``(N, d) x
      (d, K)`` product, no ``d x d`` matrix (the pseudo-inverse keeps the singular values that
      ``torch.linalg.pinv(Sigma_B)`` keeps);
    * ``NC2_W = ||U(W W^T) - T_W||``, ``NC2_H = ||U(M M^T) - T_H||``;
    * ``NC3_WH = ||U(W M^T) - T_WH||`` and ``NC3_W = ||U(W) - U(D M)||`` (alignment);

    where ``M`` are the centred means for ``target="etf"`` and the uncentred means for
    ``"of"``; the fixed targets are ``T = (I - 11^T/K) / sqrt(K - 1)`` (ETF) or ``I / sqrt(K)``
    (OF) and ``D = I``. ``target="gof"`` compares with ``prediction`` (an :class:`NCGeometry`,
    e.g. the n_k-dependent orthogonal frame): ``T_W = U(WWt)``, ``T_H = U(MMt)``, ``T_WH =
    U(WMt)``, ``D = diag(alignment)``, centred means iff the prediction is centred. All
    metrics are 0 at exact collapse onto the target and invariant to rotating the features
    together with ``W``; NC2/NC3 are invariant to positive rescaling of ``W`` or the features.

    ``features`` and ``W`` may be equal-length lists (layer-wise features and the matching
    classifiers, e.g. :meth:`DeepLinearHead.layerwise`); the result is then a list of dicts,
    and a ``prediction`` is moved to each layer with :meth:`NCGeometry.at_layer`.

    Returns:
        ``{"NC1", "NC2_W", "NC2_H", "NC3_WH", "NC3_W": float, "classifier_norms": (K,),
        "mean_norms": (K,) (of the means used), "target": str}``.
    """
    validate_params(_CONSTRAINTS, {"target": target}, owner="nc_metrics")
    if target == "gof" and not isinstance(prediction, NCGeometry):
        raise ValueError("nc_metrics: target='gof' needs prediction=predict_dlufm_geometry(...)")
    if isinstance(features, (list, tuple)) or isinstance(W, (list, tuple)):
        if not (isinstance(features, (list, tuple)) and isinstance(W, (list, tuple)) and len(features) == len(W)):
            raise ValueError("layer-wise use needs features and W as lists of the same length")
        if not features:
            raise ValueError("layer-wise use needs at least one layer")
        out = []
        for m, (h, w) in enumerate(zip(features, W)):
            pred = prediction.at_layer(m) if prediction is not None and m < prediction.M else prediction
            out.append(nc_metrics(h, labels, w, target=target, prediction=pred))
        return out
    assert isinstance(features, torch.Tensor) and isinstance(W, torch.Tensor)
    _check_features_weights(features, labels, W)
    K = W.shape[0]
    if prediction is not None and prediction.K != K:
        raise ValueError(f"prediction has {prediction.K} classes, W has {K}")
    dtype = torch.promote_types(features.dtype, W.dtype)
    with torch.no_grad():
        H, Wt = features.detach().to(dtype), W.detach().to(dtype)
        mu, counts = class_means(H, labels, K)
        if bool((counts == 0).any()):
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(f"every class needs at least one sample; classes {missing} have none")
        mu_g = (counts.to(dtype) @ mu) / H.shape[0]  # the sample-weighted global mean, from the class means
        centred = mu - mu_g
        # NC1 through the K x d SVD of the centred means (no d x d matrix)
        _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
        rtol = H.shape[1] * torch.finfo(dtype).eps  # torch.linalg.pinv's default on the d x d Sigma_B
        keep = S**2 > rtol * S.max() ** 2 if S.numel() and S.max() > 0 else torch.zeros_like(S, dtype=torch.bool)
        pinv_t = Vh[keep].T / S[keep]  # (d, r): C^+ up to the orthogonal U
        proj = H @ pinv_t - (mu @ pinv_t)[labels]  # R C^+ without forming the (N, d) residuals
        nc1 = float((proj**2).sum() / H.shape[0])

        use_centred = target == "etf" or (target == "gof" and prediction is not None and prediction.centred)
        means = centred if use_centred else mu
        if target == "gof":
            assert prediction is not None
            t_w, t_h, t_wh = (_unit(torch.as_tensor(a, dtype=dtype, device=H.device)) for a in (
                prediction.WWt, prediction.MMt, prediction.WMt))  # fmt: skip
            align = torch.as_tensor(prediction.alignment, dtype=dtype, device=H.device)[:, None] * means
        else:
            t_w = t_h = t_wh = _fixed_target(target, K, dtype, H.device)
            align = means
        return {
            "NC1": nc1,
            "NC2_W": float(torch.linalg.matrix_norm(_unit(Wt @ Wt.T) - t_w)),
            "NC2_H": float(torch.linalg.matrix_norm(_unit(means @ means.T) - t_h)),
            "NC3_WH": float(torch.linalg.matrix_norm(_unit(Wt @ means.T) - t_wh)),
            "NC3_W": float(torch.linalg.matrix_norm(_unit(Wt) - _unit(align))),
            "classifier_norms": torch.linalg.vector_norm(Wt, dim=1),
            "mean_norms": torch.linalg.vector_norm(means, dim=1),
            "target": target,
        }


def nc_metrics_reference(
    features: Any, labels: Any, W: Any, *, target: Target = "of", prediction: NCGeometry | None = None
) -> dict[str, float]:
    """The NC metrics computed literally, in NumPy: a loop over classes for the means and the
    ``d x d`` covariances ``Sigma_W`` and ``Sigma_B``, ``scipy.linalg.pinv(Sigma_B)``, and the
    ``K x K`` targets (the official ``validate_NC*.py`` recipe without its per-sample outer
    products). Slow by design: the reference of the tests and of the speed comparison.
    Same keys and conventions as :func:`nc_metrics` (scalars only)."""
    import scipy.linalg

    H, y, Wn = np.asarray(features, dtype=np.float64), np.asarray(labels), np.asarray(W, dtype=np.float64)
    N, d = H.shape
    K = Wn.shape[0]
    mu_g = H.mean(axis=0)
    mus, sigma_w, sigma_b = [], np.zeros((d, d)), np.zeros((d, d))
    for k in range(K):
        hk = H[y == k]
        mu_k = hk.mean(axis=0)
        mus.append(mu_k)
        dev = hk - mu_k
        sigma_w += dev.T @ dev
        c = (mu_k - mu_g)[:, None]
        sigma_b += c @ c.T
    sigma_w /= N
    sigma_b /= K
    nc1 = float(np.trace(sigma_w @ scipy.linalg.pinv(sigma_b)) / K)
    mu = np.stack(mus)
    centred = target == "etf" or (target == "gof" and prediction is not None and prediction.centred)
    means = mu - mu_g if centred else mu

    def unit(a: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(a)
        return a / norm if norm > 0 else a

    if target == "gof":
        assert prediction is not None
        t_w, t_h, t_wh = unit(prediction.WWt), unit(prediction.MMt), unit(prediction.WMt)
        align = np.diag(prediction.alignment) @ means
    else:
        t_w = (np.eye(K) - np.ones((K, K)) / K) / math.sqrt(K - 1) if target == "etf" else np.eye(K) / math.sqrt(K)
        t_h = t_wh = t_w
        align = means
    return {
        "NC1": nc1,
        "NC2_W": float(np.linalg.norm(unit(Wn @ Wn.T) - t_w)),
        "NC2_H": float(np.linalg.norm(unit(means @ means.T) - t_h)),
        "NC3_WH": float(np.linalg.norm(unit(Wn @ means.T) - t_wh)),
        "NC3_W": float(np.linalg.norm(unit(Wn) - unit(align))),
    }


# --------------------------------------------------------------------------- a user's model and data
def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear; pass classifier= (the module whose input are the features)")
    return linears[-1]


def collect_features(
    model: nn.Module,
    loader: Any,
    *,
    classifier: nn.Module | str | None = None,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Penultimate features, labels and classifier weights of a user's model, for :func:`nc_metrics`.

    Runs ``model`` in eval mode without gradients over ``loader`` (an iterable of ``(x, y)``
    batches, e.g. a ``DataLoader``) and records the input of ``classifier`` (a module of the
    model or its name in ``model.named_modules()``; default: the model's last ``nn.Linear``)
    with a forward hook; the model is left as it was (mode and parameters). A progress bar
    counts batches (``progress=False`` silences it).

    Returns:
        ``(features (N, d), labels (N,), W (K, d))`` on the CPU, ``W`` the classifier's
        ``weight`` (for a deep linear head use :meth:`DeepLinearHead.end_to_end`).
    """
    from paperzoo.engine.progress import progress as progress_iter

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if classifier is None:
        head: nn.Module = _last_linear(model)
    elif isinstance(classifier, str):
        named = dict(model.named_modules())
        if classifier not in named:
            raise ValueError(f"classifier {classifier!r} is not a submodule of the model")
        head = named[classifier]
    else:
        head = classifier
    W = getattr(head, "weight", None)
    if not isinstance(W, torch.Tensor) or W.dim() != 2:
        raise ValueError("the classifier must have a 2-D weight (K, d); pass classifier= explicitly")
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        feats.append(inputs[0].detach().flatten(1).cpu())

    total = len(loader) if hasattr(loader, "__len__") else None
    if total is not None and max_batches is not None:
        total = min(total, max_batches)
    handle = head.register_forward_pre_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(progress_iter(loader, desc="NC features", total=total, enabled=progress)):
                if max_batches is not None and i >= max_batches:
                    break
                if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
                    raise ValueError("loader must yield (x, y) batches")
                x, y = batch[0], batch[1]
                model(x.to(device) if device is not None else x)
                labels.append(torch.as_tensor(y).reshape(-1).cpu())
    finally:
        handle.remove()
        model.train(was_training)
    if not feats:
        raise ValueError("empty loader: no batch was seen")
    H, y_all = torch.cat(feats), torch.cat(labels).long()
    if H.shape[0] != y_all.shape[0]:
        raise ValueError(f"the classifier saw {H.shape[0]} rows but the loader gave {y_all.shape[0]} labels")
    return H, y_all, W.detach().cpu().to(H.dtype)


def nc_metrics_of_model(
    model: nn.Module,
    loader: Any,
    *,
    classifier: nn.Module | str | None = None,
    target: Target = "etf",
    prediction: NCGeometry | None = None,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`nc_metrics` of a user's model on a data loader (:func:`collect_features` then
    :func:`nc_metrics`). ``target="etf"`` by default: a network trained with cross-entropy or a
    biased MSE head (the simplex ETF cases); use ``"of"`` for a bias-free MSE head or ``"gof"``
    with a ``prediction`` for imbalanced classes."""
    H, y, W = collect_features(
        model, loader, classifier=classifier, device=device, max_batches=max_batches, progress=progress
    )
    out = nc_metrics(H, y, W, target=target, prediction=prediction)
    assert isinstance(out, dict)
    return out


_NC_KEYS = ("NC1", "NC2_W", "NC2_H", "NC3_WH", "NC3_W")


def plot_nc_metrics(
    metrics: dict[str, Any] | Sequence[dict[str, Any]],
    *,
    x: Sequence[float] | None = None,
    xlabel: str = "step",
    title: str | None = None,
) -> Any:
    """A figure of NC metrics: one dict gives bars (log scale); a sequence of dicts (e.g. one per
    epoch, or :func:`nc_metrics` on layer-wise lists) gives one curve per metric against ``x``
    (default ``0, 1, ...``; ``xlabel`` names it). Returns the matplotlib ``Figure``."""
    from paperzoo.engine.plots import subplots

    fig, axes = subplots(1, width=6.0, height=4.0)
    ax = axes[0]
    floor = 1e-16
    if isinstance(metrics, dict):
        vals = [max(float(metrics[k]), floor) for k in _NC_KEYS]
        ax.bar(list(_NC_KEYS), vals, color="C0")
        ax.set_ylabel(f"metric (target {metrics.get('target', '?')}; 0 = collapse)")
    else:
        rows = list(metrics)
        if not rows:
            raise ValueError("plot_nc_metrics: no metrics to plot")
        xs = list(range(len(rows))) if x is None else list(x)
        if len(xs) != len(rows):
            raise ValueError(f"x has {len(xs)} values for {len(rows)} metric dicts")
        for k in _NC_KEYS:
            ax.plot(xs, [max(float(r[k]), floor) for r in rows], marker="o", ms=3, label=k)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("metric (0 = collapse)")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- objective and models
def dlufm_objective(
    features: torch.Tensor,
    weights: Sequence[torch.Tensor],
    labels: torch.Tensor,
    lambda_W: float | Sequence[float],
    lambda_H: float,
    *,
    bias: torch.Tensor | None = None,
    loss: Loss = "mse",
    fit_scale: float = 1.0,
) -> torch.Tensor:
    """The paper's regularised objective for features ``H`` ``(N, d)``, a linear stack
    ``weights = [W_1, ..., W_M]`` (``nn.Linear`` layout, ``W_M`` is ``(K, d_{M-1})``) and an
    optional unregularised last-layer bias ``(K,)``:

    ``fit_scale * data(W_M ... W_1 h_i + b, y_i) + sum_m lambda_m / 2 ||W_m||_F^2 + lambda_H / 2
    ||H||_F^2`` with ``data = 1/(2N) ||logits - onehot||_F^2`` (MSE) or the mean cross-entropy.

    On a real network, ``features`` are the backbone's output (the head's input) and this is the
    official code's "sep_decay" loss: decay on the head and the features, not on the backbone.
    """
    validate_params(_CONSTRAINTS, {"lambda_H": lambda_H, "loss": loss, "fit_scale": fit_scale}, owner="dlufm_objective")
    if not weights:
        raise ValueError("weights must hold at least one layer")
    lam = _as_lambdas(lambda_W, len(weights))
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() or features.dim() != 2:
        raise TypeError("features must be a floating-point torch.Tensor of shape (N, d)")
    if features.shape[0] == 0:
        raise ValueError("empty batch: features has 0 rows")
    K = weights[-1].shape[0]
    check_labels(labels, features.shape[0], "labels", K)
    end_to_end = weights[-1]
    for w in reversed(weights[:-1]):  # W_M ... W_1 first: K d^2 per layer instead of N d^2
        end_to_end = end_to_end @ w
    out = features @ end_to_end.T
    if bias is not None:
        out = out + bias
    if loss == "mse":
        data = ((out - F.one_hot(labels, K).to(out.dtype)) ** 2).sum() / (2 * features.shape[0])
    else:
        data = F.cross_entropy(out, labels)
    penalty = sum(0.5 * float(lm) * (w**2).sum() for lm, w in zip(lam, weights))
    return fit_scale * data + penalty + 0.5 * lambda_H * (features**2).sum()


class DeepLinearHead(nn.Module):
    """``depth`` bias-free linear layers ``in_dim -> in_dim -> ... -> num_classes`` (the
    paper's deep linear classifier; ``bias=True`` adds an unregularised bias to the last layer
    only), for the top of a real network or on free features (:class:`DeepLinearUFM`).

    ``init="orthogonal"`` (the official MLP code), ``"normal"`` (``N(0, init_std^2)``, the
    official synthetic code) or ``"default"`` (``nn.Linear``'s).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        depth: int,
        bias: bool = False,
        *,
        init: Literal["normal", "orthogonal", "default"] = "orthogonal",
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            _CONSTRAINTS,
            {"in_dim": in_dim, "num_classes": num_classes, "depth": depth, "bias": bias, "init": init,
             "init_std": init_std},
            owner="DeepLinearHead",
        )  # fmt: skip
        self.layers = nn.ModuleList(
            nn.Linear(in_dim, num_classes if m == depth - 1 else in_dim, bias=bias and m == depth - 1, dtype=dtype)
            for m in range(depth)
        )
        for layer in self.layers:
            if init == "normal":
                nn.init.normal_(layer.weight, 0.0, init_std, generator=generator)
            elif init == "orthogonal":
                nn.init.orthogonal_(layer.weight, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layers[-1].bias

    def weights(self) -> list[torch.Tensor]:
        return [layer.weight for layer in self.layers]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h

    def end_to_end(self) -> torch.Tensor:
        """``W_M ... W_1`` ``(K, in_dim)``."""
        return self.suffix_products()[0]

    def suffix_products(self) -> list[torch.Tensor]:
        """``[W_M ... W_1, W_M ... W_2, ..., W_M]``: the classifier seen from each layer's input."""
        out = [self.layers[-1].weight]
        for layer in reversed(self.layers[:-1]):
            out.append(out[-1] @ layer.weight)
        return out[::-1]

    def layerwise(self, h: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``([h, W_1 h, ..., W_{M-1} ... W_1 h], suffix_products())``: each layer's input
        features and the classifier from there (for :func:`nc_metrics` on lists)."""
        feats = [h]
        for layer in self.layers[:-1]:
            feats.append(layer(feats[-1]))
        return feats, self.suffix_products()

    def sep_decay_loss(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        lambda_W: float | Sequence[float],
        lambda_H: float,
        *,
        loss: Loss = "mse",
        fit_scale: float = 1.0,
    ) -> torch.Tensor:
        """:func:`dlufm_objective` on the head's input ``features``: decay on this head's
        weights and on the features only (set the optimiser's own weight decay to 0)."""
        return dlufm_objective(
            features, self.weights(), labels, lambda_W, lambda_H, bias=self.bias, loss=loss, fit_scale=fit_scale
        )

    def nc_metrics(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        target: Target = "of",
        prediction: NCGeometry | None = None,
        layerwise: bool = False,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """:func:`nc_metrics` of the head's input features and end-to-end classifier (or of every
        layer with ``layerwise=True``)."""
        with torch.no_grad():
            if layerwise:
                feats, ws = self.layerwise(features)
                return nc_metrics(feats, labels, ws, target=target, prediction=prediction)
            return nc_metrics(features, labels, self.end_to_end(), target=target, prediction=prediction)


class DeepLinearUFM(nn.Module):
    """The deep linear unconstrained-features model: free features ``H`` ``(N, d)`` (class
    ``k`` holds rows ``sum_{j<k} n_j ... sum_{j<=k} n_j - 1``), then a :class:`DeepLinearHead` of
    ``M`` layers; everything initialised ``N(0, init_std^2)`` as in the official synthetic code.
    ``float64`` by default (the closed form is matched to many digits)."""

    def __init__(
        self,
        n_per_class: Sequence[int],
        d: int,
        M: int,
        bias: bool = False,
        *,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        validate_params(_CONSTRAINTS, {"d": d, "M": M, "bias": bias, "init_std": init_std}, owner="DeepLinearUFM")
        n = [int(v) for v in n_per_class]
        if len(n) < 2 or min(n) < 1:
            raise ValueError(f"n_per_class must be at least 2 positive class sizes, got {list(n_per_class)!r}")
        self.n_per_class = tuple(n)
        self.register_buffer("labels", torch.repeat_interleave(torch.arange(len(n)), torch.tensor(n)))
        self.H = nn.Parameter(torch.empty(sum(n), d, dtype=dtype))
        nn.init.normal_(self.H, 0.0, init_std, generator=generator)
        self.head = DeepLinearHead(
            d, len(n), M, bias, init="normal", init_std=init_std, generator=generator, dtype=dtype
        )

    def forward(self) -> torch.Tensor:
        """Logits ``(N, K)``."""
        return self.head(self.H)

    def loss(
        self,
        kind: Loss = "mse",
        lambda_W: float | Sequence[float] = 5e-4,
        lambda_H: float = 5e-4,
        fit_scale: float = 1.0,
    ) -> torch.Tensor:
        """The regularised objective (:func:`dlufm_objective`)."""
        return self.head.sep_decay_loss(self.H, self.labels, lambda_W, lambda_H, loss=kind, fit_scale=fit_scale)

    def nc_metrics(
        self, *, target: Target = "of", prediction: NCGeometry | None = None, layerwise: bool = False
    ) -> dict[str, Any] | list[dict[str, Any]]:
        return self.head.nc_metrics(self.H, self.labels, target=target, prediction=prediction, layerwise=layerwise)


def fit_ufm(
    model: DeepLinearUFM,
    *,
    loss: Loss = "mse",
    lambda_W: float | Sequence[float] = 5e-4,
    lambda_H: float = 5e-4,
    fit_scale: float = 1.0,
    sgd_iters: int = 2000,
    lr: float = 0.1,
    momentum: float = 0.9,
    lbfgs_iters: int = 3000,
    track: Callable[[DeepLinearUFM], dict[str, float]] | None = None,
    track_every: int = 0,
) -> dict[str, Any]:
    """Minimise ``model.loss(...)`` over all its parameters: ``sgd_iters`` full-batch SGD steps
    with momentum (the official synthetic experiment), then up to ``lbfgs_iters`` L-BFGS
    iterations (strong-Wolfe line search) to reach the minimum to many digits.

    ``track(model)`` (e.g. a closure over :func:`nc_metrics`) is recorded at step 0, every
    ``track_every`` SGD steps and at the end (as step ``sgd_iters + 1`` after an L-BFGS polish,
    else ``sgd_iters``). Returns ``{"sgd_losses": per-step losses,
    "final_loss": float, "lbfgs_evals": int, "track": [(step, dict), ...]}``.
    """
    validate_params(
        _CONSTRAINTS,
        {
            "sgd_iters": sgd_iters,
            "lbfgs_iters": lbfgs_iters,
            "lr": lr,
            "momentum": momentum,
            "track_every": track_every,
        },
        owner="fit_ufm",
    )

    def objective() -> torch.Tensor:
        return model.loss(loss, lambda_W, lambda_H, fit_scale)

    history: dict[str, Any] = {"sgd_losses": [], "track": [], "lbfgs_evals": 0}

    def record(step: int) -> None:
        if track is not None:
            with torch.no_grad():
                history["track"].append((step, track(model)))

    record(0)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    for step in range(1, sgd_iters + 1):
        opt.zero_grad(set_to_none=True)
        value = objective()
        value.backward()
        opt.step()
        history["sgd_losses"].append(float(value.detach()))
        if track_every and step % track_every == 0:
            record(step)
    if lbfgs_iters:
        lbfgs = torch.optim.LBFGS(
            params, lr=1.0, max_iter=lbfgs_iters, max_eval=2 * lbfgs_iters, tolerance_grad=1e-13,
            tolerance_change=1e-16, history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure() -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            value = objective()
            value.backward()
            history["lbfgs_evals"] += 1
            return value

        lbfgs.step(closure)
    with torch.no_grad():
        history["final_loss"] = float(objective())
    record(sgd_iters + (1 if lbfgs_iters else 0))
    return history
