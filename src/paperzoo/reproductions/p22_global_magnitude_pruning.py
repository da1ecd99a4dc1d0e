"""Reproduction of paper 22, Global Magnitude Pruning with a Minimum Threshold (Gupta et al., 2022),
scaled down (this project's reproduction, docs/papers/22-global-magnitude-pruning.md).

The paper prunes ImageNet/CIFAR networks one-shot with Global MP and fine-tunes them with the
masks fixed. Here the same protocol runs on scikit-learn's 8x8 digits (pixels / 16, a stratified
70/30 split with ``random_state=0``) with an MLP 64-512-512-512-10, whose 562,176 prunable weights
sit in four layers of very different sizes (32,768 / 262,144 / 262,144 / 5,120), so the ranking's
per-layer allocation and its failure mode, layer collapse, both show.

* Dense training per seed: Adam lr 1e-3, batches of 64, 20 epochs, per-step cosine, label
  smoothing 0.1.
* Pruning, one-shot, at 90 / 95 / 97 % sparsity: Global MP, uniform layer-wise magnitude pruning,
  random pruning (the same sparsity in every layer) and Global MP + MT with T = 0.2 % of the
  prunable weights (1,124). Each pruned model is then fine-tuned 10 epochs (Adam lr 5e-4, per-step
  cosine, label smoothing 0.1) with the masks fixed. Test accuracy before ("one-shot") and after
  ("fine-tuned") fine-tuning.
* Also recorded (extra, not claimed): one-shot sparsity -> accuracy curves on a finer grid, the
  per-layer densities, and the measured CPU time of the dense model against the deployed pruned
  model (CSR sparse linear layers) on one thread.

Units: one dense training per seed (returns the weights and the one-shot curves), then one
(seed, method, sparsity) fine-tuning each; every unit seeds itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import curve_with_band, finish, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models import MLP
from paperzoo.pruning import (
    GlobalMagnitudePruner,
    RandomPruner,
    UniformMagnitudePruner,
    latency_comparison,
    masked_finetune,
    sparsity_report,
)
from paperzoo.pruning.base import Pruner
from paperzoo.pruning.curves import accuracy_of

PAPER = 22
DATA: tuple[str, ...] = ()  # scikit-learn's bundled digits
BUDGETS: tuple[str, ...] = ()

GMP, UNIFORM, RANDOM, MT = "Global MP", "uniform MP", "random", "Global MP + MT"
METHODS = (GMP, UNIFORM, RANDOM, MT)


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...]
    dense_epochs: int
    ft_epochs: int
    sparsities: tuple[float, ...]
    curve: tuple[float, ...]
    mt_fraction: float = 0.002
    batch_size: int = 64
    lr: float = 1e-3
    ft_lr: float = 5e-4
    label_smoothing: float = 0.1
    latency_repeats: int = 9


FULL = Config(
    hidden=(512, 512, 512),
    dense_epochs=20,
    ft_epochs=10,
    sparsities=(0.90, 0.95, 0.97),
    curve=(0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98),
)
SMOKE = Config(
    hidden=(64, 64), dense_epochs=2, ft_epochs=1, sparsities=(0.90, 0.95, 0.97), curve=(0.5, 0.9), latency_repeats=3
)


def _tag(s: float) -> str:
    return f"{s:.2f}"


def metric_names(cfg: Config) -> list[str]:
    return [f"{kind}@{_tag(s)}" for s in cfg.sparsities for kind in ("one-shot", "fine-tuned")]


# --------------------------------------------------------------------------- data and model
def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits pixels / 16 (flattened), stratified 70/30 split with ``random_state=0`` (the same for every seed)."""
    from sklearn.model_selection import train_test_split

    from paperzoo.data import load_digits

    d = load_digits()
    x = np.ascontiguousarray(d.x.reshape(len(d.y), -1), dtype=np.float32)
    y = np.asarray(d.y, dtype=np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def pruner_of(method: str, n_weights: int, cfg: Config, seed: int) -> Pruner:
    if method == GMP:
        return GlobalMagnitudePruner()
    if method == UNIFORM:
        return UniformMagnitudePruner()
    if method == RANDOM:
        return RandomPruner(seed=seed)
    if method == MT:
        return GlobalMagnitudePruner(min_weights=int(np.floor(cfg.mt_fraction * n_weights)))
    raise ValueError(f"unknown method {method!r}")


def _model(cfg: Config) -> nn.Module:
    return MLP(64, cfg.hidden, 10)


def _loader(x: torch.Tensor, y: torch.Tensor, cfg: Config, seed: int) -> Any:
    return make_loader(TensorDataset(x, y), cfg.batch_size, seed=seed)


def _n_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


# --------------------------------------------------------------------------- units
def dense_unit(unit: tuple[int, Config]) -> dict[str, Any]:
    """Train the seed's dense model; return its weights, accuracy, the one-shot curves of every
    method on ``cfg.curve`` and the measured CPU time dense vs deployed Global MP."""
    seed, cfg = unit
    xtr, ytr, xte, yte = digits_split()
    seed_everything(seed)
    model = _model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = _loader(xtr, ytr, cfg, seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.dense_epochs * len(loader))
    loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    fit(model, loss, loader, opt, TrainConfig(epochs=cfg.dense_epochs, seed=seed, progress=False), scheduler=sched)
    n = _n_weights(model)
    curves = {
        m: [accuracy_of(pruner_of(m, n, cfg, seed).prune(_copy(model), s), xte, yte) for s in cfg.curve]
        for m in METHODS
    }
    latency = []
    for s in cfg.sparsities:
        pruned = GlobalMagnitudePruner().prune(_copy(model), s)
        lat = latency_comparison(model, pruned, xte, warmup=2, repeats=cfg.latency_repeats)
        latency.append({"sparsity": s, **lat})
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "dense_acc": accuracy_of(model, xte, yte),
        "curves": curves,
        "latency": latency,
    }


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


#: (seed, method, sparsity, config, dense state)
Unit = tuple[int, str, float, Config, dict[str, torch.Tensor]]


def finetune_unit(unit: Unit) -> dict[str, Any]:
    """Prune the seed's dense model with ``method`` at ``sparsity``, fine-tune with the masks fixed."""
    seed, method, s, cfg, state = unit
    xtr, ytr, xte, yte = digits_split()
    seed_everything(seed)
    model = _model(cfg)
    model.load_state_dict(state)
    n = _n_weights(model)
    pruner = pruner_of(method, n, cfg, seed)
    pruner.prune(model, s)
    rep = sparsity_report(model, xte[:1])
    one_shot = accuracy_of(model, xte, yte)
    masked_finetune(
        model,
        _loader(xtr, ytr, cfg, seed),
        cfg.ft_epochs,
        lr=cfg.ft_lr,
        label_smoothing=cfg.label_smoothing,
        seed=seed,
    )
    after = sparsity_report(model, xte[:1])
    assert after["nonzero"] == rep["nonzero"], "fine-tuning changed the masks"
    return {
        "one-shot": one_shot,
        "fine-tuned": accuracy_of(model, xte, yte),
        "kept": [r["nnz"] for r in rep["layers"]],
        "sizes": [r["n"] for r in rep["layers"]],
        "T": int(np.floor(cfg.mt_fraction * n)),
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
    """Run the reproduction over ``seeds`` and write its files under ``out_dir/22-global-magnitude-pruning/``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    dense = rep.map(dense_unit, [(seed, cfg) for seed in rep.seeds], desc="#22 dense")
    units: list[Unit] = [
        (seed, method, s, cfg, d["state"])
        for seed, d in zip(rep.seeds, dense)
        for s in cfg.sparsities
        for method in METHODS
    ]
    outputs = rep.map(finetune_unit, units, desc="#22 prune + fine-tune")
    done = {(seed, method, s): o for (seed, method, s, _, _), o in zip(units, outputs)}

    metrics = metric_names(cfg)
    table = Table(metrics, METHODS, baselines=[UNIFORM, RANDOM])
    for seed in rep.seeds:
        for method in METHODS:
            values = {}
            for s in cfg.sparsities:
                o = done[seed, method, s]
                values[f"one-shot@{_tag(s)}"] = o["one-shot"]
                values[f"fine-tuned@{_tag(s)}"] = o["fine-tuned"]
            table.add(method, seed, values)

    lo, mid, hi = cfg.sparsities
    ft, os_ = (lambda s: f"fine-tuned@{_tag(s)}"), (lambda s: f"one-shot@{_tag(s)}")
    claims = [
        Claim.greater(
            table,
            GMP,
            UNIFORM,
            ft(lo),
            statement=f"at {lo:.0%} sparsity, after fine-tuning, Global MP beats uniform layer-wise magnitude pruning",
        ),
        Claim.greater(
            table,
            UNIFORM,
            RANDOM,
            ft(lo),
            statement=f"at {lo:.0%} sparsity, after fine-tuning, uniform magnitude pruning beats random pruning",
        ),
        Claim.greater(
            table,
            GMP,
            UNIFORM,
            os_(lo),
            margin=0.2,
            statement=f"at {lo:.0%} sparsity, one-shot (before fine-tuning), Global MP beats uniform magnitude "
            "pruning by more than 0.2",
        ),
    ]
    claims += [
        Claim.greater(
            table,
            MT,
            GMP,
            ft(s),
            margin=0.1,
            statement=f"at {s:.0%} sparsity, after fine-tuning, the Minimum Threshold beats plain Global MP by more "
            "than 0.1 (Global MP over-prunes the last layers)",
        )
        for s in (mid, hi)
    ]
    gp_hi = [done[seed, GMP, hi] for seed in rep.seeds]
    min_density = [min(k / n for k, n in zip(o["kept"], o["sizes"])) for o in gp_hi]
    classifier_margin = [o["kept"][-1] - o["T"] for o in gp_hi]
    claims += [
        Claim.about(
            f"at {hi:.0%} sparsity, Global MP collapses a layer: its smallest layer density is below 0.5 %",
            min_density,
            "<",
            0.005,
        ),
        Claim.about(
            f"at {hi:.0%} sparsity, Global MP leaves the classifier fewer than T = {gp_hi[0]['T']:,} weights "
            "(kept minus T, per seed)",
            classifier_margin,
            "<",
            0.0,
        ),
    ]

    extra = _extra(rep.seeds, cfg, dense, done)
    n = gp_hi[0]["sizes"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"scikit-learn digits (pixels/16, stratified 70/30 split, random_state=0); MLP 64-"
            f"{'-'.join(map(str, cfg.hidden))}-10 ({sum(n):,} prunable weights in layers of {', '.join(f'{x:,}' for x in n)}); "
            f"dense: Adam lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.dense_epochs} epochs, cosine, label smoothing "
            f"{cfg.label_smoothing}; one-shot pruning at {', '.join(f'{s:.0%}' for s in cfg.sparsities)}; fine-tuning "
            f"{cfg.ft_epochs} epochs, Adam lr {cfg.ft_lr:g}, cosine, label smoothing {cfg.label_smoothing}, masks fixed; "
            f"MT: T = {cfg.mt_fraction:.1%} of the weights ({gp_hi[0]['T']:,})"
        ),
        scale_note=(
            "no ImageNet/CIFAR networks (ResNet-50, WRN-28-8, MobileNet-V1) and none of the dozen published methods "
            "the paper compares against; a 4-layer MLP on 8x8 digits keeps the exact algorithm (one global ranking, "
            "MT allocation, masked fine-tuning) and shows the layer-collapse failure mode"
        ),
        notes=(
            "Dense test accuracy "
            f"{np.mean([d['dense_acc'] for d in dense]):.3f}. For an MLP the MACs per sample equal the non-zero "
            "weights, so every method at a sparsity has the same MAC reduction 1/(1-s); the CPU time of the dense "
            "model against the deployed Global-MP model (CSR sparse linear layers, one thread, batch of the 540 test "
            "images) is in extra['latency'] (wall-clock, machine-dependent: reported, never a claim). One-shot "
            "curves on a finer grid and per-layer densities are in extra."
        ),
        highlight=(GMP, UNIFORM, ft(lo)),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def _extra(seeds: Sequence[int], cfg: Config, dense: list[dict[str, Any]], done: dict[Any, Any]) -> dict[str, Any]:
    curves = {
        m: {
            "mean": np.mean([d["curves"][m] for d in dense], axis=0).tolist(),
            "std": np.std([d["curves"][m] for d in dense], axis=0).tolist(),
        }
        for m in METHODS
    }
    densities = {
        m: {
            _tag(s): np.mean(
                [[k / n for k, n in zip(done[seed, m, s]["kept"], done[seed, m, s]["sizes"])] for seed in seeds], axis=0
            ).tolist()
            for s in cfg.sparsities
        }
        for m in METHODS
    }
    kept = {
        m: {_tag(s): np.mean([done[seed, m, s]["kept"] for seed in seeds], axis=0).tolist() for s in cfg.sparsities}
        for m in METHODS
    }
    latency = [
        {
            "sparsity": s,
            "dense_ms": 1e3 * float(np.median([d["latency"][i]["dense_s"] for d in dense])),
            "pruned_ms": 1e3 * float(np.median([d["latency"][i]["pruned_s"] for d in dense])),
            "speedup": float(np.median([d["latency"][i]["speedup"] for d in dense])),
        }
        for i, s in enumerate(cfg.sparsities)
    ]
    return {
        "dense_acc": [d["dense_acc"] for d in dense],
        "curve_sparsities": list(cfg.curve),
        "one_shot_curves": curves,
        "layer_densities": densities,
        "layer_kept": kept,
        "layer_sizes": done[seeds[0], GMP, cfg.sparsities[0]]["sizes"],
        "T": done[seeds[0], MT, cfg.sparsities[0]]["T"],
        "latency": latency,
    }


def make_figure(result: Result) -> Any:
    """Accuracy after fine-tuning vs sparsity, one-shot curves, and Global MP's per-layer densities."""
    table, extra = result.table, result.extra
    fig, axes = subplots(3, width=5.0)
    sps = sorted({float(m.split("@")[1]) for m in table.metrics})
    for method in table.methods:
        names = [f"fine-tuned@{_tag(s)}" for s in sps]
        curve_with_band(
            axes[0], sps, [table.mean(method, k) for k in names], [table.summary(method, k)["std"] for k in names],
            marker="o", label=method,
        )  # fmt: skip
    axes[0].set_xlabel("sparsity")
    axes[0].set_ylabel("test accuracy after fine-tuning")
    axes[0].set_title("one-shot prune + masked fine-tuning")
    axes[0].legend(fontsize=8)
    xs = extra["curve_sparsities"]
    for method, c in extra["one_shot_curves"].items():
        curve_with_band(axes[1], xs, c["mean"], c["std"], marker=".", label=method)
    axes[1].set_xlabel("sparsity")
    axes[1].set_ylabel("test accuracy, one-shot (no fine-tuning)")
    axes[1].set_title("one-shot sparsity curves")
    sizes = extra["layer_sizes"]
    bars = [(s, m) for s in sps for m in (GMP, MT)]
    width = 0.8 / len(bars)
    for j, (s, method) in enumerate(bars):
        kept = extra["layer_kept"][method][_tag(s)]
        xs_ = np.arange(len(kept)) + (j - (len(bars) - 1) / 2) * width
        style = {"hatch": "//", "edgecolor": "black", "linewidth": 0.3} if method == MT else {}
        axes[2].bar(xs_, kept, width, color=f"C{sps.index(s)}", label=f"{method} {s:.0%}", **style)
    axes[2].axhline(extra["T"], color="black", linestyle="--", linewidth=1, label=f"T = {extra['T']:,}")
    axes[2].set_yscale("log")
    axes[2].set_xticks(np.arange(len(sizes)), [f"layer {i + 1}\nn={n:,}" for i, n in enumerate(sizes)])
    axes[2].set_ylabel("weights kept (log, mean over seeds)")
    axes[2].set_title("weights kept per layer: Global MP (plain) vs + MT (hatched)")
    axes[2].legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    return finish(fig, result, "Global MP vs uniform / random / + MT")
