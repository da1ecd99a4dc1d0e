"""Reproduction of paper 42, "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep
Models" (Shen et al., ICLR 2024), scaled down (docs/papers/42-label-agnostic-forgetting.md).

The paper's small-image setting at a CPU scale: the official CNN (:class:`LAFSmallCNN`) on a
class-balanced Fashion-MNIST subset drawn per seed (``per_class`` images per class), the original
model and the retrain-from-scratch oracle trained with one recipe (Adam lr 1e-3, weight decay
1e-4, batch 64), through the shared :class:`~paperzoo.unlearning.UnlearningProtocol`. Two of the
paper's tasks, as the official ``Data.py`` defines them:

* class removal: every training image of class 0 is forgotten;
* random data removal: 40 % of the training images of each of classes 5-9 are forgotten.

Methods: LAF (no labels) with the official CNN presets and the step-count rule (both learning
rates scaled so that learning rate x steps matches the official Fashion-MNIST run, see the
card), LAF+R (LAF, then the head fine-tuned on the labels of 10 % of the remaining set), and the
supervised baselines of the toolkit with their default recipes: fine-tuning on the remaining set
(all labels, and the same 10 % as LAF+R), NegGrad+ and SCRUB; the original model and the oracle are reported as rows. Metrics per the paper: accuracy on
the forget / remaining / test sets (test split by the classes the forget set comes from), the
sorted-softmax membership attack (attack success rate, ``paperzoo.unlearning.attacks``) and the
protocol's loss-based MIA AUC, the average absolute gap to the oracle over forget, remaining, test
accuracy and attack success rate, the KL to the oracle on the forget set; wall time per method is
recorded in ``extra["time_s"]`` (machine-dependent, so not a table metric).

Units of work: one per (task, seed): the protocol trains the original model and the oracle once
and every method starts from a copy of the original.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.unlearning.attacks import attack_sorted_softmax, mia_splits, sorted_softmax_features
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData
from paperzoo.unlearning.baselines import FinetuneRetain
from paperzoo.unlearning.laf import LAF_PRESETS, LAFPlusR, LAFSmallCNN, LAFUnlearner
from paperzoo.unlearning.neggrad import NegGradPlus
from paperzoo.unlearning.protocol import UnlearningProtocol, membership_inference_auc, predict_logits
from paperzoo.unlearning.scrub import SCRUB

PAPER = 42
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

TASKS = ("class", "data")
TASK_NAMES = {"class": "class removal", "data": "data removal"}
#: the classes the forget set comes from, and the share of each that is forgotten (official Data.py)
FORGET_SPEC: dict[str, dict[int, float]] = {"class": {0: 1.0}, "data": {c: 0.4 for c in range(5, 10)}}
#: optimiser steps of the official Fashion-MNIST runs: ceil(|D_f| / 32) x 20 epochs, |D_f| = 6,000
#: (class 0) and 12,000 (40 % of classes 5-9); LAF's learning rates are scaled to keep lr x steps
REFERENCE_STEPS = {"class": 3760, "data": 7500}

ORIGINAL, ORACLE = "original", "retrain (oracle)"
LAF, LAF_R = "LAF (no labels)", "LAF+R (10% labels)"
FT, FT_SEMI = "fine-tune (all labels)", "fine-tune (10% labels)"
NEGGRAD, SCRUB_NAME = "NegGrad+", "SCRUB"
METHODS = (ORIGINAL, ORACLE, LAF, LAF_R, FT, FT_SEMI, NEGGRAD, SCRUB_NAME)  # LAF before LAF+R
SUPERVISED = (FT, NEGGRAD, SCRUB_NAME)

FORGET, RETAIN, TEST = "forget acc", "retain acc", "test acc"
TEST_F, TEST_O = "test acc (forget classes)", "test acc (other classes)"
ASR, AUC, GAP, KL, TIME = "MIA ASR", "MIA AUC", "avg gap", "oracle KL", "time s"
DIVERGED = "diverged"  # 1 when the model's logits held NaN or inf (scored as described in evaluate)
#: the table's metrics; wall time (machine-dependent, so not bit-identical across runs) goes to extra
METRICS = [FORGET, RETAIN, TEST, TEST_F, TEST_O, ASR, AUC, GAP, KL, DIVERGED]
GAP_OVER = (FORGET, RETAIN, TEST, ASR)

#: thresholds of the claims, fixed before the full run (fractions, not points)
FORGET_DROP = 0.50  # class removal: LAF lowers forget-class accuracy by more than 50 points
RETAINED_DROP = 0.05  # class removal: retained-class test accuracy drops by less than 5 points
COMPARABLE = 0.05  # "comparable": LAF's average gap exceeds fine-tuning's by less than 5 points


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    per_class: int
    n_test: int
    epochs: int
    vae_epochs: int
    laf_epochs: int
    attacker: str
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    labelled_fraction: float = 0.1
    step_rule: bool = True  # scale LAF's learning rates to the official lr x steps (off in smoke: 2 steps)


FULL = Config(per_class=200, n_test=1000, epochs=5, vae_epochs=10, laf_epochs=20, attacker="hgb")
SMOKE = Config(per_class=10, n_test=100, epochs=1, vae_epochs=1, laf_epochs=2, attacker="logreg", step_rule=False)


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=1)
def _fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    return train.x, train.y, test.x, test.y


def forget_indices(y: np.ndarray, fractions: dict[int, float], seed: int) -> np.ndarray:
    """Sorted positions of ``floor(fraction x count)`` random samples of each listed class of ``y``
    (the official per-class forget sets: class removal is ``{c: 1.0}``)."""
    rng = np.random.default_rng([seed, 42, 1])
    out = []
    for c, frac in sorted(fractions.items()):
        members = np.flatnonzero(y == c)
        out.append(rng.choice(members, int(np.floor(frac * members.size)), replace=False))
    return np.sort(np.concatenate(out))


def build_data(task: str, cfg: Config, seed: int) -> UnlearningData:
    """A seed's class-balanced training subset (forget + retain) and a fixed test subset."""
    x_tr, y_tr, x_te, y_te = _fashion()
    rng = np.random.default_rng([seed, 42])
    train = np.concatenate([rng.choice(np.flatnonzero(y_tr == c), cfg.per_class, replace=False) for c in range(10)])
    test = np.sort(np.random.default_rng(42).choice(len(y_te), cfg.n_test, replace=False))
    x = torch.from_numpy(np.concatenate([x_tr[train], x_te[test]]))
    y = torch.from_numpy(np.concatenate([y_tr[train], y_te[test]]))
    n = train.size
    forget = forget_indices(y_tr[train], FORGET_SPEC[task], seed)
    retain = np.setdiff1d(np.arange(n), forget)
    return UnlearningData(x, y, forget, retain, np.arange(n, n + cfg.n_test), 10)


# --------------------------------------------------------------------------- methods
class _SemiSupervised(Unlearner):
    """A supervised baseline that only sees the labels of a random ``fraction`` of the remaining set
    (the samples LAF+R's repair gets): the retain split is cut to that subset."""

    uses_labels: ClassVar[bool] = True

    def __init__(self, method: Unlearner, fraction: float) -> None:
        super().__init__()
        self.method, self.fraction = method, fraction

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        n_r = data.retain_idx.numel()
        k = max(1, round(self.fraction * n_r))
        pick = torch.randperm(n_r, generator=torch.Generator().manual_seed(context.seed + 1))[:k]
        sub = UnlearningData(data.x, data.y, data.forget_idx, data.retain_idx[pick], data.test_idx, data.num_classes)
        return self.method.unlearn(model, sub, context)


def make_method(name: str, task: str, cfg: Config) -> Unlearner:
    """The unlearner of ``name`` for ``task`` (LAF: the official CNN preset of the task with the
    step-count rule; the baselines: the toolkit's default recipes)."""
    laf = {
        **LAF_PRESETS[(task, "cnn")],
        "epochs": cfg.laf_epochs,
        "vae_epochs": cfg.vae_epochs,
        "reference_steps": REFERENCE_STEPS[task] if cfg.step_rule else None,
    }
    if name == LAF:
        return LAFUnlearner(**laf)
    if name == LAF_R:
        return LAFPlusR(labelled_fraction=cfg.labelled_fraction, **laf)
    if name == FT:
        return FinetuneRetain()
    if name == FT_SEMI:
        return _SemiSupervised(FinetuneRetain(), cfg.labelled_fraction)
    if name == NEGGRAD:
        return NegGradPlus()
    if name == SCRUB_NAME:
        return SCRUB()
    raise ValueError(f"unknown method {name!r}")


def _train_fn(cfg: Config) -> Any:
    def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        loader = make_loader(TensorDataset(x, y), cfg.batch_size, seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        fit(model, nn.CrossEntropyLoss(), loader, opt, TrainConfig(epochs=cfg.epochs, seed=seed, progress=False))

    return train


@dataclass(frozen=True, eq=False)
class OracleRef:
    """What every model is compared with: the oracle's forget-set log-probabilities."""

    logp_forget: torch.Tensor


def evaluate(
    model: nn.Module, data: UnlearningData, task: str, cfg: Config, seed: int, oracle: OracleRef | None
) -> tuple[dict[str, float], torch.Tensor]:
    """All metrics of ``model`` from one pass over the samples: the protocol's (accuracy on each
    split; ``MIA AUC``, the protocol's loss-based attack; ``oracle KL``, computed as
    :meth:`UnlearningProtocol.evaluate` does), test accuracy on the forget set's classes and on
    the others, and the sorted-softmax attack's success rate. Also returns the forget-set
    log-probabilities (the reference when ``model`` is the oracle)."""
    raw = predict_logits(model, data.x, chunk=1000)
    finite = torch.isfinite(raw).all(1)
    diverged = float(not bool(finite.all()))
    # a model that diverged (NaN / inf logits, e.g. unbounded gradient ascent): a row with NaN is a
    # wrong prediction and a uniform softmax for the attacks; inf is clipped to +-1e4
    logits = torch.nan_to_num(raw, nan=0.0, posinf=1e4, neginf=-1e4)
    lf, lr_, lt = logits[data.forget_idx], logits[data.retain_idx], logits[data.test_idx]
    hits = (logits.argmax(1) == data.y) & finite

    def acc(idx: torch.Tensor) -> float:
        return float(hits[idx].double().mean())

    # the protocol's attack on the logits themselves: an identity "model" gives the same losses
    auc = membership_inference_auc(nn.Identity(), lf, data.y_forget, lt, data.y_test, seed=seed)
    logp = F.log_softmax(lf, dim=1)
    ref = logp if oracle is None else oracle.logp_forget
    in_f = torch.isin(data.y_test, torch.tensor(sorted(FORGET_SPEC[task])))
    hit = hits[data.test_idx]
    member, nonmember, evaluation = mia_splits(lf.shape[0], lr_.shape[0], lt.shape[0], seed)
    mia = attack_sorted_softmax(
        sorted_softmax_features(lr_[torch.from_numpy(member)]),
        sorted_softmax_features(lt[torch.from_numpy(nonmember)]),
        sorted_softmax_features(lf),
        sorted_softmax_features(lt[torch.from_numpy(evaluation)]),
        attacker=cfg.attacker,
        seed=seed,
    )
    values = {
        FORGET: acc(data.forget_idx),
        RETAIN: acc(data.retain_idx),
        TEST: acc(data.test_idx),
        TEST_F: float(hit[in_f].double().mean()),
        TEST_O: float(hit[~in_f].double().mean()),
        ASR: mia["mia_accuracy"],
        AUC: auc,
        KL: float(F.kl_div(logp, ref, log_target=True, reduction="batchmean")),
        DIVERGED: diverged,
    }
    return values, logp


def task_unit(unit: tuple[str, int, Config]) -> dict[str, dict[str, float]]:
    """Every method on one (task, seed): ``{method: {metric: value}}``. LAF+R is LAF's model
    (a copy) plus the head repair, timed as both (identical to running :class:`LAFPlusR`)."""
    task, seed, cfg = unit
    data = build_data(task, cfg, seed)
    protocol = UnlearningProtocol(data, LAFSmallCNN, _train_fn(cfg))
    protocol.original(seed)
    start_oracle = time.perf_counter()
    oracle_model = protocol.oracle(seed)
    oracle_time = time.perf_counter() - start_oracle
    values, logp = evaluate(oracle_model, data, task, cfg, seed, None)
    ref = OracleRef(logp)
    out: dict[str, dict[str, float]] = {ORACLE: {**values, TIME: oracle_time}}
    out[ORIGINAL] = {**evaluate(protocol.original(seed), data, task, cfg, seed, ref)[0], TIME: 0.0}
    laf_model: nn.Module | None = None
    for name in METHODS:
        if name in out:
            continue
        method = make_method(name, task, cfg)
        context = protocol.context(seed)
        seed_everything(context.seed)
        clock = time.perf_counter()
        if name == LAF_R:
            assert isinstance(method, LAFPlusR) and laf_model is not None
            model = method.repair(copy.deepcopy(laf_model), data, context)
            elapsed = time.perf_counter() - clock + out[LAF][TIME]
        else:
            model = method.unlearn(protocol.original(seed), data, context)
            elapsed = time.perf_counter() - clock
        if name == LAF:
            laf_model = copy.deepcopy(model)
        out[name] = {**evaluate(model, data, task, cfg, seed, ref)[0], TIME: elapsed}
    for v in out.values():
        v[GAP] = float(np.mean([abs(v[m] - out[ORACLE][m]) for m in GAP_OVER]))
    return {name: {m: float(out[name][m]) for m in [*METRICS, TIME]} for name in METHODS}


def row(task: str, method: str) -> str:
    return f"{TASK_NAMES[task]}: {method}"


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (one unit per task and seed, in ``jobs`` processes),
    write its files under ``out_dir/42-label-agnostic-forgetting/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    _fashion()  # decode once here; worker processes read the cache
    units = [(task, seed, cfg) for task in TASKS for seed in rep.seeds]
    outputs = rep.map(task_unit, units)
    rows = [row(t, m) for t in TASKS for m in METHODS]
    table = Table(METRICS, rows, baselines=[row(t, FT) for t in TASKS])
    times: dict[str, list[float]] = {r: [] for r in rows}
    for (task, seed, _), out in zip(units, outputs):
        for method, values in out.items():
            table.add(row(task, method), seed, {m: values[m] for m in METRICS})
            times[row(task, method)].append(values[TIME])

    def paired(task: str, a: str, b: str, metric: str) -> list[float]:
        return table.paired(row(task, a), row(task, b), metric)

    cls = "class"
    claims = [
        Claim.about(
            f"class removal: LAF, without labels, lowers the forget-class training accuracy by more than "
            f"{FORGET_DROP * 100:g} points (original - LAF)",
            paired(cls, ORIGINAL, LAF, FORGET),
            ">",
            FORGET_DROP,
        ),
        Claim.about(
            f"class removal: LAF lowers the retained-class test accuracy by less than {RETAINED_DROP * 100:g} points "
            "(original - LAF)",
            paired(cls, ORIGINAL, LAF, TEST_O),
            "<",
            RETAINED_DROP,
        ),
    ]
    claims.append(
        Claim.about(
            "data removal: LAF brings the model closer to the oracle than the original model is (average gap, LAF - "
            "original)",
            paired("data", LAF, ORIGINAL, GAP),
            "<",
        )
    )
    for task in TASKS:
        claims.append(
            Claim.about(
                f"{TASK_NAMES[task]}: LAF (no labels) is comparable to supervised fine-tuning: its average gap to the "
                f"oracle exceeds fine-tuning's by less than {COMPARABLE * 100:g} points",
                paired(task, LAF, FT, GAP),
                "<",
                COMPARABLE,
            )
        )
        claims.append(
            Claim.about(
                f"{TASK_NAMES[task]}: with 10% of the remaining labels, LAF+R has a smaller average gap to the oracle "
                "than fine-tuning on the same labels",
                paired(task, LAF_R, FT_SEMI, GAP),
                "<",
            )
        )
    gaps = {row(t, m): round(table.mean(row(t, m), GAP) * 100, 1) for t in TASKS for m in METHODS if m != ORACLE}
    best = {t: min(SUPERVISED, key=lambda m, t=t: table.mean(row(t, m), GAP)) for t in TASKS}
    result = rep.result(
        table,
        claims,
        setting=(
            f"Fashion-MNIST, {cfg.per_class} training images per class drawn per seed, {cfg.n_test} test images; the "
            f"official LAF CNN trained with Adam lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, batch "
            f"{cfg.batch_size}, {cfg.epochs} epochs (original on D, oracle on D_r); tasks: class removal (class 0) "
            "and random data removal (40% of classes 5-9); LAF with the official CNN presets (latent 8, "
            f"{cfg.laf_epochs} epochs, batch 32, tau 20 / 5, VAEs {cfg.vae_epochs} epochs) and both learning rates "
            "scaled so that lr x steps matches the official run (3,760 / 7,500 steps); LAF+R: head fine-tuned "
            f"(Adam 1e-3, 5 epochs) on the labels of {cfg.labelled_fraction:.0%} of D_r; baselines with the "
            "toolkit's default recipes; sorted-softmax MIA with "
            f"{'gradient-boosted trees' if cfg.attacker == 'hgb' else 'logistic regression'} (members: a sample of "
            "D_r, non-members: test images; evaluated on D_f vs other test images)"
        ),
        scale_note=(
            f"{cfg.per_class * 10:,} training images instead of 60,000 (forget sets of {cfg.per_class} and "
            f"{int(0.4 * cfg.per_class) * 5} images instead of 6,000 and 12,000); the CNN tasks only (no ResNet-18 on "
            "CIFAR-10 / SVHN), no noisy-label removal"
        ),
        notes=(
            "Average gap to the oracle (mean |method - oracle| over forget, remaining and test accuracy and attack "
            "success rate), points: "
            + "; ".join(f"{k} {v}" for k, v in gaps.items())
            + ". Best supervised baseline by average gap: "
            + ", ".join(f"{TASK_NAMES[t]} {m}" for t, m in best.items())
            + ". Models whose logits held NaN / inf (scored as wrong predictions, uniform softmax for the attacks), "
            "seeds diverged: "
            + (
                ", ".join(f"{m} {int(sum(table.values(m, DIVERGED)))}" for m in rows if sum(table.values(m, DIVERGED)))
                or "none"
            )
            + ". Mean wall time per method in seconds (machine-dependent; per seed in extra['time_s']): "
            + "; ".join(f"{r} {np.mean(v):.1f}" for r, v in times.items())
            + ". Fine-tuning with all labels is the table's baseline; the '10% labels' fine-tuning sees the same "
            "labelled samples as LAF+R."
        ),
        highlight=(row(cls, LAF), row(cls, FT), GAP),
        extra={
            "time_s": times,
            "reference_steps": REFERENCE_STEPS,
            "forget_spec": {t: list(FORGET_SPEC[t]) for t in TASKS},
        },
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Per task: accuracy on forget / remaining / test and attack success rate of each method next
    to the oracle's, and the average gap to the oracle."""
    table = result.table
    fig, axes = subplots(4, width=5.2, height=5.0, width_ratios=[1.6, 0.9, 1.6, 0.9])
    for i, task in enumerate(TASKS):
        sub = Table(METRICS, list(METHODS), baselines=[FT])
        for method in METHODS:
            for k, seed in enumerate(table.seeds(row(task, method))):
                sub.add(method, seed, {m: table.values(row(task, method), m)[k] for m in METRICS})
        grouped_bars(
            axes[2 * i], sub, [FORGET, RETAIN, TEST, ASR], ylim=(0, 1.0), ylabel="mean ± std over seeds",
            title=TASK_NAMES[task],
        )  # fmt: skip
        axes[2 * i].legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
        means = [sub.mean(m, GAP) for m in METHODS]
        stds = [sub.summary(m, GAP)["std"] for m in METHODS]
        axes[2 * i + 1].barh(np.arange(len(METHODS)), means, xerr=stds, color=[f"C{j}" for j in range(len(METHODS))])
        axes[2 * i + 1].set_yticks(np.arange(len(METHODS)), list(METHODS), fontsize=7)
        axes[2 * i + 1].invert_yaxis()
        axes[2 * i + 1].set_xlabel("average gap to the oracle (lower is better)")
        axes[2 * i + 1].set_title(f"{TASK_NAMES[task]}: gap")
    return finish(fig, result, "LAF (no labels) vs supervised unlearning, Fashion-MNIST CNN")
