"""Reproduction of paper 18, "FedLoGe: Joint Local and Generic Federated Learning under
Long-tailed Data" (Xiao et al., ICLR 2024), scaled down (docs/papers/18-fedloge.md).

Protocol (the official code's, at a size a 2-core CPU affords):

* global training set: ``n_max`` Fashion-MNIST training images per class drawn per seed, then
  made long-tailed (class ``c`` keeps ``floor(n_max * IF^(c/9))``, IF = 0.01, Cao et al.);
* split over ``K`` clients with Dirichlet(alpha) label skew (per class, client shares from
  ``Dir(alpha 1)``); a balanced global test set (the Fashion-MNIST test set, 1,000 images per class); each client's local
  test set follows its training label distribution (the reference's ``local test`` split);
* model: MLP 784-128-64 backbone (no ReLU on the features), linear heads 64 -> 10;
* all clients every round, SGD (lr, momentum 0.5), batch 32, a few local epochs;
* FedLoGe (SSE-C: sparse ETF, sparsity 0.6, target column norm 1; Adam 1e-3 x 1000 steps), its
  dense-ETF ablation (sparsity 0), FedAvg and FedProx (:mod:`paperzoo.federated.baselines`) on the same
  backbone + a linear head, same recipe.

Every run goes through Flower (ServerApp + ClientApp + strategy) on the in-process backend of
:func:`paperzoo.federated.flower.run_federation`; the same apps run on Ray's simulation engine.

Metrics: generic accuracy on the balanced test set with its head / middle / tail split
(``shot_split`` of the training counts, thresholds 75 % / 95 %), personalised accuracy = the
unweighted mean over clients of the local-test accuracy, classes absent from a client's local
test set masked. One FedLoGe run gives three rows: step 1 (SSE-C generic; l_head + g_aux
personal), g_aux without realignment, and step 2 (GA-FR generic; l_head + LA-FR personal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.plots import curve_with_band, finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start

PAPER = 18
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

FEDAVG = "FedAvg"
FEDAVG_GA = "FedAvg + GA-FR (post hoc)"
FEDPROX = "FedProx"
LOGE_STEP1 = "FedLoGe step 1 (SSE-C; l_head + g_aux)"
LOGE_AUX = "FedLoGe g_aux (no realignment)"
LOGE = "FedLoGe (GA-FR; l_head + LA-FR)"
LOGE_DENSE = "FedLoGe, dense ETF (GA-FR; l_head + LA-FR)"
METHODS = (FEDAVG, FEDAVG_GA, FEDPROX, LOGE_STEP1, LOGE_AUX, LOGE, LOGE_DENSE)
BASELINES = (FEDAVG, FEDPROX)

GENERIC, HEAD, MIDDLE, TAIL, PERSONAL = "generic acc", "head acc", "middle acc", "tail acc", "personal acc"
METRICS = [GENERIC, HEAD, MIDDLE, TAIL, PERSONAL]

#: runs (one Flower federation each); the rows of the table are read off them
RUNS = ("fedavg", "fedprox", "fedloge", "fedloge-dense")


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    n_max: int
    imbalance: float
    clients: int
    alpha: float
    rounds: int
    local_epochs: int
    test_per_class: int
    etf_steps: int
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.5
    hidden: int = 128
    dim: int = 64
    sparsity: float = 0.6
    target_norm: float = 1.0
    etf_lr: float = 1e-3
    proximal_mu: float = 0.01


FULL = Config(n_max=1000, imbalance=100.0, clients=10, alpha=0.5, rounds=20, local_epochs=2, test_per_class=1000,
              etf_steps=1000)  # fmt: skip
SMOKE = Config(n_max=60, imbalance=10.0, clients=4, alpha=0.5, rounds=2, local_epochs=1, test_per_class=50,
               etf_steps=50)  # fmt: skip


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=1)
def _fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    return train.flat(), train.y, test.flat(), test.y


@dataclass(frozen=True, eq=False)
class FedLTData:
    """One seed's federated long-tailed data: the federation and the clients' local test sets."""

    data: Any  # paperzoo.federated.baselines.FederatedData
    local_test: tuple[np.ndarray, ...]
    counts: np.ndarray


def build_data(cfg: Config, seed: int) -> FedLTData:
    """Long-tailed Fashion-MNIST (``n_max`` per class before the tail, IF = 1 / ``imbalance``),
    Dirichlet-split over ``cfg.clients``; a balanced global test set of ``test_per_class`` test
    images per class and each client's local test set drawn from it."""
    from paperzoo.data.synthetic import long_tailed
    from paperzoo.federated.baselines import FederatedData
    from paperzoo.federated.fedloge import local_test_indices
    from paperzoo.federated.partition import dirichlet_partition

    x, y, xt, yt = _fashion()
    rng = np.random.default_rng([seed, PAPER])
    pool = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), cfg.n_max, replace=False) for c in range(10)]))
    keep = pool[long_tailed(y[pool], cfg.imbalance, seed=seed)]
    xs, ys = x[keep], y[keep]
    parts = dirichlet_partition(ys, cfg.clients, cfg.alpha, seed=seed)
    test = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(yt == c), cfg.test_per_class, replace=False) for c in range(10)])
    )
    xt, yt = xt[test], yt[test]
    local = tuple(
        local_test_indices(np.bincount(ys[p], minlength=10), yt, ys.size, np.random.default_rng([seed, PAPER, k]))
        for k, p in enumerate(parts)
    )
    data = FederatedData(
        torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(ys), tuple(parts),
        torch.from_numpy(np.ascontiguousarray(xt)), torch.from_numpy(yt), 10,
    )  # fmt: skip
    return FedLTData(data, local, np.bincount(ys, minlength=10))


def _backbone(cfg: Config) -> nn.Module:
    from paperzoo.models import MLP

    return MLP(784, (cfg.hidden,), cfg.dim)  # the last layer is linear: no ReLU on the features


# --------------------------------------------------------------------------- evaluation of FedAvg-style models
@torch.no_grad()
def _head_scores(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, y: torch.Tensor, shots: tuple[np.ndarray, ...]
) -> dict[str, float]:
    hit = ((features @ weight.T + bias).argmax(1) == y).double()
    out = {GENERIC: float(hit.mean())}
    for name, classes in zip((HEAD, MIDDLE, TAIL), shots, strict=True):
        sel = torch.isin(y, torch.as_tensor(classes, dtype=y.dtype))
        out[name] = float(hit[sel].mean()) if bool(sel.any()) else math.nan
    return out


@torch.no_grad()
def _personal(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, fl: FedLTData) -> float:
    from paperzoo.federated.fedloge import mask_logits

    y = fl.data.y_test
    accs = []
    for idx in fl.local_test:
        if idx.size == 0:
            continue
        i = torch.from_numpy(idx)
        absent = torch.bincount(y[i], minlength=10) == 0
        logits = mask_logits(features[i] @ weight.T + bias, absent)
        accs.append(float((logits.argmax(1) == y[i]).double().mean()))
    return float(np.mean(accs))


# --------------------------------------------------------------------------- units
def run_unit(unit: tuple[str, int, Config]) -> dict[str, Any]:
    """One federation (``run`` in :data:`RUNS`) for one seed: its table rows and per-round curves."""
    from paperzoo.federated.baselines import LocalTraining, fedavg_apps
    from paperzoo.federated.fedloge import FedLoGeConfig, FedLoGeModel, fedloge_apps, ga_fr, shot_split
    from paperzoo.federated.flower import run_federation
    from paperzoo.models.etf import sparse_etf

    run, seed, cfg = unit
    seed_everything(seed)
    torch.set_num_threads(1)
    fl = build_data(cfg, seed)
    shots = shot_split(fl.counts)
    local = LocalTraining(epochs=cfg.local_epochs, lr=cfg.lr, batch_size=cfg.batch_size, momentum=cfg.momentum)
    y_test = fl.data.y_test
    if run in ("fedavg", "fedprox"):

        def model_fn() -> nn.Module:
            return nn.Sequential(_backbone(cfg), nn.Linear(cfg.dim, 10))

        mu = cfg.proximal_mu if run == "fedprox" else 0.0
        server, client, history = fedavg_apps(
            model_fn, fl.data, rounds=cfg.rounds, local=local, proximal_mu=mu, seed=seed
        )
        run_federation(server, client, fl.data.num_clients)
        model = model_fn()
        model.load_state_dict(history.final_state)
        model.eval()
        with torch.no_grad():
            f = model[0](fl.data.x_test)
        w, b = model[1].weight.detach(), model[1].bias.detach()
        plain = {**_head_scores(f, w, b, y_test, shots), PERSONAL: _personal(f, w, b, fl)}
        rows = {FEDAVG if run == "fedavg" else FEDPROX: plain}
        if run == "fedavg":
            wg, bg = ga_fr(w, b)
            rows[FEDAVG_GA] = {**_head_scores(f, wg, bg, y_test, shots), PERSONAL: _personal(f, wg, bg, fl)}
        return {"rows": rows, "curve": history.metric("accuracy"), "wall_s": history.wall_s}

    sparsity = cfg.sparsity if run == "fedloge" else 0.0
    sse = sparse_etf(cfg.dim, 10, sparsity=sparsity, target_norm=cfg.target_norm, steps=cfg.etf_steps,
                     lr=cfg.etf_lr, seed=seed)  # fmt: skip

    def fedloge_fn() -> FedLoGeModel:
        return FedLoGeModel(_backbone(cfg), sse)

    config = FedLoGeConfig(rounds=cfg.rounds, local=local, seed=seed)
    server, client, hist = fedloge_apps(fedloge_fn, fl.data, config, local_test=fl.local_test)
    run_federation(server, client, fl.data.num_clients)
    gen, per = hist.generic[cfg.rounds], hist.personal[cfg.rounds]

    def generic(prefix: str) -> dict[str, float]:
        return {GENERIC: gen[f"{prefix} acc"], HEAD: gen[f"{prefix} head acc"],
                MIDDLE: gen[f"{prefix} middle acc"], TAIL: gen[f"{prefix} tail acc"]}  # fmt: skip

    if run == "fedloge":
        rows = {
            LOGE_STEP1: {**generic("sse"), PERSONAL: per["local+global acc"]},
            LOGE_AUX: {**generic("g_aux"), PERSONAL: per["g_aux acc"]},
            LOGE: {**generic("ga_fr"), PERSONAL: per["personal acc"]},
        }
    else:
        rows = {LOGE_DENSE: {**generic("ga_fr"), PERSONAL: per["personal acc"]}}
    curve = {k: [hist.generic[r][f"{k} acc"] for r in sorted(hist.generic)] for k in ("sse", "g_aux", "ga_fr")}
    extra = {"l_head acc": per["l_head acc"], "sse personal acc": per["sse acc"]}
    return {"rows": rows, "curve": curve, "wall_s": hist.wall_s, "extra": extra}


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units = [(r, seed, cfg) for seed in rep.seeds for r in RUNS]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=BASELINES)
    curves: dict[str, dict[int, Any]] = {r: {} for r in RUNS}
    extra: dict[str, Any] = {"l_head acc": {}, "wall_s": {}}
    for (r, seed, _), out in zip(units, outputs, strict=True):
        for method, values in out["rows"].items():
            table.add(method, seed, values)
        curves[r][seed] = out["curve"]
        extra["wall_s"][f"{r} seed {seed}"] = round(out["wall_s"], 2)
        if r == "fedloge":
            extra["l_head acc"][seed] = out["extra"]["l_head acc"]
    claims = [
        Claim.greater(table, LOGE, FEDAVG, GENERIC),
        Claim.greater(table, LOGE, FEDAVG, PERSONAL),
        Claim.greater(table, LOGE_STEP1, FEDAVG, GENERIC),
        Claim.greater(table, LOGE, LOGE_AUX, TAIL),
        Claim.greater(table, LOGE, LOGE_AUX, PERSONAL),
    ]
    extra["curves"] = curves
    n_train = int(cfg.n_max * sum(cfg.imbalance ** (-c / 9) for c in range(10)))
    result = rep.result(
        table,
        claims,
        setting=(
            f"long-tailed Fashion-MNIST (n_max {cfg.n_max}, IF 1/{cfg.imbalance:g}, ~{n_train} images), "
            f"{cfg.clients} clients, Dirichlet alpha {cfg.alpha}; {10 * cfg.test_per_class} balanced test images, local test "
            f"sets following each client's label distribution; MLP 784-{cfg.hidden}-{cfg.dim} + linear heads; "
            f"{cfg.rounds} rounds, all clients, {cfg.local_epochs} local epochs, SGD lr {cfg.lr} momentum "
            f"{cfg.momentum}, batch {cfg.batch_size}; SSE-C sparsity {cfg.sparsity}, target norm {cfg.target_norm:g}; "
            f"FedProx mu {cfg.proximal_mu}; Flower 1.42 apps on the in-process backend"
        ),
        scale_note=(
            "Fashion-MNIST with an MLP instead of CIFAR-10/100-LT, ImageNet-LT and iNaturalist with ResNets; "
            f"{cfg.clients} clients all participating for {cfg.rounds} rounds instead of 40 clients at 20-30 % for "
            "500 rounds; SSE-C target norm 1 instead of 0.1 (tuned for 512-d ResNet features)"
        ),
        notes=(
            "Rows FedLoGe step 1 / g_aux / GA-FR come from the same FedLoGe run (three inference models). "
            "FedAvg + GA-FR applies the realignment to FedAvg's own head after training. Personalised accuracy "
            "of FedAvg / FedProx is the global model on each local test set with absent classes masked. "
            "Sparse vs dense ETF and FedLoGe vs FedAvg + GA-FR are reported, not claimed."
        ),
        highlight=(LOGE, FEDAVG, GENERIC),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    fig, axes = subplots(2, width=6.0, width_ratios=(1.6, 1.0))
    grouped_bars(axes[0], result.table, [GENERIC, TAIL, PERSONAL], ylim=(0.0, 1.0), title="final round")
    axes[0].legend(fontsize=6, loc="upper left")
    curves = result.extra["curves"]
    for run_name, key, label in (("fedavg", None, FEDAVG), ("fedloge", "sse", "FedLoGe SSE-C"),
                                 ("fedloge", "g_aux", "FedLoGe g_aux"), ("fedloge", "ga_fr", "FedLoGe GA-FR")):  # fmt: skip
        per_seed = [c if key is None else c[key] for c in curves[run_name].values()]
        arr = np.asarray(per_seed, dtype=float)
        rounds = np.arange(1, arr.shape[1] + 1)
        curve_with_band(axes[1], rounds, arr.mean(0), arr.std(0), label=label)
    axes[1].set_xlabel("round")
    axes[1].set_ylabel("generic accuracy (balanced test)")
    axes[1].legend(fontsize=7)
    axes[1].grid(alpha=0.3)
    return finish(fig, result, "FedLoGe vs FedAvg, long-tailed Fashion-MNIST")
