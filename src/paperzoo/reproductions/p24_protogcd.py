"""Reproduction of ProtoGCD (Ma, Zhu, Zhang & Liu, TPAMI 2025), scaled down (this project's
reproduction, docs/papers/24-protogcd.md).

The two GCD settings of the SimGCD baseline reproduction (:mod:`paperzoo.reproductions.p00_simgcd_baseline`),
reused as they are (data, split, model, views, epochs, optimiser), so its SimGCD row is the same
computation:

* ``digits``: 8x8 digits, old 0-4 / new 5-9, an MLP from scratch, 100 epochs;
* ``union30``: frozen EfficientNet-Lite0 features of the 30-class union, old 20 / new 10 (Animal-MNIST),
  a trainable block, 8 epochs.

Methods on the same split and initialisation per seed: ProtoGCD (DAPL with the constant teacher 0.05 and
the hard-label share ramping 0 -> 1 over the first half of the epochs, as README's 100 of 200; entropy
weight 2; prototype separation weight 0.1, i.e. 0.065 in the total), SimGCD (teacher warm-up 0.07 ->
0.04 over 15% of the epochs), and k-means (k = K). Transductive All / Old / New on the unlabelled
images, last epoch; the mean pairwise cosine of the learned prototypes is recorded for the two
trained methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.reproduce import start
from paperzoo.reproductions import p00_simgcd_baseline as base

PAPER = 24
DATA: tuple[str, ...] = base.DATA
BUDGETS: tuple[str, ...] = ()

PROTOGCD, SIMGCD, KMEANS = "ProtoGCD", "SimGCD", "k-means"
METHODS = (PROTOGCD, SIMGCD, KMEANS)
SETTINGS = base.SETTINGS
PARTS = base.PARTS
METRICS = [f"{s} {p}" for s in SETTINGS for p in PARTS]
RAMP_FRACTION = 0.5
SEPARATION_WEIGHT = 0.1

FULL = base.FULL
SMOKE = base.SMOKE

#: One unit: (setting name, method, seed, config).
Unit = tuple[str, str, int, base.SettingConfig]


def train_unit(unit: Unit) -> dict[str, float]:
    """All / Old / New (and the mean prototype cosine of a trained model) of one (setting, method, seed)."""
    from paperzoo.discovery.baselines import kmeans_predict
    from paperzoo.discovery.prototypes import mean_prototype_cosine, protogcd_objective
    from paperzoo.discovery.trainer import GCDObjective, predict, train_gcd
    from paperzoo.metrics import cluster_accuracy

    _, method, seed, cfg = unit
    problem = base.make_problem(cfg, seed)
    cosine = float("nan")
    if method == KMEANS:
        pred = kmeans_predict(problem.x, problem.n_classes, seed=seed)[problem.unlabelled_idx]
    else:
        seed_everything(seed)
        model = base.build_model(cfg, problem)
        classifier = model[-1].classifier
        if method == PROTOGCD:
            objective = protogcd_objective(
                classifier, epochs=cfg.epochs, ramp_fraction=RAMP_FRACTION, separation_weight=SEPARATION_WEIGHT
            )
        else:
            objective = GCDObjective(base._loss(cfg, cfg.memax_weight))
        train_gcd(
            model, problem.x, problem.targets, base._views(problem), objective,
            epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
        )  # fmt: skip
        pred = predict(model, problem.x[torch.from_numpy(problem.unlabelled_idx)]).numpy()
        cosine = mean_prototype_cosine(classifier.prototypes())
    acc = cluster_accuracy(problem.y[problem.unlabelled_idx], pred, problem.old_mask)
    return {"All": acc["all"], "Old": acc["old"], "New": acc["new"], "cos": cosine}


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
    """Run the reproduction over ``seeds`` and write its result files under ``out_dir/24-protogcd/``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    configs = SMOKE if smoke else FULL
    units = _units(rep.seeds, configs)
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, list(METHODS), baselines=[SIMGCD, KMEANS])
    per: dict[tuple[str, int], dict[str, float]] = {}
    cos: dict[tuple[str, str], list[float]] = {}
    for (name, method, seed, _), values in zip(units, outputs):
        per.setdefault((method, seed), {}).update({f"{name} {p}": values[p] for p in PARTS})
        if method != KMEANS:
            cos.setdefault((name, method), []).append(values["cos"])
    for (method, seed), values in sorted(per.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        table.add(method, seed, values)

    def cos_gap(name: str) -> list[float]:
        return list(np.subtract(cos[(name, PROTOGCD)], cos[(name, SIMGCD)]))

    claims = [
        Claim.greater(
            table,
            PROTOGCD,
            SIMGCD,
            "union30 All",
            statement="union30 EfficientNet features: ProtoGCD's All accuracy beats SimGCD's",
        ),
        Claim.greater(
            table,
            PROTOGCD,
            SIMGCD,
            "union30 New",
            statement="union30: ProtoGCD's unified, less biased objective raises New-class accuracy over SimGCD",
        ),
        Claim.greater(
            table,
            PROTOGCD,
            SIMGCD,
            "digits All",
            statement="digits (MLP from scratch): ProtoGCD's All accuracy beats SimGCD's",
        ),
        Claim.greater(
            table,
            PROTOGCD,
            KMEANS,
            "union30 All",
            statement="union30: ProtoGCD's All accuracy beats k-means on the same features",
        ),
        Claim.about(
            "union30: ProtoGCD's prototypes are more spread than SimGCD's (mean pairwise cosine, ProtoGCD - SimGCD < 0)",
            cos_gap("union30"),
            "<",
        ),
        Claim.about(
            "digits: ProtoGCD's prototypes are more spread than SimGCD's (mean pairwise cosine, ProtoGCD - SimGCD < 0)",
            cos_gap("digits"),
            "<",
        ),
    ]
    d, u = configs["digits"], configs["union30"]
    cos_means = {f"{n} {m}": float(np.mean(v)) for (n, m), v in cos.items()}
    result = rep.result(
        table,
        claims,
        setting=(
            f"the SimGCD reproduction's two settings unchanged: digits (1,797 8x8 images, old 0-4 / new 5-9, MLP "
            f"64-256-128 from scratch, {d.epochs} epochs) and union30 (frozen EfficientNet-Lite0 features of "
            f"{30 * u.per_class:,} images, old 20 / new 10 Animal-MNIST, trainable block 1280-256-128, {u.epochs} "
            "epochs); 0.5 of the old-class images labelled (one uniform draw per seed), DINO-style head, two views, "
            "SGD 0.1 / 0.9 / 5e-5, cosine per epoch, batch 128, last epoch, transductive All / Old / New. ProtoGCD: "
            f"DAPL (teacher 0.05 constant, hard-label share 0 -> 1 over the first {RAMP_FRACTION:.0%} of the epochs), "
            f"entropy weight 2, separation weight {SEPARATION_WEIGHT} (tau 0.1), lambda 0.35; SimGCD: teacher 0.07 -> "
            "0.04 over 15% of the epochs, epsilon 2; k-means k = K, 10 restarts"
        ),
        scale_note=(
            "no DINO ViT-B/16 and none of the paper's benchmarks offline: a small MLP from scratch on 8x8 digits and "
            "frozen EfficientNet-Lite0 features + a trainable block; 100 / 8 epochs instead of 200 (the DAPL ramp "
            "scaled to half of them); absolute numbers are not comparable"
        ),
        notes=(
            "mean pairwise cosine of the learned prototypes (mean over seeds): "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(cos_means.items()))
            + ". The number-of-classes estimate is not part of this run (the paper's Prototype Score is unconfirmed)."
        ),
        highlight=(PROTOGCD, SIMGCD, "union30 All"),
        extra={"prototype_cosine": {f"{n} {m}": v for (n, m), v in cos.items()}},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """All / Old / New of the three methods in both settings."""
    return base.settings_figure(result, "ProtoGCD vs SimGCD vs k-means")
