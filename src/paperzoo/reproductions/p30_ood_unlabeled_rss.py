"""Reproduction of paper 30, "Out-Of-Domain Unlabeled Data Improves Generalization" (Saberi et al.,
ICLR 2024), scaled down (this project's reproduction, docs/papers/30-ood-unlabeled-rss.md).

The paper's Gaussian-mixture experiment: labelled samples from ``N(y mu_0, I)`` (``||mu_0|| = 1``,
``d = 200``, Bayes accuracy ``Phi(1) = 0.841``), unlabelled samples from the shifted mixture
``1/2 sum_u N(u mu_1, I)`` with ``mu_1 = mu_0 + alpha v`` (``v`` a unit direction orthogonal to
``mu_0``), an in-domain test set of 20,000 samples. Per (m, n, alpha) setting and draw, four linear
classifiers on the unit sphere:

* ERM, the mean estimator ``normalize(sum_i y_i X_i)`` (the baseline, and everyone's starting point);
* robust ERM: the RSS objective with ``lambda = 0`` (robust ramp loss on the labelled data only);
* RSS: ramp slope 1, ``gamma = gamma' = 1``, ``lambda = 1``, closed-form robust ramp, 300 full-batch
  Adam steps (lr 0.05);
* self-training: the same with ``gamma = gamma' = inf`` (no adversary), an ablation of the robust part.

Theory vs simulation: every classifier's simulated test accuracy against its exact accuracy
``Phi(<w, mu_0> / ||w||)``; the mean estimator's mean accuracy against its closed-form
approximation (the (d/m)^(1/2) rate of ERM); RSS at large n against the accuracy of the unlabelled
mixture's own direction ``mu_1`` (the ceiling the shift sets).

Units: one per (setting, seed, draw); a seed's value is the mean over ``reps`` independent draws
(training in float32, evaluation in float64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paperzoo.analysis.rss_gmm import (
    bayes_accuracy,
    linear_gmm_accuracy,
    mean_estimator_accuracy,
    shifted_direction_accuracy,
)
from paperzoo.data.shifted_gmm import make_shifted_gmm
from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.training.rss import fit_linear_rss, mean_estimator

PAPER = 30
DATA: tuple[str, ...] = ()
BUDGETS: tuple[str, ...] = ()

ERM = "ERM (mean estimator)"
RERM = "robust ERM (λ=0)"
RSS = "RSS (γ=γ'=1, λ=1)"
ST = "self-training (γ=∞, λ=1)"
METHODS = (ERM, RERM, RSS, ST)
#: |simulated - closed-form| accuracy allowed for every trained classifier, in standard errors of the
#: test set's accuracy (at most sqrt(0.25 / n_test)); 0.0177 for 20,000 test samples; fixed before the run
THEORY_TOL_SE = 5.0


def theory_tol(n_test: int) -> float:
    """The theory-vs-simulation tolerance for a test set of ``n_test`` samples."""
    return THEORY_TOL_SE * math.sqrt(0.25 / n_test)


#: the margin of the main claim: RSS with many unlabelled samples beats ERM by more than this (the paper: +0.23)
GAIN_MARGIN = 0.15


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    d: int
    n_grid: tuple[int, ...]  # unlabelled sizes at m = 10, alpha = 0 (the last one is the largest n)
    m40_ns: tuple[int, ...]  # unlabelled sizes at m = 40, alpha = 0
    alphas: tuple[float, float]  # a small and a large shift, at m = 10
    steps: int
    n_test: int
    reps: int
    lr: float = 0.05


FULL = Config(d=200, n_grid=(10, 100, 1000, 10_000), m40_ns=(400, 10_000), alphas=(0.5, 2.0), steps=300,
              n_test=20_000, reps=2)  # fmt: skip
SMOKE = Config(d=20, n_grid=(10, 100, 500), m40_ns=(400, 500), alphas=(0.5, 2.0), steps=25, n_test=1000, reps=1)


def settings(cfg: Config) -> list[tuple[int, int, float]]:
    """The (m, n, alpha) settings: the paper's simulation table (n grid at m = 10 without shift, the small shift at
    the two largest n, the large shift at the largest n, and m = 40)."""
    big, mid = cfg.n_grid[-1], cfg.n_grid[-2]
    small, large = cfg.alphas
    out = [(10, n, 0.0) for n in cfg.n_grid]
    out += [(10, mid, small), (10, big, small), (10, big, large)]
    out += [(40, n, 0.0) for n in cfg.m40_ns]
    return out


def metric(m: int, n: int, alpha: float) -> str:
    return f"m={m} n={n} α={alpha:g}"


# --------------------------------------------------------------------------- units
def run_unit(unit: tuple[int, int, float, int, int, Config]) -> dict[str, Any]:
    """All methods on one draw of one setting: simulated and closed-form accuracies."""
    m, n, alpha, seed, rep, cfg = unit
    seed_everything(seed)
    data = make_shifted_gmm(cfg.d, m, n, alpha, n_test=cfg.n_test, seed=1000 * seed + rep)
    x, xu = data.x.float(), data.x_unlabelled.float()
    ws = {ERM: mean_estimator(x, data.y)}
    ws[RERM] = fit_linear_rss(x, data.y, None, lam=0.0, steps=cfg.steps, lr=cfg.lr)
    ws[RSS] = fit_linear_rss(x, data.y, xu, lam=1.0, gamma=1.0, steps=cfg.steps, lr=cfg.lr)
    ws[ST] = fit_linear_rss(x, data.y, xu, lam=1.0, gamma=math.inf, steps=cfg.steps, lr=cfg.lr)
    sim, closed, cos_mu1 = {}, {}, {}
    for name, w in ws.items():
        w64 = w.double()
        sim[name] = float(((data.x_test @ w64).sign().long() == data.y_test).double().mean())
        closed[name] = float(linear_gmm_accuracy(w64, data.mu0))
        cos_mu1[name] = float(w64 @ data.mu1 / (w64.norm() * data.mu1.norm()))
    return {"sim": sim, "closed": closed, "cos_mu1": cos_mu1}


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
    under ``out_dir/30-ood-unlabeled-rss/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    sets = settings(cfg)
    # the largest n first (the slowest units)
    units = [(m, n, a, s, r, cfg) for (m, n, a) in sorted(sets, key=lambda t: -t[1]) for s in rep.seeds
             for r in range(cfg.reps)]  # fmt: skip
    outputs = rep.map(run_unit, units)
    done = {u[:5]: o for u, o in zip(units, outputs)}

    metrics = [metric(*s) for s in sets]
    table = Table(metrics, METHODS, baselines=[ERM])
    gaps: dict[int, list[float]] = {s: [] for s in rep.seeds}
    closed_mean: dict[str, dict[str, list[float]]] = {metric(*st): {k: [] for k in METHODS} for st in sets}
    cos_mu1: dict[str, list[float]] = {}
    for s in rep.seeds:
        for method in METHODS:
            values = {}
            for st in sets:
                outs = [done[(*st, s, r)] for r in range(cfg.reps)]
                values[metric(*st)] = float(np.mean([o["sim"][method] for o in outs]))
                closed_mean[metric(*st)][method].append(float(np.mean([o["closed"][method] for o in outs])))
                gaps[s] += [abs(o["sim"][method] - o["closed"][method]) for o in outs]
            table.add(method, s, values)
        for st in sets:
            cos_mu1.setdefault(metric(*st), []).append(
                float(np.mean([done[(*st, s, r)]["cos_mu1"][RSS] for r in range(cfg.reps)]))
            )

    tol = theory_tol(cfg.n_test)
    big, mid, low = cfg.n_grid[-1], cfg.n_grid[-2], cfg.n_grid[-3]
    small, large = cfg.alphas
    k_big, k_mid, k_low = metric(10, big, 0.0), metric(10, mid, 0.0), metric(10, low, 0.0)
    k_small, k_large = metric(10, big, small), metric(10, big, large)
    k_m40 = metric(40, cfg.m40_ns[-1], 0.0)
    rss = {k: table.values(RSS, k) for k in metrics}
    claims = [
        Claim.greater(table, RSS, ERM, k_big, margin=GAIN_MARGIN),
        Claim.greater(table, RSS, ERM, k_small),
        Claim.greater(table, RSS, ERM, k_m40),
        Claim.about(f"RSS accuracy grows with n (m=10, α=0): n={big} minus n={mid}",
                    [a - b for a, b in zip(rss[k_big], rss[k_mid])], ">"),
        Claim.about(f"RSS accuracy grows with n (m=10, α=0): n={mid} minus n={low}",
                    [a - b for a, b in zip(rss[k_mid], rss[k_low])], ">"),
        Claim.about(f"a larger shift helps less (m=10, n={big}): RSS at α={small:g} minus RSS at α={large:g}",
                    [a - b for a, b in zip(rss[k_small], rss[k_large])], ">"),
        Claim.about(f"theory vs simulation: max |simulated - exact accuracy Phi(<w,mu0>/|w|)| over all classifiers "
                    f"< {tol:.4f} (5 standard errors)", [max(gaps[s]) for s in rep.seeds], "<", tol),
    ]  # fmt: skip

    theory = {
        "bayes": bayes_accuracy(1.0),
        "erm_closed_form": {str(m): mean_estimator_accuracy(m, cfg.d) for m in (10, 40)},
        "shift_ceiling": {f"{a:g}": shifted_direction_accuracy(a) for a in (0.0, small, large)},
    }
    extra: dict[str, Any] = {
        "config": {k: getattr(cfg, k) for k in ("d", "n_grid", "m40_ns", "alphas", "steps", "n_test", "reps", "lr")},
        "settings": [list(s) for s in sets],
        "theory": theory,
        "closed_form_accuracy_per_seed": closed_mean,
        "rss_cosine_to_mu1_per_seed": cos_mu1,
        "max_sim_minus_closed_per_seed": [max(gaps[s]) for s in rep.seeds],
        "theory_tolerance": tol,
    }
    mean = table.mean
    erm10 = mean(ERM, k_big)
    notes = (
        f"ERM (mean estimator) measures {erm10:.3f} at m=10 and {mean(ERM, k_m40):.3f} at m=40; its closed-form "
        f"approximation Phi(|mu0|^2/sqrt(|mu0|^2 + d/m)) gives {theory['erm_closed_form']['10']:.3f} and "
        f"{theory['erm_closed_form']['40']:.3f}. RSS at m=10 grows with n: "
        + ", ".join(f"n={n}: {mean(RSS, metric(10, n, 0.0)):.3f}" for n in cfg.n_grid)
        + f"; with the shift at n={big}: α={small:g}: {mean(RSS, k_small):.3f}, α={large:g}: {mean(RSS, k_large):.3f} "
        f"(accuracy of the unlabelled mixture's own direction mu1: {theory['shift_ceiling'][f'{small:g}']:.3f} and "
        f"{theory['shift_ceiling'][f'{large:g}']:.3f}; Bayes {theory['bayes']:.3f}). Self-training without the "
        f"adversary (γ=∞) at m=10, n={big}, α=0: {mean(ST, k_big):.3f} vs RSS {mean(RSS, k_big):.3f}. Robust ERM "
        f"(λ=0) stays near the mean estimator ({mean(RERM, k_big):.3f} at m=10). Largest |simulated - exact| "
        f"accuracy over all classifiers: {max(max(g) for g in gaps.values()):.4f}."
    )
    result = rep.result(
        table,
        claims,
        setting=(
            f"isotropic two-Gaussian mixture, d={cfg.d}, |mu0|=1, sigma=1 (Bayes accuracy 0.841); unlabelled data "
            f"from the shifted mixture mu1 = mu0 + α v (v ⟂ mu0, |v|=1; α in {{0, {small:g}, {large:g}}}, i.e. "
            f"a mean shift of α|mu0|); m in {{10, 40}} labelled, n up to {big} unlabelled; linear w on the unit "
            f"sphere, ramp loss slope 1, closed-form Wasserstein-robust surrogate with cost |z-x|^2, γ=γ'=1, λ=1, "
            f"{cfg.steps} full-batch Adam steps (lr {cfg.lr}) from the mean estimator; test on {cfg.n_test} "
            f"in-domain samples; each seed's value is the mean of {cfg.reps} independent draws"
        ),
        scale_note=(
            "the paper's simulated Gaussian-mixture study at its own scale (d=200, n up to 10,000); the "
            "histopathology experiments (NCT-CRC-HE-100K, PatchCamelyon) are not run (not available offline); "
            "the robust part uses this project's choice of cost and optimiser (no official code)"
        ),
        notes=notes,
        highlight=(RSS, ERM, k_big),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Accuracy against the number of unlabelled samples (m = 10, alpha = 0) with the closed forms,
    and every setting's accuracies by method."""
    table, extra = result.table, result.extra
    cfg, theory = extra["config"], extra["theory"]
    fig, axes = subplots(2, width=6.0, width_ratios=[1.0, 1.6])
    ax = axes[0]
    ns = list(cfg["n_grid"])
    for method, style in ((RSS, "o-"), (ST, "s--"), (ERM, "^:")):
        vals = [table.summary(method, metric(10, n, 0.0)) for n in ns]
        ax.errorbar(ns, [v["mean"] for v in vals], yerr=[v["std"] for v in vals], fmt=style, capsize=2, label=method)
    small, large = cfg["alphas"]
    for a, marker in ((small, "D"), (large, "X")):
        v = table.summary(RSS, metric(10, ns[-1], a))
        ax.errorbar([ns[-1]], [v["mean"]], yerr=[v["std"]], fmt=marker, capsize=2, label=f"RSS, α={a:g}")
        ax.axhline(theory["shift_ceiling"][f"{a:g}"], color="grey", lw=0.6, ls="-.")
    ax.axhline(theory["bayes"], color="black", lw=0.8, label="Bayes Φ(1)")
    ax.axhline(theory["erm_closed_form"]["10"], color="tab:green", lw=0.8, ls=":", label="ERM closed form, m=10")
    ax.set_xscale("log")
    ax.set_xlabel("unlabelled samples n (m=10)")
    ax.set_ylabel("in-domain test accuracy")
    ax.set_title("accuracy vs n (grey: accuracy of μ1's direction)")
    ax.legend(fontsize=7, loc="center left")
    grouped_bars(axes[1], table, table.metrics, labels=[k.replace(" ", "\n") for k in table.metrics],
                 ylabel="test accuracy (mean ± std over seeds)", ylim=(0.5, 0.9), title="all settings")  # fmt: skip
    axes[1].legend(fontsize=7, loc="upper left")
    return finish(fig, result, "RSS on the shifted Gaussian mixture")
