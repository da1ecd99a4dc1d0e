"""ProtoGCD (Ma, Zhu, Zhang & Liu, "ProtoGCD: Unified and Unbiased Prototype Learning for Generalized
Category Discovery", IEEE TPAMI 2025): its new pieces on top of SimGCD, and nothing else.

ProtoGCD keeps SimGCD's model (one set of K learnable unit prototypes, cosine logits: the head is
:class:`paperzoo.discovery.heads.CosineClassifier` unchanged) and changes the unsupervised classification
objective:

* **dual-level adaptive pseudo-labelling (DAPL)**: the teacher ``q = softmax(stopgrad(s) / tau_t)`` of
  each view (constant ``tau_t = 0.05``, no warm-up) is replaced, for the ``int(B r(e))`` rows of the
  view with the largest confidence ratio ``q_(1) / (q_(2) + 1e-6)``, by the one-hot label of its arg-max
  (sample level); the share ``r(e)`` ramps linearly from 0 to 1 over the first epochs (model level).
  The loss is SimGCD's cross-view form with these targets (:func:`dapl_targets`,
  :func:`adaptive_pseudo_label_distillation`, :class:`AdaptivePseudoLabelDistillation`);
* the mean-entropy regulariser, reused from SimGCD (:func:`paperzoo.discovery.losses.mean_entropy_regularizer`);
* **prototype separation** ``L_sep = (tau / tau_b) (1/K) sum_k log((1/(K-1)) sum_{j != k}
  exp(c_k^T c_j / tau))`` over the unit prototypes (:func:`prototype_separation`,
  :class:`PrototypeSeparationTerm`, an extra term of :class:`paperzoo.discovery.trainer.GCDObjective`).

Total: ``(1 - lam) (L_dapl + w_ent L_ent + w_sep L_sep) + lam L_cls^s + (1 - lam) L_rep^u + lam L_rep^s``:
:class:`ProtoGCDLoss` is :class:`~paperzoo.discovery.losses.SimGCDLoss` with its distillation term
swapped for DAPL, and :func:`protogcd_objective` adds the separation term with weight ``(1 - lam) w_sep``.

The number of classes (:func:`estimate_num_classes`): the paper's own criterion (a "Prototype Score") is
neither given as a formula nor shipped in the released code, so it is **unconfirmed** and not
implemented; the function takes a pluggable score and ships the classical GCD estimator (Vaze et al.,
CVPR 2022): k-means on all features for each candidate k, scored by the clustering accuracy of the
labelled subset, the best k kept (a grid instead of Brent's method).

The OOD-detection extension: :func:`ood_scores` (the six confidence scores of the official
``ood_utils``, sign flipped so that larger = more in-distribution) and :func:`ood_metrics` (AUROC, AUPR,
FPR at 95% TPR on scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, check_finite, validate_params
from paperzoo.discovery.heads import CosineClassifier
from paperzoo.discovery.losses import SimGCDLoss, _check_two_view
from paperzoo.discovery.trainer import GCDBatch, GCDObjective

__all__ = [
    "OOD_SCORES",
    "AdaptivePseudoLabelDistillation",
    "PrototypeSeparationTerm",
    "ProtoGCDLoss",
    "adaptive_pseudo_label_distillation",
    "confidence_ratio",
    "dapl_targets",
    "estimate_num_classes",
    "labelled_kmeans_accuracy",
    "mean_prototype_cosine",
    "ood_metrics",
    "ood_scores",
    "protogcd_objective",
    "prototype_separation",
    "ratio_schedule",
]

_POSITIVE = [Interval(float, 0.0, math.inf, closed="neither")]
_FRACTION = [Interval(float, 0.0, 1.0, closed="both")]
_NON_NEGATIVE = [Interval(float, 0.0, math.inf, closed="left")]
_NON_NEG_INT = [Interval(int, 0, math.inf, closed="left")]


# --------------------------------------------------------------------------- DAPL
def ratio_schedule(epoch: int, wait: int = 0, init: float = 0.0, final: float = 1.0, ramp: int = 100) -> float:
    """The share of hard pseudo-labels at ``epoch``: the official ``concat(zeros(wait), linspace(init,
    final, ramp), full(final))`` read at ``epoch`` (``final`` beyond the ramp).

    >>> ratio_schedule(0), round(ratio_schedule(25), 6), ratio_schedule(99), ratio_schedule(150)
    (0.0, 0.252525, 1.0, 1.0)
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
    validate_params(
        {
            "wait": _NON_NEG_INT,
            "init": _FRACTION,
            "final": _FRACTION,
            "ramp": [Interval(int, 1, math.inf, closed="left")],
        },
        {"wait": wait, "init": init, "final": final, "ramp": ramp},
        owner="ratio_schedule",
    )
    if epoch < wait:
        return 0.0
    e = epoch - wait
    if e >= ramp:
        return float(final)
    if ramp == 1:
        return float(init)
    return float(init + (final - init) * e / (ramp - 1))


def confidence_ratio(probs: torch.Tensor) -> torch.Tensor:
    """``q_(1) / (q_(2) + 1e-6)`` per row of ``probs`` (B, K), K >= 2: largest over second-largest."""
    top = probs.topk(2, dim=1).values
    return top[:, 0] / (top[:, 1] + 1e-6)


def _check_probs(probs: torch.Tensor, name: str) -> None:
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point() or probs.ndim != 2:
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, K)")
    if probs.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    if probs.shape[1] < 2:
        raise ValueError(f"{name} needs K >= 2 classes (the top-1 / top-2 ratio), got K = {probs.shape[1]}")
    check_finite(probs, name)


def dapl_targets(teacher_probs: torch.Tensor, ratio: float) -> torch.Tensor:
    """DAPL targets of one view: the ``int(B * ratio)`` rows of ``teacher_probs`` (B, K) with the
    largest :func:`confidence_ratio` become ``one_hot(argmax)``; the others are returned unchanged.

    >>> q = torch.tensor([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], dtype=torch.float64)
    >>> dapl_targets(q, 0.5).tolist()
    [[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]]
    """
    _check_probs(teacher_probs, "teacher_probs")
    validate_params({"ratio": _FRACTION}, {"ratio": ratio}, owner="dapl_targets")
    b = teacher_probs.shape[0]
    n_hard = int(b * ratio)
    if n_hard == 0:
        return teacher_probs
    hard_rows = confidence_ratio(teacher_probs).topk(n_hard).indices
    one_hot = F.one_hot(teacher_probs.argmax(dim=1), teacher_probs.shape[1]).to(teacher_probs.dtype)
    hard = torch.zeros(b, dtype=torch.bool, device=teacher_probs.device)
    hard[hard_rows] = True
    return torch.where(hard[:, None], one_hot, teacher_probs)


def adaptive_pseudo_label_distillation(
    logits: torch.Tensor,
    ratio: float,
    teacher_temp: float = 0.05,
    student_temp: float = 0.1,
    teacher_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_dapl``: SimGCD's cross-view self-distillation with DAPL targets.

    For each view chunk of ``logits`` (2B, K) separately, ``q = softmax(stopgrad(s) / teacher_temp)``
    passed through :func:`dapl_targets` with ``ratio``; the targets of one view supervise
    ``log_softmax(s / student_temp)`` of the other, averaged over the 2B rows. With ``ratio = 0`` it is
    :func:`paperzoo.discovery.losses.cross_view_self_distillation`. ``teacher_logits`` (default
    ``logits``, detached) gives the teacher separately.
    """
    _check_two_view(logits, "logits")
    if logits.shape[1] < 2:
        raise ValueError(f"logits need K >= 2 classes (the top-1 / top-2 ratio), got K = {logits.shape[1]}")
    validate_params(
        {"ratio": _FRACTION, "teacher_temp": _POSITIVE, "student_temp": _POSITIVE},
        {"ratio": ratio, "teacher_temp": teacher_temp, "student_temp": student_temp},
        owner="adaptive_pseudo_label_distillation",
    )
    teacher = logits if teacher_logits is None else teacher_logits
    if teacher.shape != logits.shape:
        raise ValueError(
            f"teacher_logits must have the shape of logits {tuple(logits.shape)}, got {tuple(teacher.shape)}"
        )
    q = F.softmax(teacher.detach() / teacher_temp, dim=1)
    q1, q2 = (dapl_targets(v, ratio) for v in q.chunk(2))
    q_other = torch.cat([q2, q1])  # view 1 rows learn from view 2's targets, and back
    return -(q_other * F.log_softmax(logits / student_temp, dim=1)).sum(dim=1).mean()


class AdaptivePseudoLabelDistillation(nn.Module):
    """DAPL as a drop-in for SimGCD's ``CrossViewSelfDistillationLoss``: ``forward(logits, epoch)``.

    Args:
        student_temp: ``tau_s`` (0.1).
        teacher_temp: ``tau_t``, constant (0.05).
        wait, init, final, ramp: the hard-label share schedule (:func:`ratio_schedule`; README values
            0, 0.0, 1.0, 100 of 200 epochs).
    """

    def __init__(
        self,
        student_temp: float = 0.1,
        teacher_temp: float = 0.05,
        wait: int = 0,
        init: float = 0.0,
        final: float = 1.0,
        ramp: int = 100,
    ) -> None:
        validate_params(
            {"student_temp": _POSITIVE, "teacher_temp": _POSITIVE},
            {"student_temp": student_temp, "teacher_temp": teacher_temp},
            owner=type(self).__name__,
        )
        ratio_schedule(0, wait, init, final, ramp)  # validates the schedule
        super().__init__()
        self.student_temp, self.teacher_temp = float(student_temp), float(teacher_temp)
        self.schedule = (int(wait), float(init), float(final), int(ramp))

    def ratio(self, epoch: int) -> float:
        return ratio_schedule(epoch, *self.schedule)

    def forward(self, logits: torch.Tensor, epoch: int) -> torch.Tensor:
        return adaptive_pseudo_label_distillation(logits, self.ratio(epoch), self.teacher_temp, self.student_temp)


class ProtoGCDLoss(SimGCDLoss):
    """The ProtoGCD objective without the separation term: :class:`SimGCDLoss` (same terms, weights and
    dict) whose ``cls_unsup`` is DAPL (:class:`AdaptivePseudoLabelDistillation`) instead of the
    warmed-up teacher. ``memax_weight`` is ``w_ent`` (2). Add :class:`PrototypeSeparationTerm` through
    :class:`~paperzoo.discovery.trainer.GCDObjective` (:func:`protogcd_objective` does both)."""

    def __init__(
        self,
        lambda_sup: float = 0.35,
        memax_weight: float = 2.0,
        student_temp: float = 0.1,
        teacher_temp: float = 0.05,
        ramp: int = 100,
        wait: int = 0,
        init_ratio: float = 0.0,
        final_ratio: float = 1.0,
        tau_unsup: float = 1.0,
        tau_sup: float = 0.07,
    ) -> None:
        super().__init__(lambda_sup, memax_weight, student_temp, (0.07, 0.04, 1), tau_unsup, tau_sup)
        self.distill = AdaptivePseudoLabelDistillation(student_temp, teacher_temp, wait, init_ratio, final_ratio, ramp)


# --------------------------------------------------------------------------- prototype separation
def _check_prototypes(prototypes: torch.Tensor) -> None:
    if not isinstance(prototypes, torch.Tensor) or not prototypes.is_floating_point() or prototypes.ndim != 2:
        raise TypeError("prototypes must be a floating-point torch.Tensor of shape (K, d)")
    if prototypes.shape[0] < 2:
        raise ValueError(f"prototypes need K >= 2 rows to be separated, got K = {prototypes.shape[0]}")
    check_finite(prototypes, "prototypes")
    if bool((prototypes.norm(dim=1) == 0).any()):
        raise ValueError("prototypes holds a zero row, which has no direction")


def prototype_separation(
    prototypes: torch.Tensor, temperature: float = 0.1, base_temperature: float = 0.1
) -> torch.Tensor:
    """``L_sep = (tau / tau_b) (1/K) sum_k log((1/(K-1)) sum_{j != k} exp(c_k^T c_j / tau))`` of the
    rows of ``prototypes`` (K, d), L2-normalised inside (rotation- and row-scale-invariant).

    >>> round(float(prototype_separation(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))), 4)
    -10.0
    """
    _check_prototypes(prototypes)
    validate_params(
        {"temperature": _POSITIVE, "base_temperature": _POSITIVE},
        {"temperature": temperature, "base_temperature": base_temperature},
        owner="prototype_separation",
    )
    c = F.normalize(prototypes, dim=1)
    k = c.shape[0]
    sim = (c @ c.T) / temperature
    sim = sim.masked_fill(torch.eye(k, dtype=torch.bool, device=c.device), -math.inf)
    per_row = torch.logsumexp(sim, dim=1) - math.log(k - 1)
    return (temperature / base_temperature) * per_row.mean()


def mean_prototype_cosine(prototypes: torch.Tensor) -> float:
    """Mean cosine over the ``K (K - 1)`` ordered pairs of distinct prototypes (K, d)."""
    _check_prototypes(prototypes)
    c = F.normalize(prototypes.detach(), dim=1)
    k = c.shape[0]
    return float(((c @ c.T).sum() - k) / (k * (k - 1)))


def _prototypes_of_model(batch: GCDBatch) -> torch.Tensor:
    """The prototypes of the last :class:`~paperzoo.discovery.heads.CosineClassifier` of the model
    that produced ``batch`` (the one the trainer hands every term)."""
    if batch.model is None:
        raise ValueError("prototypes: the batch carries no model; pass `prototypes=` (the cosine classifier)")
    heads = [m for m in batch.model.modules() if isinstance(m, CosineClassifier)]
    if not heads:
        raise ValueError("prototypes: the model has no CosineClassifier; pass `prototypes=`")
    return heads[-1].prototypes()


class PrototypeSeparationTerm(nn.Module):
    """The prototype separation loss as an extra term of :class:`~paperzoo.discovery.trainer.GCDObjective`:
    ``term(batch, epoch) -> {"proto_sep": weight * L_sep}``.

    Args:
        prototypes: where the prototypes come from: a module with ``prototypes()`` (a
            :class:`~paperzoo.discovery.heads.CosineClassifier`), a callable returning (K, d), or None
            for the cosine classifier of the model the trainer hands the term (``batch.model``).
        weight: the term's weight in the total, ``(1 - lambda) w_sep`` (0.65 * 0.1).
        temperature, base_temperature: ``tau``, ``tau_b`` (0.1, 0.1).
    """

    def __init__(
        self,
        prototypes: nn.Module | Callable[[], torch.Tensor] | None = None,
        weight: float = 0.065,
        temperature: float = 0.1,
        base_temperature: float = 0.1,
    ) -> None:
        validate_params(
            {"weight": _NON_NEGATIVE, "temperature": _POSITIVE, "base_temperature": _POSITIVE},
            {"weight": weight, "temperature": temperature, "base_temperature": base_temperature},
            owner=type(self).__name__,
        )
        super().__init__()
        if prototypes is not None and not callable(getattr(prototypes, "prototypes", prototypes)):
            raise TypeError("prototypes must be a module with .prototypes(), a callable, or None")
        self._source = [prototypes]  # a list: not registered as a submodule of the objective
        self.weight, self.temperature, self.base_temperature = (
            float(weight),
            float(temperature),
            float(base_temperature),
        )

    def prototypes(self, batch: GCDBatch) -> torch.Tensor:
        src = self._source[0]
        if src is None:
            return _prototypes_of_model(batch)
        fn = getattr(src, "prototypes", src)
        return fn()

    def forward(self, batch: GCDBatch, epoch: int) -> dict[str, torch.Tensor]:
        loss = prototype_separation(self.prototypes(batch), self.temperature, self.base_temperature)
        return {"proto_sep": self.weight * loss}


def protogcd_objective(
    prototypes: nn.Module | Callable[[], torch.Tensor] | None = None,
    *,
    epochs: int = 200,
    ramp_fraction: float = 0.5,
    separation_weight: float = 0.1,
    lambda_sup: float = 0.35,
    memax_weight: float = 2.0,
    teacher_temp: float = 0.05,
) -> GCDObjective:
    """The full ProtoGCD objective: :class:`ProtoGCDLoss` (constant teacher ``teacher_temp``, DAPL ramp
    over ``ramp_fraction`` of ``epochs``, README 100 of 200) plus :class:`PrototypeSeparationTerm` with
    weight ``(1 - lambda) separation_weight`` (README: 0.1 on CIFAR-100, 0.05 on CUB). In ``paperzoo
    compare --task gcd`` the task passes ``epochs`` (its budget); the record fixes ``teacher_temp``."""
    validate_params(
        {
            "epochs": [Interval(int, 1, math.inf, closed="left")],
            "ramp_fraction": _FRACTION,
            "separation_weight": _NON_NEGATIVE,
        },
        {"epochs": epochs, "ramp_fraction": ramp_fraction, "separation_weight": separation_weight},
        owner="protogcd_objective",
    )
    ramp = max(1, round(ramp_fraction * epochs))
    base = ProtoGCDLoss(lambda_sup, memax_weight, teacher_temp=float(teacher_temp), ramp=ramp)
    sep = PrototypeSeparationTerm(prototypes, weight=(1 - lambda_sup) * separation_weight)
    return GCDObjective(base, [sep])


# --------------------------------------------------------------------------- number of classes
def labelled_kmeans_accuracy(
    features: np.ndarray, labelled_idx: np.ndarray, labels: np.ndarray, k: int, seed: int = 0
) -> float:
    """The classical GCD score of ``k``: k-means (scikit-learn, k clusters, 4 restarts) on all
    ``features``, then the clustering accuracy (one Hungarian matching) of the labelled subset."""
    from sklearn.cluster import KMeans

    from paperzoo.metrics import cluster_accuracy

    pred = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)
    lab = labels[labelled_idx]
    return float(cluster_accuracy(lab, pred[labelled_idx], np.ones(len(lab), dtype=bool))["all"])


def estimate_num_classes(
    features: np.ndarray | torch.Tensor,
    labelled_idx: np.ndarray,
    labels: np.ndarray,
    candidates: Sequence[int],
    score_fn: Callable[[np.ndarray, np.ndarray, np.ndarray, int], float] | None = None,
) -> tuple[int, dict[int, float]]:
    """Estimate the total number of classes K: the candidate with the highest score.

    Args:
        features: (N, d) features of all samples (labelled and unlabelled).
        labelled_idx: indices of the labelled samples.
        labels: (N,) or (len(labelled_idx),) labels; only the labelled ones are read.
        candidates: the K values to try (each >= the number of labelled classes, <= N).
        score_fn: ``score_fn(features, labelled_idx, labels_full, k) -> float`` (higher is better);
            default :func:`labelled_kmeans_accuracy` (the GCD paper's estimator). ProtoGCD's own
            "Prototype Score" is unconfirmed and not provided.

    Returns:
        ``(best k, {k: score})``; ties go to the smaller k.
    """
    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must have shape (N, d) with N >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features holds NaN or infinite values")
    n = x.shape[0]
    idx = np.asarray(labelled_idx, dtype=np.int64).ravel()
    if idx.size == 0:
        raise ValueError("labelled_idx is empty: the estimate needs labelled samples")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"labelled_idx must lie in [0, {n}), got values in [{idx.min()}, {idx.max()}]")
    y = np.asarray(labels).ravel()
    if y.shape[0] == idx.size and y.shape[0] != n:
        full = np.full(n, -1, dtype=np.int64)
        full[idx] = y
        y = full
    if y.shape[0] != n:
        raise ValueError(f"labels must have length N = {n} or len(labelled_idx) = {idx.size}, got {y.shape[0]}")
    cands = sorted({int(c) for c in candidates})
    if not cands:
        raise ValueError("candidates is empty")
    n_known = np.unique(y[idx]).size
    if cands[0] < max(2, n_known):
        raise ValueError(f"candidates must be >= {max(2, n_known)} (the labelled classes), got {cands[0]}")
    if cands[-1] > n:
        raise ValueError(f"k = {cands[-1]} is larger than the number of samples ({n})")
    score = score_fn if score_fn is not None else labelled_kmeans_accuracy
    scores = {k: float(score(x, idx, y, k)) for k in cands}
    best = max(cands, key=lambda k: (scores[k], -k))
    return best, scores


# --------------------------------------------------------------------------- OOD detection (the paper's extension)
OOD_SCORES = ("msp", "mls", "energy", "xent", "proto", "margin")


def ood_scores(logits: torch.Tensor, kind: str = "msp", temp: float = 0.1, energy_T: float = 1.0) -> torch.Tensor:
    """Confidence scores (N,) of cosine ``logits`` (N, K), **larger = more in-distribution** (the official
    ``ood_utils`` stores the negated values, larger = more OOD). With ``p = softmax(logits / temp)``:
    ``msp`` ``max p``; ``mls`` ``max logits``; ``energy`` ``T logsumexp(logits / T)``; ``xent``
    ``logsumexp(logits / temp) - mean(logits) / temp`` (cross-entropy to the uniform label); ``proto``
    ``p_(1) / (p_(2) + 1e-6)``; ``margin`` ``p_(1) - p_(2)``."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        raise TypeError("logits must be a floating-point torch.Tensor of shape (N, K)")
    if logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must have N >= 1 rows and K >= 2 classes, got {tuple(logits.shape)}")
    check_finite(logits, "logits")
    if kind not in OOD_SCORES:
        raise ValueError(f"kind must be one of {', '.join(OOD_SCORES)}; got {kind!r}")
    validate_params(
        {"temp": _POSITIVE, "energy_T": _POSITIVE}, {"temp": temp, "energy_T": energy_T}, owner="ood_scores"
    )
    if kind == "mls":
        return logits.max(dim=1).values
    if kind == "energy":
        return energy_T * torch.logsumexp(logits / energy_T, dim=1)
    if kind == "xent":
        return torch.logsumexp(logits / temp, dim=1) - logits.mean(dim=1) / temp
    p = F.softmax(logits / temp, dim=1)
    if kind == "msp":
        return p.max(dim=1).values
    top = p.topk(2, dim=1).values
    return top[:, 0] / (top[:, 1] + 1e-6) if kind == "proto" else top[:, 0] - top[:, 1]


def ood_metrics(scores_in: np.ndarray | torch.Tensor, scores_out: np.ndarray | torch.Tensor) -> dict[str, float]:
    """AUROC, AUPR (in-distribution as the positive class) and FPR at 95% TPR of confidence scores
    (larger = more in-distribution), on scikit-learn's ``roc_auc_score``, ``average_precision_score`` and
    ``roc_curve``: the share of OOD samples scored at or above the threshold that keeps 95% of the
    in-distribution ones."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    def arr(s: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
        a = (s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)).astype(np.float64).ravel()
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return a

    s_in, s_out = arr(scores_in, "scores_in"), arr(scores_out, "scores_out")
    y = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    s = np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }
