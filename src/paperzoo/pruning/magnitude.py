"""Unstructured magnitude pruning: Global MP, Global MP with a Minimum Threshold, uniform
(layer-wise) magnitude pruning, random pruning, the gradual cubic schedule and masked fine-tuning.

Paper: Gupta, Camci, Keneta, Vaidyanathan, Kanodia, Foo & Lin, *Is Complexity Required for Neural
Network Pruning? A Case Study on Global Magnitude Pruning* (arXiv 2209.14624, 2022).

* **Global MP**: every prunable weight of the network (the ``weight`` of each ``nn.Conv2d`` and
  ``nn.Linear``, first convolution and classifier included; biases and normalisation parameters
  never) is ranked by ``|w|`` in one pool and the smallest ones are zeroed; per-layer sparsities
  are an output of the ranking. Convention: exactly ``n_prune = round(s * N)`` weights are pruned
  (the rounding of ``torch.nn.utils.prune``), ties broken by position in the concatenated pool
  (layers in ``prunable_parameters`` order, each flattened row-major). On tie-free weights this is
  exactly ``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured,
  amount=s)``; the official script keeps ``|w| >= tau`` (so one weight fewer is pruned) and adds
  one uninitialised element to its pool, both of which are dropped here.
* **Minimum Threshold (MT)**: every layer keeps at least ``T`` weights (layers with ``n_l <= T``
  stay dense); the budget this frees goes to the other layers in proportion to their Global-MP
  sparsities. The official script reaches the allocation with an uncapped rescale-and-clamp loop;
  :func:`minimum_threshold_allocation` computes its fixed point in closed form,
  ``s_l = min(c * s_l^GP, 1 - T / n_l)`` with ``c`` solving ``sum_l n_l s_l = s * N``.
* **Gradual Global MP**: the cubic schedule of Zhu & Gupta (2017),
  ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3``, the global mask recomputed every ``dt``
  steps over the still-unpruned weights (the paper reports that gradual pruning improves the
  FLOPs trade-off; its schedule is not in the released code).

Masks live in ``torch.nn.utils.prune``'s re-parametrisation (``weight = weight_orig * weight_mask``),
so a pruned weight stays exactly zero through any optimiser (momentum, weight decay).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from paperzoo.pruning.base import Pruner, check_sparsity

__all__ = [
    "GlobalMagnitudePruner",
    "GradualGlobalPruner",
    "RandomPruner",
    "UniformMagnitudePruner",
    "apply_masks",
    "cubic_sparsity",
    "effective_weight",
    "global_magnitude_masks",
    "masked_finetune",
    "minimum_threshold_allocation",
    "prunable_parameters",
    "random_pruning",
    "remove_masks",
    "uniform_magnitude_pruning",
]

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
ParamRef = tuple[nn.Module, str]


# --------------------------------------------------------------------------- the prunable set
def prunable_parameters(
    model: nn.Module,
    layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
    exclude: Iterable[nn.Module | str] = (),
) -> list[ParamRef]:
    """``[(module, "weight")]`` for every module of ``layer_types`` in ``model`` (in
    ``named_modules`` order), except those in ``exclude`` (modules, or their qualified names)."""
    types = tuple(layer_types)
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise ValueError(f"prunable_parameters: layer_types must be nn.Module classes, got {layer_types!r}")
    skip = list(exclude)
    names = {s for s in skip if isinstance(s, str)}
    mods = {id(m) for m in skip if isinstance(m, nn.Module)}
    out = [
        (module, "weight")
        for name, module in model.named_modules()
        if isinstance(module, types) and name not in names and id(module) not in mods
    ]
    if not out:
        raise ValueError(f"prunable_parameters: the model has no {'/'.join(t.__name__ for t in types)} layer to prune")
    return out


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The weight the module computes with: ``weight_orig * weight_mask`` when it is pruned
    (up to date even between an optimiser step and the next forward), else ``weight``."""
    orig = getattr(module, name + "_orig", None)
    if orig is not None:
        return orig * getattr(module, name + "_mask")
    return getattr(module, name)


# --------------------------------------------------------------------------- mask kernels
def _n_prune(sparsity: float, n: int) -> int:
    """``round(s * n)``: ``torch.nn.utils.prune``'s count for a float amount."""
    return min(n, round(sparsity * n))


def _smallest_mask(scores: torch.Tensor, n_prune: int) -> torch.Tensor:
    """A float mask of ``scores`` (1-D) with exactly the ``n_prune`` smallest scores at 0, ties
    broken by position (earlier first). O(N): a k-th value, then the ties at the threshold."""
    n = scores.numel()
    mask = torch.ones(n, dtype=scores.dtype, device=scores.device)
    if n_prune <= 0:
        return mask
    if n_prune >= n:
        return mask.zero_()
    tau = torch.kthvalue(scores, n_prune).values
    below = scores < tau
    mask[below] = 0
    need = n_prune - int(below.sum())
    if need > 0:
        ties = torch.nonzero(scores == tau).squeeze(1)[:need]
        mask[ties] = 0
    return mask


def _scores(params: Sequence[ParamRef]) -> list[torch.Tensor]:
    return [effective_weight(m, n).detach().abs().flatten() for m, n in params]


def global_magnitude_masks(params: Sequence[ParamRef], sparsity: float) -> list[torch.Tensor]:
    """Global MP: one mask per entry of ``params`` (shaped like its weight) zeroing the
    ``round(s * N)`` smallest ``|w|`` of all of them together (ties: earlier position first)."""
    s = check_sparsity(sparsity, "global_magnitude_masks")
    scores = _scores(params)
    sizes = [t.numel() for t in scores]
    flat = _smallest_mask(
        torch.cat([t.to(torch.float64 if t.dtype == torch.float64 else torch.float32) for t in scores]),
        _n_prune(s, sum(sizes)),
    )
    return [m.view_as(effective_weight(mod, name)) for m, (mod, name) in zip(flat.split(sizes), params)]


def _layer_masks(
    params: Sequence[ParamRef], sparsities: Sequence[float], scores: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    return [
        _smallest_mask(sc, _n_prune(float(s), sc.numel())).view_as(effective_weight(mod, name))
        for sc, s, (mod, name) in zip(scores, sparsities, params)
    ]


def apply_masks(params: Sequence[ParamRef], masks: Sequence[torch.Tensor]) -> None:
    """Install ``masks`` through ``torch.nn.utils.prune.custom_from_mask``; on a module that is
    already pruned the new mask is multiplied into its ``weight_mask`` in place (a weight pruned
    once stays pruned, and no container of hooks piles up)."""
    for (module, name), mask in zip(params, masks):
        old = getattr(module, name + "_mask", None)
        if old is None:
            prune.custom_from_mask(module, name, mask.to(getattr(module, name).dtype))
        else:
            with torch.no_grad():
                old.mul_(mask.to(old.dtype))
            setattr(module, name, getattr(module, name + "_orig") * old)


def remove_masks(model: nn.Module) -> nn.Module:
    """Make every mask of ``model`` permanent (``torch.nn.utils.prune.remove``): plain weights
    with zeros, no hooks. Returns ``model``."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model


# --------------------------------------------------------------------------- Minimum Threshold
def minimum_threshold_allocation(
    layer_sizes: Sequence[int] | np.ndarray,
    gp_sparsities: Sequence[float] | np.ndarray,
    target: float,
    T: int,
    method: Literal["closed_form", "reference_loop"] = "closed_form",
    max_iter: int = 10_000,
    tol: float = 1e-12,
) -> np.ndarray:
    """Per-layer sparsities of Global MP with a Minimum Threshold of ``T`` weights per layer.

    ``closed_form`` (default): ``s_l = 0`` for ``n_l <= T`` and ``s_l = min(c * s_l^GP, 1 - T/n_l)``
    otherwise, with the scalar ``c >= 0`` solving ``sum_l n_l s_l = target * N`` (the function is
    piecewise linear and non-decreasing in ``c``: solved exactly between sorted breakpoints).
    ``reference_loop``: the official script's steps (zero the layers with ``n_l < T``, rescale
    to the target, clamp the layers keeping fewer than ``T``, rescale again while the total is
    below the target), stopped after ``max_iter`` rescalings, kept to check the closed form.

    Raises:
        ValueError: the target cannot be reached while every layer keeps ``T`` weights, or the
            inputs are inconsistent.
    """
    n = np.asarray(layer_sizes, dtype=np.float64)
    g = np.asarray(gp_sparsities, dtype=np.float64)
    s = check_sparsity(target, "minimum_threshold_allocation")
    if n.ndim != 1 or n.shape != g.shape or n.size == 0 or (n <= 0).any():
        raise ValueError(
            f"minimum_threshold_allocation: layer_sizes and gp_sparsities must be non-empty 1-D of the same length "
            f"with positive sizes, got shapes {n.shape} and {g.shape}"
        )
    if ((g < 0) | (g > 1) | ~np.isfinite(g)).any():
        raise ValueError("minimum_threshold_allocation: gp_sparsities must lie in [0, 1]")
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 0:
        raise ValueError(f"minimum_threshold_allocation: T must be an int >= 0, got {T!r}")
    total = n.sum()
    if method == "reference_loop":
        return _reference_loop(n, g, s, float(T), total, max_iter)
    if method != "closed_form":
        raise ValueError(
            f"minimum_threshold_allocation: method must be 'closed_form' or 'reference_loop', got {method!r}"
        )
    big = n > T
    cap = np.where(big, 1.0 - T / n, 0.0)
    want = s * total
    if (n * cap).sum() < want * (1 - tol):
        raise ValueError(
            f"minimum_threshold_allocation: target sparsity {s} is unreachable when every layer keeps {T} weights "
            f"(at most {(n * cap).sum() / total:.6f} of the {int(total)} weights can be pruned)"
        )
    active = big & (g > 0)
    if want == 0:
        return np.zeros_like(n)
    if not active.any():
        raise ValueError(
            "minimum_threshold_allocation: every layer with more than T weights has Global-MP sparsity 0; nothing "
            "to rescale towards the target"
        )
    # f(c) = sum_l n_l min(c g_l, cap_l); breakpoints b_l = cap_l / g_l where layer l saturates
    bp = np.where(active, cap / np.where(active, g, 1.0), np.inf)
    order = np.argsort(bp[active])
    b_sorted = bp[active][order]
    ng = (n * g)[active][order]
    ncap = (n * cap)[active][order]
    # at c in [b_{k-1}, b_k]: f(c) = sum_{j<k} ncap_j + c * sum_{j>=k} ng_j
    sat = np.concatenate([[0.0], np.cumsum(ncap)])
    slope = np.concatenate([np.cumsum(ng[::-1])[::-1], [0.0]])
    c = np.inf
    for k in range(len(b_sorted) + 1):
        if slope[k] == 0:
            break
        cand = (want - sat[k]) / slope[k]
        lo = b_sorted[k - 1] if k > 0 else 0.0
        hi = b_sorted[k] if k < len(b_sorted) else np.inf
        if lo - 1e-15 <= cand <= hi + 1e-15 * max(1.0, hi):
            c = cand
            break
    if not np.isfinite(c):  # the target equals the total capacity
        c = b_sorted[-1]
    return np.where(big, np.minimum(c * g, cap), 0.0)


def _reference_loop(n: np.ndarray, g: np.ndarray, s: float, T: float, total: float, max_iter: int) -> np.ndarray:
    """The official ``step`` / ``step2`` / ``step3`` logic (strict inequalities as released)."""
    sp = g.copy()
    sp[n < T] = 0.0

    def overall(x: np.ndarray) -> float:
        return float((n * x).sum() / total)

    def clamp(x: np.ndarray) -> np.ndarray:
        bad = ((1 - x) * n < T) & (n > T)
        x[bad] = 1 - T / n[bad]
        return x

    S = overall(sp)
    if S == 0:
        raise ValueError("minimum_threshold_allocation: nothing to rescale (all Global-MP sparsities are 0)")
    sp = clamp(sp * s / S)
    S = overall(sp)
    it = 0
    while S < s and it < max_iter:
        sp = clamp(sp * s / S)
        S = overall(sp)
        it += 1
    return sp


def _threshold_count(min_weights: int | float | None, total: int) -> int:
    if min_weights is None:
        return 0
    if isinstance(min_weights, float):
        return math.floor(total * min_weights)
    return int(min_weights)


# --------------------------------------------------------------------------- pruners
class _MagnitudeBase(Pruner):
    """Shared plumbing: the prunable set, a default sparsity, masks computed then applied."""

    def __init__(
        self,
        sparsity: float | None = None,
        *,
        layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.sparsity = None if sparsity is None else check_sparsity(sparsity, owner)
        self.layer_types = tuple(layer_types)
        self.exclude = tuple(exclude)

    def _target(self, sparsity: float | None) -> float:
        s = self.sparsity if sparsity is None else sparsity
        if s is None:
            raise ValueError(f"{type(self).__name__}: give a sparsity (here or to the constructor)")
        return check_sparsity(s, type(self).__name__)

    def parameters_to_prune(self, model: nn.Module) -> list[ParamRef]:
        return prunable_parameters(model, self.layer_types, self.exclude)

    def masks_for(self, params: Sequence[ParamRef], sparsity: float) -> list[torch.Tensor]:
        raise NotImplementedError

    def compute_masks(self, model: nn.Module, sparsity: float | None = None) -> dict[nn.Module, torch.Tensor]:
        """``{module: mask}`` (the mask of its ``weight``) at ``sparsity`` (default: the constructor's)."""
        params = self.parameters_to_prune(model)
        return {m: k for (m, _), k in zip(params, self.masks_for(params, self._target(sparsity)))}

    def apply(self, model: nn.Module, sparsity: float | None = None) -> nn.Module:
        """Prune ``model`` in place through ``torch.nn.utils.prune`` masks; returns it."""
        params = self.parameters_to_prune(model)
        with torch.no_grad():
            apply_masks(params, self.masks_for(params, self._target(sparsity)))
        return model

    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        return self.apply(model, check_sparsity(sparsity, type(self).__name__))

    def layer_sparsities(self, model: nn.Module, sparsity: float | None = None) -> np.ndarray:
        """The per-layer sparsities the masks at ``sparsity`` would give (model untouched)."""
        return np.array([1.0 - float(k.mean()) for k in self.compute_masks(model, sparsity).values()])

    def extra_repr(self) -> str:
        return f"sparsity={self.sparsity}, layer_types={tuple(t.__name__ for t in self.layer_types)}"


class GlobalMagnitudePruner(_MagnitudeBase):
    """Global MP (one pool of ``|w|`` over all prunable layers), optionally with the paper's
    Minimum Threshold.

    Args:
        sparsity: default target in ``[0, 1)`` (``prune`` / ``apply`` may override it).
        min_weights: ``None`` for vanilla Global MP; an ``int`` T for at least T weights per layer;
            a ``float`` for ``T = floor(N * min_weights)`` with N the prunable weight count
            (``0.0005`` is the paper's "0.05 %").
        layer_types, exclude: the prunable set (see :func:`prunable_parameters`).
    """

    def __init__(
        self,
        sparsity: float | None = None,
        *,
        min_weights: int | float | None = None,
        layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(sparsity, layer_types=layer_types, exclude=exclude)
        if min_weights is not None and (
            isinstance(min_weights, bool)
            or not isinstance(min_weights, int | float)
            or (isinstance(min_weights, float) and not 0.0 <= min_weights < 1.0)
            or (isinstance(min_weights, int) and min_weights < 0)
        ):
            raise ValueError(
                "GlobalMagnitudePruner: min_weights must be None, an int >= 0 (a count) or a float in [0, 1) (a "
                f"fraction of the prunable weights), got {min_weights!r}"
            )
        self.min_weights = min_weights

    def threshold(self, model: nn.Module) -> int:
        """T, the minimum number of weights each layer keeps (0 without a Minimum Threshold)."""
        total = sum(effective_weight(m, n).numel() for m, n in self.parameters_to_prune(model))
        return _threshold_count(self.min_weights, total)

    def masks_for(self, params: Sequence[ParamRef], sparsity: float) -> list[torch.Tensor]:
        gp = global_magnitude_masks(params, sparsity)
        if self.min_weights is None:
            return gp
        sizes = np.array([k.numel() for k in gp])
        T = _threshold_count(self.min_weights, int(sizes.sum()))
        if T == 0:
            return gp
        gp_s = np.array([1.0 - float(k.mean()) for k in gp])
        alloc = minimum_threshold_allocation(sizes, gp_s, sparsity, T)
        return _layer_masks(params, alloc, _scores(params))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, min_weights={self.min_weights}"


class UniformMagnitudePruner(_MagnitudeBase):
    """Layer-wise magnitude pruning at the same sparsity in every layer (each layer loses its
    ``round(s * n_l)`` smallest ``|w|``; ``torch.nn.utils.prune.l1_unstructured`` per layer on
    tie-free weights)."""

    def masks_for(self, params: Sequence[ParamRef], sparsity: float) -> list[torch.Tensor]:
        return _layer_masks(params, [sparsity] * len(params), _scores(params))


class RandomPruner(_MagnitudeBase):
    """Random unstructured pruning, the same sparsity in every layer (``RandomUnstructured``'s
    rule: ``round(s * n_l)`` weights per layer drawn uniformly), from a seeded generator."""

    def __init__(
        self,
        sparsity: float | None = None,
        *,
        seed: int = 0,
        layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(sparsity, layer_types=layer_types, exclude=exclude)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"RandomPruner: seed must be an int, got {seed!r}")
        self.seed = seed

    def masks_for(self, params: Sequence[ParamRef], sparsity: float) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        scores = [torch.rand(effective_weight(m, n).numel(), generator=g, dtype=torch.float64) for m, n in params]
        # already-pruned weights score -1 so they are drawn first (pruned stays pruned)
        scores = [
            torch.where(effective_weight(m, n).detach().flatten().cpu() == 0, -1.0, sc)
            for sc, (m, n) in zip(scores, params)
        ]
        return [
            k.to(effective_weight(m, n).device)
            for k, (m, n) in zip(_layer_masks(params, [sparsity] * len(params), scores), params)
        ]


def uniform_magnitude_pruning(model: nn.Module, sparsity: float, **kwargs: Any) -> nn.Module:
    """Thin wrapper: :class:`UniformMagnitudePruner` applied to ``model`` in place."""
    return UniformMagnitudePruner(**kwargs).prune(model, sparsity)


def random_pruning(model: nn.Module, sparsity: float, seed: int = 0, **kwargs: Any) -> nn.Module:
    """Thin wrapper: :class:`RandomPruner` applied to ``model`` in place."""
    return RandomPruner(seed=seed, **kwargs).prune(model, sparsity)


# --------------------------------------------------------------------------- gradual schedule
def cubic_sparsity(
    step: int, final_sparsity: float, initial_sparsity: float = 0.0, start_step: int = 0, end_step: int = 1
) -> float:
    """Zhu & Gupta's cubic schedule: ``s_i`` before ``start_step``, ``s_f`` from ``end_step`` on,
    ``s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3`` in between."""
    if step <= start_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    frac = (step - start_step) / (end_step - start_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - frac) ** 3


class GradualGlobalPruner:
    """Gradual Global MP: call it once per training step (``pruner(model)``); every
    ``frequency`` steps from ``start_step`` to ``end_step`` it recomputes the global mask at the
    cubic schedule's sparsity over the still-unpruned weights (pruned weights stay pruned).

    :func:`masked_finetune` calls it before each step when given as ``gradual=``.
    """

    def __init__(
        self,
        final_sparsity: float,
        initial_sparsity: float = 0.0,
        *,
        start_step: int = 0,
        end_step: int,
        frequency: int = 1,
        min_weights: int | float | None = None,
        layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
    ) -> None:
        self.final_sparsity = check_sparsity(final_sparsity, "GradualGlobalPruner")
        self.initial_sparsity = check_sparsity(initial_sparsity, "GradualGlobalPruner")
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError("GradualGlobalPruner: initial_sparsity must not exceed final_sparsity")
        for name, v, low in (
            ("start_step", start_step, 0),
            ("end_step", end_step, start_step + 1),
            ("frequency", frequency, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"GradualGlobalPruner: {name} must be an int >= {low}, got {v!r}")
        self.start_step, self.end_step, self.frequency = start_step, end_step, frequency
        self.pruner = GlobalMagnitudePruner(min_weights=min_weights, layer_types=layer_types)
        self.step = 0
        self.history: list[tuple[int, float]] = []

    def sparsity_at(self, step: int) -> float:
        return cubic_sparsity(step, self.final_sparsity, self.initial_sparsity, self.start_step, self.end_step)

    def __call__(self, model: nn.Module) -> None:
        t = self.step
        self.step += 1
        on_grid = (t - self.start_step) % self.frequency == 0 or t == self.end_step
        if t < self.start_step or t > self.end_step or not on_grid:
            return
        s = self.sparsity_at(t)
        if s > 0:
            self.pruner.apply(model, s)
            self.history.append((t, s))


# --------------------------------------------------------------------------- fine-tuning
def masked_finetune(
    model: nn.Module,
    loader: Any,
    epochs: int,
    *,
    lr: float = 5e-4,
    optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    scheduler_factory: Callable[[torch.optim.Optimizer, int], Any] | Literal["cosine"] | None = "cosine",
    label_smoothing: float = 0.1,
    seed: int = 0,
    gradual: GradualGlobalPruner | None = None,
) -> nn.Module:
    """Fine-tune ``model`` with its masks held fixed (the prune re-parametrisation keeps pruned
    weights at exactly 0) through :func:`paperzoo.engine.fit`: label-smoothed cross-entropy,
    Adam(``lr``) unless ``optimizer_factory(params)`` is given, a per-step cosine schedule
    (``scheduler_factory(optimizer, total_steps)`` to change it, ``None`` for none). With
    ``gradual``, the gradual pruner is called before every step. Returns ``model``."""
    from paperzoo.engine import TrainConfig, fit

    opt = optimizer_factory(model.parameters()) if optimizer_factory else torch.optim.Adam(model.parameters(), lr=lr)
    total = epochs * len(loader)
    if scheduler_factory == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
    else:
        sched = scheduler_factory(opt, total) if scheduler_factory is not None else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def compute_loss(m: nn.Module, batch: Any) -> torch.Tensor:
        if gradual is not None:
            gradual(model)
        x, y = batch
        return loss_fn(m(x), y)

    fit(
        model,
        None,
        loader,
        opt,
        TrainConfig(epochs=epochs, seed=seed, progress=False),
        scheduler=sched,
        compute_loss=compute_loss,
    )
    return model
