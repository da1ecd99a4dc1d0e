"""KLoM, the KL divergence of margins of Attribute-to-Delete (paper 45: Georgiev et al., ICLR
2025; the evaluation of its appendix on auditing unlearning).

For each evaluation example, the margins of N unlearned models (each unlearned from an
original model trained with its own seed) and of N oracles (retrained from scratch without the
forget set, independent seeds) are two samples of a distribution over training randomness.
KLoM bins both samples on one shared histogram (``bins`` equal-width bins spanning their joint
range after clipping to ``[-clip, clip]``), floors the reference's empty bins at ``eps`` where
the other sample has mass, and returns ``sum_b p_b log(p_b / q_b)`` of the frequencies. It is
0 when the two samples coincide and exactly ``ln(1/eps)`` (11.513 for ``eps = 1e-5``) when their
supports are disjoint. Summaries are percentiles over the examples of a group (forget / retain /
validation); the 95th percentile is the paper's headline number.

With small N the estimate is biased upwards: :func:`klom_noise_floor` (KLoM of a second,
independent set of oracles against the reference oracles) is the value a perfect unlearner
would get, and should be reported next to every method.

Direction: ``"unlearned||oracle"`` (default) is KL(unlearned || oracle), the direction of the
authors' paper-era code; ``"oracle||unlearned"`` is the one of their later benchmark code.
``legacy_binning=True`` reproduces the authors' ``np.digitize`` binning, which drops the samples
equal to the joint maximum, and renormalises the floored reference (``scipy.stats.entropy``);
the default counts every sample (last edge inclusive, like ``np.histogram``) and does not
renormalise, so disjoint supports give exactly ``ln(1/eps)``. Everything is vectorised over the examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from paperzoo._validation import Interval, Options, validate_params

__all__ = ["binned_kl", "klom", "klom_noise_floor", "klom_summary"]

Array = np.ndarray | torch.Tensor | Sequence[float]


def _np(a: Array, name: str) -> np.ndarray:
    out = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    out = out.astype(np.float64)
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def _binned_kl_columns(
    p: np.ndarray, q: np.ndarray, bins: int, eps: float, clip: float, legacy_binning: bool
) -> np.ndarray:
    """KL(p-sample || q-sample) per column of p (Np, n) and q (Nq, n)."""
    p, q = np.clip(p, -clip, clip), np.clip(q, -clip, clip)
    lo = np.minimum(p.min(0), q.min(0))
    hi = np.maximum(p.max(0), q.max(0))
    hi = np.where(hi <= lo, lo + 1.0, hi)
    n = p.shape[1]

    def counts(s: np.ndarray) -> np.ndarray:
        if legacy_binning:
            # the authors' np.digitize against bins + 1 edges, counting indices 1..bins: samples at the
            # joint maximum get index bins + 1 and are dropped
            edges = lo[None, :] + (hi - lo)[None, :] * (np.arange(bins + 1)[:, None] / bins)
            idx = (s[:, None, :] >= edges[None, :, :]).sum(1)  # np.digitize(x, edges) per column
            keep = (idx >= 1) & (idx <= bins)
            b = np.where(keep, idx - 1, 0)
            w = keep.astype(np.float64)
        else:
            b = np.clip(np.floor((s - lo) / (hi - lo) * bins), 0, bins - 1).astype(np.int64)
            w = np.ones_like(s)
        flat = (b + bins * np.arange(n)[None, :]).ravel()
        return np.bincount(flat, weights=w.ravel(), minlength=bins * n).reshape(n, bins)

    cp, cq = counts(p), counts(q)
    pp = cp / np.maximum(cp.sum(1, keepdims=True), 1e-300)
    qq = cq / np.maximum(cq.sum(1, keepdims=True), 1e-300)
    qq = np.where((pp > 0) & (qq < eps), eps, qq)
    if legacy_binning:
        qq = qq / qq.sum(1, keepdims=True)  # the authors' scipy.stats.entropy renormalises the floored q
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pp > 0, pp * np.log(pp / qq), 0.0)
    return terms.sum(1)


def _check(bins: int, eps: float, clip: float, legacy_binning: bool, owner: str) -> None:
    validate_params(
        {
            "bins": [Interval(int, 1, math.inf, closed="left")],
            "eps": [Interval(float, 0, 1, closed="neither")],
            "clip": [Interval(float, 0, math.inf, closed="neither")],
            "legacy_binning": [Options((True, False))],
        },
        {"bins": bins, "eps": eps, "clip": clip, "legacy_binning": legacy_binning},
        owner=owner,
    )


def binned_kl(
    p_samples: Array,
    q_samples: Array,
    bins: int = 20,
    eps: float = 1e-5,
    clip: float = 100.0,
    legacy_binning: bool = False,
) -> float:
    """KL(p || q) of two 1-D samples binned on their shared range (see the module docstring)."""
    _check(bins, eps, clip, legacy_binning, "binned_kl")
    p, q = _np(p_samples, "p_samples").reshape(-1), _np(q_samples, "q_samples").reshape(-1)
    if p.size == 0 or q.size == 0:
        raise ValueError("binned_kl: p_samples and q_samples must be non-empty")
    return float(_binned_kl_columns(p[:, None], q[:, None], bins, eps, clip, legacy_binning)[0])


def klom(
    unlearned_margins: Array,
    oracle_margins: Array,
    direction: str = "unlearned||oracle",
    bins: int = 20,
    eps: float = 1e-5,
    clip: float = 100.0,
    legacy_binning: bool = False,
) -> np.ndarray:
    """Per-example KLoM: margins (N_u, n) of the unlearned models and (N_o, n) of the oracles
    (rows: models over seeds; columns: examples). Returns (n,) float64.

    Raises:
        ValueError: not 2-D, different numbers of examples, no model, NaN/inf, bad options.
    """
    _check(bins, eps, clip, legacy_binning, "klom")
    validate_params(
        {"direction": [Options(("unlearned||oracle", "oracle||unlearned"))]}, {"direction": direction}, owner="klom"
    )
    u, o = _np(unlearned_margins, "unlearned_margins"), _np(oracle_margins, "oracle_margins")
    if u.ndim != 2 or o.ndim != 2 or u.shape[1] != o.shape[1] or u.shape[0] == 0 or o.shape[0] == 0:
        raise ValueError(
            f"klom: unlearned_margins and oracle_margins must be (N, n) with the same n and N >= 1, "
            f"got {u.shape} and {o.shape}"
        )
    if direction == "oracle||unlearned":
        u, o = o, u
    return _binned_kl_columns(u, o, bins, eps, clip, legacy_binning)


def klom_noise_floor(oracles_a: Array, oracles_b: Array, **kwargs: object) -> np.ndarray:
    """Per-example KLoM of one set of oracles' margins against another, independent set: what a
    perfect unlearner scores with this many models (the estimator's small-sample bias)."""
    return klom(oracles_a, oracles_b, **kwargs)  # type: ignore[arg-type]


def klom_summary(
    per_example: Array, groups: Mapping[str, Array], percentiles: Sequence[float] = (95, 99)
) -> dict[str, dict[str, float] | float]:
    """``{group: {"p95": .., "p99": .., "mean": .., "std": ..}, "average_95": ..}`` over the
    examples of each group (indices into ``per_example``); ``average_95`` (the mean of the
    groups' 95th percentiles) only when 95 is among ``percentiles``."""
    vals = _np(per_example, "per_example").reshape(-1)
    out: dict[str, dict[str, float] | float] = {}
    for name, idx in groups.items():
        ii = np.asarray(idx.detach().cpu().numpy() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64).reshape(
            -1
        )
        if ii.size == 0:
            raise ValueError(f"klom_summary: group {name!r} is empty")
        if ii.min() < 0 or ii.max() >= vals.size:
            raise ValueError(f"klom_summary: group {name!r} holds indices outside [0, {vals.size})")
        g = vals[ii]
        stats = {f"p{p:g}": float(np.percentile(g, p)) for p in percentiles}
        stats.update(mean=float(g.mean()), std=float(g.std()))
        out[name] = stats
    if 95 in percentiles and groups:
        out["average_95"] = float(np.mean([out[name]["p95"] for name in groups]))  # type: ignore[index]
    return out
