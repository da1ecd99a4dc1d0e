"""A linear output layer trained with the Z-loss in O(d^2) per example, independent of the
number of classes D: the spherical-family algorithm of Vincent, de Brébisson & Bouthillier (2015),
"Efficient exact gradient update for training deep networks with very large sparse targets",
as used by de Brébisson & Vincent (2016) for the Z-loss, which they show belongs to this spherical
family (training cost independent of the number of classes).

For ``o = W h`` (W: D x d) and a loss that depends on o only through ``(o_c, S1, S2)``, the
gradient w.r.t. W is ``W (sum_n alpha_n h_n h_n^T) + 1 b^T + sum_n gamma_n e_{c_n} h_n^T``
(with ``gamma = dL/do_c``, ``b = sum_n (dL/dS1)_n h_n``, ``alpha = 2 dL/dS2``). Keeping W in the
factored form ``W = V U + 1 omega^T`` (V: D x d, U: d x d, omega: d), a plain SGD step becomes

    A = I - lr * H^T diag(alpha) H          U <- U A          omega <- A omega - lr * b
    V[c_n] <- V[c_n] - lr * gamma_n h_n^T U^{-1}      (sparse: only the batch's target rows)

and the statistics the forward pass needs, ``w_bar = W^T 1`` and ``Q = W^T W``, are updated in
closed form. A step costs O(m d^2 + d^3) for a batch of m, independent of D. The extra
``1 omega^T`` term (not in the 2015 paper, whose losses have no S1 term) absorbs the dense
``1 b^T`` part of the Z-loss gradient. Every ``renorm_every`` steps the factors are folded back
(``V <- W``, ``U <- I``, ``omega <- 0``) and Q, w_bar recomputed exactly (O(D d^2), amortised),
which bounds the drift of the closed-form updates and the conditioning of U. U^{-1} is never
stored: each step solves against U.

No bias (a per-class bias would need a dense O(D) update). Only plain SGD keeps the factored
form: the layer's state is not an ``nn.Parameter``; :meth:`SphericalLinear.sgd_step` applies the
update for the last forward pass (``backward()`` is only needed for the gradient into h and the
layers below, which keep their own optimiser).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params
from paperzoo.losses.zloss import ZLoss, _resolve_eps, _z_loss_stats

__all__ = ["SphericalLinear"]


class SphericalLinear(nn.Module):
    """Linear layer ``in_features -> num_classes`` (no bias) fused with the Z-loss, with the
    exact O(d^2)-per-example SGD update of Vincent et al. (2015).

    Args:
        in_features: d.
        num_classes: D >= 2.
        a, b, eps: Z-loss hyper-parameters (see :class:`paperzoo.losses.ZLoss`).
        reduction: "mean" (default) or "sum" over the batch.
        renorm_every: fold the factorisation back into V and recompute Q, w_bar exactly every
            this many steps (O(D d^2) each time).
        weight: optional initial (D, d) weight; default ``nn.Linear``'s initialisation.

    Usage::

        layer = SphericalLinear(128, 200_000)
        loss = layer(h, target)        # O(m d^2): no (m, D) logits are formed
        loss.backward()                # gradients flow into h (and the layers below)
        layer.sgd_step(lr=0.1)         # exact SGD step on W, O(m d^2 + d^3)
        scores = layer.logits(h_test)  # dense (m, D) scores for ranking, O(m D d)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "in_features": [Interval(int, 1, math.inf, closed="left")],
        "num_classes": [Interval(int, 2, math.inf, closed="left")],
        "a": ZLoss._parameter_constraints["a"],
        "b": ZLoss._parameter_constraints["b"],
        "reduction": [Options(("mean", "sum"))],
        "eps": ZLoss._parameter_constraints["eps"],
        "renorm_every": [Interval(int, 1, math.inf, closed="left")],
        "lr": [Interval(float, 0, math.inf, closed="neither")],
    }

    V: torch.Tensor
    U: torch.Tensor
    omega: torch.Tensor
    gram: torch.Tensor
    col_sum: torch.Tensor

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        a: float = 1.0,
        b: float = 1.0,
        reduction: str = "mean",
        eps: float | None = None,
        renorm_every: int = 100,
        weight: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {
                "in_features": in_features,
                "num_classes": num_classes,
                "a": a,
                "b": b,
                "reduction": reduction,
                "eps": eps,
                "renorm_every": renorm_every,
            },
            owner="SphericalLinear",
        )
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        self.a, self.b, self.eps, self.reduction = float(a), float(b), eps, reduction
        self.renorm_every = int(renorm_every)
        if weight is None:
            weight = nn.Linear(in_features, num_classes, bias=False, dtype=dtype).weight.detach()
        elif weight.shape != (num_classes, in_features) or not weight.is_floating_point():
            raise ValueError(
                f"weight must be a floating tensor of shape ({num_classes}, {in_features}), got {tuple(weight.shape)}"
            )
        w = weight.detach().clone().to(dtype or weight.dtype)
        d = self.in_features
        self.register_buffer("V", w)
        self.register_buffer("U", torch.eye(d, dtype=w.dtype, device=w.device))
        self.register_buffer("omega", torch.zeros(d, dtype=w.dtype, device=w.device))
        self.register_buffer("gram", w.T @ w)  # Q = W^T W
        self.register_buffer("col_sum", w.sum(0))  # w_bar = W^T 1
        self.steps = 0
        self._pending: tuple[torch.Tensor, ...] | None = None

    # ----------------------------------------------------------------- state
    @property
    def weight(self) -> torch.Tensor:
        """The dense (D, d) weight ``V U + 1 omega^T`` (O(D d^2); for inspection and tests)."""
        return self.V @ self.U + self.omega

    def renormalize(self) -> None:
        """Fold the factors into V and recompute Q and w_bar exactly (O(D d^2))."""
        w = self.weight
        self.V.copy_(w)
        self.U.copy_(torch.eye(self.in_features, dtype=w.dtype, device=w.device))
        self.omega.zero_()
        self.gram.copy_(w.T @ w)
        self.col_sum.copy_(w.sum(0))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Dense scores ``h W^T`` (m, D), for ranking at inference."""
        h = h.to(self.V.dtype)
        return (h @ self.U.T) @ self.V.T + (h @ self.omega)[:, None]

    # ----------------------------------------------------------------- forward / step
    def forward(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Z-loss of ``h W^T`` against ``target`` from (o_c, S1, S2), O(m d^2); gradients flow into h."""
        if (
            not isinstance(h, torch.Tensor)
            or not h.is_floating_point()
            or h.dim() != 2
            or h.shape[1] != self.in_features
        ):
            raise ValueError(
                f"h must be a floating tensor of shape (N, {self.in_features}), got {getattr(h, 'shape', type(h))}"
            )
        if h.shape[0] == 0:
            raise ValueError("empty batch: h has 0 rows")
        check_finite(h, "h")
        check_labels(target, h.shape[0], "target", self.num_classes)
        h = h.to(self.V.dtype)
        w_c = self.V[target] @ self.U + self.omega  # (m, d) rows W_c, O(m d^2)
        o_c = (h * w_c).sum(1)
        s1 = h @ self.col_sum
        s2 = ((h @ self.gram) * h).sum(1)
        eps = _resolve_eps(self.eps, h.dtype)
        per = _z_loss_stats(o_c, s1, s2, self.num_classes, self.a, self.b, eps)
        weight = 1.0 / h.shape[0] if self.reduction == "mean" else 1.0
        # dL/d(o_c, S1, S2) per example: what the W update needs (cheap, O(m))
        with torch.enable_grad():
            stats = [t.detach().requires_grad_(True) for t in (o_c, s1, s2)]
            g_oc, g_s1, g_s2 = torch.autograd.grad(
                _z_loss_stats(*stats, self.num_classes, self.a, self.b, eps).sum(), stats
            )
        self._pending = (h.detach(), target, w_c.detach(), weight * 2.0 * g_s2, weight * g_s1, weight * g_oc)
        return per.sum() * weight

    @torch.no_grad()
    def sgd_step(self, lr: float) -> None:
        """Apply ``W <- W - lr * dL/dW`` for the last forward pass, in O(m d^2 + d^3)."""
        if self._pending is None:
            raise RuntimeError("sgd_step() needs a forward pass first (and is applied once per forward)")
        validate_params(self._parameter_constraints, {"lr": lr}, owner="SphericalLinear.sgd_step")
        h, c, w_c, alpha, beta, gamma = self._pending
        self._pending = None
        d, big_d = self.in_features, self.num_classes
        eye = torch.eye(d, dtype=h.dtype, device=h.device)
        a_mat = eye - lr * (h.T * alpha) @ h  # symmetric (d, d)
        b_vec = h.T @ beta  # sum_n beta_n h_n
        g_vec = h.T @ gamma  # sum_n gamma_n h_n = E^T 1
        # Q' = A Q A - lr (A K + K^T A) + lr^2 P^T P, with K = W^T P, P = 1 b^T + E
        k_mat = torch.outer(self.col_sum, b_vec) + (w_c.T * gamma) @ h
        same = (c[:, None] == c[None, :]).to(h.dtype)
        e_t_e = (h.T * gamma) @ same @ (gamma[:, None] * h)
        p_t_p = big_d * torch.outer(b_vec, b_vec) + torch.outer(b_vec, g_vec) + torch.outer(g_vec, b_vec) + e_t_e
        ak = a_mat @ k_mat
        self.gram.copy_(a_mat @ self.gram @ a_mat - lr * (ak + ak.T) + lr * lr * p_t_p)
        self.col_sum.copy_(a_mat @ self.col_sum - lr * (big_d * b_vec + g_vec))
        # factors: W' = V (U A) + 1 (A omega - lr b)^T - lr E
        self.U.copy_(self.U @ a_mat)
        self.omega.copy_(a_mat @ self.omega - lr * b_vec)
        rows = torch.linalg.solve(self.U, gamma[:, None] * h, left=False)  # gamma_n h_n^T U'^{-1}
        self.V.index_add_(0, c, rows, alpha=-lr)
        self.steps += 1
        if not bool(torch.isfinite(self.U).all()):
            raise FloatingPointError("non-finite factor U after the spherical update (learning rate too large?)")
        if self.steps % self.renorm_every == 0:
            self.renormalize()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, a={self.a}, b={self.b}, "
            f"reduction={self.reduction!r}, renorm_every={self.renorm_every}"
        )
