"""Vectorised helpers shared by the loaders, generators and splits (argument checks and
per-class random ranks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_labels(y: object, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D int64 array of non-negative labels; raises naming ``name`` otherwise."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(arr.min())}")
    return arr


def check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; raises naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed for ``np.random.default_rng``: a non-negative int."""
    return check_int(seed, name, 0)


def random_rank_within_class(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each sample, its position in a uniformly random order of its own class.

    ``rank[i] = r`` means sample ``i`` is the ``r``-th (0-based) of its class in the shuffled
    order, so ``rank < k`` selects ``k`` distinct random samples of every class (all of a class
    with fewer than ``k``). Vectorised: one permutation and one stable sort.
    """
    n = y.shape[0]
    perm = rng.permutation(n)
    order = perm[np.argsort(y[perm], kind="stable")]
    sorted_y = y[order]
    starts = np.flatnonzero(np.r_[True, sorted_y[1:] != sorted_y[:-1]]) if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    return rank


def resolve_classes(y: np.ndarray, classes: Sequence[int] | int, name: str) -> np.ndarray:
    """Sorted unique class ids chosen by ``classes``: an int ``k`` means the first ``k`` classes
    of ``y`` in label order; a sequence must name classes that occur in ``y``, without repeats.
    The choice must leave at least one class of ``y`` out and contain at least one."""
    present = np.unique(y)
    if isinstance(classes, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got bool")
    if isinstance(classes, (int, np.integer)):
        k = int(classes)
        if not 0 < k < present.size:
            raise ValueError(f"{name} must lie in [1, {present.size - 1}] (y has {present.size} classes), got {k}")
        return present[:k]
    chosen = np.asarray(classes)
    if chosen.ndim != 1 or chosen.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of class ids, got shape {chosen.shape}")
    if not np.issubdtype(chosen.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {chosen.dtype}")
    chosen = chosen.astype(np.int64)
    if np.unique(chosen).size != chosen.size:
        raise ValueError(f"{name} contains repeated classes: {chosen.tolist()}")
    unknown = np.setdiff1d(chosen, present)
    if unknown.size:
        raise ValueError(f"{name}: classes {unknown.tolist()} do not occur in the labels")
    if chosen.size == present.size:
        raise ValueError(f"{name} covers all {present.size} classes; at least one must be left out")
    return np.sort(chosen)
