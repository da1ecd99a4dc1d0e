"""Learning curves of linear probes and the feature statistics behind the dis-vs-gen theory.

Zheng et al., "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications"
(ICML 2023); official code ``ML-GSAI/Revisiting-Dis-vs-Gen-Classifiers``:

* :func:`learning_curve_comparison` — the paper's linear-evaluation protocol on frozen
  pre-trained features (test error of each classifier against the number of training samples
  ``m``, repeated random draws, min-max scaling fitted on each draw; official
  ``main_train_offline.py``);
* :func:`samples_to_reach` — the smallest ``m`` whose mean error is within a target, the
  stopping rule of the official simulation of the paper's Gaussian-mixture experiment (within
  0.01 of the Bayes error);
* :func:`feature_statistics` — the "sigmas", "kl" and "var_likelihood_diff" statistics the paper
  uses to check the theory's assumptions on real features (official ``plot.py --mode``);
* :func:`default_classifiers` — the paper's naive Bayes with a class-shared diagonal covariance
  and its discriminative counterpart, multiclass logistic regression (official ``lr_bgfs``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.engine.progress import progress as progress_bar
from paperzoo.models.gaussian_nb import SharedVarianceGaussianNB

__all__ = [
    "default_classifiers",
    "feature_statistics",
    "learning_curve_comparison",
    "samples_to_reach",
]

PERCENTILES = tuple(range(0, 101, 10))

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {"repeats": [Interval(int, 1, math.inf, closed="left")]}
"""Scalar parameters of :func:`learning_curve_comparison`."""


def default_classifiers() -> dict[str, Callable[[], Any]]:
    """``{"NB": SharedVarianceGaussianNB(), "LR": LogisticRegression(C=1, max_iter=1000)}`` as
    factories: the ``nb_diag`` and ``lr_bgfs`` models of the official code (L2, lbfgs, multinomial)."""
    return {"NB": SharedVarianceGaussianNB, "LR": partial(LogisticRegression, C=1.0, max_iter=1000)}


# --------------------------------------------------------------------------- checks
def _features(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, n_features), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _factory(name: str, spec: Any) -> Callable[[], Any]:
    if not isinstance(spec, type) and hasattr(spec, "fit"):
        return lambda: clone(spec)
    if callable(spec):
        return spec
    raise TypeError(f"classifiers[{name!r}] must be an estimator or a zero-argument factory, got {type(spec).__name__}")


# --------------------------------------------------------------------------- protocol
def learning_curve_comparison(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    sizes: Sequence[int],
    classifiers: Mapping[str, Any],
    repeats: int = 5,
    minmax: bool = True,
    seed: int = 0,
    *,
    progress: bool = False,
    max_redraws: int = 100_000,
    blas_threads: int | None = None,
) -> dict[str, Any]:
    """Test error against training-set size for several classifiers (the paper's linear-evaluation protocol).

    For every size ``m`` and repeat ``r``: draw ``m`` rows of the training set uniformly without
    replacement (redrawn while a class of ``y_train`` is missing; ``m = len(X_train)`` uses every
    row), fit a ``MinMaxScaler`` on the draw and apply it to the draw and the test set
    (``minmax=True``), fit a fresh copy of every classifier on the *same* draw, and record its
    test error. Draws come from ``np.random.default_rng([seed, m, r])``, so the draws at a given
    ``m`` do not depend on the rest of the grid.

    Args:
        X_train, y_train: training pool (N, n) and labels (N,).
        X_test, y_test: test set (N_test, n) and labels (N_test,).
        sizes: training-set sizes ``m`` (each in ``[#classes, N]``); sorted and deduplicated.
        classifiers: name -> zero-argument factory (e.g. ``SharedVarianceGaussianNB``) or an
            unfitted estimator (cloned for each fit).
        repeats: draws per size.
        minmax: min-max scale features per draw (the paper's ``--minmax``).
        seed: seed of the draws.
        progress: show a progress bar.
        max_redraws: give up (``RuntimeError``) after this many draws missing a class.
        blas_threads: limit the BLAS/OpenMP threads during the fits (``threadpoolctl``);
            None keeps the library default. One thread is often much faster for these small
            fits on a busy machine; the errors are the same up to rounding.

    Returns:
        ``{"sizes": (S,) int, "errors": {name: (repeats, S)}, "mean": {name: (S,)},
        "std": {name: (S,)}, "redraws": int, "convergence_warnings": {name: int}}`` with the
        standard deviation over repeats (``ddof=0``).
    """
    xtr = _features(X_train, "X_train")
    ytr = _labels(y_train, xtr.shape[0], "y_train")
    xte = _features(X_test, "X_test")
    yte = _labels(y_test, xte.shape[0], "y_test")
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"X_test must have {xtr.shape[1]} features like X_train, got {xte.shape[1]}")
    if not classifiers:
        raise ValueError("classifiers must name at least one classifier")
    factories = {str(k): _factory(str(k), v) for k, v in classifiers.items()}
    validate_params(_PARAMETER_CONSTRAINTS, {"repeats": repeats}, owner="learning_curve_comparison")
    classes = np.unique(ytr)
    n_pool = xtr.shape[0]
    grid = np.unique(np.asarray(list(sizes)))
    if grid.size == 0 or grid.dtype.kind not in "iu":
        raise ValueError(f"sizes must be a non-empty sequence of ints, got {list(sizes)!r}")
    if grid[0] < classes.size or grid[-1] > n_pool:
        raise ValueError(
            f"sizes must lie in [{classes.size}, {n_pool}] (at least one sample per class, at most the pool), "
            f"got {grid.tolist()}"
        )

    errors = {name: np.zeros((repeats, grid.size)) for name in factories}
    warned = dict.fromkeys(factories, 0)
    redraws = 0
    cells = [(i, r) for i in range(grid.size) for r in range(repeats)]
    with threadpool_limits(blas_threads):
        for i, r in progress_bar(cells, desc="learning curve", total=len(cells), enabled=progress):
            m = int(grid[i])
            idx, extra_draws = _draw(ytr, classes.size, m, np.random.default_rng([int(seed), m, r]), max_redraws)
            redraws += extra_draws
            x_fit, y_fit, x_eval = xtr[idx], ytr[idx], xte
            if minmax:
                scaler = MinMaxScaler().fit(x_fit)
                x_fit, x_eval = scaler.transform(x_fit), scaler.transform(x_eval)
            for name, make in factories.items():
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    model = make().fit(x_fit, y_fit)
                warned[name] += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
                errors[name][r, i] = float(np.mean(model.predict(x_eval) != yte))
    return {
        "sizes": grid.astype(np.int64),
        "errors": errors,
        "mean": {k: v.mean(axis=0) for k, v in errors.items()},
        "std": {k: v.std(axis=0) for k, v in errors.items()},
        "redraws": redraws,
        "convergence_warnings": warned,
    }


def _draw(y: np.ndarray, n_classes: int, m: int, rng: np.random.Generator, max_redraws: int) -> tuple[np.ndarray, int]:
    """Indices of ``m`` rows drawn uniformly without replacement (all rows, shuffled, when ``m``
    is the pool size), redrawn until every class appears; also the number of redraws."""
    n_pool = y.shape[0]
    for tries in range(max_redraws):
        idx = rng.permutation(n_pool) if m == n_pool else rng.choice(n_pool, size=m, replace=False)
        if np.unique(y[idx]).size == n_classes:
            return idx, tries
    raise RuntimeError(f"no draw of {m} samples contained all {n_classes} classes in {max_redraws} tries")


def samples_to_reach(sizes: Sequence[int], errors: Any, target: float) -> int | None:
    """Smallest size whose mean error is ``<= target`` (first crossing of the grid), else None.

    ``errors`` is (S,) mean errors or (repeats, S) per-draw errors (averaged over axis 0);
    this is the official simulation's stopping rule (``target = Bayes error + 0.01``).
    """
    grid = np.asarray(list(sizes))
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim == 2:
        err = err.mean(axis=0)
    if grid.ndim != 1 or err.shape != grid.shape:
        raise ValueError(f"errors must have shape ({grid.size},) or (repeats, {grid.size}), got {np.shape(errors)}")
    hit = np.flatnonzero(err <= target)
    return int(grid[hit[0]]) if hit.size else None


# --------------------------------------------------------------------------- feature statistics
def feature_statistics(
    X: Any,
    y: Any,
    official_divisor: bool = False,
    *,
    minmax: bool = True,
    var_smoothing: float = 1e-9,
) -> dict[str, Any]:
    """The feature statistics the paper uses to check the theory's assumptions on real features.

    The official code computes them in ``plot.py --mode sigmas / kl / var_likelihood_diff``.

    On (min-max scaled) training features, with :class:`SharedVarianceGaussianNB` fitted on
    them and ``L_ik = log N(x_i; mu_k, diag sigma^2)`` (full Gaussian log-likelihood, pooled
    variance):

    * ``"sigmas"``: the pooled variances ``sigma_j^2`` (n,) (the theory needs them bounded away
      from 0);
    * ``"kl"``: for every true class ``k`` and ordered pair ``k1 != k2``,
      ``|mean_{i in k} (L_ik1 - L_ik2)| / d`` — a per-dimension separation;
    * ``"var_likelihood_diff"``: the same with the variance (``ddof=0``) instead of the mean.

    ``d`` is the number of features ``n``; ``official_divisor=True`` divides by the number of
    classes ``K`` instead, as the released code does (which also assumes 10 balanced classes;
    here classes are grouped by label, so unbalanced classes are fine).

    Returns:
        ``{"sigmas": (n,), "kl": (P,), "var_likelihood_diff": (P,), "pairs": (P, 3) int
        [k, k1, k2] (row order of "kl"), "percentiles": {name: (11,) at 0, 10, ..., 100},
        "divisor": d}`` with ``P = K^2 (K - 1)``.
    """
    x = _features(X, "X")
    labels = _labels(y, x.shape[0], "y")
    if minmax:
        x = MinMaxScaler().fit_transform(x)
    nb = SharedVarianceGaussianNB(var_smoothing=var_smoothing).fit(x, labels)
    k = nb.classes_.size
    if k < 2:
        raise ValueError("feature_statistics needs at least 2 classes in y")
    var = nb.var_
    loglik = nb.class_scores(x) - np.log(nb.class_prior_) - 0.5 * np.sum(np.log(2.0 * np.pi * var))  # (N, K)
    divisor = float(k if official_divisor else x.shape[1])
    idx = np.searchsorted(nb.classes_, labels)
    k1, k2 = np.nonzero(~np.eye(k, dtype=bool))  # ordered pairs, row-major
    means, variances = np.empty((k, k1.size)), np.empty((k, k1.size))
    for c in range(k):  # one pass per class
        diff = loglik[idx == c][:, k1] - loglik[idx == c][:, k2]
        means[c], variances[c] = diff.mean(axis=0), diff.var(axis=0)
    kl = np.abs(means).ravel() / divisor
    vld = np.abs(variances).ravel() / divisor
    pairs = np.stack([np.repeat(np.arange(k), k1.size), np.tile(k1, k), np.tile(k2, k)], axis=1)
    stats = {"sigmas": var, "kl": kl, "var_likelihood_diff": vld}
    return {
        **stats,
        "pairs": pairs,
        "percentiles": {name: np.percentile(v, PERCENTILES) for name, v in stats.items()},
        "divisor": divisor,
    }
