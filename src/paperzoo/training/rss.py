"""Robust self-supervised training (RSS) of Saberi et al., "Out-Of-Domain Unlabeled Data Improves
Generalization" (ICLR 2024).

The estimator combines Wasserstein distributionally robust learning with self-training:

    theta_RSS = argmin_theta (1/m) sum_i phi_gamma(X_i, y_i; theta)
                             + (lambda/n) sum_j phi_gamma'(X'_j, h_theta(X'_j); theta),

with the robust surrogate (the Lagrangian dual of the Wasserstein-ball risk, as in Sinha et al.)

    phi_gamma(x, y; theta) = sup_z [ loss(z, y; theta) - gamma * c(z, x) ],  c(z, x) = ||z - x||^2,

labelled samples ``X_i`` from the source distribution and unlabelled ``X'_j`` from a shifted one,
each scored at the model's own prediction ``h_theta(X'_j)``. No official code exists (the
authors' repository holds only the poster); the cost ``||z - x||^2``, the inner solver and the
unit-sphere optimisation of the linear model are this project's decisions (see the card).

Components:

* :func:`ramp_loss` and :func:`robust_ramp_linear`: the truncated ramp loss of the paper's
  Gaussian-mixture experiments and the closed form of ``phi_gamma`` for a linear model under the
  squared-L2 cost (the worst perturbation moves ``x`` along ``-y w / ||w||``).
* :class:`WassersteinRobustLoss`: generic ``phi_gamma`` for any model, by gradient ascent on the
  input (the WRM scheme); ``gamma = inf`` is the plain loss.
* :class:`RSSObjective`: the objective above as an ``engine.fit`` ``compute_loss`` for batches
  ``(x_labelled, y_labelled, x_unlabelled)``.
* :func:`fit_linear_rss`: the paper's Gaussian-mixture estimator (linear ``w`` on the unit sphere,
  ramp loss, closed-form ``phi``, full-batch Adam), vectorised over samples; ``lam = 0`` is the
  (robust) ERM baseline and :func:`mean_estimator` the classical one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = [
    "RSSObjective",
    "WassersteinRobustLoss",
    "fit_linear_rss",
    "mean_estimator",
    "ramp_loss",
    "robust_ramp_linear",
    "rss_linear_objective",
]

_NONNEG = [Interval(float, 0.0, math.inf, closed="both")]
_POS = [Interval(float, 0.0, math.inf, closed="neither")]
_RAMP_CONSTRAINTS = {"slope": _POS, "gamma": _NONNEG}


def ramp_loss(margin: torch.Tensor, slope: float = 1.0) -> torch.Tensor:
    """Truncated ramp ``min(1, max(0, 1 - slope * margin))`` of the margin ``y * f(x)``."""
    validate_params({"slope": _POS}, {"slope": slope}, owner="ramp_loss")
    return (1.0 - slope * margin).clamp(0.0, 1.0)


def robust_ramp_linear(
    margin: torch.Tensor, w_norm: torch.Tensor | float, slope: float = 1.0, gamma: float = 1.0
) -> torch.Tensor:
    """Closed form of ``phi_gamma`` for a linear model ``f(x) = <w, x>``, the ramp loss and the cost
    ``||z - x||^2``: ``max_{t >= 0} clip(1 - slope * margin + a t, 0, 1) - gamma t^2``, ``a = slope ||w||``.

    With ``u = 1 - slope * margin``, ``g(t) = clip(u + a t, 0, 1) - gamma t^2`` is flat or decreasing
    outside ``[t0, t1] = [max(0, -u/a), max(0, (1-u)/a)]`` and concave inside, so the maximum is the
    larger of ``g(0)`` and ``g`` at the stationary point ``a / (2 gamma)`` clipped to ``[t0, t1]``.
    Differentiable almost everywhere; values lie in ``[0, 1]``; ``gamma = inf`` gives the plain
    ramp, ``gamma = 0`` the cap 1 (for ``w != 0``), and ``w = 0`` the plain ramp.

    Args:
        margin: ``y * <w, x>`` (any shape); for unlabelled points at their own predicted label,
            ``|<w, x'>|``.
        w_norm: ``||w||`` (a float or a tensor broadcastable to ``margin``), ``>= 0``.
        slope: ramp slope ``s > 0``.
        gamma: penalty ``gamma >= 0`` (``math.inf``: no adversary).

    Returns:
        ``phi`` with the shape of ``margin``.
    """
    validate_params(_RAMP_CONSTRAINTS, {"slope": slope, "gamma": gamma}, owner="robust_ramp_linear")
    check_finite(margin, "margin")
    wn = torch.as_tensor(w_norm, dtype=margin.dtype, device=margin.device)
    if bool((wn < 0).any()) or not bool(torch.isfinite(wn).all()):
        raise ValueError("robust_ramp_linear: w_norm must be finite and >= 0")
    u = 1.0 - slope * margin
    plain = u.clamp(0.0, 1.0)
    if math.isinf(gamma):
        return plain
    a = slope * wn
    moving = a > 0
    a_safe = torch.where(moving, a, torch.ones_like(a))
    if gamma == 0.0:
        return torch.where(moving, torch.ones_like(u), plain)  # the cap 1 is reached at no cost
    # g is concave on [t0, t1], so its maximum there is the stationary point clipped to the interval;
    # below t0 (only when u < 0) g <= 0 = g(0), above t1 it decreases
    t0 = (-u / a_safe).clamp_min(0.0)
    t1 = ((1.0 - u) / a_safe).clamp_min(0.0)
    ts = torch.minimum(torch.maximum(a_safe / (2.0 * gamma), t0), t1)
    out = torch.maximum(plain, (u + a_safe * ts).clamp(0.0, 1.0) - gamma * ts * ts)
    return out if not bool((~moving).any()) else torch.where(moving, out, plain)


# --------------------------------------------------------------------------- generic robust loss
def _per_sample_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction="none")


class WassersteinRobustLoss(nn.Module):
    """Generic robust surrogate ``phi_gamma(x, y) = sup_z loss(model(z), y) - gamma ||z - x||^2``.

    The inner sup is solved by ``inner_steps`` gradient-ascent steps on ``z`` from ``x`` (the WRM
    scheme: concave inner problem when ``gamma`` exceeds the loss's smoothness); the returned value
    is ``loss(model(z*), y) - gamma ||z* - x||^2`` at the detached maximiser, whose gradient in the
    model's parameters is the gradient of ``phi`` (Danskin's theorem). The default step
    ``1 / (2 gamma)`` is the exact maximiser of the penalty's quadratic model (WRM's ``1/gamma``
    for a cost without the factor 2). ``gamma = inf`` returns the plain per-sample loss.

    Args:
        loss_fn: ``loss_fn(outputs, target) -> (B,)`` per-sample loss (default cross-entropy).
        gamma: the penalty ``gamma > 0`` or ``math.inf``.
        cost: only ``"sq_l2"``.
        inner_steps: number of ascent steps (``>= 0``).
        inner_lr: ascent step (default ``1 / (2 gamma)``).

    ``forward(model, x, target)`` returns the per-sample ``phi`` ``(B,)``.
    """

    _parameter_constraints = {
        "gamma": [Interval(float, 0.0, math.inf, closed="right")],
        "cost": [Options(("sq_l2",))],
        "inner_steps": [Interval(int, 0, math.inf, closed="left")],
        "inner_lr": [None, _POS[0]],
    }

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        gamma: float = 1.0,
        cost: str = "sq_l2",
        inner_steps: int = 15,
        inner_lr: float | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"gamma": gamma, "cost": cost, "inner_steps": inner_steps, "inner_lr": inner_lr},
            owner=type(self).__name__,
        )
        self.loss_fn = loss_fn if loss_fn is not None else _per_sample_ce
        self.gamma, self.cost, self.inner_steps = float(gamma), cost, int(inner_steps)
        self.inner_lr = float(inner_lr) if inner_lr is not None else (0.0 if math.isinf(gamma) else 0.5 / gamma)

    def worst_case(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor):
        """The (detached) inner maximiser ``z*`` of each sample."""
        x0 = x.detach()
        z = x0.clone()
        if math.isinf(self.gamma):
            return z
        dims = tuple(range(1, x.dim()))
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                z.requires_grad_(True)
                obj = self.loss_fn(model(z), target).sum() - self.gamma * ((z - x0) ** 2).sum(dims).sum()
                (grad,) = torch.autograd.grad(obj, z)
                z = (z + self.inner_lr * grad).detach()
        return z

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor):
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch (B, ...), got shape {tuple(x.shape)}")
        if target.shape[0] != x.shape[0]:
            raise ValueError(f"target must have {x.shape[0]} entries (one per sample), got {target.shape[0]}")
        check_finite(x, "x")
        loss = self.loss_fn(model(x), target)
        if math.isinf(self.gamma):
            return loss
        z = self.worst_case(model, x, target)
        dims = tuple(range(1, x.dim()))
        return self.loss_fn(model(z), target) - self.gamma * ((z - x.detach()) ** 2).sum(dims)


class RSSObjective(nn.Module):
    """The RSS objective as an ``engine.fit`` ``compute_loss(model, batch)``.

    ``batch = (x_labelled, y_labelled, x_unlabelled)``; returns
    ``mean_i phi_gamma(x_i, y_i) + lam * mean_j phi_gamma'(x'_j, argmax model(x'_j))``, the pseudo-label
    recomputed from the current model at every call. ``lam = 0`` is (robust) ERM; both robust
    losses with ``gamma = inf`` give plain self-training.

    Args:
        labelled: robust loss of the labelled term (default ``WassersteinRobustLoss(gamma=1)``).
        unlabelled: robust loss of the unlabelled term (default: the same object as ``labelled``).
        lam: weight ``lambda >= 0`` of the unlabelled term.
    """

    _parameter_constraints = {"lam": _NONNEG}

    def __init__(
        self,
        labelled: WassersteinRobustLoss | None = None,
        unlabelled: WassersteinRobustLoss | None = None,
        lam: float = 1.0,
    ) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"lam": lam}, owner=type(self).__name__)
        self.labelled = labelled if labelled is not None else WassersteinRobustLoss(gamma=1.0)
        self.unlabelled = unlabelled if unlabelled is not None else self.labelled
        self.lam = float(lam)

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], batch: Any) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 3:
            raise ValueError("batch must be (x_labelled, y_labelled, x_unlabelled)")
        x_l, y_l, x_u = batch
        loss = self.labelled(model, x_l, y_l).mean()
        if self.lam == 0.0 or x_u.shape[0] == 0:
            return loss
        with torch.no_grad():
            pseudo = model(x_u).argmax(-1)
        return loss + self.lam * self.unlabelled(model, x_u, pseudo).mean()

    __call__: Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- linear Gaussian-mixture estimator
def mean_estimator(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``normalize(sum_i y_i x_i)``: the classical estimator of a symmetric two-Gaussian mixture's mean
    direction (labels in ``{-1, +1}``), the ERM baseline and RSS's starting point."""
    _check_xy(x, y)
    w = (y.to(x.dtype)[:, None] * x).sum(0)
    return w / w.norm().clamp_min(torch.finfo(x.dtype).tiny)


def _check_xy(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (m, d) matrix, got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("y must hold labels in {-1, +1}")
    check_finite(x, "x")


def rss_linear_objective(
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    x_unlabelled: torch.Tensor | None = None,
    *,
    lam: float = 1.0,
    gamma: float = 1.0,
    gamma_u: float | None = None,
    slope: float = 1.0,
) -> torch.Tensor:
    """The RSS objective of a linear model ``w`` (not normalised here) with the ramp loss:
    ``mean phi_gamma(y <w, x>) + lam * mean phi_gamma'(|<w, x'>|)`` (closed-form ``phi``)."""
    wn = w.norm()
    loss = robust_ramp_linear(y.to(x.dtype) * (x @ w), wn, slope, gamma).mean()
    if x_unlabelled is None or x_unlabelled.shape[0] == 0 or lam == 0.0:
        return loss
    gu = gamma if gamma_u is None else gamma_u
    return loss + lam * robust_ramp_linear((x_unlabelled @ w).abs(), wn, slope, gu).mean()


_FIT_CONSTRAINTS = {
    "lam": _NONNEG,
    "gamma": [Interval(float, 0.0, math.inf, closed="both")],
    "gamma_u": [None, Interval(float, 0.0, math.inf, closed="both")],
    "slope": _POS,
    "steps": [Interval(int, 0, math.inf, closed="left")],
    "lr": _POS,
}


def fit_linear_rss(
    x: torch.Tensor,
    y: torch.Tensor,
    x_unlabelled: torch.Tensor | None = None,
    *,
    lam: float = 1.0,
    gamma: float = 1.0,
    gamma_u: float | None = None,
    slope: float = 1.0,
    steps: int = 300,
    lr: float = 0.05,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """RSS for a linear classifier on the unit sphere (the paper's Gaussian-mixture estimator).

    Full-batch Adam on ``v`` with ``w = v / ||v||`` (the ramp is scale-dependent, so ``w`` is kept
    on the sphere; ``v`` is renormalised after each step), from the :func:`mean_estimator` unless
    ``init`` is given. ``lam = 0`` is robust ERM; ``gamma = gamma_u = inf`` plain self-training.

    Args:
        x: labelled inputs ``(m, d)``; y: labels ``(m,)`` in ``{-1, +1}``.
        x_unlabelled: unlabelled (possibly shifted) inputs ``(n, d)`` or ``None``.
        lam, gamma, gamma_u, slope: the objective's ``lambda``, ``gamma``, ``gamma'`` (default
            ``gamma``) and the ramp slope.
        steps, lr: Adam steps and learning rate.
        init: starting direction ``(d,)``.

    Returns:
        The unit-norm ``w`` ``(d,)`` (detached).
    """
    validate_params(
        _FIT_CONSTRAINTS,
        {"lam": lam, "gamma": gamma, "gamma_u": gamma_u, "slope": slope, "steps": steps, "lr": lr},
        owner="fit_linear_rss",
    )
    _check_xy(x, y)
    if x_unlabelled is not None:
        if x_unlabelled.dim() != 2 or x_unlabelled.shape[1] != x.shape[1]:
            raise ValueError(f"x_unlabelled must have shape (n, {x.shape[1]}), got {tuple(x_unlabelled.shape)}")
        check_finite(x_unlabelled, "x_unlabelled")
    v0 = mean_estimator(x, y) if init is None else init.detach().to(x.dtype) / init.norm()
    v = v0.clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            w = v / v.norm()
            rss_linear_objective(w, x, y, x_unlabelled, lam=lam, gamma=gamma, gamma_u=gamma_u, slope=slope).backward()
            opt.step()
            with torch.no_grad():
                v /= v.norm()
    return (v / v.norm()).detach()
