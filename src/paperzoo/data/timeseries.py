"""Offline multivariate time series for imputation, in PyPOTS's layout (windows (N, T, F), NaN = missing).

Nothing here downloads (BenchPOTS / TSDB loaders do; they are never used):

* :func:`shared_latent_sinusoids`: generated windows whose channels are fixed mixtures of a few
  sinusoids with per-window frequencies and phases - strong global structure shared by all channels;
* :func:`load_basic_motions`: sktime's bundled BasicMotions (80 series x 6 channels x 100 steps);
* :func:`load_statsmodels_series`: statsmodels' bundled ``macrodata`` (203 x 14), ``co2`` (weekly, with
  gaps) and ``fertility`` (219 countries x 54 years, ~13 % naturally missing);
* :func:`sliding_windows` (``pypots.data.sliding_window``), :func:`standardise` (train statistics),
  :func:`add_missingness` (PyGrinder ``mcar`` / ``seq_missing`` / ``block_missing`` under a seed) and
  :func:`make_imputation_splits`, the BenchPOTS protocol: the same artificial missingness on train,
  validation and test, ground truth kept for validation and test;
* :func:`check_windows`: the boundary check of every function here (and of the Glocal-IB imputers): a
  3-D float array with no window whose every value is missing.

Used by the Glocal-IB reproduction (paper 06).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from paperzoo._validation import Interval, Options, validate_params

__all__ = [
    "ImputationSplits",
    "add_missingness",
    "check_windows",
    "indicating_mask",
    "load_basic_motions",
    "load_statsmodels_series",
    "make_imputation_splits",
    "quiet_stdout",
    "shared_latent_sinusoids",
    "sliding_windows",
    "standardise",
]

PATTERNS = ("point", "subseq", "block")
STATSMODELS_SETS = ("macrodata", "co2", "fertility")

_POS_INT = [Interval(int, 1, math.inf, closed="left")]
_SEED = [Interval(int, 0, 2**32 - 1, closed="both")]
_MISSING_CONSTRAINTS = {
    "rate": [Interval(float, 0, 1, closed="neither")],
    "pattern": [Options(PATTERNS)],
    "seed": _SEED,
    "seq_len": _POS_INT,
    "block_len": _POS_INT,
    "block_width": _POS_INT,
}


def check_windows(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a float array (N, T, F), N, T, F >= 1, no infinite value, and no window with every value
    missing (NaN). Returns it as a NumPy array (float32 kept, other floats to float64).

    Raises:
        ValueError / TypeError naming ``name``.
    """
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.dtype.kind not in "fiu" or X.dtype == np.bool_:
        raise TypeError(f"{name} must be a real-valued array (N, T, F), got dtype {X.dtype}")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    if X.ndim != 3:
        raise ValueError(f"{name} must have shape (N windows, T steps, F features), got {X.shape}")
    if min(X.shape) == 0:
        raise ValueError(f"{name} must have at least one window, step and feature, got shape {X.shape}")
    if np.isinf(X).any():
        raise ValueError(f"{name} contains infinite values")
    empty = np.isnan(X).all(axis=(1, 2))
    if empty.any():
        bad = np.flatnonzero(empty)
        raise ValueError(
            f"{name}: {bad.size} window(s) have every value missing (first: window {int(bad[0])}); "
            "drop them or use a longer window"
        )
    return X


@contextlib.contextmanager
def quiet_stdout() -> Any:
    """Discard what is printed to stdout (PyPOTS's dependency ai4ts prints a banner when imported; the
    sink has an encoding, which that banner code reads)."""
    sink = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(sink):
        yield
    sink.detach()


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Any:
    """Seed NumPy's global RNG (PyGrinder draws from it) and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# --------------------------------------------------------------------------- generator
def shared_latent_sinusoids(
    n_windows: int,
    n_steps: int = 48,
    n_features: int = 8,
    *,
    n_components: int = 3,
    noise: float = 0.1,
    freq_range: tuple[float, float] = (1.0, 4.0),
    seed: int = 0,
    data_seed: int = 0,
) -> np.ndarray:
    """Windows ``x_c(t) = sum_k A_ck sin(2 pi f_k t / T + phi_k) + noise * eps`` (float32, (N, T, F)).

    The mixing ``A ~ N(0, 1)`` (F x K) is fixed by ``data_seed`` (one data set); frequencies
    ``f_k ~ U(freq_range)``, phases ``phi_k ~ U(0, 2 pi)`` and the noise are drawn per window from ``seed``.
    Every channel is a view of the same K latent sinusoids: strong global (cross-channel, whole-window)
    structure, the regime Glocal-IB targets.
    """
    validate_params(
        {
            "n_windows": _POS_INT,
            "n_steps": _POS_INT,
            "n_features": _POS_INT,
            "n_components": _POS_INT,
            "noise": [Interval(float, 0, math.inf, closed="left")],
            "seed": _SEED,
            "data_seed": _SEED,
        },
        {
            "n_windows": n_windows,
            "n_steps": n_steps,
            "n_features": n_features,
            "n_components": n_components,
            "noise": noise,
            "seed": seed,
            "data_seed": data_seed,
        },
        owner="shared_latent_sinusoids",
    )
    lo, hi = freq_range
    if not 0 <= lo <= hi:
        raise ValueError(
            f"shared_latent_sinusoids: freq_range must be (low, high) with 0 <= low <= high, got {freq_range}"
        )
    mixing = np.random.default_rng([data_seed, 6]).normal(size=(n_features, n_components))
    rng = np.random.default_rng([seed, 6, 1])
    f = rng.uniform(lo, hi, size=(n_windows, 1, n_components))
    phi = rng.uniform(0.0, 2 * np.pi, size=(n_windows, 1, n_components))
    t = np.arange(n_steps, dtype=np.float64)[None, :, None]
    latent = np.sin(2 * np.pi * f * t / n_steps + phi)  # (N, T, K)
    x = latent @ mixing.T + noise * rng.standard_normal((n_windows, n_steps, n_features))
    return x.astype(np.float32)


# --------------------------------------------------------------------------- offline sets
def load_basic_motions() -> tuple[np.ndarray, np.ndarray]:
    """sktime's bundled BasicMotions: series (80, 100, 6) float64 as (N, T, F) and labels (80,) str
    (the first 40 are sktime's train split, the last 40 its test split)."""
    from sktime.datasets import load_basic_motions as _load

    xs, ys = [], []
    for split in ("train", "test"):
        X, y = _load(split=split, return_type="numpy3D")
        xs.append(np.transpose(np.asarray(X, dtype=np.float64), (0, 2, 1)))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def load_statsmodels_series(name: str) -> np.ndarray:
    """One of statsmodels' bundled series as (T, F) float64 with NaN for missing values:
    ``"macrodata"`` (203 quarters x 12 numeric columns, no gaps), ``"co2"`` (2,284 weeks x 1, with gaps),
    ``"fertility"`` (54 years x 219 countries, ~13 % naturally missing)."""
    validate_params({"name": [Options(STATSMODELS_SETS)]}, {"name": name}, owner="load_statsmodels_series")
    import statsmodels.api as sm

    if name == "macrodata":
        df = sm.datasets.macrodata.load_pandas().data.drop(columns=["year", "quarter"])
        return df.to_numpy(dtype=np.float64)
    if name == "co2":
        return sm.datasets.co2.load_pandas().data.to_numpy(dtype=np.float64)
    df = sm.datasets.fertility.load_pandas().data
    years = [c for c in df.columns if str(c).isdigit()]
    return df[years].to_numpy(dtype=np.float64).T


def sliding_windows(series: np.ndarray, window: int, stride: int | None = None) -> np.ndarray:
    """Windows (N, window, F) of a (T, F) series with ``pypots.data.sliding_window`` (stride defaults
    to ``window``, at most ``window``; ``window`` shorter than the series); windows with every value
    missing are dropped."""
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 2 or min(series.shape) == 0:
        raise ValueError(f"series must have shape (T steps, F features), got {series.shape}")
    validate_params(
        {"window": _POS_INT, "stride": [*_POS_INT, None]}, {"window": window, "stride": stride}, owner="sliding_windows"
    )
    if window >= series.shape[0]:
        raise ValueError(f"sliding_windows: window must be < the series length {series.shape[0]}, got {window}")
    if stride is not None and stride > window:
        raise ValueError(f"sliding_windows: stride must be <= window ({window}), got {stride}")
    with quiet_stdout():  # PyPOTS's dependency ai4ts prints a banner on import
        from pypots.data import sliding_window
    out = np.asarray(sliding_window(series, window, stride or window), dtype=np.float64)
    return out[~np.isnan(out).all(axis=(1, 2))]


def standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each array standardised per feature with the train windows' observed mean and std (NaN kept);
    a constant feature gets std 1."""
    train = check_windows(train, "train")
    mean = np.nanmean(train, axis=(0, 1), keepdims=True)
    std = np.nanstd(train, axis=(0, 1), keepdims=True)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    outs = [train] + [check_windows(o, f"others[{i}]") for i, o in enumerate(others)]
    return tuple(((o - mean) / std).astype(train.dtype) for o in outs)


# --------------------------------------------------------------------------- missingness
def add_missingness(
    X: np.ndarray,
    rate: float,
    pattern: str = "point",
    *,
    seed: int,
    seq_len: int = 6,
    block_len: int = 6,
    block_width: int = 2,
) -> np.ndarray:
    """A copy of ``X`` (N, T, F) with artificial missingness (NaN) from PyGrinder, drawn under ``seed``
    (NumPy's global RNG is restored afterwards): ``"point"`` = ``mcar(X, rate)``; ``"subseq"`` =
    ``seq_missing(X, rate, seq_len)``; ``"block"`` = ``block_missing(X, factor=rate, block_len,
    block_width)``. Raises if a window ends with every value missing."""
    validate_params(
        _MISSING_CONSTRAINTS,
        {"rate": rate, "pattern": pattern, "seed": seed, "seq_len": seq_len, "block_len": block_len,
         "block_width": block_width},
        owner="add_missingness",
    )  # fmt: skip
    X = check_windows(X, "X")
    with _numpy_seed(seed):
        out = _draw(X, rate, pattern, seq_len, block_len, block_width)
    return check_windows(out, "X after add_missingness (lower rate or longer windows)")


def _draw(X: np.ndarray, rate: float, pattern: str, seq_len: int, block_len: int, block_width: int) -> np.ndarray:
    from pygrinder import block_missing, mcar, seq_missing

    if pattern == "point":
        return np.asarray(mcar(X, rate))
    if pattern == "subseq":
        return np.asarray(seq_missing(X, rate, seq_len))
    return np.asarray(block_missing(X, factor=rate, block_len=block_len, block_width=block_width))


def indicating_mask(X_masked: np.ndarray, X_ori: np.ndarray) -> np.ndarray:
    """1.0 where ``X_ori`` is observed and ``X_masked`` is not (the evaluated, artificially hidden
    entries): ``isnan(X_masked) XOR isnan(X_ori)`` (the masked data only ever hides more)."""
    X_masked, X_ori = np.asarray(X_masked), np.asarray(X_ori)
    if X_masked.shape != X_ori.shape:
        raise ValueError(f"X_ori must have the shape of X_masked {X_masked.shape}, got {X_ori.shape}")
    return (np.isnan(X_masked) ^ np.isnan(X_ori)).astype(np.float32)


@dataclass(frozen=True)
class ImputationSplits:
    """Train / validation / test windows with the same artificial missingness, as PyPOTS wants them:
    ``train_set()`` = ``{"X": train_X}``, ``val_set()`` = ``{"X": val_X, "X_ori": val_X_ori}``; evaluate
    an imputation of ``test_X`` on :attr:`test_indicating_mask` against :attr:`test_X_ori`."""

    train_X: np.ndarray
    train_X_ori: np.ndarray
    val_X: np.ndarray
    val_X_ori: np.ndarray
    test_X: np.ndarray
    test_X_ori: np.ndarray
    rate: float
    pattern: str

    def train_set(self) -> dict[str, np.ndarray]:
        return {"X": self.train_X}

    def val_set(self) -> dict[str, np.ndarray]:
        return {"X": self.val_X, "X_ori": self.val_X_ori}

    @property
    def test_indicating_mask(self) -> np.ndarray:
        return indicating_mask(self.test_X, self.test_X_ori)


def make_imputation_splits(
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    rate: float,
    pattern: str = "point",
    *,
    seed: int,
    **pattern_kwargs: int,
) -> ImputationSplits:
    """The BenchPOTS protocol: the same artificial missingness (as :func:`add_missingness`) on all three
    splits, drawn under one ``seed`` in the order train, val, test; the un-masked windows are the ground
    truth (``X_ori``, which may itself have natural gaps). Arrays are returned as float32."""
    kw = {"seq_len": 6, "block_len": 6, "block_width": 2, **pattern_kwargs}
    validate_params(
        _MISSING_CONSTRAINTS, {"rate": rate, "pattern": pattern, "seed": seed, **kw}, owner="make_imputation_splits"
    )
    split = {}
    with _numpy_seed(seed):
        for name, X in (("train", train), ("val", val), ("test", test)):
            X = check_windows(X, name).astype(np.float32)
            masked = check_windows(_draw(X, rate, pattern, **kw), f"{name} after the missingness (lower rate)")
            split[name] = (masked.astype(np.float32), X)
    return ImputationSplits(
        split["train"][0], split["train"][1], split["val"][0], split["val"][1], split["test"][0], split["test"][1],
        rate, pattern,
    )  # fmt: skip
