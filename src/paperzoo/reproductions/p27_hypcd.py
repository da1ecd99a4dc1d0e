"""Reproduction of HypCD (Liu, He & Han, CVPR 2025), scaled down: HypSimGCD (SimGCD with the
Poincaré-ball head and the distance / angle contrastive terms) vs SimGCD vs k-means
(this project's reproduction, docs/papers/27-hypcd.md).

The two settings, splits, backbones, views, epochs, batches and optimiser of the SimGCD reproduction
(:mod:`paperzoo.reproductions.p00_simgcd_baseline`; its SimGCD and k-means units are reused as they
are, so those rows match it): ``digits`` (8x8 images, old 0-4 / new 5-9, MLP 64-256-128 from scratch,
100 epochs) and ``union30`` (frozen EfficientNet-Lite0 features, old 20 = Fashion-MNIST + MNIST /
new 10 = Animal-MNIST, trainable block 1280-256-128, 8 epochs). HypSimGCD swaps the DINO head for
:class:`~paperzoo.discovery.hyperbolic.HyperbolicHead` (no projector: ``z = ToPoincare(c = 0.1,
r = 2.0)(h)`` of the 128-d feature, ``HypLinear(128, K)`` logits with the official bias quirk) and
SimGCD's contrastive terms for HypCD's angle -> distance mixture (hts 0.3, distance weight ``(e + 1) /
epochs``), epsilon 1.0 (all HypCD scripts); trained by :func:`~paperzoo.discovery.hyperbolic.train_hypgcd`
(RiemannianAdam lr 0.01 for the classifier as the official script, the SimGCD trainer's SGD for the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.reproduce import start
from paperzoo.reproductions import p00_simgcd_baseline as base

PAPER = 27
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

HYP, SIMGCD, KMEANS = "HypSimGCD", base.SIMGCD, base.KMEANS
METHODS = (HYP, SIMGCD, KMEANS)
SETTINGS, PARTS = base.SETTINGS, base.PARTS
METRICS = [f"{s} {p}" for s in SETTINGS for p in PARTS]

C, CLIP_R, HTS, MEMAX = 0.1, 2.0, 0.3, 1.0
FULL, SMOKE = base.FULL, base.SMOKE

Unit = tuple[str, str, int, base.SettingConfig]


def build_hyp_model(cfg: base.SettingConfig, problem: base.GCDProblem) -> nn.Module:
    """The SimGCD reproduction's backbone with :class:`HyperbolicHead` in place of the DINO head."""
    from paperzoo.discovery.hyperbolic import HyperbolicHead

    d = int(np.prod(problem.x.shape[1:]))
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, cfg.hidden[0]),
        nn.ReLU(),
        nn.Linear(cfg.hidden[0], cfg.hidden[1]),
        HyperbolicHead(cfg.hidden[1], problem.n_classes, c=C, clip_radius=CLIP_R, bias_curvature="official"),
    )


def hyp_loss(cfg: base.SettingConfig) -> nn.Module:
    from paperzoo.discovery.hyperbolic import HypSimGCDLoss

    warmup = max(1, round(cfg.warmup_fraction * cfg.epochs))
    return HypSimGCDLoss(
        c=C, hts=HTS, schedule=(0, cfg.epochs, 1.0), memax_weight=MEMAX, teacher_temp=(0.07, 0.04, warmup)
    )


def train_unit(unit: Unit) -> dict[str, float]:
    """All / Old / New of one (setting, method, seed); SimGCD and k-means are the SimGCD reproduction's
    units, HypSimGCD adds the mean distance to the origin of the unlabelled old / new samples."""
    from paperzoo.discovery.hyperbolic import class_norms, train_hypgcd
    from paperzoo.discovery.trainer import GCDObjective, predict
    from paperzoo.metrics import cluster_accuracy

    name, method, seed, cfg = unit
    if method != HYP:
        return base.train_unit(unit)
    problem = base.make_problem(cfg, seed)
    seed_everything(seed)
    model = build_hyp_model(cfg, problem)
    train_hypgcd(
        model, problem.x, problem.targets, base._views(problem), GCDObjective(hyp_loss(cfg)),
        epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
    )  # fmt: skip
    x_un = problem.x[torch.from_numpy(problem.unlabelled_idx)]
    pred = predict(model, x_un).numpy()
    acc = cluster_accuracy(problem.y[problem.unlabelled_idx], pred, problem.old_mask)
    with torch.no_grad():
        z = model(x_un)[0].double()
    norms = class_norms(z, problem.old_mask.astype(np.int64), C)  # 0 = new, 1 = old
    return {"All": acc["all"], "Old": acc["old"], "New": acc["new"], "r_old": float(norms[1]), "r_new": float(norms[0])}


def _units(seeds: Sequence[int], configs: dict[str, base.SettingConfig]) -> list[Unit]:
    return [(name, method, seed, cfg) for seed in seeds for name, cfg in configs.items() for method in METHODS]


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` and write its result under ``out_dir/27-hypcd/``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    configs = SMOKE if smoke else FULL
    units = _units(rep.seeds, configs)
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, list(METHODS), baselines=[SIMGCD, KMEANS])
    per: dict[tuple[str, int], dict[str, float]] = {}
    radii: dict[str, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    for (name, method, seed, _), values in zip(units, outputs):
        per.setdefault((method, seed), {}).update({f"{name} {p}": values[p] for p in PARTS})
        if method == HYP:
            radii[name].append((values["r_old"], values["r_new"]))
    for (method, seed), values in sorted(per.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        table.add(method, seed, values)

    d, u = configs["digits"], configs["union30"]
    claims = [
        Claim.greater(
            table,
            HYP,
            SIMGCD,
            "union30 All",
            statement="union30 (a label space with 3 super-classes): HypSimGCD's All accuracy beats SimGCD's",
        ),
        Claim.greater(
            table, HYP, SIMGCD, "union30 New", statement="union30: HypSimGCD's New-class accuracy beats SimGCD's"
        ),
        Claim.greater(
            table,
            HYP,
            SIMGCD,
            "digits All",
            statement="digits (MLP from scratch): HypSimGCD's All accuracy beats SimGCD's",
        ),
        Claim.greater(
            table,
            HYP,
            SIMGCD,
            "digits All",
            margin=-0.05,
            statement="digits: HypSimGCD's All accuracy is no more than 0.05 below SimGCD's (sanity of the swap)",
        ),
        Claim.greater(
            table,
            HYP,
            KMEANS,
            "union30 All",
            statement="union30: HypSimGCD's All accuracy beats k-means on the same features",
        ),
    ]
    radius_note = "; ".join(
        f"{s}: old {np.mean([r[0] for r in radii[s]]):.2f}, new {np.mean([r[1] for r in radii[s]]):.2f}"
        for s in SETTINGS
        if radii[s]
    )
    result = rep.result(
        table,
        claims,
        setting=(
            f"the SimGCD reproduction's settings (digits: MLP 64-256-128 from scratch, {d.epochs} epochs; union30: "
            f"frozen EfficientNet-Lite0 features of {30 * u.per_class:,} images, old 20 / new 10, trainable block "
            f"1280-256-128, {u.epochs} epochs; 0.5 of the old-class images labelled, two views, SGD 0.1 / 0.9 / 5e-5, "
            "batch 128, last epoch, transductive All / Old / New). HypSimGCD: HyperbolicHead on the 128-d feature "
            f"(ToPoincare c = {C}, clip r = {CLIP_R}, HypLinear logits with the official curvature-1 bias), angle -> "
            f"distance contrastive mixture with hts {HTS} and distance weight (e + 1) / epochs, epsilon {MEMAX}; "
            "SimGCD (DINO head, cosine classifier, epsilon 2) and k-means (k = K, 10 restarts) as in the SimGCD "
            "reproduction"
        ),
        scale_note=(
            "no DINO / DINOv2 ViT and no CUB / Cars / Aircraft offline: a small MLP from scratch on 8x8 digits and "
            "frozen EfficientNet-Lite0 features + a trainable block; the Poincare maths, losses and schedule are "
            f"exact, the epochs ({d.epochs} / {u.epochs}) and the ramp are shortened from 200"
        ),
        notes=(
            "HypSimGCD is trained by train_hypgcd: the official RiemannianAdam (lr 0.01, constant) for the HypLinear "
            "classifier, the SGD of the SimGCD trainer for the rest. Mean hyperbolic distance to the origin "
            f"d_c(0, z) of the unlabelled samples, HypSimGCD (clipping caps it at 2r = {2 * CLIP_R:g}): {radius_note}."
        ),
        highlight=(HYP, SIMGCD, "union30 All"),
        extra={"radius": {s: radii[s] for s in SETTINGS}},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """All / Old / New of the three methods in both settings."""
    return base.settings_figure(result, "HypSimGCD vs SimGCD vs k-means")
