"""Client partitions of a labelled set, as the federated-learning papers draw them.

- :func:`dirichlet_partition`: label skew. For each class, the shares of its samples that go to
  each client are drawn from ``Dirichlet(alpha)`` (Hsu, Qi & Brown 2019; the split of the FedLoGe,
  FedLD and FedLabel reference code); small ``alpha`` gives each client few classes. Draws are
  repeated until every client holds at least ``min_size`` samples, as the reference code does.
- :func:`iid_partition`: a seeded shuffle cut into equal parts.
- :func:`labelled_mask`: which samples are labelled in the limited-label setting: a fraction of
  each client's samples, or only some clients labelled.
- A long-tailed global set (the FedLoGe setting) is :func:`paperzoo.data.long_tailed` applied
  before partitioning.

:func:`check_partitions` is the boundary check every federated entry point runs: an empty client,
an index out of range or a sample given to two clients is a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_partitions", "dirichlet_partition", "iid_partition", "labelled_mask"]


def check_partitions(partitions: Sequence[np.ndarray], n: int) -> None:
    """Every client holds at least one sample, indices lie in ``[0, n)``, no sample is on two clients.

    Raises:
        ValueError: naming the first offending client.
    """
    if len(partitions) == 0:
        raise ValueError("partitions: no client; give at least one")
    for k, part in enumerate(partitions):
        part = np.asarray(part)
        if part.size == 0:
            raise ValueError(f"partitions: client {k} has no samples; every client needs at least one")
        if part.min() < 0 or part.max() >= n:
            raise ValueError(f"partitions: client {k} holds indices outside [0, {n}), got {part.min()}..{part.max()}")
    flat = np.concatenate([np.asarray(p) for p in partitions])
    if np.unique(flat).size != flat.size:
        raise ValueError("partitions: a sample is given to more than one client (or twice to one)")


def iid_partition(n: int, num_clients: int, *, seed: int) -> list[np.ndarray]:
    """``n`` samples shuffled (seeded) and cut into ``num_clients`` parts of equal size (+-1)."""
    if num_clients < 1 or num_clients > n:
        raise ValueError(f"num_clients must be in [1, {n}] for {n} samples, got {num_clients}")
    return [np.sort(p) for p in np.array_split(np.random.default_rng(seed).permutation(n), num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, *, seed: int, min_size: int = 1, max_tries: int = 1000
) -> list[np.ndarray]:
    """Label-skewed partition: client shares of each class drawn from ``Dirichlet(alpha * 1)``.

    Args:
        labels: (N,) integer labels.
        num_clients: the number of clients K.
        alpha: concentration (> 0); 0.1 is strongly skewed, 100 nearly IID.
        seed: seed of the draws.
        min_size: each client must end with at least this many samples; the whole draw is
            repeated until it does (at most ``max_tries`` times).

    Returns:
        K sorted index arrays, disjoint, covering every sample.

    Raises:
        ValueError: bad arguments, or no draw in ``max_tries`` gives every client ``min_size``
            samples (too few samples for K clients at this ``alpha``).
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty (N,) integer array, got shape {y.shape} and dtype {y.dtype}")
    if not (isinstance(alpha, int | float) and not isinstance(alpha, bool) and alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if num_clients < 1 or num_clients * min_size > y.size:
        raise ValueError(
            f"num_clients={num_clients} clients of at least min_size={min_size} samples need at least "
            f"{num_clients * max(min_size, 1)} samples, got {y.size}"
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    members = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    for _ in range(max_tries):
        shares = rng.dirichlet(np.full(num_clients, float(alpha)), size=classes.size)  # (C, K)
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx, share in zip(members, shares, strict=True):  # a loop over classes, not samples
            cuts = (np.cumsum(share)[:-1] * idx.size).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(p.size for p in out) >= min_size:
            return out
    raise ValueError(
        f"dirichlet_partition: no draw in {max_tries} tries gave each of {num_clients} clients at least "
        f"{min_size} samples (alpha={alpha}, {y.size} samples); use fewer clients, a larger alpha or min_size=1"
    )


def labelled_mask(
    partitions: Sequence[np.ndarray],
    n: int,
    *,
    fraction: float,
    seed: int,
    labelled_clients: Sequence[int] | None = None,
) -> np.ndarray:
    """(n,) boolean: which samples keep their label.

    ``fraction`` of each client's samples (at least one per labelled client) are labelled, drawn
    uniformly per client; with ``labelled_clients``, only those clients have labels at all (the
    "few labelled clients" setting) and the others are fully unlabelled.
    """
    check_partitions(partitions, n)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    chosen = range(len(partitions)) if labelled_clients is None else labelled_clients
    bad = [k for k in chosen if not 0 <= k < len(partitions)]
    if bad:
        raise ValueError(f"labelled_clients: client {bad[0]} does not exist ({len(partitions)} clients)")
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    for k in chosen:  # a loop over clients
        part = np.asarray(partitions[k])
        m = max(1, round(fraction * part.size))
        mask[rng.choice(part, m, replace=False)] = True
    return mask
