"""The inductive bias a task requires, as information: estimated, and computed exactly for kernels.

Boopathy, Yue, Hwang, Iyer and Fiete, "Towards Exact Computation of Inductive Bias" (IJCAI 2024,
arXiv:2406.15941); official code ``FieteLab/Exact-Inductive-Bias`` (``utils.py``,
``kernel_inductive_bias.py``, ``nn_inductive_bias.py``), read for the estimator and both samplers.

Fix a task (training set, test set, squared loss), a hypothesis space and a distribution ``p_h``
over hypotheses that fit the training data. The inductive bias required to reach test error ``eps``
is the information needed to single out a hypothesis that good:

    I(eps) = -log P_{h ~ p_h}[ e(h) <= eps ],    e(h) = mean over test points and outputs of (h - y)^2.

Good hypotheses are far too rare to count, so the paper samples a modest number of hypotheses,
fits a scaled non-central chi-squared to their test errors by maximum likelihood (location 0) and
reads the far lower tail off the fitted CDF, with Sankaran's normal approximation where the log-CDF
underflows. Two samplers: a Gaussian process conditioned to interpolate the training data
(the paper's kernel-based sampling, its Algorithm 1) and neural networks trained from random
initialisations.

What is here:

* the estimator: :func:`fit_ncx2` (our maximum-likelihood fit, the official ``scipy.stats.ncx2.fit``
  as the reference, and a closed-form moment fit), :func:`inductive_bias_from_errors`,
  :func:`sankaran_z`, :func:`inductive_bias_curve`, :func:`encoded_bias`;
* the exact error distribution of the kernel sampler: for a GP posterior ``N(mu, C)`` the test
  error is a generalised chi-squared variable, :class:`GeneralizedChi2`, whose log-CDF is computed
  without sampling (Imhof's inversion formula in the bulk, the Lugannani-Rice saddle-point
  approximation in log space in the deep tail); :func:`exact_inductive_bias_gp` is the oracle the
  estimator is checked against (an addition of this toolkit: the paper estimates by fitting);
* the kernel sampler :class:`GPHypothesisSampler` (RBF kernel, closed-form posterior; the
  official iterative Adam solve as an option), with its naive reference
  :func:`reference_sample_errors` (the official symmetric square root ``scipy.linalg.sqrtm``);
* the neural sampler :class:`NeuralHypothesisSampler` (the official MLP, Adam, MSE on one-hot
  targets), which trains all trials at once as one :class:`MLPEnsemble` (batched matrix products,
  each member with its own initialisation and data order) through :func:`paperzoo.engine.fit`,
  and trains them one by one as the reference;
* a user's own hypothesis class: :func:`estimate_inductive_bias` (a factory of ``nn.Module`` s and data
  loaders, a progress bar over trials) and :func:`plot_error_distribution` (the errors, the fitted ncx2
  and the target error).

Units: the paper speaks of an amount of information; the official code returns natural
logarithms. Every function takes ``units="bits"`` (the default) or ``"nats"``; bits = nats / ln 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params

__all__ = [
    "UNITS",
    "GPHypothesisSampler",
    "GeneralizedChi2",
    "InductiveBiasEstimate",
    "MLPEnsemble",
    "ModelClassBias",
    "Ncx2Fit",
    "NeuralHypothesisSampler",
    "encoded_bias",
    "estimate_inductive_bias",
    "exact_inductive_bias_gp",
    "fit_ncx2",
    "inductive_bias_curve",
    "inductive_bias_from_errors",
    "plot_error_distribution",
    "rbf_kernel",
    "reference_sample_errors",
    "sankaran_z",
]

F64 = torch.float64
#: nats per unit: I in bits = I in nats / ln 2
UNITS: dict[str, float] = {"nats": 1.0, "bits": math.log(2.0)}
#: the Imhof integral is trusted down to this CDF value; below it ``method="auto"`` uses the saddle point
IMHOF_MIN_CDF = 1e-9

_POS = [Interval(float, 0.0, math.inf, closed="neither")]
_NONNEG = [Interval(float, 0.0, math.inf, closed="left")]
_POS_INT = [Interval(int, 1, math.inf, closed="left")]
_PARAMS: dict[str, list[Constraint]] = {
    "units": [Options(("bits", "nats"))],
    "fit": [Options(("ncx2_mle", "ncx2_scipy", "ncx2_moments"))],
    "fallback": [Options(("log_ndtr", "official", "saddlepoint"))],
    "moment_df": [*_POS, None],
    "method": [Options(("auto", "imhof", "saddlepoint"))],
    "kernel": [Options(("rbf",))],
    "lengthscale": _POS,
    "jitter": _NONNEG,
    "solver": [Options(("cholesky", "adam"))],
    "adam_epochs": _POS_INT,
    "adam_lr": _POS,
    "num_samples": _POS_INT,
    "num_trials": _POS_INT,
    "num_members": _POS_INT,
    "epochs": _POS_INT,
    "batch_size": _POS_INT,
    "lr": _POS,
    "chunk": _POS_INT,
    "seed": [Interval(int, 0, math.inf, closed="left")],
    "zero_tol": [*_NONNEG, None],
}


def _check(owner: str, **params: Any) -> None:
    validate_params({k: _PARAMS[k] for k in params}, params, owner=owner)


# --------------------------------------------------------------------------- input helpers
def _errors_array(errors: Any, owner: str) -> np.ndarray:
    """Sampled test errors as a 1-D float64 array: finite, non-negative, at least 3, not all equal."""
    arr = errors.detach().cpu().numpy() if isinstance(errors, Tensor) else np.asarray(errors)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{owner}: errors must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{owner}: errors must have shape (N,), got {arr.shape}")
    if arr.size < 3:
        raise ValueError(f"{owner}: needs at least 3 sampled errors, got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{owner}: errors contains NaN or infinite values")
    if (arr < 0).any():
        raise ValueError(f"{owner}: errors must be non-negative (squared errors), got a minimum of {arr.min()}")
    if np.ptp(arr) <= 1e-12 * max(arr.mean(), 1e-300):
        raise ValueError(f"{owner}: the sampled errors are all equal; no distribution can be fitted")
    return arr


def _targets(target_error: Any, owner: str) -> tuple[np.ndarray, bool]:
    """``(eps as a 1-D float64 array, whether a scalar was given)``; every eps finite and > 0."""
    if isinstance(target_error, Tensor):
        target_error = target_error.detach().cpu().numpy()
    arr = np.asarray(target_error, dtype=np.float64)
    scalar = arr.ndim == 0
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{owner}: target_error is empty")
    if not np.isfinite(arr).all() or (arr <= 0).any():
        raise ValueError(f"{owner}: target_error must be finite and > 0, got {target_error!r}")
    return arr, scalar


def _as_matrix(x: Any, name: str, rows: int | None = None, cols: int | None = None) -> Tensor:
    """A float64 (n, d) tensor (a 1-D input is one feature per row), finite and non-empty."""
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be a real array, got dtype {t.dtype}")
    t = t.to(F64)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if rows is not None and t.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {tuple(t.shape)}")
    if cols is not None and t.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {tuple(t.shape)}")
    check_finite(t, name)
    return t


def _out(values: np.ndarray, scalar: bool) -> Any:
    return float(values[0]) if scalar else values


# --------------------------------------------------------------------------- the ncx2 fit
class Ncx2Fit(NamedTuple):
    """A scaled non-central chi-squared ``scale * ncx2(df, nc)`` (location 0) and its log-likelihood."""

    df: float
    nc: float
    scale: float
    loglik: float

    def logcdf(self, x: Any) -> np.ndarray:
        from scipy import stats

        return np.asarray(stats.ncx2.logcdf(np.asarray(x, dtype=np.float64), self.df, self.nc, 0.0, self.scale))


def _log_bessel_i(v: float, z: np.ndarray) -> np.ndarray:
    """``log I_v(z)`` (v > -1, z > 0): ``log(ive(v, z)) + z``, and where ``ive`` underflows (large order,
    small argument) the uniform asymptotic expansion of Debye to third order (relative error below 1e-8
    for v >= 30, the region where the underflow happens)."""
    from scipy import special

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        ive = special.ive(v, z)
        out = np.log(ive) + z
    bad = ~(ive > 1e-280) | ~np.isfinite(out)
    if bad.any():
        zb = z[bad]
        t = zb / v
        sq = np.sqrt(1.0 + t * t)
        p = 1.0 / sq
        eta = sq + np.log(t / (1.0 + sq))
        u1 = (3 * p - 5 * p**3) / 24
        u2 = (81 * p**2 - 462 * p**4 + 385 * p**6) / 1152
        u3 = (30375 * p**3 - 369603 * p**5 + 765765 * p**7 - 425425 * p**9) / 414720
        series = np.log1p(u1 / v + u2 / v**2 + u3 / v**3)
        out[bad] = -0.5 * np.log(2 * math.pi * v) - 0.5 * np.log(sq) + v * eta + series
    return out


def _ncx2_logpdf(x: np.ndarray, df: float, nc: float, scale: float) -> np.ndarray:
    """Log-density of ``scale * ncx2(df, nc)``, written out with the Bessel function in log space.

    ``scipy.stats.ncx2.logpdf`` returns ``-inf`` over whole regions of large ``df`` and small ``nc``
    (e.g. df = 1280, nc = 1.3 near the mean), which traps a likelihood search; this form does not.
    """
    from scipy import stats

    u = x / scale
    if nc <= 0.0:
        return np.asarray(stats.chi2.logpdf(u, df)) - math.log(scale)
    v = df / 2.0 - 1.0
    with np.errstate(divide="ignore"):
        core = -(u + nc) / 2.0 + (v / 2.0) * np.log(u / nc) + _log_bessel_i(v, np.sqrt(nc * u))
    return core - math.log(2.0 * scale)


def _ncx2_loglik(x: np.ndarray, df: float, nc: float, scale: float) -> float:
    return float(np.sum(_ncx2_logpdf(x, df, nc, scale)))


def _moment_fit(x: np.ndarray, df: float | None) -> tuple[float, float, float]:
    """``(df, nc, scale)`` matching the sample mean and variance (``df`` given), or the mean,
    variance and third central moment (``df=None``), with the skewness clipped into the family's range.

    With location 0 the family has ``m * mu3 / v^2 = 2 (df + 3 nc)(df + nc) / (df + 2 nc)^2`` in
    [1.5, 2] (2: central chi-squared, 1.5: the limit df -> 0): outside it the nearest end is used.
    """
    m, v = float(x.mean()), float(x.var())
    if df is not None:
        disc = m * m - df * v / 2.0
        if disc <= 0:  # no nc >= 0 reaches this variance with that df: the central chi-squared of that df
            return float(df), 0.0, m / df
        s = (m - math.sqrt(disc)) / df
        return float(df), max(m / s - df, 0.0), s
    mu3 = float(np.mean((x - m) ** 3))
    ratio = float(np.clip(m * mu3 / (v * v), 1.5 + 1e-6, 2.0))
    mu3 = ratio * v * v / m
    s = (v - math.sqrt(max(v * v - m * mu3 / 2.0, 0.0))) / (2.0 * m)
    nc = max(v / (2.0 * s * s) - m / s, 0.0)
    dfv = max(m / s - nc, 1e-6)
    return dfv, nc, s


def fit_ncx2(errors: Any, method: str = "mle", *, moment_df: float | None = None) -> Ncx2Fit:
    """Fit ``scale * ncx2(df, nc)`` (location fixed at 0) to sampled test errors.

    Args:
        errors: (N,) sampled test errors (non-negative, finite, N >= 3).
        method: ``"mle"`` (ours: maximum likelihood by L-BFGS-B over ``(log df, sqrt nc, log scale)``
            from the moment fit and from the central chi-squared of the same mean and variance, the best
            of the two), ``"scipy"`` (the official ``scipy.stats.ncx2.fit(errors, floc=0)``: Nelder-Mead
            from SciPy's default start; the reference, slower) or ``"moments"`` (closed form, see
            ``moment_df``).
        moment_df: for ``"moments"``: ``None`` matches the first three moments, a number fixes ``df``
            and matches the mean and variance.

    Returns:
        :class:`Ncx2Fit` ``(df, nc, scale, loglik)``.
    """
    _check("fit_ncx2", moment_df=moment_df)
    if method not in ("mle", "scipy", "moments"):
        raise ValueError(f"fit_ncx2: method must be one of {{'mle', 'scipy', 'moments'}}, got {method!r}")
    x = _errors_array(errors, "fit_ncx2")
    if method == "scipy":
        from scipy import stats

        df, nc, _, scale = stats.ncx2.fit(x, floc=0)
        return Ncx2Fit(float(df), float(nc), float(scale), _ncx2_loglik(x, df, nc, scale))
    if method == "moments":
        df, nc, scale = _moment_fit(x, moment_df)
        return Ncx2Fit(df, nc, scale, _ncx2_loglik(x, df, nc, scale))
    return _mle_fit(x)


def _from_moments(mean: float, var: float, frac: float) -> tuple[float, float, float]:
    """``(df, nc, scale)`` of the scaled ncx2 with this mean, variance and ``frac = nc / (df + nc)``."""
    scale = var / (2.0 * mean * (1.0 + frac))
    a = mean / scale
    return a * (1.0 - frac), a * frac, scale


def _mle_fit(x: np.ndarray) -> Ncx2Fit:
    """Maximum likelihood over ``(log mean, log variance, nc / (df + nc))`` by L-BFGS-B from the moment fit.

    The likelihood of ``(df, nc, scale)`` has a long curved ridge (df and nc trade off at a fixed mean and
    variance) that slows a search in the raw parameters; in these coordinates the first two are pinned by
    the data and the search runs mostly along the third.
    """
    from scipy import optimize

    m0 = float(x.mean())
    z = x / m0  # fit on data of mean 1, then rescale
    n = z.size
    top = 1.0 - 1e-9

    def nll(p: np.ndarray) -> float:
        df, nc, s = _from_moments(math.exp(p[0]), math.exp(p[1]), float(p[2]))
        val = -_ncx2_loglik(z, df, nc, s) / n
        return val if math.isfinite(val) else 1e300

    df0, nc0, _ = _moment_fit(z, None)
    best: Any = None
    for frac0 in sorted({nc0 / (df0 + nc0), 0.0}):  # the moment fit's shape and the central chi-squared
        p0 = np.array([0.0, math.log(float(z.var())), min(frac0, top)])
        res = optimize.minimize(
            nll,
            p0,
            method="L-BFGS-B",
            bounds=[(-5.0, 5.0), (p0[1] - 10.0, p0[1] + 10.0), (0.0, top)],
            options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 400},
        )
        if best is None or res.fun < best.fun:
            best = res
    df, nc, s = _from_moments(math.exp(best.x[0]), math.exp(best.x[1]), float(best.x[2]))
    df = max(df, 1e-8)
    return Ncx2Fit(df, nc, s * m0, _ncx2_loglik(x, df, nc, s * m0))


def sankaran_z(x: Any, df: float, nc: float, scale: float = 1.0) -> np.ndarray:
    """Sankaran's normal approximation of the ``scale * ncx2(df, nc)`` CDF: ``P(X <= x) ~ Phi(z)``.

    With ``u = x / scale``, ``h = 1 - (2/3)(df+nc)(df+3nc)/(df+2nc)^2``, ``p = (df+2nc)/(df+nc)^2``,
    ``m = (h-1)(1-3h)``: ``z = [(u/(df+nc))^h - (1 + h p (h - 1 - 0.5 (2-h) m p))] / [h sqrt(2p) (1 + 0.5 m p)]``.
    The official code's fallback when the log-CDF underflows (it returns ``z^2 / 2``).
    """
    u = np.asarray(x, dtype=np.float64) / scale
    h = 1.0 - (2.0 / 3.0) * (df + nc) * (df + 3.0 * nc) / (df + 2.0 * nc) ** 2
    p = (df + 2.0 * nc) / (df + nc) ** 2
    m = (h - 1.0) * (1.0 - 3.0 * h)
    num = (u / (df + nc)) ** h - (1.0 + h * p * (h - 1.0 - 0.5 * (2.0 - h) * m * p))
    return np.asarray(num / (h * math.sqrt(2.0 * p) * (1.0 + 0.5 * m * p)))


# --------------------------------------------------------------------------- the estimator
class InductiveBiasEstimate(NamedTuple):
    """``value``: I(eps) in ``units`` (a float, or an array for an array of eps); the fitted
    ``(df, nc, scale)``; ``fallback_used``: for which eps the fitted log-CDF underflowed."""

    value: Any
    df: float
    nc: float
    scale: float
    units: str
    fallback_used: Any


def inductive_bias_from_errors(
    errors: Any,
    target_error: Any,
    units: str = "bits",
    fit: str = "ncx2_mle",
    fallback: str = "log_ndtr",
    *,
    moment_df: float | None = None,
) -> InductiveBiasEstimate:
    """The paper's estimator: ``I(eps) = -log P(e <= eps)`` under a scaled ncx2 fitted to sampled errors.

    Args:
        errors: (N,) test errors of N sampled hypotheses.
        target_error: eps, a number or an array of numbers (> 0).
        units: ``"bits"`` or ``"nats"`` (the official code's unit).
        fit: ``"ncx2_mle"`` (our maximum-likelihood fit), ``"ncx2_scipy"`` (the official
            ``scipy.stats.ncx2.fit``) or ``"ncx2_moments"`` (closed form; ``moment_df``), see :func:`fit_ncx2`.
        fallback: used only where ``scipy.stats.ncx2.logcdf`` underflows to ``-inf``:
            ``"log_ndtr"`` ``-log Phi(z)`` of Sankaran's ``z`` (default), ``"official"`` the official
            code's ``z^2 / 2`` (drops the ``-log(|z| sqrt(2 pi))`` term of ``-log Phi(z)``), or
            ``"saddlepoint"`` the Lugannani-Rice approximation of the fitted ncx2 in log space.

    Returns:
        :class:`InductiveBiasEstimate`.

    Examples:
        >>> import numpy as np
        >>> errors = 0.05 * np.random.default_rng(0).noncentral_chisquare(20, 30, size=2000)
        >>> est = inductive_bias_from_errors(errors, 1.0, units="nats")
        >>> round(est.value, 1)  # the true -ln P(e <= 1) is 6.375; 2,000 samples leave a few % of error
        6.6
    """
    _check("inductive_bias_from_errors", units=units, fit=fit, fallback=fallback)
    eps, scalar = _targets(target_error, "inductive_bias_from_errors")
    res = fit_ncx2(errors, fit.removeprefix("ncx2_"), moment_df=moment_df)
    nats, used = _ncx2_nats(res.df, res.nc, res.scale, eps, fallback)
    value = nats / UNITS[units]
    return InductiveBiasEstimate(_out(value, scalar), res.df, res.nc, res.scale, units, _out(used, scalar))


def _ncx2_nats(df: float, nc: float, scale: float, eps: np.ndarray, fallback: str) -> tuple[np.ndarray, np.ndarray]:
    """``-log P(X <= eps)`` in nats for ``X = scale * ncx2(df, nc)``, with the fallback where it underflows."""
    from scipy import special, stats

    with np.errstate(divide="ignore"):
        logp = np.asarray(stats.ncx2.logcdf(eps, df, nc, 0.0, scale), dtype=np.float64)
    nats = -logp
    used = ~np.isfinite(nats)
    if used.any():
        if fallback == "saddlepoint":
            dist = GeneralizedChi2([scale], [nc], dof=[df])
            nats[used] = -dist.logcdf(eps[used], method="saddlepoint")
        else:
            z = sankaran_z(eps[used], df, nc, scale)
            nats[used] = z * z / 2.0 if fallback == "official" else -special.log_ndtr(z)
    return np.maximum(nats, 0.0), used


def inductive_bias_curve(
    source: Any, eps_grid: Any, units: str = "bits", *, fit: str = "ncx2_mle", method: str = "auto"
) -> np.ndarray:
    """I(eps) over ``eps_grid``: exact for a :class:`GeneralizedChi2` ``source`` (``method``), else
    estimated from sampled errors (``fit``, see :func:`inductive_bias_from_errors`). Always an array."""
    _check("inductive_bias_curve", units=units, method=method)
    eps, _ = _targets(eps_grid, "inductive_bias_curve")
    if isinstance(source, GeneralizedChi2):
        return source.inductive_bias(eps, units=units, method=method)
    return np.asarray(inductive_bias_from_errors(source, eps, units=units, fit=fit).value)


def encoded_bias(class_a: Any, class_b: Any, target_error: Any, units: str = "bits", **kwargs: Any) -> Any:
    """``I_A(eps) - I_B(eps)``: the inductive bias hypothesis class B encodes relative to class A
    (e.g. A a kernel class, B a neural-network class). Each class is sampled errors or a
    :class:`GeneralizedChi2`; ``kwargs`` go to :func:`inductive_bias_curve`."""
    eps, scalar = _targets(target_error, "encoded_bias")
    diff = inductive_bias_curve(class_a, eps, units, **kwargs) - inductive_bias_curve(class_b, eps, units, **kwargs)
    return _out(diff, scalar)


# --------------------------------------------------------------------------- generalised chi-squared
@dataclass(frozen=True, eq=False)
class GeneralizedChi2:
    """``Q = offset + sum_j weights_j * chi'^2_{dof_j}(ncp_j)``: a non-negative combination of
    independent non-central chi-squared variables (the test error of a Gaussian posterior).

    ``weights`` > 0, ``ncp`` >= 0, ``dof`` > 0 (default 1 each), ``offset`` >= 0. A single term is the
    scaled ``ncx2(dof, ncp)``; no term at all is the point mass at ``offset``. ``logcdf`` needs no sampling.

    Examples:
        >>> q = GeneralizedChi2([0.000234, 0.004748, 0.051283], [0.074267, 0.019702, 0.264135])
        >>> round(float(q.mean), 4), round(float(-q.logcdf(0.01, method="imhof")), 3)
        (0.0699, 1.547)
    """

    weights: np.ndarray
    ncp: np.ndarray
    offset: float = 0.0
    dof: np.ndarray | None = None

    def __init__(self, weights: Any, ncp: Any, offset: float = 0.0, dof: Any = None) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        nu = np.asarray(ncp, dtype=np.float64).reshape(-1)
        k = np.ones_like(w) if dof is None else np.asarray(dof, dtype=np.float64).reshape(-1)
        if nu.shape != w.shape or k.shape != w.shape:
            raise ValueError(
                f"GeneralizedChi2: weights, ncp and dof must have one shape, got {w.shape}, {nu.shape}, {k.shape}"
            )
        for name, a in (("weights", w), ("ncp", nu), ("dof", k)):
            if not np.isfinite(a).all():
                raise ValueError(f"GeneralizedChi2: {name} contains NaN or infinite values")
        if (w <= 0).any() or (nu < 0).any() or (k <= 0).any():
            raise ValueError("GeneralizedChi2: needs weights > 0, ncp >= 0 and dof > 0")
        validate_params({"offset": _NONNEG}, {"offset": float(offset)}, owner="GeneralizedChi2")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "ncp", nu)
        object.__setattr__(self, "dof", k)
        object.__setattr__(self, "offset", float(offset))

    @property
    def _k(self) -> np.ndarray:
        assert self.dof is not None
        return self.dof

    @property
    def mean(self) -> float:
        return float(self.offset + np.sum(self.weights * (self._k + self.ncp)))

    @property
    def var(self) -> float:
        return float(2.0 * np.sum(self.weights**2 * (self._k + 2.0 * self.ncp)))

    @property
    def third_cumulant(self) -> float:
        return float(8.0 * np.sum(self.weights**3 * (self._k + 3.0 * self.ncp)))

    def rvs(self, size: int, seed: int | np.random.Generator | None = None, chunk: int = 2_000_000) -> np.ndarray:
        """``size`` independent draws (Monte Carlo), drawn in chunks of about ``chunk`` numbers."""
        _check("GeneralizedChi2.rvs", num_samples=size, chunk=chunk)
        rng = np.random.default_rng(seed)
        out = np.full(size, self.offset)
        if self.weights.size == 0:
            return out
        step = max(1, chunk // self.weights.size)
        for start in range(0, size, step):  # chunks bound the memory; each chunk is one vectorised draw
            n = min(step, size - start)
            draws = rng.noncentral_chisquare(self._k, np.maximum(self.ncp, 1e-300), size=(n, self.weights.size))
            out[start : start + n] = draws @ self.weights + self.offset
        return out

    def cdf(self, x: Any, method: str = "auto") -> Any:
        lp = self.logcdf(x, method)
        return np.exp(lp)

    def logcdf(self, x: Any, method: str = "auto") -> Any:
        """``log P(Q <= x)`` (natural log), vectorised over ``x``.

        ``method``: ``"imhof"`` (Imhof's inversion integral, adaptive quadrature for all ``x`` at once;
        accurate while P is above about 1e-12), ``"saddlepoint"`` (Lugannani-Rice in log space, for
        any depth of the lower tail; a few hundredths of a nat off with very few terms), or ``"auto"``
        (Imhof where it gives P >= ``IMHOF_MIN_CDF``, the saddle point below).
        """
        _check("GeneralizedChi2.logcdf", method=method)
        xs = np.asarray(x, dtype=np.float64)
        scalar = xs.ndim == 0
        xs = xs.reshape(-1)
        if not np.isfinite(xs).all():
            raise ValueError("GeneralizedChi2.logcdf: x contains NaN or infinite values")
        out = np.full(xs.shape, -np.inf)
        pos = xs > self.offset
        if self.weights.size == 0:  # a point mass
            out[xs >= self.offset] = 0.0
        elif pos.any():
            out[pos] = self._logcdf_positive(xs[pos] - self.offset, method)
        return float(out[0]) if scalar else out

    def inductive_bias(self, eps: Any, units: str = "bits", method: str = "auto") -> Any:
        """The exact ``I(eps) = -log P(Q <= eps)`` in ``units``."""
        _check("GeneralizedChi2.inductive_bias", units=units, method=method)
        arr, scalar = _targets(eps, "GeneralizedChi2.inductive_bias")
        val = np.maximum(-np.asarray(self.logcdf(arr, method)), 0.0) / UNITS[units]
        return _out(val, scalar)

    # ---- internals (y = x - offset > 0)
    def _logcdf_positive(self, y: np.ndarray, method: str) -> np.ndarray:
        if method == "saddlepoint":
            return _saddlepoint_logcdf(y, self.weights, self.ncp, self._k)
        p = _imhof_cdf(y, self.weights, self.ncp, self._k)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.log(np.clip(p, 1e-300, 1.0))
        if method == "imhof":
            return np.where(p > 0, lp, -np.inf)
        deep = p < IMHOF_MIN_CDF
        if deep.any():
            lp[deep] = _saddlepoint_logcdf(y[deep], self.weights, self.ncp, self._k)
        return lp


def _imhof_cdf(
    y: np.ndarray, w: np.ndarray, nu: np.ndarray, k: np.ndarray, tol: float = 1e-14, max_panels: int = 100_000
) -> np.ndarray:
    """Imhof (1961): ``P(Q <= y) = 1/2 - (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du`` for all ``y`` at once.

    ``theta(u) = 1/2 sum [k arctan(w u) + nu w u / (1 + w^2 u^2)] - y u / 2``,
    ``rho(u) = prod (1 + w^2 u^2)^(k/4) exp(1/2 sum nu w^2 u^2 / (1 + w^2 u^2))``. Composite 10-point
    Gauss-Legendre on panels that grow geometrically (the integrand's scales 1 / w_j) until they reach a
    quarter of the fastest oscillation period, then stay that long; the range ends where the envelope
    ``1 / (u rho(u))`` times the oscillation period at infinity, ``4 pi / y``, is below ``tol``, or after
    ``max_panels`` panels (few terms with very unequal weights and a small ``y``: the error is then
    about that envelope times ``4 pi / y``, still below 1e-9 on the examples of the tests).
    """
    top = float(w.max())
    wn, yn = w / top, y / top  # u in units of 1 / max weight
    omega = 0.5 * (float(np.sum((k + nu) * wn)) + float(yn.max()))  # bound on |theta'(u)|

    def log_rho(u: np.ndarray) -> np.ndarray:
        wu2 = np.square(np.multiply.outer(u, wn))
        return (np.log1p(wu2) @ (0.25 * k)) + (wu2 / (1.0 + wu2)) @ (0.5 * nu)

    # the end of the range: envelope * period below tol, for the smallest y
    grid = np.geomspace(1.0, 1e12, 241)
    env = -np.log(grid) - log_rho(grid) + math.log(4.0 * math.pi / max(float(yn.min()), 1e-300))
    below = np.flatnonzero(env < math.log(tol))
    end = float(grid[below[0]]) if below.size else float(grid[-1])
    step = min(math.pi / (2.0 * omega), 4.0)
    end = min(end, step * max_panels)
    first = min(1e-3, step) / 4.0
    geo = np.geomspace(first, step, max(2, math.ceil(math.log(step / first) / math.log(1.25)) + 1))
    lin = np.arange(step, end + step, step)[1:] if end > step else np.empty(0)
    edges = np.concatenate([[0.0], geo, lin])
    nodes, gw = np.polynomial.legendre.leggauss(10)
    total = np.zeros_like(yn)
    per_chunk = max(1, 200_000 // max(wn.size, yn.size))
    lefts, rights = edges[:-1], edges[1:]
    for c in range(0, lefts.size, per_chunk):  # chunks of panels bound the memory
        a, b = lefts[c : c + per_chunk], rights[c : c + per_chunk]
        half = 0.5 * (b - a)
        u = ((0.5 * (a + b))[:, None] + half[:, None] * nodes).reshape(-1)
        wt = (half[:, None] * gw).reshape(-1)
        wu = np.multiply.outer(u, wn)
        base = (np.arctan(wu) @ (0.5 * k)) + (wu / (1.0 + wu * wu)) @ (0.5 * nu)
        theta = base[:, None] - np.multiply.outer(u, yn) / 2.0
        total += (wt / (u * np.exp(log_rho(u)))) @ np.sin(theta)
    return np.clip(0.5 - total / math.pi, 0.0, 1.0)


def _saddle_solve(y: np.ndarray, w: np.ndarray, nu: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The saddle point ``s`` with ``K'(s) = y``, by Newton's method safeguarded by bisection,
    vectorised over ``y``. ``K'`` increases from 0 (s -> -inf) to +inf (s -> 1 / (2 max w))."""
    mean = float(np.sum(w * (k + nu)))
    pole = 1.0 / (2.0 * float(w.max()))

    def d1(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = 1.0 / (1.0 - 2.0 * np.outer(s, w))  # (P, m)
        kp = a @ (k * w) + (a * a) @ (nu * w)
        kpp = (a * a) @ (2.0 * k * w * w) + (a * a * a) @ (4.0 * nu * w * w)
        return kp, kpp

    lower = y < mean
    lo = np.where(lower, -pole, 0.0)
    hi = np.where(lower, 0.0, pole)
    # push the lower bracket left until K'(lo) < y (K' -> 0 as s -> -inf)
    for _ in range(2000):
        kp, _ = d1(lo)
        bad = lower & (kp >= y)
        if not bad.any():
            break
        hi = np.where(bad, lo, hi)
        lo = np.where(bad, lo * 2.0, lo)
    s = 0.5 * (lo + hi)
    for _ in range(200):
        kp, kpp = d1(s)
        f = kp - y
        lo = np.where(f < 0, s, lo)
        hi = np.where(f > 0, s, hi)
        step = f / kpp
        new = s - step
        outside = ~((new > lo) & (new < hi))
        new = np.where(outside, 0.5 * (lo + hi), new)
        done = np.abs(new - s) <= 1e-15 * np.maximum(np.abs(s), 1e-300)
        s = new
        if done.all():
            break
    return s


def _saddlepoint_logcdf(y: np.ndarray, w: np.ndarray, nu: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Lugannani-Rice ``log P(Q <= y) ~ log Phi(r) + log1p(phi(r)/Phi(r) (1/r - 1/q))`` (upper side:
    ``log1p(-(Phi(-r) - phi(r)(1/r - 1/q)))``), ``r = sign(s) sqrt(2(s y - K(s)))``, ``q = s sqrt(K''(s))``."""
    from scipy import special

    s = _saddle_solve(y, w, nu, k)
    a = 1.0 / (1.0 - 2.0 * np.outer(s, w))
    kappa = np.log(a) @ (0.5 * k) + (a * np.outer(s, w)) @ nu  # K(s)
    kpp = (a * a) @ (2.0 * k * w * w) + (a * a * a) @ (4.0 * nu * w * w)
    r = np.sign(s) * np.sqrt(np.maximum(2.0 * (s * y - kappa), 0.0))
    q = s * np.sqrt(kpp)
    out = np.empty_like(y)
    tiny = np.abs(r) < 1e-7
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = 1.0 / r - 1.0 / q
        log_phi = -0.5 * r * r - 0.5 * math.log(2.0 * math.pi)
        neg = (r < 0) & ~tiny
        lphi_r = special.log_ndtr(r)
        term = np.exp(log_phi - lphi_r) * corr
        lr = lphi_r + np.log1p(np.maximum(term, -1.0 + 1e-300))
        # where Lugannani-Rice breaks down (1 + term <= 0), Barndorff-Nielsen's r* = r + log(q/r)/r
        broken = neg & (term <= -1.0 + 1e-12)
        rstar = r + np.log(np.abs(q / r)) / r
        out[neg] = np.where(broken[neg], special.log_ndtr(rstar[neg]), lr[neg])
        pos = (r > 0) & ~tiny
        upper = special.ndtr(-r) - np.exp(log_phi) * corr
        out[pos] = np.log1p(-np.clip(upper[pos], 0.0, 1.0 - 1e-16))
    if tiny.any():  # at the mean: P = 1/2 + kappa3 / (6 sqrt(2 pi) kappa2^(3/2))
        k2 = 2.0 * np.sum(w * w * (k + 2.0 * nu))
        k3 = 8.0 * np.sum(w**3 * (k + 3.0 * nu))
        out[tiny] = math.log(0.5 + k3 / (6.0 * math.sqrt(2.0 * math.pi) * k2**1.5))
    return np.minimum(out, 0.0)


# --------------------------------------------------------------------------- kernel sampler
def rbf_kernel(a: Tensor, b: Tensor, lengthscale: float = 1.0) -> Tensor:
    """``k(a, b) = exp(-||a - b||^2 / (2 lengthscale^2))`` for all pairs of rows, float64 (n, m)."""
    _check("rbf_kernel", lengthscale=lengthscale)
    a, b = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b need the same number of features, got {a.shape[1]} and {b.shape[1]}")
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return torch.exp(-sq.clamp_min(0.0) / (2.0 * lengthscale * lengthscale))


def _adam_solve(k: Tensor, b: Tensor, lr: float, epochs: int) -> Tensor:
    """``k^{-1} b`` by Adam on ``mean((k x - b)^2)`` from zero (the official iterative solve, full batch)."""
    x = torch.zeros_like(b, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(epochs):  # optimisation steps, not samples
        opt.zero_grad(set_to_none=True)
        loss = ((k @ x - b) ** 2).mean()
        loss.backward()
        opt.step()
    return x.detach()


class GPHypothesisSampler:
    """Hypotheses of a Gaussian process conditioned to interpolate the training data (the paper's
    kernel-based sampling): RBF kernel, noise-free, each output independent.

    The posterior on test points is ``mu = k(X_te, X) K^{-1} Y``, ``C = k(X_te, X_te) - k(X_te, X)
    K^{-1} k(X, X_te)`` with ``K = k(X, X) + jitter I``; ``solver="cholesky"`` computes it in closed
    form, ``solver="adam"`` by the official iterative solve (Adam on ``mean((K A - B)^2)``, full batch).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
        >>> gp = GPHypothesisSampler(jitter=0.0).fit(x, torch.sin(x))
        >>> mu, C = gp.posterior(torch.tensor([[-0.5], [0.5], [1.5]], dtype=torch.float64))
        >>> [round(v, 4) for v in mu[:, 0].tolist()]
        [-0.5429, 0.5429, 0.8161]
    """

    def __init__(
        self,
        kernel: str = "rbf",
        lengthscale: float = 1.0,
        jitter: float = 1e-8,
        solver: str = "cholesky",
        adam_epochs: int = 10_000,
        adam_lr: float = 1e-2,
    ) -> None:
        _check(
            "GPHypothesisSampler",
            kernel=kernel,
            lengthscale=lengthscale,
            jitter=jitter,
            solver=solver,
            adam_epochs=adam_epochs,
            adam_lr=adam_lr,
        )
        self.kernel, self.lengthscale, self.jitter = kernel, float(lengthscale), float(jitter)
        self.solver, self.adam_epochs, self.adam_lr = solver, adam_epochs, float(adam_lr)
        self._x: Tensor | None = None

    def fit(self, X_tr: Any, Y_tr: Any) -> GPHypothesisSampler:
        """Condition on the training set: ``X_tr`` (n, D), ``Y_tr`` (n, k) (or (n,) for k = 1)."""
        x = _as_matrix(X_tr, "X_tr")
        y = _as_matrix(Y_tr, "Y_tr", rows=x.shape[0])
        kxx = rbf_kernel(x, x, self.lengthscale) + self.jitter * torch.eye(x.shape[0], dtype=F64)
        self._x, self._y, self._k = x, y, kxx
        if self.solver == "cholesky":
            chol, info = torch.linalg.cholesky_ex(kxx)
            if int(info) != 0:
                raise ValueError(
                    "GPHypothesisSampler: the training kernel matrix is not positive definite "
                    f"(duplicate inputs?); raise jitter (now {self.jitter:g})"
                )
            self._chol = chol
            self._alpha = torch.cholesky_solve(y, chol)
        else:
            self._alpha = _adam_solve(kxx, y, self.adam_lr, self.adam_epochs)
        return self

    def _solve(self, b: Tensor) -> Tensor:
        if self.solver == "cholesky":
            return torch.cholesky_solve(b, self._chol)
        return _adam_solve(self._k, b, self.adam_lr / 10.0, self.adam_epochs)  # the official lr for A

    def _fitted(self) -> tuple[Tensor, Tensor]:
        if self._x is None:
            raise RuntimeError("GPHypothesisSampler: call fit(X_tr, Y_tr) first")
        return self._x, self._y

    def posterior(self, X_te: Any) -> tuple[Tensor, Tensor]:
        """``(mu (t, k), C (t, t))`` of the interpolating GP on the test inputs."""
        x, _ = self._fitted()
        xt = _as_matrix(X_te, "X_te", cols=x.shape[1])
        kxt = rbf_kernel(x, xt, self.lengthscale)
        mu = kxt.T @ self._alpha
        cov = rbf_kernel(xt, xt, self.lengthscale) - kxt.T @ self._solve(kxt)
        return mu, 0.5 * (cov + cov.T)

    def _eig(self, X_te: Any, Y_te: Any) -> tuple[Tensor, Tensor]:
        """Eigenvalues of C (clipped at 0) and ``delta = U^T (mu - Y_te)`` (t, k)."""
        mu, cov = self.posterior(X_te)
        yt = _as_matrix(Y_te, "Y_te", rows=mu.shape[0], cols=mu.shape[1])
        lam, u = torch.linalg.eigh(cov)
        return lam.clamp_min(0.0), u.T @ (mu - yt)

    def sample(self, X_te: Any, num_samples: int, generator: torch.Generator | int | None = None) -> Tensor:
        """``num_samples`` hypotheses on the test inputs, ``f = mu + C^{1/2} Z``: (num_samples, t, k)."""
        _check("GPHypothesisSampler.sample", num_samples=num_samples)
        mu, cov = self.posterior(X_te)
        lam, u = torch.linalg.eigh(cov)
        root = (u * lam.clamp_min(0.0).sqrt()) @ u.T  # the symmetric square root
        z = torch.randn(num_samples, *mu.shape, generator=_generator(generator), dtype=F64)
        return mu + torch.einsum("ij,njk->nik", root, z)

    def sample_errors(
        self, X_te: Any, Y_te: Any, num_samples: int, generator: torch.Generator | int | None = None
    ) -> Tensor:
        """Test errors ``mean((f - Y_te)^2)`` of ``num_samples`` sampled hypotheses, (num_samples,).

        Drawn in the eigenbasis of C: ``||mu + C^{1/2} Z - Y||^2 = ||Lambda^{1/2} Z' + U^T(mu - Y)||^2``
        with ``Z' = U^T Z`` also standard normal, so a draw costs O(t k) instead of O(t^2 k).
        """
        _check("GPHypothesisSampler.sample_errors", num_samples=num_samples)
        lam, delta = self._eig(X_te, Y_te)
        z = torch.randn(num_samples, *delta.shape, generator=_generator(generator), dtype=F64)
        return _errors_from_normals(lam, delta, z)

    def error_distribution(self, X_te: Any, Y_te: Any, zero_tol: float | None = None) -> GeneralizedChi2:
        """The exact distribution of the test error: ``e = c0 + sum_{j,c} (lambda_j / (t k))
        chi'^2_1(delta_jc^2 / lambda_j)``, with ``C = U diag(lambda) U^T`` and ``delta = U^T (mu - Y_te)``; the
        k outputs of eigenvector j are one term ``chi'^2_k(sum_c delta_jc^2 / lambda_j)``. Eigenvalues ``<= zero_tol`` (default ``10 jitter + 1e-12``:
        test points that coincide with training points) are deterministic and go to the offset ``c0``."""
        _check("GPHypothesisSampler.error_distribution", zero_tol=zero_tol)
        lam, delta = self._eig(X_te, Y_te)
        t, k = delta.shape
        tol = 10.0 * self.jitter + 1e-12 if zero_tol is None else zero_tol
        keep = lam > tol
        lam_np, delta_np = lam.numpy(), delta.numpy()
        offset = float((delta_np[~keep.numpy()] ** 2).sum() / (t * k))
        lam_k = lam_np[keep.numpy()]
        # the k outputs of one eigenvector share its weight: sum_c chi'^2_1(d_c^2 / l) = chi'^2_k(sum_c d_c^2 / l)
        ncp = (delta_np[keep.numpy()] ** 2).sum(1) / lam_k
        return GeneralizedChi2(lam_k / (t * k), ncp, offset, dof=np.full(lam_k.size, float(k)))


def _generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if isinstance(generator, torch.Generator) or generator is None:
        return generator
    _check("GPHypothesisSampler", seed=generator)
    return torch.Generator().manual_seed(int(generator))


def _errors_from_normals(lam: Tensor, delta: Tensor, z: Tensor) -> Tensor:
    """``mean_{j,c} (sqrt(lambda_j) z_njc + delta_jc)^2`` for each n."""
    return ((lam.sqrt()[:, None] * z + delta) ** 2).mean(dim=(1, 2))


def reference_sample_errors(
    mu: Any, cov: Any, Y_te: Any, num_samples: int, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """The official sampling step, naively: ``C^{1/2} = scipy.linalg.sqrtm(C)``, ``f = mu + C^{1/2} Z`` with
    ``Z`` of shape (t, k, N), errors ``mean over (t, k) of (f - Y)^2``. The reference of
    :meth:`GPHypothesisSampler.sample_errors`."""
    from scipy import linalg

    mu_np = np.asarray(mu, dtype=np.float64)
    root = np.real(linalg.sqrtm(np.asarray(cov, dtype=np.float64)))
    z = np.random.default_rng(seed).standard_normal((mu_np.shape[0], mu_np.shape[1], num_samples))
    f = mu_np[:, :, None] + np.einsum("ij,jkn->ikn", root, z)
    return ((f - np.asarray(Y_te, dtype=np.float64)[:, :, None]) ** 2).mean(axis=(0, 1))


def exact_inductive_bias_gp(
    X_tr: Any,
    Y_tr: Any,
    X_te: Any,
    Y_te: Any,
    target_error: Any,
    lengthscale: float = 1.0,
    jitter: float = 1e-8,
    units: str = "bits",
    method: str = "auto",
) -> Any:
    """The exact inductive bias of the interpolating RBF Gaussian process hypothesis space:
    ``-log P(e <= eps)`` from the generalised chi-squared law of its test error (no sampling)."""
    _check("exact_inductive_bias_gp", units=units, method=method)
    gp = GPHypothesisSampler(lengthscale=lengthscale, jitter=jitter).fit(X_tr, Y_tr)
    return gp.error_distribution(X_te, Y_te).inductive_bias(target_error, units=units, method=method)


# --------------------------------------------------------------------------- neural sampler
class MLPEnsemble(nn.Module):
    """``num_members`` independent MLPs ``in_dim -> hidden... -> out_dim`` (ReLU), evaluated together
    with batched matrix products: input (B, in_dim) shared or (M, B, in_dim) per member, output
    (M, B, out_dim). Member ``i`` is initialised like ``torch.nn.Linear`` (U(-1/sqrt(fan_in), +...) for
    weights and biases) from ``torch.Generator().manual_seed(seeds[i])``; :meth:`member` returns it as a
    :class:`paperzoo.models.MLP`."""

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        seeds: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        _check("MLPEnsemble", num_members=num_members)
        seeds = list(range(num_members)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != num_members:
            raise ValueError(f"MLPEnsemble: needs {num_members} seeds, got {len(seeds)}")
        self.dims = [int(in_dim), *(int(h) for h in hidden), int(out_dim)]
        if min(self.dims) < 1:
            raise ValueError(f"MLPEnsemble: layer sizes must be >= 1, got {self.dims}")
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        per_member = [_linear_init(self.dims, s, dtype) for s in seeds]  # one init per member, as nn.Linear
        for layer in range(len(self.dims) - 1):
            self.weights.append(nn.Parameter(torch.stack([p[layer][0] for p in per_member])))  # (M, in, out)
            self.biases.append(nn.Parameter(torch.stack([p[layer][1] for p in per_member])[:, None, :]))

    @property
    def num_members(self) -> int:
        return int(self.weights[0].shape[0])

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.num_members, *x.shape)
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h

    def member(self, i: int) -> nn.Module:
        """Member ``i`` as a :class:`paperzoo.models.MLP` with the same parameters (a copy)."""
        from paperzoo.models import MLP

        net = MLP(self.dims[0], self.dims[1:-1], self.dims[-1]).to(self.weights[0].dtype)
        linears = [m for m in net.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[i].T)
                lin.bias.copy_(b[i, 0])
        return net


def _linear_init(dims: Sequence[int], seed: int, dtype: torch.dtype) -> list[tuple[Tensor, Tensor]]:
    """``(weight (in, out), bias (out,))`` per layer, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as ``nn.Linear``."""
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for a, b in zip(dims[:-1], dims[1:]):
        bound = 1.0 / math.sqrt(a)
        w = (torch.rand(b, a, generator=g, dtype=F64) * 2.0 - 1.0) * bound
        bias = (torch.rand(b, generator=g, dtype=F64) * 2.0 - 1.0) * bound
        out.append((w.T.contiguous().to(dtype), bias.to(dtype)))
    return out


class _MemberBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of ``M * B`` indices, member-major: member ``i``'s epoch-``e`` order is
    ``torch.randperm(n)`` drawn from ``seeds[i] + e`` (the order :func:`paperzoo.engine.make_loader`
    gives a loader seeded with ``seeds[i]``)."""

    def __init__(self, n: int, batch_size: int, seeds: Sequence[int]) -> None:
        self.n, self.batch_size, self.seeds, self.epoch = n, batch_size, list(seeds), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Any:
        perms = torch.stack(
            [torch.randperm(self.n, generator=torch.Generator().manual_seed(s + self.epoch)) for s in self.seeds]
        )
        for start in range(0, self.n, self.batch_size):
            yield perms[:, start : start + self.batch_size].reshape(-1).tolist()


class _Rows(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    """``(x, y)`` rows fetched in one indexing per batch."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]

    def __getitems__(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        t = torch.as_tensor(idx)
        return self.x[t], self.y[t]


def _identity(batch: Any) -> Any:
    return batch


class NeuralHypothesisSampler:
    """Test errors of independently trained networks (the paper's neural sampler): each trial is a
    fresh initialisation and data order, MSE against the (one-hot) targets, Adam, ``epochs`` epochs
    of mini-batches; the hypothesis is the trained network, its error the test MSE.

    The default model is the official MLP ``Linear(D, w) -> ReLU -> [Linear(w, w) -> ReLU]... ->
    Linear(w, k)`` with ``hidden = (w,) * (depth + 1)``. :meth:`sample_errors` trains all trials as one
    :class:`MLPEnsemble` through :func:`paperzoo.engine.fit` (each member its own initialisation and data
    order, the loss a sum of per-member mean squared errors, so Adam updates each member exactly as
    alone); :meth:`reference_sample_errors` trains the same trials one by one (also any ``model_fn``).

    ``official_loss_scaling=True`` reports the official code's error instead: the per-batch mean MSE
    summed over test batches of ``batch_size`` and divided by the number of test points.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128, 128),
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 1e-3,
        official_loss_scaling: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check("NeuralHypothesisSampler", epochs=epochs, batch_size=batch_size, lr=lr)
        self.hidden, self.epochs, self.batch_size, self.lr = tuple(int(h) for h in hidden), epochs, batch_size, lr
        self.official_loss_scaling, self.dtype = bool(official_loss_scaling), dtype

    @staticmethod
    def trial_seeds(num_trials: int, seed: int) -> list[int]:
        """One 31-bit seed per trial (initialisation and data order), derived from ``(seed, trial)``."""
        return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0] >> 1) for i in range(num_trials)]

    def _data(self, X_tr: Any, Y_tr: Any, X_te: Any, Y_te: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = _as_matrix(X_tr, "X_tr")
        y = _as_matrix(Y_tr, "Y_tr", rows=x.shape[0])
        xt = _as_matrix(X_te, "X_te", cols=x.shape[1])
        yt = _as_matrix(Y_te, "Y_te", rows=xt.shape[0], cols=y.shape[1])
        return x.to(self.dtype), y.to(self.dtype), xt.to(self.dtype), yt.to(self.dtype)

    def _test_error(self, pred: Tensor, yt: Tensor) -> Tensor:
        """(M, t, k) predictions -> (M,) errors (the true mean MSE, or the official scaling)."""
        sq = (pred - yt) ** 2
        if not self.official_loss_scaling:
            return sq.mean(dim=(1, 2))
        t = yt.shape[0]
        batch_means = [sq[:, s : s + self.batch_size].mean(dim=(1, 2)) for s in range(0, t, self.batch_size)]
        return torch.stack(batch_means, 1).sum(1) / t

    def sample_errors(self, X_tr: Any, Y_tr: Any, X_te: Any, Y_te: Any, num_trials: int, seed: int = 0) -> Tensor:
        """(num_trials,) float64 test errors, all trials trained at once (vectorised)."""
        from paperzoo.engine import TrainConfig, fit

        _check("NeuralHypothesisSampler.sample_errors", num_trials=num_trials, seed=seed)
        x, y, xt, yt = self._data(X_tr, Y_tr, X_te, Y_te)
        seeds = self.trial_seeds(num_trials, seed)
        model = MLPEnsemble(num_trials, x.shape[1], self.hidden, y.shape[1], seeds, self.dtype)
        loader = torch.utils.data.DataLoader(
            _Rows(x, y), batch_sampler=_MemberBatches(x.shape[0], self.batch_size, seeds), collate_fn=_identity
        )
        m = num_trials

        def loss(net: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
            xb, yb = batch
            out = net(xb.reshape(m, -1, xb.shape[-1]))
            return ((out - yb.reshape(m, -1, yb.shape[-1])) ** 2).mean(dim=(1, 2)).sum()

        opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)  # the same update, in one kernel
        fit(model, None, loader, opt, TrainConfig(epochs=self.epochs, seed=seed, progress=False), compute_loss=loss)
        with torch.no_grad():
            return self._test_error(model(xt), yt).to(F64)

    def reference_sample_errors(
        self,
        X_tr: Any,
        Y_tr: Any,
        X_te: Any,
        Y_te: Any,
        num_trials: int,
        seed: int = 0,
        model_fn: Callable[[int, int], nn.Module] | None = None,
    ) -> Tensor:
        """The same trials trained one by one (one :class:`paperzoo.models.MLP` and one
        :func:`paperzoo.engine.fit` each, the loader of :func:`paperzoo.engine.make_loader` seeded per trial);
        ``model_fn(in_dim, out_dim)`` replaces the MLP (then initialised from the global seed)."""
        from torch.utils.data import TensorDataset

        from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything

        _check("NeuralHypothesisSampler.reference_sample_errors", num_trials=num_trials, seed=seed)
        x, y, xt, yt = self._data(X_tr, Y_tr, X_te, Y_te)
        errors = []
        for s in self.trial_seeds(num_trials, seed):  # trials are independent trainings: the reference loop
            if model_fn is None:
                net = MLPEnsemble(1, x.shape[1], self.hidden, y.shape[1], [s], self.dtype).member(0)
            else:
                seed_everything(s)
                net = model_fn(x.shape[1], y.shape[1]).to(self.dtype)
            loader = make_loader(TensorDataset(x, y), self.batch_size, seed=s)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            fit(net, nn.MSELoss(), loader, opt, TrainConfig(epochs=self.epochs, seed=s, progress=False))
            with torch.no_grad():
                errors.append(self._test_error(net(xt)[None], yt)[0])
        return torch.stack(errors).to(F64)


# --------------------------------------------------------------------------- a user's own model class
class ModelClassBias(NamedTuple):
    """What :func:`estimate_inductive_bias` returns: the estimate (:class:`InductiveBiasEstimate`)
    and the (num_trials,) float64 test errors it was fitted to."""

    estimate: InductiveBiasEstimate
    errors: np.ndarray


def _batch_targets(y: Tensor, out: Tensor) -> Tensor:
    """Targets shaped like the model output: integer labels become one-hot for several outputs."""
    if not y.is_floating_point() and out.dim() == 2 and out.shape[1] > 1:
        return torch.nn.functional.one_hot(y.long().reshape(-1), out.shape[1]).to(out.dtype)
    return y.to(out.dtype).reshape(out.shape)


def estimate_inductive_bias(
    model_fn: Callable[[], nn.Module],
    train_loader: Any,
    test_loader: Any,
    target_error: Any,
    num_trials: int = 20,
    *,
    epochs: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    units: str = "bits",
    fit: str = "ncx2_mle",
    fallback: str = "log_ndtr",
    device: str = "cpu",
    progress: bool = True,
) -> ModelClassBias:
    """The paper's estimator on a user's own hypothesis class: the inductive bias (in ``units``) needed
    to reach test MSE ``target_error`` with the networks ``model_fn()`` builds, trained on ``train_loader``.

    Each of ``num_trials`` trials seeds everything from ``(seed, trial)`` (initialisation and the
    loader's shuffling), builds ``model_fn()``, trains it ``epochs`` epochs with Adam (``lr``) on the
    squared error against the targets (integer labels become one-hot when the model has several
    outputs), and records its test error: the mean over test points and outputs of the squared error
    on ``test_loader``. A scaled ncx2 is fitted to the errors and read at ``target_error``
    (:func:`inductive_bias_from_errors`). A progress bar runs over the trials.

    Args:
        model_fn: a factory of fresh ``nn.Module`` s (the hypothesis class).
        train_loader, test_loader: iterables of ``(x, y)`` batches (e.g. torch DataLoaders).
        target_error: eps, a number or an array (> 0).
        num_trials: sampled hypotheses (>= 3; the paper uses tens for networks).
    """
    from paperzoo.engine import TrainConfig, seed_everything
    from paperzoo.engine import fit as train
    from paperzoo.engine.progress import progress as bar

    _check("estimate_inductive_bias", num_trials=num_trials, epochs=epochs, lr=lr, seed=seed, units=units, fit=fit,
           fallback=fallback)  # fmt: skip
    if num_trials < 3:
        raise ValueError(f"estimate_inductive_bias: needs num_trials >= 3 to fit a distribution, got {num_trials}")
    _targets(target_error, "estimate_inductive_bias")
    dev = torch.device(device)

    def loss(net: nn.Module, batch: Any) -> Tensor:
        x, y = batch[0].to(dev), batch[1].to(dev)
        out = net(x)
        return ((out - _batch_targets(y, out)) ** 2).mean()

    errors = []
    for s in bar(NeuralHypothesisSampler.trial_seeds(num_trials, seed), desc="trials", total=num_trials,
                 enabled=progress):  # fmt: skip
        seed_everything(s)
        net = model_fn()
        if not isinstance(net, nn.Module):
            raise TypeError(f"estimate_inductive_bias: model_fn must return an nn.Module, got {type(net).__name__}")
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        train(net, None, train_loader, opt, TrainConfig(epochs=epochs, seed=s, progress=False, device=device),
              compute_loss=loss)  # fmt: skip
        total, count = 0.0, 0
        net.eval()
        with torch.no_grad():
            for batch in test_loader:
                out = net(batch[0].to(dev))
                sq = (out - _batch_targets(batch[1].to(dev), out)) ** 2
                total, count = total + float(sq.double().sum()), count + sq.numel()
        if count == 0:
            raise ValueError("estimate_inductive_bias: test_loader is empty")
        errors.append(total / count)
    err = np.asarray(errors, dtype=np.float64)
    est = inductive_bias_from_errors(err, target_error, units=units, fit=fit, fallback=fallback)
    return ModelClassBias(est, err)


def plot_error_distribution(errors: Any, target_error: float, fit: Ncx2Fit | None = None, units: str = "bits") -> Any:
    """The sampled test errors (histogram, density), the fitted scaled ncx2 density (``fit``, else our
    MLE fit), and the target error with the inductive bias it implies. Returns the matplotlib Figure."""
    from scipy import stats

    from paperzoo.engine.plots import subplots

    _check("plot_error_distribution", units=units)
    x = _errors_array(errors, "plot_error_distribution")
    eps, _ = _targets(target_error, "plot_error_distribution")
    res = fit if fit is not None else fit_ncx2(x)
    nats, _ = _ncx2_nats(res.df, res.nc, res.scale, eps[:1], "log_ndtr")
    fig, (ax,) = subplots(1, width=5.0, height=3.8)
    ax.hist(x, bins=max(5, min(40, x.size // 3)), density=True, alpha=0.5, label=f"{x.size} sampled errors")
    grid = np.linspace(min(eps[0], x.min()) * 0.5, x.max() * 1.2, 400)
    pdf = stats.ncx2.pdf(grid, res.df, res.nc, 0.0, res.scale)
    ax.plot(grid, pdf, "k-", label=f"fitted ncx2 (df={res.df:.3g}, nc={res.nc:.3g}, scale={res.scale:.3g})")
    value = float(nats[0]) / UNITS[units]
    ax.axvline(eps[0], color="C3", ls="--", label=f"target eps={eps[0]:.3g}: I = {value:.3g} {units}")
    ax.set_xlabel("test error (MSE)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
