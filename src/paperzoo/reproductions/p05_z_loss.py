"""Reproduction of paper 05, the Z-loss (de Brébisson & Vincent, 2016), scaled down (this project's
reproduction, docs/papers/05-z-loss.md).

Two offline tasks, each trained with three losses on the same data and initialisation:

* a many-class synthetic task generated here with NumPy from the seed: D = 300 classes in 30
  super-clusters (centres ~ N(0, 1.5^2 I_32), class prototypes = centre + N(0, I)), Zipf class
  frequencies (1/rank^1.1), inputs = prototype + N(0, 3.2^2 I); an MLP 32-128-128-300;
  top-1/5/20 accuracy (a stand-in for the paper's word-level language models, whose many
  classes are words with Zipf frequencies);
* Fashion-MNIST (a random subset of the training images; the full test set): an MLP on the
  flattened pixels, 784-256-10; top-1/3 accuracy.

Methods: log-softmax cross-entropy (baseline), MSE on one-hot targets (the other spherical
loss, baseline) and the Z-loss, whose (a, b) is chosen per seed on a validation split held out
of the training data (never on test) from a small grid; the fixed toolkit default
(a, b) = (1, 1) is reported too. Everything is trained on the same training split (train minus
validation) with Adam (lr 1e-3), one thread, through :func:`paperzoo.engine.fit`.

Units of work: one training run each, a (task, loss, seed) with, for the Z-loss, one (a, b)
cell of the grid; the parent picks (a, b) on validation once the units return their validation
and test accuracies, and runs the output-layer speed check itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, Timer, TrainConfig, fit, limit_threads, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.losses import OneHotMSELoss, ZLoss
from paperzoo.losses.spherical_linear import SphericalLinear
from paperzoo.metrics import top_k_accuracy
from paperzoo.models import MLP

PAPER = 5
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

CE, MSE, Z_DEFAULT, Z_SELECTED = (
    "CE (log-softmax)",
    "MSE on one-hot (spherical)",
    "Z-loss (a=1, b=1)",
    "Z-loss (a, b on val)",
)
METHODS = (CE, MSE, Z_DEFAULT, Z_SELECTED)
SYN_KS, FM_KS = (1, 5, 20), (1, 3)
METRICS = [*(f"syn top-{k}" for k in SYN_KS), *(f"FMNIST top-{k}" for k in FM_KS)]
TASK_KS = {"syn": SYN_KS, "fm": FM_KS}
Z = "Z-loss"  # the loss of a grid unit; its (a, b) travels with the unit


@dataclass(frozen=True)
class TaskConfig:
    """Sizes and grid of one task; ``a_grid x b_grid`` is the Z-loss validation grid."""

    n_train: int  # training examples, validation included
    n_val: int  # held out of n_train for choosing (a, b)
    n_test: int
    hidden: tuple[int, ...]
    epochs: int
    a_grid: tuple[float, ...]
    b_grid: tuple[float, ...]
    batch_size: int = 256
    lr: float = 1e-3

    @property
    def grid(self) -> list[tuple[float, float]]:
        """The (a, b) cells, ``a`` major."""
        return [(a, b) for a in self.a_grid for b in self.b_grid]


@dataclass(frozen=True)
class SyntheticConfig(TaskConfig):
    n_classes: int = 300
    n_super: int = 30
    dim: int = 32
    centre_std: float = 1.5
    noise_std: float = 3.2
    zipf: float = 1.1


FULL_SYN = SyntheticConfig(
    n_train=30_000, n_val=5_000, n_test=10_000, hidden=(128, 128), epochs=8,
    a_grid=(0.3, 1.0, 5.0), b_grid=(1.0, 2.0, 4.0, 8.0),
)  # fmt: skip
SMOKE_SYN = SyntheticConfig(
    n_train=2_000, n_val=500, n_test=1_000, hidden=(64,), epochs=1,
    a_grid=(1.0,), b_grid=(1.0, 4.0), n_classes=50, n_super=5,
)  # fmt: skip
# the target's z-score cannot exceed sqrt(D - 1) = 3 for the 10 Fashion-MNIST classes, so b stays below it
FULL_FM = TaskConfig(
    n_train=15_000, n_val=3_000, n_test=10_000, hidden=(256,), epochs=5,
    a_grid=(0.3, 1.0, 5.0), b_grid=(0.5, 1.0, 2.0),
)  # fmt: skip
SMOKE_FM = TaskConfig(n_train=1_500, n_val=500, n_test=1_000, hidden=(64,), epochs=1, a_grid=(1.0,), b_grid=(1.0, 2.0))
# speed check, a small-scale analogue of the paper's One Billion Word timing (its abstract: 40x
# faster than log-softmax): output sizes D, hidden size d, batch m, timed steps
FULL_SPEED = {"sizes": (1_000, 10_000, 100_000), "d": 128, "m": 128, "reps": 3}
SMOKE_SPEED = {"sizes": (1_000, 5_000), "d": 32, "m": 32, "reps": 1}


# --------------------------------------------------------------------------- data
def make_zipf_clusters(cfg: SyntheticConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The many-class synthetic task: ``n_train + n_test`` points, (X float32, y int64).

    Super-cluster centres ~ N(0, centre_std^2 I), class prototypes = their super-cluster's
    centre + N(0, I), class frequencies ~ 1/rank^zipf (ranks a random permutation), inputs =
    prototype of the class + N(0, noise_std^2 I).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, cfg.centre_std, size=(cfg.n_super, cfg.dim))
    super_of_class = np.arange(cfg.n_classes) % cfg.n_super
    prototypes = centres[super_of_class] + rng.normal(0.0, 1.0, size=(cfg.n_classes, cfg.dim))
    rank = rng.permutation(cfg.n_classes) + 1
    freq = 1.0 / rank**cfg.zipf
    n = cfg.n_train + cfg.n_test
    y = rng.choice(cfg.n_classes, size=n, p=freq / freq.sum())
    x = prototypes[y] + rng.normal(0.0, cfg.noise_std, size=(n, cfg.dim))
    return x.astype(np.float32), y.astype(np.int64)


@dataclass
class Splits:
    x_fit: torch.Tensor
    y_fit: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


def _split(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_val: int, seed: int, k: int
) -> Splits:
    perm = np.random.default_rng(seed + 7919).permutation(len(y))
    val, fit_ = perm[:n_val], perm[n_val:]
    t = torch.from_numpy
    return Splits(t(x[fit_]), t(y[fit_]), t(x[val]), t(y[val]), t(x_test), t(y_test), k)


def synthetic_splits(cfg: SyntheticConfig, seed: int) -> Splits:
    x, y = make_zipf_clusters(cfg, seed)
    n = cfg.n_train
    return _split(x[:n], y[:n], x[n:], y[n:], cfg.n_val, seed, cfg.n_classes)


def fashion_splits(cfg: TaskConfig, seed: int) -> Splits:
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    tr = rng.choice(len(train.y), size=cfg.n_train, replace=False)
    te = np.sort(rng.choice(len(test.y), size=min(cfg.n_test, len(test.y)), replace=False))
    xtr, ytr = _flat(train)[tr], np.asarray(train.y)[tr]
    xte, yte = _flat(test)[te], np.asarray(test.y)[te]
    return _split(xtr, ytr, xte, yte, cfg.n_val, seed, 10)


def _flat(images: Any) -> np.ndarray:
    x = images.flat()
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(x, dtype=np.float32)


@lru_cache(maxsize=1)
def _splits(task: str, cfg: TaskConfig, seed: int) -> Splits:
    """The splits of one task and seed, kept for the next unit of the same task and seed (the
    units of a seed run one after the other); read-only for the units."""
    if task == "syn":
        assert isinstance(cfg, SyntheticConfig)
        return synthetic_splits(cfg, seed)
    return fashion_splits(cfg, seed)


# --------------------------------------------------------------------------- losses and training
def _train_eval(
    loss_fn: nn.Module, data: Splits, cfg: TaskConfig, ks: Sequence[int], seed: int
) -> tuple[dict[int, float], dict[int, float]]:
    """Train a fresh MLP (initialisation seeded by ``seed``) and return (val, test) top-k accuracies."""
    seed_everything(seed)
    model = MLP(data.x_fit.shape[1], cfg.hidden, data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = make_loader(TensorDataset(data.x_fit, data.y_fit), cfg.batch_size, seed=seed)
    fit(model, loss_fn, loader, opt, TrainConfig(epochs=cfg.epochs, seed=seed, progress=False))
    with torch.no_grad():
        val = top_k_accuracy(model(data.x_val), data.y_val, ks)
        test = top_k_accuracy(model(data.x_test), data.y_test, ks)
    return val, test


#: One unit: (task "syn" | "fm", loss CE | MSE | Z, seed, task config, (a, b) for Z else None).
Unit = tuple[str, str, int, TaskConfig, tuple[float, float] | None]


def train_unit(unit: Unit) -> dict[str, dict[int, float]]:
    """One training run: ``{"val": top-k, "test": top-k}`` (seeded by the unit's seed alone)."""
    task, loss, seed, cfg, ab = unit
    if loss == CE:
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    elif loss == MSE:
        loss_fn = OneHotMSELoss()
    elif loss == Z and ab is not None:
        loss_fn = ZLoss(*ab)
    else:
        raise ValueError(f"unknown unit loss {loss!r} (a, b = {ab})")
    val, test = _train_eval(loss_fn, _splits(task, cfg, seed), cfg, TASK_KS[task], seed)
    return {"val": val, "test": test}


def _units(seeds: Sequence[int], configs: dict[str, TaskConfig]) -> list[Unit]:
    """CE, MSE and every Z-loss grid cell (plus (1, 1) if the grid lacks it), per seed and task."""
    units: list[Unit] = []
    for seed in seeds:
        for task, cfg in configs.items():
            units += [(task, CE, seed, cfg, None), (task, MSE, seed, cfg, None)]
            cells = cfg.grid if (1.0, 1.0) in cfg.grid else [*cfg.grid, (1.0, 1.0)]
            units += [(task, Z, seed, cfg, ab) for ab in cells]
    return units


def _select(task: str, cfg: TaskConfig, seed: int, done: dict[tuple[Any, ...], dict[str, Any]]) -> dict[str, Any]:
    """Test top-k per method of one task and seed, the (a, b) chosen on validation and the grid."""
    out: dict[str, Any] = {CE: done[task, CE, seed, None]["test"], MSE: done[task, MSE, seed, None]["test"]}
    grid: list[dict[str, Any]] = []
    for a, b in cfg.grid:
        cell = done[task, Z, seed, (a, b)]
        # selection score: mean validation top-k accuracy over the reported k
        score = float(np.mean(list(cell["val"].values())))
        grid.append({"a": a, "b": b, "val_score": score, "val": cell["val"], "test": cell["test"]})
    best = max(grid, key=lambda g: g["val_score"])  # first of equals, in grid order
    out[Z_SELECTED] = best["test"]
    out[Z_DEFAULT] = done[task, Z, seed, (1.0, 1.0)]["test"]
    out["selected"] = (best["a"], best["b"])
    out["grid"] = grid
    return out


def speed_check(sizes: Sequence[int], d: int, m: int, reps: int, seed: int = 0) -> list[dict[str, float]]:
    """Seconds per SGD step of the output layer: dense linear + log-softmax CE (O(m D d)) vs
    :class:`SphericalLinear` with the Z-loss (O(m d^2 + d^3)), plus the amortised cost of its
    periodic renormalisation. Wall-clock, so machine-dependent: reported, never a claim."""
    out = []
    for n_cls in sizes:
        torch.manual_seed(seed)
        layer = SphericalLinear(d, n_cls, renorm_every=10**9)
        w = layer.weight.clone().requires_grad_(True)
        h, c = torch.randn(m, d), torch.randint(0, n_cls, (m,))

        def dense_ce(h: torch.Tensor = h, w: torch.Tensor = w, c: torch.Tensor = c) -> None:
            hh = h.clone().requires_grad_(True)
            F.cross_entropy(hh @ w.T, c).backward()
            with torch.no_grad():
                w.sub_(0.1 * w.grad)
                w.grad = None

        def spherical(h: torch.Tensor = h, c: torch.Tensor = c, layer: SphericalLinear = layer) -> None:
            hh = h.clone().requires_grad_(True)
            layer(hh, c).backward()
            layer.sgd_step(0.1)

        times = {}
        for name, step in (("dense_ce_s", dense_ce), ("spherical_z_s", spherical)):
            step()  # warm-up
            t = Timer()
            for _ in range(reps):
                step()
            times[name] = t.elapsed / reps
        t = Timer()
        layer.renormalize()
        times["renorm_s"] = t.elapsed
        out.append({"D": n_cls, **times, "spherical_z_amortised_s": times["spherical_z_s"] + times["renorm_s"] / 100})
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
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result
    files under ``out_dir/05-z-loss/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    syn_cfg, fm_cfg = (SMOKE_SYN, SMOKE_FM) if smoke else (FULL_SYN, FULL_FM)
    speed_cfg = SMOKE_SPEED if smoke else FULL_SPEED
    configs: dict[str, TaskConfig] = {"syn": syn_cfg, "fm": fm_cfg}
    units = _units(rep.seeds, configs)
    try:
        outputs = rep.map(train_unit, units)
    finally:
        _splits.cache_clear()
    done = {(task, loss, seed, ab): o for (task, loss, seed, _, ab), o in zip(units, outputs)}
    per_seed = [
        {"seed": seed, **{task: _select(task, cfg, seed, done) for task, cfg in configs.items()}} for seed in rep.seeds
    ]
    with limit_threads(1):  # the speed check, once, in this process, on one thread
        speed = speed_check(**speed_cfg)  # type: ignore[arg-type]

    table = Table(METRICS, METHODS, baselines=[CE, MSE])
    for r in per_seed:
        for method in METHODS:
            values = {f"syn top-{k}": r["syn"][method][k] for k in SYN_KS}
            values.update({f"FMNIST top-{k}": r["fm"][method][k] for k in FM_KS})
            table.add(method, r["seed"], values)

    zsel = "the Z-loss with (a, b) chosen on validation"
    claims = [
        Claim.greater(
            table,
            Z_SELECTED,
            MSE,
            f"syn top-{k}",
            margin=0.20,
            statement=f"{syn_cfg.n_classes}-class synthetic task, top-{k} accuracy: {zsel} beats MSE on one-hot "
            "targets (the other spherical loss) by more than 0.20",
        )
        for k in (1, 5)
    ]
    claims += [
        Claim.greater(
            table,
            Z_SELECTED,
            CE,
            metric,
            statement=f"{what}, top-{k} accuracy (the largest k reported): {zsel} beats log-softmax cross-entropy",
        )
        for metric, what, k in (
            (f"syn top-{SYN_KS[-1]}", f"{syn_cfg.n_classes}-class synthetic task", SYN_KS[-1]),
            (f"FMNIST top-{FM_KS[-1]}", "Fashion-MNIST", FM_KS[-1]),
        )
    ]
    extra = _extra(per_seed, syn_cfg, fm_cfg)
    extra["speed"] = {"d": speed_cfg["d"], "batch": speed_cfg["m"], "renorm_every": 100, "threads": 1, "steps": speed}
    selected = "; ".join(
        f"{name} seed {s}: ({a:g}, {b:g})"
        for task, name in (("syn", "synthetic"), ("fm", "Fashion-MNIST"))
        for s, (a, b) in extra[f"{task}_selected_ab"].items()
    )
    result = rep.result(
        table,
        claims,
        setting=(
            f"synthetic: D={syn_cfg.n_classes} Zipf classes in {syn_cfg.n_super} super-clusters, "
            f"{syn_cfg.n_train - syn_cfg.n_val} train / {syn_cfg.n_val} val / {syn_cfg.n_test} test, "
            f"MLP {syn_cfg.dim}-{'-'.join(map(str, syn_cfg.hidden))}-{syn_cfg.n_classes}, {syn_cfg.epochs} epochs; "
            f"Fashion-MNIST: {fm_cfg.n_train - fm_cfg.n_val} train / {fm_cfg.n_val} val (from the train set) / "
            f"{fm_cfg.n_test} test, MLP 784-{'-'.join(map(str, fm_cfg.hidden))}-10, {fm_cfg.epochs} epochs; "
            f"Adam lr {syn_cfg.lr}, batch {syn_cfg.batch_size}, one thread; Z-loss (a, b) chosen per seed by mean "
            f"validation top-k on a {len(syn_cfg.a_grid)}x{len(syn_cfg.b_grid)} (synthetic) / "
            f"{len(fm_cfg.a_grid)}x{len(fm_cfg.b_grid)} (FMNIST) grid"
        ),
        scale_note=(
            f"no language modelling: a {syn_cfg.n_classes}-class synthetic proxy and 10-class Fashion-MNIST with "
            "small MLPs stand in for 10k-800k-word vocabularies; speed is measured for the output layer alone "
            f"(CPU, one thread, D up to {max(speed_cfg['sizes'])}, in extra['speed']), not end-to-end, not on GPU"
        ),
        notes=(
            f"(a, b) chosen on validation: {selected}. The Z-loss with the default (1, 1) is reported, not claimed "
            "on. The output-layer speed check is wall-clock and machine-dependent: reported, never a claim."
        ),
        highlight=(Z_SELECTED, CE, f"syn top-{SYN_KS[-1]}"),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def _extra(per_seed: list[dict[str, Any]], syn_cfg: SyntheticConfig, fm_cfg: TaskConfig) -> dict[str, Any]:
    extra: dict[str, Any] = {"syn_classes": syn_cfg.n_classes}
    for task, cfg, ks in (("syn", syn_cfg, SYN_KS), ("fm", fm_cfg, FM_KS)):
        cells = []
        for i, (a, b) in enumerate(cfg.grid):
            g = [r[task]["grid"][i] for r in per_seed]
            cells.append(
                {
                    "a": a,
                    "b": b,
                    "val_score_mean": float(np.mean([x["val_score"] for x in g])),
                    "test_mean": {f"top-{k}": float(np.mean([x["test"][k] for x in g])) for k in ks},
                }
            )
        extra[f"{task}_selected_ab"] = {str(r["seed"]): list(r[task]["selected"]) for r in per_seed}
        extra[f"{task}_grid"] = cells
        extra[f"{task}_grid_shape"] = [len(cfg.a_grid), len(cfg.b_grid)]
    return extra


def make_figure(result: Result) -> Any:
    """Test accuracies of both tasks, the synthetic Z-loss grid on validation, and the
    output-layer step time against the number of classes."""
    table, extra = result.table, result.extra
    fig, axes = subplots(4, width=5.25, width_ratios=[1.3, 1.0, 1.0, 1.0])
    for ax, names, title in (
        (axes[0], [f"syn top-{k}" for k in SYN_KS], f"synthetic, D={extra['syn_classes']}"),
        (axes[1], [f"FMNIST top-{k}" for k in FM_KS], "Fashion-MNIST"),
    ):
        lowest = min(table.mean(m, k) for m in table.methods for k in names)
        grouped_bars(
            ax,
            table,
            names,
            labels=[m.split(" ", 1)[1] for m in names],
            ylabel="test accuracy (mean ± std over seeds)",
            ylim=(max(0.0, float(np.floor((lowest - 0.1) * 10) / 10)), 1.0),
            title=title,
        )
    axes[0].legend(fontsize=8, loc="lower right")
    cells = extra["syn_grid"]
    n_a, n_b = extra["syn_grid_shape"]
    a_grid, b_grid = [c["a"] for c in cells[::n_b]], [c["b"] for c in cells[:n_b]]
    grid = np.array([c["val_score_mean"] for c in cells]).reshape(n_a, n_b)
    im = axes[2].imshow(grid, cmap="viridis", aspect="auto")
    axes[2].set_xticks(range(n_b), [str(b) for b in b_grid])
    axes[2].set_yticks(range(n_a), [str(a) for a in a_grid])
    axes[2].set_xlabel("b")
    axes[2].set_ylabel("a")
    for (i, j), v in np.ndenumerate(grid):
        shade = "black" if v > grid.min() + 0.5 * (grid.max() - grid.min()) else "white"
        axes[2].text(j, i, f"{v:.3f}", ha="center", va="center", color=shade, fontsize=8)
    axes[2].set_title("Z-loss grid, synthetic: mean val top-k")
    fig.colorbar(im, ax=axes[2])
    sp = extra["speed"]
    sizes = [r["D"] for r in sp["steps"]]
    axes[3].loglog(sizes, [r["dense_ce_s"] * 1e3 for r in sp["steps"]], "o-", label="dense linear + CE")
    axes[3].loglog(
        sizes, [r["spherical_z_amortised_s"] * 1e3 for r in sp["steps"]], "s-", label="SphericalLinear + Z-loss"
    )
    axes[3].set_xlabel("number of classes D")
    axes[3].set_ylabel("ms per SGD step (1 thread)")
    axes[3].set_title(f"output-layer step time, d={sp['d']}, batch {sp['batch']}")
    axes[3].legend(fontsize=8)
    return finish(fig, result, "Z-loss vs CE and MSE")
