"""Reproduction of paper 8, UNPG (Jung et al., arXiv:2203.11593), scaled down.

Face verification on identities never seen in training, with the 30-class union of Fashion-MNIST,
MNIST and Animal-MNIST (:func:`paperzoo.data.load_union30`) standing in for identities: classes 0-19
train the embedding, classes 20-29 (Animal-MNIST, unseen) are verified and identified by cosine
similarity. The backbone is the frozen ImageNet EfficientNet-Lite0 (1280-d features, 64 px, cached on
disk once); a trainable head (standardise -> 256 ReLU -> 64-d) is trained with a margin-softmax loss
(class weights trained with it) on ordinary random mini-batches, as in the paper (no P x K sampler).

Methods (same features, batches and initialisation per seed): PML's ``ArcFaceLoss`` and
``CosFaceLoss`` (the baselines), :class:`paperzoo.losses.UNPGArcFaceLoss` and
:class:`paperzoo.losses.UNPGCosFaceLoss` (box-and-whisker k = 1.5), and ArcFace + UNPG without the
filter (k = inf; ablation, reported, not claimed).

Metrics on the unseen classes: TAR at FAR = 1e-3 and 1e-4 and the EER over all image pairs
(verification), and Rank-1 identification (gallery: even positions of the test set, queries: odd).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, plots, seed_everything, start
from paperzoo.metrics import equal_error_rate, rank1
from paperzoo.models import MLP, EmbeddingHead

PAPER = 8
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

TRAIN_CLASSES = 20
ARC, ARC_UNPG, COS, COS_UNPG, ARC_UNPG_NOFILTER = (
    "ArcFace",
    "ArcFace+UNPG",
    "CosFace",
    "CosFace+UNPG",
    "ArcFace+UNPG k=inf",
)
METHODS = (ARC, ARC_UNPG, COS, COS_UNPG, ARC_UNPG_NOFILTER)
BASELINES = (ARC, COS)
TAR3, TAR4, EER, R1 = "TAR@FAR=1e-3", "TAR@FAR=1e-4", "EER", "Rank-1"
METRICS = [TAR3, TAR4, EER, R1]


@dataclass(frozen=True)
class Config:
    """Sizes and optimisation of one run."""

    per_class: int = 200
    px: int = 64
    steps: int = 400
    batch: int = 128
    lr: float = 1e-3
    scale: float = 32.0
    arc_margin_rad: float = 0.5
    cos_margin: float = 0.35
    wisk: float = 1.5


FULL = Config()
SMOKE = Config(per_class=20, px=32, steps=8, batch=32)
CONFIGS: dict[str | None, Config] = {None: FULL, "smoke": SMOKE}


# --------------------------------------------------------------------------- data and models
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@lru_cache(maxsize=2)
def make_split(cfg: Config) -> Split:
    """Frozen EfficientNet-Lite0 features (cached on disk) of ``cfg.per_class`` images per class;
    classes 0-19 to train, 20-29 (unseen identities) to test."""
    from paperzoo.data import held_out_class_split, load_union30
    from paperzoo.models.pretrained import efficientnet_lite0_features

    data = load_union30(max_per_class=cfg.per_class, seed=0)
    feats = efficientnet_lite0_features(data.x, size=cfg.px, cache_key=f"union30-{cfg.per_class}")
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y))
    tr, te = held_out_class_split(data.y, list(range(TRAIN_CLASSES)))
    mean, std = x[tr].mean(0), x[tr].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return Split(x[tr], y[tr], x[te], y[te] - TRAIN_CLASSES)


def make_model() -> nn.Module:
    return nn.Sequential(MLP(1280, (), 256), nn.ReLU(), EmbeddingHead(256, 64))


def make_loss(method: str, cfg: Config) -> nn.Module:
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

    from paperzoo.losses import UNPGArcFaceLoss, UNPGCosFaceLoss

    arc = {"margin": math.degrees(cfg.arc_margin_rad), "scale": cfg.scale}
    cos = {"margin": cfg.cos_margin, "scale": cfg.scale}
    if method == ARC:
        return ArcFaceLoss(TRAIN_CLASSES, 64, **arc)
    if method == ARC_UNPG:
        return UNPGArcFaceLoss(TRAIN_CLASSES, 64, wisk=cfg.wisk, **arc)
    if method == ARC_UNPG_NOFILTER:
        return UNPGArcFaceLoss(TRAIN_CLASSES, 64, wisk=math.inf, **arc)
    if method == COS:
        return CosFaceLoss(TRAIN_CLASSES, 64, **cos)
    if method == COS_UNPG:
        return UNPGCosFaceLoss(TRAIN_CLASSES, 64, wisk=cfg.wisk, **cos)
    raise KeyError(method)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True-accept rate at the threshold whose false-accept rate is at most ``far`` (ROC from
    scikit-learn; the largest TPR among operating points with FPR <= far)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(same.astype(int), scores)
    return float(tpr[fpr <= far].max())


@torch.no_grad()
def verification_metrics(emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """TAR@FAR, EER over all pairs (i < j) and Rank-1 (gallery even positions, queries odd)."""
    x = torch.nn.functional.normalize(emb.double(), dim=1)
    iu = torch.triu_indices(len(x), len(x), offset=1)
    scores = (x @ x.T)[iu[0], iu[1]].numpy()
    same = (labels[iu[0]] == labels[iu[1]]).numpy()
    return {
        TAR3: tar_at_far(scores, same, 1e-3),
        TAR4: tar_at_far(scores, same, 1e-4),
        EER: equal_error_rate(scores, same),
        R1: rank1(emb[1::2], labels[1::2], emb[0::2], labels[0::2]),
    }


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(x)


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    cfg: Config
    method: str
    seed: int


def run_unit(unit: Unit) -> dict[str, Any]:
    """Train one (method, seed) and evaluate on the unseen classes; also the mean number of batch
    negatives the filter kept (UNPG methods) and the final training loss."""
    cfg, split = unit.cfg, make_split(unit.cfg)
    seed_everything(unit.seed)
    model = make_model()
    loss = make_loss(unit.method, cfg)
    loader = make_loader(TensorDataset(split.x_train, split.y_train), cfg.batch, seed=unit.seed, drop_last=True)
    epochs = math.ceil(cfg.steps / len(loader))
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=cfg.lr)
    kept: list[int] = []
    if hasattr(loss, "wisk"):
        loss.collect_stats = True

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            kept.append(int(module.kept_negatives))

        loss.register_forward_hook(hook)
    history = fit(
        model,
        loss,
        loader,
        opt,
        TrainConfig(epochs=epochs, max_steps=cfg.steps, seed=unit.seed, progress=False, desc=unit.method),
    )
    metrics = verification_metrics(embed(model, split.x_test), split.y_test)
    tail = history.losses[-max(1, len(history.losses) // 10) :]
    return {
        "metrics": metrics,
        "kept_negatives": float(np.mean(kept)) if kept else None,
        "final_loss": float(np.mean(tail)),
    }


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds``; write the result and ``plot.png`` under ``out_dir``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = CONFIGS[rep.budget]
    split = make_split(cfg)  # extract / cache the features once, before the units
    units = [Unit(cfg, method, seed) for seed in rep.seeds for method in METHODS]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=BASELINES)
    kept: dict[str, dict[str, float | None]] = {}
    final_loss: dict[str, dict[str, float]] = {}
    for unit, out in zip(units, outputs):
        table.add(unit.method, unit.seed, out["metrics"])
        kept.setdefault(unit.method, {})[str(unit.seed)] = out["kept_negatives"]
        final_loss.setdefault(unit.method, {})[str(unit.seed)] = out["final_loss"]
    claims = [
        Claim.greater(table, ARC_UNPG, ARC, TAR3),
        Claim.greater(table, ARC_UNPG, ARC, R1),
        Claim.greater(table, COS_UNPG, COS, TAR3),
        Claim.greater(table, COS_UNPG, COS, R1),
    ]
    pairs = cfg.batch * (cfg.batch - 1) // 2
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30 classes 0-{TRAIN_CLASSES - 1} train ({len(split.y_train)} images), classes {TRAIN_CLASSES}-29 "
            f"(Animal-MNIST, unseen) test ({len(split.y_test)} images, all pairs); frozen ImageNet EfficientNet-Lite0 "
            f"features ({cfg.px} px) -> standardise -> 256 ReLU -> 64-d head; {cfg.steps} Adam steps (lr {cfg.lr:g}) "
            f"of random batches of {cfg.batch} ({pairs} pairs, ~{100 * (1 - 1 / TRAIN_CLASSES):.0f}% negative); "
            f"s = {cfg.scale:g}, ArcFace m = {cfg.arc_margin_rad} rad, CosFace m = {cfg.cos_margin}, UNPG k = "
            f"{cfg.wisk}; one thread per run"
        ),
        scale_note=(
            "20 training 'identities' of 28x28 objects/digits and 10 unseen ones instead of 85k MS1MV2 identities "
            "and IJB-B/C / MegaFace; a frozen ImageNet backbone with a trained head instead of iResNet-100 trained "
            "end-to-end; with 20 classes the class weights already cover every class, so the paper's argument "
            "(classification negatives are easy, batch negatives add hard ones) is tested in a regime far from it"
        ),
        notes=(
            "ArcFace+UNPG with k = inf (no filter) is an ablation, reported, not claimed; extra['kept_negatives'] "
            "is the mean number of batch negative pairs the filter kept per step"
        ),
        highlight=(ARC_UNPG, ARC, TAR3),
        extra={"kept_negatives": kept, "final_train_loss": final_loss, "batch_negative_pairs_max": pairs},
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(2, width=6.0, height=4.5)
    plots.grouped_bars(axes[0], result.table, [TAR3, TAR4, R1], ylim=(0.0, 1.15), title="unseen classes 20-29")
    axes[0].legend(fontsize=7, loc="upper center", ncol=3)
    plots.grouped_bars(axes[1], result.table, [EER], title="EER (lower is better)")
    return plots.finish(fig, result, "UNPG vs ArcFace / CosFace")
