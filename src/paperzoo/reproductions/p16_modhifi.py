"""Reproduction of paper 16, ModHiFi (Kashyap et al., NeurIPS 2025), scaled down to the 8x8
scikit-learn digits (this project's reproduction, docs/papers/16-modhifi.md).

Data: ``load_digits`` (pixels in [0, 1]), one stratified 70/30 split (``random_state=0``).
"Synthetic" calibration data stands in for the paper's generated samples: per class, a
3-component diagonal Gaussian mixture fitted on that class's training images, 100 samples per
class, clipped to [0, 1]. The methods never see labels.

* ModHiFi-P (structured pruning, no fine-tuning): a small CNN with BatchNorm (conv 1->32 3x3,
  BN, ReLU, conv 32->64 3x3, BN, ReLU, 2x2 average pool, linear 256->10; Adam lr 1e-3, weight
  decay 1e-4, batches of 64) trained on the training split; conv2's 32 input channels (with
  conv1's filters and BN entries) pruned to 16 / 8 / 4 through torch-pruning's dependency graph
  on the synthetic calibration set. All methods remove the same number of channels, so
  parameters, FLOPs and CPU latency are the same for all of them at each size (measured once per
  seed). Methods: ModHiFi-P (singleton fidelity; and RowSum), ModHiFi-P without compensation,
  ModHiFi-P without BN recalibration, L2-magnitude structured pruning with and without BN
  recalibration, random channels with BN recalibration.
* ModHiFi-U (class unlearning, no fine-tuning): an MLP 64-256-256-10 (Adam lr 1e-3, weight decay
  1e-4) through :class:`paperzoo.unlearning.UnlearningProtocol`; the forget set is every training
  image of one class. ModHiFi-U zeroes the top 10 % components (RowSum, reference centring) of the
  2nd and 3rd linear layers from GMM samples fitted on the (unlabelled) forget and training
  inputs. Compared with the original model, gradient ascent (the protocol's baseline and a
  stronger setting) and zeroing the same number of random (output, input) weight pairs.
  Metrics on the test split: accuracy on the forgotten class and on the remaining classes.

Units: one pruning unit per seed, one unlearning unit per (seed, forget class).
"""

from __future__ import annotations

import copy
import math
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
from paperzoo.engine.plots import finish, subplots
from paperzoo.engine.reproduce import start

PAPER = 16
DATA: tuple[str, ...] = ()
BUDGETS: tuple[str, ...] = ()

# pruning methods
P_FID, P_ROW, P_NOCOMP, P_NOBN = (
    "ModHiFi-P (fidelity)",
    "ModHiFi-P (RowSum)",
    "ModHiFi-P w/o compensation",
    "ModHiFi-P w/o BN recal.",
)
L2_BN, L2_RAW, RAND_BN = "L2 + BN recal.", "L2 w/o BN recal.", "random + BN recal."
PRUNE_METHODS = (P_FID, P_ROW, P_NOCOMP, P_NOBN, L2_BN, L2_RAW, RAND_BN)
# unlearning methods
U_ORIG, U_MODHIFI, U_GA, U_GA_STRONG, U_RANDOM = (
    "original (no unlearning)",
    "ModHiFi-U",
    "gradient ascent (protocol default)",
    "gradient ascent (early-stopped)",
    "random zeroing (same count)",
)
UNLEARN_METHODS = (U_MODHIFI, U_ORIG, U_GA, U_GA_STRONG, U_RANDOM)


@dataclass(frozen=True)
class Config:
    keeps: tuple[int, ...]  # conv2 input channels kept, of 32
    cnn_epochs: int
    mlp_epochs: int
    forget_classes: tuple[int, ...]
    per_class: int = 100  # synthetic calibration samples per class
    fraction: float = 0.1  # ModHiFi-U components edited per output
    latency_reps: int = 200
    latency_warmup: int = 20
    ga_epochs: tuple[int, ...] = tuple(range(2, 41, 2))  # gradient-ascent early-stopping grid


FULL = Config(keeps=(16, 8, 4), cnn_epochs=30, mlp_epochs=40, forget_classes=(1, 4, 8))
SMOKE = Config(
    keeps=(16, 8, 4), cnn_epochs=2, mlp_epochs=3, forget_classes=(3,), per_class=20, latency_reps=5, ga_epochs=(2, 4)
)


def acc_metric(keep: int) -> str:
    return f"acc keep {keep}/32"


FORGET, REMAIN = "forget-class acc", "remain acc"


def metrics_of(cfg: Config) -> list[str]:
    return [*(acc_metric(k) for k in cfg.keeps), FORGET, REMAIN]


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=1)
def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): stratified 70/30 split of the digits (random_state=0)."""
    from sklearn.model_selection import train_test_split

    from paperzoo.data import load_digits

    ds = load_digits()
    x, y = np.asarray(ds.x, dtype=np.float32), np.asarray(ds.y, dtype=np.int64)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.3, stratify=y, random_state=0)
    t = torch.from_numpy
    return t(x[tr]), t(y[tr]), t(x[te]), t(y[te])


def synthetic_calibration(x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Class-conditional GMM samples (``per_class`` per class, shuffled, no labels returned)."""
    from paperzoo.pruning.modhifi import synthetic_like

    parts = [synthetic_like(x[y == c], per_class, seed=seed * 100 + int(c)) for c in torch.unique(y)]
    out = torch.cat(parts)
    return out[torch.randperm(len(out), generator=torch.Generator().manual_seed(seed))]


# --------------------------------------------------------------------------- models
class SmallCNN(nn.Module):
    """conv 1->32 3x3, BN, ReLU, conv 32->64 3x3, BN, ReLU, 2x2 average pool, linear 256->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64)
        self.pool, self.fc = nn.AvgPool2d(2), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(x.flatten(1))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = make_loader(TensorDataset(x, y), 64, seed=seed)
    fit(model, nn.CrossEntropyLoss(), loader, opt, TrainConfig(epochs=epochs, seed=seed, progress=False))
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).double().mean())


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, x: torch.Tensor, reps: int, warmup: int) -> float:
    """Median milliseconds of one forward of the batch ``x`` (one thread, eval mode)."""
    model.eval()
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


# --------------------------------------------------------------------------- pruning unit
def _pruner(method: str, seed: int) -> Any:
    from paperzoo.pruning.modhifi import L2StructuredPruner, ModHiFiPruner

    ignored = ("conv2",)  # only conv2's inputs (conv1's filters) are pruned, as in the paper's per-layer study
    return {
        P_FID: lambda: ModHiFiPruner(score="fidelity", ignored_layers=ignored),
        P_ROW: lambda: ModHiFiPruner(score="rowsum", ignored_layers=ignored),
        P_NOCOMP: lambda: ModHiFiPruner(compensate=False, ignored_layers=ignored),
        P_NOBN: lambda: ModHiFiPruner(bn_recalibrate=False, ignored_layers=ignored),
        L2_BN: lambda: L2StructuredPruner(ignored_layers=ignored),
        L2_RAW: lambda: L2StructuredPruner(bn_recalibrate=False, ignored_layers=ignored),
        RAND_BN: lambda: L2StructuredPruner(criterion="random", seed=seed, ignored_layers=ignored),
    }[method]()


def sparsity_for_keep(model: SmallCNN, keep: int) -> float:
    """The fraction of Conv2d/Linear weights removed when conv2 keeps ``keep`` of its inputs (just
    below it, so the uniform budget lands exactly on ``keep`` channels)."""
    from paperzoo.pruning.modhifi import prunable_weight_count

    removed = (model.conv1.out_channels - keep) * (model.conv1.weight[0].numel() + model.conv2.weight[:, 0].numel())
    return removed / prunable_weight_count(model) - 1e-9


def prune_unit(unit: tuple[int, Config]) -> dict[str, Any]:
    import torch_pruning as tp

    seed, cfg = unit
    x_tr, y_tr, x_te, y_te = digits_split()
    seed_everything(seed)
    base = SmallCNN()
    train(base, x_tr, y_tr, cfg.cnn_epochs, seed)
    calib = synthetic_calibration(x_tr, y_tr, cfg.per_class, seed)
    out: dict[str, Any] = {"base acc": accuracy(base, x_te, y_te), "acc": {}, "cost": {}}
    example = x_te[:64]
    base_ops, base_params = tp.utils.count_ops_and_params(base, example[:1])
    base_ms = cpu_latency_ms(base, example, cfg.latency_reps, cfg.latency_warmup)
    for keep in cfg.keeps:
        sparsity = sparsity_for_keep(base, keep)
        for method in PRUNE_METHODS:
            model = copy.deepcopy(base)
            seed_everything(seed)
            model = _pruner(method, seed).prune(model, sparsity, calib)
            if model.conv2.in_channels != keep:
                raise RuntimeError(f"{method}: kept {model.conv2.in_channels} channels, expected {keep}")
            out["acc"][method, keep] = accuracy(model, x_te, y_te)
        ops, params = tp.utils.count_ops_and_params(model, example[:1])
        ms = cpu_latency_ms(model, example, cfg.latency_reps, cfg.latency_warmup)
        out["cost"][keep] = {
            "sparsity": 1 - params / base_params,
            "flops x": base_ops / ops,
            "params x": base_params / params,
            "dense ms": base_ms,
            "pruned ms": ms,
            "cpu speed-up": base_ms / ms,
        }
    return out


# --------------------------------------------------------------------------- unlearning unit
def _mlp() -> nn.Module:
    from paperzoo.models import MLP

    return MLP(64, (256, 256), 10)


class _RandomZero:
    """Control: zero ``ceil(fraction * c_in)`` random inputs per output of the same layers."""

    def __init__(self, layers: Sequence[str], fraction: float) -> None:
        self.layers, self.fraction = layers, fraction

    @torch.no_grad()
    def __call__(self, model: nn.Module, seed: int) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        for name in self.layers:
            w = model.get_submodule(name).weight
            k = math.ceil(self.fraction * w.shape[1])
            idx = torch.rand(w.shape[:2], generator=gen).argsort(1)[:, :k]
            w.view(w.shape[0], w.shape[1], -1)[torch.arange(w.shape[0])[:, None], idx] = 0.0
        return model


UNLEARN_LAYERS = ("net.2", "net.4")


def unlearn_unit(unit: tuple[int, int, Config]) -> dict[str, dict[str, float]]:
    from paperzoo.unlearning import GradientAscent, UnlearningData, UnlearningProtocol
    from paperzoo.unlearning.modhifi import ModHiFiUnlearner

    seed, forget_class, cfg = unit
    x_tr, y_tr, x_te, y_te = digits_split()
    x = torch.cat([x_tr, x_te]).reshape(-1, 64)
    y = torch.cat([y_tr, y_te])
    n_tr = len(y_tr)
    forget = torch.nonzero(y_tr == forget_class).flatten()
    retain = torch.nonzero(y_tr != forget_class).flatten()
    data = UnlearningData(x, y, forget, retain, torch.arange(n_tr, len(y)), num_classes=10)

    def train_fn(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, s: int) -> None:
        train(model, xs, ys, cfg.mlp_epochs, s)

    protocol = UnlearningProtocol(data, _mlp, train_fn)
    is_forget = data.y_test == forget_class
    methods = {
        U_MODHIFI: ModHiFiUnlearner(fraction=cfg.fraction, layers=UNLEARN_LAYERS, calibration="gmm"),
        U_GA: GradientAscent(),
    }
    out: dict[str, dict[str, float]] = {}
    for name in UNLEARN_METHODS:
        model = protocol.original(seed)
        context = protocol.context(seed)
        seed_everything(context.seed)
        t = time.perf_counter()
        extra: dict[str, float] = {}
        if name in methods:
            model = methods[name].unlearn(model, data, context)
        elif name == U_RANDOM:
            model = _RandomZero(UNLEARN_LAYERS, cfg.fraction)(model, context.seed)
        elif name == U_GA_STRONG:
            model, epochs = _early_stopped_ascent(protocol, data, seed, cfg.ga_epochs)
            extra["GA epochs"] = float(epochs)
        elapsed = time.perf_counter() - t
        values = protocol.evaluate(model, seed)
        pred = model(data.x_test).argmax(1)
        correct = (pred == data.y_test).double()
        out[name] = {
            FORGET: float(correct[is_forget].mean()),
            REMAIN: float(correct[~is_forget].mean()),
            "time s": elapsed,
            **values,
            **extra,
        }
    return out


def _early_stopped_ascent(protocol: Any, data: Any, seed: int, grid: Sequence[int]) -> tuple[nn.Module, int]:
    """Gradient ascent on the forget set (SGD lr 0.01) with the fewest epochs of ``grid`` that bring
    the forget set's own (training) accuracy below 0.1: the usual stopping rule, which reads the
    forget labels and never the test set. Runs that diverge are skipped."""
    from paperzoo.unlearning import GradientAscent

    best: tuple[nn.Module, int] | None = None
    for epochs in grid:
        context = protocol.context(seed)
        seed_everything(context.seed)
        try:
            model = GradientAscent(epochs=epochs, lr=0.01).unlearn(protocol.original(seed), data, context)
        except FloatingPointError:
            break
        best = (model, epochs)
        if accuracy(model, data.x_forget, data.y_forget) < 0.1:
            break
    if best is None:
        return protocol.original(seed), 0
    return best


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
    under ``out_dir/16-modhifi/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units: list[tuple[Any, ...]] = [("u", s, c, cfg) for s in rep.seeds for c in cfg.forget_classes]
    units += [("p", s, cfg) for s in rep.seeds]
    outputs = rep.map(_unit, units)
    prune_out = {u[1]: o for u, o in zip(units, outputs) if u[0] == "p"}
    unlearn_out = {(u[1], u[2]): o for u, o in zip(units, outputs) if u[0] == "u"}

    metrics = metrics_of(cfg)
    nan = math.nan  # one object, so tables of two runs compare equal
    table = Table(metrics, [*PRUNE_METHODS, *UNLEARN_METHODS], baselines=[L2_BN, U_GA_STRONG])
    for s in rep.seeds:
        for m in PRUNE_METHODS:
            vals = {acc_metric(k): prune_out[s]["acc"][m, k] for k in cfg.keeps}
            table.add(m, s, {**vals, FORGET: nan, REMAIN: nan})
        for m in UNLEARN_METHODS:
            per_class = [unlearn_out[s, c][m] for c in cfg.forget_classes]
            vals = {k: float(np.mean([v[k] for v in per_class])) for k in (FORGET, REMAIN)}
            table.add(m, s, {**{acc_metric(k): nan for k in cfg.keeps}, **vals})

    small, smallest = cfg.keeps[-2], cfg.keeps[-1]
    claims = [
        Claim.greater(
            table,
            P_FID,
            L2_BN,
            acc_metric(k),
            statement=f"pruning conv2 to {k}/32 input channels (same FLOPs and parameters), no fine-tuning: "
            "ModHiFi-P (fidelity, compensation, BN recalibration) is more accurate than L2-magnitude structured "
            "pruning with BN recalibration",
        )
        for k in (small, smallest)
    ]
    claims.append(
        Claim.greater(
            table,
            P_FID,
            P_NOCOMP,
            acc_metric(smallest),
            statement=f"at {smallest}/32 channels the least-squares compensation adds accuracy "
            "(ModHiFi-P > ModHiFi-P without compensation)",
        )
    )
    claims.append(
        Claim.greater(
            table,
            P_FID,
            P_NOBN,
            acc_metric(smallest),
            statement=f"at {smallest}/32 channels BN recalibration adds accuracy (ModHiFi-P > without recalibration)",
        )
    )
    claims.append(
        Claim.about(
            f"ModHiFi-U, no fine-tuning: test accuracy on the forgotten class is below 0.3 (mean over forget classes "
            f"{list(cfg.forget_classes)})",
            table.values(U_MODHIFI, FORGET),
            "<",
            0.3,
        )
    )
    claims.append(
        Claim.greater(
            table,
            U_MODHIFI,
            U_ORIG,
            REMAIN,
            margin=-0.1,
            statement="ModHiFi-U keeps the remaining classes: their test accuracy drops by less than 0.1 from the "
            "original model",
        )
    )
    claims.append(
        Claim.less(
            table,
            U_MODHIFI,
            U_GA_STRONG,
            FORGET,
            statement="ModHiFi-U (no labels, no gradients) forgets the class more than gradient ascent on the forget "
            "set early-stopped when the forget set's accuracy falls below 0.1: lower forgotten-class test accuracy",
        )
    )
    claims.append(
        Claim.greater(
            table,
            U_MODHIFI,
            U_GA_STRONG,
            REMAIN,
            margin=-0.05,
            statement="ModHiFi-U keeps the remaining classes about as well as early-stopped gradient ascent "
            "(remaining accuracy at most 0.05 lower)",
        )
    )
    claims.append(
        Claim.less(
            table,
            U_MODHIFI,
            U_RANDOM,
            FORGET,
            margin=-0.5,
            statement="the HiFi components matter: zeroing as many random weight pairs leaves the forgotten class's "
            "accuracy at least 0.5 higher than ModHiFi-U",
        )
    )
    extra = _extra(cfg, rep.seeds, prune_out, unlearn_out)
    cost = extra["cost"]
    cost_note = "; ".join(
        f"{k}/32: {100 * c['sparsity']:.0f}% params removed, {c['flops x']:.2f}x FLOPs, {c['params x']:.2f}x params, "
        f"CPU {c['dense ms']:.3f} -> {c['pruned ms']:.3f} ms ({c['cpu speed-up']:.2f}x)"
        for k, c in cost.items()
    )
    result = rep.result(
        table,
        claims,
        setting=(
            f"8x8 digits, stratified 70/30 split; calibration: {cfg.per_class} GMM samples per class (no labels to the "
            f"methods). Pruning: CNN conv1 32 -> conv2 64 with BN, {cfg.cnn_epochs} epochs Adam; conv2's inputs pruned "
            f"to {'/'.join(map(str, cfg.keeps))} of 32, no fine-tuning. Unlearning: MLP 64-256-256-10, "
            f"{cfg.mlp_epochs} epochs Adam, forget classes {list(cfg.forget_classes)} (one protocol each, averaged), "
            f"ModHiFi-U zeroes {int(100 * cfg.fraction)}% of components per output of the 2nd and 3rd linear layers"
        ),
        scale_note=(
            "ResNet-50/VGG-19 on ImageNet/CIFAR with diffusion-generated calibration data, Llama-2 and Swin-T are out "
            "of reach: a digits CNN/MLP with Gaussian-mixture samples standing in for synthetic data; no post-training"
        ),
        notes=(
            f"Cost at each kept size (same for every pruning method; mean over seeds, CPU batch 64, one thread): "
            f"{cost_note}. Unlearning metrics are test accuracies on the forgotten class and on the other nine."
        ),
        highlight=(P_FID, L2_BN, acc_metric(smallest)),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def _unit(unit: tuple[Any, ...]) -> Any:
    if unit[0] == "p":
        return prune_unit((unit[1], unit[2]))
    return unlearn_unit((unit[1], unit[2], unit[3]))


def _extra(
    cfg: Config,
    seeds: Sequence[int],
    prune_out: dict[int, dict[str, Any]],
    unlearn_out: dict[tuple[int, int], dict[str, dict[str, float]]],
) -> dict[str, Any]:
    cost = {
        str(k): {m: float(np.mean([prune_out[s]["cost"][k][m] for s in seeds])) for m in prune_out[seeds[0]]["cost"][k]}
        for k in cfg.keeps
    }
    protocol_metrics = sorted(next(iter(unlearn_out.values()))[U_MODHIFI])
    unlearning = {
        m: {k: float(np.mean([unlearn_out[key][m][k] for key in unlearn_out])) for k in protocol_metrics}
        for m in UNLEARN_METHODS
    }
    per_class = {
        str(c): {m: {k: float(np.mean([unlearn_out[s, c][m][k] for s in seeds])) for k in (FORGET, REMAIN)}
                 for m in UNLEARN_METHODS}
        for c in cfg.forget_classes
    }  # fmt: skip
    return {
        "keeps": list(cfg.keeps),
        "base_acc_cnn": float(np.mean([prune_out[s]["base acc"] for s in seeds])),
        "cost": cost,
        "unlearning_protocol_means": unlearning,
        "unlearning_per_class": per_class,
        "ga_epochs": {f"seed {s} class {c}": unlearn_out[s, c][U_GA_STRONG]["GA epochs"] for s, c in unlearn_out},
    }


def make_figure(result: Result) -> Any:
    """Accuracy against kept channels for the pruning methods; forgotten vs remaining accuracy
    for the unlearning methods."""
    table, extra = result.table, result.extra
    keeps = extra["keeps"]
    fig, axes = subplots(2, width=5.5)
    ax = axes[0]
    for m in PRUNE_METHODS:
        mean = [table.summary(m, acc_metric(k))["mean"] for k in keeps]
        std = [table.summary(m, acc_metric(k))["std"] for k in keeps]
        style = "-" if m.startswith("ModHiFi") else "--"
        ax.errorbar(keeps, mean, yerr=std, fmt="o" + style, capsize=2, label=m)
    ax.axhline(extra["base_acc_cnn"], color="grey", lw=0.8, ls=":", label="unpruned")
    ax.set_xscale("log", base=2)
    ax.set_xticks(keeps, [str(k) for k in keeps])
    ax.invert_xaxis()
    ax.set_xlabel("conv2 input channels kept (of 32)")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title("structured pruning, no fine-tuning")
    ax.legend(fontsize=7)
    ax = axes[1]
    for m in UNLEARN_METHODS:
        f, r = table.summary(m, FORGET), table.summary(m, REMAIN)
        ax.errorbar(f["mean"], r["mean"], xerr=f["std"], yerr=r["std"], fmt="o", capsize=2, label=m)
    ax.set_xlabel("forgotten-class test accuracy (lower = forgets)")
    ax.set_ylabel("remaining-classes test accuracy")
    ax.set_xlim(-0.05, 1.05)
    ax.set_title("class unlearning, no fine-tuning")
    ax.legend(fontsize=7)
    return finish(fig, result, "ModHiFi-P and ModHiFi-U")
