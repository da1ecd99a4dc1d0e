"""Simplex equiangular-tight-frame (ETF) classifiers, dense and sparse, as fixed linear heads.

From FedLoGe (Xiao et al., "FedLoGe: Joint Local and Generic Federated Learning under
Long-tailed Data", ICLR 2024): the backbone of every client is trained through a *fixed*
classifier, the Static Sparse Equiangular Tight Frame Classifier (SSE-C). It is built as in the
official code (``util/etf_methods.py``, ``ETF_Classifier.gen_sparse_ETF``):

1. ``P``: orthonormal columns, the Q factor of the reduced QR of a ``U[0, 1)`` matrix (d x C);
2. the simplex ETF ``M = sqrt(C / (C - 1)) P (I - 11^T / C)``: unit columns, pairwise cosine
   ``-1 / (C - 1)`` (:func:`simplex_etf`);
3. ``floor(beta d C)`` entries of ``M``, drawn without replacement, set to zero;
4. the surviving entries refined by Adam on
   ``L(M) = sum_c (||m_c|| - rho)^2 - (1/C) sum_c arccos(clip(max_{c' != c} cos(m_c, m_c')))``
   with the gradient masked so zeros stay zeros (:func:`sparse_etf_objective`, :func:`sparse_etf`).

The weight returned is ``M^T`` (C x d), ready for ``F.linear``. :class:`FixedLinearClassifier`
holds such a weight (and a bias) as buffers: it has no parameters, so no optimiser can move it
and a federated average of identical copies returns it unchanged.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = ["FixedLinearClassifier", "simplex_etf", "sparse_etf", "sparse_etf_objective"]

#: the clip of the cosine before ``arccos`` in the official refinement objective
COS_CLIP = 0.99999

_ETF_PARAMS = {
    "dim": [Interval(int, 1, math.inf, closed="left")],
    "num_classes": [Interval(int, 2, math.inf, closed="left")],
}
_SPARSE_PARAMS = {
    **_ETF_PARAMS,
    "sparsity": [Interval(float, 0.0, 1.0, closed="left")],
    "target_norm": [Interval(float, 0.0, math.inf, closed="neither")],
    "steps": [Interval(int, 0, math.inf, closed="left")],
    "lr": [Interval(float, 0.0, math.inf, closed="neither")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def _check_dims(dim: int, num_classes: int, owner: str) -> None:
    if dim < num_classes:
        raise ValueError(f"{owner}: dim must be >= num_classes (a simplex ETF needs d >= C), got {dim} < {num_classes}")


def _etf_from_basis(basis: torch.Tensor) -> torch.Tensor:
    """``sqrt(C/(C-1)) P (I - 11^T/C)`` for ``P`` with orthonormal columns (d, C)."""
    c = basis.shape[1]
    centre = torch.eye(c, dtype=basis.dtype) - torch.full((c, c), 1.0 / c, dtype=basis.dtype)
    return math.sqrt(c / (c - 1)) * basis @ centre


def simplex_etf(
    dim: int, num_classes: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A dense simplex ETF as a classifier weight (C, d): unit rows with pairwise cosine ``-1/(C-1)``.

    Steps 1-2 of the construction (module docstring); the rows sum to zero.

    Raises:
        ValueError: ``dim < num_classes`` or ``num_classes < 2``.
    """
    validate_params(_ETF_PARAMS, {"dim": dim, "num_classes": num_classes}, owner="simplex_etf")
    _check_dims(dim, num_classes, "simplex_etf")
    a = torch.rand(dim, num_classes, generator=generator, dtype=torch.float64)
    basis = torch.linalg.qr(a).Q
    return _etf_from_basis(basis).T.contiguous().to(dtype)


def sparse_etf_objective(m: torch.Tensor, target_norm: float) -> torch.Tensor:
    """The refinement objective of the sparse ETF on columns ``m`` (d, C), a scalar.

    ``sum_c (||m_c|| - rho)^2 - (1/C) sum_c arccos(clip(max_{c' != c} cos(m_c, m_c'), +-0.99999))``;
    the cosine matrix's diagonal is set to -1 before the max (a column never matches itself).
    """
    norms = m.norm(dim=0)
    unit = m / norms
    cos = unit.T @ unit
    eye = torch.eye(m.shape[1], dtype=torch.bool, device=m.device)
    cos = cos.masked_fill(eye, -1.0)
    nearest = cos.max(dim=1).values.clamp(-COS_CLIP, COS_CLIP)
    return ((norms - target_norm) ** 2).sum() - torch.arccos(nearest).mean()


def sparse_etf(
    dim: int,
    num_classes: int,
    sparsity: float = 0.6,
    target_norm: float = 0.1,
    steps: int = 10_000,
    lr: float = 1e-4,
    seed: int = 0,
) -> torch.Tensor:
    """The SSE-C weight (C, d), float32: a simplex ETF with ``floor(sparsity d C)`` zeros, refined.

    Defaults are the official ones (sparsity 0.6, target column norm 0.1, Adam lr 1e-4 for
    10,000 full-batch steps); ``lr=1e-3, steps=1000`` reaches the same fixed point for small
    ``d, C``. ``sparsity=0`` with ``steps=0`` is the dense ETF. Deterministic in ``seed``; the
    result is cached per argument tuple (a fresh copy is returned).

    Raises:
        ValueError: a sparsity outside [0, 1), ``dim < num_classes``, non-positive norm or lr.
    """
    params = {"dim": dim, "num_classes": num_classes, "sparsity": sparsity, "target_norm": target_norm}
    params |= {"steps": steps, "lr": lr, "seed": seed}
    validate_params(_SPARSE_PARAMS, params, owner="sparse_etf")
    _check_dims(dim, num_classes, "sparse_etf")
    return _sparse_etf(dim, num_classes, float(sparsity), float(target_norm), steps, float(lr), seed).clone()


@lru_cache(maxsize=32)
def _sparse_etf(
    dim: int, c: int, sparsity: float, target_norm: float, steps: int, lr: float, seed: int
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = simplex_etf(dim, c, generator=g, dtype=torch.float64).T.contiguous()  # (d, C)
    n_zero = math.floor(sparsity * dim * c)
    mask = torch.ones(dim * c, dtype=torch.float64)
    mask[torch.randperm(dim * c, generator=g)[:n_zero]] = 0.0
    mask = mask.view(dim, c)
    m = (m * mask).requires_grad_(True)
    opt = torch.optim.Adam([m], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=False)
            sparse_etf_objective(m, target_norm).backward()
            m.grad.mul_(mask)  # type: ignore[union-attr]
            opt.step()
    return m.detach().T.contiguous().float()


class FixedLinearClassifier(nn.Module):
    """A linear classifier ``f -> f W^T + b`` whose weight and bias are buffers, never parameters.

    Args:
        weight: (C, d) classifier weight, e.g. :func:`sparse_etf` (copied).
        bias: ``"zero"`` (the toolkit default), ``"random_frozen"`` (PyTorch's default
            ``nn.Linear`` bias initialisation ``U(-1/sqrt(d), 1/sqrt(d))``, then frozen: what the
            official code does by accident, for parity) or a (C,) tensor.
        generator: random source of ``"random_frozen"``.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(
        self, weight: torch.Tensor, bias: str | torch.Tensor = "zero", generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
            raise ValueError(f"weight must be a floating (C, d) tensor, got {getattr(weight, 'shape', type(weight))}")
        check_finite(weight, "weight")
        c, d = weight.shape
        if isinstance(bias, torch.Tensor):
            if bias.shape != (c,):
                raise ValueError(f"bias must have shape ({c},), got {tuple(bias.shape)}")
            b = bias.detach().to(weight.dtype).clone()
        else:
            validate_params(
                {"bias": [Options(("zero", "random_frozen"))]}, {"bias": bias}, owner="FixedLinearClassifier"
            )
            b = torch.zeros(c, dtype=weight.dtype)
            if bias == "random_frozen":
                bound = 1.0 / math.sqrt(d)
                b = (torch.rand(c, generator=generator, dtype=weight.dtype) * 2 - 1) * bound
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", b)
        self.in_features, self.out_features = d, c

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.in_features:
            raise ValueError(f"features must have {self.in_features} columns, got shape {tuple(features.shape)}")
        return F.linear(features, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
