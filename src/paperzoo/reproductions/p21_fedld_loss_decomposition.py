"""Reproduction of paper 21, FedLD (Zeng et al., MICCAI 2024), scaled down (this project's
reproduction, docs/papers/21-fedld-loss-decomposition.md).

The paper fine-tunes an ImageNet-pretrained ResNet-50 on 2-3-class medical images split over 5-12
clients. Here: frozen EfficientNet-Lite0 (ImageNet) features of the 30-class union
(Fashion-MNIST + MNIST + Animal-MNIST, :func:`paperzoo.data.pretrained_features.union30_effnet`),
a balanced per-class train / test split drawn per seed, the training part split over 10 clients
with Dirichlet(0.1) label skew (:func:`paperzoo.federated.partition.dirichlet_partition`), and an
MLP head 1280-32-30 trained federatedly with the official local recipe (1 epoch, batch 50, SGD
lr 0.01, momentum 0.5, weight decay 5e-4), every client every round.

Methods, all the same Flower apps (:func:`paperzoo.federated.fedld.fedld_apps`, in process):
FedAvg (Flower's ``FedAvg``, cross-entropy clients), FedProx (Flower's ``FedProx``, mu 0.01),
the two ablations (margin-control loss with FedAvg's mean; principal-gradient aggregation with
cross-entropy clients) and FedLD (both; lam 0.1, k_prop 0.8). Metric: accuracy of the global
model on the balanced test set, mean of the last 5 rounds; and the paper's decomposition of the
global test loss (local / distribution-shift / aggregation terms), also over the last 5 rounds.

A unit is one (method, seed) federated run; it seeds itself and runs one thread.
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
from paperzoo.engine.plots import curve_with_band, finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start

PAPER = 21
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

FEDAVG, FEDPROX, MARGIN, PRINCIPAL, FEDLD = (
    "FedAvg",
    "FedProx (mu 0.01)",
    "+ margin loss only",
    "+ principal aggregation only",
    "FedLD (both)",
)
METHODS = (FEDAVG, FEDPROX, MARGIN, PRINCIPAL, FEDLD)
#: method -> (lam, aggregation, proximal_mu) of :func:`fedld_apps`
SETTINGS: dict[str, tuple[float, str, float]] = {
    FEDAVG: (0.0, "mean", 0.0),
    FEDPROX: (0.0, "mean", 0.01),
    MARGIN: (0.1, "mean", 0.0),
    PRINCIPAL: (0.0, "principal", 0.0),
    FEDLD: (0.1, "principal", 0.0),
}
ACC, ACC_MID, SHIFT, AGG = "accuracy", "accuracy @ round 10", "shift loss", "aggregation loss"
METRICS = [ACC, ACC_MID, SHIFT, AGG]
LAST = 5  # rounds averaged at the end
MID = 10  # the early-round accuracy


@dataclass(frozen=True)
class Config:
    per_class: int  # union30 images per class (features cached per value)
    test_per_class: int  # of them, held out per class for the balanced test set
    train_per_class: int  # of the rest, used for training
    clients: int
    alpha: float
    rounds: int
    hidden: int


FULL = Config(per_class=300, test_per_class=50, train_per_class=200, clients=10, alpha=0.1, rounds=20, hidden=32)
SMOKE = Config(per_class=10, test_per_class=4, train_per_class=6, clients=3, alpha=0.5, rounds=2, hidden=16)


@lru_cache(maxsize=1)
def _features(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    from paperzoo.data.pretrained_features import union30_effnet

    f = union30_effnet(max_per_class=per_class)
    return f.x, f.y


def make_data(cfg: Config, seed: int) -> Any:
    """The seed's federated data: a balanced per-class test split, features standardised with the
    training split's statistics, the training split partitioned by Dirichlet(alpha) label skew."""
    from paperzoo.federated.baselines import FederatedData
    from paperzoo.federated.partition import dirichlet_partition

    x, y = _features(cfg.per_class)
    rng = np.random.default_rng(seed)
    order = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    test = np.sort(np.concatenate([o[: cfg.test_per_class] for o in order]))
    train = np.sort(np.concatenate([o[cfg.test_per_class : cfg.test_per_class + cfg.train_per_class] for o in order]))
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    xs = ((x - mu) / sd).astype(np.float32)
    parts = dirichlet_partition(y[train], cfg.clients, cfg.alpha, seed=seed, min_size=10)
    t = torch.from_numpy
    return FederatedData(t(xs[train]), t(y[train]), tuple(parts), t(xs[test]), t(y[test]), int(y.max()) + 1)


def run_unit(unit: tuple[str, int, Config]) -> dict[str, Any]:
    """One federated run: the per-round history of the global model."""
    from paperzoo.federated.fedld import fedld_apps
    from paperzoo.federated.flower import run_federation
    from paperzoo.models import MLP

    method, seed, cfg = unit
    seed_everything(seed)
    data = make_data(cfg, seed)
    lam, aggregation, mu = SETTINGS[method]

    def model_fn() -> nn.Module:
        return MLP(data.x.shape[1], (cfg.hidden,), data.num_classes)

    server, client, history = fedld_apps(
        model_fn, data, rounds=cfg.rounds, lam=lam, aggregation=aggregation, proximal_mu=mu, seed=seed,
        decomposition=range(cfg.rounds - LAST + 1, cfg.rounds + 1),
    )  # fmt: skip
    run_federation(server, client, data.num_clients)
    sizes = [len(p) for p in data.partitions]
    return {"rounds": history.rounds, "wall_s": history.wall_s, "client_sizes": sizes}


def _values(rounds: list[dict[str, float]]) -> dict[str, float]:
    last = rounds[-LAST:]
    mid = rounds[min(MID, len(rounds)) - 1]
    return {
        ACC: float(np.mean([r["accuracy"] for r in last])),
        ACC_MID: float(mid["accuracy"]),
        SHIFT: float(np.mean([r["shift"] for r in last])),
        AGG: float(np.mean([r["aggregation"] for r in last])),
    }


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` and write its result under ``out_dir/21-.../``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units = [(method, seed, cfg) for seed in rep.seeds for method in METHODS]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=[FEDAVG, FEDPROX])
    curves: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    ratios: list[float] = []
    for (method, seed, _), out in zip(units, outputs):
        table.add(method, seed, _values(out["rounds"]))
        curves[method].append([r["accuracy"] for r in out["rounds"]])
        if method == FEDLD:
            ratios += [r["fedld-step-ratio"] for r in out["rounds"][1:]]

    claims = [
        Claim.greater(table, FEDLD, FEDAVG, ACC),
        Claim.greater(table, FEDLD, FEDPROX, ACC),
        Claim.greater(table, FEDLD, MARGIN, ACC),  # the aggregation component contributes
        Claim.greater(table, FEDLD, PRINCIPAL, ACC),  # the margin component contributes
        Claim.less(table, MARGIN, FEDAVG, SHIFT),  # the margin loss shrinks the distribution-shift term
        Claim.less(table, PRINCIPAL, FEDAVG, AGG),  # principal aggregation shrinks the aggregation term
    ]
    sizes = outputs[0]["client_sizes"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"frozen EfficientNet-Lite0 features of the 30-class union, {cfg.train_per_class} train / "
            f"{cfg.test_per_class} test images per class; {cfg.clients} clients, Dirichlet({cfg.alpha}) label skew "
            f"(seed 0 client sizes {min(sizes)}-{max(sizes)}); MLP head 1280-{cfg.hidden}-30; {cfg.rounds} rounds, "
            "all clients, 1 local epoch, batch 50, SGD lr 0.01 momentum 0.5 wd 5e-4; lam 0.1, k_prop 0.8; "
            f"accuracy and loss terms = mean of the last {LAST} rounds; Flower apps, in-process backend"
        ),
        scale_note=(
            "no medical images (Retina, COVID-FL) and no fine-tuned ResNet-50 at 384 px: a frozen ImageNet backbone "
            f"with a federated MLP head on a 30-class offline union, {cfg.clients} label-skewed clients, "
            f"{cfg.rounds} rounds instead of 200"
        ),
        notes=(
            "Loss terms follow the paper's decomposition of the global test loss L(w): shift = sum_k p_k "
            "(L(w_k) - L_k(w_k)), aggregation = L(w) - sum_k p_k L(w_k) (p_k = client sample share). "
            f"FedLD's server step is {np.mean(ratios) if ratios else float('nan'):.2f}x the plain mean's length "
            "on average after round 1 (fedld-step-ratio)."
        ),
        highlight=(FEDLD, FEDAVG, ACC),
        extra={"step_ratio_mean": float(np.mean(ratios)) if ratios else None, "curves": curves},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    fig, axes = subplots(3, width=5.2)
    table = result.table
    grouped_bars(
        axes[0], table, [ACC, ACC_MID], labels=[f"last {LAST} rounds", f"round {MID}"], title="global test accuracy"
    )
    grouped_bars(axes[1], table, [SHIFT, AGG], labels=["shift term", "aggregation term"], title="loss decomposition")
    curves = result.extra.get("curves", {})
    for method, runs in curves.items():
        arr = np.asarray(runs, dtype=float)
        if arr.size:
            curve_with_band(axes[2], np.arange(1, arr.shape[1] + 1), arr.mean(0), arr.std(0), label=method)
    axes[2].set_xlabel("round")
    axes[2].set_ylabel("global test accuracy")
    axes[2].legend(fontsize=7)
    return finish(fig, result, "FedLD vs FedAvg / FedProx")
