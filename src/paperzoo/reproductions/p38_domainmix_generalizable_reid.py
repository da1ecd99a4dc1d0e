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

Two settings, the same domains, pools, test images and protocol, one row group each:

* **effnet**: frozen ImageNet EfficientNet-Lite0 (64 px, cached once on disk) with a trainable head
  1280-256-BN-ReLU-128 (the triplet feature);
* **scratch**: a small :class:`paperzoo.models.ConvNet` (width 16, 128-d output) trained from scratch
  on the raw 28x28 images, with the same sizes and schedule, and Adam lr 1e-3 instead of the
  fine-tuning rate 3.5e-4.

Both put a BN neck (bias frozen at 0) and one bias-free identity classifier over source + pseudo
classes on the 128-d feature. Training alternates rounds: pseudo-label the target with the Jaccard
distance + reliable DBSCAN (:mod:`paperzoo.training.domainmix`), re-initialise the pseudo-class
classifier rows with the normalised cluster means, then ``epochs_per_round`` epochs of
:class:`~paperzoo.training.domainmix.DomainMixObjective` through :func:`paperzoo.engine.fit`
(warm-up rounds: ``10 L_id + L_tri``; later rounds: ``L_id + L_tri (+ L_bal)``).

Methods per setting: the network untouched (reference row: pretrained features, or the randomly
initialised ConvNet), source only, target-only clustering (pseudo-labels on the target alone),
DomainMix without the balance loss, DomainMix, and an oracle that uses the target's true labels;
the effnet group adds two exploratory rows at DBSCAN eps 0.5. Units: one (setting, method, seed)
training run each; each seed draws its own subsets of fixed pools.
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
from paperzoo.models import ConvNet
from paperzoo.training.domainmix import DomainMixObjective, jaccard_distance, reliable_dbscan_pseudo_labels

PAPER = 38
DATA: tuple[str, ...] = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

EFFNET, SCRATCH = "effnet", "scratch"
SETTINGS = (EFFNET, SCRATCH)
PRETRAINED = "no training"  # the reference row: the pretrained features / the random-init ConvNet untouched
SOURCE = "source only"
TARGET = "target-only clustering"
NO_BAL = "DomainMix w/o balance loss"
DOMAINMIX = "DomainMix"
ORACLE = "oracle target labels"
#: exploratory rows, not claimed on: DBSCAN radius 0.5, picked by looking at the pseudo-labels'
#: agreement with the target's true labels (at the paper's 0.6 our target collapses into one cluster)
TARGET_05 = "target-only clustering (eps 0.5*)"
DOMAINMIX_05 = "DomainMix (eps 0.5*)"
BASE_METHODS = {
    EFFNET: (PRETRAINED, SOURCE, TARGET, NO_BAL, DOMAINMIX, ORACLE, TARGET_05, DOMAINMIX_05),
    SCRATCH: (PRETRAINED, SOURCE, TARGET, NO_BAL, DOMAINMIX, ORACLE),  # eps 0.5 was picked on effnet features
}
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


def row(method: str, setting: str) -> str:
    """The table row of ``method`` in ``setting``, e.g. ``"DomainMix (scratch)"``."""
    if method == PRETRAINED:
        method = "pretrained features, no training" if setting == EFFNET else "random init, no training"
    return f"{method} ({setting})"


METHODS = tuple(row(m, st) for st in SETTINGS for m in BASE_METHODS[st])
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
    width: int = 0  # ConvNet width (scratch setting only)


FULL = Config(src_pool=200, src_per_class=100, tgt_pool=120, tgt_per_class=60, test_per_class=60, query_per_class=10,
              rounds=6, warmup_rounds=2, epochs_per_round=2)  # fmt: skip
SMOKE = Config(src_pool=12, src_per_class=8, tgt_pool=12, tgt_per_class=10, test_per_class=8, query_per_class=2,
               rounds=2, warmup_rounds=1, epochs_per_round=1, k1=6, k2=2)  # fmt: skip
#: scratch: the same pools, sizes, schedule and test images; a from-scratch learning rate (the paper's
#: 3.5e-4 is a fine-tuning rate) and a ConvNet of width 16 (0.04M parameters)
FULL_SCRATCH = replace(FULL, lr=1e-3, width=16)
SMOKE_SCRATCH = replace(SMOKE, src_per_class=4, tgt_per_class=8, lr=1e-3, width=2)
CONFIGS = {False: {EFFNET: FULL, SCRATCH: FULL_SCRATCH}, True: {EFFNET: SMOKE, SCRATCH: SMOKE_SCRATCH}}


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


def build_pools(cfg: Config, setting: str = EFFNET) -> Pools:
    """Fixed pools (drawn with seed 0; the draw depends only on the pool sizes, so both settings see
    the same images): cached EfficientNet-Lite0 features (effnet) or the raw images (scratch)."""
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
        if setting == SCRATCH:
            feats = np.asarray(sub.x, np.float32).reshape(-1, 1, 28, 28)
        else:
            feats = efficientnet_lite0_features(sub.x, size=cfg.px, cache_key=f"p38-{name}-{k}-{cfg.px}")
        out += [np.asarray(feats, np.float32), np.asarray(sub.y, np.int64)]
    return Pools(*out)


@lru_cache(maxsize=2)
def _pools(cfg: Config, setting: str) -> Pools:
    return build_pools(cfg, setting)


# --------------------------------------------------------------------------- model and evaluation
class ReidHead(nn.Module):
    """Re-ID network returning ``(feat, feat_bn, logits)``: a body to the ``dim``-d feature (a head
    ``in_dim-hidden-BN-ReLU-dim`` on frozen features, or ``body`` itself, e.g. a ConvNet on images),
    a BN neck and a bias-free classifier."""

    def __init__(
        self, in_dim: int, n_classes: int, hidden: int = 256, dim: int = 128, body: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.body = body or nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
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
Unit = tuple[str, str, int, Config]


def make_model(setting: str, cfg: Config, in_dim: int, n_classes: int) -> ReidHead:
    """The effnet head, or the from-scratch ConvNet body, with the BN neck and classifier."""
    body = ConvNet(1, cfg.width, 128) if setting == SCRATCH else None
    return ReidHead(in_dim, n_classes, body=body)


def train_unit(unit: Unit) -> dict[str, Any]:
    """One (setting, method, seed): test Rank-1 / mAP and per-round clustering diagnostics."""
    setting, method, seed, cfg = unit
    pools = _pools(cfg, setting)
    test_x, test_y = torch.from_numpy(pools.test_f), torch.from_numpy(pools.test_y)
    if method == PRETRAINED:
        if setting == EFFNET:  # the pretrained features themselves
            return {"metrics": evaluate(test_x, test_y, cfg.query_per_class), "rounds": []}
        seed_everything(seed)  # the randomly initialised ConvNet's BN-neck feature
        model = make_model(setting, cfg, 0, 10)
        return {"metrics": evaluate(model.embed(test_x), test_y, cfg.query_per_class), "rounds": []}
    use_src, tgt_labels, adversarial, eps = SPEC[method]
    eps = cfg.eps if eps is None else eps
    rng = np.random.default_rng([seed, 38])
    s_idx, t_idx = _per_class(pools.src_y, cfg.src_per_class, rng), _per_class(pools.tgt_y, cfg.tgt_per_class, rng)
    sx, sy = torch.from_numpy(pools.src_f[s_idx]), torch.from_numpy(pools.src_y[s_idx])
    tx, ty_true = torch.from_numpy(pools.tgt_f[t_idx]), pools.tgt_y[t_idx]
    n_src = 10 if use_src else 0
    seed_everything(seed)
    model = make_model(setting, cfg, sx.shape[1], n_src + tx.shape[0])
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
    cfgs = CONFIGS[rep.smoke]
    for st in SETTINGS:
        _pools(cfgs[st], st)  # extract (or read) the cached features once, in the parent
    units: list[Unit] = [(st, m, s, cfgs[st]) for s in rep.seeds for st in SETTINGS for m in BASE_METHODS[st]]
    try:
        outputs = rep.map(train_unit, units)
    finally:
        _pools.cache_clear()
    table = Table(METRICS, METHODS, baselines=[row(m, st) for st in SETTINGS for m in (SOURCE, TARGET)])
    rounds: dict[str, list[Any]] = {
        row(m, st): [] for st in SETTINGS for m in BASE_METHODS[st] if m in SPEC and SPEC[m][1] == "pseudo"
    }
    for (st, m, s, _), out in zip(units, outputs):
        table.add(row(m, st), s, out["metrics"])
        if row(m, st) in rounds:
            rounds[row(m, st)].append(out["rounds"])
    claims = []
    for st in SETTINGS:
        dm, src, tgt, nob, orc = (row(m, st) for m in (DOMAINMIX, SOURCE, TARGET, NO_BAL, ORACLE))
        claims += [
            Claim.greater(table, dm, src, MAP, statement=f"{st}: unseen-domain mAP: {dm} (labelled source + pseudo-labelled target + balance) "
                    f"beats {src} (the paper's gain from unlabelled real data)"),
            Claim.greater(table, dm, tgt, MAP, statement=f"{st}: unseen-domain mAP: {dm} beats {tgt} (pseudo-labels on the target alone)"),
            Claim.greater(table, dm, nob, MAP, statement=f"{st}: unseen-domain mAP: the domain balance loss helps ({dm} > {nob})"),
            Claim.greater(table, orc, src, MAP, statement=f"{st}: proxy sanity check: {orc} beat {src} on unseen-domain mAP"),
        ]  # fmt: skip

    def fmt(d: dict[str, float]) -> str:
        return f"{d['clusters']}/{d['kept']:.2f}/{d['ari']:.2f}"

    notes = (
        "Target pseudo-labels, first -> last round per seed (clusters / kept fraction / ARI of the kept ones vs "
        "the true digits): "
        + "; ".join(f"{m}: " + ", ".join(f"{fmt(r[0])} -> {fmt(r[-1])}" for r in v) for m, v in rounds.items())
        + f". Rows marked * (effnet only) use DBSCAN eps {EPS_EXPLORATORY:g}, picked by looking at the pseudo-labels' "
        "agreement with the target's true labels on the effnet features (at the paper's 0.6 the target collapses "
        "into one or two clusters): exploratory, not claimed on. The 'no training' rows are references, not "
        "methods: the pretrained features untouched (effnet), the randomly initialised ConvNet (scratch)."
    )
    e, c = cfgs[EFFNET], cfgs[SCRATCH]
    result = rep.result(
        table,
        claims,
        setting=(
            f"labelled source = Fashion-MNIST, unlabelled target = MNIST (labels unused), unseen test = Animal-MNIST "
            f"({e.test_per_class}/class, {e.query_per_class} queries/class vs the rest), the same fixed pools "
            f"({e.src_pool} / {e.tgt_pool} per class) and test images in both settings. effnet: "
            f"{e.src_per_class} source + {e.tgt_per_class} target images/class per seed, frozen EfficientNet-Lite0 "
            f"({e.px} px) + head 1280-256-128, Adam lr {e.lr:g}. scratch: {c.src_per_class} source + "
            f"{c.tgt_per_class} target images/class per seed, ConvNet (width {c.width}, 128-d) from scratch on raw "
            f"28x28 images, Adam lr {c.lr:g}. Both: BN neck, {e.rounds} rounds x {e.epochs_per_round} epochs "
            f"({e.warmup_rounds} warm-up rounds 10 L_id + L_tri), Jaccard k1={e.k1}, k2={e.k2}, reliable DBSCAN "
            f"eps={e.eps}, batch {e.batch_size}, discriminator 128-64-32-2 stepped every 10th iteration"
        ),
        scale_note=(
            "image domains of the 30-class union stand in for person re-ID data sets (no re-ID data offline): "
            "classes play identities; 10 source + 10 target + 10 test classes instead of thousands of identities; "
            "frozen EfficientNet-Lite0 features + a small head, or a 0.04M-parameter ConvNet from scratch, instead "
            "of fine-tuning an ImageNet ResNet-50"
        ),
        notes=notes,
        highlight=(row(DOMAINMIX, EFFNET), row(SOURCE, EFFNET), MAP),
        extra={"rounds": rounds},
    )
    return result.write(out_dir, figure=make_figure)


def _sub_table(table: Table, setting: str) -> Table:
    """The rows of one setting, named without the setting."""
    rows = [row(m, setting) for m in BASE_METHODS[setting] if row(m, setting) in table.methods]
    short = {r: r.removesuffix(f" ({setting})") for r in rows}
    sub = Table(table.metrics, list(short.values()), baselines=[short[r] for r in table.baselines if r in short])
    for r in rows:
        for i, s in enumerate(table.seeds(r)):
            sub.add(short[r], s, {k: table.values(r, k)[i] for k in table.metrics})
    return sub


def make_figure(result: Result) -> Any:
    """Rank-1 / mAP per method in each setting, and the pseudo-label ARI per round."""
    fig, axes = subplots(3, width=5.0, height=4.8, width_ratios=[1.3, 1.3, 1.0])
    for ax, st in zip(axes[:2], SETTINGS):
        title = "frozen EfficientNet-Lite0 + head" if st == EFFNET else "ConvNet from scratch"
        grouped_bars(ax, _sub_table(result.table, st), METRICS, ylabel="unseen-domain score (mean ± std over seeds)",
                     ylim=(0.0, 1.0), title=f"Animal-MNIST re-ID: {title}")  # fmt: skip
        ax.legend(fontsize=6)
    rounds = result.extra.get("rounds", {})
    for st, style in zip(SETTINGS, ("-", "--")):
        for i, m in enumerate(BASE_METHODS[st]):  # the bars' colours
            for j, run_ in enumerate(rounds.get(row(m, st), [])):
                label = row(m, st) if j == 0 else None
                axes[2].plot([d["ari"] for d in run_], style, color=f"C{i}", alpha=0.7, label=label)
    axes[2].set_xlabel("round")
    axes[2].set_ylabel("ARI of kept pseudo-labels vs true digits")
    axes[2].set_title("target pseudo-label quality (solid effnet, dashed scratch)")
    axes[2].legend(fontsize=6)
    return finish(fig, result, "DomainMix vs source-only and target-only clustering")
