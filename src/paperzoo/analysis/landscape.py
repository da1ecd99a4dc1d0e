"""Loss-landscape slices of any model: random, Hessian and Adam axes, five normalisations.

Gabdullin, "Investigating generalization capabilities of neural networks by means of loss
landscapes and Hessian analysis" (arXiv:2412.10146, 2024), and its library LLA
(``GabdullinN/loss-landscape-analysis``, whose landscape engine is a modified copy of
``loss-landscapes``). A 2-D landscape is ``L(theta + a d1 + b d2)`` on a ``steps x steps`` grid:

* **axes**: random (:func:`random_directions`: uniform ``U[0, 1)`` entries as in LLA, or
  Gaussian; the second direction Gram-Schmidt-orthogonalised to the first over the whole
  vector), **Hessian axes** (:func:`hessian_directions`: the top-2 eigenvectors, the paper's
  remedy for misleading random plots of BatchNorm networks) or **Adam axes**
  (:func:`adam_directions`: the optimiser's first and second moments);
* **normalisation** (:func:`normalize_direction`): none, ``model`` (whole vector), ``layer``
  (each parameter tensor), ``filter`` (each output filter/row of a >=2-D tensor; 1-D tensors
  as a whole, rescaled once; Li et al.'s filter normalisation) or ``weight`` (``d * theta``);
* **grid** (:func:`loss_surface_2d`): the directions are scaled by ``dist / steps`` and the
  points are the exact regular grid ``theta + i d1 + j d2``, ``i, j`` in
  ``{-steps/2, ..., steps/2 - 1}``, so ``theta`` sits at index ``(steps/2, steps/2)`` (the
  alternating-column walk of the original code shifts odd columns by one step; not here);
* **Adam-equation mode** (:func:`adam_eq_surface`): ``L(theta + k_ij C)``,
  ``C = m / (sqrt(v) + 1e-6)``, ``k_ij = a_i / sqrt(b_j)``;
* **cap** (clip values to ``[0, cap]``) and **freeze** (:func:`freeze_direction`).

Every point is evaluated with ``torch.func.functional_call`` (vectorised over grid points with
``vmap``), so the model is never mutated; the train/eval mode is explicit (default eval).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from paperzoo._validation import Interval, Options, check_finite, validate_params
from paperzoo.analysis.hessian import HessianAnalyzer, ParamLayout, _FlatLoss, flat_params

__all__ = [
    "Surface",
    "adam_directions",
    "adam_eq_surface",
    "all_modes",
    "freeze_direction",
    "hessian_directions",
    "landscape_plane",
    "loss_line_1d",
    "loss_surface_2d",
    "losses_at",
    "normalize_direction",
    "plot_surface",
    "random_directions",
]

NORMALIZATIONS = (None, "model", "layer", "filter", "weight")
_EPS = 1e-10  # LLA's guard in the filter-normalisation denominator

_CONSTRAINTS: dict[str, list[Any]] = {
    "count": [Interval(int, 1, math.inf, closed="left")],
    "kind": [Options(("uniform", "normal"))],
    "normalization": [Options(tuple(n for n in NORMALIZATIONS if n is not None)), None],
    "order": [Options((1, 2))],
    "dist": [Interval(float, 0, math.inf, closed="neither")],
    "steps": [Interval(int, 2, math.inf, closed="left")],
    "cap": [Interval(float, 0, math.inf, closed="neither"), None],
    "freeze": [Interval(int, -math.inf, math.inf, closed="neither"), None],
    "chunk_size": [Interval(int, 1, math.inf, closed="left")],
    "axes": [Options(("random", "hessian", "adam"))],
    "eps": [Interval(float, 0, math.inf, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def _check(owner: str, **params: Any) -> None:
    validate_params(_CONSTRAINTS, params, owner=owner)


# --------------------------------------------------------------------------- directions
def random_directions(
    dim: int,
    count: int = 2,
    *,
    kind: str = "uniform",
    orthogonal: bool = True,
    seed: int = 0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``count`` random directions, (count, P).

    ``kind="uniform"``: entries ``U[0, 1)`` (LLA / loss-landscapes); ``"normal"``: ``N(0, 1)``
    (Li et al.). With ``orthogonal`` every direction is Gram-Schmidt-orthogonalised against the
    earlier ones over the whole flat vector (lengths are kept; normalise afterwards). The draws
    come from ``generator`` if given, else from a generator seeded with ``seed``.
    """
    _check("random_directions", count=count, kind=kind, seed=seed)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    draw = torch.rand if kind == "uniform" else torch.randn
    out: list[torch.Tensor] = []
    for _ in range(count):
        d = draw(dim, generator=g, dtype=torch.float64)
        if orthogonal:
            for u in out:
                d = d - (d @ u) / (u @ u) * u
        out.append(d)
    return torch.stack(out).to(dtype=dtype, device=device)


def hessian_directions(analyzer: HessianAnalyzer, k: int = 2, **top_eigen_kwargs: Any) -> torch.Tensor:
    """The paper's Hessian axes: the top-``k`` eigenvectors (unit norm, orthogonal), (k, P).

    ``top_eigen_kwargs`` go to :meth:`HessianAnalyzer.top_eigen` (power iteration by largest
    magnitude by default, as in LLA).
    """
    return analyzer.top_eigen(k, **top_eigen_kwargs).vectors


def adam_directions(optimizer: torch.optim.Optimizer, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's Adam axes: Adam's first moment ``exp_avg`` (m) and second moment
    ``exp_avg_sq`` (v) as flat vectors in the layout of :func:`flat_params`; zeros for
    parameters without optimiser state (LLA's ``vec_model_optim``)."""
    _, layout = flat_params(model)
    params = dict(model.named_parameters())
    m, v, found = [], [], 0
    for name, shape in zip(layout.names, layout.shapes):
        state = optimizer.state.get(params[name], {})
        if "exp_avg" in state and "exp_avg_sq" in state:
            m.append(state["exp_avg"].detach().reshape(-1))
            v.append(state["exp_avg_sq"].detach().reshape(-1))
            found += 1
        else:
            zero = torch.zeros(math.prod(shape), dtype=params[name].dtype, device=params[name].device)
            m.append(zero)
            v.append(zero.clone())
    if not found:
        raise ValueError("the optimiser holds no Adam moments (exp_avg / exp_avg_sq) for this model's parameters")
    return torch.cat(m), torch.cat(v)


def _norm(t: torch.Tensor, order: int, dim: int | None = None) -> torch.Tensor:
    return torch.linalg.vector_norm(t, ord=order, dim=dim)


def normalize_direction(
    d: torch.Tensor,
    theta: torch.Tensor,
    layout: ParamLayout,
    normalization: str | None = "filter",
    *,
    order: int = 2,
    skip_1d: bool = False,
) -> torch.Tensor:
    """Rescale a direction (P,) (or each row of (k, P)) relative to the parameters ``theta``.

    * ``None``: unchanged;
    * ``"model"``: ``d * ||theta||_order / ||d||_2`` (LLA: the direction's norm is always L2);
    * ``"layer"``: each parameter tensor rescaled to the ``order``-norm of the same tensor of theta;
    * ``"filter"``: in every tensor with >= 2 dims, each slice along dim 0 (an output filter or
      row) rescaled to the norm of the same slice of theta, ``/ (||d_slice|| + 1e-10)``; 1-D
      tensors (biases, BatchNorm) rescaled once, as a whole;
    * ``"weight"``: ``d * theta`` elementwise (Li et al.'s original code).

    ``skip_1d`` zeroes the 1-D tensors (Li et al.'s option to leave biases and BatchNorm
    parameters out). Norms are proper ``|x|`` norms of ``order`` 1 or 2.
    """
    _check("normalize_direction", normalization=normalization, order=order)
    layout.check_vector(theta, "theta")
    if d.dim() == 2:
        return torch.stack(
            [normalize_direction(r, theta, layout, normalization, order=order, skip_1d=skip_1d) for r in d]
        )
    layout.check_vector(d, "d")
    d = d.to(theta.dtype).clone()
    if normalization == "model":
        d = d * (_norm(theta, order) / torch.linalg.vector_norm(d))
    elif normalization == "weight":
        d = d * theta
    elif normalization in ("layer", "filter"):
        for dt, tt in zip(layout.split(d), layout.split(theta)):  # views of d: edited in place
            if normalization == "layer" or dt.dim() < 2:
                dt.mul_(_norm(tt, order) / (_norm(dt, order) + _EPS))
            else:
                rows_d, rows_t = dt.reshape(dt.shape[0], -1), tt.reshape(tt.shape[0], -1)
                scale = _norm(rows_t, order, dim=1) / (_norm(rows_d, order, dim=1) + _EPS)
                dt.mul_(scale.view(-1, *([1] * (dt.dim() - 1))))
    if skip_1d:
        for dt in layout.split(d):
            if dt.dim() < 2:
                dt.zero_()
    return d


def freeze_direction(d: torch.Tensor, layout: ParamLayout, freeze: int) -> torch.Tensor:
    """Zero the direction on parameter tensors ``freeze, freeze+1, ...`` (``freeze > 0``) or on
    the first ``|freeze|`` tensors (``freeze < 0``), in ``model.parameters()`` order (LLA's
    ``raa``). (P,) or (k, P)."""
    _check("freeze_direction", freeze=freeze)
    n = len(layout.shapes)
    if abs(freeze) >= n or freeze == 0:
        raise ValueError(f"freeze must be a non-zero int with |freeze| < {n} (the number of parameter tensors)")
    d = d.clone()
    starts = np.cumsum([0, *layout.numels])
    lo, hi = (starts[freeze], starts[-1]) if freeze > 0 else (0, starts[-freeze])
    d[..., int(lo) : int(hi)] = 0
    return d


# --------------------------------------------------------------------------- evaluation
def losses_at(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    thetas: torch.Tensor,
    *,
    mode: str = "eval",
    chunk_size: int = 16,
) -> torch.Tensor:
    """The loss at many flat parameter vectors (G, P) -> (G,), without touching the model.

    Points are evaluated ``chunk_size`` at a time with ``vmap(functional_call)``; a model that
    ``vmap`` cannot batch falls back to one point at a time (with a warning).
    """
    _check("losses_at", chunk_size=chunk_size)
    f = _FlatLoss(model, loss_fn, data, mode)
    if thetas.dim() != 2 or thetas.shape[1] != f.layout.dim:
        raise ValueError(f"thetas must have shape (G, {f.layout.dim}), got {tuple(thetas.shape)}")
    thetas = thetas.to(dtype=f.theta.dtype, device=f.theta.device)
    out = []
    with torch.no_grad(), f.mode():
        batched = vmap(f)
        for chunk in thetas.split(chunk_size):
            if batched is not None:
                try:
                    out.append(batched(chunk))
                    continue
                except (RuntimeError, NotImplementedError) as err:
                    warnings.warn(f"vmap failed on this model ({err}); evaluating grid points one by one", stacklevel=2)
                    batched = None
            out.append(torch.stack([f(t) for t in chunk]))
    return torch.cat(out)


@dataclass(frozen=True)
class Surface:
    """A loss surface: ``loss[i, j] = L(theta + a[i] d1 + b[j] d2)`` (for the Adam-equation
    mode ``L(theta + a[i] / sqrt(b[j]) C)``), with the coordinates ``a`` (I,) and ``b`` (J,), the
    directions used (2, P) (as given or normalised, unscaled: ``a`` and ``b`` carry the step) and
    ``L(theta)``."""

    a: torch.Tensor
    b: torch.Tensor
    loss: torch.Tensor
    center_loss: float
    directions: torch.Tensor | None = None


def _grid(dist: float, steps: int, center: bool) -> torch.Tensor:
    idx = torch.arange(steps, dtype=torch.float64) - (steps // 2 if center else 0)
    return idx * (dist / steps)


def _prepare(d: torch.Tensor, layout: ParamLayout, name: str, freeze: int | None) -> torch.Tensor:
    layout.check_vector(d, name)
    return d if freeze is None else freeze_direction(d, layout, freeze)


def loss_surface_2d(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    d1: torch.Tensor,
    d2: torch.Tensor,
    *,
    dist: float = 1.0,
    steps: int = 40,
    center: bool = True,
    cap: float | None = None,
    freeze: int | None = None,
    mode: str = "eval",
    chunk_size: int = 16,
) -> Surface:
    """``L(theta + a_i d1 + b_j d2)`` on the exact regular ``steps x steps`` grid.

    ``a_i = i * dist / steps`` with ``i`` in ``{-steps//2, ..., steps - 1 - steps//2}``
    (``center=True``: theta at index ``(steps//2, steps//2)``) or ``{0, ..., steps - 1}``
    (``center=False``: theta at a corner); the same for ``b_j``. ``d1``, ``d2`` are (P,) flat
    directions, already normalised (:func:`normalize_direction`). ``cap`` clips the values to
    ``[0, cap]``; ``freeze`` zeroes the directions on some parameter tensors
    (:func:`freeze_direction`). The model is not modified.
    """
    _check("loss_surface_2d", dist=float(dist), steps=steps, cap=None if cap is None else float(cap), freeze=freeze)
    theta, layout = flat_params(model)
    d1 = _prepare(d1.to(theta.dtype), layout, "d1", freeze)
    d2 = _prepare(d2.to(theta.dtype), layout, "d2", freeze)
    a = _grid(float(dist), steps, center)
    b = a.clone()
    A, B = a.to(theta.dtype), b.to(theta.dtype)
    pts = theta[None, None, :] + A[:, None, None] * d1[None, None, :] + B[None, :, None] * d2[None, None, :]
    loss = losses_at(model, loss_fn, data, pts.reshape(-1, layout.dim), mode=mode, chunk_size=chunk_size)
    loss = loss.reshape(steps, steps).double()
    if cap is not None:
        loss = loss.clamp(0.0, float(cap))
    center_loss = float(losses_at(model, loss_fn, data, theta[None], mode=mode)[0])
    return Surface(a, b, loss, center_loss, torch.stack([d1, d2]))


def loss_line_1d(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    d: torch.Tensor,
    *,
    dist: float = 1.0,
    steps: int = 40,
    center: bool = True,
    freeze: int | None = None,
    mode: str = "eval",
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, L(theta + t_i d))`` along one direction, ``t_i = i * dist / steps`` on the same
    grid as :func:`loss_surface_2d`."""
    _check("loss_line_1d", dist=float(dist), steps=steps, freeze=freeze)
    theta, layout = flat_params(model)
    d = _prepare(d.to(theta.dtype), layout, "d", freeze)
    t = _grid(float(dist), steps, center)
    pts = theta[None, :] + t.to(theta.dtype)[:, None] * d[None, :]
    return t, losses_at(model, loss_fn, data, pts, mode=mode, chunk_size=chunk_size).double()


def adam_eq_surface(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    steps: int = 40,
    b_sqrt: bool = True,
    eps: float = 1e-6,
    cap: float | None = None,
    mode: str = "eval",
    chunk_size: int = 16,
) -> Surface:
    """The paper's Adam-equation landscape: ``L(theta + k_ij C)``, ``C = m / (sqrt(v) + eps)``.

    ``k_ij = a_i / sqrt(b_j)`` with ``a = arange(-1, 1, 2/steps)`` and
    ``b = arange(0.1, 2.1, 2/steps)`` (``b_sqrt=True``), or ``k_ij = a_i / b_j`` with
    ``b = arange(-1, 1, 2/steps)`` (``b_sqrt=False``; as in LLA, ``b`` then passes near 0 and the
    step explodes there: cap the values). ``m``, ``v``: Adam's moments (:func:`adam_directions`).
    """
    _check("adam_eq_surface", steps=steps, eps=float(eps), cap=None if cap is None else float(cap))
    theta, layout = flat_params(model)
    m, v = m.to(theta.dtype), v.to(theta.dtype)
    layout.check_vector(m, "m")
    layout.check_vector(v, "v")
    if bool((v < 0).any()):
        raise ValueError("v (Adam's second moment) must be non-negative")
    C = m / (v.sqrt() + eps)
    a = torch.from_numpy(np.arange(-1.0, 1.0, 2.0 / steps))
    b = torch.from_numpy(np.arange(0.1, 2.1, 2.0 / steps) if b_sqrt else np.arange(-1.0, 1.0, 2.0 / steps))
    k = a[:, None] / (b.sqrt() if b_sqrt else b)[None, :]
    pts = theta[None, :] + k.reshape(-1, 1).to(theta.dtype) * C[None, :]
    loss = losses_at(model, loss_fn, data, pts, mode=mode, chunk_size=chunk_size).reshape(len(a), len(b)).double()
    if cap is not None:
        loss = loss.nan_to_num(nan=float(cap), posinf=float(cap)).clamp(0.0, float(cap))
    center_loss = float(losses_at(model, loss_fn, data, theta[None], mode=mode)[0])
    return Surface(a, b, loss, center_loss, torch.stack([m, v]))


# --------------------------------------------------------------------------- the LLA front end
def landscape_plane(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    *,
    axes: str = "random",
    normalization: str | None = "filter",
    order: int = 2,
    skip_1d: bool = False,
    kind: str = "uniform",
    directions: torch.Tensor | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    analyzer: HessianAnalyzer | None = None,
    seed: int = 0,
    dist: float = 1.0,
    steps: int = 40,
    cap: float | None = None,
    freeze: int | None = None,
    mode: str = "eval",
    chunk_size: int = 16,
) -> Surface:
    """One LLA landscape (``viz_lla``): choose the axes, normalise them, evaluate the grid.

    ``axes``: ``"random"`` (:func:`random_directions` of ``kind``, seeded), ``"hessian"`` (the
    top-2 eigenvectors of the loss on ``data``, or of ``analyzer``'s loss) or ``"adam"``
    (``optimizer``'s moments). ``directions`` (2, P) overrides ``axes`` (e.g. one shared random
    pair under several normalisations). Then :func:`normalize_direction` and
    :func:`loss_surface_2d`.
    """
    _check("landscape_plane", axes=axes, normalization=normalization, order=order, seed=seed, kind=kind)
    theta, layout = flat_params(model)
    if directions is not None:
        if directions.shape != (2, layout.dim):
            raise ValueError(f"directions must have shape (2, {layout.dim}), got {tuple(directions.shape)}")
        check_finite(directions, "directions")
        dirs = directions.to(theta.dtype)
    elif axes == "random":
        dirs = random_directions(layout.dim, 2, kind=kind, seed=seed, dtype=theta.dtype, device=theta.device)
    elif axes == "hessian":
        ha = analyzer if analyzer is not None else HessianAnalyzer(model, loss_fn, data, mode=mode)
        dirs = hessian_directions(ha, 2, seed=seed)
    else:
        if optimizer is None:
            raise ValueError("axes='adam' needs the optimizer that trained the model")
        dirs = torch.stack(adam_directions(optimizer, model))
    dirs = normalize_direction(dirs, theta, layout, normalization, order=order, skip_1d=skip_1d)
    return loss_surface_2d(
        model, loss_fn, data, dirs[0], dirs[1], dist=dist, steps=steps, cap=cap, freeze=freeze, mode=mode,
        chunk_size=chunk_size,
    )  # fmt: skip


def all_modes(second_axes: str = "hessian") -> list[dict[str, Any]]:
    """LLA's ``all_modes`` preset as keyword sets for :func:`landscape_plane` / :func:`adam_eq_surface`:
    one shared random pair with no normalisation, ``weight``, ``filter`` (L1) and ``filter`` (L2);
    the same four on ``second_axes`` (``"hessian"`` or ``"adam"``); for Adam axes also the
    Adam-equation mode with no normalisation and with filter normalisation (``"adameq": True``)."""
    _check("all_modes", axes=second_axes)
    if second_axes == "random":
        raise ValueError("second_axes must be 'hessian' or 'adam'")
    norms = [(None, 2), ("weight", 2), ("filter", 1), ("filter", 2)]
    out = [{"axes": "random", "normalization": n, "order": o, "shared": True} for n, o in norms]
    out += [{"axes": second_axes, "normalization": n, "order": o} for n, o in norms]
    if second_axes == "adam":
        out += [{"axes": "adam", "normalization": n, "order": 2, "adameq": True} for n in (None, "filter")]
    return out


# --------------------------------------------------------------------------- plotting
def plot_surface(ax: Any, surface: Surface, *, levels: int = 30, log: bool = False, **kw: Any) -> Any:
    """A filled contour plot of a surface (``log``: of ``log10`` of the loss)."""
    z = surface.loss.numpy()
    if log:
        z = np.log10(np.clip(z, 1e-12, None))
    A, B = np.meshgrid(surface.a.numpy(), surface.b.numpy(), indexing="ij")
    cs = ax.contourf(A, B, z, levels=levels, **kw)
    ax.set_xlabel("a (direction 1)")
    ax.set_ylabel("b (direction 2)")
    return cs
