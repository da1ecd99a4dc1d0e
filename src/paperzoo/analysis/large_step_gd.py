"""Gradient descent on the logistic loss at any step size, and the perceptrons it turns into.

Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with
Large Step Sizes" (arXiv:2412.08424, 2024). On linearly separable data ``{(a_i, y_i)}``, with
``z_i = y_i a_i`` (the rows of ``Z``) and the homogeneous linear classifier ``sign(a^T theta)``:

* **LR+GD** (:func:`gd_logistic`): ``theta_{t+1} = theta_t + (gamma/n) sum_i sigma_i z_i`` with
  ``sigma_i = 1 / (1 + exp(z_i^T theta_t))``, i.e. gradient descent on the logistic loss
  ``f(theta) = (1/n) sum_i log(1 + exp(-z_i^T theta))`` (:func:`logistic_loss`,
  :func:`logistic_grad`) with step ``gamma``, started at 0;
* **Normalized LR+GD** (``gd_logistic(..., normalized=True)``, the paper's new method, its
  Theorem 6.1): the step is rescaled by ``beta_t = ((1/n) sum_i sigma_i)^(-1)``, so
  ``theta_{t+1} = theta_t + gamma sum_i sigma_i z_i / sum_i sigma_i``;
* **Batch Perceptron** (:func:`batch_perceptron`, ``normalization="n"``): the paper's Theorem 3.2
  shows ``theta_t / gamma -> theta^_t`` as ``gamma -> inf`` (for almost every data set, its
  Assumption 3.1), where ``theta^_1 = (1/(2n)) sum_i z_i`` and
  ``theta^_{t+1} = theta^_t + (1/n) sum_{i in S_t} z_i``, ``S_t = {i : z_i^T theta^_t <= 0}``;
  Normalized LR+GD tends to the **Normalized Batch Perceptron** (``normalization="S"``, step
  ``(1/|S_t|) sum_{i in S_t} z_i``). :func:`reduction_gap` measures the distance to the limit;
* the classical **Perceptron** (:func:`perceptron`, one misclassified point per step);
* the separation guarantees (:func:`separation_bounds`): Batch Perceptron ``n R^2 / mu^2``
  (Theorem 3.3), Perceptron and Normalized Batch Perceptron ``R^2 / mu^2`` (Theorems 5.2, 5.3),
  Normalized LR+GD ``R^2/mu^2 + 2 log(2n - 1) / (gamma mu^2)`` (Theorem 6.1), with the margin
  ``mu`` certified by :func:`hard_margin`;
* the data sets of the paper's constructions: :func:`thm41_dataset` (Theorem 4.1: the loss and
  gradient norm grow with ``gamma`` while separation gets faster), :func:`worst_case_dataset`
  (Theorem 5.1: the Batch Perceptron needs Omega(n) steps), real binary subsets
  (:func:`binary_subset`) and separable / label-noise Gaussian data (:func:`gaussian_margin_data`);
* on a user's data: :func:`data_from_loader` gathers ``(A, y)`` from any iterable of ``(x, y)``
  batches (a torch ``DataLoader``), :func:`gd_logistic` shows a progress bar with
  ``progress=True``, and :func:`plot_trajectory` draws loss / normalised margin / direction to the
  max-margin direction against the Batch Perceptron's;
* trajectory tools: the loss, gradient norm, accuracy, normalised margin, direction and
  ``beta_t`` along the run (``record=``), :func:`pre_separation_stats` (loss oscillation and the
  largest loss and gradient norm before separation), :func:`logistic_smoothness` (the classical
  stability limit ``2/L``) and :func:`perceptron_loss` (the limit of ``f(gamma v)/gamma``).

All runs are vectorised over step sizes and over a batch of data sets of the same shape
(``A`` of shape ``(B, n, d)``): every trajectory advances in the same tensor operations and a
trajectory that has separated is frozen. Computations are in float64; the sigmoid and the loss
are evaluated stably (``sigmoid``, ``logsigmoid``, ``logaddexp``), so step sizes up to 1e6 and
beyond are fine. The iteration count of a run is the first ``t`` with ``min_i z_i^T theta_t > 0``
(the number of update steps taken; ``theta_0 = 0`` has margins 0 and never counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params
from paperzoo.engine.progress import progress_bar

__all__ = [
    "HardMargin",
    "RECORDABLE",
    "batch_perceptron",
    "binary_subset",
    "data_from_loader",
    "gaussian_margin_data",
    "gd_logistic",
    "hard_margin",
    "logistic_grad",
    "logistic_loss",
    "logistic_smoothness",
    "normalized_step_factor",
    "perceptron",
    "perceptron_loss",
    "plot_trajectory",
    "pre_separation_stats",
    "reduction_gap",
    "separation_bounds",
    "signed_data",
    "thm41_dataset",
    "worst_case_dataset",
]

#: What :func:`gd_logistic` can record along a trajectory.
RECORDABLE = ("loss", "grad_norm", "accuracy", "min_margin", "direction", "beta", "theta")

_POS = Interval(float, 0, math.inf, closed="neither")
_ITERS = Interval(int, 0, math.inf, closed="left")
_CONSTRAINTS: dict[str, list[Constraint]] = {
    "step": [_POS],
    "max_iter": [_ITERS],
    "T": [Interval(int, 1, math.inf, closed="left")],
    "normalization": [Options(("n", "S"))],
    "rule": [Options(("first", "random", "cyclic"))],
    "n": [Interval(int, 1, math.inf, closed="left")],
    "n_wc": [Interval(int, 2, math.inf, closed="left")],
    "d": [Interval(int, 1, math.inf, closed="left")],
    "R": [_POS],
    "mu": [_POS],
    "gamma": [_POS, None],
    "margin": [Interval(float, 0, math.inf, closed="left")],
    "rtol": [Interval(float, 0, math.inf, closed="left")],
    "label_noise": [Interval(float, 0, 1, closed="left")],
    "jitter": [Interval(float, 0, 0.5, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
    "maxiter": [Interval(int, 1, math.inf, closed="left")],
    "method": [Options(("nnls", "lbfgsb"))],
}


# --------------------------------------------------------------------------- input checks
def _data(A: Any, y: Any, owner: str) -> tuple[torch.Tensor, bool]:
    """``Z = y[..., None] * A`` as float64 ``(B, n, d)`` and whether ``A`` had a batch dimension."""
    a = torch.as_tensor(A)
    if a.is_complex() or a.dtype == torch.bool:
        raise TypeError(f"{owner}: A must be a real array of shape (n, d) or (B, n, d), got dtype {a.dtype}")
    a = a.to(torch.float64)
    if a.dim() not in (2, 3):
        raise ValueError(f"{owner}: A must have shape (n, d) or (B, n, d), got {tuple(a.shape)}")
    if a.shape[-2] == 0 or a.shape[-1] == 0 or (a.dim() == 3 and a.shape[0] == 0):
        raise ValueError(f"{owner}: A is empty: shape {tuple(a.shape)}")
    check_finite(a, "A")
    labels = torch.as_tensor(y)
    if labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{owner}: y must hold the labels -1 and +1, got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(a.shape[:-1]):
        raise ValueError(
            f"{owner}: y must have shape {tuple(a.shape[:-1])} (one label per row of A), got {tuple(labels.shape)}"
        )
    labels = labels.to(torch.float64)
    check_finite(labels, "y")
    if not bool(((labels == 1) | (labels == -1)).all()):
        bad = torch.unique(labels[(labels != 1) & (labels != -1)])[:5].tolist()
        raise ValueError(f"{owner}: y must contain only the labels -1 and +1, got also {bad}")
    z = labels.unsqueeze(-1) * a
    batched = z.dim() == 3
    return (z if batched else z.unsqueeze(0)).contiguous(), batched


def _steps(step: Any, owner: str) -> tuple[torch.Tensor, bool]:
    """Step sizes as a float64 (G,) tensor and whether a single number was given."""
    if isinstance(step, torch.Tensor | np.ndarray):
        values = [float(v) for v in torch.as_tensor(step).reshape(-1).tolist()]
        scalar = torch.as_tensor(step).dim() == 0
    elif isinstance(step, Sequence):
        values, scalar = list(step), False
    else:
        values, scalar = [step], True
    if not values:
        raise ValueError(f"{owner}: step must be a positive number or a non-empty sequence of them")
    for v in values:
        validate_params(_CONSTRAINTS, {"step": v}, owner=owner)
    return torch.tensor([float(v) for v in values], dtype=torch.float64), scalar


def signed_data(A: Any, y: Any) -> torch.Tensor:
    """``Z = y[..., None] * A`` in float64 (rows ``z_i = y_i a_i``), after checking the inputs.

    Args:
        A: features, (n, d) or (B, n, d).
        y: labels in {-1, +1}, (n,) or (B, n).
    """
    z, batched = _data(A, y, "signed_data")
    return z if batched else z[0]


# --------------------------------------------------------------------------- losses
def _margins(theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    return torch.matmul(theta.unsqueeze(-2), Z.transpose(-1, -2)).squeeze(-2)


def logistic_loss(theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """``f(theta) = (1/n) sum_i log(1 + exp(-z_i^T theta))``, evaluated as ``logaddexp(0, -m)``.

    Args:
        theta: (..., d).
        Z: (n, d) or (..., n, d), batch dimensions broadcasting with ``theta``'s.

    Returns:
        (...): one loss per parameter vector; differentiable.

    >>> Z = torch.tensor([[1.0, -1.0], [1.0, 4.0]], dtype=torch.float64)  # the Theorem 4.1 data
    >>> round(float(logistic_loss(torch.tensor([0.5, 0.75], dtype=torch.float64), Z)), 6)
    0.427845
    """
    m = _margins(theta, Z)
    return torch.logaddexp(m.new_zeros(()), -m).mean(-1)


def logistic_grad(theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """``grad f(theta) = -(1/n) sum_i sigma_i z_i`` with ``sigma_i = sigmoid(-z_i^T theta)``; (..., d)."""
    s = torch.sigmoid(-_margins(theta, Z))
    return -torch.matmul(s.unsqueeze(-2), Z).squeeze(-2) / Z.shape[-2]


def perceptron_loss(theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """``(1/n) sum_i max(0, -z_i^T theta)``: the limit of ``f(gamma theta) / gamma`` as ``gamma -> inf``
    (the scaled-loss remark of the paper); (...)."""
    return F.relu(-_margins(theta, Z)).mean(-1)


def normalized_step_factor(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``beta_t = ((1/n) sum_i sigma_i)^(-1)`` of Normalized LR+GD from a linear model's outputs.

    Multiply the learning rate of ``torch.optim.SGD`` (full batch, ``BCEWithLogitsLoss`` on
    targets ``(y + 1) / 2``) by it before each step to run Normalized LR+GD with any model
    whose last layer is linear in ``theta``.

    Args:
        logits: (n,) scores ``a_i^T theta``.
        y: (n,) labels in {-1, +1}.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 1:
        raise TypeError("logits must be a floating-point torch.Tensor of shape (n,)")
    if logits.shape[0] == 0:
        raise ValueError("logits is empty")
    if tuple(torch.as_tensor(y).shape) != tuple(logits.shape):
        raise ValueError(f"y must have shape {tuple(logits.shape)}, got {tuple(torch.as_tensor(y).shape)}")
    m = torch.as_tensor(y, dtype=logits.dtype) * logits.detach()
    return 1.0 / torch.sigmoid(-m).mean()


# --------------------------------------------------------------------------- GD on the logistic loss
class _History:
    """Per-iteration records of shape (B, G, ...) grown by doubling (time is the first axis)."""

    def __init__(self) -> None:
        self.data: dict[str, torch.Tensor] = {}
        self.size = 0

    def put(self, t: int, key: str, value: torch.Tensor) -> None:
        buf = self.data.get(key)
        if buf is None:
            buf = value.new_empty((64, *value.shape))
        elif t >= buf.shape[0]:
            grown = value.new_empty((2 * buf.shape[0], *value.shape))
            grown[: buf.shape[0]] = buf
            buf = grown
        buf[t] = value
        self.data[key] = buf

    def finish(self, length: int) -> dict[str, torch.Tensor]:
        # time axis moved after the (B, G) axes: (B, G, T + 1, ...)
        return {k: v[:length].movedim(0, 2) for k, v in self.data.items()}


def gd_logistic(
    A: Any,
    y: Any,
    step: float | Sequence[float] | torch.Tensor,
    max_iter: int = 10_000,
    *,
    normalized: bool = False,
    theta0: Any = None,
    stop_at_separation: bool = True,
    record: Sequence[str] = ("loss", "grad_norm", "accuracy", "min_margin"),
    reference: Any = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run LR+GD (or Normalized LR+GD) from ``theta0`` (default 0) for every step size at once.

    LR+GD: ``theta_{t+1} = theta_t + (gamma/n) sum_i sigma_i(theta_t) z_i``. Normalized LR+GD
    (``normalized=True``): ``theta_{t+1} = theta_t + gamma sum_i w_i z_i`` with the weights
    ``w_i = sigma_i / sum_j sigma_j`` computed as ``softmax(logsigmoid(-m))`` (exact, and free
    of 0/0 when every ``sigma_i`` underflows).

    Args:
        A: features (n, d), or a batch of data sets of the same shape (B, n, d).
        y: labels in {-1, +1}, (n,) or (B, n).
        step: the step size ``gamma > 0`` or a sequence of them (G,); all run in parallel.
        max_iter: the most update steps.
        normalized: run Normalized LR+GD.
        theta0: start, (d,) or broadcastable to (B, G, d); default 0.
        stop_at_separation: freeze a trajectory once ``min_i z_i^T theta_t > 0`` and stop when all
            have; recorded values after a trajectory's separation are NaN.
        record: any of :data:`RECORDABLE`, evaluated at every ``theta_t``: ``"loss"`` (``f``),
            ``"grad_norm"`` (``||grad f||``), ``"accuracy"`` (fraction with ``z_i^T theta > 0``),
            ``"min_margin"`` (``min_i z_i^T theta / ||theta||``, 0 at ``theta = 0``),
            ``"direction"`` (cosine between ``theta`` and ``reference``), ``"beta"``
            (``n / sum_i sigma_i``), ``"theta"``.
        reference: (d,) direction for ``"direction"``, e.g. :func:`hard_margin`'s.
        progress: show a progress bar over the ``max_iter`` steps (it stops early when every
            trajectory has separated).

    Returns:
        A dict; with ``L`` the leading shape, ``(B, G)`` with the axes of a single data set or a
        single step size dropped: ``"theta"`` (L, d), the last iterate; ``"iters_to_separate"``
        (L) int64, the first ``t`` with ``min_i z_i^T theta_t > 0``, -1 if not reached;
        ``"separated"`` (L) bool; ``"steps"`` (G,); ``"n_iter"``, the steps run; and one entry
        per recorded quantity, (L, n_iter + 1) (``"theta"`` is returned as ``"theta_history"``,
        (L, n_iter + 1, d)).

    >>> A, y = thm41_dataset()
    >>> out = gd_logistic(A, y, [1.0, 10.0, 100.0])
    >>> out["iters_to_separate"].tolist(), [round(v, 4) for v in out["loss"][:, 1].tolist()]
    ([2, 2, 2], [0.4278, 1.2894, 12.5])
    """
    owner = "gd_logistic"
    Z, batched = _data(A, y, owner)
    steps, scalar = _steps(step, owner)
    validate_params(_CONSTRAINTS, {"max_iter": max_iter}, owner=owner)
    unknown = [r for r in record if r not in RECORDABLE]
    if unknown:
        raise ValueError(f"{owner}: record may contain {RECORDABLE}, got {unknown}")
    B, n, d = Z.shape
    G = steps.shape[0]
    theta = Z.new_zeros(B, G, d)
    if theta0 is not None:
        t0 = torch.as_tensor(theta0, dtype=torch.float64)
        check_finite(t0, "theta0")
        if t0.dim() == 0 or t0.shape[-1] != d:
            raise ValueError(f"{owner}: theta0 must have shape (d,) = ({d},) or broadcast to (B, G, d)")
        try:
            theta = theta + t0
        except RuntimeError:
            raise ValueError(f"{owner}: theta0 of shape {tuple(t0.shape)} does not broadcast to {(B, G, d)}") from None
    ref = None
    if "direction" in record:
        if reference is None:
            raise ValueError(f"{owner}: record 'direction' needs a reference direction")
        ref = torch.as_tensor(reference, dtype=torch.float64)
        if tuple(ref.shape) != (d,) or float(ref.norm()) == 0.0:
            raise ValueError(f"{owner}: reference must be a non-zero vector of shape ({d},)")
        check_finite(ref, "reference")
        ref = ref / ref.norm()
    Zt = Z.transpose(1, 2)
    gam = steps.view(1, G, 1)
    iters = torch.full((B, G), -1, dtype=torch.int64)
    active = torch.ones(B, G, 1, dtype=torch.float64)
    hist = _History()
    want = set(record)
    t = 0
    bar_cm = progress_bar(total=max_iter, desc="LR+GD", enabled=progress)
    bar = bar_cm.__enter__()
    for t in range(max_iter + 1):
        if t:
            bar.update(1)
        M = torch.bmm(theta, Zt)  # (B, G, n): margins z_i^T theta_t
        need_s = "grad_norm" in want or "beta" in want or (not normalized and t < max_iter)
        s = torch.sigmoid(-M) if need_s else None
        if want:
            _record(hist, t, want, M, theta, Z, s, ref)
        iters = torch.where((iters < 0) & (M.amin(-1) > 0), t, iters)
        if stop_at_separation:
            still = iters < 0
            if not bool(still.any()):
                break
            active = still.unsqueeze(-1).to(torch.float64)
        if t == max_iter:
            break
        if normalized:
            w = torch.softmax(F.logsigmoid(-M), dim=-1)
            update = gam * torch.bmm(w, Z)
        else:
            assert s is not None
            update = (gam / n) * torch.bmm(s, Z)
        theta = theta + (active * update if stop_at_separation else update)
    bar_cm.__exit__(None, None, None)
    out: dict[str, Any] = {"theta": theta, "iters_to_separate": iters, "separated": iters >= 0, "steps": steps}
    records = hist.finish(t + 1)
    if "theta" in records:
        records["theta_history"] = records.pop("theta")
    if stop_at_separation:
        steps_axis = torch.arange(t + 1)
        after = (iters >= 0).unsqueeze(-1) & (steps_axis > iters.unsqueeze(-1))  # (B, G, T + 1)
        for k, v in records.items():
            mask = after if v.dim() == 3 else after.unsqueeze(-1)
            records[k] = v.masked_fill(mask, math.nan)
    out.update(records)
    for k in ("theta", "iters_to_separate", "separated", *records):
        v = out[k]
        if scalar:
            v = v[:, 0]
        if not batched:
            v = v[0]
        out[k] = v
    out["n_iter"] = t
    return out


def _record(
    hist: _History,
    t: int,
    want: set[str],
    M: torch.Tensor,
    theta: torch.Tensor,
    Z: torch.Tensor,
    s: torch.Tensor | None,
    ref: torch.Tensor | None,
) -> None:
    n = Z.shape[1]
    if "loss" in want:
        hist.put(t, "loss", torch.logaddexp(M.new_zeros(()), -M).mean(-1))
    if "grad_norm" in want:
        assert s is not None
        hist.put(t, "grad_norm", torch.linalg.vector_norm(torch.bmm(s, Z), dim=-1) / n)
    if "accuracy" in want:
        hist.put(t, "accuracy", (M > 0).to(torch.float64).mean(-1))
    norm = torch.linalg.vector_norm(theta, dim=-1) if ("min_margin" in want or "direction" in want) else None
    if "min_margin" in want:
        assert norm is not None
        hist.put(t, "min_margin", torch.where(norm > 0, M.amin(-1) / norm.clamp_min(1e-300), 0.0))
    if "direction" in want:
        assert norm is not None and ref is not None
        hist.put(t, "direction", torch.where(norm > 0, (theta @ ref) / norm.clamp_min(1e-300), 0.0))
    if "beta" in want:
        assert s is not None
        hist.put(t, "beta", n / s.sum(-1))
    if "theta" in want:
        hist.put(t, "theta", theta.clone())


def pre_separation_stats(result: dict[str, Any], rtol: float = 1e-10) -> dict[str, torch.Tensor]:
    """Loss and gradient-norm statistics of a :func:`gd_logistic` run over the iterates
    ``theta_0 .. theta_{k-1}`` that do not yet separate (``k`` = its ``iters_to_separate``; all
    recorded iterates when it did not separate).

    Returns:
        ``{"max_loss", "loss_increases", "max_grad_norm"}`` (those whose history was recorded),
        each of the run's leading shape: the largest loss, the number of steps ``t -> t + 1``
        (``t + 1 <= k``) on which the loss went up by more than ``rtol`` times its value (0
        means a monotone decrease, the small-step regime; ``rtol`` ignores rounding noise once
        the loss has converged), and the largest gradient norm.

    >>> out = gd_logistic(*worst_case_dataset(10), [1.0, 100.0], record=("loss",))
    >>> stats = pre_separation_stats(out)
    >>> stats["loss_increases"].tolist(), [round(v, 4) for v in stats["max_loss"].tolist()]
    ([0, 1], [0.6931, 2.75])
    """
    validate_params(_CONSTRAINTS, {"rtol": rtol}, owner="pre_separation_stats")
    iters = result["iters_to_separate"]
    out: dict[str, torch.Tensor] = {}
    for key in ("loss", "grad_norm"):
        if key not in result:
            continue
        h = result[key]
        T1 = h.shape[-1]
        k = torch.where(iters >= 0, iters, T1).unsqueeze(-1)
        pos = torch.arange(T1)
        before = pos < k
        out["max_loss" if key == "loss" else "max_grad_norm"] = torch.where(before, h, -math.inf).amax(-1)
        if key == "loss":
            up = (h[..., 1:] - h[..., :-1] > rtol * h[..., :-1].abs()) & (pos[1:] <= k)
            out["loss_increases"] = up.sum(-1)
    return out


def logistic_smoothness(A: Any, y: Any) -> float:
    """``L = lambda_max(Z^T Z) / (4n)``, the smoothness constant of the logistic loss; GD's
    classical stability limit is ``gamma < 2/L``. A batch (B, n, d) returns the largest ``L``."""
    Z, _ = _data(A, y, "logistic_smoothness")
    n = Z.shape[1]
    return float((torch.linalg.matrix_norm(Z, ord=2) ** 2 / (4 * n)).max())


# --------------------------------------------------------------------------- perceptrons
def batch_perceptron(
    A: Any, y: Any, max_iter: int = 10_000, normalization: str = "n", *, record_theta: bool = False
) -> dict[str, Any]:
    """Batch Perceptron (``"n"``, the ``gamma -> inf`` limit of ``theta_t / gamma`` under LR+GD,
    the paper's Theorem 3.2) or Normalized Batch Perceptron (``"S"``, the limit under Normalized
    LR+GD), from 0.

    ``"n"``: ``theta^_1 = (1/(2n)) sum_i z_i`` (every ``sigma_i(0) = 1/2``), then
    ``theta^_{t+1} = theta^_t + (1/n) sum_{i in S_t} z_i`` with ``S_t = {i : z_i^T theta^_t <= 0}``.
    ``"S"``: ``theta^_{t+1} = theta^_t + (1/|S_t|) sum_{i in S_t} z_i`` (``theta^_1`` = the mean
    of the ``z_i``). Runs until ``S_t`` is empty or ``max_iter`` steps.

    Returns:
        ``"theta"`` (B?, d); ``"iters_to_separate"`` (B?) int64 (-1 if not reached);
        ``"separated"``; ``"sizes"`` (B?, n_iter) int64, ``|S_t|`` at the start of each step
        (0 once separated); ``"n_iter"``; with ``record_theta``, ``"theta_history"``
        (B?, n_iter + 1, d).

    >>> A, y = worst_case_dataset(10)
    >>> out = batch_perceptron(A, y)
    >>> int(out["iters_to_separate"]), out["sizes"].tolist(), [round(v, 12) for v in out["theta"].tolist()]
    (4, [10, 1, 1, 1], [0.4, 0.1])
    """
    owner = "batch_perceptron"
    Z, batched = _data(A, y, owner)
    validate_params(_CONSTRAINTS, {"max_iter": max_iter, "normalization": normalization}, owner=owner)
    B, n, d = Z.shape
    theta = Z.new_zeros(B, d)
    iters = torch.full((B,), -1, dtype=torch.int64)
    sizes: list[torch.Tensor] = []
    thetas = [theta] if record_theta else []
    t = 0
    for t in range(max_iter + 1):
        mis = torch.bmm(Z, theta.unsqueeze(-1)).squeeze(-1) <= 0  # (B, n)
        count = mis.sum(-1)
        iters = torch.where((iters < 0) & (count == 0), t, iters)
        still = iters < 0
        if not bool(still.any()) or t == max_iter:
            break
        sizes.append(torch.where(still, count, 0))
        total = torch.bmm(mis.to(torch.float64).unsqueeze(1), Z).squeeze(1)  # sum over S_t of z_i
        if normalization == "n":
            total = total / (2 * n if t == 0 else n)
        else:
            total = total / count.clamp_min(1).unsqueeze(-1)
        theta = theta + still.unsqueeze(-1) * total
        if record_theta:
            thetas.append(theta)
    out: dict[str, Any] = {
        "theta": theta,
        "iters_to_separate": iters,
        "separated": iters >= 0,
        "sizes": torch.stack(sizes, -1) if sizes else torch.zeros(B, 0, dtype=torch.int64),
    }
    if record_theta:
        out["theta_history"] = torch.stack(thetas, 1)
    if not batched:
        out = {k: v[0] for k, v in out.items()}
    out["n_iter"] = t
    return out


def perceptron(A: Any, y: Any, max_iter: int = 100_000, rule: str = "cyclic", seed: int = 0) -> dict[str, Any]:
    """The classical Perceptron from 0: ``theta_{t+1} = theta_t + z_j`` for one ``j in S_t``.

    ``rule`` picks ``j``: ``"first"`` (smallest index), ``"random"`` (uniform, ``seed``),
    ``"cyclic"`` (the next misclassified index after the previous update, wrapping around: the
    online perceptron's pass over the data in order, as scikit-learn's ``Perceptron`` with
    ``shuffle=False``). Each step is one update; Novikoff's bound ``R^2/mu^2`` (the paper's
    Theorem 5.2) counts these.

    Returns:
        ``"theta"`` (B?, d), ``"iters_to_separate"`` (B?) int64 (-1 if not reached),
        ``"separated"``, ``"sizes"`` (B?, n_iter) ``|S_t|``, ``"n_iter"``.
    """
    owner = "perceptron"
    Z, batched = _data(A, y, owner)
    validate_params(_CONSTRAINTS, {"max_iter": max_iter, "rule": rule, "seed": seed}, owner=owner)
    B, n, d = Z.shape
    theta = Z.new_zeros(B, d)
    iters = torch.full((B,), -1, dtype=torch.int64)
    ptr = torch.zeros(B, dtype=torch.int64)
    rows = torch.arange(B)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.arange(n)
    sizes: list[torch.Tensor] = []
    t = 0
    for t in range(max_iter + 1):
        mis = torch.bmm(Z, theta.unsqueeze(-1)).squeeze(-1) <= 0
        count = mis.sum(-1)
        iters = torch.where((iters < 0) & (count == 0), t, iters)
        still = iters < 0
        if not bool(still.any()) or t == max_iter:
            break
        sizes.append(torch.where(still, count, 0))
        if rule == "first":
            j = mis.to(torch.int8).argmax(-1)
        elif rule == "random":
            j = torch.where(mis, torch.rand(B, n, generator=gen, dtype=torch.float64), -1.0).argmax(-1)
        else:
            order = (idx.unsqueeze(0) - ptr.unsqueeze(-1)) % n
            j = torch.where(mis, order, n).argmin(-1)  # the misclassified index with the smallest offset
            ptr = torch.where(still, (j + 1) % n, ptr)
        theta = theta + still.unsqueeze(-1) * Z[rows, j]
    out: dict[str, Any] = {
        "theta": theta,
        "iters_to_separate": iters,
        "separated": iters >= 0,
        "sizes": torch.stack(sizes, -1) if sizes else torch.zeros(B, 0, dtype=torch.int64),
    }
    if not batched:
        out = {k: v[0] for k, v in out.items()}
    out["n_iter"] = t
    return out


def reduction_gap(
    A: Any, y: Any, steps: Sequence[float] | torch.Tensor, T: int = 30, *, normalized: bool = False
) -> torch.Tensor:
    """``max_{1 <= t <= T} ||theta_t / gamma - theta^_t|| / ||theta^_t||`` for each step size:
    the distance of LR+GD (Normalized LR+GD) from its limit, the Batch Perceptron (Normalized
    Batch Perceptron), which the paper's Theorem 3.2 says goes to 0 as ``gamma -> inf``. The
    perceptron iterate stays put once it separates, as does ``theta_t / gamma`` in the limit.

    Returns:
        (G,) float64 (or (B, G) for a batch of data sets).
    """
    owner = "reduction_gap"
    validate_params(_CONSTRAINTS, {"T": T}, owner=owner)
    gd = gd_logistic(A, y, list(_steps(steps, owner)[0].tolist()), T, normalized=normalized,
                     stop_at_separation=False, record=("theta",))  # fmt: skip
    bp = batch_perceptron(A, y, T, "S" if normalized else "n", record_theta=True)
    th, ref = gd["theta_history"], bp["theta_history"]  # (B?, G, T+1, d), (B?, T'+1, d)
    if ref.shape[-2] < T + 1:  # separated early: the iterate stays put
        pad = ref[..., -1:, :].expand(*ref.shape[:-2], T + 1 - ref.shape[-2], ref.shape[-1])
        ref = torch.cat([ref, pad], dim=-2)
    scaled = th / gd["steps"].view(-1, 1, 1)
    ref = ref.unsqueeze(-3)[..., 1:, :]
    rel = torch.linalg.vector_norm(scaled[..., 1:, :] - ref, dim=-1) / torch.linalg.vector_norm(ref, dim=-1)
    return rel.amax(-1)


# --------------------------------------------------------------------------- margin and bounds
class HardMargin(NamedTuple):
    """The margin through the origin of a data set.

    ``margin``: ``min_i z_i^T theta* / ||theta*||``, a certified lower bound of the true
    margin ``mu`` (the true margin when the solver converged; <= 0 when no separating
    direction was found, -inf with a zero ``direction`` when none exists). ``direction``: unit
    ``theta*`` (d,). ``upper``: a certified upper bound of ``mu`` from the dual value
    (``1 / sqrt(2 D(alpha))``; 0 when the data are certified not separable through the origin,
    inf when no bound is available).
    ``radius``: ``R = max_i ||a_i||``.
    """

    margin: float
    direction: torch.Tensor
    upper: float
    radius: float


def hard_margin(A: Any, y: Any, *, method: str = "nnls", tol: float = 1e-12, maxiter: int = 20_000) -> HardMargin:
    """The bias-free hard-margin SVM ``min ||w||^2 / 2 s.t. z_i^T w >= 1``; ``theta* = w / ||w||``.

    ``method="nnls"`` (default) solves it exactly as a least-distance program with
    ``scipy.optimize.nnls`` (Lawson and Hanson's reduction: ``u >= 0`` minimising
    ``||[Z^T; 1^T] u - e_{d+1}||``, residual ``r``, ``w = -r_{1:d} / r_{d+1}``; the SVM dual
    variables are ``alpha = u / (1 - 1^T u)``). ``method="lbfgsb"`` minimises the dual
    ``1/2 alpha^T (Z Z^T) alpha - 1^T alpha`` over ``alpha >= 0`` with
    ``scipy.optimize.minimize(method="L-BFGS-B")`` (``tol``, ``maxiter``), slower but a useful
    cross-check. Both bounds of :class:`HardMargin` are certified whatever the solver reached
    (weak duality: ``D(alpha) <= 1 / (2 mu^2)``).

    >>> hm = hard_margin(*worst_case_dataset(100))
    >>> round(hm.margin, 6), round(hm.upper, 6), round(hm.radius, 5)
    (0.5, 0.5, 1.11803)
    """
    from scipy.optimize import minimize, nnls

    owner = "hard_margin"
    Zt, batched = _data(A, y, owner)
    if batched:
        raise ValueError(f"{owner}: A must have shape (n, d) (one data set)")
    validate_params(_CONSTRAINTS, {"maxiter": maxiter, "method": method}, owner=owner)
    Z = Zt[0].numpy()
    n, d = Z.shape
    radius = float(np.linalg.norm(Z, axis=1).max())
    if method == "nnls":
        E = np.vstack([Z.T, np.ones((1, n))])
        f = np.zeros(d + 1)
        f[-1] = 1.0
        u, _ = nnls(E, f, maxiter=max(maxiter, 3 * n))
        r = E @ u - f
        if r[-1] >= 0 or float(np.linalg.norm(r)) <= 1e-12:
            # E u = e_{d+1} with u >= 0: 0 lies in the convex hull of the z_i, no direction separates
            return HardMargin(-math.inf, torch.zeros(d, dtype=torch.float64), 0.0, radius)
        alpha = u / (1.0 - u.sum())
    else:
        K = Z @ Z.T

        def fun(a: np.ndarray) -> tuple[float, np.ndarray]:
            Ka = K @ a
            return 0.5 * float(a @ Ka) - float(a.sum()), Ka - 1.0

        res = minimize(fun, np.zeros(n), jac=True, method="L-BFGS-B", bounds=[(0, None)] * n,
                       options={"maxiter": maxiter, "ftol": tol, "gtol": tol, "maxfun": 10 * maxiter})  # fmt: skip
        alpha = res.x
    theta = Z.T @ alpha
    norm = float(np.linalg.norm(theta))
    if norm == 0.0:
        return HardMargin(0.0, torch.zeros(d, dtype=torch.float64), math.inf, radius)
    margin = float((Z @ theta).min()) / norm
    dual = float(alpha.sum()) - 0.5 * norm**2
    upper = 1.0 / math.sqrt(2.0 * dual) if dual > 0 else math.inf
    return HardMargin(margin, torch.from_numpy(theta / norm), upper, radius)


def separation_bounds(n: int, R: float, mu: float, gamma: float | None = None) -> dict[str, float]:
    """Worst-case iteration counts to separate, from 0, given ``R = max ||a_i||`` and a margin
    ``mu`` (any certified lower bound of it keeps them valid):

    ``batch``: ``n R^2 / mu^2`` (Batch Perceptron and, for large ``gamma``, LR+GD; Theorem 3.3);
    ``perceptron`` and ``normalized_batch``: ``R^2 / mu^2`` (Theorems 5.2, 5.3);
    ``normalized_lr`` (with ``gamma``): ``R^2/mu^2 + 2 log(2n - 1) / (gamma mu^2)`` (Theorem 6.1).

    >>> round(separation_bounds(10, math.sqrt(1.25), 0.5, gamma=1.0)["normalized_lr"], 4)  # 5 + 8 log 19
    28.5555
    """
    owner = "separation_bounds"
    validate_params(_CONSTRAINTS, {"n": n, "R": R, "mu": mu, "gamma": gamma}, owner=owner)
    base = R**2 / mu**2
    out = {"batch": n * base, "perceptron": base, "normalized_batch": base}
    if gamma is not None:
        out["normalized_lr"] = base + 2.0 * math.log(2 * n - 1) / (gamma * mu**2)
    return out


# --------------------------------------------------------------------------- data sets
def thm41_dataset() -> tuple[torch.Tensor, torch.Tensor]:
    """The two points of the paper's Theorem 4.1: ``a_1 = (1, -1), y_1 = +1``,
    ``a_2 = (-1, -4), y_2 = -1`` (margin 1). From 0, LR+GD's ``f(theta_1)`` grows like ``gamma/8``
    while ``theta_2`` separates for every large ``gamma``."""
    A = torch.tensor([[1.0, -1.0], [-1.0, -4.0]], dtype=torch.float64)
    return A, torch.tensor([1, -1], dtype=torch.int64)


def worst_case_dataset(n: int, *, jitter: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's Theorem 5.1 data: ``a_1 = (0.5, -1)`` with ``y_1 = +1`` and ``n - 1`` copies of
    ``(-0.5, -1)`` with ``y = -1`` (margin 0.5 along (1, 0), ``R = sqrt(1.25)``); the Batch
    Perceptron needs Omega(n) steps on it, the normalised methods two.

    ``jitter > 0`` adds ``N(0, jitter^2)`` noise (from ``seed``) to the copies, a generic
    ("almost every data set") version; ``jitter < 0.5`` keeps it separable in practice (the copies
    stay on the correct side of (1, 0) unless a noise value exceeds 0.5).
    """
    owner = "worst_case_dataset"
    validate_params(_CONSTRAINTS, {"n_wc": n, "jitter": jitter, "seed": seed}, owner=owner)
    A = torch.tensor([[-0.5, -1.0]], dtype=torch.float64).repeat(n, 1)
    A[0] = torch.tensor([0.5, -1.0], dtype=torch.float64)
    if jitter > 0:
        noise = np.random.default_rng(seed).normal(0.0, jitter, size=(n - 1, 2))
        A[1:] += torch.from_numpy(noise)
    y = -torch.ones(n, dtype=torch.int64)
    y[0] = 1
    return A, y


def binary_subset(
    X: Any, labels: Any, classes: tuple[int, int], n_per_class: int | tuple[int, int] | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of a labelled set as a binary problem: ``classes[0] -> +1``, ``classes[1] -> -1``.

    Args:
        X: (N, ...) features (flattened to (N, d)), e.g. ``paperzoo.data.load_digits().x``.
        labels: (N,) integer labels.
        classes: the two classes.
        n_per_class: keep this many samples of each class, drawn without replacement with
            ``seed`` (a pair ``(n_pos, n_neg)`` gives an imbalanced subset); None keeps all.
            Kept samples stay in data-set order.

    Returns:
        ``(A, y)``: (m, d) float64 and (m,) int64 in {-1, +1}.
    """
    owner = "binary_subset"
    x = torch.as_tensor(np.asarray(X)).to(torch.float64)
    lab = np.asarray(labels)
    if x.dim() < 2 or x.shape[0] != lab.shape[0] or lab.ndim != 1:
        raise ValueError(f"{owner}: X must be (N, ...) with one label each, got X {tuple(x.shape)}, labels {lab.shape}")
    x = x.reshape(x.shape[0], -1)
    check_finite(x, "X")
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"{owner}: classes must be two different labels, got {classes!r}")
    counts = (None, None) if n_per_class is None else (
        (n_per_class, n_per_class) if isinstance(n_per_class, int) else tuple(n_per_class)
    )  # fmt: skip
    validate_params(_CONSTRAINTS, {"seed": seed}, owner=owner)
    rng = np.random.default_rng(seed)
    keep = []
    for c, k in zip(classes, counts):
        idx = np.flatnonzero(lab == c)
        if idx.size == 0:
            raise ValueError(f"{owner}: class {c!r} has no samples")
        if k is not None:
            validate_params(_CONSTRAINTS, {"n": k}, owner=owner)
            if k > idx.size:
                raise ValueError(f"{owner}: class {c!r} has {idx.size} samples, asked for {k}")
            idx = rng.choice(idx, size=k, replace=False)
        keep.append(idx)
    order = np.sort(np.concatenate(keep))
    y = np.where(lab[order] == classes[0], 1, -1)
    return x[torch.from_numpy(order)], torch.from_numpy(y.astype(np.int64))


def gaussian_margin_data(
    n: int, d: int, margin: float = 0.1, *, label_noise: float = 0.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian points with a margin through the origin, optionally made non-separable.

    A unit direction ``u`` is drawn at random; ``x ~ N(0, I_d)``, ``y = sign(u^T x)`` and
    ``a = x + y margin u``, so ``y u^T a >= margin`` (the margin is at least ``margin``).
    ``label_noise`` then flips that fraction of the labels (chosen at random): the flipped
    points lie at least ``margin`` on the wrong side of ``u``, and the data are typically not
    linearly separable (check with :func:`hard_margin`).

    Returns:
        ``(A, y)``: (n, d) float64 and (n,) int64 in {-1, +1}.
    """
    owner = "gaussian_margin_data"
    validate_params(
        _CONSTRAINTS, {"n": n, "d": d, "margin": margin, "label_noise": label_noise, "seed": seed}, owner=owner
    )
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    x = rng.normal(size=(n, d))
    y = np.where(x @ u >= 0, 1, -1)
    a = x + (y * margin)[:, None] * u
    flips = int(round(label_noise * n))
    if flips:
        y[rng.choice(n, size=flips, replace=False)] *= -1
    return torch.from_numpy(a), torch.from_numpy(y.astype(np.int64))


# --------------------------------------------------------------------------- a user's data, plots
def data_from_loader(loader: Any, positive: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather a binary problem from an iterable of ``(x, y)`` batches (e.g. a torch ``DataLoader``).

    ``x`` is flattened to ``(batch, d)``. Labels already in {-1, +1} are kept; labels in {0, 1}
    map to {-1, +1}; with ``positive`` given, ``y == positive -> +1`` and every other label -1.

    Returns:
        ``(A, y)``: (n, d) float64 and (n,) int64 in {-1, +1}, ready for :func:`gd_logistic`.
    """
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError("data_from_loader: the loader must yield (x, y) pairs")
        x, y = (torch.as_tensor(v) for v in batch)
        if x.dim() < 1 or y.reshape(-1).shape[0] != x.shape[0]:
            raise ValueError(f"data_from_loader: x {tuple(x.shape)} and y {tuple(y.shape)} must have one label per row")
        xs.append(x.reshape(x.shape[0], -1).to(torch.float64))
        ys.append(y.reshape(-1))
    if not xs:
        raise ValueError("data_from_loader: the loader yielded no batch")
    A, lab = torch.cat(xs), torch.cat(ys)
    check_finite(A, "x")
    if positive is not None:
        y = torch.where(lab == positive, 1, -1)
    else:
        values = set(torch.unique(lab).tolist())
        if values <= {-1, 1}:
            y = lab.to(torch.int64)
        elif values <= {0, 1}:
            y = 2 * lab.to(torch.int64) - 1
        else:
            raise ValueError(f"data_from_loader: labels {sorted(values)[:5]} are not binary; pass positive=")
    return A, y.to(torch.int64)


def plot_trajectory(A: Any, y: Any, steps: Sequence[float] = (1.0, 100.0), max_iter: int = 1000,
                    *, normalized: bool = False, progress: bool = False) -> Any:  # fmt: skip
    """A matplotlib Figure of LR+GD on ``(A, y)`` at each step size against the perceptron limit:
    the logistic loss, the normalised margin ``min_i z_i^T theta / ||theta||`` and the cosine to the
    max-margin direction (:func:`hard_margin`) per iteration, the (Normalized) Batch Perceptron's
    margin and cosine dashed. Runs until separation (or ``max_iter``); on non-separable data the
    cosine is to the SVM's best direction (a reference only).
    """
    from paperzoo.engine.plots import subplots

    Z = signed_data(A, y)
    if Z.dim() != 2:
        raise ValueError("plot_trajectory: one data set (n, d)")
    ones = torch.ones(Z.shape[0], dtype=torch.int64)
    hm = hard_margin(Z, ones)
    ref = hm.direction if float(hm.direction.norm()) > 0 else Z.mean(0)
    out = gd_logistic(Z, ones, list(steps), max_iter, normalized=normalized, record=("loss", "min_margin", "direction"),
                      reference=ref, progress=progress)  # fmt: skip
    bp = batch_perceptron(Z, ones, max_iter, "S" if normalized else "n", record_theta=True)
    th = bp["theta_history"]
    norm = torch.linalg.vector_norm(th, dim=-1).clamp_min(1e-300)
    bp_margin = torch.where(norm > 1e-300, (th @ Z.T).amin(-1) / norm, 0.0)
    bp_dir = (th @ (ref / ref.norm())) / norm
    fig, axes = subplots(3, width=4.2, height=3.6)
    t_bp = np.arange(th.shape[0]) + 1
    for i, g in enumerate(steps):
        t = np.arange(out["loss"].shape[-1]) + 1
        axes[0].plot(t, out["loss"][i].numpy(), lw=1, label=f"γ={g:g}")
        axes[1].plot(t, out["min_margin"][i].numpy(), lw=1, label=f"γ={g:g}")
        axes[2].plot(t, out["direction"][i].numpy(), lw=1, label=f"γ={g:g}")
    name = "Normalized Batch Perceptron" if normalized else "Batch Perceptron"
    axes[1].plot(t_bp[1:], bp_margin[1:].numpy(), "k--", lw=1, label=name)
    axes[2].plot(t_bp[1:], bp_dir[1:].numpy(), "k--", lw=1, label=name)
    if hm.margin > 0:
        axes[1].axhline(hm.margin, color="grey", ls=":", lw=1, label="max margin")
    for ax, lab in zip(axes, ("logistic loss", "normalised margin", "cos(θ, max-margin direction)")):
        ax.set_xscale("log")
        ax.set_xlabel("iteration t + 1")
        ax.set_ylabel(lab)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.suptitle(("Normalized " if normalized else "") + "LR+GD vs its perceptron limit")
    fig.tight_layout()
    return fig
