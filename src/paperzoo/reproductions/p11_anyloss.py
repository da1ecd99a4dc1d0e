"""Reproduction of paper 11, AnyLoss (Han, Moniz & Chawla, ECML-PKDD 2024), scaled down (this
project's reproduction, docs/papers/11-anyloss.md).

The paper's tabular benchmark (102 imbalanced binary datasets, an MLP with one hidden layer, Adam
lr 0.01, 50 epochs, batches of 5% of the training set, threshold 0.5, 5-fold stratified CV) is
replaced by an imbalanced synthetic benchmark generated per seed with scikit-learn's
``make_classification`` (4,000 samples, 20 features of which 5 informative, 5% positives, 1%
label flips), evaluated by the paper's 5-fold stratified CV (features standardised with the
training folds' statistics). Model: MLP 20-64-1 (ReLU), one logit; ``p = sigmoid(logit)``.

Methods: BCE (the paper's main baseline), class-weighted BCE (WBCE, batch-level weights
``w1 = y0/N``, ``w0 = y1/N`` as in the reference code), the "pure" soft F1 (no amplification,
the paper's ablation), and AnyLoss (L = 73) on F1, balanced accuracy and the squared G-mean.
Metrics: the hard F1, balanced accuracy, G-mean and accuracy at threshold 0.5, each averaged
over the 5 test folds; one value per seed (data set draw).

Units of work: one (method, seed), all 5 folds inside (each fold seeds its model by
``seed * 100 + fold``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from paperzoo.engine import Claim, Result, Table, Timer, TrainConfig, fit, seed_everything
from paperzoo.engine.loop import EpochSeededSampler
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.losses import anyloss_binary
from paperzoo.models import MLP

PAPER = 11
DATA: tuple[str, ...] = ()
BUDGETS: tuple[str, ...] = ()

BCE, WBCE, PURE_F1 = "BCE", "WBCE", "pure soft F1 (no amplification)"
ANY_F1, ANY_BACC, ANY_GMEAN = "AnyLoss F1", "AnyLoss balanced acc.", "AnyLoss G-mean (squared)"
METHODS = (BCE, WBCE, PURE_F1, ANY_F1, ANY_BACC, ANY_GMEAN)
F1, BACC, GMEAN, ACC = "F1", "balanced acc.", "G-mean", "accuracy"
METRICS = [F1, BACC, GMEAN, ACC]
L_DEFAULT = 73.0


@dataclass(frozen=True)
class Config:
    n_samples: int = 4000
    n_features: int = 20
    n_informative: int = 5
    positive_rate: float = 0.05
    flip_y: float = 0.01
    folds: int = 5
    hidden: int = 64
    epochs: int = 50
    batch_frac: float = 0.05
    lr: float = 0.01


FULL = Config()
SMOKE = Config(n_samples=600, folds=2, epochs=3)


# --------------------------------------------------------------------------- data
def make_data(cfg: Config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The imbalanced binary task of one seed: (X float32 (n, d), y int64 in {0, 1})."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=cfg.n_samples,
        n_features=cfg.n_features,
        n_informative=cfg.n_informative,
        weights=[1.0 - cfg.positive_rate, cfg.positive_rate],
        flip_y=cfg.flip_y,
        random_state=seed,
    )
    return x.astype(np.float32), y.astype(np.int64)


def folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train, test) index pairs, shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


# --------------------------------------------------------------------------- losses
class _BinaryLoss(nn.Module):
    """``loss(logit (B, 1), y (B,) float)`` for one of the methods."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logit = out[:, 0]
        if self.method == BCE:
            return F.binary_cross_entropy_with_logits(logit, y)
        if self.method == WBCE:
            n, y1 = float(len(y)), y.sum()
            w = torch.where(y > 0, (n - y1) / n, y1 / n)  # w1 = y0/N, w0 = y1/N (reference code)
            return (w * F.binary_cross_entropy_with_logits(logit, y, reduction="none")).mean()
        metric = {PURE_F1: "f1", ANY_F1: "f1", ANY_BACC: "balanced_accuracy", ANY_GMEAN: "gmean"}[self.method]
        return anyloss_binary(logit, y, metric, L=L_DEFAULT, amplify=self.method != PURE_F1, from_logits=True)


def hard_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """F1, balanced accuracy, G-mean and accuracy of hard 0/1 predictions."""
    tp = float(((pred == 1) & (y == 1)).sum())
    tn = float(((pred == 0) & (y == 0)).sum())
    fp = float(((pred == 1) & (y == 0)).sum())
    fn = float(((pred == 0) & (y == 1)).sum())
    tpr = tp / max(tp + fn, 1.0)
    tnr = tn / max(tn + fp, 1.0)
    return {
        F1: 2 * tp / max(2 * tp + fp + fn, 1.0),
        BACC: (tpr + tnr) / 2,
        GMEAN: float(np.sqrt(tpr * tnr)),
        ACC: (tp + tn) / len(y),
    }


class EpochSeededBatches(Sampler[list[int]]):
    """Whole batches of :class:`~paperzoo.engine.loop.EpochSeededSampler`'s per-epoch permutation,
    so that a ``TensorDataset`` is indexed once per batch rather than once per sample (the
    per-sample fetch dominates the step time of these tiny MLPs); ``fit`` calls :meth:`set_epoch`."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.order = EpochSeededSampler(n, seed)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        idx = list(self.order)
        return iter([idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)])

    def __len__(self) -> int:
        return -(-self.order.n // self.batch_size)


def batch_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> DataLoader[Any]:
    """A shuffled, seeded, resumable loader of whole-batch fetches."""
    return DataLoader(TensorDataset(x, y), sampler=EpochSeededBatches(len(y), batch_size, seed), batch_size=None)


# --------------------------------------------------------------------------- units
Unit = tuple[str, int, Config]


def train_unit(unit: Unit) -> dict[str, Any]:
    """One (method, seed): the fold-mean hard metrics and the mean training seconds per epoch."""
    method, seed, cfg = unit
    x, y = make_data(cfg, seed)
    per_fold, epoch_s = [], []
    for k, (tr, te) in enumerate(folds(y, cfg.folds, seed)):
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
        xtr, xte = torch.from_numpy((x[tr] - mu) / sd), torch.from_numpy((x[te] - mu) / sd)
        ytr = torch.from_numpy(y[tr]).float()
        fold_seed = seed * 100 + k
        seed_everything(fold_seed)
        model = MLP(cfg.n_features, (cfg.hidden,), 1)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        batch = max(2, int(round(cfg.batch_frac * len(tr))))
        loader = batch_loader(xtr, ytr, batch, fold_seed)
        timer = Timer()
        fit(model, _BinaryLoss(method), loader, opt, TrainConfig(epochs=cfg.epochs, seed=fold_seed, progress=False))
        epoch_s.append(timer.elapsed / cfg.epochs)
        with torch.no_grad():
            pred = (model(xte)[:, 0] > 0).long().numpy()  # p = sigmoid(logit) > 0.5
        per_fold.append(hard_metrics(y[te], pred))
    return {"metrics": {m: float(np.mean([f[m] for f in per_fold])) for m in METRICS}, "epoch_s": epoch_s}


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` and write its files under ``out_dir/11-anyloss/``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units: list[Unit] = [(method, seed, cfg) for seed in rep.seeds for method in METHODS]
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, METHODS, baselines=[BCE, WBCE])
    for (method, seed, _), out in zip(units, outputs):
        table.add(method, seed, out["metrics"])
    claims = [
        Claim.greater(table, ANY_F1, BCE, F1),
        Claim.greater(table, ANY_F1, WBCE, F1),
        Claim.greater(table, ANY_BACC, BCE, BACC),
        Claim.greater(table, ANY_GMEAN, BCE, GMEAN),
        Claim.greater(table, ANY_F1, PURE_F1, F1),
    ]
    epoch_ms = {
        m: 1e3 * float(np.mean([t for (mm, _, _), o in zip(units, outputs) if mm == m for t in o["epoch_s"]]))
        for m in METHODS
    }
    result = rep.result(
        table,
        claims,
        setting=(
            f"make_classification: {cfg.n_samples} samples, {cfg.n_features} features ({cfg.n_informative} "
            f"informative), {cfg.positive_rate:.0%} positives, flip_y {cfg.flip_y}, one draw per seed; "
            f"{cfg.folds}-fold stratified CV, standardised features; MLP {cfg.n_features}-{cfg.hidden}-1, Adam lr "
            f"{cfg.lr}, {cfg.epochs} epochs, batches of {cfg.batch_frac:.0%} of the training folds; threshold 0.5; "
            f"AnyLoss L = {L_DEFAULT:g}, eps 1e-5; metrics averaged over the test folds"
        ),
        scale_note=(
            "one synthetic imbalanced data set per seed instead of the paper's 102 public tabular data sets (and no "
            "image/text experiments); the method is model- and data-agnostic, so the protocol is the paper's own"
        ),
        notes=(
            "WBCE uses the reference code's batch-level class weights; the G-mean AnyLoss optimises the squared "
            "G-mean (reference code). Mean training time per epoch (ms, one thread, wall-clock, never a claim): "
            + ", ".join(f"{m} {v:.1f}" for m, v in epoch_ms.items())
        ),
        highlight=(ANY_F1, BCE, F1),
        extra={"epoch_ms": epoch_ms},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Test metrics per method (mean ± std over seeds) and the per-seed F1 gain over BCE."""
    table = result.table
    fig, axes = subplots(2, width=6.0, width_ratios=[2.2, 1.0])
    grouped_bars(axes[0], table, METRICS, ylim=(0.0, 1.0), ylabel="test metric (mean ± std over seeds)")
    axes[0].legend(fontsize=7, loc="lower left")
    for i, m in enumerate(METHODS[1:]):
        diffs = table.paired(m, BCE, F1)
        axes[1].scatter([i] * len(diffs), diffs, s=18)
        axes[1].hlines(np.mean(diffs), i - 0.3, i + 0.3, color="black")
    axes[1].axhline(0.0, color="grey", lw=0.8)
    axes[1].set_xticks(range(len(METHODS) - 1), [m.replace(" (", "\n(") for m in METHODS[1:]], fontsize=7, rotation=30)
    axes[1].set_ylabel("F1 minus BCE's F1, per seed")
    axes[1].set_title("paired F1 gain over BCE")
    return finish(fig, result, "AnyLoss vs BCE on imbalanced binary data")
