"""Reproduction of paper 25, "Dual-Head Knowledge Distillation: Enhancing Logits Utilization with an
Auxiliary Head" (Yang et al., KDD 2025), scaled down (this project's reproduction,
docs/papers/25-dual-head-kd.md).

The paper distils CIFAR-100 / ImageNet teachers into smaller students; the mechanism it
argues for (a logit-level loss hurts when it shares the linear classifier with cross-entropy,
helps when it has its own auxiliary head on the shared backbone) is tested here with MLPs on
two offline tasks, each with a teacher trained in the run itself:

* digits: scikit-learn's 8x8 digits, a 60/40 train/test split drawn per seed;
* Fashion-MNIST: a random training subset and a random test subset drawn per seed.

Per task and seed: a teacher MLP (``in -> 256 -> 256 -> 10``) is trained with cross-entropy;
its logits on the training inputs are computed once (the teacher is frozen, deterministic and
the inputs are not augmented, so this equals calling it at every step). Five students with the
same small backbone (``in -> 32``, ReLU) and the same initialisation of head 1 are trained
with Adam through :func:`paperzoo.engine.fit`:

(a) cross-entropy alone; (b) classic KD (``0.1 CE + 0.9 KD``, T = 4, RepDistiller's ``kd``
command); (c) ``CE + BinaryKL-Norm`` on the same linear head (the paper's single-head
ablation); (d) DHKD: CE on head 1 + BinaryKL-Norm (T = 2, alpha = 1) on a linear auxiliary
head; (e) DHKD with the gradient alignment. Test accuracy of head 1 is reported. During
training of (c) and (d) the cosine between the CE and the BinaryKL-Norm gradients is logged
every few steps on the classifier's weight matrix (c) and on the backbone (c, d): the paper's
conflict diagnostic.

Units: one teacher per (task, seed), then one student per (task, method, seed).
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
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models import MLP
from paperzoo.models.dual_head import DualHeadClassifier
from paperzoo.training.distillation import DHKDObjective, HintonKDObjective

PAPER = 25
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

CE = "CE"
KD = "KD (Hinton, T=4)"
SINGLE = "CE + BinaryKL-Norm, one head"
DHKD = "DHKD (aux head)"
DHKD_GA = "DHKD + GA"
METHODS = (CE, KD, SINGLE, DHKD, DHKD_GA)
TASKS = {"digits": "digits", "fmnist": "FMNIST"}
METRICS = [f"{label} top-1" for label in TASKS.values()]


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke); the same for both tasks except the data sizes."""

    fm_train: int
    fm_test: int
    teacher_epochs: int
    student_epochs: int
    teacher_hidden: tuple[int, ...] = (256, 256)
    student_feat: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    kd_temperature: float = 4.0
    bkl_temperature: float = 2.0
    alpha: float = 1.0
    monitor_every: int = 10


FULL = Config(fm_train=3000, fm_test=5000, teacher_epochs=30, student_epochs=60)
SMOKE = Config(fm_train=300, fm_test=300, teacher_epochs=2, student_epochs=2, monitor_every=5)


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # (N, D) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(seed: int, train_fraction: float = 0.6) -> Split:
    """scikit-learn's digits (1,797 images, 64 pixels in [0, 1]): a random 60/40 split per seed."""
    from paperzoo.data import load_digits

    data = load_digits()
    x, y = data.flat(), data.y
    perm = np.random.default_rng([seed, 25]).permutation(len(y))
    n = int(round(train_fraction * len(y)))
    tr, te = np.sort(perm[:n]), np.sort(perm[n:])
    return Split(x[tr].copy(), y[tr].copy(), x[te].copy(), y[te].copy())


def fmnist_split(seed: int, n_train: int, n_test: int) -> Split:
    """``n_train`` random Fashion-MNIST training images and ``n_test`` random test images."""
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    rng = np.random.default_rng([seed, 25])
    tr = np.sort(rng.choice(len(train), size=n_train, replace=False))
    te = np.sort(rng.choice(len(test), size=min(n_test, len(test)), replace=False))
    return Split(train.flat()[tr].copy(), train.y[tr].copy(), test.flat()[te].copy(), test.y[te].copy())


@lru_cache(maxsize=2)
def _split(task: str, seed: int, cfg: Config) -> Split:
    """The split of one task and seed, kept for the next units of this process (read-only)."""
    if task == "digits":
        return digits_split(seed)
    return fmnist_split(seed, cfg.fm_train, cfg.fm_test)


# --------------------------------------------------------------------------- units
@torch.no_grad()
def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def teacher_unit(unit: tuple[str, int, Config]) -> dict[str, Any]:
    """Train the teacher of one task and seed with cross-entropy; its test accuracy and its
    logits on the training inputs (float32 (N, 10))."""
    task, seed, cfg = unit
    data = _split(task, seed, cfg)
    seed_everything(seed + 1000)
    teacher = MLP(data.x_train.shape[1], cfg.teacher_hidden, 10)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    loader = make_loader(TensorDataset(x, y), cfg.batch_size, seed=seed + 1000)
    opt = torch.optim.Adam(teacher.parameters(), lr=cfg.lr)
    fit(teacher, nn.CrossEntropyLoss(), loader, opt, TrainConfig(epochs=cfg.teacher_epochs, seed=seed, progress=False))
    teacher.eval()
    with torch.no_grad():
        logits = teacher(x).numpy()
    return {"acc": _accuracy(teacher, data.x_test, data.y_test), "logits": logits}


def build_student(in_dim: int, cfg: Config) -> DualHeadClassifier:
    """The student: backbone ``in -> feat`` (ReLU), head 1 and a linear auxiliary head."""
    backbone = nn.Sequential(nn.Linear(in_dim, cfg.student_feat), nn.ReLU())
    return DualHeadClassifier(backbone, cfg.student_feat, 10, aux_head="linear")


#: One student unit: (task, method, seed, config, the teacher's logits on the training inputs).
Unit = tuple[str, str, int, Config, np.ndarray]


def student_unit(unit: Unit) -> dict[str, Any]:
    """Train one student; its head-1 test accuracy and the mean gradient cosines it logged."""
    task, method, seed, cfg, teacher_logits = unit
    data = _split(task, seed, cfg)
    seed_everything(seed)
    model = build_student(data.x_train.shape[1], cfg)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    t = torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32))
    loader = make_loader(TensorDataset(x, y, t), cfg.batch_size, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    backbone = list(model.backbone.parameters())
    objective: Any
    if method == CE:
        objective = DHKDObjective(alpha=0.0, kd_head="main")  # gamma * CE on head 1 alone
    elif method == KD:
        objective = HintonKDObjective(temperature=cfg.kd_temperature)
    elif method == SINGLE:
        objective = DHKDObjective(
            alpha=cfg.alpha,
            temperature=cfg.bkl_temperature,
            kd_head="main",
            monitor={"head": [model.fc.weight], "backbone": backbone},
            monitor_every=cfg.monitor_every,
        )
    elif method in (DHKD, DHKD_GA):
        objective = DHKDObjective(
            alpha=cfg.alpha,
            temperature=cfg.bkl_temperature,
            align=method == DHKD_GA,
            monitor={"backbone": backbone} if method == DHKD else None,
            monitor_every=cfg.monitor_every,
        )
    else:
        raise ValueError(f"unknown method {method!r}")
    fit(
        model,
        None,
        loader,
        opt,
        TrainConfig(epochs=cfg.student_epochs, seed=seed, progress=False),
        compute_loss=objective,
    )
    out: dict[str, Any] = {"acc": _accuracy(model, data.x_test, data.y_test)}
    for name, values in getattr(objective, "cosines", {}).items():
        out[f"cos_{name}"] = float(np.nanmean(values))
    if method == DHKD_GA:
        out["projected_fraction"] = objective.projected_steps / max(1, objective.steps)
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
    files under ``out_dir/25-dual-head-kd/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    t_units = [(task, seed, cfg) for seed in rep.seeds for task in TASKS]
    try:
        teachers = dict(
            zip([(task, seed) for task, seed, _ in t_units], rep.map(teacher_unit, t_units, desc="#25 teachers"))
        )
        units: list[Unit] = [
            (task, method, seed, cfg, teachers[task, seed]["logits"])
            for seed in rep.seeds
            for task in TASKS
            for method in METHODS
        ]
        outputs = rep.map(student_unit, units, desc="#25 students")
    finally:
        _split.cache_clear()
    done = {(task, method, seed): o for (task, method, seed, _, _), o in zip(units, outputs)}

    table = Table(METRICS, METHODS, baselines=[CE, KD])
    for seed in rep.seeds:
        for method in METHODS:
            table.add(method, seed, {f"{TASKS[task]} top-1": done[task, method, seed]["acc"] for task in TASKS})

    claims: list[Claim] = []
    for label in TASKS.values():
        metric = f"{label} top-1"
        claims += [
            Claim.greater(table, DHKD, CE, metric, statement=f"{metric}: DHKD beats cross-entropy alone"),
            Claim.greater(
                table,
                DHKD,
                SINGLE,
                metric,
                statement=f"{metric}: DHKD beats CE + BinaryKL-Norm on one head (moving the logit loss to an "
                "auxiliary head helps)",
            ),
            Claim.less(
                table,
                SINGLE,
                CE,
                metric,
                statement=f"{metric}: CE + BinaryKL-Norm on one head is worse than cross-entropy alone",
            ),
            Claim.greater(table, DHKD, KD, metric, statement=f"{metric}: DHKD beats classic KD"),
        ]
    for task, label in TASKS.items():
        claims.append(
            Claim.about(
                f"{label}, CE + BinaryKL-Norm on one head: the CE and BinaryKL-Norm gradients conflict on the "
                "classifier's weight matrix (mean cosine over training < 0)",
                [done[task, SINGLE, s]["cos_head"] for s in rep.seeds],
                "<",
            )
        )
        claims.append(
            Claim.about(
                f"{label}, DHKD: the CE and BinaryKL-Norm gradients agree on the shared backbone "
                "(mean cosine over training > 0)",
                [done[task, DHKD, s]["cos_backbone"] for s in rep.seeds],
                ">",
            )
        )

    cos = {
        f"{TASKS[task]} {short}, {name}": [done[task, method, s][f"cos_{name}"] for s in rep.seeds]
        for task in TASKS
        for method, short, names in ((SINGLE, "one head", ("head", "backbone")), (DHKD, "DHKD", ("backbone",)))
        for name in names
    }
    teacher_acc = {task: [teachers[task, s]["acc"] for s in rep.seeds] for task in TASKS}
    projected = {task: [done[task, DHKD_GA, s]["projected_fraction"] for s in rep.seeds] for task in TASKS}
    extra: dict[str, Any] = {"teacher_top1": teacher_acc, "gradient_cosines": cos, "ga_projected_fraction": projected}
    teacher_note = "; ".join(
        f"{TASKS[task]} {np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.3f}"
        for task, v in teacher_acc.items()
    )
    cos_note = "; ".join(f"{k}: {np.mean(v):+.3f}" for k, v in cos.items())
    n_digits = len(_split("digits", rep.seeds[0], cfg).y_train)
    _split.cache_clear()
    result = rep.result(
        table,
        claims,
        setting=(
            f"digits (sklearn 8x8, {n_digits} train / {1797 - n_digits} test, split per seed) and Fashion-MNIST "
            f"({cfg.fm_train} train / {cfg.fm_test} test images drawn per seed), pixels flattened; teacher MLP "
            f"in-{'-'.join(map(str, cfg.teacher_hidden))}-10 trained with CE in the run ({cfg.teacher_epochs} "
            f"epochs); student backbone in-{cfg.student_feat} (ReLU) + linear head 1 (+ linear auxiliary head for "
            f"DHKD), {cfg.student_epochs} epochs; Adam lr {cfg.lr:g}, batch {cfg.batch_size}; KD: 0.1 CE + 0.9 KD, "
            f"T={cfg.kd_temperature:g}; BinaryKL-Norm T={cfg.bkl_temperature:g}, alpha={cfg.alpha:g}, gamma=1; "
            "test accuracy of head 1 at the last epoch"
        ),
        scale_note=(
            "MLPs on digits / a Fashion-MNIST subset instead of ResNet/WRN/MobileNet pairs on CIFAR-100 "
            "(240 epochs, SGD) and ResNet34->ResNet18 on ImageNet; last-epoch accuracy instead of the best "
            "test checkpoint"
        ),
        notes=(
            f"Teacher top-1 (mean ± std over seeds): {teacher_note}. Mean cosine between the CE and the "
            f"BinaryKL-Norm gradients over training, averaged over seeds: {cos_note}. DHKD + GA is reported, "
            "not claimed on; share of its steps where the alignment projected the gradient: "
            + "; ".join(f"{TASKS[k]} {np.mean(v):.2f}" for k, v in projected.items())
            + "."
        ),
        highlight=(DHKD, CE, METRICS[1]),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Head-1 test accuracy per task and method, and the gradient cosines of (c) and (d)."""
    table, extra = result.table, result.extra
    fig, axes = subplots(3, width=5.0, width_ratios=[1.0, 1.0, 1.1])
    for ax, metric in zip(axes[:2], table.metrics):
        lo = min(table.mean(m, metric) - table.summary(m, metric)["std"] for m in table.methods)
        hi = max(table.mean(m, metric) + table.summary(m, metric)["std"] for m in table.methods)
        pad = max(0.005, 0.15 * (hi - lo))
        grouped_bars(
            ax,
            table,
            [metric],
            ylabel="test top-1 of head 1 (mean ± std)",
            ylim=(lo - pad, min(1.0, hi + pad)),
            title=metric,
        )
    axes[0].legend(fontsize=7, loc="lower left")
    cos = extra["gradient_cosines"]
    names = list(cos)
    means = [float(np.mean(cos[k])) for k in names]
    stds = [float(np.std(cos[k], ddof=1)) if len(cos[k]) > 1 else 0.0 for k in names]
    axes[2].barh(range(len(names)), means, xerr=stds, color=["tab:red" if m < 0 else "tab:green" for m in means])
    axes[2].set_yticks(range(len(names)), names, fontsize=7)
    axes[2].axvline(0.0, color="black", lw=0.8)
    axes[2].set_xlabel("mean cos(grad CE, grad BinaryKL-Norm) over training")
    axes[2].set_title("gradient conflict (head vs backbone)")
    return finish(fig, result, "Dual-head KD vs CE, KD and the single-head combination")
