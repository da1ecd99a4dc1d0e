"""FedLabel: selective knowledge assimilation between a client's local model and the global
model for semi-supervised federated learning (Cho, Joshi & Dimitriadis, "Local or Global:
Selective Knowledge Assimilation for Federated Learning with Limited Labels", ICCV 2023).

Each client holds a few labelled and many unlabelled samples. Per unlabelled sample the client
pseudo-labels with whichever of two models is "more of an expert" on it: its *local* model
(kept on the client, never communicated) or the *global* model it just received. A
global-local consistency term makes the two models' outputs agree, but only on samples whose
two pseudo-labels coincide. Communication is FedAvg's: only the trained global copy goes back.

Only the paper's abstract was available when this was written and no official code exists, so
the concrete algorithm below is a reading of it; every choice the abstract leaves open is an
option (defaults in brackets)::

    p_g = softmax(f(weak(u); w))        frozen received global model (the teacher)
    p_l = softmax(f(weak(u); theta))    the client's local model
    expert = local if score(p_l) > score(p_g) else global      [score: max probability]
    y_hat = argmax p_expert,  mask = 1[max p_expert >= tau],  agree = 1[argmax p_l = argmax p_g]
    L_student = CE(f(x; w_k), y) + lambda_u mean_u(mask * CE(f(strong(u); w_k), y_hat))
                + lambda_c mean_u(agree * D(sg p_l || p_{w_k}))          [D: KL]
    L_local   = CE(f(x; theta), y) + lambda_c mean_u(agree * D(sg p_{w_k} || p_theta))

(weak / strong augmentation FixMatch-style; ``sg`` = stop-gradient, so the two models distil
into each other on agreeing samples and the student never back-propagates into the teacher or
the local model). The local model persists across rounds and learns from the labelled data
only [``local_model="persistent_labelled"``]; ``"persistent_pl"`` also trains it on the
selected pseudo-labels and ``"finetune"`` re-initialises it from the global model every round
and fine-tunes it on the labelled data before it serves as a frozen teacher. The server is
plain FedAvg weighted by the client's number of samples (labelled + unlabelled).

The pure-torch parts (:func:`select_pseudo_labels`, :func:`consistency_divergence`,
:class:`FedLabelLoss`, the augmentations and :func:`fedlabel_local_update`, which drives
:func:`paperzoo.engine.fit`) are plain PyTorch; :func:`fedlabel_apps` (a ``ClientApp`` and a
``ServerApp`` running :class:`FedLabelStrategy`, a subclass of Flower's FedAvg) puts them on
Flower's Message API, the local model living in the client's ``context.state``. Run the apps with
:func:`paperzoo.federated.flower.run_federation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params
from paperzoo.federated.baselines import (
    FederatedData,
    FederatedHistory,
    client_seed,
    evaluate_accuracy,
    node_counts,
    serve,
)
from paperzoo.federated.flower import arrays_of, load_arrays, load_state, partition_id, save_state

__all__ = [
    "EXPERTISE",
    "LOCAL_MODELS",
    "MODES",
    "LOCAL_STATE_KEY",
    "FedLabelConfig",
    "FedLabelLoss",
    "FedLabelStrategy",
    "FedLabelTerms",
    "PseudoLabels",
    "consistency_divergence",
    "fedlabel_apps",
    "fedlabel_local_update",
    "labelled_unlabelled_split",
    "select_pseudo_labels",
    "strong_augment",
    "translate",
    "weak_augment",
]

EXPERTISE = ("confidence", "entropy", "global", "local")
"""How the expert is chosen per sample: the more confident model (largest max-probability), the
one with the lower entropy, or always the global / the local model (the single-teacher baselines)."""
DIVERGENCES = ("kl", "js", "mse")
CONSISTENCY_ON = ("agree", "agree_and_confident")
LOCAL_MODELS = ("persistent_labelled", "persistent_pl", "finetune")

#: The baselines of one local-update function, as (expertise, lambda_u, lambda_c):
#: labelled cross-entropy only; FixMatch pseudo-labels from the frozen global model only; from the
#: local model only; FedLabel (selection + consistency); FedLabel without the consistency term.
MODES: dict[str, tuple[str, float, float]] = {
    "supervised": ("global", 0.0, 0.0),
    "pl_global": ("global", 1.0, 0.0),
    "pl_local": ("local", 1.0, 0.0),
    "fedlabel": ("confidence", 1.0, 1.0),
    "fedlabel_noconsistency": ("confidence", 1.0, 0.0),
}

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "tau": [Interval(float, 0, math.inf, closed="left")],
    "expertise": [Options(EXPERTISE)],
    "divergence": [Options(DIVERGENCES)],
    "lambda_u": [Interval(float, 0, math.inf, closed="left")],
    "lambda_c": [Interval(float, 0, math.inf, closed="left")],
    "consistency_on": [Options(CONSISTENCY_ON)],
    "fraction": [Interval(float, 0, 1, closed="both")],
    "max_shift": [Interval(int, 0, math.inf, closed="left")],
}


# --------------------------------------------------------------------------- input checks
def _check_probs(p: torch.Tensor, name: str) -> None:
    """``p`` is a float (B, C) matrix of probability rows (entries in [0, 1], rows summing to 1)."""
    if not isinstance(p, torch.Tensor) or not p.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, C)")
    if p.dim() != 2:
        raise ValueError(f"{name} must have shape (B, C), got {tuple(p.shape)}")
    if p.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    check_finite(p, name)
    lo, hi = torch.aminmax(p.detach())
    if float(lo) < 0 or float(hi) > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{float(lo):.3g}, {float(hi):.3g}]")
    err = float((p.detach().sum(1) - 1).abs().max())
    if err > 1e-3:
        raise ValueError(f"{name} rows must sum to 1 (probabilities; apply softmax to logits), off by {err:.3g}")


def _check_logits(logits: torch.Tensor, name: str, n: int | None = None, c: int | None = None) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, C)")
    if logits.dim() != 2:
        raise ValueError(f"{name} must have shape (B, C), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    if (n is not None and logits.shape[0] != n) or (c is not None and logits.shape[1] != c):
        want = f"({n if n is not None else 'B'}, {c if c is not None else 'C'})"
        raise ValueError(f"{name} must have shape {want}, got {tuple(logits.shape)}")
    check_finite(logits, name)


# --------------------------------------------------------------------------- selection
class PseudoLabels(NamedTuple):
    """The outcome of :func:`select_pseudo_labels` for a batch of B unlabelled samples."""

    y_hat: torch.Tensor  #: (B,) int64, the expert's argmax
    mask: torch.Tensor  #: (B,) bool, the expert's confidence >= tau
    use_local: torch.Tensor  #: (B,) bool, the local model was the expert
    agree: torch.Tensor  #: (B,) bool, the two models' argmax coincide
    confidence: torch.Tensor  #: (B,) the expert's max probability


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(1)


def select_pseudo_labels(
    p_local: torch.Tensor, p_global: torch.Tensor, tau: float = 0.95, expertise: str = "confidence"
) -> PseudoLabels:
    """Per-sample choice of the pseudo-label source between the local and the global model.

    Args:
        p_local, p_global: (B, C) class probabilities of the local and of the global model on the
            same (weakly augmented) unlabelled samples.
        tau: confidence threshold; a pseudo-label counts when the expert's max probability is
            ``>= tau`` (``tau = 0`` keeps all, ``tau > 1`` none).
        expertise: ``"confidence"`` (the larger max-probability wins), ``"entropy"`` (the lower
            entropy wins), or ``"global"`` / ``"local"`` (always that model). Ties go to the
            global model.

    Returns:
        :class:`PseudoLabels` ``(y_hat, mask, use_local, agree, confidence)``.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"tau": tau, "expertise": expertise}, owner="select_pseudo_labels")
    _check_probs(p_local, "p_local")
    _check_probs(p_global, "p_global")
    if p_local.shape != p_global.shape:
        raise ValueError(f"p_global must have the shape of p_local {tuple(p_local.shape)}, got {tuple(p_global.shape)}")
    with torch.no_grad():
        c_l, y_l = p_local.max(1)
        c_g, y_g = p_global.max(1)
        if expertise == "confidence":
            use_local = c_l > c_g
        elif expertise == "entropy":
            use_local = _entropy(p_local) < _entropy(p_global)
        else:
            use_local = torch.full_like(y_l, expertise == "local", dtype=torch.bool)
        y_hat = torch.where(use_local, y_l, y_g)
        confidence = torch.where(use_local, c_l, c_g)
        return PseudoLabels(y_hat, confidence >= tau, use_local, y_l == y_g, confidence)


# --------------------------------------------------------------------------- losses
def consistency_divergence(p_target: torch.Tensor, logits: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """Per-sample divergence ``D(sg p_target || softmax(logits))``, shape (B,).

    ``p_target`` is detached (a stop-gradient: the gradient reaches ``logits`` only).
    ``"kl"``: ``sum_c p_t (log p_t - log p)``; ``"js"``: Jensen-Shannon between the two;
    ``"mse"``: ``sum_c (p_t - p)^2``.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"divergence": divergence}, owner="consistency_divergence")
    _check_probs(p_target, "p_target")
    _check_logits(logits, "logits", *p_target.shape)
    return _divergence(p_target.detach(), logits, divergence)


def _divergence(p_t: torch.Tensor, logits: torch.Tensor, divergence: str) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=1)
    if divergence == "kl":
        return (torch.special.xlogy(p_t, p_t) - p_t * log_p).sum(1)
    p = log_p.exp()
    if divergence == "mse":
        return (p_t - p).square().sum(1)
    log_m = ((p_t + p) / 2).clamp_min(torch.finfo(p.dtype).tiny).log()
    kl_t = (torch.special.xlogy(p_t, p_t) - p_t * log_m).sum(1)
    kl_s = (p * (log_p - log_m)).sum(1)
    return (kl_t + kl_s) / 2


def _divergence_log(lp_t: torch.Tensor, lp: torch.Tensor, divergence: str) -> torch.Tensor:
    """:func:`_divergence` from log-probabilities of both sides (finite: log-softmax outputs)."""
    p_t, p = lp_t.exp(), lp.exp()
    if divergence == "kl":
        return (p_t * (lp_t - lp)).sum(1)
    if divergence == "mse":
        return (p_t - p).square().sum(1)
    log_m = ((p_t + p) / 2).log()
    return ((p_t * (lp_t - log_m)).sum(1) + (p * (lp - log_m)).sum(1)) / 2


class FedLabelTerms(NamedTuple):
    """The losses of one FedLabel step (scalars)."""

    student: torch.Tensor  #: what the trainable global copy minimises
    local: torch.Tensor  #: what the local model minimises (0 when no local logits were given)
    supervised: torch.Tensor  #: the student's labelled cross-entropy
    pseudo: torch.Tensor  #: the student's masked pseudo-label cross-entropy (before lambda_u)
    consistency: torch.Tensor  #: the student's consistency term (before lambda_c)


class FedLabelLoss(nn.Module):
    """The client objective of FedLabel for the student (the trainable global copy) and the
    local model.

    Args:
        lambda_u: weight of the pseudo-label cross-entropy (on the strong view).
        lambda_c: weight of the global-local consistency term.
        divergence: ``"kl"``, ``"js"`` or ``"mse"`` (see :func:`consistency_divergence`).
        consistency_on: ``"agree"`` (samples whose two pseudo-labels coincide) or
            ``"agree_and_confident"`` (and that pass the threshold).

    Both unlabelled terms are averaged over the whole unlabelled batch (FixMatch's convention), so
    a sample that is masked out or disagrees contributes zero.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        k: _PARAMETER_CONSTRAINTS[k] for k in ("lambda_u", "lambda_c", "divergence", "consistency_on")
    }

    def __init__(
        self, lambda_u: float = 1.0, lambda_c: float = 1.0, divergence: str = "kl", consistency_on: str = "agree"
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"lambda_u": lambda_u, "lambda_c": lambda_c, "divergence": divergence, "consistency_on": consistency_on},
            owner=type(self).__name__,
        )
        self.lambda_u, self.lambda_c = float(lambda_u), float(lambda_c)
        self.divergence, self.consistency_on = divergence, consistency_on

    def forward(
        self,
        labelled_logits: torch.Tensor,
        labels: torch.Tensor,
        strong_logits: torch.Tensor,
        student_weak_logits: torch.Tensor,
        local_weak_logits: torch.Tensor,
        pseudo: PseudoLabels,
        local_labelled_logits: torch.Tensor | None = None,
        local_strong_logits: torch.Tensor | None = None,
    ) -> FedLabelTerms:
        """The terms of one step.

        Args:
            labelled_logits: (B_L, C) student logits on the labelled batch; ``labels`` (B_L,).
            strong_logits: (B_U, C) student logits on the strong view of the unlabelled batch.
            student_weak_logits, local_weak_logits: (B_U, C) student / local-model logits on the
                weak view (the consistency term's two sides).
            pseudo: :func:`select_pseudo_labels` on that batch.
            local_labelled_logits: (B_L, C) local-model logits on the labelled batch; when given, the
                local model's loss is returned too (else ``local`` is 0).
            local_strong_logits: (B_U, C) local-model logits on the strong view: the local model
                also learns from the selected pseudo-labels (``local_model="persistent_pl"``).
        """
        _check_logits(labelled_logits, "labelled_logits")
        n_l, c = labelled_logits.shape
        check_labels(labels, n_l, "labels", c)
        _check_logits(strong_logits, "strong_logits", c=c)
        n_u = strong_logits.shape[0]
        _check_logits(student_weak_logits, "student_weak_logits", n_u, c)
        _check_logits(local_weak_logits, "local_weak_logits", n_u, c)
        if pseudo.y_hat.shape != (n_u,):
            raise ValueError(
                f"pseudo must hold {n_u} pseudo-labels (one per unlabelled sample), got {pseudo.y_hat.shape}"
            )
        if local_labelled_logits is not None:
            _check_logits(local_labelled_logits, "local_labelled_logits", n_l, c)
        if local_strong_logits is not None:
            _check_logits(local_strong_logits, "local_strong_logits", n_u, c)
        return self._terms(
            labelled_logits, labels, strong_logits, student_weak_logits, local_weak_logits, pseudo,
            local_labelled_logits, local_strong_logits,
        )  # fmt: skip

    def _terms(
        self,
        labelled_logits: torch.Tensor,
        labels: torch.Tensor,
        strong_logits: torch.Tensor,
        student_weak_logits: torch.Tensor,
        local_weak_logits: torch.Tensor,
        pseudo: PseudoLabels,
        local_labelled_logits: torch.Tensor | None,
        local_strong_logits: torch.Tensor | None,
    ) -> FedLabelTerms:
        mask = pseudo.mask.to(strong_logits.dtype)
        agree = pseudo.agree & pseudo.mask if self.consistency_on == "agree_and_confident" else pseudo.agree
        sup = F.cross_entropy(labelled_logits, labels)
        zero = sup.new_zeros(())
        pl = (mask * F.cross_entropy(strong_logits, pseudo.y_hat, reduction="none")).mean() if self.lambda_u else zero
        cons = local_cons = zero
        if self.lambda_c:
            # only agreeing rows contribute: compute on them alone, averaged over the whole batch
            rows = agree.nonzero().squeeze(1)
            lp_student = F.log_softmax(student_weak_logits[rows], dim=1)
            lp_local = F.log_softmax(local_weak_logits[rows], dim=1)
            n_u = strong_logits.shape[0]
            cons = _divergence_log(lp_local.detach(), lp_student, self.divergence).sum() / n_u
            if local_labelled_logits is not None:
                local_cons = _divergence_log(lp_student.detach(), lp_local, self.divergence).sum() / n_u
        student = sup + self.lambda_u * pl + self.lambda_c * cons
        local = zero
        if local_labelled_logits is not None:
            local = F.cross_entropy(local_labelled_logits, labels) + self.lambda_c * local_cons
            if local_strong_logits is not None and self.lambda_u:
                ce = F.cross_entropy(local_strong_logits, pseudo.y_hat, reduction="none")
                local = local + self.lambda_u * (mask * ce).mean()
        return FedLabelTerms(student, local, sup, pl, cons)


# --------------------------------------------------------------------------- augmentation
def translate(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of ``x`` (B, C, H, W) by its own random offset in ``[-max_shift,
    max_shift]`` pixels along each axis, filling with zeros (one gather, no loop)."""
    validate_params(_PARAMETER_CONSTRAINTS, {"max_shift": max_shift}, owner="translate")
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got {tuple(x.shape)}")
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    s = max_shift
    shifts = torch.randint(-s, s + 1, (2, b), generator=generator, device=x.device)
    pad = F.pad(x, (s, s, s, s))
    rows = torch.arange(h, device=x.device)[None, :] + s - shifts[0][:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + s - shifts[1][:, None]  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    return pad.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def weak_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """FixMatch's weak view for small grey-scale images: a random translation of up to 2 pixels."""
    return translate(x, 2, generator)


def strong_augment(
    x: torch.Tensor, generator: torch.Generator | None = None, erase: int = 9, noise: float = 0.1
) -> torch.Tensor:
    """A strong view: translation of up to 4 pixels, a random ``erase`` x ``erase`` square set to
    0 and Gaussian noise of standard deviation ``noise`` (vectorised over the batch)."""
    out = translate(x, 4, generator)
    b, _, h, w = out.shape
    e = min(erase, h, w)
    top = torch.randint(0, h - e + 1, (b,), generator=generator, device=x.device)
    left = torch.randint(0, w - e + 1, (b,), generator=generator, device=x.device)
    r = torch.arange(h, device=x.device)[None, :] - top[:, None]
    c = torch.arange(w, device=x.device)[None, :] - left[:, None]
    box = ((r >= 0) & (r < e))[:, :, None] & ((c >= 0) & (c < e))[:, None, :]  # (B, H, W)
    out = out.masked_fill(box[:, None], 0.0)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator, device=x.device, dtype=out.dtype)
    return out


# --------------------------------------------------------------------------- data split
def labelled_unlabelled_split(
    client_indices: torch.Tensor | Any, fraction: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split one client's sample indices into a labelled part (``round(fraction * n)``, at least
    one when ``fraction > 0``) and the unlabelled rest, at random."""
    validate_params(_PARAMETER_CONSTRAINTS, {"fraction": fraction}, owner="labelled_unlabelled_split")
    idx = torch.as_tensor(client_indices, dtype=torch.int64).reshape(-1)
    if idx.numel() == 0:
        raise ValueError("client_indices is empty: a client with no samples cannot be split")
    k = 0 if fraction == 0 else max(1, round(fraction * idx.numel()))
    perm = idx[torch.randperm(idx.numel(), generator=generator)]
    return perm[:k].sort().values, perm[k:].sort().values


# --------------------------------------------------------------------------- one client's update
@dataclass(frozen=True)
class FedLabelConfig:
    """Everything a client's FedLabel update needs besides the models and the data.

    ``mode`` picks a preset of :data:`MODES` (expertise, lambda_u, lambda_c); ``expertise`` /
    ``lambda_u`` / ``lambda_c`` given explicitly (not None) override it.
    """

    mode: str = "fedlabel"
    tau: float = 0.95
    expertise: str | None = None
    lambda_u: float | None = None
    lambda_c: float | None = None
    divergence: str = "kl"
    consistency_on: str = "agree"
    local_model: str = "persistent_labelled"
    iters: int = 15
    batch_labelled: int = 16
    batch_unlabelled: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    finetune_steps: int = 30

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "mode": [Options(tuple(MODES))],
        "tau": _PARAMETER_CONSTRAINTS["tau"],
        "expertise": [None, Options(EXPERTISE)],
        "lambda_u": [None, *_PARAMETER_CONSTRAINTS["lambda_u"]],
        "lambda_c": [None, *_PARAMETER_CONSTRAINTS["lambda_c"]],
        "divergence": [Options(DIVERGENCES)],
        "consistency_on": [Options(CONSISTENCY_ON)],
        "local_model": [Options(LOCAL_MODELS)],
        "iters": [Interval(int, 1, math.inf, closed="left")],
        "batch_labelled": [Interval(int, 1, math.inf, closed="left")],
        "batch_unlabelled": [Interval(int, 1, math.inf, closed="left")],
        "lr": [Interval(float, 0, math.inf, closed="neither")],
        "momentum": [Interval(float, 0, 1, closed="left")],
        "finetune_steps": [Interval(int, 0, math.inf, closed="left")],
    }

    def __post_init__(self) -> None:
        params = {k: getattr(self, k) for k in self._parameter_constraints}
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)

    @property
    def resolved(self) -> tuple[str, float, float]:
        """``(expertise, lambda_u, lambda_c)`` after the mode's preset and the overrides."""
        e, lu, lc = MODES[self.mode]
        return (
            self.expertise if self.expertise is not None else e,
            float(self.lambda_u) if self.lambda_u is not None else lu,
            float(self.lambda_c) if self.lambda_c is not None else lc,
        )

    @property
    def uses_local(self) -> bool:
        """Whether the update needs the local model at all (it does unless only the global model
        teaches and there is no consistency term)."""
        expertise, lambda_u, lambda_c = self.resolved
        return lambda_c > 0 or (lambda_u > 0 and expertise != "global")

    def with_(self, **changes: Any) -> FedLabelConfig:
        """A copy with ``changes``."""
        return replace(self, **changes)


class _Pair(nn.Module):
    """Student and (optionally) local model as one module, so that one optimiser and one call of
    :func:`paperzoo.engine.fit` train both (their losses are separated by stop-gradients)."""

    def __init__(self, student: nn.Module, local: nn.Module | None) -> None:
        super().__init__()
        self.student = student
        self.local = local


@dataclass
class UpdateStats:
    """Diagnostics of one client update, averaged over its steps."""

    mask_rate: list[float] = field(default_factory=list)
    local_selected: list[float] = field(default_factory=list)
    agree_rate: list[float] = field(default_factory=list)
    pl_correct: list[float] = field(default_factory=list)  # accuracy of the masked pseudo-labels (needs y_u)
    pl_count: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        def mean(v: list[float]) -> float:
            return float(sum(v) / len(v)) if v else 0.0

        n = sum(self.pl_count)
        return {
            "mask rate": mean(self.mask_rate),
            "local selected": mean(self.local_selected),
            "agree rate": mean(self.agree_rate),
            "pl acc": float(sum(self.pl_correct) / n) if n else 0.0,
            "pl count": float(n),
        }


def _check_client_data(x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, y_u: torch.Tensor | None) -> None:
    if not isinstance(x_l, torch.Tensor) or x_l.dim() < 2 or x_l.shape[0] == 0:
        raise ValueError(
            "x_labelled must be a non-empty tensor (N_L, ...): a client needs at least one labelled sample"
        )
    check_finite(x_l, "x_labelled")
    check_labels(y_l, x_l.shape[0], "y_labelled")
    if not isinstance(x_u, torch.Tensor) or x_u.shape[1:] != x_l.shape[1:]:
        raise ValueError(f"x_unlabelled must be a tensor (N_U, {', '.join(map(str, x_l.shape[1:]))})")
    check_finite(x_u, "x_unlabelled")
    if y_u is not None:
        check_labels(y_u, x_u.shape[0], "y_unlabelled")


def fedlabel_local_update(
    student: nn.Module,
    teacher: nn.Module,
    local_model: nn.Module | None,
    x_labelled: torch.Tensor,
    y_labelled: torch.Tensor,
    x_unlabelled: torch.Tensor,
    config: FedLabelConfig,
    *,
    seed: int = 0,
    weak_aug: Callable[..., torch.Tensor] = weak_augment,
    strong_aug: Callable[..., torch.Tensor] = strong_augment,
    y_unlabelled: torch.Tensor | None = None,
) -> dict[str, float]:
    """One client's FedLabel round: train ``student`` (a copy of the received global model, in
    place) and ``local_model`` (in place) for ``config.iters`` steps of SGD on batches of
    ``batch_labelled`` labelled and ``batch_unlabelled`` unlabelled samples; ``teacher`` holds the
    received global model and stays frozen.

    ``config.mode`` selects the baselines of the same function (see :data:`MODES`): with
    ``"supervised"`` only the labelled cross-entropy is used, with ``"pl_global"`` it is
    FedAvg + FixMatch with a frozen global teacher. ``local_model`` may be None when the mode
    does not use it. ``y_unlabelled`` (known in simulation only) feeds the pseudo-label accuracy
    diagnostic, never the training. The loop is :func:`paperzoo.engine.fit`'s (seeded with
    ``seed``); the batches are drawn with replacement-free permutations from a generator seeded
    with ``seed``.

    Returns:
        Diagnostics averaged over the steps: ``mask rate``, ``local selected``, ``agree rate``,
        ``pl acc`` (accuracy of the masked pseudo-labels; 0 without ``y_unlabelled``),
        ``pl count``, ``loss``.
    """
    from paperzoo.engine import TrainConfig, fit

    _check_client_data(x_labelled, y_labelled, x_unlabelled, y_unlabelled)
    expertise, lambda_u, lambda_c = config.resolved
    uses_local = config.uses_local
    if uses_local and local_model is None:
        raise ValueError(f"local_model is None but mode {config.mode!r} (expertise {expertise!r}) needs it")
    semi = lambda_u > 0 or lambda_c > 0
    if semi and x_unlabelled.shape[0] == 0:
        raise ValueError(f"x_unlabelled is empty but mode {config.mode!r} learns from unlabelled data")
    loss = FedLabelLoss(lambda_u, lambda_c, config.divergence, config.consistency_on)
    gen = torch.Generator().manual_seed(int(seed))
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    train_local = uses_local and config.local_model != "finetune"
    if uses_local and config.local_model == "finetune":
        assert local_model is not None
        local_model.load_state_dict(teacher.state_dict())
        if config.finetune_steps > 0:
            batches = _batches(gen, x_labelled.shape[0], 0, config.batch_labelled, 0, config.finetune_steps)
            data = [(x_labelled[i], y_labelled[i]) for i, _ in batches]
            opt = torch.optim.SGD(local_model.parameters(), lr=config.lr, momentum=config.momentum)
            fit(local_model, nn.CrossEntropyLoss(), data, opt, TrainConfig(seed=seed + 1, progress=False))  # type: ignore[arg-type]
        local_model.eval()
    pair = _Pair(student, local_model if train_local else None)
    n_u = x_unlabelled.shape[0] if semi else 0
    steps = _batches(gen, x_labelled.shape[0], n_u, config.batch_labelled, config.batch_unlabelled, config.iters)
    stats = UpdateStats()
    pl_loss_local = config.local_model == "persistent_pl"

    def compute(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        il, iu = batch
        xl, yl = x_labelled[il], y_labelled[il]
        logits_l = model.student(xl)
        if not semi:
            return F.cross_entropy(logits_l, yl)
        xu = x_unlabelled[iu]
        weak, strong = weak_aug(xu), strong_aug(xu)
        with torch.no_grad():
            teacher_weak = teacher(weak)
            p_g = F.softmax(teacher_weak, dim=1)
            if uses_local and not train_local:
                local_weak = local_model(weak)  # type: ignore[misc]
        student_weak = model.student(weak)
        if train_local:
            local_weak = model.local(weak)
        elif not uses_local:
            local_weak = teacher_weak  # unused by the loss (lambda_c = 0, global expert): a placeholder
        p_l = F.softmax(local_weak.detach(), dim=1)
        pseudo = select_pseudo_labels(p_l, p_g, config.tau, expertise)
        local_l = model.local(xl) if train_local else None
        local_s = model.local(strong) if train_local and pl_loss_local else None
        terms = loss._terms(logits_l, yl, model.student(strong), student_weak, local_weak, pseudo, local_l, local_s)
        stats.mask_rate.append(float(pseudo.mask.float().mean()))
        stats.local_selected.append(float(pseudo.use_local.float().mean()))
        stats.agree_rate.append(float(pseudo.agree.float().mean()))
        if y_unlabelled is not None:
            hit = (pseudo.y_hat == y_unlabelled[iu]) & pseudo.mask
            stats.pl_correct.append(float(hit.sum()))
            stats.pl_count.append(float(pseudo.mask.sum()))
        return terms.student + terms.local

    params = [p for p in pair.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    history = fit(pair, None, steps, opt, TrainConfig(seed=seed, progress=False), compute_loss=compute)  # type: ignore[arg-type]
    out = stats.summary()
    out["loss"] = float(sum(history.losses) / len(history.losses))
    return out


def _batches(
    gen: torch.Generator, n_l: int, n_u: int, b_l: int, b_u: int, iters: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``iters`` pairs of (labelled, unlabelled) index batches, each side cycling through fresh
    random permutations of its set (batches smaller than the set's size are exact)."""

    def stream(n: int, b: int) -> list[torch.Tensor]:
        if n == 0 or b == 0:
            return [torch.empty(0, dtype=torch.int64)] * iters
        bb = min(b, n)
        perms = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-(iters * bb) // n))])
        return [perms[i * bb : (i + 1) * bb] for i in range(iters)]

    return list(zip(stream(n_l, b_l), stream(n_u, b_u)))


# --------------------------------------------------------------------------- Flower apps
LOCAL_STATE_KEY = "fedlabel.local"
"""Key of the local model's ArrayRecord in a client's ``context.state`` (never sent)."""


class FedLabelStrategy(FedAvg):
    """The server side of FedLabel: Flower's FedAvg of the clients' students weighted by
    ``num-examples`` (labelled + unlabelled samples); nothing but the global model is exchanged.

    It refuses a train reply that carries more than one ArrayRecord (FedAvg would average a leaked
    local model into the global one) and keeps the per-round aggregated client metrics (mask rate,
    pseudo-label accuracy, share of samples where the local model was the expert) in ``history``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[dict[str, float]] = []

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for msg in replies:
            if msg.has_content() and len(msg.content.array_records) != 1:
                raise ValueError(
                    "a train reply must carry exactly one ArrayRecord (the student's), got "
                    f"{list(msg.content.array_records)}: private client state stays in context.state"
                )
        arrays, metrics = super().aggregate_train(server_round, replies)
        if metrics is not None:
            self.history.append({"round": float(server_round), **{k: float(v) for k, v in metrics.items()}})  # type: ignore[arg-type]
        return arrays, metrics


def fedlabel_apps(
    model_fn: Callable[[], nn.Module],
    data: FederatedData,
    labelled: np.ndarray,
    config: FedLabelConfig,
    *,
    rounds: int,
    seed: int = 0,
    client_tests: Sequence[np.ndarray] | None = None,
    fraction_train: float = 1.0,
) -> tuple[ServerApp, ClientApp, FederatedHistory]:
    """FedLabel (or one of its baselines, by ``config.mode``) as Flower apps.

    Args:
        model_fn: builds the classifier (student, teacher and local model share it).
        data: the clients' samples (:class:`paperzoo.federated.baselines.FederatedData`) and the
            server's balanced test set.
        labelled: (N,) bool, which samples of ``data.x`` keep their label
            (:func:`paperzoo.federated.partition.labelled_mask`); every client needs at least one
            labelled sample. The labels of the others are used only for the pseudo-label accuracy
            diagnostic.
        config: the client update (:class:`FedLabelConfig`).
        rounds: communication rounds; all clients train every round unless ``fraction_train < 1``.
        seed: seeds the initial global model and every client update (:func:`client_seed`).
        client_tests: per client, indices into ``data.x_test`` following its label distribution;
            when given, every round ends with a client-side evaluation of the global model and of
            the local model (``"local-acc"``, the personalised model) on them.

    Returns:
        ``(server_app, client_app, history)``: run them with
        :func:`paperzoo.federated.flower.run_federation`. ``history.rounds[r]`` holds the server's
        test ``"accuracy"`` after round ``r + 1``, the aggregated client diagnostics of that round
        (``"mask-rate"``, ``"pl-acc"``, ``"local-selected"``, ``"agree-rate"``, ``"loss"``) and,
        with ``client_tests``, ``"client-global-acc"`` / ``"client-local-acc"``.

    The ClientApp's ``train`` loads the received arrays into the student and the frozen teacher
    and the local model from ``context.state`` (initialised from the received global model on the
    client's first round), runs :func:`fedlabel_local_update`, stores the local model back and
    replies with exactly one ArrayRecord, the student's.
    """
    labelled = np.asarray(labelled)
    if labelled.dtype != np.bool_ or labelled.shape != (data.x.shape[0],):
        raise ValueError(f"labelled must be a boolean mask of shape ({data.x.shape[0]},), got {labelled.shape}")
    semi = config.resolved[1] > 0 or config.resolved[2] > 0
    for k, part in enumerate(data.partitions):
        if not labelled[part].any():
            raise ValueError(f"labelled: client {k} has no labelled sample; every client needs at least one")
        if semi and labelled[part].all():
            raise ValueError(f"labelled: client {k} has no unlabelled sample but mode {config.mode!r} needs some")
    if client_tests is not None and len(client_tests) != data.num_clients:
        raise ValueError(
            f"client_tests must hold one index array per client ({data.num_clients}), got {len(client_tests)}"
        )
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    keeps_local = config.uses_local and config.local_model != "finetune"
    history = FederatedHistory()
    client = ClientApp()

    def client_data(k: int) -> tuple[torch.Tensor, ...]:
        part = torch.from_numpy(data.partitions[k])
        lab = torch.from_numpy(labelled[data.partitions[k]])
        il, iu = part[lab], part[~lab]
        return data.x[il], data.y[il], data.x[iu], data.y[iu]

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        k = partition_id(context)
        x_l, y_l, x_u, y_u = client_data(k)
        student, teacher = model_fn(), model_fn()
        load_arrays(student, msg.content["arrays"])  # type: ignore[arg-type]
        load_arrays(teacher, msg.content["arrays"])  # type: ignore[arg-type]
        local = None
        if config.uses_local:
            local = model_fn()
            if not load_state(context, LOCAL_STATE_KEY, local):
                load_arrays(local, msg.content["arrays"])  # type: ignore[arg-type]
        server_round = int(msg.content["config"]["server-round"])  # type: ignore[index]
        stats = fedlabel_local_update(
            student, teacher, local, x_l, y_l, x_u, config, seed=client_seed(seed, server_round, k), y_unlabelled=y_u
        )
        if keeps_local:
            save_state(context, LOCAL_STATE_KEY, local)  # type: ignore[arg-type]
        metrics = {key.replace(" ", "-"): float(v) for key, v in stats.items()}
        metrics["num-examples"] = int(x_l.shape[0] + x_u.shape[0])
        return Message(RecordDict({"arrays": arrays_of(student), "metrics": MetricRecord(metrics)}), reply_to=msg)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        k = partition_id(context)
        assert client_tests is not None
        idx = torch.from_numpy(np.asarray(client_tests[k], dtype=np.int64))
        x, y = data.x_test[idx], data.y_test[idx]
        model = model_fn()
        load_arrays(model, msg.content["arrays"])  # type: ignore[arg-type]
        g_acc = evaluate_accuracy(model, x, y)
        l_acc = g_acc  # without a kept local model, the personalised model is the global one
        if keeps_local and load_state(context, LOCAL_STATE_KEY, model):
            l_acc = evaluate_accuracy(model, x, y)
        metrics = MetricRecord({"client-global-acc": g_acc, "client-local-acc": l_acc, "num-examples": len(y)})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        counts = node_counts(data.num_clients, fraction_train, client_evaluation=client_tests is not None)
        strategy = FedLabelStrategy(**counts)
        result = serve(grid, strategy, model_fn, data, history, rounds=rounds, seed=seed)
        for r, values in enumerate(history.rounds, start=1):
            for source in (result.train_metrics_clientapp, result.evaluate_metrics_clientapp):
                if r in source:
                    values.update({k: float(v) for k, v in source[r].items() if k != "num-examples"})  # type: ignore[arg-type]

    return server, client, history
