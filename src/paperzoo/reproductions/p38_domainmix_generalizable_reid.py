"""Reproduction of paper 38, "DomainMix: Learning Generalizable Person Re-Identification Without
Human Annotations" (Wang, Liao, Zhao, Cui & Shao, BMVC 2021), scaled down (this project's
reproduction, docs/papers/38-domainmix-generalizable-reid.md).

No person re-identification data ships offline, so three image domains of the 30-class union
stand in for the paper's three data sets (identities = classes):

* labelled source (the paper's synthetic RandPerson): Fashion-MNIST, 10 classes with labels;
* unlabelled target (the paper's unlabelled real MSMT17): MNIST, its labels never used
  (except by the oracle row);
* unseen test domain (the paper's Market-1501 etc.): Animal-MNIST, 10 classes never trained on;
  ``query_per_class`` query images per class against a gallery of the rest; Rank-1
  (:func:`paperzoo.metrics.rank1`) and mAP (cosine ranking) of the L2-normalised BN-neck feature.

Features: frozen ImageNet EfficientNet-Lite0 (64 px, cached once on disk) with a trainable head
1280-256-BN-ReLU-128 (the triplet feature) + a BN neck (bias frozen at 0) + one bias-free identity
classifier over source + pseudo classes. Training alternates rounds: pseudo-label the target with
the Jaccard distance + reliable DBSCAN (:mod:`paperzoo.training.domainmix`), re-initialise the
pseudo-class classifier rows with the normalised cluster means, then ``epochs_per_round`` epochs of
:class:`~paperzoo.training.domainmix.DomainMixObjective` through :func:`paperzoo.engine.fit`
(warm-up rounds: ``10 L_id + L_tri``; later rounds: ``L_id + L_tri (+ L_bal)``).

Methods: pretrained features untouched (reference row), source only, target-only clustering
(pseudo-labels on the target alone), DomainMix without the balance loss, DomainMix, and an oracle
that uses the target's true labels. Units: one (method, seed) training run each; each seed draws
its own subsets of fixed pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from paperzoo.metrics import ari, rank1
from paperzoo.training.domainmix import DomainMixObjective, jaccard_distance, reliable_dbscan_pseudo_labels

PAPER = 38
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

PRETRAINED = "pretrained features (no training)"
SOURCE = "source only"
TARGET = "target-only clustering"
NO_BAL = "DomainMix w/o balance loss"
DOMAINMIX = "DomainMix"
ORACLE = "oracle target labels"
#: exploratory rows, not claimed on: DBSCAN radius 0.5, picked by looking at the pseudo-labels'
#: agreement with the target's true labels (at the paper's 0.6 our target collapses into one cluster)
TARGET_05 = "target-only clustering (eps 0.5*)"
DOMAINMIX_05 = "DomainMix (eps 0.5*)"
METHODS = (PRETRAINED, SOURCE, TARGET, NO_BAL, DOMAINMIX, ORACLE, TARGET_05, DOMAINMIX_05)
EPS_EXPLORATORY = 0.5
#: method -> (uses source, target labels: None | "pseudo" | "true", adversarial, DBSCAN eps or None = config's)
SPEC = {
    SOURCE: (True, None, False, None),
    TARGET: (False, "pseudo", False, None),
    NO_BAL: (True, "pseudo", False, None),
    DOMAINMIX: (True, "pseudo", True, None),
    ORACLE: (True, "true", False, None),
    TARGET_05: (False, "pseudo", False, EPS_EXPLORATORY),
    DOMAINMIX_05: (True, "pseudo", True, EPS_EXPLORATORY),
}
R1, MAP = "Rank-1", "mAP"
METRICS = [R1, MAP]


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    src_pool: int  # per class
    src_per_class: int
    tgt_pool: int
    tgt_per_class: int
    test_per_class: int
    query_per_class: int
    rounds: int
    warmup_rounds: int
    epochs_per_round: int
    k1: int = 30
    k2: int = 6
    eps: float = 0.6
    px: int = 64
    batch_size: int = 64
    lr: float = 3.5e-4
    weight_decay: float = 5e-4


FULL = Config(src_pool=200, src_per_class=100, tgt_pool=120, tgt_per_class=60, test_per_class=60, query_per_class=10,
              rounds=6, warmup_rounds=2, epochs_per_round=2)  # fmt: skip
SMOKE = Config(src_pool=12, src_per_class=8, tgt_pool=12, tgt_per_class=10, test_per_class=8, query_per_class=2,
               rounds=2, warmup_rounds=1, epochs_per_round=1, k1=6, k2=2)  # fmt: skip


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Pools:
    src_f: np.ndarray
    src_y: np.ndarray
    tgt_f: np.ndarray
    tgt_y: np.ndarray
    test_f: np.ndarray
    test_y: np.ndarray


def _per_class(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c in np.unique(y)]))


def build_pools(cfg: Config) -> Pools:
    """Fixed pools (drawn with seed 0) and their cached EfficientNet-Lite0 features."""
    from paperzoo.data import load_animal_mnist, load_fashion_mnist, load_mnist
    from paperzoo.models.pretrained import efficientnet_lite0_features

    rng = np.random.default_rng(0)
    out = []
    for name, data, k in (
        ("fashion", load_fashion_mnist("train"), cfg.src_pool),
        ("mnist", load_mnist(), cfg.tgt_pool),
        ("animal", load_animal_mnist(), cfg.test_per_class),
    ):
        sub = data.subset(_per_class(np.asarray(data.y), k, rng))
        feats = efficientnet_lite0_features(sub.x, size=cfg.px, cache_key=f"p38-{name}-{k}-{cfg.px}")
        out += [np.asarray(feats, np.float32), np.asarray(sub.y, np.int64)]
    return Pools(*out)


@lru_cache(maxsize=1)
def _pools(cfg: Config) -> Pools:
    return build_pools(cfg)


# --------------------------------------------------------------------------- model and evaluation
class ReidHead(nn.Module):
    """Trainable head on frozen features: ``(feat, feat_bn, logits)``."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, n_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.body(x)
        bn = self.neck(feat)
        return feat, bn, self.classifier(bn)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        out = torch.nn.functional.normalize(self(x)[1], dim=1)
        self.train()
        return out


def mean_ap(query: torch.Tensor, q_y: torch.Tensor, gallery: torch.Tensor, g_y: torch.Tensor) -> float:
    """Re-ID mAP: average precision of each query's cosine ranking of the gallery, averaged."""
    q = torch.nn.functional.normalize(query.float(), dim=1)
    g = torch.nn.functional.normalize(gallery.float(), dim=1)
    order = (q @ g.T).argsort(dim=1, descending=True)
    hits = (g_y[order] == q_y[:, None]).float()
    prec = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    return float(((prec * hits).sum(1) / hits.sum(1).clamp_min(1)).mean())


def evaluate(emb: torch.Tensor, y: torch.Tensor, query_per_class: int) -> dict[str, float]:
    """Rank-1 and mAP: the first ``query_per_class`` images of each class query the rest."""
    first = torch.zeros_like(y, dtype=torch.bool)
    for c in y.unique():  # classes, not samples
        first[torch.nonzero(y == c)[:query_per_class, 0]] = True
    return {
        R1: rank1(emb[first], y[first], emb[~first], y[~first]),
        MAP: mean_ap(emb[first], y[first], emb[~first], y[~first]),
    }


# --------------------------------------------------------------------------- units
Unit = tuple[str, int, Config]


def train_unit(unit: Unit) -> dict[str, Any]:
    """One (method, seed): test Rank-1 / mAP and per-round clustering diagnostics."""
    method, seed, cfg = unit
    pools = _pools(cfg)
    test_x, test_y = torch.from_numpy(pools.test_f), torch.from_numpy(pools.test_y)
    if method == PRETRAINED:
        return {"metrics": evaluate(test_x, test_y, cfg.query_per_class), "rounds": []}
    use_src, tgt_labels, adversarial, eps = SPEC[method]
    eps = cfg.eps if eps is None else eps
    rng = np.random.default_rng([seed, 38])
    s_idx, t_idx = _per_class(pools.src_y, cfg.src_per_class, rng), _per_class(pools.tgt_y, cfg.tgt_per_class, rng)
    sx, sy = torch.from_numpy(pools.src_f[s_idx]), torch.from_numpy(pools.src_y[s_idx])
    tx, ty_true = torch.from_numpy(pools.tgt_f[t_idx]), pools.tgt_y[t_idx]
    n_src = 10 if use_src else 0
    seed_everything(seed)
    model = ReidHead(sx.shape[1], n_src + tx.shape[0])
    objective = DomainMixObjective(128, adversarial=adversarial, hidden=(64, 32))
    threshold: float | None = None
    diag: list[dict[str, float]] = []
    for r in range(cfg.rounds):
        if tgt_labels == "pseudo":
            dist = jaccard_distance(model.embed(tx).numpy(), k1=cfg.k1, k2=cfg.k2)
            pl, threshold = reliable_dbscan_pseudo_labels(dist, eps=eps, fixed_threshold=threshold)
        elif tgt_labels == "true":
            pl = ty_true
        else:
            pl = np.full(tx.shape[0], -1)
        k = int(pl.max()) + 1
        kept = pl >= 0
        if tgt_labels is not None:
            diag.append({"clusters": k, "kept": float(kept.mean()),
                         "ari": float(ari(ty_true[kept], pl[kept])) if kept.sum() > 1 else 0.0})  # fmt: skip
        if k > 0:  # classifier rows of the pseudo-classes <- normalised cluster means
            with torch.no_grad():
                emb = model.embed(tx)[torch.from_numpy(kept)]
                lab = torch.from_numpy(pl[kept])
                centres = torch.zeros(k, emb.shape[1]).index_add_(0, lab, emb)
                model.classifier.weight[n_src : n_src + k] = torch.nn.functional.normalize(centres, dim=1)
        xs, ys, ds = [], [], []
        if use_src:
            xs, ys, ds = [sx], [sy], [torch.zeros_like(sy)]
        if k > 0:
            xs.append(tx[torch.from_numpy(kept)])
            ys.append(torch.from_numpy(pl[kept]).long() + n_src)
            ds.append(torch.ones(int(kept.sum()), dtype=torch.long))
        n = sum(len(t) for t in xs)
        if n < 2:  # nothing to train on this round (BatchNorm needs two rows)
            continue
        warm = r < cfg.warmup_rounds
        objective.id_weight = 10.0 if warm else 1.0
        objective.active = not warm
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        data = TensorDataset(torch.cat(xs), torch.cat(ys), torch.cat(ds))
        loader = make_loader(data, min(cfg.batch_size, n), seed=seed + r, drop_last=True)  # no 1-row batch for BN
        fit(model, None, loader, opt, TrainConfig(epochs=cfg.epochs_per_round, seed=seed + r, progress=False),
            compute_loss=objective)  # fmt: skip
    return {"metrics": evaluate(model.embed(test_x), test_y, cfg.query_per_class), "rounds": diag}


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` and write its result files under ``out_dir``."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    _pools(cfg)  # extract (or read) the cached features once, in the parent
    units: list[Unit] = [(m, s, cfg) for s in rep.seeds for m in METHODS]
    try:
        outputs = rep.map(train_unit, units)
    finally:
        _pools.cache_clear()
    table = Table(METRICS, METHODS, baselines=[SOURCE, TARGET])
    rounds: dict[str, list[Any]] = {m: [] for m, v in SPEC.items() if v[1] == "pseudo"}
    for (m, s, _), out in zip(units, outputs):
        table.add(m, s, out["metrics"])
        if m in rounds:
            rounds[m].append(out["rounds"])
    claims = [
        replace(Claim.greater(table, DOMAINMIX, SOURCE, MAP),
                statement=f"unseen-domain mAP: {DOMAINMIX} (labelled source + pseudo-labelled target + balance) "
                f"beats {SOURCE} (the paper's gain from unlabelled real data)"),
        replace(Claim.greater(table, DOMAINMIX, TARGET, MAP),
                statement=f"unseen-domain mAP: {DOMAINMIX} beats {TARGET} (pseudo-labels on the target alone)"),
        replace(Claim.greater(table, DOMAINMIX, NO_BAL, MAP),
                statement=f"unseen-domain mAP: the domain balance loss helps ({DOMAINMIX} > {NO_BAL})"),
        replace(Claim.greater(table, ORACLE, SOURCE, MAP),
                statement=f"proxy sanity check: {ORACLE} beat {SOURCE} on unseen-domain mAP"),
    ]  # fmt: skip

    def fmt(d: dict[str, float]) -> str:
        return f"{d['clusters']}/{d['kept']:.2f}/{d['ari']:.2f}"

    notes = (
        "Target pseudo-labels, first -> last round per seed (clusters / kept fraction / ARI of the kept ones vs "
        "the true digits): "
        + "; ".join(f"{m}: " + ", ".join(f"{fmt(r[0])} -> {fmt(r[-1])}" for r in v) for m, v in rounds.items())
        + f". Rows marked * use DBSCAN eps {EPS_EXPLORATORY:g}, picked by looking at the pseudo-labels' agreement "
        "with the target's true labels (at the paper's 0.6 the target collapses into one or two clusters): "
        "exploratory, not claimed on. The untrained pretrained-feature row is a reference, not a method."
    )
    result = rep.result(
        table,
        claims,
        setting=(
            f"labelled source = Fashion-MNIST ({cfg.src_per_class}/class), unlabelled target = MNIST "
            f"({cfg.tgt_per_class}/class, labels unused), unseen test = Animal-MNIST ({cfg.test_per_class}/class, "
            f"{cfg.query_per_class} queries/class vs the rest); frozen EfficientNet-Lite0 ({cfg.px} px) + head "
            f"1280-256-128 + BN neck; {cfg.rounds} rounds x {cfg.epochs_per_round} epochs ({cfg.warmup_rounds} warm-up "
            f"rounds 10 L_id + L_tri), Jaccard k1={cfg.k1}, k2={cfg.k2}, reliable DBSCAN eps={cfg.eps}, Adam lr "
            f"{cfg.lr:g}, batch {cfg.batch_size}, discriminator step every 10th iteration"
        ),
        scale_note=(
            "image domains of the 30-class union stand in for person re-ID data sets (no re-ID data offline): "
            "classes play identities; 10 source + 10 target + 10 test classes instead of thousands of identities; "
            "frozen EfficientNet-Lite0 features + a small head instead of fine-tuning ResNet-50"
        ),
        notes=notes,
        highlight=(DOMAINMIX, SOURCE, MAP),
        extra={"rounds": rounds},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Rank-1 / mAP per method, and the pseudo-label ARI per round."""
    fig, axes = subplots(2, width=5.5, height=4.8, width_ratios=[1.6, 1.0])
    grouped_bars(
        axes[0], result.table, METRICS, ylabel="unseen-domain score (mean ± std over seeds)", title="Animal-MNIST re-ID"
    )
    axes[0].legend(fontsize=7)
    for i, (m, runs) in enumerate(result.extra.get("rounds", {}).items()):
        for j, run_ in enumerate(runs):
            axes[1].plot([d["ari"] for d in run_], color=f"C{i}", alpha=0.7, label=m if j == 0 else None)
    axes[1].set_xlabel("round")
    axes[1].set_ylabel("ARI of kept pseudo-labels vs true digits")
    axes[1].set_title("target pseudo-label quality")
    axes[1].legend(fontsize=7)
    return finish(fig, result, "DomainMix vs source-only and target-only clustering")
