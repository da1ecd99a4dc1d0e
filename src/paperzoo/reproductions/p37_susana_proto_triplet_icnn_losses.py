"""Reproduction of paper 37, the Proto-Triplet and ICNN few-shot losses (Mendez-Ruiz et al., 2023), scaled down.

Protocol (the paper's, on small data): episodic training of a Prototypical Network on base classes, N-way
K-shot test episodes on classes never seen in training, accuracy of the nearest-prototype classifier
(squared Euclidean) averaged over 600 test episodes with its 95 % confidence interval
(``1.96 std / sqrt(episodes)``). Data: the 30-class union of Fashion-MNIST, MNIST and Animal-MNIST
(:func:`paperzoo.data.load_union30`); the 10 test classes are every third class (2, 5, ..., 29: three
Fashion-MNIST, three MNIST and four Animal-MNIST classes), the 20 others are the base classes. Two settings:

* **conv**: raw 28 x 28 images, a small ConvNet (:class:`paperzoo.models.ConvNet`, 64-d embedding) trained
  from scratch, as the paper's Conv4 backbone;
* **effnet**: frozen ImageNet EfficientNet-Lite0 features (64 px, cached on disk, extracted once in the parent
  process) with a trainable two-layer head 1280-256-64, standing in for the paper's pretrained backbones.

Losses (the reference's ``--losses`` flag, the terms averaged): ``cross`` (the ProtoNet cross-entropy,
baseline), ``cross,prototriplet``, ``cross,fullicnn`` and ``cross,prototriplet,fullicnn``
(:class:`paperzoo.losses.FewShotLossCombo`). Every run of one seed shares the initialisation and the training
episodes; 10-way training episodes with K shots and 5 queries per class (the reference trains with a larger
way than it tests); Adam lr 1e-3; test: 5-way, 15 queries per class, the same 600 episodes for every run.
Training is one :func:`paperzoo.engine.fit` call per run with an episode ``compute_loss``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, plots, seed_everything, start
from paperzoo.losses import FewShotLossCombo
from paperzoo.models import ConvNet

PAPER = 37
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

CROSS, PT, ICNN, BOTH = "cross", "cross+prototriplet", "cross+fullicnn", "cross+prototriplet+fullicnn"
METHODS = (CROSS, PT, ICNN, BOTH)
TERMS = {
    CROSS: ("cross",),
    PT: ("cross", "prototriplet"),
    ICNN: ("cross", "fullicnn"),
    BOTH: ("cross", "prototriplet", "fullicnn"),
}
SETTINGS = ("conv", "effnet")
SHOTS = (1, 5)
METRICS = [f"{s} {k}-shot" for s in SETTINGS for k in SHOTS]
CI_METRICS = [f"{m} CI95" for m in METRICS]
TEST_CLASSES = tuple(range(2, 30, 3))
TEST_EPISODE_SEED = 12345


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    conv_per_class: int  # raw images kept per class (conv setting)
    effnet_per_class: int  # images per class embedded by EfficientNet (effnet setting)
    effnet_px: int
    conv_width: int
    conv_steps: int
    head_steps: int
    train_way: int
    train_query: int
    test_way: int
    test_query: int
    test_episodes: int


FULL = Config(
    conv_per_class=200,
    effnet_per_class=100,
    effnet_px=64,
    conv_width=16,
    conv_steps=250,
    head_steps=300,
    train_way=10,
    train_query=5,
    test_way=5,
    test_query=15,
    test_episodes=600,
)
SMOKE = Config(
    conv_per_class=25,
    effnet_per_class=25,
    effnet_px=32,
    conv_width=4,
    conv_steps=6,
    head_steps=10,
    train_way=5,
    train_query=3,
    test_way=5,
    test_query=5,
    test_episodes=40,
)


# --------------------------------------------------------------------------- data
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    source: str


def _split_union(x: np.ndarray, y: np.ndarray, source: str) -> Split:
    test = np.isin(y, TEST_CLASSES)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    return Split(xt[~test], y[~test], xt[test], y[test], source)


@lru_cache(maxsize=4)
def load_split(setting: str, cfg: Config) -> Split:
    """The base / novel split of one setting (raw images, or cached EfficientNet-Lite0 features)."""
    from paperzoo.data import load_union30

    if setting == "conv":
        data = load_union30(max_per_class=cfg.conv_per_class, seed=0)
        return _split_union(data.x, np.asarray(data.y), "raw 28x28 images")
    from paperzoo.models.pretrained import efficientnet_lite0_features

    data = load_union30(max_per_class=cfg.effnet_per_class, seed=0)
    feats = efficientnet_lite0_features(data.x, size=cfg.effnet_px, cache_key=f"p37-union30-{cfg.effnet_per_class}")
    return _split_union(feats, np.asarray(data.y), f"EfficientNet-Lite0 features, {cfg.effnet_px} px")


def make_model(setting: str, cfg: Config) -> nn.Module:
    if setting == "conv":
        return ConvNet(1, cfg.conv_width, 64)
    return nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 64))


class EpisodeBatches:
    """Training episodes as batches ``(support x, support labels, query x, query labels)`` (labels 0..N-1)."""

    def __init__(self, x: torch.Tensor, y: np.ndarray, way: int, shot: int, query: int, n: int, seed: int) -> None:
        from paperzoo.data import EpisodeSampler

        self.x = x
        self.sampler = EpisodeSampler(y, way, shot, query, n, seed)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for ep in self.sampler:
            yield (
                self.x[torch.from_numpy(ep.support_idx)],
                torch.from_numpy(ep.support_targets),
                self.x[torch.from_numpy(ep.query_idx)],
                torch.from_numpy(ep.query_targets),
            )


def episode_accuracy(emb: torch.Tensor, y: np.ndarray, way: int, shot: int, query: int, n: int) -> np.ndarray:
    """Per-episode accuracy of the nearest-prototype classifier on ``n`` fixed test episodes (vectorised over
    episodes)."""
    from paperzoo.data import EpisodeSampler

    eps = list(EpisodeSampler(y, way, shot, query, n, TEST_EPISODE_SEED))
    sup = torch.from_numpy(np.stack([e.support_idx for e in eps]))
    qry = torch.from_numpy(np.stack([e.query_idx for e in eps]))
    protos = emb[sup].view(n, way, shot, -1).mean(2)  # (n, way, d)
    q = emb[qry]  # (n, way * query, d)
    d2 = (q[:, :, None, :] - protos[:, None, :, :]).pow(2).sum(-1)
    target = torch.arange(way).repeat_interleave(query)
    return (d2.argmin(-1) == target).double().mean(1).numpy()


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    setting: str
    shot: int
    method: str
    seed: int
    cfg: Config


def run_unit(unit: Unit) -> dict[str, Any]:
    """Train one (setting, shot, losses, seed) and evaluate it on the novel-class test episodes."""
    cfg = unit.cfg
    split = load_split(unit.setting, cfg)
    seed_everything(unit.seed)
    model = make_model(unit.setting, cfg)
    steps = cfg.conv_steps if unit.setting == "conv" else cfg.head_steps
    batches = EpisodeBatches(split.x_train, split.y_train, cfg.train_way, unit.shot, cfg.train_query, steps, unit.seed)
    combo = FewShotLossCombo(TERMS[unit.method], k_shot=unit.shot)

    def compute_loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        xs, ys, xq, yq = batch
        z = m(torch.cat([xs, xq]))
        return combo(z[: len(xs)], ys, z[len(xs) :], yq)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = fit(
        model, None, batches, opt, TrainConfig(epochs=1, seed=unit.seed, progress=False), compute_loss=compute_loss
    )
    model.eval()
    with torch.no_grad():
        emb = torch.cat([model(split.x_test[i : i + 1024]) for i in range(0, len(split.x_test), 1024)])
    acc = episode_accuracy(emb.double(), split.y_test, cfg.test_way, unit.shot, cfg.test_query, cfg.test_episodes)
    tail = history.losses[-max(1, len(history.losses) // 10) :]
    return {
        "acc": float(acc.mean()),
        "ci95": float(1.96 * acc.std() / np.sqrt(acc.size)),
        "final_loss": float(np.mean(tail)),
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
    """Run the reproduction over ``seeds``; write the result and ``plot.png`` under
    ``out_dir/37-susana-proto-triplet-icnn-losses/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if rep.smoke else FULL
    splits = {s: load_split(s, cfg) for s in SETTINGS}  # extracts and caches the features once, here
    units = [
        Unit(setting, shot, method, seed, cfg)
        for seed in rep.seeds
        for setting in SETTINGS
        for shot in SHOTS
        for method in METHODS
    ]
    outputs = rep.map(run_unit, units)
    table = Table([*METRICS, *CI_METRICS], METHODS, baselines=[CROSS])
    rows: dict[tuple[str, int], dict[str, float]] = {}
    final_loss: dict[str, dict[str, float]] = {}
    for unit, out in zip(units, outputs):
        name = f"{unit.setting} {unit.shot}-shot"
        row = rows.setdefault((unit.method, unit.seed), {})
        row[name] = 100.0 * out["acc"]
        row[f"{name} CI95"] = 100.0 * out["ci95"]
        final_loss.setdefault(f"{name} seed {unit.seed}", {})[unit.method] = out["final_loss"]
    for (method, seed), values in rows.items():
        table.add(method, seed, values)
    claims = [Claim.greater(table, m, CROSS, metric) for metric in METRICS for m in (ICNN, PT, BOTH)]
    gains = {
        metric: {m: table.mean(m, metric) - table.mean(CROSS, metric) for m in (PT, ICNN, BOTH)} for metric in METRICS
    }
    c = cfg
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30, base classes = the 20 not in {list(TEST_CLASSES)}, novel = those 10. conv: "
            f"{c.conv_per_class} images/class, ConvNet(width {c.conv_width}) 64-d, {c.conv_steps} episodes; effnet: "
            f"{c.effnet_per_class} images/class, frozen EfficientNet-Lite0 ({c.effnet_px} px) + head 1280-256-64, "
            f"{c.head_steps} episodes. Training episodes {c.train_way}-way K-shot {c.train_query} queries, Adam 1e-3; "
            f"test {c.test_way}-way K-shot {c.test_query} queries, {c.test_episodes} fixed episodes, nearest "
            "prototype (squared Euclidean). Accuracy in %, CI95 = 1.96 std / sqrt(episodes) per run. Proto-Triplet "
            "margin 0.5, ICNN k = 4, ipc = shot + queries; terms averaged"
        ),
        scale_note=(
            "28x28 grayscale union of three MNIST-style sets and a 0.05M-parameter ConvNet or a small head on "
            "frozen features, a few hundred training episodes, instead of miniImageNet/CUB with Conv4/ResNet-12 "
            "trained for 200 x 100 episodes; only the ordering of the losses is comparable"
        ),
        notes=(
            f"Claims are paired over {len(rep.seeds)} seeds (95% t-interval); per-run episode CIs are in the CI95 "
            "columns. The paper's headline combination is unconfirmed; all three combinations are claimed vs cross."
        ),
        highlight=(ICNN, CROSS, "conv 5-shot"),
        extra={
            "mean_gain_vs_cross_points": gains,
            "final_train_loss": final_loss,
            "sizes": {
                s: {"train": len(sp.y_train), "test": len(sp.y_test), "input": sp.source} for s, sp in splits.items()
            },
        },
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(2, width=6.0, height=4.5)
    for ax, setting in zip(axes, SETTINGS):
        names = [f"{setting} {k}-shot" for k in SHOTS]
        lo = min(min(result.table.values(m, n)) for m in result.table.methods for n in names)
        plots.grouped_bars(
            ax,
            result.table,
            names,
            labels=[n.split(" ", 1)[1] for n in names],
            ylim=(max(0.0, lo - 10.0), 100.0),
            title=f"{setting}: 5-way accuracy (%) on 10 novel classes",
        )
    axes[0].legend(fontsize=8, loc="upper left")
    return plots.finish(fig, result, "Proto-Triplet / ICNN losses vs ProtoNet cross-entropy")
