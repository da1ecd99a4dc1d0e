"""FOA-Attack: targeted transferable adversarial examples by Feature Optimal Alignment
(Jia, Gao, Qin, Pang, Du, Huang, Li, Li, Li and Liu, "Adversarial Attacks against Closed-Source
MLLMs via Feature Optimal Alignment", 2025, arXiv 2505.21494).

For robustness evaluation: the attack crafts ``x_adv = x + delta`` with ``||delta||_inf <= eps``
whose features in an ensemble of white-box *surrogate* encoders match those of a target image
``x_t``, and the caller measures whether held-out black-box models then treat ``x_adv`` like
``x_t``. It needs white-box gradients of the surrogates only, never of the victims.

The pieces, as in the paper's method section and its official code
(``jiaxiaojunQAQ/FOA-Attack``, class ``EnsembleFeatureLoss_OT_foa_attack``):

* global term: cosine similarity of the surrogates' global features (class token / pooled map)
  of the adversarial view and the target view (the M-Attack objective);
* local term: the local tokens of each image are summarised by k-means cluster centres
  (:func:`batched_kmeans_centers`, differentiable through the centre means), and the two sets of
  centres are matched by an entropic optimal-transport plan (:func:`sinkhorn_plan`, the official
  Sinkhorn loop, computed without gradient); the term is the plan-weighted cosine similarity
  (:func:`ot_similarity`), weighted by ``local_weight`` (0.2);
* dynamic ensemble weighting (:class:`DynamicEnsembleWeights`): each surrogate's loss is
  re-weighted by a softmax (times the number of surrogates) of the ratio of its loss to its
  previous value;
* the attack loop (:func:`foa_attack`): iterative FGSM ascent on the weighted similarity, with a
  new random-resized crop (:func:`random_resized_crop`) of the target and of the adversarial
  image at every step (M-Attack's augmentation); :func:`m_attack` is the same loop with the
  global term only and uniform weights (the M-Attack baseline), :func:`attackvlm_like` the global
  term without crops.

Surrogates are any ``nn.Module``: :func:`global_local_features` reads their output as
``(global (B, d), tokens (B, N, d))``, a conv feature map ``(B, C, H, W)`` (tokens = the H*W
cells, global = their mean), a token tensor ``(B, N, d)`` (global = the mean token) or a
global feature ``(B, d)`` (one token). :class:`ViTSurrogate` adapts
:class:`paperzoo.models.vit.TinyViT` (class token + patch tokens) and :class:`ConvSurrogate` a
conv trunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = [
    "ConvSurrogate",
    "DynamicEnsembleWeights",
    "FOALoss",
    "ViTSurrogate",
    "attackvlm_like",
    "batched_kmeans_centers",
    "foa_attack",
    "global_cosine",
    "global_local_features",
    "m_attack",
    "ot_similarity",
    "random_resized_crop",
    "sinkhorn_plan",
]

_POS_INT = Interval(int, 1, math.inf, closed="left")
_POS_FLOAT = Interval(float, 0, math.inf, closed="neither")
_NONNEG_FLOAT = Interval(float, 0, math.inf, closed="left")


# --------------------------------------------------------------------------- surrogates
class ViTSurrogate(nn.Module):
    """A ViT as a surrogate: ``x -> (class token (B, d), patch tokens (B, N, d))``.

    Wraps any module with a ``tokens(x) -> (cls, patches)`` method, such as
    :class:`paperzoo.models.vit.TinyViT` (a thin adapter)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(vit, "tokens", None)):
            raise TypeError("ViTSurrogate: vit must have a tokens(x) -> (cls, patches) method")
        self.vit = vit

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vit.tokens(x)


class ConvSurrogate(nn.Module):
    """A conv trunk as a surrogate: tokens = the cells of its feature map ``(B, C, H, W)`` as
    ``(B, H*W, C)``, global = their mean (global average pooling). A thin adapter."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.trunk(x)
        if fmap.dim() != 4:
            raise ValueError(f"ConvSurrogate: the trunk must return a (B, C, H, W) map, got {tuple(fmap.shape)}")
        tokens = fmap.flatten(2).transpose(1, 2)
        return tokens.mean(1), tokens


def global_local_features(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(global (B, d), tokens (B, N, d))`` of ``encoder(x)`` for any encoder output layout
    (see the module docstring)."""
    out = encoder(x)
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ValueError(f"a surrogate returning a tuple must return (global, tokens), got {len(out)} items")
        g, tokens = out
    elif out.dim() == 4:
        tokens = out.flatten(2).transpose(1, 2)
        g = tokens.mean(1)
    elif out.dim() == 3:
        g, tokens = out.mean(1), out
    elif out.dim() == 2:
        g, tokens = out, out.unsqueeze(1)
    else:
        raise ValueError(f"cannot read surrogate output of shape {tuple(out.shape)} as (global, tokens)")
    if g.dim() != 2 or tokens.dim() != 3 or g.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"a surrogate must give global (B, d) and tokens (B, N, d), got {tuple(g.shape)} and {tuple(tokens.shape)}"
        )
    return g, tokens


# --------------------------------------------------------------------------- optimal transport
_SINKHORN_CONSTRAINTS: dict[str, list[Constraint]] = {
    "eps": [_POS_FLOAT],
    "n_iter": [_POS_INT],
    "tol": [_NONNEG_FLOAT],
}


@torch.no_grad()
def sinkhorn_plan(sim: torch.Tensor, eps: float = 0.1, n_iter: int = 100, tol: float = 1e-2) -> torch.Tensor:
    """Entropic OT plan between uniform marginals for a similarity ``sim`` ``(..., m, n)``.

    The official loop: cost ``1 - sim``, kernel ``K = exp(-cost / eps)``, scalings ``r = 1_m``,
    ``c = 1_n``; repeat at most ``n_iter`` times ``r <- (1/m) / (K c)``, ``c <- (1/n) / (K^T r)``,
    stopping once ``mean |r - r_prev| < tol`` (each matrix of a batch stops on its own); plan
    ``T = diag(r) K diag(c)``. Computed without gradient (the plan is a constant of the loss).
    """
    validate_params(_SINKHORN_CONSTRAINTS, {"eps": eps, "n_iter": n_iter, "tol": tol}, owner="sinkhorn_plan")
    if sim.dim() < 2:
        raise ValueError(f"sinkhorn_plan: sim must have shape (..., m, n), got {tuple(sim.shape)}")
    m, n = sim.shape[-2:]
    kernel = torch.exp(-(1.0 - sim) / eps)
    r = sim.new_ones(sim.shape[:-1])
    c = sim.new_ones((*sim.shape[:-2], n))
    active = torch.ones(sim.shape[:-2], dtype=torch.bool, device=sim.device)
    for _ in range(n_iter):
        r_new = (1.0 / m) / (kernel @ c.unsqueeze(-1)).squeeze(-1)
        c_new = (1.0 / n) / (kernel.transpose(-1, -2) @ r_new.unsqueeze(-1)).squeeze(-1)
        err = (r_new - r).abs().mean(-1)
        r = torch.where(active.unsqueeze(-1), r_new, r)
        c = torch.where(active.unsqueeze(-1), c_new, c)
        active = active & (err >= tol)
        if not bool(active.any()):
            break
    return r.unsqueeze(-1) * kernel * c.unsqueeze(-2)


def ot_similarity(
    a: torch.Tensor, b: torch.Tensor, eps: float = 0.1, n_iter: int = 100, tol: float = 1e-2
) -> torch.Tensor:
    """OT-weighted cosine similarity ``sum_jk T_jk S_jk`` of point sets ``a`` ``(..., m, d)`` and
    ``b`` ``(..., n, d)`` (``S`` = cosine matrix, ``T`` = :func:`sinkhorn_plan` of ``S``, held
    constant: the gradient flows through ``S`` only). Shape ``(...)``. For one point each
    (``m = n = 1``) it is their cosine similarity."""
    if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-1] or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"ot_similarity: a (..., m, d) and b (..., n, d) disagree: {tuple(a.shape)}, {tuple(b.shape)}")
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(-1, -2)
    plan = sinkhorn_plan(sim.detach(), eps=eps, n_iter=n_iter, tol=tol)
    return (plan * sim).sum((-2, -1))


def global_cosine(g_adv: torch.Tensor, g_t: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of global features ``(B, d)`` -> ``(B,)`` (the M-Attack objective)."""
    return F.cosine_similarity(g_adv, g_t, dim=-1)


# --------------------------------------------------------------------------- k-means
_KMEANS_CONSTRAINTS: dict[str, list[Constraint]] = {"k": [_POS_INT], "n_iter": [_POS_INT], "tol": [_NONNEG_FLOAT]}


def batched_kmeans_centers(
    tokens: torch.Tensor,
    k: int,
    n_iter: int = 100,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """k-means centres ``(B, k, d)`` of each image's tokens ``(B, N, d)`` (Euclidean Lloyd).

    As the official ``kmeans_pytorch`` call: ``k`` distinct random tokens as initial centres, at
    most ``n_iter`` Lloyd steps, stopping once the squared total centre shift is below ``tol``; an
    empty cluster is re-seeded with a random token. Assignments are found without gradient; the
    returned centres are the means of their member tokens, differentiable w.r.t. ``tokens``.
    """
    validate_params(_KMEANS_CONSTRAINTS, {"k": k, "n_iter": n_iter, "tol": tol}, owner="batched_kmeans_centers")
    if tokens.dim() != 3:
        raise ValueError(f"batched_kmeans_centers: tokens must have shape (B, N, d), got {tuple(tokens.shape)}")
    bsz, n, _ = tokens.shape
    if k > n:
        raise ValueError(f"batched_kmeans_centers: k ({k}) must be <= the number of tokens ({n})")
    dev = tokens.device
    rows = torch.arange(bsz, device=dev).unsqueeze(1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=generator.device if generator else dev).to(dev)

    with torch.no_grad():
        pts = tokens.detach()
        init = rand(bsz, n).argsort(1)[:, :k]
        centres = pts[rows, init]
        assign = torch.zeros(bsz, n, dtype=torch.long, device=dev)
        active = torch.ones(bsz, dtype=torch.bool, device=dev)
        for _ in range(n_iter):
            new_assign = torch.cdist(pts, centres).argmin(-1)
            assign = torch.where(active.unsqueeze(1), new_assign, assign)
            new_centres, empty = _cluster_means(pts, assign, k)
            if bool(empty.any()):
                reseed = pts[rows, rand(bsz, k).mul(n).long().clamp_max(n - 1)]
                new_centres = torch.where(empty.unsqueeze(-1), reseed, new_centres)
            shift = (new_centres - centres).norm(dim=-1).sum(-1) ** 2
            centres = torch.where(active.view(-1, 1, 1), new_centres, centres)
            active = active & (shift >= tol)
            if not bool(active.any()):
                break
    means, empty = _cluster_means(tokens, assign, k)
    return torch.where(empty.unsqueeze(-1), centres.to(tokens.dtype), means)


def _cluster_means(tokens: torch.Tensor, assign: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Member means ``(B, k, d)`` (zero for an empty cluster) and the empty mask ``(B, k)``."""
    onehot = F.one_hot(assign, k).to(tokens.dtype)  # (B, N, k)
    counts = onehot.sum(1)  # (B, k)
    means = onehot.transpose(1, 2) @ tokens / counts.clamp_min(1).unsqueeze(-1)
    return means, counts == 0


# --------------------------------------------------------------------------- dynamic weights
class DynamicEnsembleWeights:
    """Dynamic ensemble weighting of the surrogates' losses.

    Each call with the current per-surrogate losses ``L`` ``(..., M)`` computes the ratios
    ``rho = L / (L_ref + 1e-8)`` to a stored earlier value, the weights
    ``w = M * softmax(rho / temperature)`` (constants: no gradient; they sum to ``M``) and
    stores ``L``. ``L_ref`` is the value passed ``lag + 1`` calls earlier (the oldest one while
    fewer calls were made; on the first call ``L_ref = L``, so every weight is 1).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "n_models": [_POS_INT],
        "temperature": [_POS_FLOAT],
        "lag": [Interval(int, 0, math.inf, closed="left")],
    }

    def __init__(self, n_models: int, temperature: float = 1.0, lag: int = 0) -> None:
        validate_params(
            self._parameter_constraints,
            {"n_models": n_models, "temperature": temperature, "lag": lag},
            owner="DynamicEnsembleWeights",
        )
        self.n_models, self.temperature, self.lag = n_models, temperature, lag
        self.history: list[torch.Tensor] = []
        self.last_ratio: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the stored losses (a new attack)."""
        self.history, self.last_ratio = [], None

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        losses = losses.detach()
        if losses.shape[-1] != self.n_models:
            raise ValueError(f"DynamicEnsembleWeights: losses must end in {self.n_models} models, got {losses.shape}")
        if self.history and self.history[-1].shape != losses.shape:
            self.reset()
        ref = self.history[-1 - self.lag] if len(self.history) > self.lag else (self.history or [losses])[0]
        ratio = losses / (ref + 1e-8)
        self.last_ratio = ratio
        self.history = [*self.history[-self.lag :], losses] if self.lag else [losses]
        return self.n_models * torch.softmax(ratio / self.temperature, dim=-1)


# --------------------------------------------------------------------------- the FOA loss
class FOALoss:
    """The FOA objective over an ensemble of surrogate encoders (a similarity, to maximise).

    Per surrogate ``i``: ``L_i = cos(g_adv, g_t) + local_weight * OT_sim(C_t, C_adv)`` with
    ``C`` the ``n_clusters`` k-means centres of the (normalised) local tokens; the total is
    ``sum_i w_i L_i`` with :class:`DynamicEnsembleWeights` (or the mean, ``w_i = 1 / M``, when
    ``dynamic_weighting`` is off). :meth:`set_target` fixes the target view;
    ``loss(x_adv_view)`` returns ``(total (B,), per_model (B, M), weights (B, M))``.

    Args:
        surrogates: any ``nn.Module`` encoders (see :func:`global_local_features`); used in eval mode.
        n_clusters: k-means centres per image (``min(n_clusters, N)`` when a surrogate has fewer tokens).
        local_weight: weight of the local OT term (0 gives the global-only M-Attack loss).
        ot_eps: entropic regularisation of the OT plan.
        dynamic_weighting: the dynamic ensemble weights (else a uniform average).
        temperature: softmax temperature of the dynamic weights.
        ratio_reference: ``"previous_step"`` (the loss ratio across attack steps) or
            ``"official_double_call"`` (the shipped loop's: the attack also calls the loss on the
            uncropped image each step, so the ratio that reaches the gradient is crop vs uncropped).
        lag: see :class:`DynamicEnsembleWeights`.
        official_token_norm: normalise local tokens along the token axis as the official code does
            (each channel by its norm over the tokens) instead of per token (L2 over channels).
        kmeans_iter, kmeans_tol: k-means limits. sinkhorn_iter, sinkhorn_tol: Sinkhorn limits.
        generator: random generator of the k-means initialisation.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "n_clusters": [_POS_INT],
        "local_weight": [_NONNEG_FLOAT],
        "ot_eps": [_POS_FLOAT],
        "dynamic_weighting": [Options((True, False))],
        "temperature": [_POS_FLOAT],
        "ratio_reference": [Options(("previous_step", "official_double_call"))],
        "lag": [Interval(int, 0, math.inf, closed="left")],
        "official_token_norm": [Options((True, False))],
        "kmeans_iter": [_POS_INT],
        "kmeans_tol": [_NONNEG_FLOAT],
        "sinkhorn_iter": [_POS_INT],
        "sinkhorn_tol": [_NONNEG_FLOAT],
    }

    def __init__(
        self,
        surrogates: Sequence[nn.Module],
        n_clusters: int = 10,
        local_weight: float = 0.2,
        ot_eps: float = 0.1,
        dynamic_weighting: bool = True,
        temperature: float = 1.0,
        ratio_reference: str = "previous_step",
        lag: int = 0,
        official_token_norm: bool = False,
        kmeans_iter: int = 100,
        kmeans_tol: float = 1e-4,
        sinkhorn_iter: int = 100,
        sinkhorn_tol: float = 1e-2,
        generator: torch.Generator | None = None,
    ) -> None:
        params = {
            "n_clusters": n_clusters,
            "local_weight": local_weight,
            "ot_eps": ot_eps,
            "dynamic_weighting": dynamic_weighting,
            "temperature": temperature,
            "ratio_reference": ratio_reference,
            "lag": lag,
            "official_token_norm": official_token_norm,
            "kmeans_iter": kmeans_iter,
            "kmeans_tol": kmeans_tol,
            "sinkhorn_iter": sinkhorn_iter,
            "sinkhorn_tol": sinkhorn_tol,
        }
        validate_params(self._parameter_constraints, params, owner="FOALoss")
        surrogates = list(surrogates)
        if not surrogates or not all(isinstance(s, nn.Module) for s in surrogates):
            raise ValueError("FOALoss: surrogates must be a non-empty list of nn.Module encoders")
        self.surrogates = surrogates
        for name, value in params.items():
            setattr(self, name, value)
        self.generator = generator
        self.weighting = DynamicEnsembleWeights(len(surrogates), temperature, lag)
        self._target: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None

    def reset(self) -> None:
        """Forget the target and the dynamic-weighting state (before a new attack)."""
        self._target = None
        self.weighting.reset()

    def _features(self, enc: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        g, tokens = global_local_features(enc, x)
        if self.local_weight == 0:
            return g, None
        dim = 1 if self.official_token_norm else -1
        tokens = tokens / tokens.norm(dim=dim, keepdim=True).clamp_min(1e-12)
        k = min(self.n_clusters, tokens.shape[1])
        return g, batched_kmeans_centers(tokens, k, self.kmeans_iter, self.kmeans_tol, self.generator)

    def set_target(self, x_t: torch.Tensor) -> None:
        """Compute the target view's global features and centres (no gradient)."""
        with torch.no_grad():
            self._target = [self._features(enc, x_t) for enc in self.surrogates]

    def per_model(self, x_adv: torch.Tensor) -> torch.Tensor:
        """``L_i`` of every surrogate, ``(B, M)``, differentiable w.r.t. ``x_adv``."""
        if self._target is None:
            raise RuntimeError("FOALoss: call set_target(x_t) before the loss")
        out = []
        for enc, (g_t, c_t) in zip(self.surrogates, self._target):
            g, c = self._features(enc, x_adv)
            if g.shape[0] != g_t.shape[0]:
                raise ValueError(f"FOALoss: x_adv has batch {g.shape[0]}, the target {g_t.shape[0]}")
            value = global_cosine(g, g_t)
            if c is not None and c_t is not None:
                local = ot_similarity(c_t, c, self.ot_eps, self.sinkhorn_iter, self.sinkhorn_tol)
                value = value + self.local_weight * torch.nan_to_num(local, nan=0.0)
            out.append(value)
        return torch.stack(out, dim=-1)

    def combine(self, per_model: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(total, weights)`` from per-surrogate losses (updates the dynamic state)."""
        if self.dynamic_weighting:
            weights = self.weighting(per_model)
            return (weights * per_model).sum(-1), weights
        weights = torch.full_like(per_model, 1.0 / per_model.shape[-1]).detach()
        return (weights * per_model).sum(-1), weights

    def __call__(self, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        per = self.per_model(x_adv)
        total, weights = self.combine(per)
        return total, per, weights


# --------------------------------------------------------------------------- crops
def random_resized_crop(
    x: torch.Tensor,
    scale: tuple[float, float] = (0.5, 0.9),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """A random-resized crop of every image of ``x`` ``(B, C, H, W)``, resized back to ``H x W``
    (bilinear), as torchvision's ``RandomResizedCrop``: area fraction ~ U(scale), log aspect
    ratio ~ U(log ratio), a box that does not fit is redrawn (up to ``tries`` times, then clipped),
    its position uniform. Batched with ``affine_grid`` / ``grid_sample``; differentiable."""
    if x.dim() != 4:
        raise ValueError(f"random_resized_crop: x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"random_resized_crop: scale must satisfy 0 < low <= high <= 1, got {scale}")
    bsz, dev = x.shape[0], x.device
    gdev = generator.device if generator is not None else dev

    def rand(n: int) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=gdev).to(dev, torch.float64)

    h, w = x.shape[-2:]
    bw = torch.ones(bsz, dtype=torch.float64, device=dev)
    bh = torch.ones_like(bw)
    todo = torch.ones(bsz, dtype=torch.bool, device=dev)
    lr = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        area = scale[0] + (scale[1] - scale[0]) * rand(bsz)
        aspect = torch.exp(lr[0] + (lr[1] - lr[0]) * rand(bsz))
        cw, ch = torch.sqrt(area * aspect * h / w), torch.sqrt(area / aspect * w / h)  # fractions of W, H
        ok = todo & (cw <= 1) & (ch <= 1)
        bw, bh = torch.where(ok, cw, bw), torch.where(ok, ch, bh)
        todo = todo & ~ok
        if not bool(todo.any()):
            break
    bw, bh = bw.clamp(max=1.0), bh.clamp(max=1.0)
    cx = (rand(bsz) * 2 - 1) * (1 - bw)
    cy = (rand(bsz) * 2 - 1) * (1 - bh)
    theta = torch.zeros(bsz, 2, 3, dtype=x.dtype, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = bw.to(x.dtype), cx.to(x.dtype)
    theta[:, 1, 1], theta[:, 1, 2] = bh.to(x.dtype), cy.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --------------------------------------------------------------------------- the attack
_ATTACK_CONSTRAINTS: dict[str, list[Constraint]] = {
    "eps": [_POS_FLOAT],
    "alpha": [_POS_FLOAT],
    "steps": [Interval(int, 0, math.inf, closed="left")],
    "source_crop": [Options((True, False))],
    "target_crop": [Options((True, False))],
    "update": [Options(("ifgsm", "mifgsm"))],
    "momentum": [_NONNEG_FLOAT],
    "seed": [Interval(int, 0, math.inf, closed="left"), None],
}


def _check_images(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    lo, hi = torch.aminmax(x.detach())
    if not (bool(lo >= 0) and bool(hi <= 1)):
        raise ValueError(f"{name} must hold images in [0, 1] (values outside or NaN), got range [{lo}, {hi}]")


def foa_attack(
    x: torch.Tensor,
    x_t: torch.Tensor,
    surrogates: Sequence[nn.Module] | FOALoss,
    eps: float = 16 / 255,
    alpha: float = 1 / 255,
    steps: int = 300,
    source_crop: bool = True,
    target_crop: bool = True,
    crop_scale: tuple[float, float] = (0.5, 0.9),
    update: str = "ifgsm",
    momentum: float = 0.9,
    seed: int | None = 2023,
    history: list[float] | None = None,
    callback: Callable[[int, torch.Tensor], Any] | None = None,
    **loss_kwargs: Any,
) -> torch.Tensor:
    """Targeted transfer attack: ``x_adv`` ``(B, C, H, W)`` in [0, 1], ``||x_adv - x||_inf <= eps``,
    whose surrogate features match those of the target images ``x_t`` (paired by row).

    Each step: a new random-resized crop of ``x_t`` (``target_crop``) fixes the target features;
    the loss is computed on a crop of ``x + delta`` (``source_crop``); then
    ``delta <- clip(delta + alpha * sign(grad), -eps, eps)`` (``update="ifgsm"``, the official
    setting) or the same with a momentum-accumulated gradient (``"mifgsm"``). As in the official
    loop ``x + delta`` is not projected onto [0, 1] inside the loop; the surrogates see it
    clamped (out-of-range pixels get no gradient) and the output is ``clip(x + delta, 0, 1)``.

    Args:
        x, x_t: source and target images ``(B, C, H, W)`` in [0, 1].
        surrogates: a list of ``nn.Module`` encoders (a :class:`FOALoss` is built from them with
            ``loss_kwargs``), or a ready :class:`FOALoss` (reset first).
        eps: the L-infinity budget (> 0); alpha: the step size (> 0); steps: iterations (0 returns ``x``).
        crop_scale: area range of the random-resized crops.
        seed: seeds the crops and the k-means initialisations (None: torch's global generator).
        history: if given, the batch-mean loss of each step is appended.
        callback: called as ``callback(step, x_adv)`` after each step.
    """
    params = {
        "eps": eps,
        "alpha": alpha,
        "steps": steps,
        "source_crop": source_crop,
        "target_crop": target_crop,
        "update": update,
        "momentum": momentum,
        "seed": seed,
    }
    validate_params(_ATTACK_CONSTRAINTS, params, owner="foa_attack")
    _check_images(x, "x")
    _check_images(x_t, "x_t")
    if x.shape != x_t.shape:
        raise ValueError(f"x and x_t must have the same shape, got {tuple(x.shape)} and {tuple(x_t.shape)}")
    gen = None
    if seed is not None:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(seed)
    if isinstance(surrogates, FOALoss):
        if loss_kwargs:
            raise ValueError(f"foa_attack: pass loss options to FOALoss, not with a ready loss: {sorted(loss_kwargs)}")
        loss = surrogates
        if loss.generator is None:
            loss.generator = gen
    else:
        loss = FOALoss(surrogates, generator=gen, **loss_kwargs)
    loss.reset()
    modes = [(s, s.training) for s in loss.surrogates]
    grads = [(p, p.requires_grad) for s in loss.surrogates for p in s.parameters()]
    for s in loss.surrogates:
        s.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    x = x.detach()
    delta = torch.zeros_like(x)
    velocity = torch.zeros_like(x)
    double_call = loss.dynamic_weighting and loss.ratio_reference == "official_double_call" and source_crop
    try:
        for step in range(steps):
            view_t = random_resized_crop(x_t, crop_scale, generator=gen) if target_crop else x_t
            loss.set_target(view_t)
            delta.requires_grad_(True)
            x_adv = (x + delta).clamp(0, 1)
            if double_call:  # the shipped loop also scores the uncropped image (state update only)
                with torch.no_grad():
                    loss(x_adv)
            view = random_resized_crop(x_adv, crop_scale, generator=gen) if source_crop else x_adv
            total, _, _ = loss(view)
            (grad,) = torch.autograd.grad(total.sum(), delta)
            if history is not None:
                history.append(float(total.detach().mean()))
            with torch.no_grad():
                if update == "mifgsm":
                    velocity = momentum * velocity + grad
                    grad = velocity
                delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
            if callback is not None:
                callback(step, (x + delta).clamp(0, 1))
    finally:
        for s, mode in modes:
            s.train(mode)
        for p, flag in grads:
            p.requires_grad_(flag)
    return (x + delta.detach()).clamp(0, 1)


def m_attack(x: torch.Tensor, x_t: torch.Tensor, surrogates: Sequence[nn.Module], **kwargs: Any) -> torch.Tensor:
    """The M-Attack baseline: :func:`foa_attack` with the global cosine only and uniform weights
    (random-resized crops of both images kept)."""
    return foa_attack(x, x_t, surrogates, local_weight=0.0, dynamic_weighting=False, **kwargs)


def attackvlm_like(x: torch.Tensor, x_t: torch.Tensor, surrogates: Sequence[nn.Module], **kwargs: Any) -> torch.Tensor:
    """An AttackVLM-like baseline: global cosine only, uniform weights, no crops."""
    return foa_attack(
        x, x_t, surrogates, local_weight=0.0, dynamic_weighting=False, source_crop=False, target_crop=False, **kwargs
    )
