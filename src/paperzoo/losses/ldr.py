"""Label distributionally robust (LDR) losses of Zhu, Ying & Yang (ICML 2023), "Label
Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and
Adaptivity" (arXiv:2112.14869); official code ``Optimization-AI/ICML2023_LDR``.

For scores ``f`` (K,) and label ``y``, with the margin-augmented differences
``d_k = c * 1[k != y] + f_k - f_y`` (so ``d_y = 0``), the LDR-KL loss is the worst case over
label distributions ``p`` in the simplex of ``sum_k p_k d_k - lam * KL(p || uniform)``, in closed
form a scaled log-mean-exp::

    psi_lam(f, y) = lam * log( (1/K) sum_k exp(d_k / lam) ),     p* = softmax(d / lam)

Limits: ``c = 0`` gives temperature-scaled cross-entropy, ``lam * (CE(f / lam, y) - log K)``;
``lam -> 0`` the Crammer-Singer hinge ``max_k d_k``; ``lam -> inf`` the mean ``(1/K) sum_k d_k``.
``psi`` can be negative (the 1/K inside the log).

Computed as ``lam * (logsumexp(z) - z_y - log K)`` with ``z = f / lam - (c / lam) e_y`` (the
log-mean-exp is shift invariant per row, so this equals it on ``d / lam``): a cross-entropy after
an O(B) adjustment of the target column. The normalisation, the margin and the log-mean-exp run
in one ``autograd.Function`` with a hand-written backward (``_LDRFunction``); ``_normalize`` and
``_psi`` are the plain-autograd definition it is tested against.

The official ``LDRLoss_V1`` first normalises the raw outputs per sample
(``normalize="softplus_mean"``: ``f <- softplus(f); f <- f / mean_k f``), which bounds the scores;
the official ``ALDRLoss_V1`` divides by the mean absolute value (``"l1_mean"``, optionally after a
softplus). ``normalize=None`` is the raw loss of the paper's definition.

ALDR-KL (adaptive): ``max_lam [psi_lam(f, y) - (alpha log K / (2 lam0)) (lam - lam0)^2]``, solved
as in the official code by one alternating step per call: ``p = softmax(f / lam_old) + p_eps``
(renormalised; no margin), ``lam_i = lam0 (1 - KL(p || 1/K) / (alpha log K))`` in
``[lam0 (1 - 1/alpha), lam0]``, detached, then ``psi_{lam_i}(f, y)`` minus the (gradient-free)
penalty. ``lam_old`` is the per-sample buffer of the previous visit when dataset indices are
given, else ``lam0`` (stateless).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import (
    Constraint,
    Interval,
    Options,
    check_labels,
    check_logits_target,
    validate_params,
)
from paperzoo.losses.base import ClassificationLoss, reduce_loss, upcast_low_precision

__all__ = [
    "ALDRKLLoss",
    "LDRKLLoss",
    "aldr_kl_loss",
    "ldr_kl_loss",
    "ldr_worst_case_distribution",
    "pairflip_label_noise",
    "uniform_label_noise",
]

NORMALIZATIONS = ("softplus_mean", "l1_mean", "softplus_l1_mean")

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "reduction": ClassificationLoss._parameter_constraints["reduction"],
    "lam": [Interval(float, 0, math.inf, closed="neither")],
    "lam0": [Interval(float, 0, math.inf, closed="neither")],
    "alpha": [Interval(float, 1, math.inf, closed="neither")],
    "margin": [Interval(float, 0, math.inf, closed="left")],
    "normalize": [None, Options(NORMALIZATIONS)],
    "p_eps": [Interval(float, 0, math.inf, closed="left")],
    "num_samples": [None, Interval(int, 1, math.inf, closed="left")],
    "eta": [Interval(float, 0, 1, closed="both")],
    "num_classes": [Interval(int, 2, math.inf, closed="left")],
}


# --------------------------------------------------------------------------- core (trusted inputs)
def _normalize(f: torch.Tensor, how: str | None) -> torch.Tensor:
    """The official codes' per-sample score normalisations (see the module docstring)."""
    if how is None:
        return f
    if how == "softplus_mean":
        f = F.softplus(f)
        return f / f.mean(dim=1, keepdim=True)
    if how == "softplus_l1_mean":
        f = F.softplus(f)
    return f / f.abs().mean(dim=1, keepdim=True)


def _psi(f: torch.Tensor, target: torch.Tensor, lam: torch.Tensor | float, margin: float) -> torch.Tensor:
    """Per-example ``lam * log mean_k exp(d_k / lam)``; ``lam`` a float or a (B,) tensor."""
    lam_col = lam[:, None] if isinstance(lam, torch.Tensor) else lam
    z = f / lam_col
    if margin != 0.0:
        if isinstance(lam, torch.Tensor):
            shift = (-margin / lam)[:, None].to(z.dtype)
        else:
            shift = torch.full_like(z[:, :1], -margin / lam)
        z = z.scatter_add(1, target[:, None], shift)
    return lam * (F.cross_entropy(z, target, reduction="none") - math.log(f.shape[1]))


class _LDRFunction(torch.autograd.Function):
    """Per-example ``lam_i * log mean_k exp(d_k / lam_i)`` of normalised scores, forward and a
    hand-written backward in one function: fewer (B, K) buffers and passes than autograd through
    the normalisation, the margin and the log-mean-exp (equal to ``_psi(_normalize(x))``, tested).

    With ``s`` the (softplus of the) scores, ``m`` its row mean (of ``|s|`` for the L1 variants)
    and ``r = 1 / (lam m)``, the scaled scores are ``z = r s - (c / lam) e_y`` and
    ``psi = lam (logsumexp(z) - z_y - log K)``. With ``G = lam (softmax(z) - e_y)`` (per unit of
    upstream gradient): ``dpsi/ds = r G - (r / (m K)) (G . s) ds_m``, where ``ds_m`` is 1 (mean of
    positive s) or sign(s) (mean of |s|), then times ``sigmoid(x)`` through the softplus.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, target: torch.Tensor, lam: torch.Tensor, margin: float, normalize: str | None
    ) -> torch.Tensor:
        k = x.shape[1]
        softplus = normalize in ("softplus_mean", "softplus_l1_mean")
        if softplus:
            z = F.softplus(x)
            m = z.mean(dim=1)  # softplus > 0: its mean is also the mean absolute value
        elif normalize == "l1_mean":
            z = x.clone()
            m = torch.linalg.vector_norm(x, 1, dim=1) / k
        else:
            z = x.clone()
            m = None
        r = 1.0 / lam if m is None else 1.0 / (lam * m)
        z.mul_(r[:, None])
        if margin != 0.0:
            z.scatter_add_(1, target[:, None], (-margin / lam)[:, None])
        top = z.amax(dim=1)
        z.sub_(top[:, None])  # z - max: the log-mean-exp is taken on shifted scores
        p = torch.exp(z)
        total = p.sum(dim=1)
        p.div_(total[:, None])  # softmax(z), kept for the backward
        loss = lam * (torch.log(total) - z.gather(1, target[:, None]).squeeze(1) - math.log(k))
        ctx.save_for_backward(z, p, top, r, lam, target, x, *(() if m is None else (m,)))
        ctx.margin, ctx.normalize, ctx.softplus = margin, normalize, softplus
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        z, p, top, r, lam, target, x, *rest = ctx.saved_tensors  # z is shifted by -top
        k = z.shape[1]
        w = grad_out * lam  # G = w (P - e_y)
        y = target[:, None]
        if rest:
            (m,) = rest
            p_y = p.gather(1, y).squeeze(1)
            z_y = z.gather(1, y).squeeze(1) + top
            # sum_j P_j s_j - s_y, with s = (z + (c / lam) e_y) / r (and sum_j P_j = 1)
            ps = (torch.linalg.vecdot(p, z) + top + (ctx.margin / lam) * p_y) / r
            s_y = (z_y + ctx.margin / lam) / r
            coupling = (r / (m * k)) * w * (ps - s_y)
        grad = p * (r * w)[:, None]
        grad.scatter_add_(1, y, -(r * w)[:, None])
        if rest:
            if ctx.normalize == "l1_mean":
                grad.addcmul_(torch.sign(x), coupling[:, None], value=-1.0)
            else:
                grad.sub_(coupling[:, None]).mul_(torch.sigmoid(x))
        return grad, None, None, None, None


def _ldr_fast(
    x: torch.Tensor, target: torch.Tensor, lam: torch.Tensor | float, margin: float, normalize: str | None
) -> torch.Tensor:
    """:class:`_LDRFunction` with ``lam`` a float or a (B,) tensor (treated as a constant)."""
    if not isinstance(lam, torch.Tensor):
        lam = torch.full((x.shape[0],), float(lam), dtype=x.dtype, device=x.device)
    return _LDRFunction.apply(x, target, lam.detach().to(x.dtype), margin, normalize)


def _aldr_lambdas(
    x: torch.Tensor, normalize: str | None, lam_old: torch.Tensor, lam0: float, alpha: float, p_eps: float
) -> torch.Tensor:
    """The official closed-form per-sample temperature (no gradient), from the old temperatures:
    ``p = softmax(f / lam_old) + p_eps`` renormalised, ``lam0 (1 - KL(p || 1/K) / (alpha log K))``
    with ``f`` the normalised scores; in-place over two (B, K) buffers."""
    k = x.shape[1]
    with torch.no_grad():
        if normalize in ("softplus_mean", "softplus_l1_mean"):
            q = F.softplus(x)
            q.mul_((1.0 / (q.mean(dim=1) * lam_old))[:, None])
        elif normalize == "l1_mean":
            q = x * (k / (torch.linalg.vector_norm(x, 1, dim=1) * lam_old))[:, None]
        else:
            q = x / lam_old[:, None]
        p = q.sub_(q.amax(dim=1, keepdim=True)).exp_()
        p.div_(p.sum(dim=1, keepdim=True)).add_(p_eps)
        p.div_(p.sum(dim=1, keepdim=True))
        kl = torch.linalg.vecdot(p, torch.log(p)) + math.log(k)
        return lam0 - lam0 * kl / (alpha * math.log(k))


def _aldr(
    x: torch.Tensor,
    target: torch.Tensor,
    lam_old: torch.Tensor,
    lam0: float,
    alpha: float,
    margin: float,
    normalize: str | None,
    p_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-example ALDR-KL losses, the new per-sample temperatures) of raw scores ``x``."""
    with torch.no_grad():
        lam = _aldr_lambdas(x, normalize, lam_old, lam0, alpha, p_eps).to(x.dtype)
    k = x.shape[1]
    penalty = (alpha * math.log(k) / (2.0 * lam0)) * (lam - lam0) ** 2
    return _ldr_fast(x, target, lam, margin, normalize) - penalty, lam


def _check_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Integer (B,) targets, or one-hot (B, K) as in the official API (converted to indices)."""
    if (
        isinstance(target, torch.Tensor)
        and isinstance(logits, torch.Tensor)
        and target.dim() == 2
        and target.shape == logits.shape
    ):
        if (
            target.is_complex()
            or not bool(((target == 0) | (target == 1)).all())
            or not bool((target.sum(dim=1) == 1).all())
        ):
            raise ValueError("target given as (B, K) must be one-hot: 0/1 entries, one 1 per row")
        return target.argmax(dim=1)
    return target


# --------------------------------------------------------------------------- functional
def ldr_kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    lam: float = 10.0,
    margin: float = 0.1,
    normalize: str | None = "softplus_mean",
    reduction: str = "mean",
) -> torch.Tensor:
    """LDR-KL loss (Zhu, Ying & Yang, 2023), ``lam * log mean_k exp(d_k / lam)``.

    Args:
        logits: (B, K) raw scores.
        target: (B,) integer labels in [0, K), or (B, K) one-hot.
        lam: the KL regularisation weight (temperature) lambda, > 0 (official default 10).
        margin: the margin c of ``d_k = c 1[k != y] + f_k - f_y``, >= 0 (official 0.1).
        normalize: "softplus_mean" (``LDRLoss_V1``), "l1_mean", "softplus_l1_mean" or None (raw).
        reduction: "mean", "sum" or "none".
    """
    check_logits_target(logits, t := _check_target(logits, target))
    params = {"lam": lam, "margin": margin, "normalize": normalize, "reduction": reduction}
    validate_params(_PARAMETER_CONSTRAINTS, params, owner="ldr_kl_loss")
    x = upcast_low_precision(logits)
    return reduce_loss(_ldr_fast(x, t, float(lam), float(margin), normalize), reduction)


def aldr_kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    lam0: float = 10.0,
    alpha: float = 2.0,
    margin: float = 0.1,
    normalize: str | None = "l1_mean",
    p_eps: float = 1e-5,
    lambdas: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """ALDR-KL loss, stateless: one alternating step from ``lambdas`` (B,) (default: all ``lam0``).

    Args as in :func:`ldr_kl_loss`, plus ``lam0`` (> 0), ``alpha`` (> 1, keeps the temperatures
    positive), ``p_eps`` (added to the worst-case distribution before its KL, official 1e-5).
    ``normalize`` defaults to the official ``ALDRLoss_V1``'s mean-absolute-value division.
    """
    check_logits_target(logits, t := _check_target(logits, target))
    params = {
        "lam0": lam0, "alpha": alpha, "margin": margin, "normalize": normalize, "p_eps": p_eps, "reduction": reduction,
    }  # fmt: skip
    validate_params(_PARAMETER_CONSTRAINTS, params, owner="aldr_kl_loss")
    f = upcast_low_precision(logits)
    if lambdas is None:
        lam_old = torch.full((f.shape[0],), float(lam0), dtype=f.dtype, device=f.device)
    else:
        if not isinstance(lambdas, torch.Tensor) or lambdas.shape != (f.shape[0],) or not lambdas.is_floating_point():
            raise ValueError(f"lambdas must be a floating-point tensor of shape ({f.shape[0]},)")
        if not bool((lambdas > 0).all()):
            raise ValueError("lambdas must be positive")
        lam_old = lambdas.to(f.dtype)
    loss, _ = _aldr(f, t, lam_old, float(lam0), float(alpha), float(margin), normalize, float(p_eps))
    return reduce_loss(loss, reduction)


def ldr_worst_case_distribution(
    logits: torch.Tensor, target: torch.Tensor, lam: float = 10.0, margin: float = 0.1, normalize: str | None = None
) -> torch.Tensor:
    """The maximiser ``p* = softmax(d / lam)`` (B, K) of the LDR-KL problem (raw scores by default)."""
    check_logits_target(logits, t := _check_target(logits, target))
    validate_params(
        _PARAMETER_CONSTRAINTS, {"lam": lam, "margin": margin, "normalize": normalize}, owner="ldr_worst_case"
    )
    f = _normalize(upcast_low_precision(logits), normalize)
    d = f - f.gather(1, t[:, None]) + margin
    d = d.scatter(1, t[:, None], 0.0)
    return torch.softmax(d / lam, dim=1)


# --------------------------------------------------------------------------- modules
class LDRKLLoss(ClassificationLoss):
    """LDR-KL loss (Zhu, Ying & Yang, ICML 2023): ``lam * log mean_k exp(d_k / lam)`` with
    ``d_k = c 1[k != y] + f_k - f_y`` on per-sample normalised scores ``f``.

    Args:
        lam: KL regularisation weight lambda (official default 10; the paper's grid {0.1, 1, 10}).
        margin: c (official 0.1).
        normalize: "softplus_mean" (official ``LDRLoss_V1``, default), "l1_mean",
            "softplus_l1_mean" or None (the raw loss).
        reduction: "mean", "sum" or "none".

    ``forward(logits (B, K), target (B,) or one-hot (B, K), weight=None)``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("reduction", "lam", "margin", "normalize")
    }

    def __init__(
        self, lam: float = 10.0, margin: float = 0.1, normalize: str | None = "softplus_mean", reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self._validate_params(lam=lam, margin=margin, normalize=normalize)
        self.lam, self.margin, self.normalize = float(lam), float(margin), normalize

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(logits, _check_target(logits, target), weight)

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _ldr_fast(logits, target, self.lam, self.margin, self.normalize)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, margin={self.margin}, normalize={self.normalize!r}, reduction={self.reduction!r}"


class ALDRKLLoss(ClassificationLoss):
    """ALDR-KL loss (Zhu, Ying & Yang, ICML 2023): LDR-KL with a per-sample temperature
    ``lam_i = lam0 (1 - KL(p_i || 1/K) / (alpha log K))`` chosen adaptively (closed form, one
    alternating step per call, as the official ``ALDRLoss_V1``), minus the quadratic penalty
    ``(alpha log K / (2 lam0)) (lam_i - lam0)^2`` (no gradient: ``lam_i`` is detached).

    Args:
        num_samples: size of the training set, for the persistent buffer ``lambdas``
            (initialised to ``lam0``); ``None``: stateless only.
        lam0: the prior temperature (official 10).
        alpha: > 1 (official 2); ``lam_i`` lies in ``[lam0 (1 - 1/alpha), lam0]``.
        margin: c (official 0.1).
        normalize: "l1_mean" (official, default), "softplus_l1_mean" (official for CIFAR-100),
            "softplus_mean" or None.
        p_eps: added to the worst-case distribution before its KL (official 1e-5).
        reduction: "mean", "sum" or "none".

    ``forward(logits (B, K), target, weight=None, index=None)``: with ``index`` (B,) dataset
    indices, the old temperatures are read from and the new ones written to ``lambdas[index]``
    (detached); without, every sample starts from ``lam0`` and nothing is stored.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name]
        for name in ("reduction", "num_samples", "lam0", "alpha", "margin", "normalize", "p_eps")
    }

    lambdas: torch.Tensor

    def __init__(
        self,
        num_samples: int | None = None,
        lam0: float = 10.0,
        alpha: float = 2.0,
        margin: float = 0.1,
        normalize: str | None = "l1_mean",
        p_eps: float = 1e-5,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self._validate_params(
            num_samples=num_samples, lam0=lam0, alpha=alpha, margin=margin, normalize=normalize, p_eps=p_eps
        )
        self.num_samples = num_samples
        self.lam0, self.alpha, self.margin, self.p_eps = float(lam0), float(alpha), float(margin), float(p_eps)
        self.normalize = normalize
        self.register_buffer("lambdas", torch.full((num_samples or 0,), float(lam0), dtype=torch.float64))
        self._index: torch.Tensor | None = None

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        target = _check_target(logits, target)
        if index is not None:
            if self.num_samples is None:
                raise ValueError("index needs ALDRKLLoss(num_samples=...) to hold the per-sample temperatures")
            check_logits_target(logits, target)
            check_labels(index, logits.shape[0], "index", self.num_samples)
        self._index = index
        try:
            return super().forward(logits, target, weight)
        finally:
            self._index = None

    def per_example(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        index = self._index
        if index is None:
            lam_old = torch.full((logits.shape[0],), self.lam0, dtype=logits.dtype, device=logits.device)
        else:
            index = index.to(self.lambdas.device)
            lam_old = self.lambdas[index].to(logits.dtype)
        loss, lam = _aldr(logits, target, lam_old, self.lam0, self.alpha, self.margin, self.normalize, self.p_eps)
        if index is not None:
            self.lambdas[index] = lam.detach().to(self.lambdas.dtype)
        return loss

    def current_lambdas(self) -> torch.Tensor:
        """A copy of the per-sample temperatures (``lam0`` where a sample was never seen)."""
        return self.lambdas.detach().clone()

    def extra_repr(self) -> str:
        return (
            f"num_samples={self.num_samples}, lam0={self.lam0}, alpha={self.alpha}, margin={self.margin}, "
            f"normalize={self.normalize!r}, reduction={self.reduction!r}"
        )


# --------------------------------------------------------------------------- label noise
def _check_noise_args(y: np.ndarray, num_classes: int, eta: float, owner: str) -> np.ndarray:
    validate_params(_PARAMETER_CONSTRAINTS, {"num_classes": num_classes, "eta": eta}, owner=owner)
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"y must hold labels in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return y


def uniform_label_noise(
    y: np.ndarray, num_classes: int, eta: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The official "uniform" noise: with probability ``eta`` a label is replaced by a class
    drawn uniformly from all K (possibly the same). Returns (noisy labels, mask of the
    replaced entries, which may still carry the true class)."""
    y = _check_noise_args(y, num_classes, eta, "uniform_label_noise")
    mask = rng.random(y.shape[0]) < eta
    noisy = y.copy()
    noisy[mask] = rng.integers(0, num_classes, size=int(mask.sum()))
    return noisy, mask


def pairflip_label_noise(
    y: np.ndarray, num_classes: int, eta: float, rng: np.random.Generator, pairs: dict[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The official "class-dependent" noise: with probability ``eta`` a label ``y`` becomes
    ``pairs[y]`` (default ``(y + 1) mod K``). Returns (noisy labels, mask of the flipped entries)."""
    y = _check_noise_args(y, num_classes, eta, "pairflip_label_noise")
    mapping = np.array([(pairs or {}).get(k, (k + 1) % num_classes) for k in range(num_classes)])
    if mapping.min() < 0 or mapping.max() >= num_classes:
        raise ValueError(f"pairs must map classes into [0, {num_classes})")
    mask = rng.random(y.shape[0]) < eta
    noisy = np.where(mask, mapping[y], y)
    return noisy, mask


def _reference_ldr() -> Any:
    """The official ``LDRLoss_V1`` formula written naively (softplus, mean normalisation, margin
    matrix, max-shifted log-mean-exp; lam = 10, c = 0.1), for ``paperzoo bench losses``."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        y = F.one_hot(target, k).to(logits.dtype)
        f = F.softplus(logits)
        f = f / f.mean(dim=1, keepdim=True)
        d = 0.1 * (1 - y) + f - (f * y).sum(dim=1, keepdim=True)
        m = (d / 10.0).max(dim=1, keepdim=True)[0].detach()
        return (10.0 * (torch.log(torch.exp(d / 10.0 - m).mean(dim=1)) + m[:, 0])).mean()

    return loss
