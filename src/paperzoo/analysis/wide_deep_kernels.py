"""Infinitely wide and deep networks as classifiers: the kernels, their limit rules and the data.

Radhakrishnan, Belkin and Uhler, "Wide and Deep Neural Networks Achieve Optimality for
Classification" (arXiv:2204.14126, 2022; in PNAS 2023 as "Wide and deep neural networks achieve
consistency for classification"); official code ``uhlerlab/inf_depth_ntks`` (``models.py``,
``dataset.py``, ``main.py``), read for the recursions and the protocol.

An infinitely wide, bias-free fully connected network (NTK parameterisation, inputs on the unit
sphere) trained to interpolation by gradient descent on the squared loss is ridgeless kernel
regression with the neural tangent kernel (NTK), or with the NNGP kernel when only the last
layer is trained. Both are element-wise recursions on the Gram matrix driven by the *dual
activation* ``xi(rho) = E[phi(u) phi(v)]`` ((u, v) standard normal with correlation rho,
``xi(1) = 1``):

    Sigma^0 = <x, x'>,   Sigma^l = xi(Sigma^{l-1}),   K^l = Sigma^l + K^{l-1} xi'(Sigma^{l-1}).

As the depth L grows the classifier ``sign(y^T K_n^{-1} K(X, x))`` tends to one of three classical
rules, decided by the activation alone (the paper's main theorems; the conditions below are
stated on the dual activation and cross-checked against the activations of the official code):

* majority vote when ``xi(0) > 0`` (a non-zero Gaussian mean; ReLU lands here);
* 1-nearest neighbour when ``xi(0) = xi'(0) = 0``;
* a singular kernel rule ``sign(sum_i y_i g(<x, x_i>))`` when ``xi(0) = 0 < xi'(0) < 1``, where
  ``g = lim xi^{oL} / xi'(0)^L`` (the Koenigs function of ``xi`` at its fixed point 0) behaves as
  ``||x - z||^{-alpha}`` near ``x = z`` with ``alpha = 2 ln(1 / xi'(0)) / ln xi'(1)``. When
  ``alpha`` equals the intrinsic dimension ``d - 1`` of data on ``S^{d-1}`` the rule is the
  Hilbert-kernel estimate, which is universally consistent (Devroye et al., 1998): the paper's
  "optimal" activations.

What is here:

* dual activations (:class:`PolynomialDual`, :class:`SineDual`, :class:`ErfDual`,
  :class:`ReluDual`, :class:`FunctionDual`; :func:`dual_activation` resolves the official names),
  :func:`alpha_exponent`, :func:`regime`, :func:`optimal_activation`, :func:`sine_parameter`;
* the kernels :func:`nngp_kernel` and :func:`ntk_kernel` (float64, chunked in-place recursions,
  every requested depth in one pass, Gram matrices on one triangle) and their naive references
  :func:`reference_nngp_kernel` / :func:`reference_ntk_kernel` (the official per-layer loop);
  :func:`kernel_pair` gives the train Gram and train-test kernels from one pass;
* the classifiers: :func:`kernel_interpolation_classifier` (ridgeless kernel regression),
  :func:`one_nn`, :func:`majority_vote`, :func:`hilbert_estimate`, the singular-kernel limit
  :func:`singular_kernel_classifier` with :func:`koenigs_function`, and
  :func:`deep_kernel_classifier`;
* data: :func:`dirichlet_sphere_data`, :func:`dirichlet_bayes_classifier`, :func:`agreement`;
* finite-width networks measured against the limits: the activations :class:`HermiteActivation`,
  :class:`SineActivation`, :class:`ErfActivation`, :class:`NormalizedReLU`, the network
  :class:`DeepFCNet` and its empirical kernels :func:`empirical_nngp` / :func:`empirical_ntk`;
* a user's own trained network against the limits: :func:`limit_agreement` (any ``nn.Module`` and
  data loaders, with progress bars) and :func:`plot_limit_agreement`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = [
    "DIRICHLET_SETTINGS",
    "OFFICIAL_ACTIVATIONS",
    "DeepFCNet",
    "DualActivation",
    "ErfActivation",
    "ErfDual",
    "FunctionDual",
    "HermiteActivation",
    "LimitAgreement",
    "NormalizedReLU",
    "PolynomialDual",
    "Regime",
    "ReluDual",
    "SineActivation",
    "SineDual",
    "agreement",
    "alpha_exponent",
    "deep_kernel_classifier",
    "dirichlet_bayes_classifier",
    "dirichlet_sphere_data",
    "dual_activation",
    "empirical_nngp",
    "empirical_ntk",
    "from_hermite_coeffs",
    "hilbert_estimate",
    "kernel_interpolation_classifier",
    "kernel_pair",
    "limit_agreement",
    "koenigs_function",
    "majority_vote",
    "nngp_kernel",
    "ntk_kernel",
    "one_nn",
    "optimal_activation",
    "plot_limit_agreement",
    "reference_nngp_kernel",
    "reference_ntk_kernel",
    "regime",
    "sine_parameter",
    "singular_kernel_classifier",
    "to_sphere",
]

F64 = torch.float64
#: elements per chunk of the in-place recursion: all layers run on one chunk while it is in cache
CHUNK = 1 << 16
#: the official experiments' Dirichlet settings (class +1, class -1) by data dimension d
DIRICHLET_SETTINGS: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    2: ((1.0, 2.0), (2.0, 1.0)),
    3: ((0.5, 0.5, 2.5), (2.5, 0.1, 0.5)),
    5: ((3.0, 1.0, 2.0, 1.0, 1.0), (1.0, 2.0, 2.0, 2.0, 3.0)),
    9: ((1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 1.0)),
}

_NONNEG_INT = [Interval(int, 0, math.inf, closed="left")]
_POS_INT = [Interval(int, 1, math.inf, closed="left")]
_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "depth": _NONNEG_INT,
    "chunk": _POS_INT,
    "n": _POS_INT,
    "width": _POS_INT,
    "in_dim": _POS_INT,
    "out_dim": _POS_INT,
    "seed": _NONNEG_INT,
    "max_layers": _POS_INT,
    "max_redraws": _POS_INT,
    "d": [Interval(int, 2, math.inf, closed="left")],
    "a": [Interval(float, 0, 700, closed="neither")],
    "alpha": [Interval(float, 0, math.inf, closed="left")],
    "target_alpha": [Interval(float, 1, math.inf, closed="neither")],
    "prior1": [Interval(float, 0, 1, closed="neither")],
    "tol": [Interval(float, 0, 1, closed="neither")],
    "kernel": [Options(("nngp", "ntk"))],
    "prefer": [Options(("table", "sine"))],
}


def _check(owner: str, **params: Any) -> None:
    validate_params(_PARAMETER_CONSTRAINTS, params, owner=owner)


# =========================================================================== dual activations
class DualActivation:
    """The dual ``xi(rho) = E[phi(u) phi(v)]`` of a normalised activation (``E phi(z)^2 = 1``).

    Subclasses give ``xi`` (:meth:`__call__`) and ``xi'`` (:meth:`derivative`) as out-of-place
    tensor functions (the reference), and may override :meth:`apply_` / :meth:`derivative_into`
    with in-place versions for the fast recursions. :meth:`module` builds an activation ``phi``
    with this dual for finite networks.
    """

    name: str = "dual"
    #: scratch buffers :meth:`apply_` and :meth:`derivative_into` need (each shaped like rho)
    n_work: int = 1

    def __call__(self, rho: Tensor) -> Tensor:
        raise NotImplementedError

    def derivative(self, rho: Tensor) -> Tensor:
        raise NotImplementedError

    def apply_(self, rho: Tensor, work: Sequence[Tensor]) -> None:
        """``rho <- xi(rho)`` in place (``work``: :attr:`n_work` scratch tensors like ``rho``)."""
        rho.copy_(self(rho))

    def derivative_into(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        """``out <- xi'(rho)`` (``rho`` unchanged)."""
        out.copy_(self.derivative(rho))

    def step_(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        """``out <- xi'(rho)``, then ``rho <- xi(rho)``: one NTK layer's two evaluations."""
        self.derivative_into(rho, out, work)
        self.apply_(rho, work)

    def module(self) -> nn.Module:
        """An activation ``phi`` with this dual (for finite-width networks)."""
        raise NotImplementedError(f"{self.name}: no activation module is known for this dual")

    # ---- the three numbers that decide the infinite-depth limit
    def _at(self, fn: Callable[[Tensor], Tensor], x: float) -> float:
        return float(fn(torch.tensor([x], dtype=F64))[0])

    @property
    def value_at_zero(self) -> float:
        """``xi(0) = (E phi)^2``: positive means the majority-vote regime."""
        return self._at(self, 0.0)

    @property
    def slope_at_zero(self) -> float:
        """``xi'(0)``: the squared linear Hermite coefficient of ``phi``."""
        return self._at(self.derivative, 0.0)

    @property
    def slope_at_one(self) -> float:
        """``xi'(1) = sum_n n a_n^2``; also the per-layer growth of the NTK diagonal."""
        return self._at(self.derivative, 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _mul_pow_(out: Tensor, rho: Tensor, k: int, tmp: Tensor) -> None:
    """``out *= rho^k`` for an int ``k >= 1`` by repeated squaring into ``tmp`` (a generic
    ``pow`` with an exponent above 3 is several times slower than a multiplication)."""
    if k <= 3:
        if k == 1:
            out.mul_(rho)
        else:
            torch.pow(rho, k, out=tmp)
            out.mul_(tmp)
        return
    cur, e = rho, k
    while e:
        if e & 1:
            out.mul_(cur)
        e >>= 1
        if e:
            if cur is rho:
                torch.mul(rho, rho, out=tmp)
                cur = tmp
            else:
                tmp.mul_(tmp)


def _pow_into(rho: Tensor, k: int, out: Tensor, tmp: Tensor) -> None:
    """``out <- rho^k`` for an int ``k >= 1`` (``tmp`` is scratch)."""
    if k == 1:
        out.copy_(rho)
    elif k <= 3:
        torch.pow(rho, k, out=out)
    else:
        out.fill_(1.0)
        _mul_pow_(out, rho, k, tmp)


class PolynomialDual(DualActivation):
    """``xi(rho) = sum_n c_n rho^n`` with ``c_n >= 0``, ``sum_n c_n = 1``: the dual of the Hermite
    activation ``phi = sum_n sqrt(c_n) He_n / sqrt(n!)`` (:class:`HermiteActivation`).

    Evaluated by a sparse Horner scheme in place (the official ``2d_opt`` ``rho/2 + rho^7/2`` is
    ``rho (1/2 + rho^6 / 2)``: four passes over the data).
    """

    n_work = 2

    def __init__(self, coeffs: Sequence[float], name: str | None = None) -> None:
        c = [float(v) for v in coeffs]
        if not c or not all(math.isfinite(v) and v >= 0 for v in c):
            raise ValueError(f"PolynomialDual: coeffs must be finite and non-negative, got {list(coeffs)}")
        if abs(sum(c) - 1.0) > 1e-12:
            raise ValueError(f"PolynomialDual: coeffs must sum to 1 (xi(1) = 1), got sum {sum(c)!r}")
        while len(c) > 1 and c[-1] == 0.0:
            c.pop()
        self.coeffs = tuple(c)
        self.name = name or "poly(" + ", ".join(f"{v:g}" for v in c) + ")"
        self._terms = [(n, v) for n, v in enumerate(c) if v != 0.0]
        self._dterms = [(n - 1, n * v) for n, v in self._terms if n >= 1]

    @property
    def monomial_degree(self) -> int | None:
        """``k`` if ``xi(rho) = rho^k`` (the Hermite activation ``He_k / sqrt(k!)``), else None."""
        return self._terms[0][0] if len(self._terms) == 1 else None

    def __call__(self, rho: Tensor) -> Tensor:
        out = torch.zeros_like(rho)
        for n, v in self._terms:
            out = out + v * rho**n
        return out

    def derivative(self, rho: Tensor) -> Tensor:
        out = torch.zeros_like(rho)
        for n, v in self._dterms:
            out = out + v * rho**n
        return out

    @staticmethod
    def _eval(rho: Tensor, terms: list[tuple[int, float]], out: Tensor, tmp: Tensor, inplace: bool) -> None:
        """``sum_n v_n rho^n`` over ``terms`` [(n, v)] into ``rho`` (``inplace``) or ``out``, by a
        sparse Horner scheme on ``rho^m q(rho)`` (m the lowest degree); ``out``/``tmp`` are scratch."""
        target = rho if inplace else out
        if not terms:
            target.zero_()
            return
        terms = sorted(terms, reverse=True)
        m = terms[-1][0]
        if len(terms) == 1:  # v rho^m
            v = terms[0][1]
            if m == 0:
                target.fill_(v)
                return
            if inplace and m <= 3:
                if m > 1:
                    rho.pow_(m)
            else:
                _pow_into(rho, m, out, tmp)
                if inplace:
                    rho.copy_(out)
            if v != 1.0:
                target.mul_(v)
            return
        (top_deg, top), (deg, v) = terms[0], terms[1]
        _pow_into(rho, top_deg - deg, out, tmp)  # out <- v + top rho^gap, in two passes
        torch.add(torch.full((), v, dtype=out.dtype, device=out.device), out, alpha=top, out=out)
        prev = deg
        for n, v in terms[2:]:  # out <- out * rho^(prev - n) + v
            _mul_pow_(out, rho, prev - n, tmp)
            out.add_(v)
            prev = n
        if m >= 1:
            if inplace and m <= 3:
                if m > 1:
                    rho.pow_(m)
                rho.mul_(out)
                return
            _mul_pow_(out, rho, m, tmp)
        if inplace:
            rho.copy_(out)

    def apply_(self, rho: Tensor, work: Sequence[Tensor]) -> None:
        self._eval(rho, self._terms, work[0], work[1], inplace=True)

    def derivative_into(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        self._eval(rho, self._dterms, out, work[1], inplace=False)

    def module(self, signs: Sequence[float] | None = None) -> nn.Module:
        """:class:`HermiteActivation` with ``a_n = sign_n sqrt(c_n)`` (all signs + by default)."""
        a = [math.sqrt(v) for v in self.coeffs]
        if signs is not None:
            if len(signs) != len(a):
                raise ValueError(f"signs must have {len(a)} entries, got {len(signs)}")
            a = [s * v for s, v in zip(signs, a)]
        return HermiteActivation(a)


class SineDual(DualActivation):
    """``xi(rho) = sinh(a rho) / sinh(a)``, the dual of ``sqrt(2 / (1 - e^{-2a})) sin(sqrt(a) z)``
    (the official ``sine_<a>``); ``alpha = 2 ln(sinh(a) / a) / ln(a coth a)`` grows from 1 (a -> 0)."""

    def __init__(self, a: float) -> None:
        _check("SineDual", a=a)
        self.a = float(a)
        self.name = f"sine_{self.a:g}"
        self._inv_sinh = 1.0 / math.sinh(self.a)

    def __call__(self, rho: Tensor) -> Tensor:
        return torch.sinh(self.a * rho) * self._inv_sinh

    def derivative(self, rho: Tensor) -> Tensor:
        return self.a * torch.cosh(self.a * rho) * self._inv_sinh

    def apply_(self, rho: Tensor, work: Sequence[Tensor]) -> None:
        rho.mul_(self.a).sinh_().mul_(self._inv_sinh)

    def derivative_into(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        torch.mul(rho, self.a, out=out).cosh_().mul_(self.a * self._inv_sinh)

    def module(self) -> nn.Module:
        return SineActivation(self.a)


class ErfDual(DualActivation):
    """``xi(rho) = arcsin(2 rho / 3) / arcsin(2 / 3)``, the dual of ``erf(z) / sqrt((2/pi) arcsin(2/3))``."""

    name = "erf"
    _c = 1.0 / math.asin(2.0 / 3.0)

    def __call__(self, rho: Tensor) -> Tensor:
        return torch.asin(rho * (2.0 / 3.0)) * self._c

    def derivative(self, rho: Tensor) -> Tensor:
        return (2.0 / 3.0) * self._c / torch.sqrt(1.0 - 4.0 * rho**2 / 9.0)

    def apply_(self, rho: Tensor, work: Sequence[Tensor]) -> None:
        rho.mul_(2.0 / 3.0).asin_().mul_(self._c)

    def derivative_into(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        torch.mul(rho, rho, out=out).mul_(-4.0 / 9.0).add_(1.0).rsqrt_().mul_((2.0 / 3.0) * self._c)

    def module(self) -> nn.Module:
        return ErfActivation()


class ReluDual(DualActivation):
    """``xi(rho) = (sqrt(1 - rho^2) + rho (pi - arccos rho)) / pi``, the dual of ``sqrt(2) max(z, 0)``
    (the arc-cosine kernel); ``xi(0) = 1/pi > 0``: the majority-vote regime."""

    name = "relu"
    n_work = 2

    def __call__(self, rho: Tensor) -> Tensor:
        return (torch.sqrt(torch.clamp(1.0 - rho**2, min=0.0)) + rho * (math.pi - torch.arccos(rho))) / math.pi

    def derivative(self, rho: Tensor) -> Tensor:
        return (math.pi - torch.arccos(rho)) / math.pi

    def apply_(self, rho: Tensor, work: Sequence[Tensor]) -> None:
        w, t = work[0], work[1]
        torch.acos(rho, out=w)
        w.neg_().add_(math.pi).mul_(rho)
        torch.mul(rho, rho, out=t)
        t.neg_().add_(1.0).clamp_(min=0.0).sqrt_()
        torch.add(w, t, out=rho)
        rho.mul_(1.0 / math.pi)

    def derivative_into(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        torch.acos(rho, out=out)
        out.neg_().add_(math.pi).mul_(1.0 / math.pi)

    def step_(self, rho: Tensor, out: Tensor, work: Sequence[Tensor]) -> None:
        # xi(rho) = sqrt(1 - rho^2) / pi + rho xi'(rho): one arccos serves both
        self.derivative_into(rho, out, work)
        t = work[0]
        torch.mul(rho, rho, out=t)
        t.neg_().add_(1.0).clamp_(min=0.0).sqrt_().mul_(1.0 / math.pi)
        rho.mul_(out).add_(t)

    def module(self) -> nn.Module:
        return NormalizedReLU()


class FunctionDual(DualActivation):
    """Any dual given as two tensor functions ``xi`` and ``xi'`` (out-of-place; ``xi(1)`` must be 1)."""

    def __init__(self, name: str, xi: Callable[[Tensor], Tensor], dxi: Callable[[Tensor], Tensor]) -> None:
        self.name, self._xi, self._dxi = name, xi, dxi
        one = float(xi(torch.ones(1, dtype=F64))[0])
        if abs(one - 1.0) > 1e-9:
            raise ValueError(f"FunctionDual {name!r}: xi(1) must be 1 (a normalised activation), got {one!r}")

    def __call__(self, rho: Tensor) -> Tensor:
        return self._xi(rho)

    def derivative(self, rho: Tensor) -> Tensor:
        return self._dxi(rho)


def from_hermite_coeffs(c: Sequence[float], normalize: bool = True, name: str | None = None) -> PolynomialDual:
    """The dual ``xi(rho) = sum_n c_n rho^n`` (``c_n = a_n^2``, the squared Hermite coefficients
    of ``phi``), divided by ``sum c_n`` when ``normalize`` (so that ``E phi^2 = 1``)."""
    vals = [float(v) for v in c]
    if not vals or not all(math.isfinite(v) and v >= 0 for v in vals) or sum(vals) <= 0:
        raise ValueError(f"from_hermite_coeffs: c must be finite, non-negative and not all 0, got {list(c)}")
    if normalize:
        total = sum(vals)
        vals = [v / total for v in vals]
    return PolynomialDual(vals, name=name)


_TABLE: dict[str, tuple[float, ...]] = {
    "2d_opt": (0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5),
    "3d_opt": (0.0, 0.5, 0.0, 0.5),
    "5d_opt": (0.0, 0.25, 0.5, 0.25),
    "9d_opt": (0.0, 1.0 / 16.0, 7.0 / 8.0, 1.0 / 16.0),
}
#: the activation names of the official code (``sine_<a>`` and ``hermite_<k>`` take a parameter)
OFFICIAL_ACTIVATIONS = ("relu", "erf", "2d_opt", "3d_opt", "5d_opt", "9d_opt", "sine_<a>", "hermite_<k>")
_OPTIMAL_DIM = {"2d_opt": 2, "3d_opt": 3, "5d_opt": 5, "9d_opt": 9}


def dual_activation(name: str | DualActivation) -> DualActivation:
    """Resolve an official activation name (:data:`OFFICIAL_ACTIVATIONS`; e.g. ``"3d_opt"``,
    ``"sine_2.676"``, ``"hermite_2"``) or pass a :class:`DualActivation` through."""
    if isinstance(name, DualActivation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name or a DualActivation, got {type(name).__name__}")
    key = name.strip().lower()
    if key in _TABLE:
        return PolynomialDual(_TABLE[key], name=key)
    if key == "relu":
        return ReluDual()
    if key == "erf":
        return ErfDual()
    if m := re.fullmatch(r"sine(?:_([0-9.eE+-]+))?", key):
        return SineDual(float(m.group(1)) if m.group(1) else 1.0)
    if m := re.fullmatch(r"hermite_([0-9]+)", key):
        k = int(m.group(1))
        if k < 1:
            raise ValueError(f"hermite_<k> needs k >= 1, got {name!r}")
        return PolynomialDual([0.0] * k + [1.0], name=f"hermite_{k}")
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(OFFICIAL_ACTIVATIONS)}")


class Regime(NamedTuple):
    """The infinite-depth limit of the kernel classifier: ``kind`` in ``"majority"``, ``"1nn"``,
    ``"singular"`` (with its exponent ``alpha``) or ``"linear"`` (``xi(rho) = rho``: no limit rule)."""

    kind: str
    alpha: float | None = None


_ZERO_TOL = 1e-12


def regime(dual: str | DualActivation) -> Regime:
    """The limit rule of a dual activation: majority vote if ``xi(0) > 0``; 1-NN if
    ``xi(0) = xi'(0) = 0``; the singular kernel rule (exponent :func:`alpha_exponent`) if
    ``xi(0) = 0 < xi'(0) < 1``; ``"linear"`` for the identity dual."""
    dual = dual_activation(dual)
    if dual.value_at_zero > _ZERO_TOL:
        return Regime("majority")
    if dual.value_at_zero < -_ZERO_TOL:
        raise ValueError(f"{dual.name}: xi(0) = {dual.value_at_zero} < 0 is not a dual activation")
    c = dual.slope_at_zero
    if c <= _ZERO_TOL:
        return Regime("1nn", math.inf)
    if c >= 1.0 - _ZERO_TOL:
        return Regime("linear")
    return Regime("singular", alpha_exponent(dual))


def alpha_exponent(dual: str | DualActivation) -> float:
    """``alpha = 2 ln(1 / xi'(0)) / ln xi'(1)``: the deep limit's kernel behaves as
    ``||x - z||^{-alpha}`` near the diagonal (``inf`` in the 1-NN regime ``xi'(0) = 0``).

    Defined for ``xi(0) = 0`` and ``xi'(1) > 1``; a ``ValueError`` otherwise (the majority-vote
    regime has no singular exponent).
    """
    dual = dual_activation(dual)
    if abs(dual.value_at_zero) > _ZERO_TOL:
        raise ValueError(f"{dual.name}: xi(0) = {dual.value_at_zero:.6g} != 0 (majority-vote regime): no exponent")
    c, s = dual.slope_at_zero, dual.slope_at_one
    if c <= _ZERO_TOL:
        return math.inf
    if s <= 1.0 + _ZERO_TOL:
        raise ValueError(f"{dual.name}: xi'(1) = {s:.6g} <= 1 (a linear activation): no exponent")
    return 2.0 * math.log(1.0 / c) / math.log(s)


def _sine_alpha(a: float) -> float:
    log_sinh = a + math.log1p(-math.exp(-2.0 * a)) - math.log(2.0)
    return 2.0 * (log_sinh - math.log(a)) / math.log(a / math.tanh(a))


def sine_parameter(target_alpha: float) -> float:
    """The ``a`` of :class:`SineDual` with ``alpha(a) = target_alpha`` (``scipy.optimize.brentq``;
    ``alpha(a)`` increases from 1 as ``a -> 0``, so ``target_alpha > 1``)."""
    from scipy.optimize import brentq

    _check("sine_parameter", target_alpha=float(target_alpha))
    lo, hi = 1e-4, 600.0
    if not _sine_alpha(lo) < target_alpha < _sine_alpha(hi):
        raise ValueError(f"sine_parameter: target_alpha must lie in ({_sine_alpha(lo):.4f}, {_sine_alpha(hi):.1f})")
    return float(brentq(lambda a: _sine_alpha(a) - target_alpha, lo, hi, xtol=1e-13, rtol=1e-14))


def optimal_activation(d: int, prefer: str = "table") -> DualActivation:
    """An activation whose infinitely deep network is consistent for data on ``S^{d-1}``
    (``alpha = d - 1``): the official polynomial (``2d_opt``, ``3d_opt``, ``5d_opt``, ``9d_opt``)
    when tabulated and ``prefer="table"``, else ``sine_a`` with ``a`` from :func:`sine_parameter`
    (needs ``d >= 3``: the sine family has ``alpha > 1``)."""
    _check("optimal_activation", d=d, prefer=prefer)
    name = f"{d}d_opt"
    if name in _TABLE and (prefer == "table" or d == 2):
        return dual_activation(name)
    return SineDual(sine_parameter(float(d - 1)))


# =========================================================================== kernels
def to_sphere(X: Any) -> Tensor:
    """Rows of ``X`` divided by their Euclidean norm (float64 tensor); zero rows are an error."""
    x = torch.as_tensor(X).to(F64)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"X must have shape (N, d) with N >= 1, got {tuple(x.shape)}")
    norms = x.norm(dim=1, keepdim=True)
    if not bool(torch.isfinite(x).all()) or bool((norms == 0).any()):
        raise ValueError("X must be finite with non-zero rows")
    return x / norms


def _points(X: Any, name: str, dim: int | None = None) -> Tensor:
    x = torch.as_tensor(X)
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real array of shape (N, d), got dtype {x.dtype}")
    x = x.detach().to(F64)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, d), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns like X1, got {x.shape[1]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    dev = (x.norm(dim=1) - 1.0).abs().max()
    if float(dev) > 1e-6:
        raise ValueError(
            f"the rows of {name} must lie on the unit sphere (use to_sphere), max |norm - 1| = {float(dev):.3g}"
        )
    return x


def _depths(depth: int | Sequence[int], owner: str) -> tuple[list[int], bool]:
    """(the requested depths, whether one int was given); each depth an int >= 0."""
    if isinstance(depth, (int, np.integer)) and not isinstance(depth, bool):
        _check(owner, depth=depth)
        return [int(depth)], True
    ds = list(depth)
    if not ds:
        raise ValueError(f"{owner}: depth must be an int >= 0 or a non-empty sequence of them")
    for v in ds:
        _check(owner, depth=v)
    return [int(v) for v in ds], False


def _ntk_scales(slope_one: float, depth: int) -> tuple[list[float], list[float]]:
    """Per layer l = 1..depth: ``s_l = D_{l-1} / D_l`` and ``w_l = 1 / D_l`` with the NTK diagonal
    ``D_0 = 1``, ``D_l = 1 + xi'(1) D_{l-1}``, computed without overflow."""
    s, w = [0.0], [1.0]
    r = 1.0  # 1 / D_{l-1}
    for _ in range(depth):
        s.append(1.0 / (r + slope_one))
        r = r / (r + slope_one)
        w.append(r)
    return s, w


def _recursion(rho: Tensor, dual: DualActivation, depths: list[int], ntk: bool, normalize: bool, chunk: int) -> Tensor:
    """The layer recursion on the flat tensor ``rho`` (clipped correlations), every depth of
    ``depths`` recorded: (len(depths), N). Runs all layers on one chunk at a time, in place."""
    order = sorted(set(depths))
    out = rho.new_empty(len(order), rho.numel())
    top = order[-1]
    if ntk and normalize:
        s_l, w_l = _ntk_scales(dual.slope_at_one, top)
    step = rho.numel() if rho.device.type != "cpu" else chunk
    for start in range(0, rho.numel(), step):
        r = rho[start : start + step].clone()
        work = [torch.empty_like(r) for _ in range(max(dual.n_work, 2))]
        k = r.clone() if ntk else r
        dk = torch.empty_like(r) if ntk else r
        j = 0
        if order[0] == 0:
            out[0, start : start + step] = k
            j = 1
        for layer in range(1, top + 1):
            if ntk:
                dual.step_(r, dk, work)
                k.mul_(dk)
                if normalize:
                    k.mul_(s_l[layer])
            else:
                dual.apply_(r, work)
            r.clamp_(-1.0, 1.0)
            if ntk:
                if normalize:
                    k.add_(r, alpha=w_l[layer])
                else:
                    k.add_(r)
            if layer == order[j]:
                out[j, start : start + step] = k
                j += 1
    index = {d: i for i, d in enumerate(order)}
    return out[[index[d] for d in depths]]


def _gram_and_cross(
    x1: Tensor, x2: Tensor | None, dual: DualActivation, depths: list[int], ntk: bool, normalize: bool, chunk: int
) -> tuple[Tensor, Tensor | None]:
    """The Gram matrices of ``x1`` (len(depths), n1, n1) and, if ``x2`` is given, the cross
    kernels (len(depths), n1, n2), from one recursion over the Gram's upper triangle and the
    cross entries together (the diagonal is exact: 1, or ``D_L`` for the unnormalised NTK)."""
    n1 = x1.shape[0]
    iu = torch.triu_indices(n1, n1, offset=1, device=x1.device)
    parts = [(x1[iu[0]] * x1[iu[1]]).sum(dim=1)]
    if x2 is not None:
        parts.append((x1 @ x2.T).reshape(-1))
    flat = torch.cat(parts).clamp_(-1.0, 1.0)
    if flat.numel():
        vals = _recursion(flat, dual, depths, ntk, normalize, chunk)
    else:
        vals = flat.new_empty(len(depths), 0)
    n_tri = parts[0].numel()
    gram = x1.new_empty(len(depths), n1, n1)
    gram[:, iu[0], iu[1]] = vals[:, :n_tri]
    gram[:, iu[1], iu[0]] = vals[:, :n_tri]
    if ntk and not normalize:
        diag = torch.tensor([_ntk_diagonal(dual.slope_at_one, d) for d in depths], dtype=F64, device=x1.device)
    else:
        diag = torch.ones(len(depths), dtype=F64, device=x1.device)
    gram.diagonal(dim1=1, dim2=2).copy_(diag[:, None].expand(-1, n1))
    cross = vals[:, n_tri:].reshape(len(depths), n1, -1) if x2 is not None else None
    return gram, cross


def _kernel(
    X1: Any,
    X2: Any,
    dual: str | DualActivation,
    depth: int | Sequence[int],
    *,
    ntk: bool,
    normalize: bool,
    chunk: int,
    owner: str,
) -> Tensor:
    dual = dual_activation(dual)
    _check(owner, chunk=chunk)
    depths, single = _depths(depth, owner)
    x1 = _points(X1, "X1")
    if X2 is None:
        out, _ = _gram_and_cross(x1, None, dual, depths, ntk, normalize, chunk)
    else:
        x2 = _points(X2, "X2", x1.shape[1]).to(x1.device)
        flat = (x1 @ x2.T).clamp_(-1.0, 1.0).reshape(-1)
        out = _recursion(flat, dual, depths, ntk, normalize, chunk).reshape(len(depths), x1.shape[0], x2.shape[0])
    return out[0] if single else out


def kernel_pair(
    X_train: Any,
    X_test: Any,
    dual: str | DualActivation,
    depth: int | Sequence[int],
    kernel: str = "nngp",
    *,
    normalize: bool = True,
    chunk: int = CHUNK,
) -> tuple[Tensor, Tensor]:
    """``(K(X_train, X_train), K(X_train, X_test))`` of :func:`nngp_kernel` or :func:`ntk_kernel`
    from one pass of the recursion over both (half the per-layer overhead of two calls)."""
    dual = dual_activation(dual)
    _check("kernel_pair", kernel=kernel, chunk=chunk)
    depths, single = _depths(depth, "kernel_pair")
    x1 = _points(X_train, "X_train")
    x2 = _points(X_test, "X_test", x1.shape[1]).to(x1.device)
    gram, cross = _gram_and_cross(x1, x2, dual, depths, kernel == "ntk", normalize, chunk)
    assert cross is not None
    return (gram[0], cross[0]) if single else (gram, cross)


def _ntk_diagonal(slope_one: float, depth: int) -> float:
    """``sum_{j=0}^{L} xi'(1)^j``, the NTK diagonal at depth L (inf once it overflows)."""
    total, term = 0.0, 1.0
    for _ in range(depth + 1):
        total += term
        term *= slope_one
    return total


def nngp_kernel(
    X1: Any,
    X2: Any = None,
    dual: str | DualActivation = "3d_opt",
    depth: int | Sequence[int] = 1,
    *,
    log_space: bool = False,
    chunk: int = CHUNK,
) -> Tensor:
    """The NNGP kernel ``Sigma^L(x, x') = xi^{oL}(<x, x'>)`` of an infinitely wide network with
    ``L = depth`` hidden layers (the official ``nngp_kernel``: clip to [-1, 1] at every layer).

    Args:
        X1: (n1, d) points on the unit sphere (tensor or array; see :func:`to_sphere`).
        X2: (n2, d) points, or None for the Gram matrix of ``X1`` (computed on one triangle,
            diagonal exactly 1, as the official code sets it before solving).
        dual: a :class:`DualActivation` or an official name (:func:`dual_activation`).
        depth: an int ``L >= 0`` (returns (n1, n2)), or a sequence of depths (returns
            (len(depth), n1, n2)), all computed in one pass of ``max(depth)`` layers.
        log_space: for a monomial dual ``rho^k`` (the 1-NN regime) evaluate
            ``log |Sigma^L| = k^L log |rho|`` and return every column divided by its largest
            absolute entry (which leaves the classifier's sign unchanged; a Gram matrix is
            unchanged). Without it deep kernels of this regime underflow to 0.
        chunk: elements per chunk of the in-place recursion (CPU).

    Returns:
        float64 tensor on ``X1``'s device (not differentiable: the recursion runs in place;
        :func:`reference_nngp_kernel` is the differentiable form).
    """
    if not log_space:
        return _kernel(X1, X2, dual, depth, ntk=False, normalize=False, chunk=chunk, owner="nngp_kernel")
    dual = dual_activation(dual)
    k = getattr(dual, "monomial_degree", None)
    if k is None:
        raise ValueError(f"log_space needs a monomial dual rho^k (hermite_<k>), got {dual.name}")
    depths, single = _depths(depth, "nngp_kernel")
    x1 = _points(X1, "X1")
    x2 = x1 if X2 is None else _points(X2, "X2", x1.shape[1]).to(x1.device)
    rho = (x1 @ x2.T).clamp_(-1.0, 1.0)
    if X2 is None:
        rho.fill_diagonal_(1.0)
    logabs = torch.log(rho.abs())
    outs = []
    for d in depths:
        power = float(k) ** d
        la = logabs * power
        top = la.amax(dim=0, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        sign = torch.sign(rho) if (k % 2 == 1 or d == 0) else torch.ones_like(rho)
        outs.append(torch.exp(la - top) * sign)
    out = torch.stack(outs)
    return out[0] if single else out


def ntk_kernel(
    X1: Any,
    X2: Any = None,
    dual: str | DualActivation = "3d_opt",
    depth: int | Sequence[int] = 1,
    *,
    normalize: bool = True,
    chunk: int = CHUNK,
) -> Tensor:
    """The NTK ``K^L`` of an infinitely wide network with ``L = depth`` hidden layers:
    ``K^0 = <x, x'>``, ``K^l = Sigma^l + K^{l-1} xi'(Sigma^{l-1})`` (the official ``ntk_kernel``).

    ``normalize=True`` divides ``K^l`` by its constant diagonal ``D_l = sum_{j<=l} xi'(1)^j`` at
    every layer (no overflow at large depth; the interpolating classifier is unchanged, as the
    train and test kernels share the factor). Other arguments as :func:`nngp_kernel`; a Gram
    matrix (``X2=None``) has the exact diagonal (1, or ``D_L`` without normalisation).
    """
    return _kernel(X1, X2, dual, depth, ntk=True, normalize=normalize, chunk=chunk, owner="ntk_kernel")


def reference_nngp_kernel(X1: Any, X2: Any, dual: str | DualActivation, depth: int) -> Tensor:
    """The naive reference: the official per-layer loop on the full matrix, out of place
    (``angles = clip(xi(angles), -1, 1)``, ``depth`` times)."""
    dual = dual_activation(dual)
    a = (torch.as_tensor(X1).to(F64) @ torch.as_tensor(X2).to(F64).T).clamp(-1.0, 1.0)
    for _ in range(depth):
        a = torch.clip(dual(a), -1.0, 1.0)
    return a


def reference_ntk_kernel(X1: Any, X2: Any, dual: str | DualActivation, depth: int) -> Tensor:
    """The naive reference NTK (the official loop, unnormalised, out of place)."""
    dual = dual_activation(dual)
    a = (torch.as_tensor(X1).to(F64) @ torch.as_tensor(X2).to(F64).T).clamp(-1.0, 1.0)
    k = a.clone()
    for _ in range(depth):
        a_next = dual(a)
        k = a_next + k * dual.derivative(a)
        a = a_next
    return k


def koenigs_function(dual: str | DualActivation, rho: Any, *, tol: float = 1e-12, max_layers: int = 100_000) -> Tensor:
    """``g(rho) = lim_L xi^{oL}(rho) / xi'(0)^L``, the singular kernel of the infinite-depth NNGP
    (Koenigs linearisation of ``xi`` at its attracting fixed point 0; singular regime only).

    Each entry is iterated until ``|xi^{ol}(rho)| < tol`` (then ``xi`` is linear to relative
    precision ``tol``) and divided by ``xi'(0)^l`` in log space; ``|rho| = 1`` are fixed points
    and give ``+-inf`` (``xi(-1)`` decides the sign).
    """
    dual = dual_activation(dual)
    _check("koenigs_function", tol=tol, max_layers=max_layers)
    kind = regime(dual)
    if kind.kind != "singular":
        raise ValueError(f"{dual.name} is in the {kind.kind!r} regime: the Koenigs limit needs xi(0) = 0 < xi'(0) < 1")
    x = torch.as_tensor(rho).to(F64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("rho contains NaN or infinite values")
    x = x.clamp(-1.0, 1.0).reshape(-1)
    log_c = math.log(dual.slope_at_zero)
    g = torch.empty_like(x)
    for start in range(0, x.numel(), CHUNK):  # each chunk iterated until it has converged
        g[start : start + CHUNK] = _koenigs_chunk(dual, x[start : start + CHUNK].clone(), tol, max_layers, log_c)
    return g.reshape(torch.as_tensor(rho).shape)


def _koenigs_chunk(dual: DualActivation, x: Tensor, tol: float, max_layers: int, log_c: float) -> Tensor:
    fixed = x.abs() >= 1.0
    count = torch.zeros_like(x)
    work = [torch.empty_like(x) for _ in range(max(dual.n_work, 2))]
    nxt = torch.empty_like(x)
    active = (x.abs() >= tol) & ~fixed
    for _ in range(max_layers):
        if not bool(active.any()):
            break
        nxt.copy_(x)
        dual.apply_(nxt, work)
        nxt.clamp_(-1.0, 1.0)
        x = torch.where(active, nxt, x)
        count += active
        active &= x.abs() >= tol
    else:
        raise RuntimeError(f"koenigs_function: not converged within {max_layers} layers")
    g = torch.sign(x) * torch.exp(torch.log(x.abs()) - count * log_c)
    return torch.where(fixed, torch.sign(x) * math.inf, g)


# =========================================================================== classifiers
def _np(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _labels(y: Any, n: int, name: str = "y") -> np.ndarray:
    arr = _np(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _targets(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, targets): +-1 column for two classes (classes[1] is +1), one-hot otherwise."""
    classes, idx = np.unique(y, return_inverse=True)
    if classes.size <= 2:
        return classes, np.where(idx == classes.size - 1, 1.0, -1.0)[:, None] if classes.size == 2 else np.ones(
            (y.size, 1)
        )
    return classes, np.eye(classes.size)[idx]


def _decide(classes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Labels from (m, 1) +-1 scores (>= 0 -> classes[-1], the official ``np.where(out < 0, -1, 1)``)
    or (m, C) one-hot scores (argmax)."""
    if classes.size == 1:
        return np.full(scores.shape[0], classes[0])
    if scores.shape[1] == 1:
        return np.where(scores[:, 0] >= 0, classes[1], classes[0])
    return classes[np.argmax(scores, axis=1)]


def kernel_interpolation_classifier(K_train: Any, y: Any, K_test: Any) -> np.ndarray:
    """Ridgeless kernel regression ``f(x) = Y^T K_n^{-1} K(X, x)`` (the trained infinitely wide
    network) and its labels: ``sign f`` for two classes (+-1 targets, ties to the larger label),
    argmax of one-hot targets otherwise.

    Args:
        K_train: (n, n) training Gram matrix (symmetric positive definite;
            ``scipy.linalg.solve(..., assume_a="pos")``, a general solve if Cholesky fails).
        y: (n,) labels.
        K_test: (n, m) kernel between the training and the test points.

    Returns:
        (m,) predicted labels (values of ``y``).
    """
    from scipy.linalg import LinAlgError, solve

    kt, ks = _np(K_train).astype(np.float64), _np(K_test).astype(np.float64)
    if kt.ndim != 2 or kt.shape[0] != kt.shape[1] or kt.shape[0] == 0:
        raise ValueError(f"K_train must be a non-empty square (n, n) matrix, got {kt.shape}")
    n = kt.shape[0]
    if ks.ndim != 2 or ks.shape[0] != n:
        raise ValueError(f"K_test must have shape ({n}, m), got {ks.shape}")
    if not (np.isfinite(kt).all() and np.isfinite(ks).all()):
        raise ValueError("K_train and K_test must be finite")
    classes, Y = _targets(_labels(y, n))
    try:
        coef = solve(kt, Y, assume_a="pos", check_finite=False)
    except LinAlgError:
        try:
            coef = solve(kt, Y, check_finite=False)
        except LinAlgError as err:
            raise ValueError("K_train is singular (duplicate training points?)") from err
    return _decide(classes, ks.T @ coef)


def one_nn(X_train: Any, y: Any, X_test: Any) -> np.ndarray:
    """The 1-nearest-neighbour rule (scikit-learn ``KNeighborsClassifier(n_neighbors=1)``)."""
    from sklearn.neighbors import KNeighborsClassifier

    xtr, xte = _np(X_train), _np(X_test)
    return KNeighborsClassifier(n_neighbors=1).fit(xtr, _labels(y, xtr.shape[0])).predict(xte)


def majority_vote(y: Any, X_test: Any) -> np.ndarray:
    """The most frequent training label everywhere (scikit-learn ``DummyClassifier``; a tie goes
    to the smaller label, as the official ``majority_vote``)."""
    from sklearn.dummy import DummyClassifier

    labels = _np(y).reshape(-1)
    m = len(_np(X_test))
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((labels.size, 1)), labels).predict(np.zeros((m, 1)))


def _log_weight_vote(logw: Tensor, Y: np.ndarray, classes: np.ndarray, sign: Tensor | None = None) -> np.ndarray:
    """Vote with weights ``sign * exp(logw)`` (n, m), each column rescaled by its largest weight;
    a column with infinite weights votes with those alone."""
    top = logw.amax(dim=0, keepdim=True)
    inf_col = torch.isinf(top) & (top > 0)
    w = torch.where(inf_col, (logw == math.inf).to(F64), torch.exp(logw - torch.where(inf_col, 0.0, top)))
    w = torch.nan_to_num(w, nan=0.0)
    if sign is not None:
        w = w * sign
    return _decide(classes, w.T.cpu().numpy() @ Y)


def hilbert_estimate(X_train: Any, y: Any, X_test: Any, alpha: float) -> np.ndarray:
    """The Hilbert-kernel estimate: vote with weights ``||x - x_i||^{-alpha}`` (computed in log
    space; a test point on a training point takes its label). Universally consistent for
    ``alpha`` = the data's intrinsic dimension (Devroye et al., 1998); the official
    ``devroye_classifier`` uses ``alpha = d - 1`` on ``S^{d-1}``."""
    _check("hilbert_estimate", alpha=float(alpha))
    xtr = torch.as_tensor(_np(X_train)).to(F64)
    xte = torch.as_tensor(_np(X_test)).to(F64)
    if xtr.dim() != 2 or xte.dim() != 2 or xtr.shape[1] != xte.shape[1] or xtr.shape[0] == 0:
        raise ValueError(f"X_train (n, d) and X_test (m, d) must share d, got {tuple(xtr.shape)}, {tuple(xte.shape)}")
    classes, Y = _targets(_labels(y, xtr.shape[0]))
    d2 = ((xtr**2).sum(1)[:, None] + (xte**2).sum(1)[None, :] - 2.0 * xtr @ xte.T).clamp_(min=0.0)
    logw = torch.where(d2 > 0, -0.5 * float(alpha) * torch.log(d2), torch.full_like(d2, math.inf))
    return _log_weight_vote(logw, Y, classes)


def singular_kernel_classifier(X_train: Any, y: Any, X_test: Any, dual: str | DualActivation) -> np.ndarray:
    """The infinite-depth NNGP classifier of a singular-regime activation:
    ``sign(sum_i y_i g(<x, x_i>))`` with ``g`` = :func:`koenigs_function`."""
    x1 = _points(X_train, "X_train")
    x2 = _points(X_test, "X_test", x1.shape[1])
    classes, Y = _targets(_labels(y, x1.shape[0]))
    g = koenigs_function(dual, x1 @ x2.T)
    logw = torch.log(g.abs())
    return _log_weight_vote(logw, Y, classes, sign=torch.sign(g))


def deep_kernel_classifier(
    X_train: Any,
    y: Any,
    X_test: Any,
    dual: str | DualActivation,
    depth: int,
    kernel: str = "nngp",
) -> np.ndarray:
    """The trained infinitely wide network of depth ``depth``: :func:`kernel_interpolation_classifier`
    with :func:`nngp_kernel` (last layer trained) or :func:`ntk_kernel` (all layers trained)."""
    _check("deep_kernel_classifier", kernel=kernel, depth=depth)
    k_train, k_test = kernel_pair(X_train, X_test, dual, depth, kernel)
    return kernel_interpolation_classifier(k_train, y, k_test)


def agreement(a: Any, b: Any) -> float:
    """Fraction of equal predictions."""
    x, z = _np(a).reshape(-1), _np(b).reshape(-1)
    if x.shape != z.shape or x.size == 0:
        raise ValueError(f"predictions must be non-empty and of equal length, got {x.shape} and {z.shape}")
    return float(np.mean(x == z))


# =========================================================================== Dirichlet data
def _alphas(alpha: Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    if a.ndim != 1 or a.size < 2 or not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(f"{name} must be >= 2 positive finite concentrations, got {list(np.ravel(alpha))}")
    return a


def dirichlet_sphere_data(
    n: int,
    alpha1: Sequence[float],
    alpha2: Sequence[float],
    prior1: float = 0.4,
    seed: int = 0,
    *,
    max_redraws: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's two-class data: ``int(n * prior1)`` simplex points from Dirichlet(``alpha1``)
    (label +1) and the rest from Dirichlet(``alpha2``) (label -1), shuffled, then normalised to
    the unit sphere (the official ``get_dirichlet_data``). Redrawn while two points coincide on
    the sphere (inner product rounding to 1), as the official ``main.py`` does.

    Returns:
        ``(X, y, SX)``: (n, d) unit-norm points, (n,) labels in {-1, +1}, (n, d) simplex points.
    """
    _check("dirichlet_sphere_data", n=n, prior1=float(prior1), seed=seed, max_redraws=max_redraws)
    a1, a2 = _alphas(alpha1, "alpha1"), _alphas(alpha2, "alpha2")
    if a1.size != a2.size:
        raise ValueError(f"alpha1 and alpha2 must have the same length, got {a1.size} and {a2.size}")
    rng = np.random.default_rng(seed)
    n1 = int(n * prior1)
    for _ in range(max_redraws):
        sx = np.concatenate([rng.dirichlet(a1, size=n1), rng.dirichlet(a2, size=n - n1)])
        y = np.concatenate([np.ones(n1), -np.ones(n - n1)])
        perm = rng.permutation(n)
        sx, y = sx[perm], y[perm]
        x = sx / np.linalg.norm(sx, axis=1, keepdims=True)
        if _max_offdiag_inner(x) < 1.0:
            return x, y, sx
    raise RuntimeError(f"dirichlet_sphere_data: duplicate points in {max_redraws} draws")


def _max_offdiag_inner(x: np.ndarray, block: int = 2048) -> float:
    """Largest ``<x_i, x_j>`` over ``i != j`` (row blocks, vectorised within each)."""
    best = -np.inf
    for s in range(0, x.shape[0], block):
        g = x[s : s + block] @ x.T
        g[np.arange(g.shape[0]), np.arange(s, s + g.shape[0])] = -np.inf
        best = max(best, float(g.max()))
    return best


def dirichlet_bayes_classifier(
    SX: Any, alpha1: Sequence[float], alpha2: Sequence[float], prior1: float = 0.4
) -> np.ndarray:
    """The Bayes classifier of :func:`dirichlet_sphere_data` on the simplex points: +1 where
    ``prior1 p1(x) > (1 - prior1) p2(x)`` (Dirichlet log-densities, the same values as
    ``scipy.stats.dirichlet.logpdf``, written out so that boundary points give -inf/+inf
    instead of an error), else -1 (the official ``dirichlet_bayes_classifier``)."""
    from scipy.special import gammaln

    _check("dirichlet_bayes_classifier", prior1=float(prior1))
    a1, a2 = _alphas(alpha1, "alpha1"), _alphas(alpha2, "alpha2")
    sx = _np(SX).astype(np.float64)
    if sx.ndim != 2 or sx.shape[1] != a1.size or a2.size != a1.size:
        raise ValueError(f"SX must have shape (N, {a1.size}) matching alpha1 and alpha2, got {sx.shape}")

    def logpdf(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a - 1.0 == 0.0, 0.0, (a - 1.0) * np.log(sx))
        return terms.sum(axis=1) + gammaln(a.sum()) - gammaln(a).sum()

    s1 = logpdf(a1) + math.log(prior1)
    s2 = logpdf(a2) + math.log(1.0 - prior1)
    return np.where(s1 > s2, 1.0, -1.0)


# =========================================================================== finite networks
def _hermite_stack(z: Tensor, degree: int) -> list[Tensor]:
    """``[He_0(z), ..., He_degree(z)]`` (probabilists'), by ``He_{n+1} = z He_n - n He_{n-1}``."""
    hs = [torch.ones_like(z)]
    if degree >= 1:
        hs.append(z)
    for n in range(1, degree):
        hs.append(z * hs[n] - n * hs[n - 1])
    return hs


class HermiteActivation(nn.Module):
    """``phi(z) = sum_n a_n He_n(z) / sqrt(n!)``; its dual is ``sum_n a_n^2 rho^n`` (normalised
    when ``sum a_n^2 = 1``). E.g. ``HermiteActivation([0, 0.5**0.5, 0, 0.5**0.5])`` is the official
    ``3d_opt``: ``(z + (z^3 - 3z) / sqrt(6)) / sqrt(2)``."""

    def __init__(self, coeffs: Sequence[float]) -> None:
        super().__init__()
        a = [float(v) for v in coeffs]
        if not a or not all(math.isfinite(v) for v in a):
            raise ValueError(f"HermiteActivation: coeffs must be finite and non-empty, got {list(coeffs)}")
        self.coeffs = tuple(a)
        self._scaled = [v / math.sqrt(math.factorial(n)) for n, v in enumerate(a)]

    @property
    def dual(self) -> PolynomialDual:
        return PolynomialDual([v * v for v in self.coeffs])

    def forward(self, z: Tensor) -> Tensor:
        out = torch.zeros_like(z)
        for c, h in zip(self._scaled, _hermite_stack(z, len(self._scaled) - 1)):
            if c != 0.0:
                out = out + c * h
        return out


class SineActivation(nn.Module):
    """``phi(z) = sqrt(2 / (1 - e^{-2a})) sin(sqrt(a) z)``; dual ``sinh(a rho) / sinh(a)`` (:class:`SineDual`)."""

    def __init__(self, a: float) -> None:
        super().__init__()
        _check("SineActivation", a=a)
        self.a = float(a)
        self._freq = math.sqrt(self.a)
        self._scale = math.sqrt(2.0 / -math.expm1(-2.0 * self.a))

    def forward(self, z: Tensor) -> Tensor:
        return self._scale * torch.sin(self._freq * z)


class ErfActivation(nn.Module):
    """``phi(z) = erf(z) / sqrt((2/pi) arcsin(2/3))``; dual :class:`ErfDual`."""

    _scale = 1.0 / math.sqrt(2.0 / math.pi * math.asin(2.0 / 3.0))

    def forward(self, z: Tensor) -> Tensor:
        return self._scale * torch.erf(z)


class NormalizedReLU(nn.Module):
    """``phi(z) = sqrt(2) max(z, 0)``; dual :class:`ReluDual`."""

    def forward(self, z: Tensor) -> Tensor:
        return math.sqrt(2.0) * torch.relu(z)


class DeepFCNet(nn.Module):
    """A bias-free fully connected network in NTK parameterisation with ``depth`` hidden layers
    of ``width`` units: ``h^1 = W^1 x``, ``h^{l+1} = W^{l+1} phi(h^l) / sqrt(k)``,
    ``f = W^{L+1} phi(h^L) / sqrt(k)``, every weight N(0, 1) (the network whose infinite-width
    kernels are :func:`nngp_kernel` and :func:`ntk_kernel`).

    ``normalize_preactivations`` divides each ``h^l`` by its root mean square over the units (per
    input): the infinite-width kernels are unchanged (the RMS tends to 1), and it stops finite-width
    norm fluctuations from growing with depth for activations whose squared-norm map
    ``q -> E phi(sqrt(q) z)^2`` has slope > 1 at ``q = 1`` (the polynomial "optimal" ones).
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        activation: nn.Module | str | DualActivation,
        *,
        out_dim: int = 1,
        normalize_preactivations: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check("DeepFCNet", in_dim=in_dim, width=width, depth=depth, out_dim=out_dim)
        if not isinstance(activation, nn.Module):
            activation = dual_activation(activation).module()
        self.act = activation
        self.width, self.depth, self.normalize_preactivations = width, depth, normalize_preactivations
        dims = [in_dim] + [width] * depth + [out_dim]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(dims[i + 1], dims[i], generator=generator)) for i in range(len(dims) - 1)
        )

    def _pre(self, h: Tensor) -> Tensor:
        if self.normalize_preactivations:
            h = h * torch.rsqrt(h.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-30))
        return h

    def hidden(self, x: Tensor) -> list[Tensor]:
        """``[a^0 = x, a^1, ..., a^L]`` with ``a^l = phi(h^l) / sqrt(k)`` (each (N, width))."""
        scale = 1.0 / math.sqrt(self.width)
        acts = [x]
        for i in range(self.depth):
            acts.append(self.act(self._pre(acts[-1] @ self.weights[i].T)) * scale)
        return acts

    def features(self, x: Tensor) -> Tensor:
        """``phi(h^L(x))`` (N, width): the random features of the last layer."""
        return self.hidden(x)[-1] * math.sqrt(self.width) if self.depth else x

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden(x)[-1] @ self.weights[self.depth].T


def _net_input(net: DeepFCNet, X: Any, name: str) -> Tensor:
    x = _points(X, name, net.weights[0].shape[1])
    return x.to(dtype=net.weights[0].dtype, device=net.weights[0].device)


@torch.no_grad()
def empirical_nngp(net: DeepFCNet, X1: Any, X2: Any = None) -> Tensor:
    """``<phi(h^L(x)), phi(h^L(x'))> / k``: the finite-width NNGP of a random network, which tends
    to :func:`nngp_kernel` at the same depth as ``k -> inf`` (float64)."""
    a1 = net.hidden(_net_input(net, X1, "X1"))[-1]
    a2 = a1 if X2 is None else net.hidden(_net_input(net, X2, "X2"))[-1]
    return (a1 @ a2.T).to(F64)


def _activation_slopes(act: nn.Module, h: Tensor) -> Tensor:
    """``phi'(h)`` element-wise, by autograd of ``sum phi(h)`` (any element-wise activation)."""
    with torch.enable_grad():
        leaf = h.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(act(leaf).sum(), leaf)
    return grad


def _ntk_parts(net: DeepFCNet, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Layer inputs ``a^{l-1}`` and back-propagated ``delta^l = df/dh^l`` (l = 1..L+1), (N, .)."""
    if net.weights[-1].shape[0] != 1:
        raise ValueError("empirical_ntk needs a scalar output (out_dim=1)")
    if net.normalize_preactivations:
        raise ValueError("empirical_ntk is defined for networks without pre-activation normalisation")
    scale = 1.0 / math.sqrt(net.width)
    acts, pres = [x], []
    for i in range(net.depth):
        h = acts[-1] @ net.weights[i].T
        pres.append(h)
        acts.append(net.act(h) * scale)
    delta = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    deltas = [delta]
    for layer in range(net.depth, 0, -1):
        delta = (delta @ net.weights[layer]) * _activation_slopes(net.act, pres[layer - 1]) * scale
        deltas.append(delta)
    return acts, deltas[::-1]


@torch.no_grad()
def empirical_ntk(net: DeepFCNet, X1: Any, X2: Any = None) -> Tensor:
    """The finite-width NTK ``<df(x)/dtheta, df(x')/dtheta>`` of a scalar-output network, all
    layers at once: ``sum_l <delta^l(x), delta^l(x')> <a^{l-1}(x), a^{l-1}(x')>`` (float64); it
    tends to the unnormalised :func:`ntk_kernel` as ``k -> inf``."""
    acts1, d1 = _ntk_parts(net, _net_input(net, X1, "X1"))
    acts2, d2 = (acts1, d1) if X2 is None else _ntk_parts(net, _net_input(net, X2, "X2"))
    out = torch.zeros(acts1[0].shape[0], acts2[0].shape[0], dtype=F64, device=acts1[0].device)
    for a1, a2, e1, e2 in zip(acts1, acts2, d1, d2):
        out += ((e1 @ e2.T) * (a1 @ a2.T)).to(F64)
    return out


# =========================================================================== a user's own model
class LimitAgreement(NamedTuple):
    """What :func:`limit_agreement` measures on a test set: the agreement of the model's labels with
    the infinite-width classifier of the same depth (``agree_limit``) and with the infinite-depth
    rule of the activation (``agree_rule``; NaN for the identity dual, which has no rule), the
    rule's name, and the three label vectors."""

    agree_limit: float
    agree_rule: float
    rule: str
    model_pred: np.ndarray
    limit_pred: np.ndarray
    rule_pred: np.ndarray | None


def _collect(loader: Any, name: str, progress: bool) -> tuple[Tensor, np.ndarray]:
    """Concatenate the (x, y) batches of ``loader``: inputs flattened to (N, D) float64, labels (N,)."""
    from paperzoo.engine.progress import progress as bar

    xs, ys = [], []
    for batch in bar(loader, desc=f"reading {name}", enabled=progress):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(f"{name} must yield (x, y) batches")
        x, y = batch[0], batch[1]
        xs.append(torch.as_tensor(x).reshape(len(x), -1).to(F64))
        ys.append(_np(y).reshape(len(x), -1))
    if not xs:
        raise ValueError(f"{name} is empty")
    y_all = np.concatenate(ys)
    return torch.cat(xs), (y_all[:, 0] if y_all.shape[1] == 1 else y_all.argmax(axis=1))


def _rule_pred(dual: DualActivation, x: Tensor, y: np.ndarray, xt: Tensor) -> tuple[str, np.ndarray | None]:
    reg = regime(dual)
    if reg.kind == "majority":
        return "majority vote", majority_vote(y, xt)
    if reg.kind == "1nn":
        return "1-NN", one_nn(x, y, xt)
    if reg.kind == "singular":
        return f"singular kernel rule (alpha={reg.alpha:.3g})", singular_kernel_classifier(x, y, xt, dual)
    return "none (identity dual)", None


def limit_agreement(
    model: nn.Module,
    train_loader: Any,
    test_loader: Any,
    activation: str | DualActivation,
    depth: int,
    kernel: str = "nngp",
    *,
    progress: bool = True,
) -> LimitAgreement:
    """Measure how close a user's trained finite-width network is to the paper's limits on their data.

    The paper's theorems say a bias-free fully connected network of depth ``depth`` with this
    activation, infinitely wide and trained to interpolation, is ridgeless kernel regression with the
    NNGP (last layer trained) or NTK (all layers trained) kernel, and that as the depth grows that
    classifier becomes the activation's limit rule (majority vote, 1-NN or the singular kernel rule).
    This reads the training and test batches of the two loaders (inputs flattened and projected to
    the unit sphere, as the theory assumes), labels the test points with ``model`` (a scalar output:
    its sign, the larger label for >= 0; several outputs: argmax), with the infinite-width classifier
    and with the limit rule, and returns their agreements (:class:`LimitAgreement`). The model is
    evaluated on the normalised inputs, as trained in the paper's setting.

    Args:
        model: the user's trained ``nn.Module``.
        train_loader, test_loader: iterables of ``(x, y)`` batches (e.g. torch DataLoaders).
        activation: the model's dual activation (a name of :func:`dual_activation` or a :class:`DualActivation`).
        depth: the number of hidden layers of the model.
        kernel: ``"nngp"`` or ``"ntk"``.
        progress: show bars while reading the loaders and computing the kernels.
    """
    from paperzoo.engine.progress import progress_bar

    _check("limit_agreement", depth=depth, kernel=kernel)
    if not isinstance(model, nn.Module):
        raise TypeError(f"limit_agreement: model must be an nn.Module, got {type(model).__name__}")
    dual = dual_activation(activation)
    x, y = _collect(train_loader, "train_loader", progress)
    xt, _ = _collect(test_loader, "test_loader", progress)
    if xt.shape[1] != x.shape[1]:
        raise ValueError(f"train and test inputs differ in dimension: {x.shape[1]} vs {xt.shape[1]}")
    x, xt = to_sphere(x), to_sphere(xt)
    with progress_bar(total=3, desc="limit agreement", enabled=progress) as bar:
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        was_training = model.training
        model.eval()
        with torch.no_grad():
            scores = _np(model(xt.to(dtype=dtype, device=device))).reshape(xt.shape[0], -1).astype(np.float64)
        model.train(was_training)
        classes = np.unique(y)
        model_pred = _decide(classes, scores)
        bar.update(1)
        limit_pred = deep_kernel_classifier(x, y, xt, dual, depth, kernel)
        bar.update(1)
        rule, rule_pred = _rule_pred(dual, x, y, xt)
        bar.update(1)
    agree_rule = agreement(model_pred, rule_pred) if rule_pred is not None else math.nan
    return LimitAgreement(agreement(model_pred, limit_pred), agree_rule, rule, model_pred, limit_pred, rule_pred)


def plot_limit_agreement(
    results: dict[str, LimitAgreement] | Sequence[tuple[str, LimitAgreement]], tolerance: float = 0.01
) -> Any:
    """Bars of each model's agreement with its infinite-width classifier and with the infinite-depth
    rule (one group per labelled :class:`LimitAgreement`), the prediction (agreement 1) as a line and
    ``1 - tolerance`` dashed. Returns the matplotlib Figure."""
    from paperzoo.engine.plots import subplots

    items = list(results.items()) if isinstance(results, dict) else list(results)
    if not items:
        raise ValueError("plot_limit_agreement: no results")
    fig, (ax,) = subplots(1, width=max(4.0, 1.2 * len(items) + 2.0), height=3.8)
    xs = np.arange(len(items))
    ax.bar(xs - 0.2, [r.agree_limit for _, r in items], 0.4, label="vs infinite-width classifier")
    ax.bar(xs + 0.2, [r.agree_rule for _, r in items], 0.4, label="vs infinite-depth rule")
    ax.axhline(1.0, color="black", lw=1, label="prediction (infinite width / depth)")
    ax.axhline(1.0 - tolerance, color="black", ls="--", lw=1, label=f"tolerance {tolerance:g}")
    ax.set_xticks(xs, [name for name, _ in items], rotation=20, ha="right", fontsize=8)
    lo = min([r.agree_limit for _, r in items] + [v for v in (r.agree_rule for _, r in items) if v == v])
    ax.set_ylim(max(0.0, min(lo, 1.0 - tolerance) - 0.05), 1.01)
    ax.set_ylabel("agreement on the test set")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
