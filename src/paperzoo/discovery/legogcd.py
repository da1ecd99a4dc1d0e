"""LegoGCD (Cao et al., "Solving the Catastrophic Forgetting Problem in Generalized Category
Discovery", CVPR 2024): two extra terms for SimGCD against old-class forgetting.

Both are extra terms of :class:`paperzoo.discovery.trainer.GCDObjective` (``term(batch, epoch) ->
{name: scalar}``, each applying its own weight); no new parameters, no change of the head or the
trainer. Layout as SimGCD: ``logits`` (2B, K) = ``[view 1 of all B; view 2 of all B]``, old
classes are the indices ``0..K_old-1``.

* **Dual-views KL (DKL)** (the paper's Eqs. 11-12), :func:`dual_view_kl` / :class:`DualViewKL`:
  a consistency term between the predictions of the two views, added inside the unsupervised
  classification term, so weighted by ``1 - lambda``. ``mode="official"`` is what the released
  ``DistillLoss`` computes: ``mean_i sum_k p1_ik (log_softmax(p1_i)_k - log_softmax(p2_i)_k)``
  with ``p = softmax(s / tau_s)``, i.e. ``log_softmax`` of the *probabilities* (a second softmax),
  nothing detached: a bounded consistency term, not a KL. ``mode="kl"`` is the paper's
  ``KL(p1 || p2)`` (view 1 -> view 2, not symmetrised; the appendix pseudo-code detaches the
  second view, ``detach_target=True``).
* **Local Entropy Regularization (LER)** (the paper's Eqs. 6-10), :func:`local_entropy_regularizer`
  / :class:`LocalEntropyRegularizer`: every one of the 2B views that is unlabelled, confident
  (``max softmax(s / 0.1) >= delta``) and predicted as an *old* class (no ground truth used) gets
  a cross-entropy between the sharpened ``r = softmax(s / tau_o)`` (no stop-gradient, as the code)
  and the logit-adjusted ``log q = log_softmax(s / tau_o + lambda_ler log p~)``, averaged over
  all 2B views (zeros included); weight ``beta`` (2 in the code). ``p~`` is an EMA buffer of the
  mean ``softmax(s)`` at temperature 1 over all views, updated after the loss of the step
  (momentum 0.999, from uniform). The code minimises the positive cross-entropy (the paper writes
  it with a minus sign and "towards uniform"); this follows the code. The logit adjustment by
  ``log p~`` is the long-tail logit adjustment of Menon et al. (a one-liner).

:func:`legogcd_objective` composes ``SimGCDLoss + (1 - lambda) DKL + beta LER`` (the loss of the
paper's training step); :class:`OldAccuracyProbe` is an extra term that returns nothing and records
the Old / New accuracy on the unlabelled set at the start of every epoch, for the paper's
"forgetting" = peak Old over epochs minus final Old (:func:`forgetting`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = [
    "DualViewKL",
    "LocalEntropyRegularizer",
    "OldAccuracyProbe",
    "dual_view_kl",
    "ema_prior_update",
    "forgetting",
    "legogcd_objective",
    "local_entropy_regularizer",
]

_POSITIVE = [Interval(float, 0.0, math.inf, closed="neither")]
_NON_NEGATIVE = [Interval(float, 0.0, math.inf, closed="left")]
_FRACTION = [Interval(float, 0.0, 1.0, closed="both")]
_MOMENTUM = [Interval(float, 0.0, 1.0, closed="left")]
_COUNT = [Interval(int, 1, math.inf, closed="left")]


def _check_logits(logits: torch.Tensor, name: str = "logits", two_view: bool = True) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (2B, K)")
    if logits.ndim != 2:
        raise ValueError(f"{name} must have shape (2B, K) (two views stacked), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    if two_view and logits.shape[0] % 2:
        raise ValueError(f"{name} must stack two views of B images, (2B, K); got an odd {logits.shape[0]} rows")
    if logits.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes, got {logits.shape[1]}")
    check_finite(logits, name)


# --------------------------------------------------------------------------- DKL
def dual_view_kl(
    logits: torch.Tensor, mode: str = "official", student_temp: float = 0.1, detach_target: bool = False
) -> torch.Tensor:
    """The dual-views consistency term of LegoGCD on ``logits`` (2B, K), a scalar.

    ``p1 = softmax(s1 / student_temp)``, ``p2 = softmax(s2 / student_temp)`` of the two view chunks.

    * ``"official"`` (the released code): ``mean_i sum_k p1_ik (log_softmax(p1_i)_k -
      log_softmax(p2_i)_k) = mean_i [sum_k p1_ik (p1_ik - p2_ik) - LSE(p1_i) + LSE(p2_i)]``,
      a second softmax of the probabilities; 0 when the two views' logits are equal, at most ~2.
    * ``"kl"`` (the paper's Eq. 11): ``mean_i KL(p1_i || p2_i) >= 0``.

    ``detach_target`` stops the gradient through ``p2`` (the paper's pseudo-code; the code does not).
    """
    _check_logits(logits)
    validate_params(
        {"mode": [Options(("official", "kl"))], "student_temp": _POSITIVE},
        {"mode": mode, "student_temp": student_temp},
        owner="dual_view_kl",
    )
    s1, s2 = logits.chunk(2)
    if detach_target:
        s2 = s2.detach()
    if mode == "kl":
        log_p1 = F.log_softmax(s1 / student_temp, dim=1)
        log_p2 = F.log_softmax(s2 / student_temp, dim=1)
        return (log_p1.exp() * (log_p1 - log_p2)).sum(dim=1).mean()
    p1 = F.softmax(s1 / student_temp, dim=1)
    p2 = F.softmax(s2 / student_temp, dim=1)
    return (p1 * (F.log_softmax(p1, dim=1) - F.log_softmax(p2, dim=1))).sum(dim=1).mean()


class DualViewKL(nn.Module):
    """DKL as an extra term of :class:`~paperzoo.discovery.trainer.GCDObjective`: returns
    ``{"dkl": weight * dual_view_kl(batch.logits, ...)}``.

    Args:
        mode: ``"official"`` (the released double-softmax expression, default) or ``"kl"``.
        student_temp: ``tau_s`` (0.1).
        detach_target: stop the gradient through view 2 (the paper's pseudo-code; default False
            as the code).
        weight: the factor of the term; the code adds it to the distillation loss, which SimGCD
            weighs by ``1 - lambda = 0.65``.
    """

    def __init__(
        self, mode: str = "official", student_temp: float = 0.1, detach_target: bool = False, weight: float = 0.65
    ) -> None:
        validate_params(
            {"mode": [Options(("official", "kl"))], "student_temp": _POSITIVE, "weight": _NON_NEGATIVE},
            {"mode": mode, "student_temp": student_temp, "weight": weight},
            owner=type(self).__name__,
        )
        super().__init__()
        self.mode, self.student_temp = mode, float(student_temp)
        self.detach_target, self.weight = bool(detach_target), float(weight)

    def forward(self, batch: Any, epoch: int) -> dict[str, torch.Tensor]:
        return {"dkl": self.weight * dual_view_kl(batch.logits, self.mode, self.student_temp, self.detach_target)}


# --------------------------------------------------------------------------- LER
def local_entropy_regularizer(
    logits: torch.Tensor,
    labelled: torch.Tensor,
    n_old: int,
    prior: torch.Tensor | None = None,
    threshold: float = 0.7,
    select_temp: float = 0.1,
    sharpen_temp: float = 0.05,
    adjust_weight: float = 0.4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_LER`` of LegoGCD and the selection mask: ``(loss, o)``.

    Args:
        logits: (N, K) cosine logits, every row a view (N = 2B in training).
        labelled: (N,) bool, the view's image is labelled (SimGCD's ``mask_lab`` repeated for
            both views).
        n_old: ``K_old``: old classes are ``0..n_old-1``.
        prior: (K,) the class-prior estimate ``p~`` (default uniform).
        threshold: ``delta``, the confidence a view needs to be selected.
        select_temp: temperature of the confidence softmax (``tau_s`` = 0.1).
        sharpen_temp: ``tau_o`` (0.05) of the sharpened target and the adjusted prediction.
        adjust_weight: ``lambda_ler`` (0.4) of the logit adjustment ``+ lambda_ler log p~``.

    Returns:
        ``loss = (1/N) sum_i o_i H(softmax(s_i / tau_o), softmax(s_i / tau_o + lambda_ler log p~))``
        and ``o`` (N,) bool: unlabelled, ``max softmax(s_i / select_temp) >= threshold`` and
        ``argmax < n_old``. No ground truth is read.
    """
    _check_logits(logits, two_view=False)
    n, k = logits.shape
    validate_params(
        {
            "n_old": [Interval(int, 1, k - 1, closed="both")],
            "threshold": _FRACTION,
            "select_temp": _POSITIVE,
            "sharpen_temp": _POSITIVE,
            "adjust_weight": _NON_NEGATIVE,
        },
        {
            "n_old": n_old,
            "threshold": threshold,
            "select_temp": select_temp,
            "sharpen_temp": sharpen_temp,
            "adjust_weight": adjust_weight,
        },
        owner="local_entropy_regularizer",
    )
    if not isinstance(labelled, torch.Tensor) or labelled.dtype != torch.bool:
        raise TypeError("labelled must be a bool torch.Tensor of shape (N,)")
    if labelled.shape != (n,):
        raise ValueError(f"labelled must have shape ({n},) (one flag per view), got {tuple(labelled.shape)}")
    if prior is None:
        log_prior = logits.new_full((k,), -math.log(k))
    else:
        if not isinstance(prior, torch.Tensor) or prior.shape != (k,):
            raise ValueError(f"prior must be a tensor of shape ({k},), got {getattr(prior, 'shape', type(prior))}")
        check_finite(prior, "prior")
        if bool((prior <= 0).any()):
            raise ValueError("prior must be strictly positive (a class-prior estimate)")
        log_prior = prior.to(logits).log()
    with torch.no_grad():  # max softmax(s / T) = exp(max s / T - LSE(s / T)), without the softmax
        scaled = logits / select_temp
        top, pred = scaled.max(dim=1)
        conf = (top - torch.logsumexp(scaled, dim=1)).exp()
        selected = ~labelled & (conf >= threshold) & (pred < n_old)
    # only the selected rows enter the loss (the others have weight 0): compute on those alone
    sharp = logits[selected] / sharpen_temp
    r = F.softmax(sharp, dim=1)
    log_q = F.log_softmax(sharp + adjust_weight * log_prior, dim=1)
    return -(r * log_q).sum() / n, selected


def ema_prior_update(prior: torch.Tensor, logits: torch.Tensor, momentum: float = 0.999) -> torch.Tensor:
    """``momentum * prior + (1 - momentum) * mean_i softmax(logits_i)`` (temperature 1, detached):
    the official ``p~`` update; stays a probability vector."""
    validate_params({"momentum": _MOMENTUM}, {"momentum": momentum}, owner="ema_prior_update")
    _check_logits(logits, two_view=False)
    return momentum * prior + (1 - momentum) * F.softmax(logits.detach(), dim=1).mean(dim=0).to(prior)


class LocalEntropyRegularizer(nn.Module):
    """LER as an extra term of :class:`~paperzoo.discovery.trainer.GCDObjective`, holding the
    ``p~`` buffer: ``forward(batch, epoch) -> {"ler": weight * L_LER}``, then (in training mode)
    updates ``p~`` with the step's logits, as the official step does (loss first, then the EMA).

    Args:
        num_classes: K, the size of ``p~`` (initialised to ``1 / K``).
        n_old: ``K_old``; ``None`` infers it as 1 + the largest label of a labelled image seen so
            far (old classes come first), for callers that only know K (``paperzoo compare``).
        threshold: ``delta`` (0.7; the released scripts use 0.7-0.95 per data set).
        select_temp, sharpen_temp, adjust_weight: 0.1, ``tau_o`` = 0.05, ``lambda_ler`` = 0.4.
        ema_momentum: 0.999.
        weight: ``beta`` (2, the code's hard-coded factor).

    :attr:`last_selection_mask` (2B,) holds the last step's selected views (the paper's count of
    "potential known samples").
    """

    prior: torch.Tensor
    seen_old: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        n_old: int | None = None,
        threshold: float = 0.7,
        select_temp: float = 0.1,
        sharpen_temp: float = 0.05,
        adjust_weight: float = 0.4,
        ema_momentum: float = 0.999,
        weight: float = 2.0,
    ) -> None:
        validate_params(
            {
                "num_classes": [Interval(int, 2, math.inf, closed="left")],
                "threshold": _FRACTION,
                "select_temp": _POSITIVE,
                "sharpen_temp": _POSITIVE,
                "adjust_weight": _NON_NEGATIVE,
                "ema_momentum": _MOMENTUM,
                "weight": _NON_NEGATIVE,
            },
            {
                "num_classes": num_classes,
                "threshold": threshold,
                "select_temp": select_temp,
                "sharpen_temp": sharpen_temp,
                "adjust_weight": adjust_weight,
                "ema_momentum": ema_momentum,
                "weight": weight,
            },
            owner=type(self).__name__,
        )
        if n_old is not None:
            validate_params(
                {"n_old": [Interval(int, 1, num_classes - 1, closed="both")]},
                {"n_old": n_old},
                owner=type(self).__name__,
            )
        super().__init__()
        self.num_classes, self.n_old = int(num_classes), None if n_old is None else int(n_old)
        self.threshold, self.select_temp, self.sharpen_temp = float(threshold), float(select_temp), float(sharpen_temp)
        self.adjust_weight, self.ema_momentum, self.weight = float(adjust_weight), float(ema_momentum), float(weight)
        self.register_buffer("prior", torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64))
        self.register_buffer("seen_old", torch.zeros((), dtype=torch.int64))
        self.last_selection_mask: torch.Tensor | None = None

    def current_n_old(self, labels: torch.Tensor | None = None, mask_lab: torch.Tensor | None = None) -> int:
        """``n_old``, or (inferred) 1 + the largest labelled label seen, updated from ``labels[mask_lab]``."""
        if self.n_old is not None:
            return self.n_old
        if labels is not None and mask_lab is not None and bool(mask_lab.any()):
            top = int(labels[mask_lab].max()) + 1
            if top >= self.num_classes:
                raise ValueError(f"labels of labelled images must be < num_classes = {self.num_classes}, got {top - 1}")
            self.seen_old.fill_(max(int(self.seen_old), top))
        return int(self.seen_old)

    def loss(self, logits: torch.Tensor, labelled: torch.Tensor, n_old: int | None = None) -> torch.Tensor:
        """Unweighted ``L_LER`` of ``logits`` (2B, K) with the current ``p~``; no update."""
        if logits.ndim == 2 and logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must have num_classes = {self.num_classes} columns, got {logits.shape[1]}")
        k_old = self.current_n_old() if n_old is None else n_old
        if k_old == 0:  # nothing known yet to be old: no view can be selected
            _check_logits(logits, two_view=False)
            self.last_selection_mask = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
            return logits.sum() * 0.0
        value, selected = local_entropy_regularizer(
            logits, labelled, k_old, self.prior, self.threshold, self.select_temp, self.sharpen_temp, self.adjust_weight
        )
        self.last_selection_mask = selected
        return value

    @torch.no_grad()
    def update_prior(self, logits: torch.Tensor) -> None:
        """``p~ <- m p~ + (1 - m) mean_i softmax(logits_i)`` (temperature 1, all views)."""
        self.prior.copy_(ema_prior_update(self.prior, logits, self.ema_momentum))

    def forward(self, batch: Any, epoch: int) -> dict[str, torch.Tensor]:
        mask_lab = batch.mask_lab
        if not isinstance(mask_lab, torch.Tensor) or mask_lab.dtype != torch.bool:
            raise TypeError("mask_lab must be a bool torch.Tensor of shape (B,)")
        _check_logits(batch.logits)
        if mask_lab.shape != (batch.logits.shape[0] // 2,):
            raise ValueError(
                f"mask_lab must have shape ({batch.logits.shape[0] // 2},) (one flag per image), got "
                f"{tuple(mask_lab.shape)}"
            )
        n_old = self.current_n_old(batch.labels, mask_lab)
        value = self.loss(batch.logits, mask_lab.repeat(2), n_old)
        if self.training:
            self.update_prior(batch.logits)
        return {"ler": self.weight * value}


# --------------------------------------------------------------------------- the objective
def legogcd_objective(
    num_classes: int,
    n_old: int | None = None,
    teacher_temp: Sequence[float] = (0.07, 0.04, 30),
    lambda_sup: float = 0.35,
    memax_weight: float = 2.0,
    beta: float = 2.0,
    threshold: float = 0.7,
    dkl: bool = True,
    dkl_mode: str = "official",
    student_temp: float = 0.1,
) -> nn.Module:
    """The LegoGCD objective: a :class:`~paperzoo.discovery.trainer.GCDObjective` of
    ``SimGCDLoss(lambda_sup, memax_weight, student_temp, teacher_temp)`` with the extra terms
    ``(1 - lambda_sup) DualViewKL(dkl_mode)`` (if ``dkl``) and ``beta LocalEntropyRegularizer``
    (if ``beta > 0``). With ``beta = 0`` and ``dkl=False`` it is SimGCD exactly.
    A ``paperzoo compare --task gcd`` factory (``num_classes`` and ``teacher_temp`` come from the task).
    """
    from paperzoo.discovery.losses import SimGCDLoss
    from paperzoo.discovery.trainer import GCDObjective

    validate_params(
        {"beta": _NON_NEGATIVE, "lambda_sup": _FRACTION},
        {"beta": beta, "lambda_sup": lambda_sup},
        owner="legogcd_objective",
    )
    base = SimGCDLoss(
        lambda_sup=lambda_sup, memax_weight=memax_weight, student_temp=student_temp, teacher_temp=teacher_temp
    )
    terms: list[nn.Module] = []
    if dkl:
        terms.append(DualViewKL(dkl_mode, student_temp, detach_target=dkl_mode == "kl", weight=1 - lambda_sup))
    if beta > 0:
        terms.append(LocalEntropyRegularizer(num_classes, n_old, threshold, select_temp=student_temp, weight=beta))
    return GCDObjective(base, terms)


# --------------------------------------------------------------------------- forgetting
class OldAccuracyProbe(nn.Module):
    """An extra term that adds nothing: at the first step of every epoch it evaluates ``model``
    (``argmax`` of its cosine logits, eval mode, no gradient, then back to train mode) on the
    unlabelled inputs and appends the ``cluster_accuracy`` All / Old / New to :attr:`curve`,
    i.e. the accuracy after the previous epoch. Add the final model's accuracy after training
    (:meth:`record`). It draws no random numbers, so training is unchanged by it.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: np.ndarray, old_mask: np.ndarray) -> None:
        super().__init__()
        self._model = [model]  # not a submodule: the objective must not own the model's parameters
        self.x, self.y, self.old_mask = x, np.asarray(y), np.asarray(old_mask)
        self.curve: list[dict[str, float]] = []
        self._epoch = -1

    def record(self) -> dict[str, float]:
        from paperzoo.discovery.trainer import predict
        from paperzoo.metrics import cluster_accuracy

        model = self._model[0]
        was_training = model.training
        acc = cluster_accuracy(self.y, predict(model, self.x).numpy(), self.old_mask)
        model.train(was_training)
        self.curve.append({"All": acc["all"], "Old": acc["old"], "New": acc["new"]})
        return self.curve[-1]

    def forward(self, batch: Any, epoch: int) -> Mapping[str, torch.Tensor]:
        if epoch != self._epoch:
            self._epoch = epoch
            if epoch > 0:
                self.record()
        return {}


def forgetting(old_curve: Sequence[float]) -> float:
    """The paper's forgetting: ``max_epoch Old - final Old`` (>= 0) of a per-epoch Old-accuracy curve."""
    if len(old_curve) == 0:
        raise ValueError("old_curve is empty: forgetting needs at least one epoch's Old accuracy")
    values = np.asarray(old_curve, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("old_curve must be finite")
    return float(values.max() - values[-1])
