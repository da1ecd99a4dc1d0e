"""The SimGCD loss terms (Wen, Zhao & Qi, ICCV 2023), each a pure function of tensors plus a small
module, and :class:`SimGCDLoss`, which combines them and returns every term by name.

Two-view layout (as the official ``train.py``): a batch of B images in two views is stacked
``[view 1 of all B; view 2 of all B]``, so ``logits`` is (2B, K) and ``z`` (2B, D), while
``labels`` (B,) and ``mask_lab`` (B,) describe the B images (``labels`` of unlabelled images are
never read). With ``s`` the cosine logits, ``tau_s`` the student temperature and ``tau_t(e)`` the
teacher temperature of epoch ``e``:

* supervised classification ``L_cls^s``: cross-entropy of ``s / tau_s`` on the 2|B_l| labelled views;
* cross-view self-distillation ``L_cls^u``: the teacher ``q = softmax(stopgrad(s) / tau_t(e))`` of one
  view is the target of the student ``log_softmax(s / tau_s)`` of the other view, averaged over both
  directions (no EMA teacher, no centering);
* mean-entropy regulariser ("me-max") ``L_ent = log K - H(mean_i softmax(s_i / tau_s)) >= 0``;
* unsupervised contrastive ``L_rep^u``: InfoNCE over the normalised projections, positive = the
  other view, temperature 1.0 (the official code's value; the paper's text lists 0.07);
* supervised contrastive ``L_rep^s``: SupCon (Khosla et al., "all" mode) over both views of the
  labelled images, temperature 0.07;
* total ``(1 - lam) (L_cls^u + eps L_ent) + lam L_cls^s + (1 - lam) L_rep^u + lam L_rep^s``.

The two contrastive terms are thin wrappers over pytorch-metric-learning's ``SupConLoss``, which
reproduces the official formulas exactly (with image ids as labels it is ``NTXentLoss``'s InfoNCE,
without ``NTXentLoss``'s cubic pair tensor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = [
    "TERMS",
    "CrossViewSelfDistillationLoss",
    "MeanEntropyRegularizer",
    "SimGCDLoss",
    "SupervisedContrastiveLoss",
    "UnsupervisedContrastiveLoss",
    "cross_view_self_distillation",
    "linear_warmup_schedule",
    "mean_entropy_regularizer",
    "supervised_classification",
    "supervised_contrastive",
    "teacher_temperature",
    "unsupervised_contrastive",
]

#: Names of the five SimGCD terms in the dict :class:`SimGCDLoss` returns (plus ``"total"``).
TERMS = ("cls_sup", "cls_unsup", "me_max", "rep_unsup", "rep_sup")

_POSITIVE = [Interval(float, 0.0, math.inf, closed="neither")]
_FRACTION = [Interval(float, 0.0, 1.0, closed="both")]
_NON_NEGATIVE = [Interval(float, 0.0, math.inf, closed="left")]


# --------------------------------------------------------------------------- checks
def _check_two_view(t: torch.Tensor, name: str) -> int:
    """``t`` is a finite float (2B, D) tensor with B >= 1; returns B."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (2B, D)")
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (2B, D) (two views stacked), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    if t.shape[0] % 2:
        raise ValueError(f"{name} must stack two views of B images, (2B, D); got an odd {t.shape[0]} rows")
    check_finite(t, name)
    return t.shape[0] // 2


def _check_labelled(labels: torch.Tensor, mask_lab: torch.Tensor, b: int, n_classes: int | None) -> None:
    if not isinstance(mask_lab, torch.Tensor) or mask_lab.dtype != torch.bool:
        raise TypeError("mask_lab must be a bool torch.Tensor of shape (B,)")
    if mask_lab.shape != (b,):
        raise ValueError(f"mask_lab must have shape ({b},) (one flag per image), got {tuple(mask_lab.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError("labels must be an integer torch.Tensor of shape (B,)")
    if labels.shape != (b,):
        raise ValueError(f"labels must have shape ({b},) (one per image), got {tuple(labels.shape)}")
    lab = labels[mask_lab]
    if lab.numel() and (int(lab.min()) < 0 or (n_classes is not None and int(lab.max()) >= n_classes)):
        bound = f"[0, {n_classes})" if n_classes is not None else "[0, inf)"
        raise ValueError(
            f"labels of labelled images must lie in {bound}, got values in [{int(lab.min())}, {int(lab.max())}]"
        )


# --------------------------------------------------------------------------- teacher schedule
def teacher_temperature(epoch: int, start: float = 0.07, end: float = 0.04, warmup_epochs: int = 30) -> float:
    """The teacher temperature of ``epoch``: ``np.linspace(start, end, warmup_epochs)[epoch]`` during
    the warm-up, ``end`` afterwards (the official ``DistillLoss`` schedule; linear, not cosine).

    >>> round(teacher_temperature(10), 7), teacher_temperature(29), teacher_temperature(30)
    (0.0596552, 0.04, 0.04)
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    validate_params(
        {"start": _POSITIVE, "end": _POSITIVE, "warmup_epochs": [Interval(int, 1, math.inf, closed="left")]},
        {"start": start, "end": end, "warmup_epochs": warmup_epochs},
        owner="teacher_temperature",
    )
    if epoch >= warmup_epochs:
        return float(end)
    if warmup_epochs == 1:
        return float(start)
    return float(start + (end - start) * epoch / (warmup_epochs - 1))


def linear_warmup_schedule(
    start: float = 0.07, end: float = 0.04, warmup_epochs: int = 30, n_epochs: int = 200
) -> np.ndarray:
    """Per-epoch teacher temperatures (n_epochs,): ``concat(linspace(start, end, warmup_epochs),
    full(n_epochs - warmup_epochs, end))`` as in the official code."""
    validate_params(
        {"n_epochs": [Interval(int, 1, math.inf, closed="left")]},
        {"n_epochs": n_epochs},
        owner="linear_warmup_schedule",
    )
    return np.array([teacher_temperature(e, start, end, warmup_epochs) for e in range(n_epochs)])


# --------------------------------------------------------------------------- classification terms
def supervised_classification(
    logits: torch.Tensor, labels: torch.Tensor, mask_lab: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """``L_cls^s``: mean cross-entropy of ``logits / temperature`` over both views of the labelled
    images (0, still in the graph, when the batch holds no labelled image)."""
    b = _check_two_view(logits, "logits")
    _check_labelled(labels, mask_lab, b, logits.shape[1])
    validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner="supervised_classification")
    mask2 = mask_lab.repeat(2)
    if not bool(mask2.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask2] / temperature, labels.repeat(2)[mask2])


def cross_view_self_distillation(
    logits: torch.Tensor,
    teacher_temp: float,
    student_temp: float = 0.1,
    teacher_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_cls^u``: ``mean_i H(q_i^(v), p_i^(3-v))`` over the 2B views, teacher ``q`` of one view
    against student ``p`` of the other.

    ``q = softmax(stopgrad(teacher_logits) / teacher_temp)`` (``teacher_logits`` defaults to
    ``logits``: the same network on the other view, detached), ``log p = log_softmax(logits /
    student_temp)``. Swapping the two view chunks leaves it unchanged.
    """
    _check_two_view(logits, "logits")
    validate_params(
        {"teacher_temp": _POSITIVE, "student_temp": _POSITIVE},
        {"teacher_temp": teacher_temp, "student_temp": student_temp},
        owner="cross_view_self_distillation",
    )
    teacher = logits if teacher_logits is None else teacher_logits
    if teacher.shape != logits.shape:
        raise ValueError(
            f"teacher_logits must have the shape of logits {tuple(logits.shape)}, got {tuple(teacher.shape)}"
        )
    q = F.softmax(teacher.detach() / teacher_temp, dim=1)
    q_other = torch.cat(q.chunk(2)[::-1])  # row i of view 1 <- the teacher of view 2, and back
    return -(q_other * F.log_softmax(logits / student_temp, dim=1)).sum(dim=1).mean()


def mean_entropy_regularizer(logits: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """``L_ent = sum_k pbar_k log pbar_k + log K = log K - H(pbar) >= 0`` with ``pbar`` the mean of
    ``softmax(logits / temperature)`` over the rows (all views); 0 iff ``pbar`` is uniform.

    >>> float(mean_entropy_regularizer(torch.zeros(4, 3)))
    0.0
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        raise TypeError("logits must be a floating-point torch.Tensor of shape (N, K)")
    if logits.shape[0] == 0:
        raise ValueError("empty batch: logits has 0 rows")
    check_finite(logits, "logits")
    validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner="mean_entropy_regularizer")
    p_bar = F.softmax(logits / temperature, dim=1).mean(dim=0)
    return torch.xlogy(p_bar, p_bar).sum() + math.log(logits.shape[1])


# --------------------------------------------------------------------------- contrastive terms
def unsupervised_contrastive(z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``L_rep^u``: InfoNCE over the L2-normalised projections ``z`` (2B, D); the positive of view
    ``i`` is the other view of the same image, the negatives the other 2B - 2 views.

    Equal to the official ``info_nce_logits`` + cross-entropy and to
    ``pytorch_metric_learning.losses.NTXentLoss(temperature)(normalize(z), cat([arange(B),
    arange(B)]))``. Computed as a thin wrapper over PML's ``SupConLoss(temperature)`` with the
    image ids as labels, which is the same formula in this layout (one positive per anchor, the
    denominator over all other views) and avoids ``NTXentLoss``'s (P x negative-pairs) tensor,
    O(B^3): ~100x faster at B = 128.
    """
    return UnsupervisedContrastiveLoss(temperature)(z)


def supervised_contrastive(
    z: torch.Tensor, labels: torch.Tensor, mask_lab: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """``L_rep^s``: SupCon over both views of the labelled images (positives: every other
    labelled view of the same class, its own other view included); 0 (in the graph) without
    labelled images.

    A thin wrapper: ``pytorch_metric_learning.losses.SupConLoss(temperature)`` on
    ``cat([normalize(z_view1[mask]), normalize(z_view2[mask])])`` with labels
    ``cat([y[mask], y[mask]])``, equal to the official ``SupConLoss`` (base temperature = temperature).
    """
    return SupervisedContrastiveLoss(temperature)(z, labels, mask_lab)


class UnsupervisedContrastiveLoss(nn.Module):
    """Module form of :func:`unsupervised_contrastive` (holds the PML loss object)."""

    def __init__(self, temperature: float = 1.0) -> None:
        validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner=type(self).__name__)
        super().__init__()
        from pytorch_metric_learning.losses import SupConLoss

        self.temperature = float(temperature)
        self.loss = SupConLoss(temperature=self.temperature)  # == NTXentLoss with image-id labels, see above

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b = _check_two_view(z, "z")
        ids = torch.arange(b, device=z.device).repeat(2)
        return self.loss(F.normalize(z, dim=1), ids)


class SupervisedContrastiveLoss(nn.Module):
    """Module form of :func:`supervised_contrastive` (holds the PML loss object)."""

    def __init__(self, temperature: float = 0.07) -> None:
        validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner=type(self).__name__)
        super().__init__()
        from pytorch_metric_learning.losses import SupConLoss

        self.temperature = float(temperature)
        self.loss = SupConLoss(temperature=self.temperature)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, mask_lab: torch.Tensor) -> torch.Tensor:
        b = _check_two_view(z, "z")
        _check_labelled(labels, mask_lab, b, None)
        if not bool(mask_lab.any()):
            return z.sum() * 0.0
        z1, z2 = F.normalize(z, dim=1).chunk(2)
        y = labels[mask_lab]
        return self.loss(torch.cat([z1[mask_lab], z2[mask_lab]]), torch.cat([y, y]))


# --------------------------------------------------------------------------- modules
class CrossViewSelfDistillationLoss(nn.Module):
    """Module form of :func:`cross_view_self_distillation` with the teacher-temperature schedule
    (:func:`teacher_temperature`): ``forward(logits, epoch)``.

    Args:
        student_temp: ``tau_s`` (0.1).
        teacher_temp: ``(start, end, warmup_epochs)`` of the linear warm-up (0.07 -> 0.04 over 30).
    """

    def __init__(self, student_temp: float = 0.1, teacher_temp: Sequence[float] = (0.07, 0.04, 30)) -> None:
        super().__init__()
        start, end, warmup = _schedule(teacher_temp)
        validate_params({"student_temp": _POSITIVE}, {"student_temp": student_temp}, owner=type(self).__name__)
        self.student_temp = float(student_temp)
        self.teacher_temp = (start, end, warmup)

    def forward(self, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return cross_view_self_distillation(logits, teacher_temperature(epoch, *self.teacher_temp), self.student_temp)


class MeanEntropyRegularizer(nn.Module):
    """Module form of :func:`mean_entropy_regularizer` (``temperature`` = ``tau_s`` = 0.1)."""

    def __init__(self, temperature: float = 0.1) -> None:
        validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner=type(self).__name__)
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return mean_entropy_regularizer(logits, self.temperature)


def _schedule(teacher_temp: Sequence[float]) -> tuple[float, float, int]:
    if len(teacher_temp) != 3:
        raise ValueError(f"teacher_temp must be (start, end, warmup_epochs), got {teacher_temp!r}")
    start, end, warmup = teacher_temp
    validate_params(
        {"start": _POSITIVE, "end": _POSITIVE, "warmup_epochs": [Interval(int, 1, math.inf, closed="left")]},
        {"start": start, "end": end, "warmup_epochs": warmup},
        owner="teacher_temp",
    )
    return float(start), float(end), int(warmup)


class SimGCDLoss(nn.Module):
    """The SimGCD objective: ``forward(z, logits, labels, mask_lab, epoch) -> dict`` with the five
    terms (:data:`TERMS`, unweighted) and ``"total"``.

    ``total = (1 - lambda_sup) (cls_unsup + memax_weight me_max) + lambda_sup cls_sup
    + (1 - lambda_sup) rep_unsup + lambda_sup rep_sup``.

    Args:
        lambda_sup: ``lambda``, the weight of the supervised terms (0.35).
        memax_weight: ``epsilon``, the weight of the mean-entropy regulariser (official scripts
            use 1-4 per data set; default 2, the argparse default).
        student_temp: ``tau_s`` of the classifier (0.1), also used by the cross-entropy and
            the regulariser.
        teacher_temp: ``(start, end, warmup_epochs)`` of the teacher temperature.
        tau_unsup: InfoNCE temperature (1.0, the official code's value).
        tau_sup: SupCon temperature (0.07).
    """

    def __init__(
        self,
        lambda_sup: float = 0.35,
        memax_weight: float = 2.0,
        student_temp: float = 0.1,
        teacher_temp: Sequence[float] = (0.07, 0.04, 30),
        tau_unsup: float = 1.0,
        tau_sup: float = 0.07,
    ) -> None:
        validate_params(
            {"lambda_sup": _FRACTION, "memax_weight": _NON_NEGATIVE, "student_temp": _POSITIVE},
            {"lambda_sup": lambda_sup, "memax_weight": memax_weight, "student_temp": student_temp},
            owner=type(self).__name__,
        )
        super().__init__()
        self.lambda_sup = float(lambda_sup)
        self.memax_weight = float(memax_weight)
        self.student_temp = float(student_temp)
        self.distill = CrossViewSelfDistillationLoss(student_temp, teacher_temp)
        self.me_max = MeanEntropyRegularizer(student_temp)
        self.rep_unsup = UnsupervisedContrastiveLoss(tau_unsup)
        self.rep_sup = SupervisedContrastiveLoss(tau_sup)

    def forward(
        self, z: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, mask_lab: torch.Tensor, epoch: int
    ) -> dict[str, torch.Tensor]:
        b = _check_two_view(logits, "logits")
        if _check_two_view(z, "z") != b:
            raise ValueError(f"z and logits must have the same number of rows, got {z.shape[0]} and {logits.shape[0]}")
        terms = {
            "cls_sup": supervised_classification(logits, labels, mask_lab, self.student_temp),
            "cls_unsup": self.distill(logits, epoch),
            "me_max": self.me_max(logits),
            "rep_unsup": self.rep_unsup(z),
            "rep_sup": self.rep_sup(z, labels, mask_lab),
        }
        lam = self.lambda_sup
        terms["total"] = (
            (1 - lam) * (terms["cls_unsup"] + self.memax_weight * terms["me_max"])
            + lam * terms["cls_sup"]
            + (1 - lam) * terms["rep_unsup"]
            + lam * terms["rep_sup"]
        )
        return terms
