"""Reproduction of paper 28, the Multi-Similarity loss (Wang et al., CVPR 2019), scaled down.

Zero-shot retrieval on unseen classes (the protocol of the paper's experiments, train and test classes
disjoint): train an embedding on some classes, retrieve among the images of the other classes by
cosine similarity (each image queries all others), report Recall@1/2/4/8 and MAP@R
(:func:`paperzoo.metrics.retrieval_metrics`). Two tasks, each with the same four losses, the same
P x K batches and the same initialisation per seed, trained through :func:`paperzoo.engine.fit`:

* **union30**: the 30-class union of Fashion-MNIST, MNIST and Animal-MNIST
  (:func:`paperzoo.data.load_union30`), classes 0-14 for training and 15-29 for retrieval
  (:func:`paperzoo.data.held_out_class_split`); a small ConvNet with a 64-d L2-normalised
  :class:`paperzoo.models.EmbeddingHead`; batches of 12 classes x 5 images (m = 5 as the
  official code) from :func:`paperzoo.data.m_per_class_sampler`; Adam;
* **digits**: scikit-learn's 8x8 digits, classes 0-4 / 5-9, MLP 64-128-ReLU-32
  L2-normalised, Adam lr 1e-3, 600 iterations of 5 classes x 8 images.

Losses: MS with mining (:class:`paperzoo.losses.MultiSimilarityLoss`, defaults alpha=2, beta=50,
base=0.5, epsilon=0.1), MS without mining (ablation), and pytorch-metric-learning's
``ContrastiveLoss`` (cosine similarity, pos margin 1, neg margin 0.5) and
``TripletMarginLoss`` (margin 0.1, all triplets) as baselines.

The figure adds the General-Pair-Weighting analysis (the paper's Eqs. (1)-(3)): on a P x K batch of unseen
classes embedded by the MS-trained network, the weight each loss gives each pair against its
similarity (MS in closed form, the others by autograd via
:func:`paperzoo.analysis.pair_weighting.gpw_pair_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, plots, seed_everything, start
from paperzoo.losses import MultiSimilarityLoss
from paperzoo.metrics import retrieval_metrics
from paperzoo.models import MLP, ConvNet, EmbeddingHead

PAPER = 28
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

MS, MS_NO_MINING, CONTRASTIVE, TRIPLET = "MS + mining", "MS, no mining", "contrastive", "triplet"
METHODS = (MS, MS_NO_MINING, CONTRASTIVE, TRIPLET)
BASELINES = (CONTRASTIVE, TRIPLET)
KS = (1, 2, 4, 8)
U30_METRICS = [*(f"U30 R@{k}" for k in KS), "U30 MAP@R"]
DIGITS_METRICS = ["digits R@1", "digits MAP@R"]
METRICS = [*U30_METRICS, *DIGITS_METRICS]


@dataclass(frozen=True)
class TaskConfig:
    """One retrieval task: data, backbone, P x K batches and optimisation."""

    name: str
    steps: int
    classes_per_batch: int
    m: int
    lr: float
    max_per_class: int | None = None  # union30 only: images kept per class
    conv_width: int = 16  # union30 only
    gpw_classes: int = 12  # classes in the GPW analysis batch


FULL_U30 = TaskConfig("union30", steps=600, classes_per_batch=12, m=5, lr=1e-3, max_per_class=500)
SMOKE_U30 = TaskConfig(
    "union30", steps=12, classes_per_batch=6, m=5, lr=1e-3, max_per_class=40, conv_width=4, gpw_classes=6
)
FULL_DIGITS = TaskConfig("digits", steps=600, classes_per_batch=5, m=8, lr=1e-3)
SMOKE_DIGITS = TaskConfig("digits", steps=20, classes_per_batch=5, m=8, lr=1e-3)
CONFIGS: dict[str | None, tuple[TaskConfig, TaskConfig]] = {
    None: (FULL_U30, FULL_DIGITS),
    "smoke": (SMOKE_U30, SMOKE_DIGITS),
}


# --------------------------------------------------------------------------- data and models
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def union30_split(cfg: TaskConfig) -> Split:
    """Classes 0-14 (Fashion-MNIST + MNIST digits 0-4) to train, 15-29 (MNIST 5-9 +
    Animal-MNIST) to retrieve."""
    from paperzoo.data import held_out_class_split, load_union30

    data = load_union30(max_per_class=cfg.max_per_class, seed=0)
    train_idx, test_idx = held_out_class_split(data.y, list(range(15)))
    x, y = torch.from_numpy(np.ascontiguousarray(data.x)), torch.from_numpy(np.asarray(data.y))
    return Split(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def digits_split() -> Split:
    """scikit-learn digits, pixels / 16, flattened; classes 0-4 to train, 5-9 to retrieve."""
    from paperzoo.data import held_out_class_split, load_digits

    data = load_digits()
    train_idx, test_idx = held_out_class_split(data.y, list(range(5)))
    x = torch.from_numpy(np.ascontiguousarray(data.flat(), dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y))
    return Split(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def make_model(cfg: TaskConfig) -> nn.Module:
    if cfg.name == "union30":
        return nn.Sequential(ConvNet(1, cfg.conv_width, 128), nn.ReLU(), EmbeddingHead(128, 64))
    return nn.Sequential(MLP(64, (), 128), nn.ReLU(), EmbeddingHead(128, 32))


def make_loss(method: str) -> nn.Module:
    from pytorch_metric_learning import distances, losses

    if method == MS:
        return MultiSimilarityLoss()
    if method == MS_NO_MINING:
        return MultiSimilarityLoss(mining=False)
    if method == CONTRASTIVE:
        return losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.5, distance=distances.CosineSimilarity())
    if method == TRIPLET:
        return losses.TripletMarginLoss(margin=0.1)
    raise KeyError(method)


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def train_and_evaluate(
    method: str, split: Split, cfg: TaskConfig, seed: int, show: bool
) -> tuple[dict[str, float], nn.Module, list[float]]:
    """Train a fresh model with ``method``'s loss; return its retrieval metrics on the unseen
    classes, the model and the per-step training losses."""
    from paperzoo.data import m_per_class_sampler

    seed_everything(seed)
    model = make_model(cfg)
    batch = cfg.classes_per_batch * cfg.m
    sampler = m_per_class_sampler(split.y_train, cfg.m, batch, length_before_new_iter=cfg.steps * batch)
    loader = make_loader(TensorDataset(split.x_train, split.y_train), batch, sampler=sampler)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history = fit(
        model,
        make_loss(method),
        loader,
        opt,
        TrainConfig(epochs=1, max_steps=cfg.steps, seed=seed, progress=show, desc=f"{cfg.name} s{seed} {method}"),
    )
    metrics = retrieval_metrics(embed(model, split.x_test), split.y_test, ks=KS)
    return metrics, model, history.losses


# --------------------------------------------------------------------------- GPW analysis
def gpw_analysis(model: nn.Module, split: Split, cfg: TaskConfig, seed: int) -> dict[str, Any]:
    """Pair weights of MS, contrastive, binomial deviance and lifted structure on one P x K batch
    of unseen classes (``cfg.gpw_classes`` classes x ``cfg.m`` images), embedded by ``model``."""
    from paperzoo.analysis.pair_weighting import (
        binomial_deviance_pair_loss,
        contrastive_pair_loss,
        gpw_pair_weights,
        lifted_structure_pair_loss,
        ms_pair_weights,
        pair_masks,
    )

    rng = np.random.default_rng(seed)
    y = split.y_test.numpy()
    classes = rng.choice(np.unique(y), size=min(cfg.gpw_classes, len(np.unique(y))), replace=False)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=cfg.m, replace=False) for c in classes])
    emb = embed(model, split.x_test[idx]).double()
    labels = split.y_test[idx]
    S = emb @ emb.T
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {"multi-similarity": ms_pair_weights(S, labels)}
    refs: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "contrastive": contrastive_pair_loss,
        "binomial deviance": binomial_deviance_pair_loss,
        "lifted structure": lifted_structure_pair_loss,
    }
    for name, fn in refs.items():
        weights[name] = gpw_pair_weights(fn, S, labels)
    pos, neg = pair_masks(labels)
    s_neg, s_pos = S[neg], S[pos]
    hard = s_neg >= torch.quantile(s_neg, 0.9)
    out: dict[str, Any] = {
        "batch": f"{len(classes)} unseen classes x {cfg.m}",
        "S_neg": s_neg.tolist(),
        "S_pos": s_pos.tolist(),
    }
    for name, (w_pos, w_neg) in weights.items():
        wn, wp = w_neg[neg], w_pos[pos]
        out[name] = {
            "w_neg": wn.tolist(),
            "w_pos": wp.tolist(),
            # share of the total negative weight on the 10% most similar negatives
            "neg_weight_share_top10pct": float(wn[hard].sum() / wn.sum()) if float(wn.sum()) > 0 else None,
            "neg_pairs_weighted": int((wn > 0).sum()),
        }
    out["neg_pairs"] = int(neg.sum())
    return out


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``method`` trained on ``cfg``'s task with ``seed``."""

    cfg: TaskConfig
    method: str
    seed: int
    gpw: bool = False  # also run the pair-weighting analysis on the trained network


def _split(cfg: TaskConfig) -> Split:
    return union30_split(cfg) if cfg.name == "union30" else digits_split()


def run_unit(unit: Unit) -> dict[str, Any]:
    """Train and evaluate one (task, method, seed); the retrieval metrics, the mean training
    loss over the last tenth of the steps and, if asked, the pair-weighting analysis."""
    split = _split(unit.cfg)
    metrics, model, losses = train_and_evaluate(unit.method, split, unit.cfg, unit.seed, show=False)
    tail = losses[-max(1, len(losses) // 10) :]
    out: dict[str, Any] = {"metrics": metrics, "final_loss": float(np.mean(tail))}
    if unit.gpw:
        out["gpw"] = gpw_analysis(model, split, unit.cfg, unit.seed)
    return out


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` in up to ``jobs`` processes; write the result, its
    summary and ``plot.png`` under ``out_dir/28-multi-similarity-loss/`` and return the
    :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    u30_cfg, dig_cfg = CONFIGS[rep.budget]
    units = [
        Unit(cfg, method, seed, gpw=cfg is u30_cfg and method == MS and seed == rep.seeds[0])
        for seed in rep.seeds
        for cfg in (u30_cfg, dig_cfg)
        for method in METHODS
    ]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=BASELINES)
    per_seed: dict[tuple[str, int], dict[str, float]] = {}
    final_loss: dict[str, dict[str, dict[str, float]]] = {}
    gpw: dict[str, Any] = {}
    for unit, out in zip(units, outputs):
        prefix = "U30" if unit.cfg is u30_cfg else "digits"
        ks = KS if unit.cfg is u30_cfg else (1,)
        row = per_seed.setdefault((unit.method, unit.seed), {})
        row.update({f"{prefix} R@{k}": out["metrics"][f"R@{k}"] for k in ks})
        row[f"{prefix} MAP@R"] = out["metrics"]["MAP@R"]
        final_loss.setdefault(str(unit.seed), {}).setdefault(unit.cfg.name, {})[unit.method] = out["final_loss"]
        gpw = out.get("gpw", gpw)
    for (method, seed), values in per_seed.items():
        table.add(method, seed, values)

    claims = [
        Claim.greater(table, MS, other, metric)
        for metric in ("U30 R@1", "digits R@1")
        for other in (MS_NO_MINING, CONTRASTIVE)
    ]
    u30, digits = _split(u30_cfg), digits_split()
    extra: dict[str, Any] = {
        "ms_vs_triplet": {
            metric: {
                MS: table.mean(MS, metric),
                TRIPLET: table.mean(TRIPLET, metric),
                "difference": table.mean(MS, metric) - table.mean(TRIPLET, metric),
            }
            for metric in METRICS
        },
        "final_train_loss": final_loss,
        "gpw": gpw,
        "sizes": {
            "union30_train": len(u30.y_train),
            "union30_test": len(u30.y_test),
            "digits_train": len(digits.y_train),
            "digits_test": len(digits.y_test),
        },
    }
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30: train classes 0-14 ({len(u30.y_train)} images, {u30_cfg.max_per_class} per class), retrieve "
            f"among classes 15-29 ({len(u30.y_test)} images); ConvNet(width {u30_cfg.conv_width}) + 64-d "
            f"L2-normalised head; {u30_cfg.steps} Adam steps (lr {u30_cfg.lr}) of {u30_cfg.classes_per_batch} "
            f"classes x {u30_cfg.m}. digits: train 0-4, retrieve 5-9, MLP 64-128-32, "
            f"{dig_cfg.steps} steps of {dig_cfg.classes_per_batch} x {dig_cfg.m}. MS alpha=2, beta=50, base=0.5, "
            "epsilon=0.1; contrastive cosine (pos 1, neg 0.5); triplet margin 0.1, all triplets; one thread per run"
        ),
        scale_note=(
            "28x28 grayscale / 8x8 digits and small networks trained from scratch instead of ImageNet-pretrained "
            "BN-Inception on CUB/Cars/SOP/In-Shop; 15 unseen classes instead of 100-11,318; absolute Recall@K "
            "values are not comparable with the paper's, only the ordering of the losses"
        ),
        notes="MS vs triplet is reported (extra['ms_vs_triplet']), not claimed: the paper compares with other baselines.",
        highlight=(MS, CONTRASTIVE, "U30 R@1"),
        extra=extra,
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(4, width=5.5, height=4.8, width_ratios=[1.4, 0.8, 1.1, 1.1])
    for ax, names, title in (
        (axes[0], U30_METRICS, "union30: unseen classes 15-29"),
        (axes[1], DIGITS_METRICS, "digits: unseen classes 5-9"),
    ):
        plots.grouped_bars(
            ax, result.table, names, labels=[m.split(" ", 1)[1] for m in names], ylim=(0.0, 1.15), title=title
        )
        ax.set_yticks(np.linspace(0.0, 1.0, 6))
    axes[0].legend(fontsize=8, loc="upper center", ncol=4)
    gpw = result.extra["gpw"]
    styles = {
        "multi-similarity": ("C0", "o"),
        "contrastive": ("C2", "s"),
        "binomial deviance": ("C3", "^"),
        "lifted structure": ("C4", "D"),
    }
    for ax, kind, s_key in ((axes[2], "w_neg", "S_neg"), (axes[3], "w_pos", "S_pos")):
        s = np.asarray(gpw.get(s_key, []))
        for name, (colour, marker) in styles.items():
            if name not in gpw:
                continue
            w = np.asarray(gpw[name][kind])
            if w.size and w.max() > 0:
                ax.scatter(s, w / w.max(), s=9, alpha=0.55, color=colour, marker=marker, label=name)
        ax.set_xlabel("pair similarity S_ij (cosine)")
        ax.set_ylabel("pair weight / max weight of that loss")
        pair = "negative" if kind == "w_neg" else "positive"
        ax.set_title(f"GPW: {pair} pairs ({gpw.get('batch', '')}, MS-trained net)")
    axes[2].legend(fontsize=8, loc="upper left")
    return plots.finish(fig, result, "Multi-Similarity loss vs contrastive / triplet")
