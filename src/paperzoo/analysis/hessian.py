"""Hessian spectra of any model's loss, and the Hessian generalisation criteria of LLA.

Gabdullin, "Investigating generalization capabilities of neural networks by means of loss
landscapes and Hessian analysis" (arXiv:2412.10146, 2024), and its library Loss Landscape
Analysis (LLA, ``GabdullinN/loss-landscape-analysis``). Everything works from the loss
``L(theta) = loss_fn(model(x), y)`` of a fixed batch (or the size-weighted mean over several
batches), through Hessian-vector products (HVPs) only:

* **HVP** (:class:`HessianAnalyzer`, ``.hvp``): ``Hv`` with ``torch.func``: the ``vjp`` of
  ``grad(L)`` through a gradient graph built once per batch (H is symmetric, so its vjp is the
  HVP), batched over vectors with ``vmap``; or forward-over-reverse ``jvp(grad(L), (theta,),
  (v,))`` (nothing kept between HVPs); or double back-propagation (LLA's and PyHessian's way). The
  model is never mutated: parameters enter through ``torch.func.functional_call``; the train/eval
  mode is an explicit argument (default eval) and in train mode BatchNorm uses batch statistics
  without touching its running buffers.
* **Top eigenpairs** (:func:`power_iteration`, LLA's ``eigs_calc``): power iteration with
  deflation by re-orthogonalisation; it converges to the eigenvalues of largest *magnitude*.
  :func:`lanczos_top_eigen` finds the same pairs with far fewer HVPs (Lanczos with full
  re-orthogonalisation and a residual stopping rule).
* **Trace** (:func:`hutchinson_trace`, LLA's ``tr_calc``): Hutchinson's estimator with
  Rademacher probes and LLA's running-mean stopping rule.
* **Eigenvalue spectral density** (:func:`slq`, LLA's ``esd_calc``): stochastic Lanczos
  quadrature. Lanczos from a normalised Rademacher vector builds the tridiagonal ``T``; its
  eigenvalues are the quadrature nodes and the squared first components of its eigenvectors the
  weights (they sum to 1). Re-orthogonalisation against all basis vectors (PyHessian) or only
  the last few (LLA's memory cap).
* **Density for plotting** (:func:`esd_density`, LLA's ``density_plot``): Gaussian smoothing
  of the nodes with variance ``1e-5 * max(1, range)`` on a 10,000-point grid.
* **The paper's Hessian criteria** (:func:`hessian_criteria`): ``re = |lambda_min / lambda_max|``
  and ``Kh_n = sum_{lambda<0} |lambda w|^n / sum_{lambda>0} (lambda w)^n`` (``n = 0.5``: the
  paper's "KH05") per SLQ run, averaged over runs; :func:`exact_hessian_criteria` for an exact
  spectrum (uniform weights ``1/P``). Small values mean a spectrum dominated by positive
  curvature; the paper proposes that their rise on a new data set signals a drop in accuracy
  there (:func:`generalization_shift_report`).
* **Exact reference** (:func:`exact_hessian`): the dense Hessian by
  ``torch.autograd.functional.hessian``, for small models (tests and speed comparisons).

The core algorithms are pure functions of a symmetric linear operator (``matvec``, a function
mapping a flat ``(P,)`` vector to ``(P,)``), so they also run on any matrix-free operator.
Loss-landscape slices live in :mod:`paperzoo.analysis.landscape`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = [
    "EigenResult",
    "HessianAnalyzer",
    "LanczosResult",
    "ParamLayout",
    "SLQResult",
    "ShiftReport",
    "TraceResult",
    "as_batches",
    "esd_density",
    "exact_hessian",
    "exact_hessian_criteria",
    "flat_params",
    "generalization_shift_report",
    "hessian_criteria",
    "hutchinson_trace",
    "lanczos",
    "lanczos_top_eigen",
    "plot_esd",
    "plot_spectrum",
    "power_iteration",
    "rademacher",
    "slq",
]

MatVec = Callable[[torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]

_POS_INT = Interval(int, 1, math.inf, closed="left")
_NONNEG_FLOAT = Interval(float, 0, math.inf, closed="left")
_POS_FLOAT = Interval(float, 0, math.inf, closed="neither")
_CONSTRAINTS: dict[str, list[Any]] = {
    "k": [_POS_INT],
    "n_iter": [_POS_INT],
    "m": [_POS_INT],
    "n_v": [_POS_INT],
    "tol": [_NONNEG_FLOAT],
    "norm_eps": [_NONNEG_FLOAT],
    "breakdown_tol": [_NONNEG_FLOAT],
    "reorth": [Options(("full",)), Interval(int, 0, math.inf, closed="left")],
    "which": [Options(("LM", "LA", "SA"))],
    "method": [Options(("power", "lanczos"))],
    "mode": [Options(("eval", "train"))],
    "backend": [Options(("func", "func-jvp", "autograd"))],
    "n": [Interval(float, -math.inf, math.inf, closed="neither")],
    "num_bins": [Interval(int, 2, math.inf, closed="left")],
    "sigma2": [_POS_FLOAT],
    "ext": [_NONNEG_FLOAT],
    "block": [_POS_INT],
    "max_dim": [_POS_INT],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def _check(owner: str, **params: Any) -> None:
    validate_params(_CONSTRAINTS, params, owner=owner)


# --------------------------------------------------------------------------- parameters as one vector
@dataclass(frozen=True)
class ParamLayout:
    """How a model's trainable parameters map to one flat vector (``model.parameters()`` order)."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def dim(self) -> int:
        """P, the number of trainable parameters."""
        return sum(self.numels)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of a flat ``(P,)`` vector shaped like the parameter tensors."""
        return [c.view(s) for c, s in zip(flat.split(self.numels), self.shapes)]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: view}`` of a flat ``(P,)`` vector, for ``torch.func.functional_call``."""
        return dict(zip(self.names, self.split(flat)))

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """One flat vector from tensors shaped like the parameters (in layout order)."""
        if len(tensors) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} tensors, got {len(tensors)}")
        for t, s, name in zip(tensors, self.shapes, self.names):
            if t.shape != s:
                raise ValueError(f"tensor for {name!r} must have shape {tuple(s)}, got {tuple(t.shape)}")
        return torch.cat([t.reshape(-1) for t in tensors])

    def check_vector(self, v: torch.Tensor, name: str = "v") -> None:
        """``v`` must be a finite floating tensor of shape ``(P,)``."""
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape ({self.dim},)")
        if v.shape != (self.dim,):
            raise ValueError(f"{name} must have shape ({self.dim},), got {tuple(v.shape)}")
        check_finite(v, name)


def flat_params(model: nn.Module) -> tuple[torch.Tensor, ParamLayout]:
    """A detached copy of the model's trainable parameters as one flat vector, and its layout."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    layout = ParamLayout(tuple(n for n, _ in named), tuple(p.shape for _, p in named))
    theta = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
    return theta, layout


def as_batches(data: Any) -> list[Batch]:
    """``(x, y)`` or a sequence / iterable of ``(x, y)`` batches as a checked list of batches.

    Every ``x`` is a tensor with at least one row and ``y`` a tensor with as many rows. The loss
    over several batches is their size-weighted mean (the mean over all samples for a
    mean-reduced loss).
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        batches = [(data[0], data[1])]
    else:
        try:
            batches = [tuple(b) for b in data]
        except TypeError:
            raise TypeError("data must be a batch (x, y) or an iterable of (x, y) batches") from None
    if not batches:
        raise ValueError("empty data: give at least one (x, y) batch")
    out: list[Batch] = []
    for i, b in enumerate(batches):
        if len(b) != 2 or not all(isinstance(t, torch.Tensor) for t in b):
            raise TypeError(f"batch {i} must be a pair (x, y) of tensors")
        x, y = b
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"empty batch: batch {i} has no samples")
        if y.dim() == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"batch {i}: y must have {x.shape[0]} rows like x, got shape {tuple(y.shape)}")
        check_finite(x, f"batch {i} x")
        out.append((x, y))
    return out


@contextmanager
def _training_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Set every submodule's train/eval flag for the duration, then restore each one."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, t in flags:
            m.training = t


def _buffers_for(model: nn.Module, train: bool) -> dict[str, torch.Tensor | None]:
    """The buffers to pass to ``functional_call``. In train mode the running statistics of
    BatchNorm-like layers are replaced by ``None``: the layer then normalises with the batch
    statistics (as in training) and updates nothing, so the model's buffers stay untouched."""
    buffers: dict[str, torch.Tensor | None] = dict(model.named_buffers())
    if train:
        for prefix, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                for name, _ in module.named_buffers(recurse=False):
                    buffers[f"{prefix}.{name}" if prefix else name] = None
    return buffers


class _FlatLoss:
    """``L(theta_flat)`` of one model, loss and list of batches (size-weighted mean)."""

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Any, mode: str) -> None:
        _check(type(self).__name__, mode=mode)
        self.model, self.loss_fn, self.train = model, loss_fn, mode == "train"
        self.batches = as_batches(data)
        sizes = [int(x.shape[0]) for x, _ in self.batches]
        self.weights = [n / sum(sizes) for n in sizes]
        self.theta, self.layout = flat_params(model)
        self.buffers = _buffers_for(model, self.train)

    def mode(self) -> Any:
        return _training_mode(self.model, self.train)

    def outputs(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs at parameters ``flat`` (no parameter or buffer is touched)."""
        return functional_call(self.model, (self.layout.unflatten(flat), self.buffers), (x,))

    def batch_loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(self.outputs(flat, x), y)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar (mean-reduced) loss, got shape {tuple(loss.shape)}")
        return loss

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        total = flat.new_zeros(())
        for w, (x, y) in zip(self.weights, self.batches):
            total = total + w * self.batch_loss(flat, x, y)
        return total


# --------------------------------------------------------------------------- small linear-algebra helpers
def rademacher(
    dim: int, generator: torch.Generator | None = None, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """A Rademacher vector (entries +-1 with probability 1/2): ``randint(0, 2) * 2 - 1``."""
    return (torch.randint(0, 2, (dim,), generator=generator) * 2 - 1).to(dtype)


def _orthonormalize(v: torch.Tensor, basis: torch.Tensor | None, eps: float = 0.0) -> torch.Tensor:
    """``v`` minus its projection on the orthonormal rows of ``basis`` (twice: "twice is
    enough" for classical Gram-Schmidt), divided by its norm (+ ``eps``)."""
    if basis is not None and basis.shape[0] > 0:
        for _ in range(2):
            v = v - basis.T @ (basis @ v)
    return v / (torch.linalg.vector_norm(v) + eps)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class EigenResult:
    """Top eigenpairs: ``values`` (k,) in the order found, ``vectors`` (k, P) orthonormal rows,
    ``iterations`` (HVPs spent per eigenpair for power iteration; the Lanczos steps for Lanczos)."""

    values: torch.Tensor
    vectors: torch.Tensor
    iterations: tuple[int, ...]


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson's estimate ``trace`` (mean of ``samples`` = v^T H v), and whether the
    running-mean stopping rule fired before ``n_iter`` probes."""

    trace: float
    samples: torch.Tensor
    converged: bool


@dataclass(frozen=True)
class LanczosResult:
    """The Lanczos tridiagonal (diagonal ``alpha`` (j,), off-diagonal ``beta`` (j-1,)) after ``j``
    steps; ``basis`` (j, P) if it was kept; ``breakdown`` when an invariant subspace ended it."""

    alpha: torch.Tensor
    beta: torch.Tensor
    basis: torch.Tensor | None
    breakdown: bool

    @property
    def steps(self) -> int:
        return int(self.alpha.shape[0])

    def tridiagonal(self) -> torch.Tensor:
        """T, (j, j), float64."""
        a, b = self.alpha.double(), self.beta.double()
        return torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (ascending) and eigenvectors of T: the Ritz values and, in the columns,
        the coordinates of the Ritz vectors in the Lanczos basis."""
        return torch.linalg.eigh(self.tridiagonal())


@dataclass(frozen=True)
class SLQResult:
    """Stochastic Lanczos quadrature: per run, the nodes (Ritz values) and the weights (squared
    first components of T's eigenvectors; non-negative, summing to 1). Runs may have different
    lengths when Lanczos found an invariant subspace early."""

    nodes: tuple[torch.Tensor, ...]
    weights: tuple[torch.Tensor, ...]
    steps: tuple[int, ...] = field(default=())

    def criteria(self, n: float = 0.5) -> tuple[float, float]:
        """``(re, Kh_n)`` of these runs (:func:`hessian_criteria`)."""
        return hessian_criteria(self.nodes, self.weights, n)

    def density(
        self, num_bins: int = 10_000, sigma2: float = 1e-5, ext: float = 1e-3
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grid, density)`` for plotting (:func:`esd_density`)."""
        return esd_density(self.nodes, self.weights, num_bins=num_bins, sigma2=sigma2, ext=ext)

    @property
    def lambda_max(self) -> float:
        """Mean over runs of the largest node (a Lanczos estimate of the top eigenvalue)."""
        return float(torch.stack([t.max() for t in self.nodes]).mean())

    @property
    def lambda_min(self) -> float:
        return float(torch.stack([t.min() for t in self.nodes]).mean())


# --------------------------------------------------------------------------- core algorithms
def power_iteration(
    matvec: MatVec,
    dim: int,
    k: int = 2,
    n_iter: int = 100,
    tol: float = 1e-3,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    norm_eps: float = 0.0,
) -> EigenResult:
    """The ``k`` eigenpairs of largest magnitude by power iteration with deflation (LLA's
    ``eigs_calc``, PyHessian's ``eigenvalues``).

    For each pair: ``v ~ N(0, I)`` normalised; repeat up to ``n_iter`` times: orthogonalise ``v``
    against the pairs already found and normalise, ``w = H v``, ``lambda = w^T v``,
    ``v = w / ||w||``; stop when ``|lambda - lambda_prev| / (|lambda_prev| + 1e-6) < tol``.
    Each iteration is one HVP. Converges to the largest ``|lambda|`` (a negative eigenvalue can be
    "top"); the rate is the ratio of the first two magnitudes.

    Args:
        matvec: the symmetric operator, ``(P,) -> (P,)``.
        dim: P.
        norm_eps: added to norms when normalising (LLA adds 1e-6; 0 gives the exact Rayleigh
            quotient).

    Returns:
        :class:`EigenResult` with orthonormal eigenvector rows.
    """
    _check("power_iteration", k=k, n_iter=n_iter, tol=float(tol), norm_eps=float(norm_eps))
    _check_dim(dim, k)
    vals: list[float] = []
    vecs: list[torch.Tensor] = []
    iters: list[int] = []
    for _ in range(k):
        basis = torch.stack(vecs) if vecs else None
        v = torch.randn(dim, generator=generator, dtype=dtype).to(device)
        v = v / (torch.linalg.vector_norm(v) + norm_eps)
        lam: float | None = None
        used = 0
        for _ in range(n_iter):
            v = _orthonormalize(v, basis, norm_eps)
            w = matvec(v)
            used += 1
            new = float(w @ v)
            w_norm = torch.linalg.vector_norm(w)
            if w_norm == 0:  # v in the null space: the remaining spectrum is 0
                lam = 0.0
                break
            v = w / (w_norm + norm_eps)
            done = lam is not None and abs(new - lam) / (abs(lam) + 1e-6) < tol
            lam = new
            if done:
                break
        vals.append(float(lam if lam is not None else 0.0))
        vecs.append(_orthonormalize(v, basis))
        iters.append(used)
    return EigenResult(torch.tensor(vals, dtype=torch.float64), torch.stack(vecs), tuple(iters))


def lanczos(
    matvec: MatVec,
    v0: torch.Tensor,
    m: int = 100,
    *,
    reorth: str | int = "full",
    breakdown_tol: float = 1e-10,
    keep_basis: bool = False,
    callback: Callable[[torch.Tensor, torch.Tensor, float], bool] | None = None,
) -> LanczosResult:
    """``m`` steps of the Lanczos three-term recurrence from ``v0`` (PyHessian's / LLA's SLQ inner loop).

    ``v1 = v0 / ||v0||``; ``alpha_j = v_j^T H v_j``; ``w = H v_j - alpha_j v_j - beta_{j-1} v_{j-1}``;
    ``beta_j = ||w||``; ``v_{j+1} = w / beta_j``, re-orthogonalised against every basis vector
    (``reorth="full"``) or only the last ``reorth`` ones (LLA's memory cap ``max_v``; ``0``: none).
    When ``beta_j <= breakdown_tol * max(|alpha|, beta)`` the Krylov subspace is invariant: the
    recurrence stops there (fewer than ``m`` steps) and T's eigenvalues are exact eigenvalues of H.

    Args:
        callback: called after each step with ``(alpha, beta, beta_next)`` (the coefficients so
            far and the norm of the next residual); returning True stops the recurrence.
    """
    _check("lanczos", m=m, reorth=reorth, breakdown_tol=float(breakdown_tol))
    if not isinstance(v0, torch.Tensor) or v0.dim() != 1 or not v0.is_floating_point():
        raise ValueError("v0 must be a floating-point vector of shape (P,)")
    check_finite(v0, "v0")
    v0_norm = torch.linalg.vector_norm(v0)
    if v0_norm == 0:
        raise ValueError("v0 must be non-zero")
    full = reorth == "full"
    cap = None if full else int(reorth)
    v = v0 / v0_norm
    kept: list[torch.Tensor] = [v]  # basis vectors used for re-orthogonalisation (all, or the last `cap`)
    every: list[torch.Tensor] = [v] if keep_basis else []
    alphas: list[float] = []
    betas: list[float] = []
    v_prev: torch.Tensor | None = None
    beta_prev = 0.0
    scale = 0.0
    breakdown = False
    for j in range(m):
        w = matvec(v)
        a = float(w @ v)
        alphas.append(a)
        w = w - a * v
        if v_prev is not None:
            w = w - beta_prev * v_prev
        beta = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(a), beta_prev)
        stop = callback is not None and callback(torch.tensor(alphas), torch.tensor(betas), beta)
        if j == m - 1 or stop:
            break
        if beta <= breakdown_tol * scale:
            breakdown = True
            break
        betas.append(beta)
        v_new = w / beta
        if cap is None or cap > 0:
            ref = kept if cap is None else kept[-cap:]
            v_new = _orthonormalize(v_new, torch.stack(ref))
        v_prev, v, beta_prev = v, v_new, beta
        kept.append(v)
        if cap is not None and len(kept) > max(cap, 2):
            kept = kept[-max(cap, 2) :]
        if keep_basis:
            every.append(v)
    alpha_t = torch.tensor(alphas, dtype=torch.float64)
    beta_t = torch.tensor(betas, dtype=torch.float64)
    basis = torch.stack(every[: len(alphas)]) if keep_basis else None
    return LanczosResult(alpha_t, beta_t, basis, breakdown)


def slq(
    matvec: MatVec,
    dim: int,
    m: int = 100,
    n_v: int = 1,
    *,
    reorth: str | int = "full",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    breakdown_tol: float = 1e-10,
) -> SLQResult:
    """Stochastic Lanczos quadrature of the eigenvalue spectral density (LLA's ``esd_calc``).

    ``n_v`` runs, each: a Rademacher start vector (``randint(0, 2) * 2 - 1``, drawn from
    ``generator``, normalised), :func:`lanczos` with ``m`` steps, ``T = U Lambda U^T``; nodes
    ``Lambda_kk``, weights ``U_0k^2``. ``sum_k w_k lambda_k = v_1^T H v_1``; with ``m >= P`` and
    full re-orthogonalisation the nodes are the distinct eigenvalues of H reachable from ``v_1``.
    """
    _check("slq", m=m, n_v=n_v)
    _check_dim(dim, 1)
    nodes, weights, steps = [], [], []
    for _ in range(n_v):
        v0 = rademacher(dim, generator, dtype=dtype).to(device)
        res = lanczos(matvec, v0, m, reorth=reorth, breakdown_tol=breakdown_tol)
        lam, U = res.ritz()
        nodes.append(lam)
        weights.append(U[0] ** 2)
        steps.append(res.steps)
    return SLQResult(tuple(nodes), tuple(weights), tuple(steps))


def lanczos_top_eigen(
    matvec: MatVec,
    dim: int,
    k: int = 2,
    n_iter: int = 100,
    tol: float = 1e-3,
    *,
    which: str = "LM",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> EigenResult:
    """The ``k`` extreme eigenpairs from one Lanczos run (full re-orthogonalisation, basis kept).

    Stops after ``n_iter`` steps, at an invariant subspace, or once every wanted Ritz pair has a
    relative residual ``||H x - theta x|| / |theta| = beta_j |y_last| / |theta| < tol`` (the
    eigenvalue error is then of order ``tol^2 ||H||``). ``which``: ``"LM"`` largest magnitude (the
    pairs power iteration finds), ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic. The
    start vector is ``N(0, I)``. Returns pairs sorted as ``which`` ranks them.
    """
    _check("lanczos_top_eigen", k=k, n_iter=n_iter, tol=float(tol), which=which)
    _check_dim(dim, k)

    def pick(lam: torch.Tensor) -> torch.Tensor:
        key = lam.abs() if which == "LM" else (lam if which == "LA" else -lam)
        return torch.argsort(key, descending=True)[:k]

    def converged(alpha: torch.Tensor, beta: torch.Tensor, beta_next: float) -> bool:
        j = alpha.shape[0]
        if j < k:
            return False
        T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
        lam, U = torch.linalg.eigh(T.double())
        idx = pick(lam)
        resid = beta_next * U[-1, idx].abs()
        return bool((resid <= tol * lam[idx].abs().clamp_min(1e-300)).all())

    v0 = torch.randn(dim, generator=generator, dtype=dtype).to(device)
    res = lanczos(matvec, v0, min(n_iter, dim), reorth="full", keep_basis=True, callback=converged)
    lam, U = res.ritz()
    idx = pick(lam)[: min(k, res.steps)]
    assert res.basis is not None
    vectors = (U[:, idx].T.to(res.basis.dtype)) @ res.basis
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    return EigenResult(lam[idx].clone(), vectors, (res.steps,) * len(idx))


def hutchinson_trace(
    matvec: MatVec,
    dim: int,
    n_iter: int = 100,
    tol: float = 1e-3,
    *,
    generator: torch.Generator | None = None,
    probes: torch.Tensor | None = None,
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    block: int = 1,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> TraceResult:
    """Hutchinson's trace estimate ``mean_i v_i^T H v_i`` with Rademacher probes (LLA's ``tr_calc``).

    Stops after probe ``i >= 2`` when the running mean changed by less than
    ``tol * (|previous mean| + 1e-6)``, or after ``n_iter`` probes. Probes are drawn one by one from
    ``generator`` (or taken from the rows of ``probes``); with ``matmat`` (``(B, P) -> (B, P)``) they
    are evaluated ``block`` at a time, with the same result as one at a time (the stopping rule
    runs over the same sequence; at most ``block - 1`` HVPs are spent past the stop).
    """
    _check("hutchinson_trace", n_iter=n_iter, tol=float(tol), block=block)
    _check_dim(dim, 1)
    if probes is not None:
        if probes.dim() != 2 or probes.shape[1] != dim or probes.shape[0] == 0:
            raise ValueError(f"probes must have shape (k, {dim}) with k >= 1, got {tuple(probes.shape)}")
        n_iter = probes.shape[0]
    samples: list[float] = []
    done = False
    i = 0
    while i < n_iter and not done:
        b = min(block if matmat is not None else 1, n_iter - i)
        if probes is not None:
            V = probes[i : i + b].to(dtype=dtype, device=device)
        else:
            V = torch.stack([rademacher(dim, generator, dtype=dtype) for _ in range(b)]).to(device)
        HV = matmat(V) if matmat is not None else matvec(V[0])[None]
        vals = (HV * V).sum(dim=1).tolist()
        for val in vals:
            prev = sum(samples) / len(samples) if samples else None
            samples.append(val)
            if prev is not None and abs(sum(samples) / len(samples) - prev) / (abs(prev) + 1e-6) < tol:
                done = True
                break
        i += b
    s = torch.tensor(samples, dtype=torch.float64)
    return TraceResult(float(s.mean()), s, done)


def _check_dim(dim: int, k: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if k > dim:
        raise ValueError(f"k must be at most dim = {dim}, got {k}")


# --------------------------------------------------------------------------- criteria and density
def _runs(nodes: Any, weights: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Nodes/weights as a list of (1-D float64, 1-D float64) runs, validated."""
    if isinstance(nodes, torch.Tensor) and nodes.dim() == 1:
        nodes, weights = [nodes], [weights]
    nodes, weights = list(nodes), list(weights)
    if not nodes or len(nodes) != len(weights):
        raise ValueError(f"need as many weight runs as node runs (>= 1), got {len(nodes)} and {len(weights)}")
    out = []
    for r, (lam, w) in enumerate(zip(nodes, weights)):
        lam = torch.as_tensor(lam, dtype=torch.float64).detach().cpu()
        w = torch.as_tensor(w, dtype=torch.float64).detach().cpu()
        if lam.dim() != 1 or lam.shape != w.shape or lam.numel() == 0:
            raise ValueError(f"run {r}: nodes and weights must be non-empty 1-D of one length, got "
                             f"{tuple(lam.shape)} and {tuple(w.shape)}")  # fmt: skip
        check_finite(lam, f"nodes of run {r}")
        check_finite(w, f"weights of run {r}")
        if bool((w < 0).any()):
            raise ValueError(f"run {r}: weights must be non-negative")
        out.append((lam, w))
    return out


def hessian_criteria(nodes: Any, weights: Any, n: float = 0.5) -> tuple[float, float]:
    """The paper's Hessian criteria ``(re, Kh_n)``, averaged over SLQ runs.

    Per run with nodes ``lambda_k`` and weights ``w_k``: ``re = |min_k lambda_k / max_k lambda_k|``
    and ``Kh_n = |sum_{lambda_k<0} |lambda_k w_k|^n / sum_{lambda_k>0} (lambda_k w_k)^n|``
    (``n = 0.5``: "KH05"). Both are invariant to a positive rescaling of the Hessian. Kh_n
    depends on the weights, so on ``m``, the probe and ``n``: compare models at a fixed ``m``,
    ``n_v`` and seed. Division by zero follows IEEE (``x/0 = inf``, ``0/0 = nan``); a negative
    ``n`` warns, as in LLA.

    Args:
        nodes, weights: one run as two 1-D tensors, or sequences of runs.
        n: the power.
    """
    _check("hessian_criteria", n=float(n))
    if n < 0:
        warnings.warn("a negative power n gives meaningless Kh_n values", stacklevel=2)
    re, kh = [], []
    for lam, w in _runs(nodes, weights):
        re.append(float((lam.min() / lam.max()).abs()))
        pos, neg = lam > 0, lam < 0
        num = (lam[neg] * w[neg]).abs().pow(n).sum()
        den = (lam[pos] * w[pos]).pow(n).sum()
        kh.append(float((num / den).abs()))
    return sum(re) / len(re), sum(kh) / len(kh)


def exact_hessian_criteria(eigenvalues: torch.Tensor, n: float = 0.5) -> tuple[float, float]:
    """``(re, Kh_n)`` of an exact spectrum, every eigenvalue with weight ``1/P``: then
    ``Kh_n = sum_{lambda<0} |lambda|^n / sum_{lambda>0} lambda^n`` (P cancels)."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    if lam.dim() != 1 or lam.numel() == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D tensor, got shape {tuple(lam.shape)}")
    return hessian_criteria(lam, torch.full_like(lam, 1.0 / lam.numel()), n)


def esd_density(
    nodes: Any, weights: Any, num_bins: int = 10_000, sigma2: float = 1e-5, ext: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smoothed spectral density of SLQ runs (LLA's ``density_plot``).

    Grid: ``num_bins`` points on ``[mean_r min(lambda) - ext, mean_r max(lambda) + ext]``;
    ``density(t) = mean_r sum_k w_k N(t; lambda_k, s2)`` with variance
    ``s2 = sigma2 * max(1, grid range)``, normalised to integrate to 1 on the grid.

    Returns:
        ``(grid, density)``, both ``(num_bins,)`` float64.
    """
    _check("esd_density", num_bins=num_bins, sigma2=float(sigma2), ext=float(ext))
    runs = _runs(nodes, weights)
    hi = sum(float(lam.max()) for lam, _ in runs) / len(runs) + ext
    lo = sum(float(lam.min()) for lam, _ in runs) / len(runs) - ext
    if not hi > lo:
        raise ValueError("the nodes span an empty range: give ext > 0 for a single-point spectrum")
    grid = torch.linspace(lo, hi, num_bins, dtype=torch.float64)
    s2 = sigma2 * max(1.0, hi - lo)
    dens = torch.zeros(num_bins, dtype=torch.float64)
    for lam, w in runs:  # a handful of runs; each run is one vectorised (bins x nodes) product
        kern = torch.exp(-((grid[:, None] - lam[None, :]) ** 2) / (2.0 * s2)) / math.sqrt(2.0 * math.pi * s2)
        dens += kern @ w
    dens /= len(runs)
    dens /= dens.sum() * (grid[1] - grid[0])
    return grid, dens


# --------------------------------------------------------------------------- the model edge
class HessianAnalyzer:
    """Hessian spectra of ``loss_fn(model(x), y)`` over one batch or several (size-weighted mean).

    Args:
        model: any ``nn.Module``; never mutated (parameters enter via ``functional_call``).
        loss_fn: ``loss_fn(outputs, y) -> scalar`` (mean reduction, e.g. ``nn.CrossEntropyLoss()``).
        data: a batch ``(x, y)`` or an iterable of batches (a ``DataLoader``: the HVP is then the
            size-weighted mean of per-batch HVPs, PyHessian's ``dataloader=`` mode).
        mode: ``"eval"`` (default) or ``"train"`` (BatchNorm with batch statistics, dropout on).
        backend: ``"func"`` (default: ``torch.func.vjp`` of ``torch.func.grad``, the per-batch
            gradient graph built once and kept; vectorised over probe vectors with ``vmap``),
            ``"func-jvp"`` (``torch.func`` forward-over-reverse, ``jvp(grad(L))``: nothing kept
            between HVPs, the least memory, several times slower per HVP on small models) or
            ``"autograd"`` (double back-propagation through a ``create_graph`` gradient, LLA's
            and PyHessian's way).

    The flat parameter vector is ``model.parameters()`` order, trainable parameters only
    (:func:`flat_params`); vectors live in the parameters' dtype and device. ``num_hvp``
    counts the HVPs computed.

    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 2, (16,))
    >>> ha = HessianAnalyzer(model, nn.CrossEntropyLoss(), (x, y))
    >>> H = ha.dense()
    >>> v = torch.randn(ha.dim, dtype=torch.float64)
    >>> bool(torch.allclose(ha.hvp(v), H @ v))
    True
    """

    _parameter_constraints: dict[str, list[Any]] = {"mode": _CONSTRAINTS["mode"], "backend": _CONSTRAINTS["backend"]}

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        mode: str = "eval",
        backend: str = "func",
    ) -> None:
        validate_params(self._parameter_constraints, {"mode": mode, "backend": backend}, owner="HessianAnalyzer")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.f = _FlatLoss(model, loss_fn, data, mode)
        self.mode, self.backend = mode, backend
        self.num_hvp = 0
        self._fns: list[Callable[[torch.Tensor], torch.Tensor]] | None = None
        self._vmap_ok = True

    @property
    def dim(self) -> int:
        return self.f.layout.dim

    @property
    def theta(self) -> torch.Tensor:
        """The flat parameter vector (a copy taken at construction)."""
        return self.f.theta

    @property
    def layout(self) -> ParamLayout:
        return self.f.layout

    def _like(self) -> dict[str, Any]:
        return {"dtype": self.theta.dtype, "device": self.theta.device}

    # ---- values
    def loss(self) -> float:
        """``L(theta)``."""
        with torch.no_grad(), self.f.mode():
            return float(self.f(self.theta))

    def gradient(self) -> torch.Tensor:
        """``grad L(theta)``, (P,)."""
        with self.f.mode():
            return sum(
                w * grad(self.f.batch_loss)(self.theta, x, y) for w, (x, y) in zip(self.f.weights, self.f.batches)
            )

    # ---- Hessian-vector products
    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for one flat vector ``v`` (P,)."""
        self.f.layout.check_vector(v)
        return self._hvp(v.to(**self._like()))

    def hvp_batch(self, V: torch.Tensor) -> torch.Tensor:
        """``H V^T`` row by row: (B, P) -> (B, P), vectorised with ``vmap`` when the model allows."""
        if V.dim() != 2 or V.shape[1] != self.dim:
            raise ValueError(f"V must have shape (B, {self.dim}), got {tuple(V.shape)}")
        check_finite(V, "V")
        V = V.to(**self._like())
        if self.backend != "autograd" and self._vmap_ok:
            try:
                out = self._batched(V)
                self.num_hvp += V.shape[0]
                return out
            except (RuntimeError, NotImplementedError):  # a model vmap cannot batch: fall back to a loop
                self._vmap_ok = False
        return torch.stack([self._hvp(v) for v in V])

    def _hvp(self, v: torch.Tensor) -> torch.Tensor:
        self.num_hvp += 1
        if self.backend == "func-jvp":
            with self.f.mode():
                out = torch.zeros_like(v)
                for w, (x, y) in zip(self.f.weights, self.f.batches):
                    out += w * self._jvp_hvp(v, x, y)
                return out
        out = torch.zeros_like(v)
        for w, fn in zip(self.f.weights, self._cached()):
            out += w * fn(v)
        return out

    def _jvp_hvp(self, v: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward-over-reverse: the directional derivative of the gradient along ``v``."""
        return jvp(grad(lambda t: self.f.batch_loss(t, x, y)), (self.theta,), (v,))[1]

    def _cached(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Per batch, ``v -> H_b v`` through a gradient graph built once and kept: the
        ``torch.func.vjp`` of ``grad(L_b)`` (H is symmetric, so its vjp is the HVP), or
        ``torch.autograd.grad`` of the ``create_graph`` gradient (double back-propagation)."""
        if self._fns is None:
            fns: list[Callable[[torch.Tensor], torch.Tensor]] = []
            with self.f.mode():
                for x, y in self.f.batches:
                    loss_b = partial(self.f.batch_loss, x=x, y=y)
                    if self.backend == "func":
                        _, vjp_fn = vjp(grad(loss_b), self.theta)
                        fns.append(lambda v, fn=vjp_fn: fn(v)[0])
                    else:
                        t = self.theta.clone().requires_grad_(True)
                        (g,) = torch.autograd.grad(loss_b(t), t, create_graph=True)
                        fns.append(
                            lambda v, g=g, t=t: torch.autograd.grad(g, t, grad_outputs=v, retain_graph=True)[0].detach()
                        )
            self._fns = fns
        return self._fns

    def _batched(self, V: torch.Tensor) -> torch.Tensor:
        if self.backend == "func-jvp":
            with self.f.mode():
                out = torch.zeros_like(V)
                for w, (x, y) in zip(self.f.weights, self.f.batches):
                    out += w * vmap(lambda v, x=x, y=y: self._jvp_hvp(v, x, y))(V)
                return out
        out = torch.zeros_like(V)
        for w, fn in zip(self.f.weights, self._cached()):
            out += w * vmap(fn)(V)
        return out

    def release(self) -> None:
        """Free the cached gradient graphs (LLA's ``reset``); they are rebuilt on the next HVP."""
        self._fns = None

    # ---- spectra
    def _generator(self, seed: int) -> torch.Generator:
        _check("HessianAnalyzer", seed=seed)
        return torch.Generator().manual_seed(seed)

    def top_eigen(
        self,
        k: int = 2,
        n_iter: int = 100,
        tol: float = 1e-3,
        seed: int = 0,
        *,
        method: str = "power",
        which: str = "LM",
        norm_eps: float = 0.0,
        progress: bool = True,
    ) -> EigenResult:
        """The ``k`` top eigenpairs: LLA's power iteration (``method="power"``, largest
        magnitude) or Lanczos (``method="lanczos"``, ``which`` = ``"LM"`` | ``"LA"`` | ``"SA"``).
        A progress bar counts HVPs against the most the method may spend (``progress=False``
        silences it; it stops early when the method converges)."""
        _check("HessianAnalyzer.top_eigen", method=method, which=which)
        g = self._generator(seed)
        if method == "power":
            if which != "LM":
                raise ValueError("power iteration finds the largest-magnitude eigenvalues only (which='LM')")
            with self._counted(k * n_iter, "Hessian top eigenpairs (power)", progress) as (hvp, _):
                return power_iteration(hvp, self.dim, k, n_iter, tol, generator=g, norm_eps=norm_eps, **self._like())
        with self._counted(n_iter, "Hessian top eigenpairs (Lanczos)", progress) as (hvp, _):
            return lanczos_top_eigen(hvp, self.dim, k, n_iter, tol, which=which, generator=g, **self._like())

    @contextmanager
    def _counted(self, total: int, desc: str, enabled: bool) -> Iterator[tuple[Callable[..., Any], Callable[..., Any]]]:
        """``(hvp, hvp_batch)`` that advance a progress bar by the HVPs they compute."""
        from paperzoo.engine.progress import progress_bar

        with progress_bar(total=total, desc=desc, enabled=enabled, leave=False) as bar:

            def hvp(v: torch.Tensor) -> torch.Tensor:
                bar.update(1)
                return self._hvp(v)

            def hvp_batch(V: torch.Tensor) -> torch.Tensor:
                bar.update(int(V.shape[0]))
                return self.hvp_batch(V)

            yield hvp, hvp_batch

    def trace(
        self, n_iter: int = 100, tol: float = 1e-3, seed: int = 0, *, block: int | None = None, progress: bool = True
    ) -> TraceResult:
        """Hutchinson's estimate of ``tr(H)``, probes evaluated ``block`` at a time (default: 10
        with ``"func-jvp"``, where ``vmap`` pays off, else 1; the estimate does not depend on it).
        A progress bar counts probes (``progress=False`` silences it)."""
        if block is None:
            block = 10 if self.backend == "func-jvp" else 1
        with self._counted(n_iter, "Hessian trace (Hutchinson)", progress) as (hvp, hvp_batch):
            return hutchinson_trace(
                hvp, self.dim, n_iter, tol, generator=self._generator(seed), matmat=hvp_batch, block=block,
                **self._like(),
            )  # fmt: skip

    def esd(
        self, m: int = 100, n_v: int = 1, seed: int = 0, *, reorth: str | int = "full", progress: bool = True
    ) -> SLQResult:
        """The SLQ spectral density (nodes and weights of ``n_v`` runs of ``m`` Lanczos steps); a
        progress bar counts HVPs (``progress=False`` silences it)."""
        with self._counted(m * n_v, "Hessian spectrum (SLQ)", progress) as (hvp, _):
            return slq(hvp, self.dim, m, n_v, reorth=reorth, generator=self._generator(seed), **self._like())

    def criteria(
        self, n: float = 0.5, *, esd: SLQResult | None = None, m: int = 100, n_v: int = 1, seed: int = 0,
        reorth: str | int = "full", progress: bool = True,
    ) -> tuple[float, float]:  # fmt: skip
        """``(re, Kh_n)`` from ``esd`` or from a fresh :meth:`esd` run."""
        return (esd if esd is not None else self.esd(m, n_v, seed, reorth=reorth, progress=progress)).criteria(n)

    def dense(self, *, max_dim: int = 10_000) -> torch.Tensor:
        """The exact Hessian (P, P) by ``torch.autograd.functional.hessian`` (small models only)."""
        _check("HessianAnalyzer.dense", max_dim=max_dim)
        if self.dim > max_dim:
            raise ValueError(f"the exact Hessian has {self.dim}^2 entries; raise max_dim (now {max_dim}) to allow it")
        with self.f.mode():
            return torch.autograd.functional.hessian(self.f, self.theta)


def exact_hessian(
    model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Any, *, mode: str = "eval", max_dim: int = 10_000
) -> torch.Tensor:
    """The dense Hessian (P, P) of the loss w.r.t. the flat trainable parameters
    (``torch.autograd.functional.hessian``; the reference for small models)."""
    return HessianAnalyzer(model, loss_fn, data, mode=mode).dense(max_dim=max_dim)


# --------------------------------------------------------------------------- generalisation under data shift
@dataclass
class ShiftReport:
    """Per data set: accuracy, loss and the Hessian indicators; and the Spearman rank
    correlation of each indicator with accuracy across the data sets."""

    rows: dict[str, dict[str, float]]
    spearman: dict[str, float]

    INDICATORS = ("re", "kh", "lambda_max", "trace", "loss")


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import spearmanr

    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def generalization_shift_report(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    datasets: Mapping[str, Any],
    *,
    n: float = 0.5,
    m: int = 100,
    n_v: int = 1,
    reorth: str | int = "full",
    seed: int = 0,
    eig_iter: int = 100,
    eig_tol: float = 1e-3,
    trace: bool = True,
    trace_iter: int = 100,
    trace_tol: float = 1e-3,
    mode: str = "eval",
    backend: str = "func",
) -> ShiftReport:
    """The paper's generalisation estimate under data shift, for one model on several data sets.

    For every data set (a batch ``(x, y)`` or an iterable of batches): accuracy (argmax of the
    model's outputs), the mean loss, the criteria ``re`` and ``Kh_n`` from SLQ (``m`` steps,
    ``n_v`` runs, probe seed ``seed``, the same for every set), ``lambda_max`` by power iteration
    (top-1 by magnitude, LLA's defaults) and the Hutchinson trace. Then, across the data sets,
    the Spearman correlation of each indicator with accuracy; the paper's claim is that the
    criteria move against accuracy (negative correlation). The loss is reported beside them as
    the label-using baseline every indicator here competes with.
    """
    if not datasets:
        raise ValueError("datasets must name at least one data set")
    rows: dict[str, dict[str, float]] = {}
    for name, data in datasets.items():
        ha = HessianAnalyzer(model, loss_fn, data, mode=mode, backend=backend)
        with torch.no_grad(), ha.f.mode():
            correct = sum(float((ha.f.outputs(ha.theta, x).argmax(1) == y).sum()) for x, y in ha.f.batches)
        total = sum(float(x.shape[0]) for x, _ in ha.f.batches)
        esd = ha.esd(m, n_v, seed, reorth=reorth)
        re, kh = esd.criteria(n)
        top = ha.top_eigen(1, eig_iter, eig_tol, seed)
        row = {"accuracy": correct / total, "loss": ha.loss(), "re": re, "kh": kh, "lambda_max": float(top.values[0])}
        if trace:
            row["trace"] = ha.trace(trace_iter, trace_tol, seed).trace
        row["num_hvp"] = float(ha.num_hvp)
        rows[str(name)] = row
    acc = [r["accuracy"] for r in rows.values()]
    keys = [k for k in ShiftReport.INDICATORS if k in next(iter(rows.values()))]
    spearman = {k: _spearman([r[k] for r in rows.values()], acc) for k in keys}
    return ShiftReport(rows, spearman)


# --------------------------------------------------------------------------- plotting
def plot_esd(ax: Any, esd: SLQResult, *, label: str | None = None, num_bins: int = 10_000, **kw: Any) -> Any:
    """The smoothed HESD on a log-density axis (LLA's ``esd_plot``: ``density + 1e-7``)."""
    grid, dens = esd.density(num_bins=num_bins)
    (line,) = ax.semilogy(grid.numpy(), (dens + 1e-7).numpy(), label=label, **kw)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)")
    return line


def plot_spectrum(
    esds: SLQResult | dict[str, SLQResult], *, top: EigenResult | None = None, num_bins: int = 2000
) -> Any:
    """A figure of Hessian spectral densities (one :class:`SLQResult` or ``{label: result}``), with
    the top eigenvalues of ``top`` (an :class:`EigenResult`) as dashed vertical lines. Returns the
    matplotlib ``Figure``."""
    from paperzoo.engine.plots import subplots

    runs = esds if isinstance(esds, dict) else {"": esds}
    if not runs:
        raise ValueError("plot_spectrum: no spectra to plot")
    fig, axes = subplots(1, width=6.0, height=4.0)
    for label, esd in runs.items():
        plot_esd(axes[0], esd, label=label or None, num_bins=num_bins, lw=1)
    if top is not None:
        for value in top.values.tolist():
            axes[0].axvline(value, color="k", ls="--", lw=0.7)
    if any(runs):
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
