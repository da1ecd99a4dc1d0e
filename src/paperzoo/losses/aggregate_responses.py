"""Bag-level, instance-level and interpolating losses for learning from aggregate responses:
Javanmard, Chen, Mirrokni, Badanidiyuru & Fu, "Learning from Aggregate responses: Instance Level
versus Bag Level Loss Functions" (ICLR 2024, arXiv 2401.11081).

The n training samples are partitioned into bags; the learner sees every feature vector x_i but
only the mean response ``ybar_a`` of each bag a. With predictions ``f_i = f_theta(x_i)``, the bag
of sample i ``b(i)``, the bag sizes ``k_a`` and the bag means of the predictions
``fbar_a = (1/k_a) sum_{i in a} f_i``, the paper's squared-loss objectives are

* bag-level loss ``L_bag = sum_a (k_a / n) (ybar_a - fbar_a)^2`` (for equal bags ``(1/m) sum_a``);
* instance-level loss ``L_inst = (1/n) sum_i (ybar_{b(i)} - f_i)^2``;
* within-bag prediction variance ``R = (1/n) sum_i (f_i - fbar_{b(i)})^2``.

The paper's Lemma 1 is the identity ``L_inst = L_bag + R``: the instance-level loss is the
bag-level loss plus a regulariser that shrinks predictions towards their bag mean, which trades
variance for bias. Its interpolating estimator minimises ``L_bag + rho * R`` with ``rho`` in
[0, 1] (``rho = 0``: bag-level, ``rho = 1``: instance-level). For a linear model the minimiser has
the closed form of :func:`fit_linear_aggregate`.

The paper assumes bags of equal size ``k``; weighting each bag by ``k_a / n`` in ``L_bag`` (rather
than ``1/m``) is this project's choice for unequal bags: it keeps ``L_inst = L_bag + R`` exact for
any bag sizes and coincides with the paper's definition when all bags have the same size.

Bag means are computed with ``index_add_`` (no Python loop over bags or samples). All functions
take ``pred`` (n,) (or (n, 1)), ``ybar`` (m,) and an integer ``bag_index`` (n,) with values in
``[0, m)``; every bag must hold at least one instance. Predictions in float16 / bfloat16 are
computed in float32.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params
from paperzoo.losses.base import upcast_low_precision

__all__ = [
    "BagLevelLoss",
    "InstanceLevelLoss",
    "InterpolatingAggregateLoss",
    "bag_level_loss",
    "bag_mean_predictions",
    "fit_linear_aggregate",
    "instance_level_loss",
    "interpolating_aggregate_loss",
    "within_bag_variance",
]

_RHO: list[Constraint] = [Interval(float, 0.0, 1.0, closed="both")]
_NUM_BAGS: dict[str, list[Constraint]] = {"num_bags": [Interval(int, 1, math.inf, closed="left")]}
_FIT_CONSTRAINTS: dict[str, list[Constraint]] = {
    "rho": _RHO,
    "ridge": [Interval(float, 0.0, math.inf, closed="left")],
}


# --------------------------------------------------------------------------- validation and bag means
def _check_pred(pred: torch.Tensor) -> torch.Tensor:
    """``pred`` (n,) or (n, 1), floating, finite, n >= 1; returned as (n,) in float32 / float64."""
    if not isinstance(pred, torch.Tensor) or not pred.is_floating_point():
        raise TypeError("pred must be a floating-point torch.Tensor of shape (n,)")
    if pred.dim() == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.dim() != 1:
        raise ValueError(f"pred must have shape (n,) or (n, 1), got {tuple(pred.shape)}")
    if pred.shape[0] == 0:
        raise ValueError("empty batch: pred has 0 entries")
    check_finite(pred, "pred")
    return upcast_low_precision(pred)


def _check_bag_index(bag_index: torch.Tensor, n: int, num_bags: int) -> None:
    """``bag_index`` integer (n,) in [0, num_bags), every bag holding at least one instance."""
    check_labels(bag_index, n, "bag_index", num_bags)
    counts = torch.bincount(bag_index, minlength=num_bags)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0)[:5, 0].tolist()
        raise ValueError(
            f"bag_index: bag(s) {empty} of the {num_bags} bags (one per entry of ybar) have no instances; "
            "every bag needs at least one"
        )


def _check_bag_inputs(pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> torch.Tensor:
    """Validate ``pred`` (n,) or (n, 1), ``ybar`` (m,), ``bag_index`` (n,) in [0, m) with no empty
    bag; return ``pred`` as (n,) in float32 / float64."""
    pred = _check_pred(pred)
    if not isinstance(ybar, torch.Tensor) or not (ybar.is_floating_point() or _is_int(ybar)):
        raise TypeError("ybar must be a real torch.Tensor of shape (m,), one aggregate response per bag")
    if ybar.dim() != 1 or ybar.shape[0] == 0:
        raise ValueError(f"ybar must have shape (m,) with m >= 1 bags, got {tuple(ybar.shape)}")
    check_finite(ybar, "ybar")
    _check_bag_index(bag_index, pred.shape[0], ybar.shape[0])
    return pred


def _is_int(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _bag_means(pred: torch.Tensor, bag_index: torch.Tensor, num_bags: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(bag means of ``pred`` (m,), bag sizes (m,) in ``pred``'s dtype), inputs trusted."""
    counts = torch.bincount(bag_index, minlength=num_bags).to(pred.dtype)
    sums = torch.zeros(num_bags, dtype=pred.dtype, device=pred.device).index_add_(0, bag_index, pred)
    return sums / counts, counts


def _terms(
    pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_bag, R, bag means) of validated inputs."""
    ybar = ybar.to(device=pred.device, dtype=pred.dtype)
    fbar, counts = _bag_means(pred, bag_index, ybar.shape[0])
    n = pred.shape[0]
    l_bag = (counts * (ybar - fbar).pow(2)).sum() / n
    r = (pred - fbar[bag_index]).pow(2).mean()
    return l_bag, r, fbar


# --------------------------------------------------------------------------- functional forms
def bag_mean_predictions(pred: torch.Tensor, bag_index: torch.Tensor, num_bags: int) -> torch.Tensor:
    """The bag means of the predictions, ``fbar_a = (1/k_a) sum_{i in a} pred_i`` (num_bags,)."""
    validate_params(_NUM_BAGS, {"num_bags": num_bags}, owner="bag_mean_predictions")
    pred = _check_pred(pred)
    _check_bag_index(bag_index, pred.shape[0], num_bags)
    return _bag_means(pred, bag_index, num_bags)[0]


def bag_level_loss(pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> torch.Tensor:
    """Bag-level loss ``L_bag = sum_a (k_a / n) (ybar_a - fbar_a)^2`` (``(1/m) sum_a`` for equal
    bags): each bag's mean prediction against its aggregate response."""
    pred = _check_bag_inputs(pred, ybar, bag_index)
    return _terms(pred, ybar, bag_index)[0]


def instance_level_loss(pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> torch.Tensor:
    """Instance-level loss ``L_inst = (1/n) sum_i (ybar_{b(i)} - pred_i)^2``: every instance
    against its bag's aggregate response (equals ``L_bag + R``, the paper's Lemma 1)."""
    pred = _check_bag_inputs(pred, ybar, bag_index)
    return (ybar.to(device=pred.device, dtype=pred.dtype)[bag_index] - pred).pow(2).mean()


def within_bag_variance(pred: torch.Tensor, bag_index: torch.Tensor, num_bags: int | None = None) -> torch.Tensor:
    """Within-bag prediction variance ``R = (1/n) sum_i (pred_i - fbar_{b(i)})^2`` (>= 0, zero iff
    the predictions are constant within every bag). ``num_bags`` defaults to ``max(bag_index) + 1``."""
    pred = _check_pred(pred)
    if num_bags is None:
        check_labels(bag_index, pred.shape[0], "bag_index")
        num_bags = int(bag_index.max()) + 1
    validate_params(_NUM_BAGS, {"num_bags": num_bags}, owner="within_bag_variance")
    _check_bag_index(bag_index, pred.shape[0], num_bags)
    fbar, _ = _bag_means(pred, bag_index, num_bags)
    return (pred - fbar[bag_index]).pow(2).mean()


def interpolating_aggregate_loss(
    pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor, rho: float = 0.5
) -> torch.Tensor:
    """The interpolating loss ``L_bag + rho * R`` (``rho`` in [0, 1]; 0: bag-level, 1: instance-level)."""
    validate_params({"rho": _RHO}, {"rho": rho}, owner="interpolating_aggregate_loss")
    pred = _check_bag_inputs(pred, ybar, bag_index)
    l_bag, r, _ = _terms(pred, ybar, bag_index)
    return l_bag + rho * r


# --------------------------------------------------------------------------- modules
class InterpolatingAggregateLoss(nn.Module):
    """``L_bag + rho * R`` as a module: ``forward(pred (n,), ybar (m,), bag_index (n,)) -> scalar``.

    ``rho = 0`` is the bag-level loss, ``rho = 1`` the instance-level loss (the paper's Lemma 1);
    the paper finds the best ``rho`` strictly inside (0, 1) when responses are noisy and bags large,
    and chooses it by cross-validation with a bag-level validation loss.

    Args:
        rho: the weight of the within-bag variance penalty, in [0, 1] (default 0.5).
        base_loss: "mse", the squared loss of the paper's analysis (the only one provided; for a
            loss of curvature at most c the paper bounds ``L_inst <= L_bag + (c/2) R`` and uses the
            same interpolation).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"rho": _RHO, "base_loss": [Options(("mse",))]}

    def __init__(self, rho: float = 0.5, base_loss: str = "mse") -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"rho": rho, "base_loss": base_loss}, owner=type(self).__name__)
        self.rho = float(rho)
        self.base_loss = base_loss

    def forward(self, pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> torch.Tensor:
        pred = _check_bag_inputs(pred, ybar, bag_index)
        l_bag, r, _ = _terms(pred, ybar, bag_index)
        return l_bag + self.rho * r

    def extra_repr(self) -> str:
        return f"rho={self.rho}, base_loss={self.base_loss!r}"


class BagLevelLoss(InterpolatingAggregateLoss):
    """The bag-level loss ``L_bag`` (``InterpolatingAggregateLoss(rho=0)``)."""

    def __init__(self, base_loss: str = "mse") -> None:
        super().__init__(0.0, base_loss)


class InstanceLevelLoss(InterpolatingAggregateLoss):
    """The instance-level loss ``L_inst = L_bag + R`` (``InterpolatingAggregateLoss(rho=1)``)."""

    def __init__(self, base_loss: str = "mse") -> None:
        super().__init__(1.0, base_loss)


# --------------------------------------------------------------------------- linear closed form
def fit_linear_aggregate(
    X: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor, rho: float, ridge: float = 0.0
) -> torch.Tensor:
    """The minimiser of ``L_bag + rho * R + ridge * |theta|^2`` over linear models ``x^T theta``.

    With ``Xbar`` (m, d) the bag means of the rows of ``X``, ``X_c`` (n, d) the rows centred at
    their bag mean and ``K = diag(k_a)``: ``theta = (Xbar^T K Xbar / n + rho X_c^T X_c / n +
    ridge I)^{-1} Xbar^T K ybar / n``; for equal bags this is the paper's closed form
    ``(Xbar^T Xbar / m + rho X_c^T X_c / n)^{-1} Xbar^T ybar / m``. Unique when ``rho > 0`` and
    ``n > d``, or ``m >= d`` (bag-level), or ``ridge > 0``; a singular system raises.

    Args:
        X: (n, d) float features; ybar: (m,) bag responses; bag_index: (n,) integers in [0, m).
        rho: in [0, 1]; ridge: >= 0 (not in the paper; for singular problems).

    Returns:
        theta (d,), in the dtype of ``X`` (use float64).
    """
    validate_params(_FIT_CONSTRAINTS, {"rho": rho, "ridge": ridge}, owner="fit_linear_aggregate")
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.dim() != 2:
        raise ValueError(f"X must be a floating-point torch.Tensor of shape (n, d), got {_shape(X)}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column, got {tuple(X.shape)}")
    check_finite(X, "X")
    _check_bag_inputs(X[:, 0], ybar, bag_index)
    n, d = X.shape
    m = ybar.shape[0]
    ybar = ybar.to(device=X.device, dtype=X.dtype)
    counts = torch.bincount(bag_index, minlength=m).to(X.dtype)
    xbar = torch.zeros(m, d, dtype=X.dtype, device=X.device).index_add_(0, bag_index, X) / counts[:, None]
    xc = X - xbar[bag_index]
    gram = (xbar.T * counts) @ xbar / n + rho * (xc.T @ xc) / n
    gram = gram + ridge * torch.eye(d, dtype=X.dtype, device=X.device)
    rhs = xbar.T @ (counts * ybar) / n
    # structural rank: W1 has rank <= m, W2 (centred rows) rank <= n - m
    rank_bound = d + 1 if ridge > 0 else (min(m, d) if rho == 0 else min(n, d))
    factor, info = torch.linalg.cholesky_ex(gram)
    if rank_bound < d or int(info) != 0:
        raise ValueError(
            f"fit_linear_aggregate: the system is singular (rho={rho}, ridge={ridge}, n={n}, m={m}, d={d}); "
            "use rho > 0 with n > d, m >= d bags, or ridge > 0"
        )
    return torch.cholesky_solve(rhs[:, None], factor)[:, 0]


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# --------------------------------------------------------------------------- naive references
def _reference_losses(pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The definitions written naively, one bag at a time (tests only): L_bag, L_inst, R."""
    n = pred.shape[0]
    l_bag = pred.new_zeros(())
    l_inst = pred.new_zeros(())
    r = pred.new_zeros(())
    for a in range(ybar.shape[0]):
        members = [i for i in range(n) if int(bag_index[i]) == a]
        fbar = sum(pred[i] for i in members) / len(members)
        l_bag = l_bag + len(members) / n * (ybar[a] - fbar) ** 2
        for i in members:
            l_inst = l_inst + (ybar[a] - pred[i]) ** 2 / n
            r = r + (pred[i] - fbar) ** 2 / n
    return {"bag": l_bag, "instance": l_inst, "variance": r}


def _reference_interpolating(rho: float = 0.5) -> Any:
    """``loss(pred, ybar, bag_index)`` of the naive reference (a factory, for benchmarks)."""

    def loss(pred: torch.Tensor, ybar: torch.Tensor, bag_index: torch.Tensor) -> torch.Tensor:
        terms = _reference_losses(pred, ybar, bag_index)
        return terms["bag"] + rho * terms["variance"]

    return loss
