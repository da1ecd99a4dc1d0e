"""Reproduction of paper 8, UNPG (Jung et al., arXiv:2203.11593), scaled down.

Face verification on identities never seen in training, with the 30-class union of Fashion-MNIST,
MNIST and Animal-MNIST (:func:`paperzoo.data.load_union30`, 200 images per class) standing in for
identities: classes 0-19 train the embedding, classes 20-29 (Animal-MNIST, unseen) are verified and
identified by cosine similarity. Two settings on the same images, split, methods and protocol, each
reported as its own row group of the table (``"<method> (effnet)"``, ``"<method> (scratch)"``):

* **effnet**: the frozen ImageNet EfficientNet-Lite0 (1280-d features, 64 px, cached on disk once) and
  a trainable head (standardise -> 256 ReLU -> 64-d), 400 Adam steps of batches of 128;
* **scratch**: a small :class:`paperzoo.models.ConvNet` (width 8) trained from scratch on the raw 28x28
  images (standardised) with a 64-d head, fewer and smaller batches (CPU budget).

Each head is trained with a margin-softmax loss (class weights trained with it) on ordinary random
mini-batches, as in the paper (no P x K sampler).

Methods (same inputs, batches and initialisation per seed and setting): PML's ``ArcFaceLoss`` and
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
from paperzoo.models import MLP, ConvNet, EmbeddingHead

PAPER = 8
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

TRAIN_CLASSES = 20
EMBED_DIM = 64
ARC, ARC_UNPG, COS, COS_UNPG, ARC_UNPG_NOFILTER = (
    "ArcFace",
    "ArcFace+UNPG",
    "CosFace",
    "CosFace+UNPG",
    "ArcFace+UNPG k=inf",
)
LOSSES = (ARC, ARC_UNPG, COS, COS_UNPG, ARC_UNPG_NOFILTER)
EFFNET, SCRATCH = "effnet", "scratch"
SETTINGS = (EFFNET, SCRATCH)


def method_name(loss: str, setting: str) -> str:
    """The table row of ``loss`` in ``setting``, e.g. ``"ArcFace+UNPG (scratch)"``."""
    return f"{loss} ({setting})"


METHODS = tuple(method_name(loss, setting) for setting in SETTINGS for loss in LOSSES)
BASELINES = tuple(method_name(loss, setting) for setting in SETTINGS for loss in (ARC, COS))
TAR3, TAR4, EER, R1 = "TAR@FAR=1e-3", "TAR@FAR=1e-4", "EER", "Rank-1"
METRICS = [TAR3, TAR4, EER, R1]


@dataclass(frozen=True)
class Config:
    """Sizes and optimisation of one run (``scratch_*``: the from-scratch ConvNet setting)."""

    per_class: int = 200
    px: int = 64
    steps: int = 400
    batch: int = 128
    lr: float = 1e-3
    scale: float = 32.0
    arc_margin_rad: float = 0.5
    cos_margin: float = 0.35
    wisk: float = 1.5
    conv_width: int = 8
    scratch_steps: int = 300
    scratch_batch: int = 64
    scratch_lr: float = 2e-3

    def steps_batch_lr(self, setting: str) -> tuple[int, int, float]:
        if setting == SCRATCH:
            return self.scratch_steps, self.scratch_batch, self.scratch_lr
        return self.steps, self.batch, self.lr


FULL = Config()
SMOKE = Config(per_class=20, px=32, steps=8, batch=32, conv_width=4, scratch_steps=4, scratch_batch=32)
CONFIGS: dict[str | None, Config] = {None: FULL, "smoke": SMOKE}


# --------------------------------------------------------------------------- data and models
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@lru_cache(maxsize=4)
def make_split(cfg: Config, setting: str = EFFNET) -> Split:
    """``cfg.per_class`` images per class of the 30-class union, classes 0-19 to train, 20-29 (unseen
    identities) to test, as frozen EfficientNet-Lite0 features (``"effnet"``, cached on disk, standardised
    per feature) or raw 28x28 images (``"scratch"``, standardised with the training pixels' mean and std);
    the same images in both settings."""
    from paperzoo.data import held_out_class_split, load_union30

    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    data = load_union30(max_per_class=cfg.per_class, seed=0)
    y = torch.from_numpy(np.asarray(data.y))
    tr, te = held_out_class_split(data.y, list(range(TRAIN_CLASSES)))
    if setting == EFFNET:
        from paperzoo.models.pretrained import efficientnet_lite0_features

        feats = efficientnet_lite0_features(data.x, size=cfg.px, cache_key=f"union30-{cfg.per_class}")
        x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        mean, std = x[tr].mean(0), x[tr].std(0).clamp_min(1e-6)
    else:
        x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
        mean, std = x[tr].mean(), x[tr].std().clamp_min(1e-6)
    x = (x - mean) / std
    return Split(x[tr], y[tr], x[te], y[te] - TRAIN_CLASSES)


def make_model(setting: str = EFFNET, cfg: Config = FULL) -> nn.Module:
    """The trained network: a head on the frozen features, or a ConvNet from scratch on the images."""
    if setting == SCRATCH:
        return nn.Sequential(ConvNet(1, cfg.conv_width, 128), nn.ReLU(), EmbeddingHead(128, EMBED_DIM))
    return nn.Sequential(MLP(1280, (), 256), nn.ReLU(), EmbeddingHead(256, EMBED_DIM))


def make_loss(method: str, cfg: Config) -> nn.Module:
    """The loss of ``method`` (a loss name of :data:`LOSSES`, with or without its setting suffix)."""
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

    from paperzoo.losses import UNPGArcFaceLoss, UNPGCosFaceLoss

    for setting in SETTINGS:
        method = method.removesuffix(f" ({setting})")
    arc = {"margin": math.degrees(cfg.arc_margin_rad), "scale": cfg.scale}
    cos = {"margin": cfg.cos_margin, "scale": cfg.scale}
    if method == ARC:
        return ArcFaceLoss(TRAIN_CLASSES, EMBED_DIM, **arc)
    if method == ARC_UNPG:
        return UNPGArcFaceLoss(TRAIN_CLASSES, EMBED_DIM, wisk=cfg.wisk, **arc)
    if method == ARC_UNPG_NOFILTER:
        return UNPGArcFaceLoss(TRAIN_CLASSES, EMBED_DIM, wisk=math.inf, **arc)
    if method == COS:
        return CosFaceLoss(TRAIN_CLASSES, EMBED_DIM, **cos)
    if method == COS_UNPG:
        return UNPGCosFaceLoss(TRAIN_CLASSES, EMBED_DIM, wisk=cfg.wisk, **cos)
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
def embed(model: nn.Module, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    cfg: Config
    setting: str
    loss: str
    seed: int

    @property
    def method(self) -> str:
        return method_name(self.loss, self.setting)


def run_unit(unit: Unit) -> dict[str, Any]:
    """Train one (setting, loss, seed) and evaluate on the unseen classes; also the mean number of batch
    negatives the filter kept (UNPG methods) and the final training loss."""
    cfg, split = unit.cfg, make_split(unit.cfg, unit.setting)
    steps, batch, lr = cfg.steps_batch_lr(unit.setting)
    seed_everything(unit.seed)
    model = make_model(unit.setting, cfg)
    loss = make_loss(unit.loss, cfg)
    loader = make_loader(TensorDataset(split.x_train, split.y_train), batch, seed=unit.seed, drop_last=True)
    epochs = math.ceil(steps / len(loader))
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=lr)
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
        TrainConfig(epochs=epochs, max_steps=steps, seed=unit.seed, progress=False, desc=unit.method),
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
    splits = {s: make_split(cfg, s) for s in SETTINGS}  # extract / cache the features once, before the units
    # scratch units first: they are the longest, so the two workers finish together
    units = [Unit(cfg, s, loss, seed) for s in reversed(SETTINGS) for seed in rep.seeds for loss in LOSSES]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=BASELINES)
    kept: dict[str, dict[str, float | None]] = {}
    final_loss: dict[str, dict[str, float]] = {}
    for unit, out in zip(units, outputs):
        table.add(unit.method, unit.seed, out["metrics"])
        kept.setdefault(unit.method, {})[str(unit.seed)] = out["kept_negatives"]
        final_loss.setdefault(unit.method, {})[str(unit.seed)] = out["final_loss"]
    claims = [
        Claim.greater(table, method_name(new, s), method_name(base, s), metric)
        for s in SETTINGS
        for new, base in ((ARC_UNPG, ARC), (COS_UNPG, COS))
        for metric in (TAR3, R1)
    ]
    pairs = {s: cfg.steps_batch_lr(s)[1] * (cfg.steps_batch_lr(s)[1] - 1) // 2 for s in SETTINGS}
    eff, scr = splits[EFFNET], splits[SCRATCH]
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30 classes 0-{TRAIN_CLASSES - 1} train ({len(eff.y_train)} images), classes {TRAIN_CLASSES}-29 "
            f"(Animal-MNIST, unseen) test ({len(eff.y_test)} images, all pairs); the same images in both settings. "
            f"effnet: frozen ImageNet EfficientNet-Lite0 features ({cfg.px} px) -> standardise -> 256 ReLU -> 64-d "
            f"head; {cfg.steps} Adam steps (lr {cfg.lr:g}) of random batches of {cfg.batch} ({pairs[EFFNET]} pairs). "
            f"scratch: raw {tuple(scr.x_train.shape[2:])} images (standardised) -> ConvNet(width {cfg.conv_width}) "
            f"-> 128 ReLU -> 64-d head, from scratch; {cfg.scratch_steps} Adam steps (lr {cfg.scratch_lr:g}) of "
            f"random batches of {cfg.scratch_batch} ({pairs[SCRATCH]} pairs). Both: ~"
            f"{100 * (1 - 1 / TRAIN_CLASSES):.0f}% of batch pairs negative; s = {cfg.scale:g}, ArcFace m = "
            f"{cfg.arc_margin_rad} rad, CosFace m = {cfg.cos_margin}, UNPG k = {cfg.wisk}; one thread per run"
        ),
        scale_note=(
            "20 training 'identities' of 28x28 objects/digits and 10 unseen ones instead of 85k MS1MV2 identities "
            "and IJB-B/C / MegaFace; a frozen ImageNet backbone with a trained head, or a 4-layer ConvNet (21k "
            "parameters) trained from scratch for a few hundred steps, instead of iResNet-100 trained end-to-end; "
            "with 20 classes the class weights already cover every class, so the paper's argument (classification "
            "negatives are easy, batch negatives add hard ones) is tested in a regime far from it"
        ),
        notes=(
            "one row group per setting: '<method> (effnet)' and '<method> (scratch)', same images, split, seeds "
            "and protocol; claims are stated per setting. ArcFace+UNPG with k = inf (no filter) is an ablation, "
            "reported, not claimed; extra['kept_negatives'] is the mean number of batch negative pairs the filter "
            "kept per step"
        ),
        highlight=(method_name(ARC_UNPG, EFFNET), method_name(ARC, EFFNET), TAR3),
        extra={
            "kept_negatives": kept,
            "final_train_loss": final_loss,
            "batch_negative_pairs_max": pairs,
            "sizes": {s: {"train": len(sp.y_train), "test": len(sp.y_test)} for s, sp in splits.items()},
        },
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _setting_table(table: Table, setting: str) -> Table:
    """The rows of one setting, named by their loss only."""
    sub = Table(table.metrics, LOSSES, baselines=(ARC, COS))
    for loss in LOSSES:
        method = method_name(loss, setting)
        for i, seed in enumerate(table.seeds(method)):
            sub.add(loss, seed, {m: table.values(method, m)[i] for m in table.metrics})
    return sub


def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(4, width=4.5, height=4.5, width_ratios=[1.6, 0.7, 1.6, 0.7])
    for i, setting in enumerate(SETTINGS):
        sub = _setting_table(result.table, setting)
        plots.grouped_bars(axes[2 * i], sub, [TAR3, TAR4, R1], ylim=(0.0, 1.15), title=f"{setting}: unseen 20-29")
        plots.grouped_bars(axes[2 * i + 1], sub, [EER], title=f"{setting}: EER (lower is better)")
    axes[0].legend(fontsize=7, loc="upper center", ncol=2)
    return plots.finish(fig, result, "UNPG vs ArcFace / CosFace (frozen EfficientNet-Lite0 | ConvNet from scratch)")
