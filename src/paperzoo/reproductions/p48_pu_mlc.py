"""Reproduction of paper 48, PU-MLC, "Positive Label Is All You Need for Multi-Label
Classification" (Yuan, Zhang & Huang, ICME 2024), scaled down (this project's reproduction,
docs/papers/48-pu-mlc.md).

The paper trains multi-label image classifiers (a pretrained ResNet-101, fine-tuned, on MS-COCO
and PASCAL VOC) from the positive labels alone: every negative label is discarded and each class
is a positive-unlabelled problem, trained with the variational PU loss plus an adaptive
temperature and re-balance factor (:class:`paperzoo.losses.PUMultiLabelLoss`) and VPU's MixUp
regulariser. It reports higher mAP than the compared methods with full labels and with partial
labels. The scaled-down test:

* data: 2 x 2 mosaics of the 30-class union (Fashion-MNIST, MNIST, Animal-MNIST; about 3.1
  labels per mosaic), training and test tiles from disjoint image halves (fixed, seed 0);
* features: frozen ImageNet EfficientNet-Lite0 features of the mosaics (64 px, cached once)
  stand in for the fine-tuned pretrained backbone; a trainable MLP head 1280-256-30 on the
  standardised features;
* labels (positive-only protocol, per seed): the observed labels are the true positives, each
  hidden (set to unknown) with probability ``h`` in {0, 0.3, 0.5}; every other entry is unknown.
  ``h = 0`` is the full-label setting (all positives observed, the negatives discarded);
* methods: BCE treating every unknown as a negative (the assume-negative baseline; at ``h = 0``
  it is full-label BCE), plain VPU (gamma 0, temperature 1), PU-MLC (gamma 0.55, alpha 1, the
  official MS-COCO values) and PU-MLC with the MixUp regulariser (on the head's inputs);
* metrics on the clean test labels: mAP, micro- and macro-F1 at logit 0.

Units of work: one training run per (method, hidden rate, seed); the features are extracted in
the parent process (disk cache) and read by the units.
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
from paperzoo.engine.plots import curve_with_band, finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.losses import PUMultiLabelLoss
from paperzoo.metrics import multilabel_metrics
from paperzoo.models import MLP
from paperzoo.multilabel.pu_mlc import PUMixupRegularizer, hide_positives, pu_mlc_compute_loss

PAPER = 48
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

BCE = "BCE (unknown = negative)"
VPU = "plain VPU"
PUMLC = "PU-MLC"
PUMLC_MIX = "PU-MLC + MixUp"
METHODS = (BCE, VPU, PUMLC, PUMLC_MIX)
GAMMA, ALPHA = 0.55, 1.0  # the official MS-COCO values
METRIC_NAMES = ("mAP", "micro-F1", "macro-F1")


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    n_train: int
    n_test: int
    px: int
    epochs: int
    hidden_rates: tuple[float, ...]
    hidden: int = 256
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4


FULL = Config(n_train=3000, n_test=1500, px=64, epochs=30, hidden_rates=(0.0, 0.3, 0.5))
SMOKE = Config(n_train=120, n_test=60, px=32, epochs=2, hidden_rates=(0.0, 0.5), batch_size=32)


def metric(name: str, rate: float) -> str:
    return f"{name} h={rate:g}"


def metrics_of(cfg: Config) -> list[str]:
    return [metric(m, r) for r in cfg.hidden_rates for m in METRIC_NAMES]


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Features:
    """Standardised frozen features and clean multi-hot labels of the fixed mosaics."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    encoder: str


def build_features(cfg: Config) -> Features:
    """The fixed mosaics (seed 0) and their EfficientNet-Lite0 features (cached on disk),
    standardised with the training mean and std. Only a smoke run falls back to the pixels if
    the ``vision`` extra is missing."""
    from paperzoo.data.multilabel import union30_mosaics
    from paperzoo.models.pretrained import efficientnet_lite0_available, efficientnet_lite0_features

    train, test = union30_mosaics(cfg.n_train, cfg.n_test, seed=0)
    if efficientnet_lite0_available():
        f_tr = efficientnet_lite0_features(train.x, size=cfg.px, cache_key=f"p48-mosaic-train-{cfg.n_train}")
        f_te = efficientnet_lite0_features(test.x, size=cfg.px, cache_key=f"p48-mosaic-test-{cfg.n_test}")
        encoder = f"frozen ImageNet EfficientNet-Lite0 features ({cfg.px} px)"
    elif cfg == SMOKE:
        f_tr, f_te = train.flat(), test.flat()
        encoder = "pixels (vision extra missing)"
    else:
        raise ImportError("the full run needs the 'vision' extra (EfficientNet-Lite0 features)")
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    return Features(
        ((f_tr - mu) / sd).astype(np.float32), train.y.copy(), ((f_te - mu) / sd).astype(np.float32), test.y.copy(),
        encoder,
    )  # fmt: skip


@lru_cache(maxsize=1)
def _features(cfg: Config) -> Features:
    return build_features(cfg)


def observed_labels(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """The observed positives of one seed: each true positive hidden with probability ``rate``."""
    return hide_positives(y, rate, np.random.default_rng([seed, 48, round(rate * 1000)]))


# --------------------------------------------------------------------------- units
#: One unit: (method, hidden rate, seed, config, the features in a smoke run (small) else None:
#: the full run's units read them from the disk cache once per process).
Unit = tuple[str, float, int, Config, Features | None]


def train_unit(unit: Unit) -> dict[str, Any]:
    """Train the head with one method on one seed's observed labels; clean-test metrics."""
    method, rate, seed, cfg, given = unit
    data = given if given is not None else _features(cfg)
    y_obs = observed_labels(data.y_train, rate, seed)
    seed_everything(seed)
    model = MLP(data.x_train.shape[1], (cfg.hidden,), data.y_train.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(y_obs)
    loader = make_loader(TensorDataset(x, y), cfg.batch_size, seed=seed, drop_last=True)
    tc = TrainConfig(epochs=cfg.epochs, seed=seed, progress=False)
    if method == BCE:
        bce = nn.BCEWithLogitsLoss()

        def compute(m: nn.Module, batch: Any) -> torch.Tensor:
            return bce(m(batch[0]), batch[1].float())

    elif method == VPU:
        compute = pu_mlc_compute_loss(PUMultiLabelLoss(gamma=0.0, alpha=1e6))
    elif method == PUMLC:
        compute = pu_mlc_compute_loss(PUMultiLabelLoss(gamma=GAMMA, alpha=ALPHA))
    elif method == PUMLC_MIX:
        compute = pu_mlc_compute_loss(PUMultiLabelLoss(gamma=GAMMA, alpha=ALPHA), PUMixupRegularizer(0.3))
    else:
        raise ValueError(f"unknown method {method!r}")
    fit(model, None, loader, opt, tc, compute_loss=compute)
    model.eval()
    with torch.no_grad():
        scores = model(torch.from_numpy(data.x_test)).numpy()
    out: dict[str, Any] = dict(multilabel_metrics(scores, data.y_test))
    out["observed_per_image"] = float(y_obs.sum(1).mean())
    out["predicted_per_image"] = float((scores > 0).sum(1).mean())
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
    files under ``out_dir/48-pu-mlc/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    feats = build_features(cfg)  # extracts and caches the features once, here; the units read the cache
    try:
        payload = feats if smoke else None
        units: list[Unit] = [(m, r, s, cfg, payload) for s in rep.seeds for r in cfg.hidden_rates for m in METHODS]
        outputs = rep.map(train_unit, units)
    finally:
        _features.cache_clear()
    table = Table(metrics_of(cfg), METHODS, baselines=[BCE])
    per: dict[tuple[str, int], dict[str, float]] = {}
    diag: dict[str, dict[str, list[float]]] = {}
    for (method, rate, seed, *_), out in zip(units, outputs):
        per.setdefault((method, seed), {}).update({metric(k, rate): out[k] for k in METRIC_NAMES})
        d = diag.setdefault(f"{method} h={rate:g}", {"observed_per_image": [], "predicted_per_image": []})
        d["observed_per_image"].append(out["observed_per_image"])
        d["predicted_per_image"].append(out["predicted_per_image"])
    for (method, seed), values in per.items():
        table.add(method, seed, values)

    rates = cfg.hidden_rates
    mid = 0.3 if 0.3 in rates else rates[-1]
    claims = [
        Claim.about(
            f"mAP with {r:.0%} of the positives hidden (positive-only labels): {PUMLC} beats {BCE}"
            if r > 0
            else f"mAP with all positives observed (full labels): {PUMLC}, using the positives only, beats {BCE} "
            "using the negatives too",
            table.paired(PUMLC, BCE, metric("mAP", r)),
            ">",
        )
        for r in rates
    ]
    claims.append(
        Claim.about(
            f"ablation, mAP with {mid:.0%} of the positives hidden: {PUMLC} (adaptive temperature and re-balance) "
            f"beats {VPU}",
            table.paired(PUMLC, VPU, metric("mAP", mid)),
            ">",
        )
    )
    n_obs = {k: float(np.mean(v["observed_per_image"])) for k, v in diag.items()}
    n_pred = {k: float(np.mean(v["predicted_per_image"])) for k, v in diag.items()}
    feats_n = int(feats.y_train.shape[0])
    true_per_image = float(feats.y_train.sum(1).mean())
    result = rep.result(
        table,
        claims,
        setting=(
            f"{feats_n} training / {feats.y_test.shape[0]} test 2x2 mosaics of the 30-class union "
            f"({true_per_image:.2f} labels per image), disjoint tile images; {feats.encoder}, standardised; "
            f"trainable MLP head 1280-{cfg.hidden}-30, Adam lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, "
            f"batch {cfg.batch_size}, {cfg.epochs} epochs; observed labels = true positives, each hidden with "
            f"probability h in {list(rates)}, everything else unknown; PU-MLC gamma {GAMMA:g}, alpha {ALPHA:g}; "
            "plain VPU = gamma 0, temperature 1; MixUp on the head's inputs, Beta(0.3, 0.3); metrics on the "
            "clean test labels, F1 at logit 0"
        ),
        scale_note=(
            "a 30-class mosaic proxy with frozen EfficientNet-Lite0 features and a trainable head stands in for "
            "MS-COCO / PASCAL VOC with a fine-tuned ResNet-101 (+ LGC modules, SSGRL head, EMA, 448 px); "
            f"{feats_n:,} training images instead of ~82k (COCO); hidden positives are random, not the missing "
            "objects of real annotations"
        ),
        notes=(
            "Mean positives predicted per test image (logit > 0; true "
            f"{float(feats.y_test.sum(1).mean()):.2f}): "
            + "; ".join(f"{k}: {v:.2f}" for k, v in n_pred.items())
            + ". Observed positives per training image: "
            + "; ".join(f"h={r:g}: {n_obs[f'{BCE} h={r:g}']:.2f}" for r in rates)
            + ". F1 is reported, not claimed on (the paper thresholds probabilities at 0.8; a PU-trained score "
            f"is not calibrated like BCE's). {PUMLC_MIX} is reported, not claimed on."
        ),
        highlight=(PUMLC, BCE, metric("mAP", mid)),
        extra={"encoder": feats.encoder, "predicted_per_image": n_pred, "observed_per_image": n_obs},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """mAP against the hidden rate per method, and the mAP / F1 bars at the middle rate."""
    table = result.table
    rates = sorted({float(m.split("h=")[1]) for m in table.metrics})
    fig, axes = subplots(2, width=5.5, height=4.6)
    for method in table.methods:
        s = [table.summary(method, metric("mAP", r)) for r in rates]
        curve_with_band(axes[0], rates, [v["mean"] for v in s], [v["std"] for v in s], marker="o", label=method)
    axes[0].set_xlabel("fraction h of the true positives hidden (unknown)")
    axes[0].set_ylabel("test mAP, clean labels (mean ± std over seeds)")
    axes[0].set_title("mAP vs hidden positives")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    mid = 0.3 if 0.3 in rates else rates[-1]
    grouped_bars(
        axes[1], table, [metric(m, mid) for m in METRIC_NAMES], labels=list(METRIC_NAMES), ylim=(0.0, 1.0),
        title=f"h = {mid:g}",
    )  # fmt: skip
    axes[1].legend(fontsize=7, loc="upper right")
    return finish(fig, result, "PU-MLC vs assume-negative BCE, positive-only labels")
