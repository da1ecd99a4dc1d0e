"""Reproduction of paper 31, "Investigating generalization capabilities of neural networks by means
of loss landscapes and Hessian analysis" (Gabdullin, 2024), scaled down (this project's
reproduction, docs/papers/31-loss-landscape-hessian-generalization.md).

The paper's Hessian criteria ``re = |lambda_min / lambda_max|`` and ``Kh0.5`` (from the SLQ
spectral density of the loss Hessian on the evaluation data) are proposed as label-using but
retraining-free estimates of generalisation: when the data change, the criteria should move
against accuracy. Offline and small (scikit-learn's 8x8 digits, pixels / 16; a fixed split, seed
0, of 1,000 training and 797 test images), three experiments per seed:

1. **Data shift** (the paper's train-on-one, test-on-another protocol): an MLP 64-32-10 trained
   full-batch with Adam (lr 1e-2, 300 steps) is evaluated on the clean test set and six shifted
   copies (additive Gaussian noise sigma = 0.3 / 0.6 / 1.0, 40 % of the pixels zeroed, horizontal
   roll by 1 and 2 pixels; noise and masks drawn from the seed). Per set: accuracy, mean loss and,
   from the Hessian of the mean cross-entropy over the whole set, re and Kh0.5 (SLQ, 80 Lanczos
   steps, one run, full re-orthogonalisation, probe seed fixed), lambda_max (LLA's power
   iteration) and the Hutchinson trace. Spearman correlation of each indicator with accuracy
   across the 7 sets.
2. **Across training recipes** (the paper's comparison across models): the same MLP trained 8
   ways that generalise differently (Adam lr 1e-2 / 1e-3, SGD batch 16, full-batch GD, AdamW,
   40 % label noise, 200 training samples, 3,000 steps). The indicators on the test set against
   test accuracy, and on the training set against the generalisation gap (train - test accuracy,
   the classical sharpness view), Spearman over the 8 models.
3. **Typical spectrum and Hessian axes**: a small BatchNorm CNN trained like the MLP; the HESD of
   both networks on their training data (the paper's "typical" shape: positive outliers, a bulk
   at zero, a small negative part), and loss landscapes of the CNN along random filter-normalised
   axes and along Hessian axes (the top-2 eigenvectors), with the curvature each pair of axes sees.

The parent process also times the HVP-based top eigenvalue and trace against the exact Hessian
(``torch.autograd.functional.hessian`` + ``eigvalsh``) on one thread: wall-clock, reported, never
a claim. Units of work: one per (seed, experiment 1), (seed, recipe) and (seed, CNN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.analysis.hessian import HessianAnalyzer, exact_hessian_criteria, plot_esd
from paperzoo.analysis.landscape import (
    loss_surface_2d,
    normalize_direction,
    plot_surface,
    random_directions,
)
from paperzoo.data import load_digits
from paperzoo.engine import Claim, Result, Table, Timer, TrainConfig, fit, limit_threads, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models import MLP

PAPER = 31
DATA: tuple[str, ...] = ()
BUDGETS: tuple[str, ...] = ()

KH, RE, LMAX, TRACE, LOSS = "Kh0.5 (paper)", "re (paper)", "lambda_max", "trace (Hutchinson)", "mean loss"
METHODS = (KH, RE, LMAX, TRACE, LOSS)
BASELINES = (LMAX, TRACE, LOSS)
_KEY = {KH: "kh", RE: "re", LMAX: "lambda_max", TRACE: "trace", LOSS: "loss"}
M_SHIFT = "rho(indicator, acc): data shift, 7 sets"
M_MODELS = "rho(indicator on test, test acc): recipes"
M_GAP = "rho(indicator on train, gap): recipes"
METRICS = (M_SHIFT, M_MODELS, M_GAP)

SHIFTS = ("clean", "noise 0.3", "noise 0.6", "noise 1.0", "40% zeroed", "roll 1 px", "roll 2 px")
REF = "Adam lr 1e-2"
RECIPES: dict[str, dict[str, Any]] = {
    REF: {},
    "Adam lr 1e-3": {"lr": 1e-3},
    "SGD batch 16": {"opt": "sgd", "lr": 0.1, "batch": 16},
    "GD full batch": {"opt": "sgd", "lr": 0.5},
    "AdamW wd 0.1": {"opt": "adamw", "wd": 0.1},
    "40% label noise": {"noise": 0.4},
    "200 train samples": {"n": 200},
    "10x longer": {"steps_x": 10},
}


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    n_train: int
    n_test: int
    steps: int
    slq_m: int
    eig_iter: int
    trace_iter: int
    recipes: tuple[str, ...]
    batch_epochs: int  # epochs of the mini-batch SGD recipe
    cnn_width: int
    land_steps: int
    land_points: int  # training images the landscapes are evaluated on
    speed_hidden: int
    speed_reps: int


FULL = Config(
    n_train=1000, n_test=797, steps=300, slq_m=80, eig_iter=100, trace_iter=100, recipes=tuple(RECIPES),
    batch_epochs=20, cnn_width=4, land_steps=21, land_points=256, speed_hidden=32, speed_reps=2,
)  # fmt: skip
SMOKE = Config(
    n_train=300, n_test=200, steps=60, slq_m=20, eig_iter=20, trace_iter=10,
    recipes=(REF, "Adam lr 1e-3", "40% label noise", "200 train samples"), batch_epochs=2, cnn_width=4,
    land_steps=6, land_points=100, speed_hidden=8, speed_reps=1,
)  # fmt: skip


def _subseed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


# --------------------------------------------------------------------------- data
def digits_split(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed split (permutation seed 0): the first ``n_train`` images of the permutation for
    training, the last ``n_test`` for testing; images (N, 1, 8, 8) in [0, 1]."""
    digits = load_digits()
    perm = np.random.default_rng(0).permutation(len(digits))
    tr, te = perm[: cfg.n_train], perm[len(perm) - cfg.n_test :]
    x, y = torch.from_numpy(digits.x), torch.from_numpy(digits.y)
    return x[tr], y[tr], x[te], y[te]


def shifted_sets(x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The clean images and the six shifted copies of experiment 1 (noise and masks from ``seed``)."""
    g = torch.Generator().manual_seed(_subseed(seed, 1))
    out = {"clean": x}
    for sigma in (0.3, 0.6, 1.0):
        out[f"noise {sigma:.1f}"] = x + sigma * torch.randn(x.shape, generator=g)
    out["40% zeroed"] = x * (torch.rand(x.shape, generator=g) >= 0.4)
    for r in (1, 2):
        out[f"roll {r} px"] = torch.roll(x, r, dims=-1)
    return out


def label_noise(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """``y`` with a ``fraction`` of the labels replaced by uniform random classes (from ``seed``)."""
    g = torch.Generator().manual_seed(_subseed(seed, 2))
    flip = torch.rand(y.shape, generator=g) < fraction
    out = y.clone()
    out[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    return out


# --------------------------------------------------------------------------- models and training
class BNConvNet(nn.Module):
    """conv3x3(1->w)-BN-ReLU-conv3x3(w->2w)-BN-ReLU-maxpool2-linear(2w*16 -> 10) for 8x8 images."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(2 * w * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class FullBatch:
    """The same batch at every step (full-batch training through :func:`paperzoo.engine.fit`)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = (x, y)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.batch


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: Config, seed: int, *, opt: str = "adam",
    lr: float = 1e-2, wd: float = 0.0, batch: int | None = None, steps_x: int = 1,
) -> nn.Module:  # fmt: skip
    """Train ``model`` on ``(x, y)`` (full batch unless ``batch``) with the recipe's optimiser."""
    params = model.parameters()
    optim = {
        "adam": lambda: torch.optim.Adam(params, lr=lr),
        "adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
        "sgd": lambda: torch.optim.SGD(params, lr=lr),
    }[opt]()
    loss_fn = nn.CrossEntropyLoss()
    if batch is None:
        tc = TrainConfig(max_steps=cfg.steps * steps_x, seed=seed, progress=False)
        fit(model, loss_fn, FullBatch(x, y), optim, tc)  # type: ignore[arg-type]
    else:
        loader = make_loader(TensorDataset(x, y), batch, seed=seed)
        fit(model, loss_fn, loader, optim, TrainConfig(epochs=cfg.batch_epochs, seed=seed, progress=False))
    return model.eval()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def indicators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: Config, seed: int) -> dict[str, Any]:
    """Accuracy, loss and the Hessian indicators of the mean cross-entropy over ``(x, y)``
    (eval mode); the SLQ probe, the power-iteration start and the trace probes come from ``seed``."""
    ha = HessianAnalyzer(model, nn.CrossEntropyLoss(), (x, y))
    esd = ha.esd(cfg.slq_m, 1, seed, progress=False)
    re, kh = esd.criteria(0.5)
    top = ha.top_eigen(1, cfg.eig_iter, 1e-3, seed, progress=False)
    tr = ha.trace(cfg.trace_iter, 1e-3, seed, progress=False)
    return {
        "accuracy": _accuracy(model, x, y),
        "loss": ha.loss(),
        "re": re,
        "kh": kh,
        "lambda_max": float(top.values[0]),
        "trace": tr.trace,
        "nodes": esd.nodes[0].tolist(),
        "weights": esd.weights[0].tolist(),
        "num_hvp": ha.num_hvp,
    }


def _spearman(values: Sequence[float], target: Sequence[float]) -> float:
    """Spearman's rank correlation; 0 (no rank information) when a side is constant."""
    from scipy.stats import spearmanr

    if len(set(values)) < 2 or len(set(target)) < 2:
        return 0.0
    return float(spearmanr(values, target).statistic)


# --------------------------------------------------------------------------- units
#: One unit: (kind "shift" | "recipe" | "cnn", recipe name or "", seed, config).
Unit = tuple[str, str, int, Config]


def unit(u: Unit) -> dict[str, Any]:
    """One unit, seeded by its seed alone: experiment 1 (one model, 7 sets), one recipe (its model
    on the test and the training set) or the BatchNorm CNN."""
    kind, name, seed, cfg = u
    xtr, ytr, xte, yte = digits_split(cfg)
    if kind == "shift":
        seed_everything(seed)
        model = train(MLP(64, (32,), 10), xtr, ytr, cfg, seed)
        sets = shifted_sets(xte, seed)
        return {s: indicators(model, sets[s], yte, cfg, seed) for s in SHIFTS}
    if kind == "recipe":
        spec = dict(RECIPES[name])
        n, noise = spec.pop("n", cfg.n_train), spec.pop("noise", 0.0)
        n = min(n, cfg.n_train)
        x, y = xtr[:n], ytr[:n]
        if noise:
            y = label_noise(y, noise, seed)
        seed_everything(seed)
        model = train(MLP(64, (32,), 10), x, y, cfg, seed, **spec)
        return {"test": indicators(model, xte, yte, cfg, seed), "train": indicators(model, x, y, cfg, seed)}
    if kind == "cnn":
        return cnn_unit(cfg, seed, xtr, ytr, xte, yte)
    raise ValueError(f"unknown unit kind {kind!r}")


def cnn_unit(
    cfg: Config, seed: int, xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, yte: torch.Tensor
) -> dict[str, Any]:
    """The BatchNorm CNN: HESD on its training data, and landscapes along random filter-normalised
    and Hessian axes with the curvature each direction sees (d^T H d / ||d||^2 over lambda_max)."""
    seed_everything(seed)
    model = train(BNConvNet(cfg.cnn_width), xtr, ytr, cfg, seed)
    out = {"train": indicators(model, xtr, ytr, cfg, seed), "test_accuracy": _accuracy(model, xte, yte)}
    pts = (xtr[: cfg.land_points], ytr[: cfg.land_points])
    ha = HessianAnalyzer(model, nn.CrossEntropyLoss(), pts)
    theta, layout = ha.theta, ha.layout
    top = ha.top_eigen(2, cfg.eig_iter, 1e-3, seed, method="lanczos", progress=False)  # the Hessian axes
    hess, lam = top.vectors, top.values[0]
    rnd = normalize_direction(random_directions(layout.dim, 2, seed=seed), theta, layout, "filter")
    out["curvature_ratio"] = {}
    for key, dirs in (("random filter", rnd), ("hessian", hess)):
        ratios = [float(d @ ha.hvp(d) / (d @ d) / lam) for d in dirs]
        out["curvature_ratio"][key] = ratios
        surf = loss_surface_2d(model, nn.CrossEntropyLoss(), pts, dirs[0], dirs[1], steps=cfg.land_steps)
        out[f"surface {key}"] = {"a": surf.a.tolist(), "b": surf.b.tolist(), "loss": surf.loss.tolist()}
    return out


# --------------------------------------------------------------------------- speed
#: Lanczos steps of the SLQ accuracy sweep against the exact spectrum (those <= 2 x the run's m are used)
SWEEP_M = (5, 10, 20, 40, 80, 160)
SWEEP_PROBES = (0, 1, 2)
TOL = 1e-3  # the relative tolerance of the eigen-solvers


def slq_errors(ha: HessianAnalyzer, ev: torch.Tensor, cfg: Config) -> dict[str, Any]:
    """Relative errors of one-probe SLQ against the exact spectrum ``ev`` as the number of
    Lanczos steps m grows: the extreme Ritz values (lambda_max, lambda_min), re, and Kh0.5 (a
    non-linear function of the quadrature weights, so not an estimate of the exact spectrum's
    Kh0.5). One list over the probe seeds ``SWEEP_PROBES`` per m and quantity."""
    re, kh = exact_hessian_criteria(ev)
    exact = {"lambda_max": float(ev[-1]), "lambda_min": float(ev[0]), "re": re, "Kh0.5": kh}
    ms = [m for m in SWEEP_M if m <= 2 * cfg.slq_m]
    errors: dict[str, list[list[float]]] = {q: [] for q in exact}
    for m in ms:
        runs = [ha.esd(m, 1, probe, progress=False) for probe in SWEEP_PROBES]
        crit = [r.criteria(0.5) for r in runs]
        got = {
            "lambda_max": [r.lambda_max for r in runs],
            "lambda_min": [r.lambda_min for r in runs],
            "re": [c[0] for c in crit],
            "Kh0.5": [c[1] for c in crit],
        }
        for q, vals in got.items():
            errors[q].append([abs(v - exact[q]) / abs(exact[q]) for v in vals])
    return {"m": ms, "m_used": cfg.slq_m, "exact": exact, "rel_err": errors}


def speed_check(cfg: Config, seed: int = 0) -> dict[str, Any]:
    """Seconds for the top eigenvalue and the trace of an MLP's loss Hessian on the digits
    training set: HVP-based (power iteration, Lanczos, Hutchinson) vs the exact Hessian
    (``torch.autograd.functional.hessian``, then ``eigvalsh`` / its diagonal). Best of
    ``speed_reps`` runs, one thread; also the relative errors, and the SLQ sweep of
    :func:`slq_errors`. Wall-clock: reported, never a claim."""
    xtr, ytr, _, _ = digits_split(cfg)
    seed_everything(seed)
    model = train(MLP(64, (cfg.speed_hidden,), 10), xtr, ytr, cfg, seed)

    def best(fn: Any) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(cfg.speed_reps):
            t = Timer()
            out = fn()
            times.append(t.elapsed)
        return min(times), out

    def exact() -> torch.Tensor:
        return HessianAnalyzer(model, nn.CrossEntropyLoss(), (xtr, ytr)).dense()

    t_hess, H = best(exact)
    t_eig, ev = best(lambda: torch.linalg.eigvalsh(H.double()))
    lam, tr = float(ev[-1]), float(H.diagonal().sum())

    def ours(what: str) -> Any:
        ha = HessianAnalyzer(model, nn.CrossEntropyLoss(), (xtr, ytr))
        if what == "trace":
            return ha.trace(100, 1e-3, seed, progress=False).trace
        return float(ha.top_eigen(1, 100, 1e-3, seed, method=what, progress=False).values[0])

    t_pow, lam_pow = best(lambda: ours("power"))
    t_lan, lam_lan = best(lambda: ours("lanczos"))
    t_tr, tr_hut = best(lambda: ours("trace"))
    re, kh = exact_hessian_criteria(ev)
    return {
        "P": float(H.shape[0]),
        "exact_hessian_s": t_hess,
        "exact_eigvalsh_s": t_eig,
        "power_s": t_pow,
        "lanczos_s": t_lan,
        "hutchinson_s": t_tr,
        "speedup_power": (t_hess + t_eig) / t_pow,
        "speedup_lanczos": (t_hess + t_eig) / t_lan,
        "speedup_trace": t_hess / t_tr,
        "lambda_max_exact": lam,
        "rel_err_power": abs(lam_pow - lam) / abs(lam),
        "rel_err_lanczos": abs(lam_lan - lam) / abs(lam),
        "trace_exact": tr,
        "rel_err_trace": abs(tr_hut - tr) / abs(tr),
        "exact_re": re,
        "exact_kh": kh,
        "slq": slq_errors(HessianAnalyzer(model, nn.CrossEntropyLoss(), (xtr, ytr)), ev, cfg),
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
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result files
    under ``out_dir/31-loss-landscape-hessian-generalization/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units: list[Unit] = []
    for seed in rep.seeds:
        units += [("shift", "", seed, cfg), *(("recipe", r, seed, cfg) for r in cfg.recipes), ("cnn", "", seed, cfg)]
    outputs = rep.map(unit, units)
    done = {(kind, name, seed): out for (kind, name, seed, _), out in zip(units, outputs)}
    with limit_threads(1):  # once, in this process, on one thread
        speed = speed_check(cfg)

    table = Table(list(METRICS), list(METHODS), baselines=list(BASELINES))
    for seed in rep.seeds:
        shift = done["shift", "", seed]
        models = [done["recipe", r, seed] for r in cfg.recipes]
        acc = [shift[s]["accuracy"] for s in SHIFTS]
        test_acc = [m["test"]["accuracy"] for m in models]
        gap = [m["train"]["accuracy"] - m["test"]["accuracy"] for m in models]
        for method in METHODS:
            k = _KEY[method]
            table.add(
                method,
                seed,
                {
                    M_SHIFT: _spearman([shift[s][k] for s in SHIFTS], acc),
                    M_MODELS: _spearman([m["test"][k] for m in models], test_acc),
                    M_GAP: _spearman([m["train"][k] for m in models], gap),
                },
            )

    def per_seed(fn: Any) -> list[float]:
        return [float(fn(s)) for s in rep.seeds]

    n_rec = len(cfg.recipes)
    claims = [
        Claim.about(
            "data shift (clean digits -> noise, masking, rolls): Kh0.5 on the evaluation set rises as accuracy "
            "falls (Spearman rho across the 7 sets < 0)",
            table.values(KH, M_SHIFT),
            "<",
        ),
        Claim.about(
            "data shift: re = |lambda_min / lambda_max| on the evaluation set rises as accuracy falls (rho < 0)",
            table.values(RE, M_SHIFT),
            "<",
        ),
        Claim.about(
            f"across {n_rec} training recipes of the same MLP: models with a larger Kh0.5 on the test set have a lower "
            "test accuracy (rho < 0)",
            table.values(KH, M_MODELS),
            "<",
        ),
        Claim.about(
            f"across {n_rec} training recipes: models with a larger re on the test set have a lower test accuracy "
            "(rho < 0)",
            table.values(RE, M_MODELS),
            "<",
        ),
        Claim.about(
            "typical spectrum, MLP on its training data: the HESD is dominated by positive curvature (Kh0.5 < 1)",
            per_seed(lambda s: done["recipe", REF, s]["train"]["kh"]),
            "<",
            1.0,
        ),
        Claim.about(
            "typical spectrum, BatchNorm CNN on its training data: the HESD is dominated by positive curvature "
            "(Kh0.5 < 1)",
            per_seed(lambda s: done["cnn", "", s]["train"]["kh"]),
            "<",
            1.0,
        ),
    ]
    extra = _extra(done, rep.seeds, cfg, speed)
    result = rep.result(
        table,
        claims,
        setting=(
            f"scikit-learn digits (8x8, pixels/16), fixed split of {cfg.n_train} train / {cfg.n_test} test; MLP "
            f"64-32-10 trained full-batch with Adam lr 1e-2 for {cfg.steps} steps (experiment 1 and the reference "
            f"recipe); {n_rec} recipes ({', '.join(cfg.recipes)}); BatchNorm CNN (width {cfg.cnn_width}) trained "
            f"like the MLP; Hessian of the mean cross-entropy over the whole evaluation set, eval mode: SLQ "
            f"{cfg.slq_m} Lanczos steps, 1 run, full re-orthogonalisation; lambda_max by power iteration "
            f"({cfg.eig_iter} iterations, tol 1e-3); Hutchinson trace ({cfg.trace_iter} probes, tol 1e-3); the "
            "probe seed is the run's seed for every set and model; Spearman rho per seed"
        ),
        scale_note=(
            "the paper uses ImageNet-1K pretrained models and 'in the wild' data sets; here 8x8 digits, synthetic "
            "shifts (noise, masking, pixel rolls) and a 2.4k-parameter MLP / small BatchNorm CNN"
        ),
        notes=_notes(extra),
        highlight=(KH, LMAX, M_SHIFT),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs))


def _extra(
    done: dict[tuple[str, str, int], Any], seeds: Sequence[int], cfg: Config, speed: dict[str, float]
) -> dict[str, Any]:
    keys = ("accuracy", "loss", "re", "kh", "lambda_max", "trace")
    shift = {
        s: {k: _mean([done["shift", "", sd][s][k] for sd in seeds]) for k in keys} for s in SHIFTS
    }  # fmt: skip
    shift_per_seed = {
        str(sd): {s: {k: done["shift", "", sd][s][k] for k in keys} for s in SHIFTS} for sd in seeds
    }  # fmt: skip
    recipes = {
        r: {
            part: {k: _mean([done["recipe", r, sd][part][k] for sd in seeds]) for k in keys}
            for part in ("train", "test")
        }
        for r in cfg.recipes
    }
    s0 = seeds[0]
    cnn0 = done["cnn", "", s0]
    return {
        "shift_mean": shift,
        "shift_per_seed": shift_per_seed,
        "recipes_mean": recipes,
        "cnn": {
            "train_kh": [done["cnn", "", sd]["train"]["kh"] for sd in seeds],
            "train_re": [done["cnn", "", sd]["train"]["re"] for sd in seeds],
            "test_accuracy": [done["cnn", "", sd]["test_accuracy"] for sd in seeds],
            "curvature_ratio": {str(sd): done["cnn", "", sd]["curvature_ratio"] for sd in seeds},
        },
        "mlp_train_re": [done["recipe", REF, sd]["train"]["re"] for sd in seeds],
        "esd_seed0": {
            "clean": [done["shift", "", s0]["clean"]["nodes"], done["shift", "", s0]["clean"]["weights"]],
            "roll 2 px": [done["shift", "", s0]["roll 2 px"]["nodes"], done["shift", "", s0]["roll 2 px"]["weights"]],
            "cnn train": [cnn0["train"]["nodes"], cnn0["train"]["weights"]],
        },
        "surfaces_seed0": {k: cnn0[f"surface {k}"] for k in ("random filter", "hessian")},
        "speed": speed,
    }


def _notes(extra: dict[str, Any]) -> str:
    sh = extra["shift_mean"]
    rows = "; ".join(
        f"{s}: acc {v['accuracy']:.3f}, re {v['re']:.4f}, Kh0.5 {v['kh']:.3f}, lambda_max {v['lambda_max']:.2f}"
        for s, v in sh.items()
    )
    rec = "; ".join(
        f"{r}: train/test acc {v['train']['accuracy']:.3f}/{v['test']['accuracy']:.3f}, test re {v['test']['re']:.4f}, "
        f"test Kh0.5 {v['test']['kh']:.3f}, test lambda_max {v['test']['lambda_max']:.2f}"
        for r, v in extra["recipes_mean"].items()
    )
    cr = extra["cnn"]["curvature_ratio"]
    rnd = np.mean([np.mean(v["random filter"]) for v in cr.values()])
    hes = np.mean([np.mean(v["hessian"]) for v in cr.values()])
    sp = extra["speed"]
    return (
        f"Seed means. Data shift: {rows}. Recipes: {rec}. BatchNorm CNN: train Kh0.5 "
        f"{np.mean(extra['cnn']['train_kh']):.3f}, re {np.mean(extra['cnn']['train_re']):.4f}, test acc "
        f"{np.mean(extra['cnn']['test_accuracy']):.3f}; curvature seen along the plotted axes, d^T H d / ||d||^2 over "
        f"lambda_max: random filter-normalised {rnd:.2g}, Hessian axes {hes:.2f}. Speed (one thread, P = "
        f"{sp['P']:.0f}, wall-clock, not a claim): exact Hessian {sp['exact_hessian_s']:.2f} s + eigvalsh "
        f"{sp['exact_eigvalsh_s']:.2f} s vs power iteration {sp['power_s'] * 1e3:.0f} ms ({sp['speedup_power']:.0f}x, "
        f"rel. error {sp['rel_err_power']:.1e}), Lanczos {sp['lanczos_s'] * 1e3:.0f} ms ({sp['speedup_lanczos']:.0f}x, "
        f"{sp['rel_err_lanczos']:.1e}); Hutchinson trace {sp['hutchinson_s'] * 1e3:.0f} ms ({sp['speedup_trace']:.0f}x "
        f"the exact Hessian alone, rel. error {sp['rel_err_trace']:.1e}). " + _slq_note(sp["slq"])
    )


def _slq_note(sweep: dict[str, Any]) -> str:
    err = {q: dict(zip(sweep["m"], (max(e) for e in errs))) for q, errs in sweep["rel_err"].items()}
    m, ms = sweep["m_used"], sweep["m"]
    below = [k for k in ms if k < m]
    before = (
        f"; at m = {below[-1]}: lambda_min {err['lambda_min'][below[-1]]:.1e}, re {err['re'][below[-1]]:.1e}"
        if below
        else ""
    )
    return (
        f"SLQ against the exact spectrum (largest relative error over {len(SWEEP_PROBES)} probes, tolerance "
        f"{TOL:g}): at m = {m}: lambda_max {err['lambda_max'][m]:.1e}, lambda_min {err['lambda_min'][m]:.1e}, re "
        f"{err['re'][m]:.1e}{before}; Kh0.5 differs from the exact spectrum's value by {err['Kh0.5'][m]:.0%} at m = "
        f"{m} and {err['Kh0.5'][ms[-1]]:.0%} at m = {ms[-1]}: it is a function of the quadrature's weights, "
        "not an estimate of the spectrum's Kh0.5, so it is comparable only at a fixed m and probe."
    )


def make_figure(result: Result) -> Any:
    """HESDs, the criteria against accuracy under data shift, the Spearman correlations of every
    indicator, and the CNN's landscapes along random filter-normalised and Hessian axes."""
    from paperzoo.analysis.hessian import SLQResult

    table, extra = result.table, result.extra
    fig, axes = subplots(6, width=4.6, width_ratios=[1.0, 1.0, 1.3, 0.9, 0.9, 1.0])
    for name, (nodes, weights) in extra["esd_seed0"].items():
        esd = SLQResult((torch.tensor(nodes),), (torch.tensor(weights),))
        plot_esd(axes[0], esd, label=name, num_bins=2000, lw=1)
    axes[0].legend(fontsize=8)
    axes[0].set_title("HESD (SLQ), seed 0")
    sh = extra["shift_per_seed"]
    acc = np.array([[sh[sd][s]["accuracy"] for s in SHIFTS] for sd in sh])
    for key, marker, label in (("kh", "o", "Kh0.5"), ("re", "s", "re x 5")):
        scale = 5.0 if key == "re" else 1.0
        vals = np.array([[sh[sd][s][key] for s in SHIFTS] for sd in sh]) * scale
        axes[1].scatter(acc.ravel(), vals.ravel(), marker=marker, s=18, label=label, alpha=0.8)
    for i, s in enumerate(SHIFTS):
        axes[1].annotate(s, (acc[:, i].mean(), np.array([sh[sd][s]["kh"] for sd in sh]).mean()), fontsize=6)
    axes[1].set_xlabel("accuracy on the evaluation set")
    axes[1].set_ylabel("criterion (Hessian on that set)")
    axes[1].set_title("data shift: criteria vs accuracy")
    axes[1].legend(fontsize=8)
    grouped_bars(
        axes[2], table, table.metrics, labels=["data shift\n(acc)", "recipes\n(test acc)", "recipes\n(train -> gap)"],
        ylabel="Spearman rho (mean ± std over seeds)", ylim=(-1.05, 1.05), title="rank correlation of each indicator",
    )  # fmt: skip
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].legend(fontsize=7, loc="upper right")
    from paperzoo.analysis.landscape import Surface

    for ax, key in ((axes[3], "random filter"), (axes[4], "hessian")):
        s = extra["surfaces_seed0"][key]
        surf = Surface(torch.tensor(s["a"]), torch.tensor(s["b"]), torch.tensor(s["loss"]), math.nan)
        cs = plot_surface(ax, surf, levels=20, log=True)
        fig.colorbar(cs, ax=ax, label="log10 loss")
        ax.set_title(f"BN-CNN landscape, {key} axes")
    _slq_panel(axes[5], extra["speed"])
    return finish(fig, result, "Hessian criteria vs generalisation")


def _slq_panel(ax: Any, speed: dict[str, Any]) -> None:
    """SLQ against the exact spectrum of the speed check's MLP as m grows, with the tolerance."""
    sweep = speed["slq"]
    for q, errs in sweep["rel_err"].items():
        e = np.maximum(np.array(errs), 1e-12)
        ax.plot(sweep["m"], e.mean(1), marker="o", ms=3, label=q)
        ax.fill_between(sweep["m"], e.min(1), e.max(1), alpha=0.2)
    ax.axhline(TOL, color="k", ls="--", lw=0.9, label=f"tolerance {TOL:g}")
    ax.axvline(sweep["m_used"], color="grey", ls=":", lw=0.9, label=f"m in this run ({sweep['m_used']})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Lanczos steps m (one probe; band: 3 probes)")
    ax.set_ylabel("relative error to the exact spectrum")
    ax.set_title(f"SLQ vs exact Hessian (MLP, P = {speed['P']:.0f})")
    ax.legend(fontsize=7)
