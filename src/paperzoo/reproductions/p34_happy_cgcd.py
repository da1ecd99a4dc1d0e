"""Reproduction of Happy (Ma et al., NeurIPS 2024), continual generalized category discovery, scaled
down (docs/papers/34-happy-cgcd.md).

Two C-GCD settings (:func:`paperzoo.data.continual_gcd.make_cgcd_sessions`), each split 70 / 30 per
class into train / test:

* ``digits``: scikit-learn's 8x8 digits, stage 0 = classes 0-3 (80% of their train images labelled),
  3 sessions adding {4, 5}, {6, 7}, {8, 9}; the MLP of the SimGCD reproduction (64-256-ReLU-128) from
  scratch, its first layer frozen after stage 0; image views (1-pixel shift + noise 0.1).
* ``union30``: frozen EfficientNet-Lite0 features of the 30-class union (200 images per class,
  standardised), stage 0 = the first 15 classes, 3 sessions of 5 classes in label order; the
  trainable block of the SimGCD reproduction (1280-256-ReLU-128); feature views (dropout 0.1 + noise 0.1).

Session t (unlabelled): 20 images of every stage-0 class (from the 20% not labelled at stage 0), 20 of
every earlier novel class, 100 of every new class. Methods on the same stage-0 model per seed: Happy
(all components), SimGCD fine-tuned session by session (random new rows, me-max, no prototypes, no
distillation), and k-means (k = K_all) on each session's test inputs. Metric: "hard" All / Old / New
clustering accuracy (one Hungarian matching; Old = stage-0 classes, New = every novel class so far) on
the test images of the classes seen up to the session, last-epoch model.
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

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.plots import finish, subplots
from paperzoo.engine.reproduce import start

PAPER = 34
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

HAPPY, SIMGCD, KMEANS = "Happy", "SimGCD (per session)", "k-means"
METHODS = (HAPPY, SIMGCD, KMEANS)
SETTINGS = ("digits", "union30")
PARTS = ("All", "Old", "New")
N_SESSIONS = 3
METRICS = [f"{s} s{t} {p}" for s in SETTINGS for t in range(1, N_SESSIONS + 1) for p in PARTS]


@dataclass(frozen=True)
class SettingConfig:
    """One C-GCD setting: data, counts, optimisation."""

    name: str
    n_old: int
    stage0_epochs: int
    session_epochs: int
    batch_size: int = 64
    stage0_lr: float = 0.1
    session_lr: float = 0.05
    frozen_layers: int = 0
    per_class: int = 200  # union30 images per class
    old_seen: int = 20
    novel_seen: int = 20
    novel_unseen: int = 100
    max_samples: int | None = None  # a seeded subsample (smoke runs)


FULL = {
    "digits": SettingConfig("digits", n_old=4, stage0_epochs=40, session_epochs=40, frozen_layers=2),
    "union30": SettingConfig("union30", n_old=15, stage0_epochs=15, session_epochs=15, batch_size=128),
}
SMOKE = {
    "digits": SettingConfig("digits", n_old=4, stage0_epochs=1, session_epochs=1, frozen_layers=2, novel_unseen=30),
    "union30": SettingConfig(
        "union30",
        n_old=15,
        stage0_epochs=1,
        session_epochs=1,
        per_class=10,
        old_seen=2,
        novel_seen=2,
        novel_unseen=7,
        batch_size=16,
    ),  # fmt: skip
}


@lru_cache(maxsize=2)
def _raw(name: str, per_class: int) -> tuple[np.ndarray, np.ndarray, bool]:
    if name == "digits":
        from paperzoo.data import load_digits

        d = load_digits()
        return d.x.astype(np.float32), d.y.astype(np.int64), True
    from paperzoo.data.pretrained_features import union30_effnet

    f = union30_effnet(max_per_class=per_class)
    x = (f.x - f.x.mean(0)) / np.maximum(f.x.std(0), 1e-6)
    return x.astype(np.float32), f.y.astype(np.int64), False


@dataclass(frozen=True, eq=False)
class Problem:
    x: torch.Tensor  # train inputs
    y: np.ndarray  # train labels in class order
    x_test: torch.Tensor
    y_test: np.ndarray
    sessions: Any
    images: bool


def make_problem(cfg: SettingConfig, seed: int) -> Problem:
    """The per-class 70/30 split and the sessions of ``seed`` (labels relabelled to class order)."""
    from paperzoo.data.continual_gcd import make_cgcd_sessions

    x, y, images = _raw(cfg.name, cfg.per_class)
    rng = np.random.default_rng(seed)
    if cfg.max_samples is not None and cfg.max_samples < len(y):
        keep = np.sort(rng.choice(len(y), cfg.max_samples, replace=False))
        x, y = x[keep], y[keep]
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: int(round(0.3 * idx.size))]] = True
    n_cls = int(y.max()) + 1
    sessions = make_cgcd_sessions(
        y[~test], range(cfg.n_old), N_SESSIONS, prop_labelled=0.8, old_seen=cfg.old_seen, novel_seen=cfg.novel_seen,
        novel_unseen=cfg.novel_unseen, test_labels=y[test], seed=seed,
    )  # fmt: skip
    assert len(sessions.class_order) == n_cls
    return Problem(
        torch.from_numpy(x[~test]), sessions.relabel(y[~test]), torch.from_numpy(x[test]),
        sessions.relabel(y[test]), sessions, images,
    )  # fmt: skip


def build_backbone(problem: Problem) -> nn.Module:
    d = int(np.prod(problem.x.shape[1:]))
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 128))


def make_head(n_classes: int) -> nn.Module:
    from paperzoo.discovery.heads import DINOHead

    return DINOHead(128, n_classes, hidden=256, bottleneck=64)


def _views(problem: Problem) -> Any:
    from paperzoo.discovery.views import FeatureViews, ImageViews

    return ImageViews(shift=1, noise_std=0.1) if problem.images else FeatureViews(noise_std=0.1, dropout=0.1)


def _hard(problem: Problem, t: int, pred: np.ndarray) -> dict[str, float]:
    from paperzoo.metrics import cluster_accuracy

    idx = problem.sessions.test_idx[t - 1]
    y = problem.y_test[idx]
    acc = cluster_accuracy(y, pred, y < problem.sessions.n_old)
    return {"All": acc["all"], "Old": acc["old"], "New": acc["new"]}


Unit = tuple[str, int, SettingConfig]


def train_unit(unit: Unit) -> dict[str, dict[str, float]]:
    """Per method, ``{"s<t> <part>": accuracy}`` of one (setting, seed); the two trained methods share stage 0."""
    from paperzoo.discovery.baselines import kmeans_predict
    from paperzoo.discovery.happy import HappyConfig, run_continual
    from paperzoo.discovery.trainer import predict

    name, seed, cfg = unit
    problem = make_problem(cfg, seed)
    views = _views(problem)
    common = dict(
        stage0_epochs=cfg.stage0_epochs, session_epochs=cfg.session_epochs, batch_size=cfg.batch_size,
        stage0_lr=cfg.stage0_lr, session_lr=cfg.session_lr, frozen_backbone_layers=cfg.frozen_layers,
    )  # fmt: skip
    out: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    stage0 = None
    for method, hcfg in ((HAPPY, HappyConfig(**common)), (SIMGCD, HappyConfig.simgcd(**common))):

        def record(t: int, model: nn.Module, method: str = method) -> None:
            pred = predict(model, problem.x_test[torch.from_numpy(problem.sessions.test_idx[t - 1])]).numpy()
            out[method].update({f"s{t} {p}": v for p, v in _hard(problem, t, pred).items()})

        seed_everything(seed)
        stage0, _ = run_continual(
            build_backbone(problem), make_head, problem.x, problem.y, problem.sessions, views, hcfg,
            seed=seed, stage0=stage0, on_session=record,
        )  # fmt: skip
    for t in range(1, N_SESSIONS + 1):
        xt = problem.x_test[torch.from_numpy(problem.sessions.test_idx[t - 1])]
        pred = kmeans_predict(xt, problem.sessions.n_all(t), seed=seed)
        out[KMEANS].update({f"s{t} {p}": v for p, v in _hard(problem, t, pred).items()})
    return out


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` and write its result files under ``out_dir/34-happy-cgcd/``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    configs = SMOKE if smoke else FULL
    units: list[Unit] = [(name, seed, cfg) for name, cfg in configs.items() for seed in rep.seeds]
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, list(METHODS), baselines=[SIMGCD, KMEANS])
    per: dict[tuple[str, int], dict[str, float]] = {}
    for (name, seed, _), values in zip(units, outputs):
        for method, vals in values.items():
            per.setdefault((method, seed), {}).update({f"{name} {k}": v for k, v in vals.items()})
    for (method, seed), values in sorted(per.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        table.add(method, seed, values)

    last = f"s{N_SESSIONS}"
    claims = [
        Claim.greater(
            table,
            HAPPY,
            SIMGCD,
            f"digits {last} All",
            statement="digits (MLP from scratch): after the last session Happy's All accuracy beats SimGCD fine-tuned "
            "session by session",
        ),
        Claim.greater(
            table,
            HAPPY,
            SIMGCD,
            f"union30 {last} All",
            statement="union30 EfficientNet features: after the last session Happy's All accuracy beats SimGCD "
            "session by session",
        ),
        Claim.greater(
            table,
            HAPPY,
            SIMGCD,
            f"union30 {last} Old",
            statement="union30: Happy forgets the stage-0 classes less (final Old accuracy above SimGCD's)",
        ),
        Claim.greater(
            table,
            HAPPY,
            SIMGCD,
            f"union30 {last} New",
            statement="union30: Happy discovers the novel classes better (final New accuracy above SimGCD's)",
        ),
        Claim.greater(
            table,
            HAPPY,
            KMEANS,
            f"union30 {last} All",
            statement="union30: Happy's final All accuracy beats k-means on the same features",
        ),
    ]
    d, u = configs["digits"], configs["union30"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"digits: 8x8 digits, 70/30 per-class train/test, stage 0 = classes 0-3 ({d.stage0_epochs} epochs, lr "
            f"{d.stage0_lr}), 3 sessions of 2 classes ({d.session_epochs} epochs each, lr {d.session_lr}, first layer "
            f"frozen), MLP 64-256-128 from scratch; union30: frozen EfficientNet-Lite0 features of "
            f"{30 * u.per_class:,} images, stage 0 = 15 classes ({u.stage0_epochs} epochs), 3 sessions of 5 classes "
            f"({u.session_epochs} epochs), trainable block 1280-256-128; both: 80% of stage-0 train images labelled, "
            f"session = {d.old_seen} per stage-0 class + {d.novel_seen} per earlier novel class + {d.novel_unseen} per "
            "new class (unlabelled); Happy = clustering-guided init + soft entropy (1,1,1) + hardness-aware prototype "
            "sampling (tau 0.1) + feature distillation (1), teacher 0.05, InfoNCE; SimGCD = random new rows + me-max; "
            "k-means on each session's test inputs; 'hard' All / Old / New on the session's test set, last epoch"
        ),
        scale_note=(
            "no DINO ViT-B/16 and no CIFAR-100 / ImageNet-100 / CUB offline, 3 sessions instead of 5; a small MLP "
            "from scratch on digits and a trainable block on frozen EfficientNet-Lite0 features; absolute numbers are "
            "not comparable"
        ),
        notes=(
            "The last-epoch model is evaluated (the official code keeps the epoch with the best test accuracy, "
            "which uses test labels). Happy and SimGCD share the stage-0 model of each seed."
        ),
        highlight=(HAPPY, SIMGCD, f"union30 {last} All"),
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """All accuracy per session of the three methods, both settings."""
    fig, axes = subplots(2, width=5.0)
    table = result.table
    for ax, name in zip(axes, SETTINGS):
        for method in table.methods:
            vals = [np.array(table.values(method, f"{name} s{t} All")) for t in range(1, N_SESSIONS + 1)]
            means, stds = [v.mean() for v in vals], [v.std() for v in vals]
            ax.errorbar(range(1, N_SESSIONS + 1), means, yerr=stds, marker="o", capsize=3, label=method)
        ax.set_xticks(range(1, N_SESSIONS + 1))
        ax.set_xlabel("session")
        ax.set_ylabel("All accuracy (mean ± std over seeds)")
        ax.set_title(name)
        ax.set_ylim(0.0, 1.05)
    axes[0].legend(fontsize=8)
    return finish(fig, result, "Happy vs SimGCD vs k-means across C-GCD sessions")
