"""Reproduction of paper 35, "Towards Exact Computation of Inductive Bias" (Boopathy, Yue, Hwang, Iyer
& Fiete, IJCAI 2024), scaled down (this project's reproduction, docs/papers/35-exact-inductive-bias.md).

The inductive bias a task requires, ``I(eps) = -ln P(e(h) <= eps)`` in nats, for two hypothesis
classes and three ways of computing it:

* hypothesis classes: the interpolating RBF Gaussian process (the paper's kernel-based sampling) and
  the official MLP trained from random initialisations (Adam 1e-3, MSE on the targets, batch 32,
  100 epochs, 20 trials, trained together as one ensemble);
* the exact value for the GP (the generalised chi-squared law of its test error, no sampling: an
  addition of this toolkit), and the paper's estimator, a scaled non-central chi-squared fitted to
  sampled errors, both as released (``scipy.stats.ncx2.fit``, location 0) and as our maximum-likelihood
  fit (a likelihood written in log space, where SciPy's log-density underflows).

Two tasks:

1. dimension sweep: ``x ~ N(0, I_D)``, ``y = sin(a^T x)`` with ``a = 2 u``, ``u`` uniform on the unit
   sphere (so ``a^T x ~ N(0, 4)`` at every D), D = 1, 2, 4, 8, 16, 100 train / 100 test points, RBF
   lengthscale sqrt(D), 1,000 GP samples, ``eps = 0.02``;
2. scikit-learn's 8x8 digits: pixels / 16, one-hot targets, a random 200 train / 300 test split per
   seed, RBF lengthscale = the median pairwise training distance, 1,000 GP samples, MLP 64-128-128-10.

Seeds vary the sweep's inputs and directions, the digits split, the GP draws and the MLP trials.
Units of work: one (sweep, D, seed), one (digits, seed), and one speed check (ours vs the naive
references, on the seed-0 digits split).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paperzoo.analysis.inductive_bias import (
    GPHypothesisSampler,
    NeuralHypothesisSampler,
    fit_ncx2,
    inductive_bias_from_errors,
    reference_sample_errors,
)
from paperzoo.engine import Claim, Result, Table
from paperzoo.engine.plots import finish, subplots
from paperzoo.engine.reproduce import start

PAPER = 35
DATA: tuple[str, ...] = ()
BUDGETS: tuple[str, ...] = ()

GP_EXACT = "GP (RBF), exact"
GP_OURS = "GP (RBF), ncx2 fit (ours, MLE)"
GP_OFFICIAL = "GP (RBF), ncx2 fit (official scipy)"
MLP_OURS = "MLP, ncx2 fit (ours, MLE)"
MLP_OFFICIAL = "MLP, ncx2 fit (official scipy)"
METHODS = (GP_EXACT, GP_OURS, GP_OFFICIAL, MLP_OURS, MLP_OFFICIAL)
#: method -> (hypothesis class, estimator)
_HOW = {
    GP_EXACT: ("gp", "exact"),
    GP_OURS: ("gp", "mle"),
    GP_OFFICIAL: ("gp", "scipy"),
    MLP_OURS: ("mlp", "mle"),
    MLP_OFFICIAL: ("mlp", "scipy"),
}
#: the paper's headline comparison is read at this target error on digits
EPS_CLAIM = 0.015
#: "massive" made concrete: the kernel class needs at least this many more nats than the MLP class
MARGIN_NATS = 100.0
#: the estimator claim: fitted / exact inductive bias above this ratio (within 10%)
RATIO = 0.9
#: target errors of the lengthscale-1 variant (the official default on raw pixels)
SIGMA1_EPS = (0.05, 0.03)
#: the estimator's own regime, as a control: errors that ARE a scaled ncx2 (df, nc, scale), 1,000 draws
#: per seed, read at eps = this fraction of the mean; fixed, with its tolerance, before the first run
NCX2_CONTROL = (300.0, 30.0, 1.0)
NCX2_CONTROL_EPS_FRAC = 0.5
#: tolerance of "fitted I = exact I" in the prediction-vs-measurement panel: |I_fit / I_exact - 1| <= 10%
#: (the estimator claim's 10%), both in the covered regime (ncx2 errors) and just outside it (GP errors, a
#: generalised chi-squared with unequal weights, where the single-ncx2 model is only an approximation)
PANEL_TOL = 0.10
#: timings of the speed check: the best of this many runs
REPEATS = 2


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    dims: tuple[int, ...]
    sweep_train: int
    sweep_test: int
    sweep_eps: float
    digits_train: int
    digits_test: int
    digits_eps: tuple[float, ...]
    eps_grid: tuple[float, ...]
    gp_samples: int
    trials: int
    epochs: int
    hidden: tuple[int, ...] = (128, 128)
    batch_size: int = 32
    lr: float = 1e-3
    speed_trials: int = 4
    speed_epochs: int = 20


FULL = Config(
    dims=(1, 2, 4, 8, 16), sweep_train=100, sweep_test=100, sweep_eps=0.02,
    digits_train=200, digits_test=300, digits_eps=(0.03, 0.016, 0.015, 0.014),
    eps_grid=tuple(float(v) for v in np.geomspace(0.012, 0.06, 13)),
    gp_samples=1000, trials=20, epochs=100,
)  # fmt: skip
SMOKE = Config(
    dims=(1, 4, 16), sweep_train=40, sweep_test=40, sweep_eps=0.02,
    digits_train=100, digits_test=100, digits_eps=(0.03, 0.015),
    eps_grid=(0.015, 0.03, 0.06),
    gp_samples=200, trials=4, epochs=5, speed_trials=2, speed_epochs=2,
)  # fmt: skip


def _subseed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


# --------------------------------------------------------------------------- tasks
def sweep_task(dim: int, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, ...]:
    """The dimension sweep's task: ``x ~ N(0, I_D)``, ``y = sin(a^T x)`` with ``a = 2 u``, ``u`` uniform on
    the unit sphere. Returns ``(X_tr, Y_tr, X_te, Y_te)``, targets of shape (n, 1)."""
    rng = np.random.default_rng(_subseed(seed, dim))
    u = rng.standard_normal(dim)
    a = 2.0 * u / np.linalg.norm(u)
    x = rng.standard_normal((n_train + n_test, dim))
    y = np.sin(x @ a)[:, None]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def digits_task(n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, ...]:
    """A random ``n_train`` / ``n_test`` split of the 1,797 digits (pixels / 16, one-hot targets)."""
    from paperzoo.data import load_digits

    digits = load_digits()
    x = digits.flat().astype(np.float64)
    y = np.eye(10)[digits.y]
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    return x[tr], y[tr], x[te], y[te]


def median_distance(x: np.ndarray) -> float:
    """Median pairwise Euclidean distance of the rows of ``x`` (the digits lengthscale)."""
    from scipy.spatial.distance import pdist

    return float(np.median(pdist(x)))


# --------------------------------------------------------------------------- units
def _classes(
    task: tuple[np.ndarray, ...], lengthscale: float, eps: np.ndarray, cfg: Config, seed: int
) -> dict[str, Any]:
    """I(eps) in nats by every method, and the median sampled test error of each class."""
    x, y, xt, yt = task
    gp = GPHypothesisSampler(lengthscale=lengthscale).fit(x, y)
    gp_err = gp.sample_errors(xt, yt, cfg.gp_samples, _subseed(seed, 1)).numpy()
    nn = NeuralHypothesisSampler(cfg.hidden, cfg.epochs, cfg.batch_size, cfg.lr)
    mlp_err = nn.sample_errors(x, y, xt, yt, cfg.trials, seed=_subseed(seed, 2)).numpy()
    out: dict[str, Any] = {"I": {}, "median": {}, "fit": {}}
    for method, (cls, how) in _HOW.items():
        errors = gp_err if cls == "gp" else mlp_err
        if how == "exact":
            value = gp.error_distribution(xt, yt).inductive_bias(eps, units="nats")
        else:
            est = inductive_bias_from_errors(errors, eps, units="nats", fit=f"ncx2_{how}")
            value = est.value
            out["fit"][method] = {"df": est.df, "nc": est.nc, "scale": est.scale}
        out["I"][method] = np.asarray(value, dtype=float).tolist()
        out["median"][method] = float(np.median(errors))
    out["mean_error"] = {"gp": float(gp_err.mean()), "mlp": float(mlp_err.mean())}
    return out


def sweep_unit(dim: int, seed: int, cfg: Config) -> dict[str, Any]:
    task = sweep_task(dim, cfg.sweep_train, cfg.sweep_test, seed)
    return _classes(task, math.sqrt(dim), np.array([cfg.sweep_eps]), cfg, _subseed(seed, dim, 7))


def digits_unit(seed: int, cfg: Config) -> dict[str, Any]:
    task = digits_task(cfg.digits_train, cfg.digits_test, seed)
    eps = np.array([*cfg.digits_eps, *cfg.eps_grid])
    out = _classes(task, median_distance(task[0]), eps, cfg, _subseed(seed, 99))
    out["lengthscale"] = median_distance(task[0])
    # the official code's default, RBF lengthscale 1 on the raw inputs: exact against both fits
    x, y, xt, yt = task
    gp = GPHypothesisSampler(lengthscale=1.0).fit(x, y)
    errors = gp.sample_errors(xt, yt, cfg.gp_samples, _subseed(seed, 98)).numpy()
    sigma1 = np.array(SIGMA1_EPS)
    out["sigma1"] = {
        "exact": np.asarray(gp.error_distribution(xt, yt).inductive_bias(sigma1, units="nats")).tolist(),
        **{
            how: np.asarray(inductive_bias_from_errors(errors, sigma1, units="nats", fit=f"ncx2_{how}").value).tolist()
            for how in ("mle", "scipy")
        },
        "median_error": float(np.median(errors)),
    }
    return out


def speed_unit(cfg: Config) -> dict[str, Any]:
    """Ours vs the naive references on the seed-0 digits split (wall-clock, one thread): the GP sampling
    step (eigenbasis vs ``scipy.linalg.sqrtm``), the ncx2 fit (ours vs ``scipy.stats.ncx2.fit``) and the
    neural trials (one ensemble vs one training per trial)."""
    x, y, xt, yt = digits_task(cfg.digits_train, cfg.digits_test, 0)
    gp = GPHypothesisSampler(lengthscale=median_distance(x)).fit(x, y)
    mu, cov = gp.posterior(xt)
    nn = NeuralHypothesisSampler(cfg.hidden, cfg.speed_epochs, cfg.batch_size, cfg.lr)
    # warm-up: the first optimiser step and the first fits import code; time what follows
    warm = NeuralHypothesisSampler(cfg.hidden, 1, cfg.batch_size, cfg.lr)
    warm.sample_errors(x[:8], y[:8], xt[:8], yt[:8], 1)
    warm.reference_sample_errors(x[:8], y[:8], xt[:8], yt[:8], 1)
    small = gp.sample_errors(xt, yt, 50, 1).numpy()
    reference_sample_errors(mu.numpy()[:8], cov.numpy()[:8, :8], yt[:8], 5, 0)
    fit_ncx2(small, "mle")
    fit_ncx2(small, "scipy")
    out: dict[str, Any] = {}

    ours, t_ours = _best_of(REPEATS, lambda: gp.sample_errors(xt, yt, cfg.gp_samples, 0).numpy())
    ref, t_ref = _best_of(REPEATS, lambda: reference_sample_errors(mu.numpy(), cov.numpy(), yt, cfg.gp_samples, 0))
    out["sampling"] = {"ours_s": t_ours, "reference_s": t_ref, "ours_mean": ours.mean(), "ref_mean": ref.mean()}

    a, t_ours = _best_of(REPEATS, lambda: fit_ncx2(ours, "mle"))
    b, t_ref = _best_of(REPEATS, lambda: fit_ncx2(ours, "scipy"))
    out["fit"] = {"ours_s": t_ours, "reference_s": t_ref, "ours_loglik": a.loglik, "ref_loglik": b.loglik}

    ens, t_ours = _best_of(REPEATS, lambda: nn.sample_errors(x, y, xt, yt, cfg.speed_trials, seed=0).numpy())
    loop, t_ref = _best_of(REPEATS, lambda: nn.reference_sample_errors(x, y, xt, yt, cfg.speed_trials, seed=0).numpy())
    out["mlp"] = {
        "ours_s": t_ours,
        "reference_s": t_ref,
        "trials": cfg.speed_trials,
        "epochs": cfg.speed_epochs,
        "max_rel_diff": float(np.max(np.abs(ens - loop) / loop)),
    }
    for v in out.values():
        v["ratio"] = v["reference_s"] / max(v["ours_s"], 1e-9)
    return out


def _best_of(n: int, fn: Any) -> tuple[Any, float]:
    """``(fn(), the fastest of n wall-clock timings)``."""
    best, out = math.inf, None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


#: One unit: ("sweep", D, seed, cfg) | ("digits", 0, seed, cfg) | ("speed", 0, 0, cfg).
Unit = tuple[str, int, int, Config]


def run_unit(unit: Unit) -> dict[str, Any]:
    """One unit of work (module level, picklable), seeded by its own seed."""
    kind, dim, seed, cfg = unit
    if kind == "sweep":
        return sweep_unit(dim, seed, cfg)
    if kind == "digits":
        return digits_unit(seed, cfg)
    if kind == "speed":
        return speed_unit(cfg)
    raise ValueError(f"unknown unit {kind!r}")


# --------------------------------------------------------------------------- run
def _sweep_metric(dim: int) -> str:
    return f"sweep I D={dim}"


def _digits_metric(eps: float) -> str:
    return f"digits I eps={eps:g}"


def log2_slope(dims: Sequence[int], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``log2(dims)`` (nats per doubling of D)."""
    return float(np.polyfit(np.log2(np.asarray(dims, dtype=float)), np.asarray(values, dtype=float), 1)[0])


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result files under
    ``out_dir/35-exact-inductive-bias/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units: list[Unit] = [("speed", 0, 0, cfg)]
    for seed in rep.seeds:
        units += [("digits", 0, seed, cfg)]
        units += [("sweep", d, seed, cfg) for d in cfg.dims]
    outputs = rep.map(run_unit, units)
    done = {(k, d, s): o for (k, d, s, _), o in zip(units, outputs)}
    speed = done["speed", 0, 0]

    n_eps = len(cfg.digits_eps)
    metrics = [
        *(_sweep_metric(d) for d in cfg.dims),
        *(_digits_metric(e) for e in cfg.digits_eps),
        "digits median test MSE",
    ]
    table = Table(metrics, METHODS, baselines=[GP_EXACT, GP_OFFICIAL])
    for seed in rep.seeds:
        dg = done["digits", 0, seed]
        for method in METHODS:
            values = {_sweep_metric(d): done["sweep", d, seed]["I"][method][0] for d in cfg.dims}
            values.update({_digits_metric(e): dg["I"][method][i] for i, e in enumerate(cfg.digits_eps)})
            values["digits median test MSE"] = dg["median"][method]
            table.add(method, seed, values)

    def slopes(method: str) -> list[float]:
        return [log2_slope(cfg.dims, [done["sweep", d, s]["I"][method][0] for d in cfg.dims]) for s in rep.seeds]

    eps_c = _digits_metric(EPS_CLAIM)
    ratio = [
        math.log(max(o, 1e-300) / max(e, 1e-300))
        for o, e in zip(table.values(GP_OFFICIAL, eps_c), table.values(GP_EXACT, eps_c))
    ]
    claims = [
        Claim.about(
            f"dimension sweep, GP exact: the inductive bias I({cfg.sweep_eps:g}) grows with the input dimension "
            f"(least-squares slope against log2 D over D = {list(cfg.dims)}, nats per doubling, > 0)",
            slopes(GP_EXACT),
            ">",
        ),
        Claim.about(
            f"dimension sweep, the paper's estimator (official ncx2 fit to {cfg.gp_samples} GP samples): "
            "I grows with the input dimension (slope against log2 D > 0)",
            slopes(GP_OFFICIAL),
            ">",
        ),
        Claim.greater(
            table,
            GP_OFFICIAL,
            MLP_OFFICIAL,
            eps_c,
            margin=MARGIN_NATS,
            statement=f"digits, eps = {EPS_CLAIM:g}, the paper's protocol (official ncx2 fit for both classes): the "
            f"kernel class needs more than {MARGIN_NATS:g} nats more inductive bias than the MLP class (the MLP "
            "encodes a massive amount of inductive bias)",
        ),
        Claim.greater(
            table,
            GP_EXACT,
            MLP_OURS,
            eps_c,
            margin=MARGIN_NATS,
            statement=f"digits, eps = {EPS_CLAIM:g}, exact kernel side: I_GP (exact) - I_MLP (our fit) > "
            f"{MARGIN_NATS:g} nats",
        ),
        Claim.about(
            f"digits, eps = {EPS_CLAIM:g} (deep tail): the paper's estimator (official ncx2 fit) recovers the exact "
            f"GP inductive bias within 10% (per seed, ln(I_fit / I_exact) > ln {RATIO:g})",
            ratio,
            ">",
            math.log(RATIO),
        ),
    ]
    seeds_list = list(rep.seeds)
    extra: dict[str, Any] = {
        "units": "nats",
        "eps_grid": list(cfg.eps_grid),
        "digits_curves": {
            m: np.mean([done["digits", 0, s]["I"][m][n_eps:] for s in seeds_list], axis=0).tolist() for m in METHODS
        },
        "digits_lengthscale": [done["digits", 0, s]["lengthscale"] for s in seeds_list],
        "digits_mean_error": {str(s): done["digits", 0, s]["mean_error"] for s in seeds_list},
        "digits_fits": {str(s): done["digits", 0, s]["fit"] for s in seeds_list},
        "sweep_dims": list(cfg.dims),
        "sweep_median_error": {str(s): {str(d): done["sweep", d, s]["median"] for d in cfg.dims} for s in seeds_list},
        "sweep_slopes": {m: slopes(m) for m in METHODS},
        "fit_over_exact_digits": {
            m: [f / e if e > 0 else None for f, e in zip(table.values(m, eps_c), table.values(GP_EXACT, eps_c))]
            for m in (GP_OURS, GP_OFFICIAL)
        },
        "speed": speed,
        "sigma1_eps": list(SIGMA1_EPS),
        "sigma1": {str(s): done["digits", 0, s]["sigma1"] for s in seeds_list},
    }
    extra["ncx2_control"] = ncx2_control(seeds_list, cfg.gp_samples)
    extra["outside"] = {
        "tolerance": PANEL_TOL,
        "eps": EPS_CLAIM,
        "exact": table.values(GP_EXACT, eps_c),
        "mle": table.values(GP_OURS, eps_c),
        "scipy": table.values(GP_OFFICIAL, eps_c),
    }
    sp = speed
    result = rep.result(
        table,
        claims,
        setting=(
            f"I(eps) = -ln P(test MSE <= eps), nats. Sweep: x ~ N(0, I_D), y = sin(a^T x), |a| = 2, D in "
            f"{list(cfg.dims)}, {cfg.sweep_train} train / {cfg.sweep_test} test, RBF lengthscale sqrt(D), eps "
            f"{cfg.sweep_eps:g}. Digits: pixels/16, one-hot, {cfg.digits_train} train / {cfg.digits_test} test "
            "(random split per seed), RBF lengthscale = median pairwise training distance. GP: noise-free "
            f"interpolation, jitter 1e-8, {cfg.gp_samples} sampled hypotheses for the fits; MLP "
            f"D-{'-'.join(map(str, cfg.hidden))}-k, Adam {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs, "
            f"{cfg.trials} trials; fits: scaled ncx2, location 0 (official: scipy.stats.ncx2.fit; ours: MLE with a "
            "log-space likelihood); exact: generalised chi-squared (Imhof / Lugannani-Rice saddle point)"
        ),
        scale_note=(
            "8x8 digits (200/300 points) and a synthetic regression sweep stand in for MNIST, CIFAR-10, Omniglot "
            "and inverted-pendulum control; 1,000 GP samples and 20 MLP trials instead of 10,000 and the paper's "
            "counts; one MLP architecture"
        ),
        notes=(
            f"Speed (one thread, seed-0 digits split): GP sampling ours {sp['sampling']['ours_s']:.2f} s vs sqrtm "
            f"{sp['sampling']['reference_s']:.2f} s ({sp['sampling']['ratio']:.1f}x); ncx2 fit ours "
            f"{sp['fit']['ours_s']:.3f} s vs scipy {sp['fit']['reference_s']:.3f} s ({sp['fit']['ratio']:.1f}x; "
            f"log-likelihood {sp['fit']['ours_loglik']:.2f} vs {sp['fit']['ref_loglik']:.2f}); MLP trials, "
            f"{sp['mlp']['trials']} x {sp['mlp']['epochs']} epochs, one ensemble {sp['mlp']['ours_s']:.2f} s vs one "
            f"by one {sp['mlp']['reference_s']:.2f} s ({sp['mlp']['ratio']:.1f}x, test errors agree to "
            f"{sp['mlp']['max_rel_diff']:.1e} relative). Wall-clock: reported, never a claim."
        ),
        highlight=(GP_OFFICIAL, MLP_OFFICIAL, eps_c),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def ncx2_control(seeds: Sequence[int], n: int) -> dict[str, Any]:
    """The covered regime of the estimator: errors drawn from the scaled ncx2 it assumes; per seed the
    exact -ln P(e <= eps) against both fits (nats), and whether each is within :data:`PANEL_TOL`."""
    from paperzoo.analysis.inductive_bias import GeneralizedChi2

    df, nc, scale = NCX2_CONTROL
    eps = NCX2_CONTROL_EPS_FRAC * (df + nc) * scale
    exact = float(GeneralizedChi2([scale], [nc], dof=[df]).inductive_bias(np.array([eps]), units="nats")[0])
    out: dict[str, Any] = {"df": df, "nc": nc, "scale": scale, "eps": eps, "n": n, "tolerance": PANEL_TOL,
                           "exact": [exact] * len(seeds), "mle": [], "scipy": []}  # fmt: skip
    for s in seeds:
        errors = scale * np.random.default_rng(_subseed(s, 35, 1)).noncentral_chisquare(df, nc, size=n)
        for how in ("mle", "scipy"):
            out[how].append(float(inductive_bias_from_errors(errors, eps, units="nats", fit=f"ncx2_{how}").value))
    out["within_tolerance"] = {h: bool(all(abs(v / exact - 1) <= PANEL_TOL for v in out[h])) for h in ("mle", "scipy")}
    return out


def _prediction_panel(ax: Any, extra: dict[str, Any]) -> None:
    """Exact I (the prediction) against the fitted I (the measurement) per seed, y = x and the tolerance
    band: the covered regime (ncx2 errors) and just outside it (GP errors on digits)."""
    ctrl, out = extra["ncx2_control"], extra["outside"]
    tol = out["tolerance"]
    for data, label, colour in ((ctrl, "ncx2 errors (covered)", "C0"), (out, "GP digits errors (outside)", "C3")):
        for how, mk in (("mle", "o"), ("scipy", "s")):
            ax.plot(data["exact"], data[how], mk, color=colour, ms=5, mfc="none" if how == "scipy" else colour,
                    label=f"{label}, {'ours' if how == 'mle' else 'official'} fit")  # fmt: skip
    vals = [v for d in (ctrl, out) for k in ("exact", "mle", "scipy") for v in d[k] if v > 0]
    lo, hi = min(vals) * 0.5, max(vals) * 1.5
    grid = np.geomspace(lo, hi, 50)
    ax.plot(grid, grid, "k-", lw=1, label="y = x (prediction)")
    ax.fill_between(grid, grid * (1 - tol), grid * (1 + tol), color="grey", alpha=0.25, label=f"±{tol:.0%}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("exact I(eps) [nats]")
    ax.set_ylabel("fitted I(eps) [nats], per seed")
    ax.set_title("prediction vs measurement", fontsize=10)
    ax.legend(fontsize=6)


def make_figure(result: Result) -> Any:
    """I against D (sweep), I(eps) on digits (mean over seeds), and the fit / exact ratio on digits."""
    table, extra = result.table, result.extra
    fig, axes = subplots(4, width=5.2, height=4.2)
    dims = extra["sweep_dims"]
    styles = {
        GP_EXACT: ("k", "o", "-"),
        GP_OURS: ("tab:blue", "s", "--"),
        GP_OFFICIAL: ("tab:cyan", "^", ":"),
        MLP_OURS: ("tab:red", "s", "--"),
        MLP_OFFICIAL: ("tab:orange", "^", ":"),
    }
    for m in table.methods:
        c, mk, ls = styles[m]
        summ = [table.summary(m, _sweep_metric(d)) for d in dims]
        mean = np.array([s["mean"] for s in summ])
        std = np.array([s["std"] for s in summ])
        axes[0].errorbar(dims, mean + 1.0, yerr=std, color=c, marker=mk, ls=ls, capsize=2, label=m)
    axes[0].set_xscale("log", base=2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("input dimension D")
    axes[0].set_ylabel("1 + I(eps) [nats], mean ± std over seeds")
    axes[0].set_title("dimension sweep (sin(a^T x))", fontsize=10)
    axes[0].legend(fontsize=7)
    grid = extra["eps_grid"]
    for m, curve in extra["digits_curves"].items():
        c, mk, ls = styles[m]
        axes[1].plot(grid, np.asarray(curve) + 1.0, color=c, marker=mk, ls=ls, ms=3, label=m)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("target test MSE eps")
    axes[1].set_ylabel("1 + I(eps) [nats], mean over seeds")
    axes[1].set_title("digits: kernel vs MLP hypothesis classes", fontsize=10)
    exact = np.asarray(extra["digits_curves"][GP_EXACT])
    for m in (GP_OURS, GP_OFFICIAL):
        c, mk, ls = styles[m]
        with np.errstate(divide="ignore", invalid="ignore"):
            axes[2].plot(grid, np.asarray(extra["digits_curves"][m]) / exact, color=c, marker=mk, ls=ls, label=m)
    axes[2].axhline(1.0, color="grey", lw=1)
    axes[2].axhline(RATIO, color="grey", lw=1, ls="--", label=f"{RATIO:g} (claim)")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("target test MSE eps")
    axes[2].set_ylabel("fitted I / exact I (GP, digits)")
    axes[2].set_title("the ncx2 estimator against the exact value", fontsize=10)
    axes[2].legend(fontsize=7)
    _prediction_panel(axes[3], result.extra)
    return finish(fig, result, "inductive bias: kernel vs MLP, estimator vs exact")
