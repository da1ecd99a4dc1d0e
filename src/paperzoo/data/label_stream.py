"""A synthetic multi-label stream with correlated labels and an abrupt concept drift, for online
label partitioning (iHOMER, Neves et al., ECAI 2025, arXiv:2507.20894; docs/papers/12-ihomer-online-label-partitioning.md).

``q`` labels fall into ``G`` latent groups. Each instance activates ``k`` groups, ``k`` uniform on
``1..max_active`` (1 or 2 by default, each with probability 0.5), chosen uniformly without
replacement; each label of an active group is on with probability ``p_label``. Features sum the prototypes of the active
groups and ``direction_scale`` times the directions of the labels that are on, plus Gaussian
noise. At ``drift_at`` the labels are re-assigned to groups (a random permutation that moves
every group's members, so label correlations change); with ``input_drift`` the group prototypes
are redrawn too. Generated vectorised from a seed, no download.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paperzoo._validation import Interval, Options, validate_params
from paperzoo.data._sampling import check_seed

__all__ = ["LabelDriftStream", "drifting_label_stream"]


@dataclass(frozen=True, eq=False)
class LabelDriftStream:
    """A generated stream.

    Attributes:
        x: float32 (N, d) features.
        y: int64 (N, q) multi-hot labels.
        groups_before, groups_after: int64 (q,) latent group of each label before / from ``drift_at``.
        drift_at: index of the first instance after the drift (``N`` when there is none).
    """

    x: np.ndarray
    y: np.ndarray
    groups_before: np.ndarray
    groups_after: np.ndarray
    drift_at: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def groups_at(self, t: int) -> np.ndarray:
        """The true label groups in force at instance ``t``."""
        return self.groups_before if t < self.drift_at else self.groups_after


_PARAMS = {
    "n": [Interval(int, 1, math.inf, closed="left")],
    "num_labels": [Interval(int, 1, math.inf, closed="left")],
    "num_groups": [Interval(int, 1, math.inf, closed="left")],
    "num_features": [Interval(int, 1, math.inf, closed="left")],
    "drift_at": [Interval(int, 0, math.inf, closed="left"), None],
    "input_drift": [Options((True, False))],
    "max_active": [Interval(int, 1, math.inf, closed="left")],
    "p_label": [Interval(float, 0.0, 1.0, closed="both")],
    "direction_scale": [Interval(float, 0.0, math.inf, closed="left")],
    "noise": [Interval(float, 0.0, math.inf, closed="left")],
}


def _moving_permutation(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A relabelling of the labels' groups in which no group keeps more than half its members
    (so the co-occurrence structure really changes); deterministic given ``rng``."""
    q = groups.size
    num_groups = int(groups.max()) + 1
    for _ in range(1000):
        new = groups[rng.permutation(q)]
        overlap = np.zeros((num_groups, num_groups), dtype=np.int64)
        np.add.at(overlap, (groups, new), 1)
        if overlap.max() <= max(1, np.bincount(groups).max() // 2):
            return new
    return new


def drifting_label_stream(
    n: int = 10_000,
    num_labels: int = 16,
    num_groups: int = 4,
    num_features: int = 20,
    drift_at: int | None = 5_000,
    *,
    input_drift: bool = False,
    max_active: int = 2,
    p_label: float = 0.8,
    direction_scale: float = 0.5,
    noise: float = 0.5,
    seed: int,
) -> LabelDriftStream:
    """The stream described in the module docstring: labels ``l`` in group ``l % num_groups`` (an
    equal split), prototypes and label directions drawn from N(0, I_d), noise N(0, noise^2 I_d).

    Raises:
        ValueError: a parameter outside its range, or more groups than labels.
    """
    params = dict(
        n=n, num_labels=num_labels, num_groups=num_groups, num_features=num_features, drift_at=drift_at,
        input_drift=input_drift, max_active=max_active, p_label=float(p_label),
        direction_scale=float(direction_scale), noise=float(noise),
    )  # fmt: skip
    validate_params(_PARAMS, params, owner="drifting_label_stream")
    if max_active > num_groups:
        raise ValueError(f"drifting_label_stream: max_active ({max_active}) must be <= num_groups ({num_groups})")
    if num_groups > num_labels:
        raise ValueError(f"drifting_label_stream: num_groups ({num_groups}) must be <= num_labels ({num_labels})")
    rng = np.random.default_rng(check_seed(seed))
    cut = n if drift_at is None else min(drift_at, n)
    before = np.arange(num_labels) % num_groups
    after = _moving_permutation(before, rng) if drift_at is not None else before.copy()
    protos = rng.normal(size=(2, num_groups, num_features))
    if not input_drift:
        protos[1] = protos[0]
    directions = rng.normal(size=(num_labels, num_features))
    k = rng.integers(1, max_active + 1, size=n)
    rank = np.argsort(rng.random((n, num_groups)), axis=1).argsort(axis=1)  # a random order of the groups
    active = rank < k[:, None]
    late = np.arange(n) >= cut
    group_of = np.where(late[:, None], after[None, :], before[None, :])  # (n, q)
    y = (np.take_along_axis(active, group_of, 1) & (rng.random((n, num_labels)) < p_label)).astype(np.int64)
    x = np.einsum("ng,ngd->nd", active.astype(np.float64), protos[late.astype(np.int64)])
    x += direction_scale * y @ directions + noise * rng.normal(size=(n, num_features))
    return LabelDriftStream(x.astype(np.float32), y, before, after, cut)
