"""Hyperbolic category discovery, HypCD (Liu, He & Han, CVPR 2025): the Poincaré-ball projection,
distances, hyperbolic classifier and the distance / angle contrastive terms of HypSimGCD, on geoopt.

Geometry (curvature ``-c``, ball radius ``1 / sqrt(c)``; the official scripts use ``c = 0.1``),
built on :class:`geoopt.PoincareBall` (``expmap0``, ``mobius_matvec``, ``mobius_add``, ``dist``):

* :class:`FeatureClip` ``clip_r(x) = min(1, r / (|x| + 1e-5)) x`` (clipped hyperbolic classifiers,
  Guo et al. 2022) and :class:`ToPoincare` ``z = proj(exp_0(clip_r(h)))`` with the official
  projection radius ``(1 - 1e-3) / sqrt(c)``;
* :func:`poincare_distance_matrix`: ``d_c(x, y) = arcosh(1 + 2c|x - y|^2 / ((1 - c|x|^2)(1 - c|y|^2)))
  / sqrt(c)`` for all pairs, one Gram matrix instead of the official (N, M, D) Möbius-addition tensor;
* :class:`HypLinear` ``o = proj((W (x)_c z) (+) exp_0(b))``; the official code adds the bias at
  curvature 1 (``pmath.mobius_add`` called without ``c``): ``bias_curvature="official"`` keeps that
  quirk, ``"consistent"`` adds it at ``c``;
* :class:`HyperbolicHead` (``forward(h) -> (z, logits)``): the head swap of HypSimGCD, a drop-in for
  :class:`~paperzoo.discovery.heads.DINOHead` with no projector: ``z = ToPoincare(h)`` and the K
  coordinates of ``HypLinear(z)`` as the logits of SimGCD's classification terms.

Losses: InfoNCE and SupCon with the similarity either ``-d_c`` ("distance") or the cosine of the
ball coordinates ("angle", temperature scaled by ``hts``); :func:`distance_angle_schedule` moves
the weight from the angle to the distance losses over training, ``L_rep = (1 - w_d) L_ang + w_d
L_dist``. :class:`HypSimGCDLoss` is SimGCD's loss (:class:`~paperzoo.discovery.losses.SimGCDLoss`,
unchanged classification terms) with its two contrastive terms replaced by these mixtures, so its
``rep_unsup`` / ``rep_sup`` and total follow the paper's ``L = (1 - lam)(L_cls^u + eps L_ent) + lam
L_cls^s + L_rep``. With ``project=True`` it first maps Euclidean projections onto the ball (the HypGCD
variant's ``MLP -> ToPoincare``), which lets it run on an ordinary DINOHead model.

Training: :func:`train_hypgcd` is the SimGCD trainer's recipe (its loader, sampler and
:class:`~paperzoo.discovery.trainer.GCDStep` on :func:`paperzoo.engine.fit`) with the official pair of
optimisers: geoopt's ``RiemannianAdam`` (lr 0.01, constant) for the :class:`HypLinear` classifier,
SGD with the per-epoch cosine schedule for everything else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import geoopt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params
from paperzoo.discovery.losses import SimGCDLoss, _check_labelled, _check_two_view

__all__ = [
    "FeatureClip",
    "HypLinear",
    "HypSimGCDLoss",
    "HyperbolicContrastive",
    "HyperbolicHead",
    "ToPoincare",
    "check_in_ball",
    "class_norms",
    "distance_angle_schedule",
    "hyperbolic_infonce",
    "hyperbolic_supcon",
    "poincare_distance_matrix",
    "similarity_matrix",
    "train_hypgcd",
]

_POSITIVE = [Interval(float, 0.0, math.inf, closed="neither")]
_PROJ_EPS = 1e-3  # official hyptorch projection: max norm (1 - 1e-3) / sqrt(c)
_ARTANH_EPS = 1e-5


def _check_c(c: float, owner: str) -> float:
    validate_params({"c": _POSITIVE}, {"c": c}, owner=owner)
    return float(c)


def _ball(c: float) -> geoopt.PoincareBall:
    return geoopt.PoincareBall(c=c)


def project(x: torch.Tensor, c: float) -> torch.Tensor:
    """The official projection: rescale rows of norm above ``(1 - 1e-3) / sqrt(c)`` onto that norm."""
    maxnorm = (1 - _PROJ_EPS) / math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-5)
    return torch.where(norm > maxnorm, x / norm * maxnorm, x)


def check_in_ball(x: torch.Tensor, c: float, name: str = "x") -> None:
    """Raise ``ValueError`` unless every row of ``x`` is finite and strictly inside the ball of radius
    ``1 / sqrt(c)``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor")
    check_finite(x, name)
    if x.numel() == 0:
        return
    radius = 1 / math.sqrt(c)
    worst = float(x.detach().norm(dim=-1).max())
    if worst >= radius:
        raise ValueError(
            f"{name} has points outside the Poincaré ball of curvature -{c:g}: norm {worst:.4g} >= 1/sqrt(c) = "
            f"{radius:.4g}; map Euclidean features with ToPoincare first"
        )


# --------------------------------------------------------------------------- projection
class FeatureClip(nn.Module):
    """``clip_r(x) = min(1, r / (|x| + 1e-5)) x`` row-wise (Guo et al. 2022, as HypCD's ``ToPoincare``)."""

    def __init__(self, radius: float = 2.0) -> None:
        validate_params({"radius": _POSITIVE}, {"radius": radius}, owner=type(self).__name__)
        super().__init__()
        self.radius = float(radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=-1, keepdim=True)
        return torch.minimum(torch.ones_like(norm), self.radius / (norm + 1e-5)) * x

    def extra_repr(self) -> str:
        return f"radius={self.radius:g}"


class ToPoincare(nn.Module):
    """``z = proj(exp_0(clip_r(h)))``: Euclidean features (N, D) onto the Poincaré ball of curvature
    ``-c`` (geoopt's ``expmap0``; the official projection radius ``(1 - 1e-3) / sqrt(c)``; the
    Riemannian-gradient rescaling of the official ``ToPoincare`` is off in HypSimGCD and not provided).

    Args:
        c: curvature magnitude (> 0; 0.1 in the official scripts).
        clip_radius: ``r`` of the feature clipping (None: no clipping).
    """

    def __init__(self, c: float = 0.1, clip_radius: float | None = 2.0) -> None:
        super().__init__()
        self.c = _check_c(c, type(self).__name__)
        self.clip = FeatureClip(clip_radius) if clip_radius is not None else nn.Identity()
        self.ball = _ball(self.c)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not isinstance(h, torch.Tensor) or not h.is_floating_point() or h.ndim < 1:
            raise TypeError("h must be a floating-point torch.Tensor of shape (N, D)")
        check_finite(h, "h")
        return project(self.ball.expmap0(self.clip(h), project=False), self.c)


# --------------------------------------------------------------------------- distances
def poincare_distance_matrix(x: torch.Tensor, y: torch.Tensor | None = None, c: float = 0.1) -> torch.Tensor:
    """All pairwise Poincaré distances (N, M) of points ``x`` (N, D) and ``y`` (M, D) (default ``x``)
    in the ball of curvature ``-c``, by the arcosh closed form (equal to geoopt's ``dist`` on
    broadcast pairs). Raises ``ValueError`` for points outside the ball or ``c <= 0``."""
    c = _check_c(c, "poincare_distance_matrix")
    same = y is None
    y = x if y is None else y
    for t, name in ((x, "x"), (y, "y")):
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a (N, D) tensor, got {getattr(t, 'shape', type(t))}")
        check_in_ball(t, c, name)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    sq = (xx[:, None] + yy[None] - 2 * x @ y.T).clamp_min(0.0)
    if same:  # exact zeros on the diagonal (and no sqrt(0) gradient there)
        sq = sq * (1 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))
    denom = (1 - c * xx)[:, None] * (1 - c * yy)[None]
    arg = 1 + 2 * c * sq / denom
    # arcosh(1 + a) = log(1 + a + sqrt(a (a + 2))): a stable form with a finite gradient away from a = 0
    a = arg - 1
    return torch.log1p(a + torch.sqrt((a * (a + 2)).clamp_min(1e-30))) / math.sqrt(c)


def similarity_matrix(z: torch.Tensor, similarity: str, c: float) -> torch.Tensor:
    """``-d_c(z_i, z_j)`` (``"distance"``) or ``cos(z_i, z_j)`` (``"angle"``) for all pairs of rows."""
    if similarity == "distance":
        return -poincare_distance_matrix(z, None, c)
    zn = F.normalize(z, dim=1)
    return zn @ zn.T


# --------------------------------------------------------------------------- classifier
def _mobius_add_official(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """hyptorch's Möbius addition with its ``+1e-5`` in the denominator and no projection (geoopt
    has no such eps and always projects onto its own ball, hence this one formula)."""
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return num / (1 + 2 * c * xy + c**2 * x2 * y2 + 1e-5)


class HypLinear(nn.Module):
    """Hyperbolic linear layer ``o = proj((W (x)_c z) (+) exp_0(b))`` of points ``z`` (N, in) in the
    ball to points (N, out) in the ball (hyptorch's ``HypLinear``, HypCD's classifier).

    Init as the official code: ``kaiming_uniform_(a=sqrt(5))`` for ``W``, ``U(-1/sqrt(in), 1/sqrt(in))``
    for ``b``. ``bias_curvature="official"`` adds the bias at curvature 1 (the released code calls
    ``mobius_add`` without ``c``), then projects onto the ``c``-ball; ``"consistent"`` uses geoopt's
    ``mobius_add`` at ``c``, which tends to an ordinary affine layer ``Wz + b`` as ``c -> 0``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, c: float = 0.1, bias: bool = True, bias_curvature: str = "official"
    ) -> None:
        validate_params(
            {
                "in_dim": [Interval(int, 1, math.inf, closed="left")],
                "out_dim": [Interval(int, 1, math.inf, closed="left")],
                "bias_curvature": [Options(("official", "consistent"))],
            },
            {"in_dim": in_dim, "out_dim": out_dim, "bias_curvature": bias_curvature},
            owner=type(self).__name__,
        )
        super().__init__()
        self.c = _check_c(c, type(self).__name__)
        self.in_dim, self.out_dim, self.bias_curvature = in_dim, out_dim, bias_curvature
        self.ball = _ball(self.c)
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_dim)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.in_dim:
            raise ValueError(f"z must be (N, {self.in_dim}) points in the ball, got {tuple(getattr(z, 'shape', ()))}")
        check_in_ball(z, self.c, "z")
        mv = project(self.ball.mobius_matvec(self.weight, z, project=False), self.c)
        if self.bias is None:
            return mv
        b = self.ball.expmap0(self.bias, project=False)
        if self.bias_curvature == "official":
            return project(_mobius_add_official(mv, b.expand_as(mv), 1.0), self.c)
        return project(self.ball.mobius_add(mv, b.expand_as(mv), project=False), self.c)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, c={self.c:g}, bias_curvature={self.bias_curvature}"


class HyperbolicHead(nn.Module):
    """HypSimGCD's head, in place of :class:`~paperzoo.discovery.heads.DINOHead`: ``forward(h) -> (z,
    logits)`` with ``z = ToPoincare(c, clip_radius)(h)`` (no projector) and ``logits = HypLinear(in_dim,
    n_classes, c)(z)`` (each ``|logit| < 1/sqrt(c)``), so every SimGCD term and
    :func:`~paperzoo.discovery.trainer.predict` work unchanged."""

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        c: float = 0.1,
        clip_radius: float | None = 2.0,
        bias_curvature: str = "official",
    ) -> None:
        super().__init__()
        self.to_ball = ToPoincare(c, clip_radius)
        self.classifier = HypLinear(in_dim, n_classes, c, bias_curvature=bias_curvature)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.to_ball(h)
        return z, self.classifier(z)


# --------------------------------------------------------------------------- contrastive terms
def hyperbolic_infonce(z: torch.Tensor, c: float = 0.1, similarity: str = "distance", temperature: float = 1.0):
    """InfoNCE over ball points ``z`` (2B, D) (two views stacked): the positive of view ``i`` is the
    other view of its image, the negatives the other 2B - 2 views, the similarity ``-d_c`` or the
    cosine, divided by ``temperature``; mean over the 2B anchors."""
    b = _check_two_view(z, "z")
    _check_contrastive_args(c, similarity, temperature, "hyperbolic_infonce")
    check_in_ball(z, c, "z")
    n = 2 * b
    logits = similarity_matrix(z, similarity, c) / temperature
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, -math.inf)
    pos = torch.arange(n, device=z.device).roll(b)
    return F.cross_entropy(logits, pos)


def hyperbolic_supcon(
    z: torch.Tensor,
    labels: torch.Tensor,
    mask_lab: torch.Tensor,
    c: float = 0.1,
    similarity: str = "distance",
    temperature: float = 0.07,
) -> torch.Tensor:
    """SupCon ("all" mode, HypCD's form without the ``tau / tau_base`` factor) over both views of the
    labelled images: positives share the label, the denominator runs over all other labelled views;
    ``-mean_i mean_{p in P(i)} log softmax_i(sim / temperature)_p``. 0 (in the graph) without
    labelled images."""
    b = _check_two_view(z, "z")
    _check_labelled(labels, mask_lab, b, None)
    _check_contrastive_args(c, similarity, temperature, "hyperbolic_supcon")
    check_in_ball(z, c, "z")
    if not bool(mask_lab.any()):
        return z.sum() * 0.0
    zl = torch.cat([z[:b][mask_lab], z[b:][mask_lab]])
    lab = labels[mask_lab].repeat(2)
    n = zl.shape[0]
    logits = similarity_matrix(zl, similarity, c) / temperature
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    log_prob = logits - torch.logsumexp(logits.masked_fill(eye, -math.inf), dim=1, keepdim=True)
    pos = (lab[:, None] == lab[None]) & ~eye
    return -((log_prob * pos).sum(1) / pos.sum(1)).mean()


def _check_contrastive_args(c: float, similarity: str, temperature: float, owner: str) -> None:
    validate_params(
        {"c": _POSITIVE, "similarity": [Options(("distance", "angle"))], "temperature": _POSITIVE},
        {"c": c, "similarity": similarity, "temperature": temperature},
        owner=owner,
    )


class HyperbolicContrastive(nn.Module):
    """``kind="infonce"`` -> :func:`hyperbolic_infonce`, ``"supcon"`` -> :func:`hyperbolic_supcon`,
    with ``similarity="distance"`` (``-d_c``) or ``"angle"`` (cosine) and ``temperature``."""

    def __init__(self, kind: str = "infonce", similarity: str = "distance", c: float = 0.1, temperature: float = 1.0):
        validate_params({"kind": [Options(("infonce", "supcon"))]}, {"kind": kind}, owner=type(self).__name__)
        _check_contrastive_args(c, similarity, temperature, type(self).__name__)
        super().__init__()
        self.kind, self.similarity, self.c, self.temperature = kind, similarity, float(c), float(temperature)

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, mask_lab: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.kind == "infonce":
            return hyperbolic_infonce(z, self.c, self.similarity, self.temperature)
        if labels is None or mask_lab is None:
            raise ValueError("supcon needs labels and mask_lab")
        return hyperbolic_supcon(z, labels, mask_lab, self.c, self.similarity, self.temperature)


def distance_angle_schedule(epoch: int, start: int = 0, end: int = 200, max_weight: float = 1.0) -> float:
    """Weight of the distance losses at ``epoch``: ``clip((epoch - (start - 1)) / ((end - 1) - (start -
    1)), 0, 1) * max_weight`` (the official ``hyper_start_epoch`` / ``hyper_end_epoch`` ramp).

    >>> distance_angle_schedule(0), distance_angle_schedule(199)
    (0.005, 1.0)
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    validate_params(
        {"start": [Interval(int, 0, math.inf, closed="left")], "max_weight": [Interval(float, 0, 1, closed="both")]},
        {"start": start, "max_weight": max_weight},
        owner="distance_angle_schedule",
    )
    if not isinstance(end, (int, np.integer)) or end <= start:
        raise ValueError(f"end must be an int larger than start={start}, got {end!r}")
    return float(min(max((epoch - (start - 1)) / ((end - 1) - (start - 1)), 0.0), 1.0) * max_weight)


class _MixedContrastive(nn.Module):
    """``(1 - w_d) L^angle + w_d L^distance`` of one kind, the weight of the epoch set by the owner."""

    def __init__(self, kind: str, c: float, temperature: float, hts: float, to_ball: nn.Module | None) -> None:
        super().__init__()
        self.dist = HyperbolicContrastive(kind, "distance", c, temperature)
        self.angle = HyperbolicContrastive(kind, "angle", c, temperature * hts)
        self.to_ball = to_ball
        self.weight = 0.0

    def forward(self, z: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if self.to_ball is not None:
            z = self.to_ball(z)
        w = self.weight
        if w == 0.0:
            return self.angle(z, *args)
        if w == 1.0:
            return self.dist(z, *args)
        return (1 - w) * self.angle(z, *args) + w * self.dist(z, *args)


class HypSimGCDLoss(SimGCDLoss):
    """HypSimGCD's objective: SimGCD's loss with its contrastive terms replaced by HypCD's
    distance / angle mixtures on the ball points ``z``; ``forward(z, logits, labels, mask_lab, epoch)
    -> dict`` as :class:`~paperzoo.discovery.losses.SimGCDLoss` (``rep_unsup`` = ``(1 - w_d)
    L_u^ang + w_d L_u^dist``, ``rep_sup`` likewise, ``w_d = distance_angle_schedule(epoch,
    *schedule)``), so ``total = (1 - lam)(L_cls^u + eps L_ent) + lam L_cls^s + L_rep``.

    Args:
        c: curvature magnitude (0.1).
        hts: scale of the angle losses' temperatures (0.3 for DINO on CUB).
        schedule: ``(start, end, max_weight)`` of the distance weight (official 0, 200, 1.0).
        memax_weight: ``epsilon`` (1.0 in all HypCD scripts).
        project: map ``z`` onto the ball first with ``ToPoincare(c, clip_radius)`` (for Euclidean
            projections, e.g. a DINOHead model: the HypGCD variant's ``MLP -> ToPoincare``);
            without it ``z`` must already lie in the ball (a :class:`HyperbolicHead`).
        clip_radius: ``r`` of that projection.
        lambda_sup, student_temp, teacher_temp, tau_unsup, tau_sup: as SimGCDLoss.
    """

    def __init__(
        self,
        c: float = 0.1,
        hts: float = 0.3,
        schedule: Sequence[float] = (0, 200, 1.0),
        memax_weight: float = 1.0,
        project: bool = False,
        clip_radius: float | None = 2.0,
        lambda_sup: float = 0.35,
        student_temp: float = 0.1,
        teacher_temp: Sequence[float] = (0.07, 0.04, 30),
        tau_unsup: float = 1.0,
        tau_sup: float = 0.07,
    ) -> None:
        super().__init__(lambda_sup, memax_weight, student_temp, teacher_temp, tau_unsup, tau_sup)
        validate_params({"hts": _POSITIVE}, {"hts": hts}, owner=type(self).__name__)
        self.c = _check_c(c, type(self).__name__)
        start, end, max_weight = schedule
        distance_angle_schedule(0, int(start), int(end), float(max_weight))  # validates the schedule
        self.schedule = (int(start), int(end), float(max_weight))
        to_ball = ToPoincare(c, clip_radius) if project else None
        self.rep_unsup = _MixedContrastive("infonce", c, tau_unsup, hts, to_ball)
        self.rep_sup = _MixedContrastive("supcon", c, tau_sup, hts, to_ball)

    def forward(
        self, z: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, mask_lab: torch.Tensor, epoch: int
    ) -> dict[str, torch.Tensor]:
        w = distance_angle_schedule(epoch, *self.schedule)
        self.rep_unsup.weight = self.rep_sup.weight = w
        terms = super().forward(z, logits, labels, mask_lab, epoch)
        terms["distance_weight"] = torch.tensor(w)  # logged only: the total is already formed
        return terms


@torch.no_grad()
def class_norms(z: torch.Tensor, y: torch.Tensor | np.ndarray, c: float = 0.1) -> torch.Tensor:
    """Mean hyperbolic distance to the origin ``d_c(0, z) = 2 artanh(sqrt(c)|z|) / sqrt(c)`` per class
    (``max(y) + 1`` entries; NaN for an absent class): the paper's hierarchy reading, where generic
    (e.g. new or ambiguous) samples sit nearer the origin."""
    c = _check_c(c, "class_norms")
    check_in_ball(z, c, "z")
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    if y_t.shape != (z.shape[0],):
        raise ValueError(f"y must have shape ({z.shape[0]},), got {tuple(y_t.shape)}")
    r = 2 * torch.atanh((math.sqrt(c) * z.norm(dim=1)).clamp(max=1 - _ARTANH_EPS)) / math.sqrt(c)
    k = int(y_t.max()) + 1
    s = torch.zeros(k, dtype=z.dtype).index_add_(0, y_t, r)
    n = torch.zeros(k, dtype=z.dtype).index_add_(0, y_t, torch.ones_like(r))
    return s / n


class _SGDWithRiemannianAdam:
    """One optimiser for :func:`paperzoo.engine.fit` holding two: SGD with the per-epoch cosine
    schedule for the backbone, geoopt's ``RiemannianAdam`` at a constant rate for the hyperbolic
    classifier (HypCD's ``train_HypSimGCD.py``); ``step`` steps both and the SGD schedule."""

    def __init__(self, sgd: torch.optim.Optimizer, adam: torch.optim.Optimizer, sched: object) -> None:
        self.sgd, self.adam, self.sched = sgd, adam, sched
        self.param_groups = sgd.param_groups + adam.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.sgd.zero_grad(set_to_none=set_to_none)
        self.adam.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.sgd.step()
        self.adam.step()
        self.sched.step()  # type: ignore[attr-defined]

    def state_dict(self) -> dict:
        return {"sgd": self.sgd.state_dict(), "adam": self.adam.state_dict(), "sched": self.sched.state_dict()}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict) -> None:
        self.sgd.load_state_dict(state["sgd"])
        self.adam.load_state_dict(state["adam"])
        self.sched.load_state_dict(state["sched"])  # type: ignore[attr-defined]


def train_hypgcd(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    views: object,
    objective: nn.Module,
    *,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 0.1,
    hyperbolic_lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-5,
    seed: int = 0,
    progress: bool = False,
    log_terms: bool = False,
) -> tuple[object, object]:
    """:func:`~paperzoo.discovery.trainer.train_gcd` with HypCD's two optimisers: the parameters of
    every :class:`HypLinear` in ``model`` get ``geoopt.optim.RiemannianAdam(lr=hyperbolic_lr,
    stabilize=10)`` at a constant rate (plain Adam on these Euclidean tensors), the rest the trainer's
    SGD with its per-epoch cosine schedule. Built from the trainer's pieces (loader, sampler, step)
    on :func:`paperzoo.engine.fit`; returns ``(history, step)`` like ``train_gcd``."""
    from paperzoo.discovery.trainer import _TRAIN_CONSTRAINTS, GCDStep, cosine_per_epoch, gcd_loader, param_groups
    from paperzoo.engine import TrainConfig, fit

    validate_params(
        {**_TRAIN_CONSTRAINTS, "hyperbolic_lr": _POSITIVE},
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "hyperbolic_lr": hyperbolic_lr,
        },  # fmt: skip
        owner="train_hypgcd",
    )
    hyp = {id(p) for m in model.modules() if isinstance(m, HypLinear) for p in m.parameters()}
    if not hyp:
        raise ValueError("model has no HypLinear layer; use paperzoo.discovery.trainer.train_gcd")
    hyp_params = [p for p in model.parameters() if id(p) in hyp and p.requires_grad]
    groups = param_groups(model, weight_decay)
    for g in groups:
        g["params"] = [p for p in g["params"] if id(p) not in hyp]
    loader = gcd_loader(x, targets, batch_size, seed)
    sgd = torch.optim.SGD(groups, lr=lr, momentum=momentum)
    adam = geoopt.optim.RiemannianAdam(hyp_params, lr=hyperbolic_lr, stabilize=10)
    opt = _SGDWithRiemannianAdam(sgd, adam, cosine_per_epoch(sgd, epochs, len(loader)))
    step = GCDStep(objective, views, loader.sampler, log_terms=log_terms)  # type: ignore[arg-type]
    history = fit(
        model, None, loader, opt,  # type: ignore[arg-type]
        TrainConfig(epochs=epochs, seed=seed, progress=progress, desc="hypgcd"), compute_loss=step,
    )  # fmt: skip
    return history, step
