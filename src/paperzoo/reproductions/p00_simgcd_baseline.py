"""Reproduction of the SimGCD baseline (Wen, Zhao & Qi, ICCV 2023), scaled down (this project's
reproduction, docs/papers/00-simgcd-baseline.md).

Two generalized-category-discovery settings, each with three methods on the same split and
initialisation per seed:

* ``digits``: scikit-learn's 8x8 digits (pixels / 16), old classes 0-4, new 5-9; a small MLP
  (64-256-ReLU-128) trained from scratch, the DINO-style head (projector 128-256-256-64, cosine
  classifier over K = 10 on the normalised 128-d feature); views = a random 1-pixel shift + Gaussian
  noise 0.1.
* ``union30``: frozen EfficientNet-Lite0 features (64 px, 1280-d, cached once) of the 30-class union,
  200 images per class; old = the 20 Fashion-MNIST and MNIST classes, new = the 10 Animal-MNIST
  classes; standardised features -> a trainable block (1280-256-ReLU-128, standing in for the
  fine-tuned last ViT block) -> the same head with K = 30; views = dropout 0.1 + Gaussian noise 0.1.

Both: half of the old-class images labelled in one uniform draw over all old-class images (the
official code's split, ``gcd_split(per_class=False)``, drawn per seed); the SimGCD objective with
the official values (lambda = 0.35, epsilon = 2, tau_s = 0.1, teacher 0.07 -> 0.04 linearly over the
first 15% of the epochs, InfoNCE tau 1.0, SupCon tau 0.07); SGD 0.1 / 0.9 / 5e-5, cosine per epoch,
batches of 128 from the weighted labelled/unlabelled sampler; last-epoch model; transductive
All / Old / New clustering accuracy (one Hungarian matching) on the unlabelled images. Methods:
SimGCD, SimGCD without the mean-entropy regulariser (epsilon = 0), and k-means (k = K, 10 restarts)
on the same inputs (raw pixels / standardised features).

Units: one (setting, method, seed) each, plus one timing unit: the GCD trainer
(:func:`paperzoo.discovery.trainer.train_gcd`) against a plain :func:`paperzoo.engine.fit` loop of
the same model, batches (the same sampler), views and loss (the loss's total as ``compute_loss``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start

PAPER = 0
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

SIMGCD, NO_MEMAX, KMEANS = "SimGCD", "SimGCD w/o me-max", "k-means"
METHODS = (SIMGCD, NO_MEMAX, KMEANS)
SETTINGS = ("digits", "union30")
PARTS = ("All", "Old", "New")
METRICS = [f"{s} {p}" for s in SETTINGS for p in PARTS]


@dataclass(frozen=True)
class SettingConfig:
    """One GCD setting: data, model widths, epochs."""

    name: str
    epochs: int
    hidden: tuple[int, int] = (256, 128)
    head_hidden: int = 256
    bottleneck: int = 64
    batch_size: int = 128
    labelled_fraction: float = 0.5
    memax_weight: float = 2.0
    warmup_fraction: float = 0.15
    per_class: int = 200  # union30 images per class
    max_samples: int | None = None  # a seeded subsample (smoke runs)


@dataclass(frozen=True)
class OverheadConfig:
    epochs: int
    repeats: int


FULL = {"digits": SettingConfig("digits", epochs=100), "union30": SettingConfig("union30", epochs=8)}
SMOKE = {
    "digits": SettingConfig("digits", epochs=1, max_samples=400),
    "union30": SettingConfig("union30", epochs=1, per_class=10),  # 300 images: features computed in seconds
}
FULL_OVERHEAD = OverheadConfig(epochs=5, repeats=5)
SMOKE_OVERHEAD = OverheadConfig(epochs=1, repeats=1)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class GCDProblem:
    """One seed's GCD problem: all training inputs, targets (-1 unlabelled), the evaluation part."""

    x: torch.Tensor
    y: np.ndarray  # true classes, old first
    targets: torch.Tensor
    unlabelled_idx: np.ndarray
    old_mask: np.ndarray
    n_classes: int
    images: bool


@lru_cache(maxsize=2)
def _raw(name: str, per_class: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """``(x, y, n_old, images)`` of a setting, classes already old first."""
    if name == "digits":
        from paperzoo.data import load_digits

        d = load_digits()
        return d.x, d.y, 5, True
    from paperzoo.data.pretrained_features import union30_effnet

    f = union30_effnet(max_per_class=per_class)
    # labels 0-9 Fashion-MNIST, 10-19 MNIST (old), 20-29 Animal-MNIST (new): already old first
    return f.x, f.y, 20, False


def make_problem(cfg: SettingConfig, seed: int) -> GCDProblem:
    """The split of ``seed``: the official one-draw labelled subset of the old-class images."""
    from paperzoo.data import gcd_split
    from paperzoo.discovery.trainer import gcd_targets

    x, y, n_old, images = _raw(cfg.name, cfg.per_class)
    if cfg.max_samples is not None and cfg.max_samples < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), cfg.max_samples, replace=False))
        x, y = x[keep], y[keep]
    sp = gcd_split(y, n_old, labelled_fraction=cfg.labelled_fraction, seed=seed, per_class=False)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not images:
        xt = (xt - xt.mean(0)) / xt.std(0).clamp_min(1e-6)
    return GCDProblem(xt, y, gcd_targets(y, sp.labelled_idx), sp.unlabelled_idx, sp.old_mask, int(y.max()) + 1, images)


def build_model(cfg: SettingConfig, problem: GCDProblem) -> nn.Module:
    from paperzoo.discovery.heads import DINOHead

    d = int(np.prod(problem.x.shape[1:]))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, cfg.hidden[0]),
        nn.ReLU(),
        nn.Linear(cfg.hidden[0], cfg.hidden[1]),
        DINOHead(cfg.hidden[1], problem.n_classes, hidden=cfg.head_hidden, bottleneck=cfg.bottleneck),
    )


def _views(problem: GCDProblem) -> Any:
    from paperzoo.discovery.views import FeatureViews, ImageViews

    return ImageViews(shift=1, noise_std=0.1) if problem.images else FeatureViews(noise_std=0.1, dropout=0.1)


def _loss(cfg: SettingConfig, memax_weight: float) -> nn.Module:
    from paperzoo.discovery.losses import SimGCDLoss

    warmup = max(1, round(cfg.warmup_fraction * cfg.epochs))
    return SimGCDLoss(lambda_sup=0.35, memax_weight=memax_weight, teacher_temp=(0.07, 0.04, warmup))


# --------------------------------------------------------------------------- units
#: One unit: (setting name, method, seed, config).
Unit = tuple[str, str, int, SettingConfig]


def train_unit(unit: Unit) -> dict[str, float]:
    """All / Old / New of one (setting, method, seed)."""
    from paperzoo.discovery.baselines import kmeans_predict
    from paperzoo.discovery.trainer import GCDObjective, predict, train_gcd
    from paperzoo.metrics import cluster_accuracy

    _, method, seed, cfg = unit
    problem = make_problem(cfg, seed)
    if method == KMEANS:
        pred = kmeans_predict(problem.x, problem.n_classes, seed=seed)[problem.unlabelled_idx]
    else:
        seed_everything(seed)
        model = build_model(cfg, problem)
        memax = cfg.memax_weight if method == SIMGCD else 0.0
        train_gcd(
            model, problem.x, problem.targets, _views(problem), GCDObjective(_loss(cfg, memax)),
            epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
        )  # fmt: skip
        pred = predict(model, problem.x[torch.from_numpy(problem.unlabelled_idx)]).numpy()
    acc = cluster_accuracy(problem.y[problem.unlabelled_idx], pred, problem.old_mask)
    return {"All": acc["all"], "Old": acc["old"], "New": acc["new"]}


def overhead_unit(args: tuple[SettingConfig, OverheadConfig]) -> dict[str, Any]:
    """Seconds of the GCD trainer and of a plain ``engine.fit`` loop of the same model, data,
    views, loss and batches (the same weighted sampler, so the same labelled share; a plain
    ``compute_loss`` returning the loss's total, no objective, no scheduler), alternated
    ``repeats`` times on digits; the ratio of the fastest of each. CPU seconds of this process
    (``time.process_time``, one thread), which other jobs on a busy machine disturb far less than
    wall-clock time."""
    from paperzoo.discovery.trainer import GCDObjective, LabelledUnlabelledSampler, param_groups, train_gcd

    cfg, oc = args
    problem = make_problem(cfg, 0)
    views = _views(problem)

    def trainer() -> float:
        seed_everything(0)
        model, objective = build_model(cfg, problem), GCDObjective(_loss(cfg, 2.0))
        t = time.process_time()
        train_gcd(model, problem.x, problem.targets, views, objective, epochs=oc.epochs, seed=0)
        return time.process_time() - t

    def plain() -> float:
        seed_everything(0)
        model, loss = build_model(cfg, problem), _loss(cfg, 2.0)

        def compute_loss(m: nn.Module, batch: Any) -> torch.Tensor:
            x, y = batch
            z, logits = m(torch.cat([views(x), views(x)]))
            return loss(z, logits, y, y >= 0, 0)["total"]

        t = time.process_time()
        sampler = LabelledUnlabelledSampler(problem.targets >= 0, seed=0)  # the same batches as the trainer
        loader = make_loader(TensorDataset(problem.x, problem.targets), cfg.batch_size, sampler=sampler, drop_last=True)
        opt = torch.optim.SGD(param_groups(model, 5e-5), lr=0.1, momentum=0.9)
        fit(model, None, loader, opt, TrainConfig(epochs=oc.epochs, seed=0, progress=False), compute_loss=compute_loss)
        return time.process_time() - t

    trainer(), plain()  # warm-up: first imports and allocations are not timed
    times: dict[str, list[float]] = {"trainer": [], "plain": []}
    for _ in range(oc.repeats):
        times["trainer"].append(trainer())
        times["plain"].append(plain())
    return {**times, "ratio": min(times["trainer"]) / min(times["plain"]), "epochs": oc.epochs}


def _units(seeds: Sequence[int], configs: dict[str, SettingConfig]) -> list[Unit]:
    return [(name, method, seed, cfg) for seed in seeds for name, cfg in configs.items() for method in METHODS]


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result files
    under ``out_dir/00-simgcd-baseline/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    configs = SMOKE if smoke else FULL
    oc = SMOKE_OVERHEAD if smoke else FULL_OVERHEAD
    units = _units(rep.seeds, configs)
    timing = rep.map(overhead_unit, [(configs["digits"], oc)])[0]  # first: alone, then the units
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, list(METHODS), baselines=[KMEANS])
    per: dict[tuple[str, int], dict[str, float]] = {}
    for (name, method, seed, _), values in zip(units, outputs):
        per.setdefault((method, seed), {}).update({f"{name} {p}": values[p] for p in PARTS})
    for (method, seed), values in sorted(per.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        table.add(method, seed, values)

    d, u = configs["digits"], configs["union30"]
    claims = [
        Claim.greater(
            table,
            SIMGCD,
            KMEANS,
            "digits All",
            statement="digits (MLP from scratch): SimGCD's All accuracy beats k-means on the raw pixels",
        ),
        Claim.greater(
            table,
            SIMGCD,
            NO_MEMAX,
            "digits All",
            margin=0.2,
            statement="digits: removing the mean-entropy regulariser (epsilon = 0) drops All accuracy by more than 0.2",
        ),
        Claim.greater(
            table,
            SIMGCD,
            KMEANS,
            "union30 All",
            statement="union30 EfficientNet features: SimGCD's All accuracy beats k-means on the same features",
        ),
        Claim.greater(
            table,
            SIMGCD,
            NO_MEMAX,
            "union30 New",
            statement="union30: the mean-entropy regulariser raises New-class accuracy (SimGCD > epsilon = 0)",
        ),
    ]
    result = rep.result(
        table,
        claims,
        setting=(
            f"digits: 1,797 8x8 images, old 0-4 / new 5-9, MLP 64-256-128 from scratch, {d.epochs} epochs; "
            f"union30: frozen EfficientNet-Lite0 features of {30 * u.per_class:,} images (64 px), old 20 "
            f"(Fashion-MNIST + MNIST) / new 10 (Animal-MNIST), trainable block 1280-256-128, {u.epochs} epochs; both: "
            "0.5 of the old-class images labelled (one uniform draw, per seed), DINO-style head (projector 256-256-64, "
            "cosine classifier), two views, lambda 0.35, epsilon 2, teacher 0.07 -> 0.04 over 15% of the epochs, "
            "SGD 0.1 / 0.9 / 5e-5, cosine per epoch, batch 128 from the weighted sampler, last epoch, transductive "
            "All / Old / New; k-means k = K, 10 restarts on the same inputs"
        ),
        scale_note=(
            "no DINO ViT-B/16 and no CUB / Cars / Aircraft / ImageNet / Herbarium offline: a small MLP from scratch "
            "on 8x8 digits, and frozen EfficientNet-Lite0 features + a trainable MLP block for the fine-tuned last "
            f"ViT block; {d.epochs} / {u.epochs} epochs instead of 200; absolute numbers are not comparable"
        ),
        notes=(
            "GCD trainer vs a plain engine.fit loop of the same model, batches, views and loss (digits, "
            f"{timing['epochs']} epochs, fastest of {len(timing['trainer'])}, CPU time, one thread): time ratio "
            f"{timing['ratio']:.3f}. The labelled set follows the official code (one uniform draw over all old-class images, not per class); the draw "
            "changes with the seed."
        ),
        highlight=(SIMGCD, KMEANS, "union30 All"),
        extra={"overhead": timing},
    )
    return result.write(out_dir, figure=make_figure)


def settings_figure(result: Result, title: str, width: float = 5.5, legend_size: int = 8) -> Any:
    """All / Old / New of every method of ``result`` in the two settings (digits, union30): the figure
    of this reproduction and of the GCD methods that reuse its settings."""
    fig, axes = subplots(2, width=width)
    for ax, name, panel in (
        (axes[0], "digits", "digits, MLP from scratch"),
        (axes[1], "union30", "union30, frozen EfficientNet-Lite0 + block"),
    ):
        grouped_bars(
            ax,
            result.table,
            [f"{name} {p}" for p in PARTS],
            labels=list(PARTS),
            ylabel="clustering accuracy (mean ± std over seeds)",
            ylim=(0.0, 1.05),
            title=panel,
        )
    axes[0].legend(fontsize=legend_size, loc="lower right")
    return finish(fig, result, title)


def make_figure(result: Result) -> Any:
    """All / Old / New of the three methods in both settings."""
    return settings_figure(result, "SimGCD vs no me-max vs k-means")
