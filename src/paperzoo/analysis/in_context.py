"""In-context linear regression with one layer of linear self-attention (LSA): the objects of
Mahankali, Hashimoto & Ma, "One Step of Gradient Descent is Provably the Optimal In-Context
Learner with One Layer of Linear Self-Attention" (ICLR 2024, arXiv 2307.03576).

The paper's three results (stated in its abstract; its theorem numbers are not cited here):

1. covariates ``x ~ N(0, I)``, task ``w ~ N(0, I)``, ``y = w^T x + eps``: the global minimiser
   of the pre-training loss of a one-layer LSA implements one step of gradient descent (GD) from
   ``w_0 = 0`` on the prompt's least-squares loss;
2. ``x ~ N(0, Sigma)``, ``w ~ N(0, Sigma^{-1})``: it implements one step of *preconditioned* GD
   (preconditioner ``Sigma^{-1}``);
3. responses from a family of nonlinear functions (the family's exact conditions are not
   reproduced here): it still implements one step of plain GD on the linear least-squares loss.

The tools:

* :class:`LinearSelfAttention`: the one-layer LSA (full ``W_K, W_Q, W_V`` or merged
  ``W_KQ, W_PV`` parametrisation), its token-level ``forward`` and a fast ``predict`` that
  computes only the query's output; :meth:`~LinearSelfAttention.effective_gamma` reads off the
  matrix ``Gamma`` of the collapsed predictor ``y_hat = m^T Gamma x_q`` (``m = (1/n) sum y_i
  x_i``, the prompt's cross-moment) and :meth:`~LinearSelfAttention.from_gamma` builds weights
  that realise a given ``Gamma``.
* :class:`LinearRegressionPrompts`: the prompt generator (tokens ``z_i = (x_i, y_i)``, query
  ``(x_q, 0)``), with optional non-isotropic ``Sigma`` / ``Omega`` and a nonlinear
  ``target_fn``.
* Closed forms (derived from first principles in this project and checked against Monte Carlo
  in the tests): :func:`optimal_gamma` ``Gamma* = E[m m^T]^{-1} E[m w^T]
  = n((tr(Omega Sigma) + s2) I + (n + 1) Omega Sigma)^{-1} Omega``, :func:`optimal_step_size`
  ``n / (n + d + 1 + s2)``, :func:`population_loss`, :func:`optimal_loss`,
  :func:`best_scalar_gd_step`, and :func:`monte_carlo_optimal_gamma` (the same optimum for any
  response law, from Monte-Carlo moments).
* Predictors on a prompt: :func:`one_step_gd_predict`, :func:`ridge_posterior_mean_predict`
  (the Bayes-optimal baseline for the linear-Gaussian model), :func:`least_squares_predict`;
  and :func:`compare_lsa_to_gd`, the diagnostics of a trained LSA against the GD optimum.
* On a user's model and prompts: :func:`fit_effective_gamma` reads ``Gamma_eff`` off any
  ``nn.Module`` mapping prompts to predictions, from an iterable of ``(Z, y_q)`` batches (a torch
  ``DataLoader``), by least squares on the one-step-GD features ``m x_q^T`` (with a progress bar),
  and :func:`plot_gamma` draws it against a closed form with the tolerance band.

Shapes: a batch of prompts is ``Z`` (B, n + 1, d + 1), rows are tokens, the query last; ``X``
(B, n, d), ``y`` (B, n), ``x_q`` (B, d). Closed forms work in the dtype of their inputs (use
float64 for golden values).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params
from paperzoo.engine.progress import progress_bar

__all__ = [
    "LinearRegressionPrompts",
    "LinearSelfAttention",
    "OptimumEstimate",
    "PromptBatch",
    "best_scalar_gd_step",
    "build_prompt",
    "GammaFit",
    "compare_lsa_to_gd",
    "fit_effective_gamma",
    "plot_gamma",
    "cross_moment",
    "least_squares_predict",
    "monte_carlo_optimal_gamma",
    "one_step_gd_predict",
    "optimal_gamma",
    "optimal_loss",
    "optimal_step_size",
    "population_loss",
    "prompt_moments",
    "ridge_posterior_mean_predict",
    "tanh_single_index",
]

TargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_POS_INT = Interval(int, 1, math.inf, closed="left")
_NONNEG = Interval(float, 0, math.inf, closed="left")
_SIZES = {
    "d": [_POS_INT],
    "n": [_POS_INT],
    "noise_var": [_NONNEG],
    "noise_std": [_NONNEG],
    "batch_size": [_POS_INT],
    "num_prompts": [_POS_INT],
    "n_eval": [_POS_INT],
}


# --------------------------------------------------------------------------- input checks
def _check_float_tensor(t: Any, name: str, shape: str) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape {shape}")
    check_finite(t, name)


def _check_matrix(M: Any, name: str, d: int | None = None, *, psd: bool = False, pd: bool = False) -> int:
    """A finite square (d, d) matrix; symmetric and PSD / PD when asked. Returns d."""
    _check_float_tensor(M, name, "(d, d)")
    if M.dim() != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name} must be a square (d, d) matrix with d >= 1, got shape {tuple(M.shape)}")
    if d is not None and M.shape[0] != d:
        raise ValueError(f"{name} must have shape ({d}, {d}), got {tuple(M.shape)}")
    if psd or pd:
        scale = float(M.abs().max()) or 1.0
        if not torch.allclose(M, M.T, rtol=0.0, atol=1e-8 * scale):
            raise ValueError(f"{name} must be symmetric")
        low = float(torch.linalg.eigvalsh(M.double()).min())
        if (pd and low <= 1e-12 * scale) or (psd and low < -1e-10 * scale):
            kind = "positive definite" if pd else "positive semi-definite"
            raise ValueError(f"{name} must be {kind}, got a smallest eigenvalue of {low:.3g}")
    return int(M.shape[0])


def _check_regression(X: Any, y: Any, x_q: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """``X`` (B, n, d), ``y`` (B, n), ``x_q`` (B, d); one unbatched prompt ((n, d), (n,), (d,)) is
    given a batch dimension. Returns the batched tensors and whether the input was batched."""
    for t, name in ((X, "X"), (y, "y"), (x_q, "x_q")):
        _check_float_tensor(t, name, "(B, n, d), (B, n), (B, d)")
    batched = X.dim() == 3
    if not batched:
        if X.dim() != 2:
            raise ValueError(f"X must have shape (B, n, d) or (n, d), got {tuple(X.shape)}")
        X, y, x_q = X[None], y[None], x_q[None]
    B, n, d = X.shape
    if B == 0 or n == 0 or d == 0:
        raise ValueError(f"empty prompt batch: X has shape {tuple(X.shape)}")
    if y.shape != (B, n):
        raise ValueError(f"y must have shape {(B, n) if batched else (n,)}, got {tuple(y.shape)}")
    if x_q.shape != (B, d):
        raise ValueError(f"x_q must have shape {(B, d) if batched else (d,)}, got {tuple(x_q.shape)}")
    return X, y, x_q, batched


def _check_prompt(Z: Any, d: int | None = None) -> None:
    _check_float_tensor(Z, "Z", "(B, n + 1, d + 1)")
    if Z.dim() != 3:
        raise ValueError(f"Z must have shape (B, n + 1, d + 1), got {tuple(Z.shape)}")
    if Z.shape[0] == 0:
        raise ValueError("empty batch: Z has 0 prompts")
    if Z.shape[1] < 2:
        raise ValueError(f"Z needs at least one context token and the query (n + 1 >= 2 rows), got {Z.shape[1]}")
    if d is not None and Z.shape[2] != d + 1:
        raise ValueError(f"Z must have d + 1 = {d + 1} columns, got {Z.shape[2]}")


# --------------------------------------------------------------------------- prompts
def build_prompt(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """The prompt matrix ``Z`` (B, n + 1, d + 1): rows ``(x_i, y_i)`` then the query ``(x_q, 0)``.

    >>> Z = build_prompt(torch.eye(2)[None], torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 2.0]]))
    >>> Z[0].tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, -1.0], [0.5, 2.0, 0.0]]
    """
    X, y, x_q, batched = _check_regression(X, y, x_q)
    Z = _assemble_prompt(X, y, x_q)
    return Z if batched else Z[0]


def _assemble_prompt(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    B, n, d = X.shape
    Z = X.new_zeros(B, n + 1, d + 1)
    Z[:, :n, :d], Z[:, :n, d], Z[:, n, :d] = X, y, x_q
    return Z


def cross_moment(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The prompt's cross-moment ``m = (1/n) sum_i y_i x_i`` (B, d) (or (d,) for one prompt); the
    negative gradient of ``L_hat(w) = (1/2n) sum (w^T x_i - y_i)^2`` at ``w = 0``."""
    _check_regression(X, y, X[..., 0, :])
    return torch.einsum("...n,...nd->...d", y, X) / X.shape[-2]


class PromptBatch(NamedTuple):
    """One batch of prompts with its parts: ``Z`` (B, n + 1, d + 1), ``y_q`` (B,), the context
    ``X`` (B, n, d) and ``y`` (B, n), the query ``x_q`` (B, d) and the task vectors ``w`` (B, d)."""

    Z: torch.Tensor
    y_q: torch.Tensor
    X: torch.Tensor
    y: torch.Tensor
    x_q: torch.Tensor
    w: torch.Tensor


def _sqrtm_psd(M: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix (eigenvalues clipped at 0)."""
    vals, vecs = torch.linalg.eigh(M)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def tanh_single_index(X: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A nonlinear response family for :class:`LinearRegressionPrompts`: ``f_w(x) = tanh(w^T x)``.

    With ``w ~ N(0, I)`` its law is invariant under rotations of ``x`` and under ``f -> -f``
    (``tanh`` is odd and ``w -> -w`` is equally likely), the symmetries under which the one-GD-step
    optimum survives nonlinear responses. ``X`` (B, N, d), ``w`` (B, d) -> (B, N).
    """
    return torch.tanh(torch.einsum("bnd,bd->bn", X, w))


class LinearRegressionPrompts:
    """Random in-context regression prompts: ``w ~ N(0, Omega)``, ``x_1..x_n, x_q ~ N(0, Sigma)``
    i.i.d., ``y_i = f_w(x_i) + eps_i`` with ``eps_i ~ N(0, noise_std^2)``; ``f_w(x) = w^T x``
    unless ``target_fn`` is given.

    Args:
        d: covariate dimension.
        n: context length (the prompt has ``n + 1`` tokens, the query last).
        Sigma: (d, d) covariance of the covariates, positive definite (default ``I``).
        Omega: (d, d) covariance of the task vector, positive semi-definite (default ``I``).
        noise_std: standard deviation of the response noise.
        target_fn: ``target_fn(X, w) -> f_w(X)`` for ``X`` (B, N, d), ``w`` (B, d), returning
            (B, N), e.g. :func:`tanh_single_index`; ``None`` for the linear model.
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global RNG).
        dtype: dtype of the sampled tensors.

    ``sample(B)`` returns ``(Z, y_q)``; ``sample(B, return_parts=True)`` a :class:`PromptBatch`.
    """

    _parameter_constraints = {"d": _SIZES["d"], "n": _SIZES["n"], "noise_std": _SIZES["noise_std"]}

    def __init__(
        self,
        d: int,
        n: int,
        Sigma: torch.Tensor | None = None,
        Omega: torch.Tensor | None = None,
        noise_std: float = 0.0,
        target_fn: TargetFn | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        validate_params(
            self._parameter_constraints, {"d": d, "n": n, "noise_std": noise_std}, owner=type(self).__name__
        )
        eye = torch.eye(d, dtype=torch.float64)
        self.Sigma = eye if Sigma is None else Sigma.detach().to(torch.float64)
        self.Omega = eye if Omega is None else Omega.detach().to(torch.float64)
        _check_matrix(self.Sigma, "Sigma", d, pd=True)
        _check_matrix(self.Omega, "Omega", d, psd=True)
        self.d, self.n, self.noise_std = d, n, float(noise_std)
        self.target_fn, self.generator, self.dtype = target_fn, generator, dtype
        self._sigma_half = _sqrtm_psd(self.Sigma).to(dtype)
        self._omega_half = _sqrtm_psd(self.Omega).to(dtype)

    @property
    def noise_var(self) -> float:
        return self.noise_std**2

    def sample(self, batch_size: int, return_parts: bool = False) -> tuple[torch.Tensor, torch.Tensor] | PromptBatch:
        """``batch_size`` fresh prompts: ``(Z, y_q)``, or a :class:`PromptBatch` if ``return_parts``."""
        validate_params({"batch_size": _SIZES["batch_size"]}, {"batch_size": batch_size}, owner="sample")
        B, n, d, g, dt = batch_size, self.n, self.d, self.generator, self.dtype
        w = torch.randn(B, d, generator=g, dtype=dt) @ self._omega_half
        X_all = torch.randn(B, n + 1, d, generator=g, dtype=dt) @ self._sigma_half
        f = torch.einsum("bnd,bd->bn", X_all, w) if self.target_fn is None else self.target_fn(X_all, w)
        if f.shape != (B, n + 1):
            raise ValueError(f"target_fn must return shape {(B, n + 1)}, got {tuple(f.shape)}")
        y_all = f.to(dt) + self.noise_std * torch.randn(B, n + 1, generator=g, dtype=dt)
        X, x_q, y, y_q = X_all[:, :n], X_all[:, n], y_all[:, :n], y_all[:, n]
        Z = _assemble_prompt(X, y, x_q)
        return PromptBatch(Z, y_q, X, y, x_q, w) if return_parts else (Z, y_q)

    def _linear_only(self, what: str) -> None:
        if self.target_fn is not None:
            raise ValueError(f"{what} is closed-form only for linear responses; use monte_carlo_optimal_gamma")

    def optimal_gamma(self) -> torch.Tensor:
        """:func:`optimal_gamma` of this prompt law (linear responses only), float64."""
        self._linear_only("optimal_gamma")
        return optimal_gamma(self.Sigma, self.Omega, self.noise_var, self.n)

    def optimal_loss(self) -> float:
        """:func:`optimal_loss` of this prompt law (linear responses only)."""
        self._linear_only("optimal_loss")
        return optimal_loss(self.Sigma, self.Omega, self.noise_var, self.n)


# --------------------------------------------------------------------------- the LSA layer
class LinearSelfAttention(nn.Module):
    """One layer of linear self-attention, no softmax, no MLP, no layer norm.

    For every token ``j``: ``out_j = z_j + (1/n) sum_i (z_i^T W_KQ z_j) W_PV z_i``, the sum over
    the ``n`` context tokens (``mask_query=True``; with ``False`` the query joins the keys and
    values). The prediction is the last coordinate of the query's output. Parametrisations:
    ``"full"`` learns ``W_K, W_Q, W_V`` with ``W_KQ = W_K^T W_Q``, ``W_PV = W_V``; ``"merged"``
    learns ``W_KQ`` and ``W_PV`` directly (as von Oswald et al.). Every entry is initialised
    ``N(0, init_std^2)`` from torch's global RNG.

    Only the last row of ``W_PV`` (``v = (v_x, v_y)``) and the first ``d`` columns of ``W_KQ``
    (``[A; b^T]``) affect the prediction; it collapses to ``y_hat = m^T Gamma x_q + [v_x^T S A x_q
    + v_y s b^T x_q]`` with ``Gamma = v_y A + v_x b^T`` (:meth:`effective_gamma`), ``S`` and ``s``
    the prompt's second moments of ``x`` and ``y``.

    >>> Gamma = 0.5 * torch.eye(2, dtype=torch.float64)
    >>> lsa = LinearSelfAttention.from_gamma(Gamma)
    >>> Z = build_prompt(torch.eye(2, dtype=torch.float64)[None], torch.tensor([[1.0, -1.0]], dtype=torch.float64),
    ...                  torch.tensor([[0.5, 2.0]], dtype=torch.float64))
    >>> with torch.no_grad():
    ...     print(round(float(lsa.predict(Z)), 6), round(float(lsa(Z)[0, -1, -1]), 6))  # m = (0.5, -0.5)
    -0.375 -0.375
    """

    _parameter_constraints = {
        "d": _SIZES["d"],
        "parametrization": [Options(("full", "merged"))],
        "mask_query": [Options((True, False))],
        "normalize_by_n": [Options((True, False))],
        "init_std": [_NONNEG],
    }

    def __init__(
        self,
        d: int,
        parametrization: str = "full",
        mask_query: bool = True,
        normalize_by_n: bool = True,
        init_std: float = 0.1,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {
                "d": d,
                "parametrization": parametrization,
                "mask_query": mask_query,
                "normalize_by_n": normalize_by_n,
                "init_std": init_std,
            },
            owner=type(self).__name__,
        )
        self.d, self.parametrization = d, parametrization
        self.mask_query, self.normalize_by_n, self.init_std = mask_query, normalize_by_n, float(init_std)
        names = ("W_K", "W_Q", "W_V") if parametrization == "full" else ("W_KQ", "W_PV")
        for name in names:
            self.register_parameter(name, nn.Parameter(torch.empty(d + 1, d + 1, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, self.init_std)

    def extra_repr(self) -> str:
        return (
            f"d={self.d}, parametrization={self.parametrization!r}, mask_query={self.mask_query}, "
            f"normalize_by_n={self.normalize_by_n}"
        )

    # ---- weights
    def merged_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_KQ, W_PV)``, each (d + 1, d + 1) (``W_K^T W_Q`` and ``W_V`` when full)."""
        if self.parametrization == "full":
            return self.W_K.T @ self.W_Q, self.W_V
        return self.W_KQ, self.W_PV

    def blocks(self) -> dict[str, torch.Tensor]:
        """The parts of the weights the prediction depends on: ``A`` (d, d) and ``b`` (d,) (the
        first d columns of ``W_KQ``, top block and last row), ``v_x`` (d,) and ``v_y`` (scalar)
        (the last row of ``W_PV``)."""
        W_KQ, W_PV = self.merged_weights()
        d = self.d
        return {"A": W_KQ[:d, :d], "b": W_KQ[d, :d], "v_x": W_PV[d, :d], "v_y": W_PV[d, d]}

    def effective_gamma(self, n: int | None = None) -> torch.Tensor:
        """``Gamma = v_y A + v_x b^T`` (d, d): the matrix of the odd part ``m^T Gamma x_q`` of the
        prediction. With ``normalize_by_n=False`` the prediction is ``n`` times larger, so the
        context length ``n`` must be given and ``n * Gamma`` is returned."""
        p = self.blocks()
        gamma = p["v_y"] * p["A"] + torch.outer(p["v_x"], p["b"])
        if self.normalize_by_n:
            return gamma
        if n is None:
            raise ValueError("effective_gamma: give the context length n when normalize_by_n=False")
        validate_params({"n": _SIZES["n"]}, {"n": n}, owner="effective_gamma")
        return n * gamma

    @classmethod
    def from_gamma(cls, Gamma: torch.Tensor, parametrization: str = "merged", **kwargs: Any) -> LinearSelfAttention:
        """An LSA whose prediction is exactly ``m^T Gamma x_q``: ``W_KQ`` has ``Gamma`` as its
        top-left block and zeros elsewhere, ``W_PV`` has ``e_{d+1}`` as its last row and zeros
        elsewhere (full: ``W_K = I``, ``W_Q = W_KQ``, ``W_V = W_PV``). ``kwargs`` go to the
        constructor (``mask_query``, ``normalize_by_n``); dtype follows ``Gamma``."""
        d = _check_matrix(Gamma, "Gamma")
        model = cls(d, parametrization=parametrization, init_std=0.0, dtype=Gamma.dtype, **kwargs)
        W_KQ = torch.zeros(d + 1, d + 1, dtype=Gamma.dtype)
        W_KQ[:d, :d] = Gamma.detach()
        W_PV = torch.zeros_like(W_KQ)
        W_PV[d, d] = 1.0
        with torch.no_grad():
            if parametrization == "full":
                model.W_K.copy_(torch.eye(d + 1, dtype=Gamma.dtype))
                model.W_Q.copy_(W_KQ)
                model.W_V.copy_(W_PV)
            else:
                model.W_KQ.copy_(W_KQ)
                model.W_PV.copy_(W_PV)
        return model

    # ---- forward passes
    def _keys(self, Z: torch.Tensor) -> tuple[torch.Tensor, float]:
        n = Z.shape[1] - 1
        keys = Z[:, :n] if self.mask_query else Z
        return keys, (1.0 / n if self.normalize_by_n else 1.0)

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """Token-level output (B, n + 1, d + 1) for prompts ``Z`` (B, n + 1, d + 1)."""
        _check_prompt(Z, self.d)
        W_KQ, W_PV = self.merged_weights()
        keys, scale = self._keys(Z)
        scores = keys @ W_KQ @ Z.transpose(1, 2)  # (B, keys, tokens): z_i^T W_KQ z_j
        values = keys @ W_PV.T  # (B, keys, d + 1): rows W_PV z_i
        return Z + scale * scores.transpose(1, 2) @ values

    def predict(self, Z: torch.Tensor) -> torch.Tensor:
        """The prediction ``y_hat`` (B,): the last coordinate of the query's output, computed for
        the query alone as ``(1/n) sum_i (v^T z_i)(z_i^T W_KQ z_q) = v^T G W_KQ z_q`` (``G`` the
        keys' second-moment matrix), in O(B n d) instead of the token-level O(B n^2 d)."""
        _check_prompt(Z, self.d)
        W_KQ, W_PV = self.merged_weights()
        keys, scale = self._keys(Z)
        z_q = Z[:, -1]
        kq = keys @ (W_KQ @ z_q[:, :, None])  # (B, keys, 1): z_i^T W_KQ z_q
        pv = keys @ W_PV[-1]  # (B, keys): v^T z_i
        return z_q[:, -1] + scale * (pv * kq[..., 0]).sum(dim=1)


# --------------------------------------------------------------------------- closed forms
def _check_law(Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int, owner: str) -> int:
    validate_params({"noise_var": _SIZES["noise_var"], "n": _SIZES["n"]}, {"noise_var": noise_var, "n": n}, owner=owner)
    d = _check_matrix(Sigma, "Sigma", pd=True)
    _check_matrix(Omega, "Omega", d, psd=True)
    return d


def optimal_step_size(d: int, n: int, noise_var: float = 0.0) -> float:
    """The step ``eta = n / (n + d + 1 + noise_var)`` of the optimal one-step GD when ``Sigma = Omega
    = I`` (``Gamma* = eta I``); the same ``eta`` scales ``Sigma^{-1}`` when ``Omega = Sigma^{-1}``.

    >>> round(optimal_step_size(2, 3, 0.1), 6)
    0.491803
    """
    validate_params(
        {k: _SIZES[k] for k in ("d", "n", "noise_var")},
        {"d": d, "n": n, "noise_var": noise_var},
        owner="optimal_step_size",
    )
    return n / (n + d + 1 + noise_var)


def prompt_moments(
    Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[m m^T], E[m w^T])`` for linear responses: ``(1/n)[(tr(Omega Sigma) + s2) Sigma +
    (n + 1) Sigma Omega Sigma]`` and ``Sigma Omega`` (Gaussian fourth moments)."""
    _check_law(Sigma, Omega, noise_var, n, "prompt_moments")
    c = torch.trace(Omega @ Sigma) + noise_var
    mm = (c * Sigma + (n + 1) * Sigma @ Omega @ Sigma) / n
    return mm, Sigma @ Omega


def optimal_gamma(Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int) -> torch.Tensor:
    """The effective matrix of the global minimiser of the LSA's population loss,
    ``Gamma* = E[m m^T]^{-1} E[m w^T] = n((tr(Omega Sigma) + s2) I + (n + 1) Omega Sigma)^{-1} Omega``
    (symmetric). ``Sigma = Omega = I``: ``eta I``; ``Omega = Sigma^{-1}``: ``eta Sigma^{-1}``, with
    ``eta`` = :func:`optimal_step_size` (one step of GD, preconditioned by ``Sigma^{-1}``).

    >>> Sigma = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    >>> optimal_gamma(Sigma, torch.linalg.inv(Sigma), 0.1, 3).diagonal().round(decimals=6).tolist()
    [0.245902, 0.983607]
    """
    mm, mw = prompt_moments(Sigma, Omega, noise_var, n)
    return torch.linalg.solve(mm, mw)


def population_loss(Gamma: torch.Tensor, Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int) -> float:
    """Population loss ``E[(m^T Gamma x_q - y_q)^2]`` of the predictor ``m^T Gamma x_q`` (an LSA
    with ``v_x = 0`` and ``b = 0``): ``tr(Sigma Gamma^T E[mm^T] Gamma) - 2 tr(Sigma Gamma^T Sigma
    Omega) + tr(Sigma Omega) + s2``. ``Gamma`` may be a float (``Gamma I``)."""
    mm, mw = prompt_moments(Sigma, Omega, noise_var, n)
    d = Sigma.shape[0]
    if not isinstance(Gamma, torch.Tensor):
        Gamma = float(Gamma) * torch.eye(d, dtype=Sigma.dtype)
    _check_matrix(Gamma, "Gamma", d)
    Gamma = Gamma.to(Sigma.dtype)
    quad = torch.trace(Sigma @ Gamma.T @ mm @ Gamma) - 2 * torch.trace(Sigma @ Gamma.T @ mw)
    return float(quad + torch.trace(Sigma @ Omega) + noise_var)


def optimal_loss(Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int) -> float:
    """The LSA's optimal population loss ``tr(Omega Sigma) + s2 - tr(Sigma Gamma* Sigma Omega)``; for
    ``Omega = Sigma^{-1}`` (and so for ``Sigma = Omega = I``) it is ``d(1 - eta) + s2`` for every
    ``Sigma``."""
    gamma = optimal_gamma(Sigma, Omega, noise_var, n)
    return float(torch.trace(Omega @ Sigma) + noise_var - torch.trace(Sigma @ gamma @ Sigma @ Omega))


def best_scalar_gd_step(Sigma: torch.Tensor, Omega: torch.Tensor, noise_var: float, n: int) -> float:
    """The best step of *un-preconditioned* one-step GD (``Gamma = eta I``): ``eta = tr(Sigma^2
    Omega) / tr(Sigma E[m m^T])``; equals the optimum only when ``Gamma*`` is a multiple of ``I``."""
    mm, _ = prompt_moments(Sigma, Omega, noise_var, n)
    return float(torch.trace(Sigma @ Sigma @ Omega) / torch.trace(Sigma @ mm))


@dataclass(frozen=True)
class OptimumEstimate:
    """The optimum of ``E[(m^T Gamma x_q - y_q)^2]`` estimated from Monte-Carlo moments.

    ``gamma`` (d, d) and its ``loss``; ``scalar_step`` and ``scalar_loss`` for ``Gamma = eta I``;
    ``second_moment`` = ``E[m m^T]``, ``cross`` = ``E[y_i y_j x_i x_j^T]`` (i != j), ``label_power``
    = ``E[y^2]`` (averaged over all ``n + 1`` points of each prompt); ``num_prompts`` drawn.
    """

    gamma: torch.Tensor
    loss: float
    scalar_step: float
    scalar_loss: float
    second_moment: torch.Tensor
    cross: torch.Tensor
    label_power: float
    num_prompts: int


def monte_carlo_optimal_gamma(
    sampler: LinearRegressionPrompts, num_prompts: int = 200_000, batch_size: int = 20_000
) -> OptimumEstimate:
    """The optimal ``Gamma`` for any response law of ``sampler`` (nonlinear ``target_fn`` included),
    from Monte-Carlo moments in float64.

    With ``x_q`` independent of the context and ``E[x_q x_q^T] = Sigma`` (known), the loss is
    ``tr(Gamma^T M Gamma Sigma) - 2 tr(Gamma C^T) + E[y_q^2]``, ``M = E[m m^T]`` and
    ``C = E[m y_q x_q^T] = E[y_i y_j x_i x_j^T]`` over distinct points of one prompt (estimated
    without bias from all pairs ``i != j``), so ``Gamma* = M^{-1} C Sigma^{-1}``. For linear
    responses this converges to :func:`optimal_gamma`; for a rotation- and sign-symmetric family it
    is ``eta_f I``. Needs ``n >= 2``. Draws from the sampler's generator.
    """
    validate_params(
        {k: _SIZES[k] for k in ("num_prompts", "batch_size")},
        {"num_prompts": num_prompts, "batch_size": batch_size},
        owner="monte_carlo_optimal_gamma",
    )
    n, d = sampler.n, sampler.d
    if n < 2:
        raise ValueError(f"monte_carlo_optimal_gamma needs a context length n >= 2, got {n}")
    f64 = torch.float64
    M, C, yq2, done = torch.zeros(d, d, dtype=f64), torch.zeros(d, d, dtype=f64), 0.0, 0
    while done < num_prompts:
        b = min(batch_size, num_prompts - done)
        batch = sampler.sample(b, return_parts=True)
        assert isinstance(batch, PromptBatch)
        X, y = batch.X.to(f64), batch.y.to(f64)
        m = torch.einsum("bn,bnd->bd", y, X) / n
        M += m.T @ m
        yx = y[..., None] * X  # (b, n, d)
        diag = torch.einsum("bni,bnj->ij", yx, yx)
        C += (n * n * (m.T @ m) - diag) / (n * (n - 1))
        # every point of a prompt has the law of the query's: average y^2 over all n + 1 of them
        yq2 += float((y**2).sum() + (batch.y_q.to(f64) ** 2).sum()) / (n + 1)
        done += b
    M, C, yq2 = M / done, C / done, yq2 / done
    Sigma = sampler.Sigma
    gamma = torch.linalg.solve(M, C) @ torch.linalg.inv(Sigma)

    def loss(G: torch.Tensor) -> float:
        return float(torch.trace(G.T @ M @ G @ Sigma) - 2 * torch.trace(G @ C.T) + yq2)

    step = float(torch.trace(C) / torch.trace(M @ Sigma))
    return OptimumEstimate(
        gamma=gamma,
        loss=loss(gamma),
        scalar_step=step,
        scalar_loss=loss(step * torch.eye(d, dtype=f64)),
        second_moment=M,
        cross=C,
        label_power=yq2,
        num_prompts=done,
    )


# --------------------------------------------------------------------------- predictors
def one_step_gd_predict(
    X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor, gamma: float | torch.Tensor
) -> torch.Tensor:
    """One step of (preconditioned) GD from ``w_0 = 0`` on ``(1/2n) sum (w^T x_i - y_i)^2``,
    evaluated at the query: ``w_1 = Gamma^T m``, ``y_hat = x_q^T w_1 = m^T Gamma x_q``.

    ``gamma``: a float (step ``eta``, ``Gamma = eta I``), a (d, d) preconditioned step or a
    (B, d, d) one per prompt. Returns (B,) (a scalar tensor for one unbatched prompt).
    """
    Xb, yb, xqb, batched = _check_regression(X, y, x_q)
    m = torch.einsum("bn,bnd->bd", yb, Xb) / Xb.shape[1]
    d = Xb.shape[2]
    if isinstance(gamma, torch.Tensor):
        _check_float_tensor(gamma, "gamma", "(d, d) or (B, d, d)")
        if gamma.shape not in ((d, d), (Xb.shape[0], d, d)):
            raise ValueError(f"gamma must have shape ({d}, {d}) or ({Xb.shape[0]}, {d}, {d}), got {tuple(gamma.shape)}")
        out = torch.einsum("bi,bij,bj->b" if gamma.dim() == 3 else "bi,ij,bj->b", m, gamma.to(m.dtype), xqb)
    else:
        validate_params(
            {"gamma": [Interval(float, -math.inf, math.inf, closed="neither")]},
            {"gamma": gamma},
            owner="one_step_gd_predict",
        )
        out = float(gamma) * (m * xqb).sum(dim=1)
    return out if batched else out[0]


def ridge_posterior_mean_predict(
    X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor, Omega: torch.Tensor | None = None, noise_var: float = 0.0
) -> torch.Tensor:
    """The Bayes-optimal prediction for ``w ~ N(0, Omega)``, ``y = w^T x + N(0, noise_var)``: the
    posterior mean ``w_post = Omega X^T (X Omega X^T + noise_var I)^{-1} y`` (generalised ridge;
    ``Omega`` defaults to ``I``; with ``noise_var = 0`` the pseudo-inverse gives the minimum
    ``Omega``-norm interpolant, ordinary least squares when ``n >= d``). Returns (B,)."""
    Xb, yb, xqb, batched = _check_regression(X, y, x_q)
    validate_params({"noise_var": _SIZES["noise_var"]}, {"noise_var": noise_var}, owner="ridge_posterior_mean_predict")
    d, n = Xb.shape[2], Xb.shape[1]
    Om = torch.eye(d, dtype=Xb.dtype) if Omega is None else Omega.to(Xb.dtype)
    _check_matrix(Om, "Omega", d, psd=True)
    XO = Xb @ Om  # (B, n, d)
    K = XO @ Xb.transpose(1, 2)  # (B, n, n)
    if noise_var > 0:
        alpha = torch.linalg.solve(K + noise_var * torch.eye(n, dtype=Xb.dtype), yb[..., None])
    else:
        alpha = torch.linalg.pinv(K, hermitian=True) @ yb[..., None]
    out = ((xqb[:, None, :] @ XO.transpose(1, 2)) @ alpha)[:, 0, 0]
    return out if batched else out[0]


def least_squares_predict(X: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """Ordinary least squares on the prompt (minimum-norm when ``n < d``), at the query: (B,)."""
    Xb, yb, xqb, batched = _check_regression(X, y, x_q)
    w = (torch.linalg.pinv(Xb) @ yb[..., None])[..., 0]
    out = (w * xqb).sum(dim=1)
    return out if batched else out[0]


# --------------------------------------------------------------------------- diagnostics
def compare_lsa_to_gd(
    model: LinearSelfAttention,
    sampler: LinearRegressionPrompts,
    n_eval: int = 20_000,
    gamma_star: torch.Tensor | None = None,
    prompts: PromptBatch | None = None,
) -> dict[str, float]:
    """How close a (trained) LSA is to the optimal one-step GD, in float64.

    ``gamma_star`` defaults to the sampler's closed form (linear responses). Evaluated on
    ``prompts`` if given, else on ``n_eval`` fresh prompts of ``sampler``. Returns
    ``gamma_rel_error`` (``||Gamma_eff - Gamma*||_F / ||Gamma*||_F``), ``vx_over_vy``
    (``||v_x|| / |v_y|``), ``b_over_A`` (``||b|| / ||A||_F``), ``pred_rel_mse`` (mean squared gap
    between the LSA's and the GD predictor's predictions over the mean squared GD prediction),
    ``loss_lsa`` and ``loss_gd`` (test mean squared errors on the same prompts), and for linear
    responses ``pop_loss_gamma`` (:func:`population_loss` of ``Gamma_eff``) and ``optimal_loss``.
    """
    validate_params({"n_eval": _SIZES["n_eval"]}, {"n_eval": n_eval}, owner="compare_lsa_to_gd")
    linear = sampler.target_fn is None
    if gamma_star is None:
        gamma_star = sampler.optimal_gamma()
    _check_matrix(gamma_star, "gamma_star", sampler.d)
    if prompts is None:
        batch = sampler.sample(n_eval, return_parts=True)
        assert isinstance(batch, PromptBatch)
        prompts = batch
    f64 = torch.float64
    gstar = gamma_star.to(f64)
    with torch.no_grad():
        p = {k: v.detach().to(f64) for k, v in model.blocks().items()}
        gamma = model.effective_gamma(sampler.n).detach().to(f64)
        Z, y_q = prompts.Z.to(f64), prompts.y_q.to(f64)
        y_lsa = copy.deepcopy(model).to(f64).predict(Z)
        y_gd = one_step_gd_predict(prompts.X.to(f64), prompts.y.to(f64), prompts.x_q.to(f64), gstar)
    out = {
        "gamma_rel_error": float(torch.linalg.norm(gamma - gstar) / torch.linalg.norm(gstar)),
        "vx_over_vy": float(torch.linalg.norm(p["v_x"]) / p["v_y"].abs()),
        "b_over_A": float(torch.linalg.norm(p["b"]) / torch.linalg.norm(p["A"])),
        "pred_rel_mse": float(((y_lsa - y_gd) ** 2).mean() / (y_gd**2).mean()),
        "loss_lsa": float(((y_lsa - y_q) ** 2).mean()),
        "loss_gd": float(((y_gd - y_q) ** 2).mean()),
    }
    if linear:
        law = (sampler.Sigma, sampler.Omega, sampler.noise_var, sampler.n)
        out["pop_loss_gamma"] = population_loss(gamma, *law)
        out["optimal_loss"] = optimal_loss(*law)
    return out


# --------------------------------------------------------------------------- a user's model and prompts
class GammaFit(NamedTuple):
    """:func:`fit_effective_gamma`'s answer: ``gamma`` (d, d) float64, the least-squares ``Gamma``
    of ``y_hat ~ m^T Gamma x_q``; ``residual_fraction``, the share of the model's mean squared
    output that this one-step-GD form does not explain (0 for an exact GD predictor);
    ``num_prompts``."""

    gamma: torch.Tensor
    residual_fraction: float
    num_prompts: int


def _model_prediction(model: nn.Module, Z: torch.Tensor) -> torch.Tensor:
    out = model.predict(Z) if hasattr(model, "predict") else model(Z)
    if out.dim() == 3:  # token-level output: the query's last coordinate
        out = out[:, -1, -1]
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] != 1:
        raise ValueError(f"fit_effective_gamma: the model must give one prediction per prompt, got {tuple(out.shape)}")
    return out[:, 0]


def fit_effective_gamma(
    model: nn.Module, loader: Any, *, progress: bool = True, max_batches: int | None = None
) -> GammaFit:
    """``Gamma_eff`` of any model of prompts, measured from its outputs (no access to its weights).

    For each prompt ``Z`` (B, n + 1, d + 1) of ``loader`` (an iterable of ``Z`` or ``(Z, y_q)``
    batches, e.g. a torch ``DataLoader`` or :class:`LinearRegressionPrompts` batches), the model's
    prediction (``model.predict(Z)`` if it has one, else ``model(Z)``: (B,), (B, 1) or the token
    level (B, n + 1, d + 1), whose query's last coordinate is read) is regressed on the features
    ``m x_q^T`` (``m = (1/n) sum_i y_i x_i``) by least squares in float64; the normal equations are
    accumulated batch by batch. For a :class:`LinearSelfAttention` under a prompt law symmetric
    in ``y`` this recovers :meth:`LinearSelfAttention.effective_gamma` up to Monte-Carlo error;
    compare it with :func:`optimal_gamma` of the user's prompt law.
    """
    validate_params({"max_batches": [_POS_INT, None]}, {"max_batches": max_batches}, owner="fit_effective_gamma")
    f64 = torch.float64
    FtF: torch.Tensor | None = None
    Fty: torch.Tensor | None = None
    yy, count = 0.0, 0
    total = max_batches if max_batches is not None else (len(loader) if hasattr(loader, "__len__") else None)
    with torch.no_grad(), progress_bar(total=total or 0, desc="Gamma_eff", enabled=progress) as bar:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            Z = batch[0] if isinstance(batch, tuple | list) else batch
            _check_prompt(Z)
            d = Z.shape[2] - 1
            y_hat = _model_prediction(model, Z).to(f64)
            Zd = Z.to(f64)
            m = cross_moment(Zd[:, :-1, :d], Zd[:, :-1, d])
            feats = (m[:, :, None] * Zd[:, -1, None, :d]).reshape(Z.shape[0], d * d)
            if FtF is None:
                FtF, Fty = feats.new_zeros(d * d, d * d), feats.new_zeros(d * d)
            elif FtF.shape[0] != d * d:
                raise ValueError("fit_effective_gamma: every batch must have the same d")
            FtF += feats.T @ feats
            Fty += feats.T @ y_hat
            yy += float((y_hat**2).sum())
            count += Z.shape[0]
            bar.update(1)
    if FtF is None or Fty is None:
        raise ValueError("fit_effective_gamma: the loader yielded no prompt")
    coef = torch.linalg.lstsq(FtF, Fty[:, None]).solution[:, 0]
    explained = float(coef @ Fty)  # ||F coef||^2 at the least-squares solution
    d = int(round(math.sqrt(coef.shape[0])))
    resid = max(yy - explained, 0.0) / yy if yy > 0 else 0.0
    return GammaFit(coef.reshape(d, d), resid, count)


def plot_gamma(gamma_eff: torch.Tensor, gamma_star: torch.Tensor, tol: float | None = None, title: str = "") -> Any:
    """A matplotlib Figure: ``Gamma_eff`` and ``Gamma*`` as heat maps and every entry of one against
    the other with the line ``y = x``; with ``tol`` (a relative Frobenius tolerance) the band
    ``y = x +- tol ||Gamma*||_F / d`` (the entrywise size of an error at the tolerance) is shaded."""
    from paperzoo.engine.plots import subplots

    d = _check_matrix(gamma_star, "gamma_star")
    _check_matrix(gamma_eff, "gamma_eff", d)
    eff, star = gamma_eff.detach().to(torch.float64).numpy(), gamma_star.detach().to(torch.float64).numpy()
    err = float(((eff - star) ** 2).sum() ** 0.5 / max((star**2).sum() ** 0.5, 1e-300))
    fig, axes = subplots(3, width=3.8, height=3.5)
    vmax = float(max(abs(eff).max(), abs(star).max()))
    for ax, M, name in ((axes[0], eff, "Gamma_eff (measured)"), (axes[1], star, "Gamma* (closed form)")):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes[:2].tolist(), shrink=0.8)
    ax = axes[2]
    lo, hi = float(min(eff.min(), star.min())), float(max(eff.max(), star.max()))
    pad = 0.05 * (hi - lo + 1e-12)
    xs = [lo - pad, hi + pad]
    ax.plot(xs, xs, color="grey", ls="--", lw=1, label="y = x (prediction)")
    if tol is not None:
        band = tol * float((star**2).sum() ** 0.5) / d
        ax.fill_between(
            xs, [x - band for x in xs], [x + band for x in xs], color="grey", alpha=0.2, label=f"tol {tol:g}"
        )
    ax.scatter(star.ravel(), eff.ravel(), s=14)
    ax.set_xlabel("Gamma* entry")
    ax.set_ylabel("Gamma_eff entry")
    ax.set_title(f"relative error {err:.3g}" + (f" (tol {tol:g})" if tol is not None else ""), fontsize=10)
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
