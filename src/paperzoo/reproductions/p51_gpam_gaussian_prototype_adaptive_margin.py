"""Reproduction of paper 51, GPAM: Gaussian prototypes and an adaptive margin for few-shot open relation
extraction (Guo et al., arXiv 2410.20320, 2024), scaled down and moved from text to images.

The paper evaluates few-shot relation extraction with "none-of-the-above" (NOTA) queries on FewRel with a BERT
encoder. No text encoder ships offline here, so the protocol runs on image classes instead: few-shot open-set
episodes on classes never seen in training, with NOTA queries from other unseen classes.

* data: the 30-class union of Fashion-MNIST, MNIST and Animal-MNIST (:func:`paperzoo.data.load_union30`); the
  10 test classes are every third class (2, 5, ..., 29), the 20 others are the base (training) classes;
* two settings, same classes, split, episodes, methods and metrics, reported as one row group each:

  - **scratch**: raw 28 x 28 images, a small ConvNet (:class:`paperzoo.models.ConvNet`, width 16, 64-d embedding)
    trained from a random initialisation on the base-class episodes;
  - **effnet**: frozen ImageNet EfficientNet-Lite0 features (64 px, cached on disk, extracted once in the parent
    process) with a trainable head 1280-256-64, standing in for the paper's pretrained BERT;

* episodes (:class:`paperzoo.data.nota_episodes.NOTAEpisodeSampler`): 5-way K-shot (K = 1, 5) with the queries
  of 2 further classes as NOTA (2/7 = 29 % of the queries, close to FewRel's 30 % NOTA setting); training episodes from
  the base classes (5 queries per class), 600 fixed test episodes from the 10 novel classes (15 queries per
  class: 75 known and 30 NOTA queries);
* baseline: a Prototypical Network (squared Euclidean, cross-entropy on the known queries) with NOTA by one
  global distance threshold on the nearest-prototype distance, tuned to maximise the (N+1)-way accuracy on 200
  base-class NOTA episodes after training;
* GPAM (:class:`paperzoo.losses.GPAMLoss`): Gaussian prototypes, learned adaptive boundary, NOTA logit and
  semi-factual views (rho 0.15, 2 views), trained on the same episodes with their NOTA queries; prediction by
  the boundaries (NOTA iff outside every class's radius); and the same without semi-factual views (ablation).

Metrics per test episode, averaged over the 600 episodes (with their 95 % interval ``1.96 std / sqrt(600)`` per
run): accuracy on the known-class queries ((N+1)-way: a rejected known query is wrong), NOTA F1 (NOTA as the
positive class), NOTA AUROC of the method's NOTA score, and overall (N+1)-way accuracy (the FewRel NOTA metric).
Claims are paired over seeds and stated per setting. Training is one :func:`paperzoo.engine.fit` call per run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn

from paperzoo.data.nota_episodes import NOTA, NOTAEpisodeSampler
from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, plots, seed_everything, start
from paperzoo.losses import GPAMLoss
from paperzoo.models import ConvNet

PAPER = 51
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

PROTO, GPAM, NOSF = "ProtoNet + threshold", "GPAM", "GPAM w/o semi-factual"
METHODS = (PROTO, GPAM, NOSF)
SETTINGS = ("scratch", "effnet")
SHOTS = (1, 5)
BASE_METRICS = ("known acc", "NOTA F1", "NOTA AUROC", "overall acc")
METRICS = [f"{m} {k}-shot" for k in SHOTS for m in BASE_METRICS]
CI_METRICS = [f"{m} CI95" for m in METRICS]
TEST_CLASSES = tuple(range(2, 30, 3))
TEST_EPISODE_SEED = 12345
VAL_EPISODE_SEED = 777
WAY, NOTA_WAY = 5, 2


def row(method: str, setting: str) -> str:
    """The table row of ``method`` in ``setting``, e.g. ``"GPAM (scratch)"``."""
    return f"{method} ({setting})"


ROWS = tuple(row(m, s) for s in SETTINGS for m in METHODS)


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    per_class: int  # images per class embedded by EfficientNet (effnet)
    px: int
    steps: int  # training episodes (effnet)
    scratch_per_class: int  # raw images per class (scratch)
    scratch_width: int  # ConvNet width (scratch)
    scratch_steps: int  # training episodes (scratch)
    train_query: int
    test_query: int
    test_episodes: int
    val_episodes: int


FULL = Config(
    per_class=100,
    px=64,
    steps=300,
    scratch_per_class=200,
    scratch_width=16,
    scratch_steps=300,
    train_query=5,
    test_query=15,
    test_episodes=600,
    val_episodes=200,
)
SMOKE = Config(
    per_class=25,
    px=32,
    steps=10,
    scratch_per_class=25,
    scratch_width=4,
    scratch_steps=4,
    train_query=3,
    test_query=5,
    test_episodes=40,
    val_episodes=20,
)


# --------------------------------------------------------------------------- data
@dataclass
class Split:
    x_train: torch.Tensor
    y_train: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray


@lru_cache(maxsize=4)
def load_split(cfg: Config, setting: str = "effnet") -> Split:
    """Base / novel split of the union: raw 28 x 28 images (``scratch``) or their cached EfficientNet-Lite0
    features (``effnet``)."""
    from paperzoo.data import load_union30

    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if setting == "scratch":
        data = load_union30(max_per_class=cfg.scratch_per_class, seed=0)
        x_np = data.x
    else:
        from paperzoo.models.pretrained import efficientnet_lite0_features

        data = load_union30(max_per_class=cfg.per_class, seed=0)
        x_np = efficientnet_lite0_features(data.x, size=cfg.px, cache_key=f"p51-union30-{cfg.per_class}")
    y = np.asarray(data.y)
    test = np.isin(y, TEST_CLASSES)
    x = torch.from_numpy(np.ascontiguousarray(x_np))
    return Split(x[~test], y[~test], x[test], y[test])


class EpisodeBatches:
    """Training episodes as ``(support x, support labels, query x, query labels)``; NOTA queries labelled -1."""

    def __init__(self, x: torch.Tensor, y: np.ndarray, shot: int, query: int, n: int, seed: int) -> None:
        self.x = x
        self.sampler = NOTAEpisodeSampler(y, WAY, shot, query, NOTA_WAY, n, seed)

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


def episode_metrics(pred: np.ndarray, score: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-episode metrics of predictions ``pred`` (E, Q) in {-1, 0..N-1}, NOTA scores ``score`` (E, Q) (higher =
    more NOTA) and targets (E, Q) with -1 = NOTA. Vectorised over episodes."""
    is_nota, said_nota = target == NOTA, pred == NOTA
    known = ~is_nota
    tp = (is_nota & said_nota).sum(1)
    fp = (known & said_nota).sum(1)
    fn = (is_nota & ~said_nota).sum(1)
    ranks = rankdata(score, axis=1)  # average ranks on ties
    n_pos, n_neg = is_nota.sum(1), known.sum(1)
    auroc = ((ranks * is_nota).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return {
        "known acc": ((pred == target) & known).sum(1) / n_neg,
        "NOTA F1": 2 * tp / np.maximum(2 * tp + fp + fn, 1),
        "NOTA AUROC": auroc,
        "overall acc": (pred == target).mean(1),
    }


def _episodes(y: np.ndarray, shot: int, query: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
    eps = list(NOTAEpisodeSampler(y, WAY, shot, query, NOTA_WAY, n, seed))
    return (
        np.stack([e.support_idx for e in eps]),
        np.stack([e.query_idx for e in eps]),
        np.stack([e.query_targets for e in eps]),
    )


def protonet_min_distance(emb: torch.Tensor, sup: np.ndarray, qry: np.ndarray, shot: int) -> tuple[np.ndarray, ...]:
    """(nearest prototype (E, Q), its squared Euclidean distance (E, Q)), vectorised over episodes."""
    e = sup.shape[0]
    protos = emb[torch.from_numpy(sup)].view(e, WAY, shot, -1).mean(2)
    d2 = torch.cdist(emb[torch.from_numpy(qry)], protos).pow(2)
    dmin, arg = d2.min(-1)
    return arg.numpy(), dmin.numpy()


def best_threshold(arg: np.ndarray, dmin: np.ndarray, target: np.ndarray) -> float:
    """The global NOTA threshold on the nearest-prototype distance that maximises (N+1)-way accuracy."""
    cands = np.quantile(dmin, np.linspace(0.0, 1.0, 201))
    cands = np.r_[cands, np.inf]
    accs = [np.mean(np.where(dmin >= t, NOTA, arg) == target) for t in cands]
    return float(cands[int(np.argmax(accs))])


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    shot: int
    method: str
    seed: int
    cfg: Config
    setting: str = "effnet"


class _Net(nn.Module):
    """The encoder of a setting (a from-scratch ConvNet, or a head on frozen features) and the GPAM parameters."""

    def __init__(self, gpam: GPAMLoss | None, setting: str = "effnet", width: int = 16) -> None:
        super().__init__()
        if setting == "scratch":
            self.head: nn.Module = ConvNet(1, width, 64)
        else:
            self.head = nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 64))
        self.gpam = gpam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def embed(self, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Embeddings of ``x`` in chunks (eval mode, no grad expected)."""
        return torch.cat([self(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def run_unit(unit: Unit) -> dict[str, Any]:
    """Train one (setting, shot, method, seed) on base-class episodes and evaluate it on the novel-class NOTA
    episodes."""
    cfg, shot, scratch = unit.cfg, unit.shot, unit.setting == "scratch"
    split = load_split(cfg, unit.setting)
    seed_everything(unit.seed)
    gpam = None if unit.method == PROTO else GPAMLoss(64, n_views=0 if unit.method == NOSF else 2, k_shot=shot)
    net = _Net(gpam, unit.setting, cfg.scratch_width)
    steps = cfg.scratch_steps if scratch else cfg.steps
    batches = EpisodeBatches(split.x_train, split.y_train, shot, cfg.train_query, steps, unit.seed)

    def compute_loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        xs, ys, xq, yq = batch
        z = m(torch.cat([xs, xq]))
        zs, zq = z[: len(xs)], z[len(xs) :]
        if m.gpam is not None:
            return m.gpam(zs, ys, zq, yq)
        known = yq != NOTA
        protos = zs.view(WAY, shot, -1).mean(1)
        return F.cross_entropy(-torch.cdist(zq[known], protos).pow(2), yq[known])

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    history = fit(
        net, None, batches, opt, TrainConfig(epochs=1, seed=unit.seed, progress=False), compute_loss=compute_loss
    )
    net.eval()
    with torch.no_grad():
        emb_test = net.embed(split.x_test)
        sup, qry, target = _episodes(split.y_test, shot, cfg.test_query, cfg.test_episodes, TEST_EPISODE_SEED)
        extra: dict[str, float] = {}
        if gpam is None:
            emb_train = net.embed(split.x_train)
            vs, vq, vt = _episodes(split.y_train, shot, cfg.test_query, cfg.val_episodes, VAL_EPISODE_SEED)
            threshold = best_threshold(*protonet_min_distance(emb_train, vs, vq, shot), vt)
            arg, score = protonet_min_distance(emb_test, sup, qry, shot)
            pred = np.where(score >= threshold, NOTA, arg)
            extra["threshold"] = threshold
        else:
            support_labels = torch.arange(WAY).repeat_interleave(shot)
            preds, scores = [], []
            for s, q in zip(sup, qry):  # one episode at a time: each has its own Gaussians and radii
                zs, zq = emb_test[torch.from_numpy(s)].double(), emb_test[torch.from_numpy(q)].double()
                preds.append(gpam.double().predict(zs, support_labels, zq).numpy())
                scores.append(gpam.scores(zs, support_labels, zq).numpy())
            pred, score = np.stack(preds), np.stack(scores)
            extra["tau"] = float(gpam.tau)
    per_episode = episode_metrics(pred, score, target)
    tail = history.losses[-max(1, len(history.losses) // 10) :]
    out: dict[str, Any] = {k: float(v.mean()) for k, v in per_episode.items()}
    out.update({f"{k} CI95": float(1.96 * v.std() / np.sqrt(v.size)) for k, v in per_episode.items()})
    out["final_loss"] = float(np.mean(tail))
    out["nota_predicted_rate"] = float(np.mean(pred == NOTA))
    out.update(extra)
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
    """Run the reproduction over ``seeds``; write the result and ``plot.png`` under
    ``out_dir/51-gpam-gaussian-prototype-adaptive-margin/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if rep.smoke else FULL
    splits = {s: load_split(cfg, s) for s in SETTINGS}  # loads the images and caches the features once, here
    units = [
        Unit(shot, method, seed, cfg, setting)
        for seed in rep.seeds
        for setting in SETTINGS
        for shot in SHOTS
        for method in METHODS
    ]
    outputs = rep.map(run_unit, units)
    table = Table([*METRICS, *CI_METRICS], ROWS, baselines=[row(PROTO, s) for s in SETTINGS])
    rows: dict[tuple[str, int], dict[str, float]] = {}
    details: dict[str, dict[str, dict[str, float]]] = {}
    for unit, out in zip(units, outputs):
        name = row(unit.method, unit.setting)
        values = rows.setdefault((name, unit.seed), {})
        for m in BASE_METRICS:
            values[f"{m} {unit.shot}-shot"] = 100.0 * out[m]
            values[f"{m} {unit.shot}-shot CI95"] = 100.0 * out[f"{m} CI95"]
        keep = ("final_loss", "nota_predicted_rate", "threshold", "tau")
        details.setdefault(f"{unit.setting} {unit.shot}-shot seed {unit.seed}", {})[unit.method] = {
            k: out[k] for k in keep if k in out
        }
    for (name, seed), values in rows.items():
        table.add(name, seed, values)
    claims = []
    for s in SETTINGS:
        claims += [
            Claim.greater(table, row(GPAM, s), row(PROTO, s), f"{m} {k}-shot")
            for k in SHOTS
            for m in ("overall acc", "NOTA F1")
        ]
        claims += [Claim.greater(table, row(GPAM, s), row(NOSF, s), f"overall acc {k}-shot") for k in SHOTS]
    c = cfg
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30 images instead of FewRel sentences: base classes = the 20 not in {list(TEST_CLASSES)}, novel = "
            f"those 10. Two settings (one row group each): scratch = raw 28x28 images, {c.scratch_per_class} "
            f"images/class, ConvNet (width {c.scratch_width}, 64-d) trained from scratch for {c.scratch_steps} "
            f"episodes; effnet = {c.per_class} images/class, frozen EfficientNet-Lite0 ({c.px} px) + trainable head "
            f"1280-256-64, {c.steps} episodes; Adam 1e-3 in both. Episodes {WAY}-way K-shot with the queries of "
            f"{NOTA_WAY} other classes as NOTA ({NOTA_WAY}/{WAY + NOTA_WAY} of the queries); training "
            f"{c.train_query} queries/class on base classes, test {c.test_query} queries/class on {c.test_episodes} "
            "fixed novel-class episodes (the same in both settings). ProtoNet: NOTA by one distance threshold tuned on "
            f"{c.val_episodes} base-class episodes. GPAM: Gaussian prototypes (shrinkage 0.5), adaptive radius MLP, "
            "margin 1, beta 1, semi-factual feature masking rho 0.15 x 2 views. Metrics in %, per-episode means; "
            "CI95 = 1.96 std / sqrt(episodes) per run"
        ),
        scale_note=(
            "image classes through a small ConvNet trained from scratch or a frozen ImageNet encoder with a small "
            "head, a few hundred episodes, instead of FewRel relations with a fine-tuned BERT; the GPAM formulas are "
            "a design from the abstract, so only the direction (GPAM vs ProtoNet + threshold) is comparable"
        ),
        notes=(
            f"Claims are paired over {len(rep.seeds)} seeds (95% t-interval) and stated per setting; per-run "
            "episode CIs are in the CI95 columns. Known acc counts a rejected known query as wrong. The scratch "
            "setting was added to the recorded effnet one with its sizes fixed before its full run."
        ),
        highlight=(row(GPAM, "effnet"), row(PROTO, "effnet"), "overall acc 5-shot"),
        extra={
            "per_run": details,
            "sizes": {s: {"train": len(split.y_train), "test": len(split.y_test)} for s, split in splits.items()},
        },
    )
    return result.write(out_dir, figure=_figure)


# --------------------------------------------------------------------------- figure
def _sub_table(table: Table, setting: str) -> Table:
    """The rows of one setting, named by method only."""
    sub = Table(table.metrics, METHODS, baselines=[PROTO])
    for m in METHODS:
        name = row(m, setting)
        for i, seed in enumerate(table.seeds(name)):
            sub.add(m, seed, {k: table.values(name, k)[i] for k in table.metrics})
    return sub


def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(len(SETTINGS) * len(SHOTS), width=4.2, height=4.5)
    panels = [(s, k) for s in SETTINGS for k in SHOTS]
    for ax, (setting, k) in zip(axes, panels):
        sub = _sub_table(result.table, setting)
        names = [f"{m} {k}-shot" for m in BASE_METRICS]
        lo = min(min(sub.values(m, n)) for m in sub.methods for n in names)
        plots.grouped_bars(
            ax,
            sub,
            names,
            labels=[m.replace("NOTA ", "NOTA\n") for m in BASE_METRICS],
            ylim=(max(0.0, lo - 10.0), 100.0),
            title=f"{setting}: {k}-shot {WAY}-way + NOTA (%)",
        )
    axes[0].legend(fontsize=8, loc="upper right")
    return plots.finish(fig, result, "GPAM vs ProtoNet + distance threshold (open-set episodes on 10 novel classes)")
