"""Reproduction of paper 32, Metrix: mixup for deep metric learning (Venkataramanan et al., ICLR 2022),
scaled down.

Zero-shot retrieval on unseen classes (the paper's protocol: train and test classes disjoint): the
30-class union of Fashion-MNIST, MNIST and Animal-MNIST (:func:`paperzoo.data.load_union30`), classes
0-19 to train and the 10 Animal-MNIST classes 20-29 to retrieve among (each test image queries all
others, cosine similarity; Recall@1 and MAP@R from :func:`paperzoo.metrics.retrieval_metrics`). Two
settings, each with the same balanced batches (12 classes x 5 images, 5 per class as the official
code), the same initialisation per seed and Adam, trained through :func:`paperzoo.engine.fit`:

* **img**: raw 28 x 28 images, a small ConvNet + 64-d L2-normalised embedding head, from scratch;
* **feat**: frozen ImageNet EfficientNet-Lite0 features (64 px, cached once on disk) and a trainable
  MLP embedding head 1280-256-64 (the stand-in for the paper's fine-tuned ImageNet ResNet-50).

Methods: PML's contrastive loss (Euclidean, margins 0 / 0.5, the official configuration) and the
multi-similarity loss of paper #28, each without and with Metrix embedding mixup
(:class:`paperzoo.losses.MetrixContrastiveLoss`, :class:`paperzoo.losses.MetrixMultiSimilarityLoss`,
``w = 0.4``, ``lam ~ Beta(2, 2)``), plus Metrix input mixup around the contrastive loss
(:class:`paperzoo.training.metrix.MetrixInputMixup`, hardest negative only): in **img** it mixes images,
in **feat** it mixes the frozen backbone features, i.e. the paper's feature variant. The
utilisation of the test embeddings (distance to the nearest clean training embedding) is reported
without a claimed direction.
"""

from __future__ import annotations

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
from paperzoo.metrics import retrieval_metrics
from paperzoo.models import MLP, ConvNet, EmbeddingHead

PAPER = 32
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

CON, MX_CON, MXI_CON = "contrastive", "Metrix/embed contrastive", "Metrix/input contrastive"
MS, MX_MS = "MS", "Metrix/embed MS"
METHODS = (CON, MX_CON, MXI_CON, MS, MX_MS)
BASELINES = (CON, MS)
PAIRS = ((MX_CON, CON), (MXI_CON, CON), (MX_MS, MS))
SETTINGS = ("img", "feat")
METRICS = [f"{s} {m}" for s in SETTINGS for m in ("R@1", "MAP@R", "util")]
TRAIN_CLASSES = 20


@dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    per_class: int  # images per class kept from the union (features cached for exactly these)
    img_steps: int
    feat_steps: int
    classes_per_batch: int = 12
    m: int = 5
    lr: float = 1e-3
    conv_width: int = 8
    px: int = 64  # EfficientNet input size


FULL = Config(per_class=200, img_steps=300, feat_steps=600)
SMOKE = Config(per_class=20, img_steps=6, feat_steps=6, classes_per_batch=6, conv_width=4, px=32)
CONFIGS: dict[str | None, Config] = {None: FULL, "smoke": SMOKE}


# --------------------------------------------------------------------------- data
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@lru_cache(maxsize=4)
def make_split(cfg: Config, setting: str) -> Split:
    """Classes 0-19 (Fashion-MNIST + MNIST) to train, 20-29 (Animal-MNIST) to retrieve among; images
    (``img``) or their frozen EfficientNet-Lite0 features (``feat``, cached on disk)."""
    from paperzoo.data import held_out_class_split, load_union30

    data = load_union30(max_per_class=cfg.per_class, seed=0)
    if setting == "img":
        x = torch.from_numpy(np.ascontiguousarray(data.x))
    else:
        from paperzoo.models.pretrained import efficientnet_lite0_features

        feats = efficientnet_lite0_features(data.x, size=cfg.px, cache_key=f"union30-{cfg.per_class}")
        x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y))
    tr, te = held_out_class_split(data.y, list(range(TRAIN_CLASSES)))
    return Split(x[tr], y[tr], x[te], y[te])


def make_model(cfg: Config, setting: str) -> nn.Module:
    if setting == "img":
        return nn.Sequential(ConvNet(1, cfg.conv_width, 128), nn.ReLU(), EmbeddingHead(128, 64))
    return nn.Sequential(MLP(1280, (), 256), nn.ReLU(), EmbeddingHead(256, 64))


def make_objective(method: str) -> dict[str, Any]:
    """``fit`` keyword arguments (``loss_fn`` or ``compute_loss``) of a method."""
    from pytorch_metric_learning.losses import ContrastiveLoss

    from paperzoo.losses import MetrixContrastiveLoss, MetrixMultiSimilarityLoss, MultiSimilarityLoss
    from paperzoo.training.metrix import MetrixInputMixup

    if method == CON:
        return {"loss_fn": ContrastiveLoss(pos_margin=0.0, neg_margin=0.5)}
    if method == MX_CON:
        return {"loss_fn": MetrixContrastiveLoss()}
    if method == MXI_CON:
        return {"loss_fn": None, "compute_loss": MetrixInputMixup(MetrixContrastiveLoss(), top_k=1)}
    if method == MS:
        return {"loss_fn": MultiSimilarityLoss()}
    if method == MX_MS:
        return {"loss_fn": MetrixMultiSimilarityLoss()}
    raise KeyError(method)


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``method`` trained in ``setting`` with ``seed``."""

    cfg: Config
    setting: str
    method: str
    seed: int


def run_unit(unit: Unit) -> dict[str, float]:
    """Train one (setting, method, seed) and return Recall@1, MAP@R and utilisation on unseen classes."""
    from paperzoo.data import m_per_class_sampler
    from paperzoo.losses.metrix import utilization

    cfg = unit.cfg
    split = make_split(cfg, unit.setting)
    steps = cfg.img_steps if unit.setting == "img" else cfg.feat_steps
    seed_everything(unit.seed)
    model = make_model(cfg, unit.setting)
    batch = cfg.classes_per_batch * cfg.m
    sampler = m_per_class_sampler(split.y_train, cfg.m, batch, length_before_new_iter=steps * batch)
    loader = make_loader(TensorDataset(split.x_train, split.y_train), batch, sampler=sampler)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    fit(
        model,
        optimizer=opt,
        loader=loader,
        config=TrainConfig(
            epochs=1, max_steps=steps, seed=unit.seed, progress=False, grad_clip_norm=10.0, desc=unit.method
        ),
        **make_objective(unit.method),
    )
    test_emb = embed(model, split.x_test)
    metrics = retrieval_metrics(test_emb, split.y_test, ks=(1,))
    util = utilization(test_emb, embed(model, split.x_train))
    return {
        f"{unit.setting} R@1": metrics["R@1"],
        f"{unit.setting} MAP@R": metrics["MAP@R"],
        f"{unit.setting} util": util,
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
    """Run the reproduction over ``seeds`` in up to ``jobs`` processes; write the result, its summary
    and ``plot.png`` under ``out_dir/32-metrix-mixup-deep-metric-learning/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = CONFIGS[rep.budget]
    splits = {s: make_split(cfg, s) for s in SETTINGS}  # extracts and caches the features once, here
    units = [Unit(cfg, setting, method, seed) for seed in rep.seeds for setting in SETTINGS for method in METHODS]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=BASELINES)
    per_seed: dict[tuple[str, int], dict[str, float]] = {}
    for unit, out in zip(units, outputs):
        per_seed.setdefault((unit.method, unit.seed), {}).update(out)
    for (method, seed), values in per_seed.items():
        table.add(method, seed, values)
    claims = [Claim.greater(table, new, base, f"{s} R@1") for s in SETTINGS for new, base in PAIRS]
    img, feat = splits["img"], splits["feat"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30 ({cfg.per_class} images per class): train classes 0-19 ({len(img.y_train)} images), retrieve "
            f"among unseen classes 20-29 ({len(img.y_test)} images). img: ConvNet(width {cfg.conv_width}) + 64-d "
            f"L2-normalised head from scratch, {cfg.img_steps} steps; feat: frozen EfficientNet-Lite0 features "
            f"({cfg.px} px, {feat.x_train.shape[1]}-d) + MLP head 1280-256-64, {cfg.feat_steps} steps. Batches of "
            f"{cfg.classes_per_batch} classes x {cfg.m}, Adam lr {cfg.lr}, grad-norm clip 10. Contrastive: Euclidean, "
            "margins 0/0.5; MS: alpha 2, beta 50, base 0.5, epsilon 0.1; Metrix: w 0.4, lam ~ Beta(2, 2) per step, "
            "all positive-negative triples (embed) or the hardest negative per anchor (input)"
        ),
        scale_note=(
            "28x28 grayscale images, a small ConvNet or frozen 64-px EfficientNet-Lite0 features with a trained "
            "head instead of a fine-tuned ImageNet ResNet-50 on CUB/Cars/SOP/In-Shop; 10 unseen classes instead of "
            "98-11,316; 300 (img) / 600 (feat) steps instead of 100 epochs; absolute Recall@1 values are not comparable with the "
            "paper's, only the ordering with and without mixup"
        ),
        notes=(
            "util = mean squared distance from each test embedding to its nearest clean training embedding "
            "(reported, not claimed: whether the paper's reference set also holds mixed embeddings is "
            "unconfirmed). In 'feat', "
            "'Metrix/input' mixes the frozen backbone features, i.e. the paper's feature variant."
        ),
        highlight=(MX_CON, CON, "img R@1"),
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(3, width=5.0, height=4.4, width_ratios=[1.0, 1.0, 0.9])
    for ax, setting, title in (
        (axes[0], "img", "raw images, ConvNet from scratch"),
        (axes[1], "feat", "frozen EfficientNet-Lite0 features + head"),
    ):
        names = [f"{setting} R@1", f"{setting} MAP@R"]
        plots.grouped_bars(ax, result.table, names, labels=["R@1", "MAP@R"], ylim=(0.0, 1.0), title=title)
    plots.grouped_bars(
        axes[2],
        result.table,
        ["img util", "feat util"],
        labels=["img", "feat"],
        ylabel="sq. distance to nearest train embedding",
        title="utilisation (lower = closer), not claimed",
    )
    axes[0].legend(fontsize=8, loc="upper right")
    return plots.finish(fig, result, "Metrix mixup vs the same loss without mixup (unseen classes 20-29)")
