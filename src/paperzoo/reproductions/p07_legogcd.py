"""Reproduction of LegoGCD (Cao et al., CVPR 2024), scaled down (docs/papers/07-legogcd.md).

The SimGCD baseline reproduction's two settings, reused as they are (its problems, models, views,
epochs and SimGCD values, :mod:`paperzoo.reproductions.p00_simgcd_baseline`), so the SimGCD row is
the same run:

* ``digits``: 8x8 digits, old 0-4 / new 5-9, an MLP from scratch, 100 epochs, epsilon = 2;
* ``union30``: frozen EfficientNet-Lite0 features of the 30-class union (200 per class), old 20
  (Fashion-MNIST + MNIST) / new 10 (Animal-MNIST), a trainable block, 8 epochs, epsilon = 2;
* ``digits eps4``: digits with the stronger mean-entropy weight epsilon = 4 (the CIFAR-100 value of
  SimGCD), where SimGCD's old-class accuracy drops and LegoGCD has forgetting to fix.

Methods on the same split and initialisation per seed: LegoGCD (SimGCD + 0.65 DKL in the official
mode + 2 LER with delta = 0.7, tau_o = 0.05, lambda_ler = 0.4, EMA 0.999: the released code's values
for CUB), SimGCD, and k-means (k = K, 10 restarts) on the same inputs. All / Old / New clustering
accuracy on the unlabelled images; the Old accuracy is also recorded after every epoch
(:class:`paperzoo.discovery.legogcd.OldAccuracyProbe`) for the paper's forgetting (peak Old minus
final Old).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.reproductions import p00_simgcd_baseline as base

PAPER = 7
DATA: tuple[str, ...] = base.DATA
BUDGETS: tuple[str, ...] = ()

LEGO, SIMGCD, KMEANS = "LegoGCD", "SimGCD", "k-means"
METHODS = (LEGO, SIMGCD, KMEANS)
SETTINGS = ("digits", "union30", "digits eps4")
PARTS = ("All", "Old", "New")
METRICS = [f"{s} {p}" for s in SETTINGS for p in PARTS]
N_OLD = {"digits": 5, "union30": 20}

#: LegoGCD's values (the released code, CUB script): beta, delta.
BETA, THRESHOLD = 2.0, 0.7


def configs(smoke: bool) -> dict[str, base.SettingConfig]:
    cfgs = base.SMOKE if smoke else base.FULL
    return {
        "digits": cfgs["digits"],
        "union30": cfgs["union30"],
        "digits eps4": replace(cfgs["digits"], memax_weight=4.0),
    }


#: One unit: (setting, method, seed, config).
Unit = tuple[str, str, int, base.SettingConfig]


def objective(cfg: base.SettingConfig, method: str, n_classes: int) -> torch.nn.Module:
    """The GCD objective of ``method``: LegoGCD's (SimGCD + DKL + LER) or SimGCD's (no extra term)."""
    from paperzoo.discovery.legogcd import legogcd_objective

    warmup = max(1, round(cfg.warmup_fraction * cfg.epochs))
    lego = method == LEGO
    return legogcd_objective(
        n_classes,
        N_OLD[cfg.name],
        teacher_temp=(0.07, 0.04, warmup),
        lambda_sup=0.35,
        memax_weight=cfg.memax_weight,
        beta=BETA if lego else 0.0,
        threshold=THRESHOLD,
        dkl=lego,
    )


def train_unit(unit: Unit) -> dict[str, float]:
    """All / Old / New of one (setting, method, seed) and, for trained methods, the forgetting."""
    from paperzoo.discovery.baselines import kmeans_predict
    from paperzoo.discovery.legogcd import OldAccuracyProbe, forgetting
    from paperzoo.discovery.trainer import predict, train_gcd
    from paperzoo.metrics import cluster_accuracy

    _, method, seed, cfg = unit
    problem = base.make_problem(cfg, seed)
    un = torch.from_numpy(problem.unlabelled_idx)
    y_un = problem.y[problem.unlabelled_idx]
    if method == KMEANS:
        pred = kmeans_predict(problem.x, problem.n_classes, seed=seed)[problem.unlabelled_idx]
        acc = cluster_accuracy(y_un, pred, problem.old_mask)
        return {"All": acc["all"], "Old": acc["old"], "New": acc["new"], "forgetting": float("nan")}
    seed_everything(seed)
    model = base.build_model(cfg, problem)
    obj = objective(cfg, method, problem.n_classes)
    probe = OldAccuracyProbe(model, problem.x[un], y_un, problem.old_mask)
    obj.extra_terms.append(probe)  # adds no loss and draws no random numbers: training is unchanged
    train_gcd(
        model, problem.x, problem.targets, base._views(problem), obj,
        epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
    )  # fmt: skip
    pred = predict(model, problem.x[un]).numpy()
    acc = cluster_accuracy(y_un, pred, problem.old_mask)
    old_curve = [c["Old"] for c in probe.curve] + [acc["old"]]
    return {"All": acc["all"], "Old": acc["old"], "New": acc["new"], "forgetting": forgetting(old_curve)}


def _units(seeds: Sequence[int], cfgs: dict[str, base.SettingConfig]) -> list[Unit]:
    return [(name, method, seed, cfg) for seed in seeds for name, cfg in cfgs.items() for method in METHODS]


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
    under ``out_dir/07-legogcd/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfgs = configs(smoke)
    units = _units(rep.seeds, cfgs)
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, list(METHODS), baselines=[KMEANS])
    per: dict[tuple[str, int], dict[str, float]] = {}
    forget: dict[tuple[str, str], dict[int, float]] = {}
    for (name, method, seed, _), values in zip(units, outputs):
        per.setdefault((method, seed), {}).update({f"{name} {p}": values[p] for p in PARTS})
        forget.setdefault((name, method), {})[seed] = values["forgetting"]
    for (method, seed), values in sorted(per.items(), key=lambda kv: (METHODS.index(kv[0][0]), kv[0][1])):
        table.add(method, seed, values)

    def forget_diff(name: str) -> list[float]:
        lego, sim = forget[(name, LEGO)], forget[(name, SIMGCD)]
        return [lego[s] - sim[s] for s in sorted(lego)]

    claims = [
        Claim.greater(
            table,
            LEGO,
            SIMGCD,
            "digits Old",
            statement="digits (epsilon 2): LegoGCD raises the old-class accuracy over SimGCD",
        ),
        Claim.greater(
            table,
            LEGO,
            SIMGCD,
            "union30 Old",
            statement="union30 EfficientNet features: LegoGCD raises the old-class accuracy over SimGCD",
        ),
        Claim.greater(
            table,
            LEGO,
            SIMGCD,
            "union30 All",
            statement="union30: LegoGCD raises All accuracy over SimGCD (the paper's headline gain)",
        ),
        Claim.greater(
            table,
            LEGO,
            SIMGCD,
            "digits eps4 Old",
            statement="digits, epsilon 4 (SimGCD forgets more): LegoGCD raises the old-class accuracy over SimGCD",
        ),
        Claim.about(
            "digits, epsilon 4: LegoGCD forgets less (peak-over-epochs Old minus final Old, LegoGCD - SimGCD < 0)",
            forget_diff("digits eps4"),
            "<",
        ),
        Claim.greater(
            table,
            LEGO,
            KMEANS,
            "union30 All",
            statement="union30: LegoGCD's All accuracy beats k-means on the same features",
        ),
    ]
    forgetting_means = {
        f"{name} / {method}": float(np.mean(list(forget[(name, method)].values())))
        for name in cfgs
        for method in (LEGO, SIMGCD)
    }
    d, u = cfgs["digits"], cfgs["union30"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"the SimGCD reproduction's settings unchanged: digits (8x8, old 0-4 / new 5-9, MLP from scratch, "
            f"{d.epochs} epochs) and union30 (frozen EfficientNet-Lite0 features of {30 * u.per_class:,} images, old 20 "
            f"/ new 10, trainable block, {u.epochs} epochs), epsilon 2; plus digits with epsilon 4. LegoGCD = SimGCD + "
            f"0.65 x DKL (official double-softmax form) + {BETA:g} x LER (delta {THRESHOLD:g}, tau_o 0.05, lambda_ler 0.4, "
            "EMA prior 0.999); k-means k = K on the same inputs; last epoch, transductive All / Old / New"
        ),
        scale_note=(
            "no DINO ViT-B/16 and none of the paper's eight benchmarks offline: a small MLP on 8x8 digits and frozen "
            f"EfficientNet-Lite0 features + a trainable block; {d.epochs} / {u.epochs} epochs instead of 200. Old-class "
            "forgetting (the phenomenon LegoGCD fixes) is weak at this scale; absolute numbers are not comparable"
        ),
        notes=(
            "Forgetting (peak Old accuracy over epochs minus final Old; mean over seeds): "
            + ", ".join(f"{k} {v:.3f}" for k, v in forgetting_means.items())
            + ". The SimGCD rows of digits and union30 are the same runs as the SimGCD baseline reproduction."
        ),
        highlight=(LEGO, SIMGCD, "union30 Old"),
        extra={"forgetting": {f"{n} / {m}": v for (n, m), v in forget.items() if m != KMEANS}},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """All / Old / New of the three methods in the three settings."""
    fig, axes = subplots(3, width=5.0)
    for ax, name in zip(axes, SETTINGS):
        grouped_bars(
            ax,
            result.table,
            [f"{name} {p}" for p in PARTS],
            labels=list(PARTS),
            ylabel="clustering accuracy (mean ± std over seeds)",
            ylim=(0.0, 1.05),
            title=name,
        )
    axes[0].legend(fontsize=8, loc="lower right")
    return finish(fig, result, "LegoGCD vs SimGCD vs k-means")
