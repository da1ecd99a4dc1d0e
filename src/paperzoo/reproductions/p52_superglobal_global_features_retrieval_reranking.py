"""Reproduction of paper 52, SuperGlobal (Shao et al., ICCV 2023), scaled down.

Three parts, all on classes never seen in training:

* **union30 extraction + re-ranking**: a small ConvNet trunk (a 7 x 7 post-ReLU feature map) with GeM
  pooling (learnable p), L2 normalisation and a linear "whitening" layer to a 64-d descriptor, trained
  with ArcFace (pytorch-metric-learning ``ArcFaceLoss``, the paper's training loss) on 20 of the 30
  union classes (every class c with c % 3 != 2) through :func:`paperzoo.engine.fit`. On the 10 unseen
  classes, 200 random queries retrieve among the other images; mAP over the full ranking and Recall@1
  for the learned GeM pooling and for SuperGlobal's test-time replacements (GeM+ p = 4.6, + Regional-GeM,
  + Scale-GeM over scales 0.7071 / 1 / 1.4142), each with and without SuperGlobal re-ranking
  (M = 400, K = 9, beta = 0.15, the paper's released configuration).
* **digits re-ranking** (a small-scale check with no training): scikit-learn digits, raw pixels,
  L2-normalised; 200 random queries, the other 1,597 images the gallery; mAP with no re-ranking,
  Step A only and Steps A + B.
* **speed**: re-ranking 1,000 queries over a 50,000-vector gallery (random 128-d unit vectors; the
  cost does not depend on the values) against the exact top-M search it re-ranks, one thread, same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, plots, seed_everything, start
from paperzoo.models.superglobal import GeM, GeMPlus, RegionalGeM, multiscale_descriptor
from paperzoo.retrieval.superglobal import knn_search, superglobal_rerank

PAPER = 52
DATA = ("fashion-mnist", "mnist", "animal-mnist")
BUDGETS: tuple[str, ...] = ()

GEM, GEMP, GEMP_R, SG = "GeM (learned p)", "GeM+", "GeM+ + R-GeM", "SuperGlobal pooling"
GEM_RR, SG_A, SG_RR = "GeM + rerank", "SuperGlobal pooling + rerank A", "SuperGlobal pooling + rerank"
METHODS = (GEM, GEMP, GEMP_R, SG, GEM_RR, SG_A, SG_RR)
METRICS = ["U30 mAP", "U30 R@1"]
SCALES = (0.7071, 1.0, 1.4142)
P_SWEEP = (1.0, 3.0, 4.6, 8.0)
K, BETA = 9, 0.15


@dataclass(frozen=True)
class Config:
    per_class: int  # union30 images kept per class
    steps: int
    batch: int
    width: int
    queries: int
    speed_gallery: int
    speed_queries: int
    digits_queries: int = 200
    rerank_m: int = 400


FULL = Config(per_class=300, steps=400, batch=64, width=16, queries=200, speed_gallery=50_000, speed_queries=1_000)
SMOKE = Config(
    per_class=30, steps=5, batch=32, width=4, queries=40, speed_gallery=2_000, speed_queries=50, digits_queries=30
)


# --------------------------------------------------------------------------- model
class Trunk(nn.Module):
    """Three conv blocks: 28 x 28 -> a (4w, 7, 7) post-ReLU feature map."""

    def __init__(self, width: int) -> None:
        super().__init__()

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        w = width
        self.net = nn.Sequential(*block(1, w), nn.MaxPool2d(2), *block(w, 2 * w), nn.MaxPool2d(2), *block(2 * w, 4 * w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Net(nn.Module):
    """Trunk -> pooling -> L2 -> linear "whitening" -> 64-d descriptor (L2-normalised by the caller)."""

    def __init__(self, width: int, dim: int = 64) -> None:
        super().__init__()
        self.trunk, self.gem, self.fc = Trunk(width), GeM(3.0), nn.Linear(4 * width, dim)

    def head(self, fmap: torch.Tensor, pool: nn.Module) -> torch.Tensor:
        return self.fc(F.normalize(pool(fmap), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x), self.gem)


# --------------------------------------------------------------------------- evaluation
def mean_ap(ranks: torch.Tensor, y_query: torch.Tensor, y_gallery: torch.Tensor) -> tuple[float, float]:
    """mAP over the full rankings ``ranks`` (Q, N) and Recall@1 (relevant = same class)."""
    rel = (y_gallery[ranks] == y_query[:, None]).double()
    prec = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    ap = (prec * rel).sum(1) / rel.sum(1).clamp(min=1)
    return float(ap.mean()), float(rel[:, 0].mean())


def query_split(n: int, n_queries: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    return perm[:n_queries], perm[n_queries:]


def evaluate(
    desc: torch.Tensor, y: torch.Tensor, seed: int, n_queries: int, steps: Sequence[str], M: int
) -> dict[str, tuple[float, float]]:
    """mAP / R@1 of ``desc`` for each of ``steps``: ``"none"`` (no re-ranking), ``"A"`` (Step A only),
    ``"AB"`` (Steps A + B), re-ranking the top ``M`` with K = 9, beta = 0.15."""
    qi, gi = query_split(len(y), n_queries, seed)
    q, g = desc[qi], desc[gi]
    ranks = knn_search(g, q, len(gi))[1]
    new = {
        "none": lambda: ranks,
        "A": lambda: superglobal_rerank(g, q, ranks, M, K, BETA, query_refine=False),
        "AB": lambda: superglobal_rerank(g, q, ranks, M, K, BETA),
    }
    return {step: mean_ap(new[step](), y[qi], y[gi]) for step in steps}


@torch.no_grad()
def descriptors(model: Net, x: torch.Tensor, pool: nn.Module, regional: bool, scales: Sequence[float]) -> torch.Tensor:
    model.eval()
    reg = RegionalGeM(2.5, 5)

    def fn(images: torch.Tensor) -> torch.Tensor:
        fmap = model.trunk(images)
        return model.head(reg(fmap) if regional else fmap, pool)

    if len(scales) == 1:
        return F.normalize(fn(x), dim=1)
    return multiscale_descriptor(fn, x, scales)


# --------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    kind: str  # "union30" | "digits" | "speed"
    seed: int
    cfg: Config


def _union30(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from paperzoo.data import load_union30

    data = load_union30(max_per_class=cfg.per_class, seed=0)
    x, y = torch.from_numpy(np.ascontiguousarray(data.x)), torch.from_numpy(np.asarray(data.y))
    seen = y % 3 != 2
    train_classes = torch.unique(y[seen])
    y_train = torch.searchsorted(train_classes, y[seen])  # 0..19 for the ArcFace classifier
    return x[seen], y_train, x[~seen], y[~seen]


def union30_unit(cfg: Config, seed: int) -> dict[str, Any]:
    from pytorch_metric_learning.losses import ArcFaceLoss

    x_train, y_train, x_test, y_test = _union30(cfg)
    seed_everything(seed)
    model = Net(cfg.width)
    loss = ArcFaceLoss(num_classes=20, embedding_size=64)
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-3)
    loader = make_loader(TensorDataset(x_train, y_train), cfg.batch, seed=seed)
    epochs = -(-cfg.steps // len(loader))
    fit(model, loss, loader, opt, TrainConfig(epochs=epochs, max_steps=cfg.steps, seed=seed, progress=False))
    learned_p = float(model.gem.p.detach())
    variants = {
        GEM: descriptors(model, x_test, model.gem, False, (1.0,)),
        GEMP: descriptors(model, x_test, GeMPlus(4.6), False, (1.0,)),
        GEMP_R: descriptors(model, x_test, GeMPlus(4.6), True, (1.0,)),
        SG: descriptors(model, x_test, GeMPlus(4.6), True, SCALES),
    }
    out: dict[str, Any] = {"learned_p": learned_p, "rows": {}}
    steps = {GEM: ("none", "AB"), SG: ("none", "A", "AB")}
    for name, desc in variants.items():
        ev = evaluate(desc, y_test, seed, cfg.queries, steps.get(name, ("none",)), cfg.rerank_m)
        out["rows"][name] = ev["none"]
        if name == GEM:
            out["rows"][GEM_RR] = ev["AB"]
        if name == SG:
            out["rows"][SG_A], out["rows"][SG_RR] = ev["A"], ev["AB"]
    sweep = {p: descriptors(model, x_test, GeMPlus(p), False, (1.0,)) for p in P_SWEEP}
    out["p_sweep"] = {
        str(p): evaluate(d, y_test, seed, cfg.queries, ("none",), cfg.rerank_m)["none"][0] for p, d in sweep.items()
    }
    return out


def digits_unit(cfg: Config, seed: int) -> dict[str, Any]:
    from paperzoo.data import load_digits

    data = load_digits()
    x = F.normalize(torch.from_numpy(np.ascontiguousarray(data.flat(), dtype=np.float32)).double(), dim=1)
    ev = evaluate(x, torch.from_numpy(np.asarray(data.y)), seed, cfg.digits_queries, ("none", "A", "AB"), 400)
    return {k: v[0] for k, v in ev.items()}


def speed_unit(cfg: Config, seed: int) -> dict[str, Any]:
    """Seconds for the exact top-M search and for re-ranking it (M = 400 and 200), one thread."""
    g = seed_everything(seed)
    gallery = F.normalize(torch.randn(cfg.speed_gallery, 128, generator=g), dim=1)
    queries = F.normalize(torch.randn(cfg.speed_queries, 128, generator=g), dim=1)
    out: dict[str, Any] = {}
    for m in (400, 200):
        knn_search(gallery, queries[:8], m)  # warm-up
        t0 = time.perf_counter()
        ranks = knn_search(gallery, queries, m)[1]
        t1 = time.perf_counter()
        superglobal_rerank(gallery, queries, ranks, M=m, K=9, beta=0.15)
        t2 = time.perf_counter()
        out[f"M={m}"] = {"search_s": t1 - t0, "rerank_s": t2 - t1, "ratio": (t2 - t1) / (t1 - t0)}
    return out


def run_unit(unit: Unit) -> dict[str, Any]:
    fn = {"union30": union30_unit, "digits": digits_unit, "speed": speed_unit}[unit.kind]
    return fn(unit.cfg, unit.seed)


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction; write the result and ``plot.png`` under ``out_dir`` and return the
    :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if rep.budget == "smoke" else FULL
    units = [Unit(kind, seed, cfg) for seed in rep.seeds for kind in ("union30", "digits", "speed")]
    outputs = rep.map(run_unit, units)
    table = Table(METRICS, METHODS, baselines=[GEM])
    digits: dict[str, list[float]] = {"none": [], "A": [], "AB": []}
    speed: dict[str, Any] = {}
    p_sweep: dict[str, list[float]] = {}
    learned_p: list[float] = []
    for unit, out in zip(units, outputs):
        if unit.kind == "union30":
            for method in METHODS:
                m_ap, r1 = out["rows"][method]
                table.add(method, unit.seed, {"U30 mAP": m_ap, "U30 R@1": r1})
            learned_p.append(out["learned_p"])
            for p, v in out["p_sweep"].items():
                p_sweep.setdefault(p, []).append(v)
        elif unit.kind == "digits":
            for k in digits:
                digits[k].append(out[k])
        else:
            speed[str(unit.seed)] = out

    claims = [
        Claim.greater(table, GEM_RR, GEM, "U30 mAP"),
        Claim.greater(table, SG_RR, SG, "U30 mAP"),
        Claim.greater(table, SG_RR, SG_A, "U30 mAP"),
        Claim.greater(table, SG, GEM, "U30 mAP"),
        Claim.greater(table, SG_RR, GEM, "U30 mAP"),
        Claim.about("digits mAP: rerank A - no rerank > 0", [a - n for a, n in zip(digits["A"], digits["none"])], ">"),
        Claim.about("digits mAP: rerank A+B - rerank A > 0", [b - a for b, a in zip(digits["AB"], digits["A"])], ">"),
    ]
    ratios = {m: [s[m]["ratio"] for s in speed.values()] for m in ("M=400", "M=200")}
    extra = {
        "digits_mAP": digits,
        "gemplus_p_sweep_mAP": p_sweep,
        "learned_gem_p": learned_p,
        "speed": speed,
        "speed_ratio_median": {m: float(np.median(v)) for m, v in ratios.items()},
    }
    result = rep.result(
        table,
        claims,
        setting=(
            f"union30 ({cfg.per_class} images per class): ConvNet trunk (width {cfg.width}, 7x7 map) + GeM (learned p) "
            f"+ linear 64-d, ArcFace on the 20 classes c % 3 != 2, {cfg.steps} Adam steps (batch {cfg.batch}); "
            f"retrieval on the 10 unseen classes, {cfg.queries} queries vs the rest, mAP over the full ranking. "
            f"Re-ranking M={cfg.rerank_m}, K={K}, beta={BETA}; GeM+ p=4.6; R-GeM p=2.5, k=5; Scale-GeM max over 0.7071/1/1.4142. "
            f"digits: raw pixels, {cfg.digits_queries} queries vs the other {1797 - cfg.digits_queries}. Speed: {cfg.speed_queries} queries x {cfg.speed_gallery} "
            "128-d gallery, one thread"
        ),
        scale_note=(
            "a 3-layer ConvNet trained from scratch on 28x28 images instead of CVNet ResNet-50/101 trained on GLDv2, "
            "evaluated on 10 unseen classes instead of ROxford/RParis(+1M); only directions are comparable"
        ),
        notes=(
            "Speed (extra['speed']): re-rank / exact top-M search time per seed; target <= 3x at M = 400. "
            "GeM+ p sweep in extra['gemplus_p_sweep_mAP'] (exploratory)."
        ),
        highlight=(SG_RR, GEM, "U30 mAP"),
        extra=extra,
    )
    return result.write(out_dir, figure=_figure)


def _figure(result: Result) -> Any:
    fig, axes = plots.subplots(2, width=6.0, height=4.5)
    plots.grouped_bars(axes[0], result.table, METRICS, labels=METRICS, title="union30, 10 unseen classes")
    axes[0].legend(fontsize=7, loc="lower right")
    sweep = result.extra["gemplus_p_sweep_mAP"]
    ps = [float(p) for p in sweep]
    axes[1].errorbar(ps, [np.mean(v) for v in sweep.values()], yerr=[np.std(v) for v in sweep.values()], marker="o")
    axes[1].set_xlabel("GeM+ exponent p (no Regional/Scale, no rerank)")
    axes[1].set_ylabel("union30 unseen mAP")
    axes[1].set_title("GeM+ exponent sweep")
    return plots.finish(fig, result, "SuperGlobal pooling and re-ranking")
