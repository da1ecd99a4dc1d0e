"""Happy (Ma, Zhu, Zhong, Liu, Zhang & Liu, NeurIPS 2024): continual generalized category discovery
(C-GCD) with clustering-guided initialisation, soft (group-wise) entropy regularisation,
hardness-aware prototype sampling and feature distillation, as new terms on the SimGCD foundation.

A C-GCD run (:func:`run_continual`, sessions from :func:`paperzoo.data.continual_gcd.make_cgcd_sessions`):

* stage 0: SimGCD with every sample labelled on the K_0 old classes (:func:`train_stage`, the
  foundation's :class:`~paperzoo.discovery.trainer.GCDStep` driven by :func:`paperzoo.engine.fit` over
  plainly shuffled batches); then the class prototypes and the shared radius
  (:meth:`PrototypeBank.fit_offline`).
* session t (unlabelled only): a copy of the previous model's backbone, a fresh head over K_all
  classes whose first K_seen classifier rows are the previous model's; the n_new new rows come from
  k-means centroids of the session features least similar to any known class
  (:func:`init_new_classifier_rows`); the loss is cross-view self-distillation (teacher 0.05) +
  InfoNCE (the base :class:`~paperzoo.discovery.losses.SimGCDLoss` with lambda = 0) + the extra terms
  :class:`GroupEntropyRegularizer` (in place of me-max), :class:`PrototypeSamplingTerm` and
  :class:`FeatureDistillationTerm`; afterwards the prototypes of the new classes are appended
  (:meth:`PrototypeBank.append`).

The official code (``train_happy.py``, ``models/utils_proto_aug.py``) is followed term by term.
The extra terms read the backbone features of the step, which :class:`GCDBatch` does not carry:
:class:`FeatureNet` (backbone + head) keeps the last forward's features (a hook the foundation
could grow: backbone features in ``GCDBatch``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, check_finite, validate_params
from paperzoo.discovery.heads import DINOHead
from paperzoo.discovery.trainer import GCDBatch, GCDObjective, GCDStep, cosine_per_epoch, param_groups
from paperzoo.engine import TrainConfig, fit, make_loader

__all__ = [
    "FeatureDistillationTerm",
    "FeatureNet",
    "GroupEntropyRegularizer",
    "HappyConfig",
    "PrototypeBank",
    "PrototypeSamplingTerm",
    "copy_head_rows",
    "feature_distillation_loss",
    "group_entropy_terms",
    "init_new_classifier_rows",
    "run_continual",
    "train_stage",
]

_POSITIVE = [Interval(float, 0.0, math.inf, closed="neither")]
_NON_NEGATIVE = [Interval(float, 0.0, math.inf, closed="left")]


def _check_matrix(t: Any, name: str) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.ndim != 2:
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N, D)")
    if t.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    check_finite(t, name)


# --------------------------------------------------------------------------- soft entropy
def group_entropy_terms(logits: torch.Tensor, n_seen: int, temperature: float = 0.1) -> dict[str, torch.Tensor]:
    """The three terms of Happy's soft (group-wise) entropy regulariser, each >= 0.

    With ``pbar`` the mean over rows of ``softmax(logits / temperature)``, ``P_s`` the mass of the
    first ``n_seen`` (seen) classes and ``P_n = 1 - P_s`` that of the new ones:
    ``old_new = P_s log P_s + P_n log P_n + log 2`` (the entropy deficit of the seen/new split),
    ``old_in = sum pbar^s log pbar^s + log K_seen`` and ``new_in = sum pbar^n log pbar^n + log n_new``
    with ``pbar^s``, ``pbar^n`` the within-group renormalised masses (``new_in = 0`` for one new class).

    Raises:
        ValueError: ``n_seen`` not in ``[1, K - 1]``, an empty batch or non-finite logits.
    """
    _check_matrix(logits, "logits")
    k = logits.shape[1]
    if isinstance(n_seen, bool) or not isinstance(n_seen, (int, np.integer)) or not 1 <= n_seen < k:
        raise ValueError(f"n_seen must be an int in [1, {k - 1}] (logits have {k} classes), got {n_seen!r}")
    validate_params({"temperature": _POSITIVE}, {"temperature": temperature}, owner="group_entropy_terms")
    p_bar = F.softmax(logits / temperature, dim=1).mean(dim=0)
    p_s, p_n = p_bar[:n_seen], p_bar[n_seen:]
    mass_s, mass_n = p_s.sum(), p_n.sum()
    old_new = torch.xlogy(mass_s, mass_s) + torch.xlogy(mass_n, mass_n) + math.log(2.0)
    q_s, q_n = p_s / mass_s, p_n / mass_n
    old_in = torch.xlogy(q_s, q_s).sum() + math.log(n_seen)
    n_new = k - n_seen
    new_in = torch.xlogy(q_n, q_n).sum() + math.log(n_new) if n_new > 1 else logits.sum() * 0.0
    return {"old_new": old_new, "old_in": old_in, "new_in": new_in}


class GroupEntropyRegularizer(nn.Module):
    """Happy's soft entropy regulariser as a GCD extra term: ``term(batch, epoch)`` returns
    ``{"ent_old_new", "ent_old_in", "ent_new_in"}``, each weighted (official README weights 1, 1, 1),
    over all 2B views of the step (:func:`group_entropy_terms`). It replaces SimGCD's me-max.

    Args:
        n_seen: K_seen, the classes known before the session (the first logit columns).
        weights: ``(w_old_new, w_old_in, w_new_in)``.
        temperature: the student temperature (0.1).
    """

    def __init__(self, n_seen: int, weights: Sequence[float] = (1.0, 1.0, 1.0), temperature: float = 0.1) -> None:
        if len(weights) != 3:
            raise ValueError(f"weights must be (w_old_new, w_old_in, w_new_in), got {weights!r}")
        validate_params(
            {
                "temperature": _POSITIVE,
                "w_old_new": _NON_NEGATIVE,
                "w_old_in": _NON_NEGATIVE,
                "w_new_in": _NON_NEGATIVE,
            },
            {"temperature": temperature, "w_old_new": weights[0], "w_old_in": weights[1], "w_new_in": weights[2]},
            owner=type(self).__name__,
        )
        validate_params({"n_seen": [Interval(int, 1, math.inf, closed="left")]}, {"n_seen": n_seen}, owner="n_seen")
        super().__init__()
        self.n_seen, self.weights, self.temperature = int(n_seen), tuple(float(w) for w in weights), float(temperature)

    def forward(self, batch: GCDBatch, epoch: int = 0) -> dict[str, torch.Tensor]:
        t = group_entropy_terms(batch.logits, self.n_seen, self.temperature)
        return {f"ent_{name}": w * t[name] for name, w in zip(("old_new", "old_in", "new_in"), self.weights)}


# --------------------------------------------------------------------------- feature distillation
def feature_distillation_loss(f: torch.Tensor, f_pre: torch.Tensor) -> torch.Tensor:
    """``(1/N) sum_i |normalize(f_i) - normalize(f_pre_i)|^2``: squared distance (summed over
    dimensions, mean over rows) between the L2-normalised current and previous-model features;
    ``f_pre`` is detached. 0 when the backbone has not changed."""
    _check_matrix(f, "f")
    _check_matrix(f_pre, "f_pre")
    if f.shape != f_pre.shape:
        raise ValueError(f"f and f_pre must have the same shape, got {tuple(f.shape)} and {tuple(f_pre.shape)}")
    return (F.normalize(f, dim=1) - F.normalize(f_pre.detach(), dim=1)).pow(2).sum(dim=1).mean()


class FeatureNet(nn.Module):
    """``backbone`` then a :class:`DINOHead`: ``forward(x) -> (z, logits)`` like the foundation's
    models, keeping the backbone features of the last forward in :attr:`features` (what Happy's
    prototype and distillation terms read)."""

    def __init__(self, backbone: nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.features: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.features = self.backbone(x)
        return self.head(self.features)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """L2-normalised backbone features (N, d) in eval mode."""
        self.eval()
        return torch.cat([F.normalize(self.backbone(x[i : i + chunk]), dim=1) for i in range(0, x.shape[0], chunk)])


class FeatureDistillationTerm(nn.Module):
    """Happy's feature distillation as a GCD extra term: ``{"feat_distill": weight *
    feature_distillation_loss(model.features, model_pre.backbone(views))}`` (the previous model is
    frozen, in eval mode). ``model`` is the :class:`FeatureNet` being trained (held by reference,
    not registered as a submodule)."""

    def __init__(self, model: FeatureNet, model_pre: FeatureNet, weight: float = 1.0) -> None:
        validate_params({"weight": _NON_NEGATIVE}, {"weight": weight}, owner=type(self).__name__)
        super().__init__()
        self._refs = (model, model_pre)
        self.weight = float(weight)
        model_pre.eval().requires_grad_(False)

    def forward(self, batch: GCDBatch, epoch: int = 0) -> dict[str, torch.Tensor]:
        model, model_pre = self._refs
        if model.features is None:
            raise RuntimeError("FeatureDistillationTerm: the model has not run a forward pass yet")
        with torch.no_grad():
            f_pre = model_pre.backbone(batch.views)
        return {"feat_distill": self.weight * feature_distillation_loss(model.features, f_pre)}


# --------------------------------------------------------------------------- prototypes
@dataclass
class PrototypeBank:
    """Class prototypes with one shared radius, and hardness-aware sampling of Gaussian pseudo-features
    (the official ``ProtoAugManager``).

    ``fit_offline``: ``mu_c = normalize(mean of the normalised features of class c)``, radius
    ``r = sqrt(mean_c trace(Sigma_c) / d)`` (``Sigma_c`` the biased covariance of class c's normalised
    features), computed once. ``append``: one prototype per new class, the normalised mean of the
    normalised features of the samples *predicted* as that class, or its classifier row when none is.
    ``hardness``: the mean cosine of a prototype to the others (high = hard).
    """

    feature_dim: int
    prototypes: torch.Tensor = field(init=False)
    radius: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        validate_params(
            {"feature_dim": [Interval(int, 1, math.inf, closed="left")]},
            {"feature_dim": self.feature_dim},
            owner="PrototypeBank",
        )
        self.prototypes = torch.empty(0, self.feature_dim)

    def __len__(self) -> int:
        return self.prototypes.shape[0]

    def _check(self, features: torch.Tensor, labels: torch.Tensor, name: str) -> None:
        _check_matrix(features, "features")
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"features must have {self.feature_dim} columns, got {features.shape[1]}")
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.shape != features.shape[:1]:
            raise ValueError(f"{name} must be an integer tensor of shape ({features.shape[0]},)")

    @torch.no_grad()
    def fit_offline(self, features: torch.Tensor, labels: torch.Tensor) -> PrototypeBank:
        """Prototypes of classes ``0..C-1`` (every one must occur) and the radius, from labelled features."""
        self._check(features, labels, "labels")
        n_cls = int(labels.max()) + 1
        if int(labels.min()) < 0 or torch.bincount(labels, minlength=n_cls).min() == 0:
            raise ValueError(f"labels must cover every class 0..{n_cls - 1} with no negative value")
        f = F.normalize(features.double(), dim=1)
        onehot = F.one_hot(labels, n_cls).double()  # (N, C)
        counts = onehot.sum(0)
        means = onehot.T @ f / counts[:, None]  # (C, d)
        # trace of the biased covariance = mean squared distance to the class mean
        sq = (f - means[labels]).pow(2).sum(1)
        traces = (onehot.T @ sq) / counts
        self.prototypes = F.normalize(means, dim=1).to(features.dtype)
        self.radius = float(torch.sqrt(traces.mean() / self.feature_dim))
        return self

    @torch.no_grad()
    def append(self, features: torch.Tensor, predictions: torch.Tensor, classifier_rows: torch.Tensor) -> None:
        """Add the prototypes of classes ``len(self) .. len(self) + n_new - 1`` (``classifier_rows``
        (n_new, d): their classifier rows, the fall-back of a class nobody is predicted as)."""
        self._check(features, predictions, "predictions")
        start, n_new = len(self), classifier_rows.shape[0]
        if classifier_rows.ndim != 2 or classifier_rows.shape[1] != self.feature_dim:
            raise ValueError(f"classifier_rows must be (n_new, {self.feature_dim}), got {tuple(classifier_rows.shape)}")
        f = F.normalize(features, dim=1)
        onehot = F.one_hot((predictions - start).clamp(-1, n_new).add(1), n_new + 2)[:, 1:-1].to(f.dtype)  # (N, n_new)
        counts = onehot.sum(0)
        means = torch.where(counts[:, None] > 0, onehot.T @ f / counts.clamp_min(1)[:, None], classifier_rows.to(f))
        self.prototypes = torch.cat([self.prototypes.to(f), F.normalize(means, dim=1)])

    def hardness(self) -> torch.Tensor:
        """``h_c = (1 / (N_p - 1)) sum_{j != c} mu_c . mu_j`` (N_p,) (zeros with a single prototype)."""
        n = len(self)
        if n < 2:
            return torch.zeros(n, dtype=self.prototypes.dtype)
        sim = self.prototypes @ self.prototypes.T
        return (sim.sum(1) - sim.diagonal()) / (n - 1)

    def probabilities(self, temperature: float = 0.1) -> torch.Tensor:
        """The sampling distribution ``softmax(h / temperature)`` (uniform for ``temperature = inf``)."""
        validate_params(
            {"temperature": [Interval(float, 0.0, math.inf, closed="right")]},
            {"temperature": temperature},
            owner="PrototypeBank",
        )
        if math.isinf(temperature):
            return torch.full((len(self),), 1.0 / len(self), dtype=self.prototypes.dtype)
        return F.softmax(self.hardness() / temperature, dim=0)

    def sample(
        self,
        n: int,
        temperature: float = 0.1,
        radius_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pseudo-features ``mu_c + r * radius_scale * eps`` (eps ~ N(0, I)) with labels
        ``c ~ softmax(h / temperature)`` drawn with replacement; ``temperature = inf`` samples uniformly."""
        validate_params(
            {"n": [Interval(int, 1, math.inf, closed="left")], "radius_scale": _NON_NEGATIVE},
            {"n": n, "radius_scale": radius_scale},
            owner="PrototypeBank.sample",
        )
        if len(self) == 0:
            raise ValueError("PrototypeBank.sample: the bank holds no prototype (call fit_offline first)")
        labels = torch.multinomial(self.probabilities(temperature), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.feature_dim, generator=generator, dtype=self.prototypes.dtype)
        return self.prototypes[labels] + self.radius * radius_scale * noise, labels


class PrototypeSamplingTerm(nn.Module):
    """Happy's hardness-aware prototype sampling as a GCD extra term: draws 2B pseudo-features from
    ``bank`` (the classes known before the session) and returns ``{"proto": weight * CE(classifier(u)
    / 0.1, c)}`` through the trained model's cosine classifier. ``hardness_aware=False`` samples the
    classes uniformly (the ablation). The bank must not change during the session."""

    def __init__(
        self,
        model: FeatureNet,
        bank: PrototypeBank,
        weight: float = 1.0,
        temperature: float = 0.1,
        hardness_temperature: float = 0.1,
        radius_scale: float = 1.0,
        hardness_aware: bool = True,
    ) -> None:
        validate_params(
            {
                "weight": _NON_NEGATIVE,
                "temperature": _POSITIVE,
                "hardness_temperature": [Interval(float, 0.0, math.inf, closed="right")],
            },
            {"weight": weight, "temperature": temperature, "hardness_temperature": hardness_temperature},
            owner=type(self).__name__,
        )
        super().__init__()
        self._refs = (model, bank)
        self.weight, self.temperature, self.radius_scale = float(weight), float(temperature), float(radius_scale)
        self.hardness_temperature = float(hardness_temperature) if hardness_aware else math.inf

    def forward(self, batch: GCDBatch, epoch: int = 0) -> dict[str, torch.Tensor]:
        model, bank = self._refs
        u, c = bank.sample(batch.logits.shape[0], self.hardness_temperature, self.radius_scale)
        logits = model.head.classifier(u.to(batch.logits)) / self.temperature
        return {"proto": self.weight * F.cross_entropy(logits, c.to(batch.logits.device))}


# --------------------------------------------------------------------------- initialisation
def init_new_classifier_rows(
    features: torch.Tensor, old_rows: torch.Tensor, n_new: int, n_clusters: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Clustering-guided initialisation: k-means (scikit-learn, ``n_clusters`` = K_all by default,
    ``random_state = seed``) on the L2-normalised ``features``; the ``n_new`` normalised centroids
    whose largest cosine to the ``old_rows`` (K_seen, d) is smallest become the new rows (n_new, d), unit norm.

    Raises:
        ValueError: more clusters than samples, ``n_new > n_clusters`` or mismatched dimensions.
    """
    from sklearn.cluster import KMeans

    _check_matrix(features, "features")
    _check_matrix(old_rows, "old_rows")
    if features.shape[1] != old_rows.shape[1]:
        raise ValueError(
            f"features and old_rows must have the same width, got {features.shape[1]} and {old_rows.shape[1]}"
        )
    k = n_clusters if n_clusters is not None else old_rows.shape[0] + n_new
    validate_params(
        {
            "n_new": [Interval(int, 1, math.inf, closed="left")],
            "n_clusters": [Interval(int, 1, math.inf, closed="left")],
        },
        {"n_new": n_new, "n_clusters": k},
        owner="init_new_classifier_rows",
    )
    if k > features.shape[0]:
        raise ValueError(
            f"init_new_classifier_rows: n_clusters={k} is larger than the number of samples ({features.shape[0]})"
        )
    if n_new > k:
        raise ValueError(f"init_new_classifier_rows: n_new={n_new} is larger than n_clusters={k}")
    f = F.normalize(features.detach().double(), dim=1).cpu().numpy()
    centres = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(f).cluster_centers_
    centres_t = F.normalize(torch.from_numpy(centres), dim=1)
    max_cos = (centres_t @ F.normalize(old_rows.detach().double().cpu(), dim=1).T).max(dim=1).values
    pick = torch.argsort(max_cos, stable=True)[:n_new]
    return centres_t[pick].to(features.dtype)


@torch.no_grad()
def copy_head_rows(head: DINOHead, rows: torch.Tensor, start: int = 0) -> None:
    """Write ``rows`` (n, d) into the classifier direction ``v`` of ``head`` from row ``start``
    (weight norm: the logits only see the direction; ``g`` stays 1)."""
    v = head.classifier.linear.parametrizations.weight.original1
    if rows.ndim != 2 or rows.shape[1] != v.shape[1] or start + rows.shape[0] > v.shape[0]:
        raise ValueError(f"rows must be (n, {v.shape[1]}) with start + n <= {v.shape[0]}, got {tuple(rows.shape)}")
    v[start : start + rows.shape[0]] = rows.to(v)


# --------------------------------------------------------------------------- training
def train_stage(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    views: Callable[[torch.Tensor], torch.Tensor],
    objective: nn.Module,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.1,
    weight_decay: float = 5e-5,
    seed: int = 0,
) -> GCDStep:
    """One C-GCD stage (all labelled, or all unlabelled with ``targets = -1``): the foundation's
    :class:`GCDStep` driven by :func:`paperzoo.engine.fit` over plainly shuffled batches (the
    foundation's labelled/unlabelled sampler needs both kinds), SGD momentum 0.9, cosine per epoch
    to ``lr * 1e-3``, last batch dropped."""
    validate_params(
        {"epochs": [Interval(int, 1, math.inf, closed="left")], "lr": _POSITIVE},
        {"epochs": epochs, "lr": lr},
        owner="train_stage",
    )
    if x.shape[0] < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {x.shape[0]} training samples")
    loader = make_loader(torch.utils.data.TensorDataset(x, targets), batch_size, seed=seed, drop_last=True)
    opt = torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=0.9)
    step = GCDStep(objective, views, loader.sampler)
    cfg = TrainConfig(epochs=epochs, seed=seed, progress=False, desc="cgcd")
    fit(model, None, loader, opt, cfg, scheduler=cosine_per_epoch(opt, epochs, len(loader)), compute_loss=step)
    return step


@dataclass(frozen=True)
class HappyConfig:
    """A C-GCD method: Happy's switches (all on) or the SimGCD session-by-session baseline
    (:meth:`simgcd`: random new rows, plain me-max, no prototypes, no distillation).

    Attributes:
        init_new_head: clustering-guided initialisation of the new rows.
        soft_entropy: the group-wise entropy regulariser (else SimGCD's me-max, weight ``memax_weight``).
        prototypes: ``"hardness"``, ``"uniform"`` or ``"off"``.
        feature_distillation: the feature-distillation term.
        entropy_weights, lambda_proto, lambda_fd, memax_weight: the weights (1, 1, 1 / 1 / 1 / 1).
        teacher_temp: the constant session teacher temperature (0.05).
        stage0_epochs, session_epochs, batch_size, stage0_lr, session_lr: optimisation.
        stage0_memax: epsilon of stage 0 (1).
        frozen_backbone_layers: leading backbone modules frozen after stage 0.
    """

    init_new_head: bool = True
    soft_entropy: bool = True
    prototypes: str = "hardness"
    feature_distillation: bool = True
    entropy_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lambda_proto: float = 1.0
    lambda_fd: float = 1.0
    memax_weight: float = 1.0
    teacher_temp: float = 0.05
    stage0_epochs: int = 60
    session_epochs: int = 30
    batch_size: int = 64
    stage0_lr: float = 0.1
    session_lr: float = 0.05
    stage0_memax: float = 1.0
    frozen_backbone_layers: int = 0

    def __post_init__(self) -> None:
        if self.prototypes not in ("hardness", "uniform", "off"):
            raise ValueError(f"prototypes must be 'hardness', 'uniform' or 'off', got {self.prototypes!r}")

    @classmethod
    def simgcd(cls, **kw: Any) -> HappyConfig:
        """The SimGCD session-by-session baseline with the same optimisation."""
        return replace(cls(**kw), init_new_head=False, soft_entropy=False, prototypes="off", feature_distillation=False)


def _session_objective(cfg: HappyConfig, model: FeatureNet, model_pre: FeatureNet, bank: PrototypeBank, n_seen: int):
    from paperzoo.discovery.losses import SimGCDLoss

    memax = 0.0 if cfg.soft_entropy else cfg.memax_weight
    base = SimGCDLoss(lambda_sup=0.0, memax_weight=memax, teacher_temp=(cfg.teacher_temp, cfg.teacher_temp, 1))
    terms: list[nn.Module] = []
    if cfg.soft_entropy:
        terms.append(GroupEntropyRegularizer(n_seen, cfg.entropy_weights))
    if cfg.prototypes != "off":
        terms.append(PrototypeSamplingTerm(model, bank, cfg.lambda_proto, hardness_aware=cfg.prototypes == "hardness"))
    if cfg.feature_distillation:
        terms.append(FeatureDistillationTerm(model, model_pre, cfg.lambda_fd))
    return GCDObjective(base, terms)


def run_continual(
    backbone: nn.Module,
    make_head: Callable[[int], DINOHead],
    x: torch.Tensor,
    y: np.ndarray,
    sessions: Any,
    views: Callable[[torch.Tensor], torch.Tensor],
    cfg: HappyConfig,
    *,
    seed: int = 0,
    stage0: FeatureNet | None = None,
    on_session: Callable[[int, FeatureNet], None] | None = None,
) -> tuple[FeatureNet, FeatureNet]:
    """Stage 0 then every session of ``sessions`` (:class:`~paperzoo.data.continual_gcd.CGCDSessions`).

    Args:
        backbone: the feature extractor (trained at stage 0, copied every session).
        make_head: ``n_classes -> DINOHead`` (a fresh head per session).
        x: all training inputs; ``y``: labels already in class order (``sessions.relabel``).
        stage0: a stage-0 model to start from (shared between methods); None trains one.
        on_session: called ``(t, model)`` after session t (evaluation).

    Returns:
        ``(stage0 model, final model)``.
    """
    from paperzoo.discovery.losses import SimGCDLoss

    if stage0 is None:
        stage0 = FeatureNet(backbone, make_head(sessions.n_old))
        idx = torch.from_numpy(sessions.stage0_idx)
        warmup = max(1, round(0.15 * cfg.stage0_epochs))
        obj = GCDObjective(SimGCDLoss(memax_weight=cfg.stage0_memax, teacher_temp=(0.07, 0.04, warmup)))
        targets = torch.as_tensor(y[sessions.stage0_idx], dtype=torch.int64)
        train_stage(stage0, x[idx], targets, views, obj, epochs=cfg.stage0_epochs, batch_size=cfg.batch_size,
                    lr=cfg.stage0_lr, seed=seed)  # fmt: skip
    bank = PrototypeBank(stage0.head.classifier.in_dim)
    idx0 = torch.from_numpy(sessions.stage0_idx)
    bank.fit_offline(stage0.embed(x[idx0]), torch.as_tensor(y[sessions.stage0_idx], dtype=torch.int64))

    model_pre = stage0
    for t in range(1, sessions.n_sessions + 1):
        n_seen, n_all = sessions.n_seen(t), sessions.n_all(t)
        xs = x[torch.from_numpy(sessions.session_idx[t - 1])]
        model = FeatureNet(copy.deepcopy(model_pre.backbone), make_head(n_all))
        model.backbone.requires_grad_(True)
        for layer in list(model.backbone.children())[: cfg.frozen_backbone_layers]:
            layer.requires_grad_(False)
        copy_head_rows(model.head, model_pre.head.classifier.prototypes().detach())
        if cfg.init_new_head:
            rows = init_new_classifier_rows(model_pre.embed(xs), model_pre.head.classifier.prototypes().detach(),
                                            n_all - n_seen, seed=0)  # fmt: skip
            copy_head_rows(model.head, rows, start=n_seen)
        model_pre.eval().requires_grad_(False)
        obj = _session_objective(cfg, model, model_pre, bank, n_seen)
        targets = torch.full((xs.shape[0],), -1, dtype=torch.int64)
        train_stage(model, xs, targets, views, obj, epochs=cfg.session_epochs, batch_size=cfg.batch_size,
                    lr=cfg.session_lr, seed=seed + 1000 * t)  # fmt: skip
        model.eval()
        with torch.no_grad():
            feats = model.embed(xs)
            preds = model.head.classifier(feats).argmax(1)
        bank.append(feats, preds, model.head.classifier.prototypes().detach()[n_seen:])
        if on_session is not None:
            on_session(t, model)
        model_pre = model
    return stage0, model_pre
