"""Splits and samplers: held-out classes (metric learning), N-way K-shot episodes (few-shot),
the generalized-category-discovery split, and M-per-class batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from paperzoo.data._sampling import as_labels, check_int, check_seed, random_rank_within_class, resolve_classes

if TYPE_CHECKING:
    import torch
    from pytorch_metric_learning.samplers import MPerClassSampler

__all__ = [
    "Episode",
    "EpisodeSampler",
    "GCDSplit",
    "gcd_split",
    "held_out_class_split",
    "m_per_class_sampler",
]


def held_out_class_split(y: np.ndarray, train_classes: Sequence[int] | int) -> tuple[np.ndarray, np.ndarray]:
    """Split by class for metric learning: train on some classes, retrieve on the unseen rest.

    Args:
        y: labels (N,).
        train_classes: the training classes, or an int ``k`` for the first ``k`` classes in
            label order. At least one class must be left for the test side.

    Returns:
        ``(train_idx, test_idx)``: sorted indices of the samples of the training classes and
        of all other classes (disjoint, together all of ``0..N-1``).
    """
    labels = as_labels(y)
    chosen = resolve_classes(labels, train_classes, "train_classes")
    mask = np.isin(labels, chosen)
    return np.flatnonzero(mask), np.flatnonzero(~mask)


# --------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode.

    Attributes:
        support_idx: (n_way * k_shot,) indices, class by class: entries
            ``[i * k_shot, (i + 1) * k_shot)`` belong to ``classes[i]``.
        query_idx: (n_way * n_query,) indices, grouped the same way.
        classes: (n_way,) the episode's classes; episode label ``i`` means ``classes[i]``.
    """

    support_idx: np.ndarray
    query_idx: np.ndarray
    classes: np.ndarray

    @property
    def support_targets(self) -> np.ndarray:
        """Episode labels (0..n_way-1) of the support samples."""
        return np.repeat(np.arange(self.classes.shape[0]), self.support_idx.shape[0] // self.classes.shape[0])

    @property
    def query_targets(self) -> np.ndarray:
        """Episode labels (0..n_way-1) of the query samples."""
        return np.repeat(np.arange(self.classes.shape[0]), self.query_idx.shape[0] // self.classes.shape[0])


class EpisodeSampler:
    """Iterable of ``n_episodes`` N-way K-shot episodes (:class:`Episode`).

    Each episode draws ``n_way`` distinct classes among the eligible ones, then ``k_shot``
    support and ``n_query`` query samples of each class, all distinct. A class is eligible if
    it has at least ``k_shot + n_query`` samples; other classes are never drawn.

    Iterating twice yields the same episodes; :meth:`set_epoch` changes them (the episodes
    of epoch ``e`` are drawn from ``default_rng([seed, e])``).

    Raises:
        ValueError: fewer than ``n_way`` classes are eligible.
    """

    def __init__(self, labels: np.ndarray, n_way: int, k_shot: int, n_query: int, n_episodes: int, seed: int) -> None:
        self.labels = as_labels(labels, "labels")
        self.n_way = check_int(n_way, "n_way", 1)
        self.k_shot = check_int(k_shot, "k_shot", 1)
        self.n_query = check_int(n_query, "n_query", 0)
        self.n_episodes = check_int(n_episodes, "n_episodes", 1)
        self.seed = check_seed(seed)
        self.epoch = 0
        need = self.k_shot + self.n_query
        classes, counts = np.unique(self.labels, return_counts=True)
        self.eligible_classes = classes[counts >= need]
        if self.eligible_classes.size < self.n_way:
            raise ValueError(
                f"n_way={self.n_way} needs {self.n_way} classes with at least k_shot + n_query = {need} samples; "
                f"labels has only {self.eligible_classes.size} (class sizes range {counts.min() if counts.size else 0}"
                f"..{counts.max() if counts.size else 0})"
            )
        # samples of the eligible classes, grouped by class: pool[start[j] : start[j] + size[j]]
        keep = np.flatnonzero(np.isin(self.labels, self.eligible_classes))
        self._pool = keep[np.argsort(self.labels[keep], kind="stable")]
        self._sizes = counts[counts >= need]
        self._starts = np.r_[0, np.cumsum(self._sizes)[:-1]]

    def __len__(self) -> int:
        return self.n_episodes

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still seeded) set of episodes on the next iteration."""
        self.epoch = check_int(epoch, "epoch", 0)

    def __iter__(self) -> Iterator[Episode]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per = self.k_shot + self.n_query
        n_eligible = self.eligible_classes.size
        for _ in range(self.n_episodes):
            which = rng.choice(n_eligible, size=self.n_way, replace=False)
            # per chosen class, `per` distinct positions: the smallest of random keys (padded
            # beyond the class size with +inf), vectorised over the n_way classes
            sizes = self._sizes[which]
            keys = rng.random((self.n_way, int(sizes.max())))
            keys[np.arange(keys.shape[1])[None, :] >= sizes[:, None]] = np.inf
            pos = np.argpartition(keys, per - 1, axis=1)[:, :per] if per < keys.shape[1] else np.argsort(keys, axis=1)
            picks = self._pool[self._starts[which][:, None] + pos[:, :per]]
            yield Episode(
                support_idx=picks[:, : self.k_shot].reshape(-1),
                query_idx=picks[:, self.k_shot :].reshape(-1),
                classes=self.eligible_classes[which],
            )


# --------------------------------------------------------------------------- GCD
@dataclass(frozen=True)
class GCDSplit:
    """Generalized category discovery split (SimGCD protocol).

    Attributes:
        labelled_idx: sorted indices of the labelled training samples (known classes only).
        unlabelled_idx: sorted indices of everything else (the rest of the known classes and
            all novel classes): the unlabelled training set on which clustering accuracy is
            reported.
        old_mask: bool (len(unlabelled_idx),): the sample's class is known ("old").
        known_classes: sorted known ("old") class ids.
        novel_classes: sorted novel ("new") class ids.
    """

    labelled_idx: np.ndarray
    unlabelled_idx: np.ndarray
    old_mask: np.ndarray
    known_classes: np.ndarray
    novel_classes: np.ndarray


def gcd_split(
    y: np.ndarray,
    known_classes: Sequence[int] | int,
    *,
    labelled_fraction: float = 0.5,
    seed: int,
    per_class: bool = True,
) -> GCDSplit:
    """Split a labelled training set for generalized category discovery.

    ``per_class=True`` (the default): from each known class, ``max(1, floor(labelled_fraction *
    size))`` samples are drawn uniformly at random and labelled. ``per_class=False`` follows the
    official SimGCD / GCD code instead: one uniform sample without replacement of
    ``int(labelled_fraction * n_old)`` samples over all ``n_old`` known-class samples together
    (``np.random.RandomState(seed).choice(n_old, size, replace=False)`` over them in index
    order, as the official ``subsample_instances`` draws with ``np.random.seed(0)``), so class
    sizes of the labelled set vary. Either way, all remaining samples (the rest of the known
    classes and every sample of the novel classes) form the unlabelled set.

    Args:
        y: labels (N,).
        known_classes: the known classes, or an int ``k`` for the first ``k`` in label order;
            at least one class must stay novel.
        labelled_fraction: fraction of the known-class samples that is labelled, in (0, 1).
        seed: seed of the choice of labelled samples.
        per_class: draw the labelled samples class by class (True) or in one draw over all
            known-class samples (False, the reference code).

    Raises:
        ValueError: ``per_class=False`` left a known class without any labelled sample (the
            message names the class).
    """
    labels = as_labels(y)
    if not np.isfinite(labelled_fraction) or not 0.0 < labelled_fraction < 1.0:
        raise ValueError(f"labelled_fraction must lie in (0, 1), got {labelled_fraction}")
    if not isinstance(per_class, (bool, np.bool_)):
        raise TypeError(f"per_class must be a bool, got {type(per_class).__name__}")
    known = resolve_classes(labels, known_classes, "known_classes")
    novel = np.setdiff1d(np.unique(labels), known)
    if per_class:
        classes, counts = np.unique(labels, return_counts=True)
        n_labelled = np.where(np.isin(classes, known), np.maximum(1, np.floor(labelled_fraction * counts + 1e-9)), 0)
        rank = random_rank_within_class(labels, np.random.default_rng(check_seed(seed)))
        is_labelled = rank < n_labelled[np.searchsorted(classes, labels)]
    else:
        old_idx = np.flatnonzero(np.isin(labels, known))
        size = int(labelled_fraction * old_idx.size)
        chosen = np.random.RandomState(check_seed(seed)).choice(old_idx.size, size=size, replace=False)
        is_labelled = np.zeros(labels.shape[0], dtype=bool)
        is_labelled[old_idx[chosen]] = True
        empty = np.setdiff1d(known, labels[is_labelled])
        if empty.size:
            raise ValueError(
                f"gcd_split: known class {int(empty[0])} has no labelled sample (labelled_fraction="
                f"{labelled_fraction} drawn over all {old_idx.size} known-class samples, seed={seed}); raise "
                "labelled_fraction or use per_class=True"
            )
    unlabelled = np.flatnonzero(~is_labelled)
    return GCDSplit(
        labelled_idx=np.flatnonzero(is_labelled),
        unlabelled_idx=unlabelled,
        old_mask=np.isin(labels[unlabelled], known),
        known_classes=known,
        novel_classes=novel,
    )


# --------------------------------------------------------------------------- M per class
def m_per_class_sampler(
    labels: np.ndarray | torch.Tensor, m: int, batch_size: int, length_before_new_iter: int | None = None
) -> MPerClassSampler:
    """Batches of ``batch_size // m`` classes with ``m`` samples each (P x K sampling).

    A thin wrapper that checks the arguments and returns
    ``pytorch_metric_learning.samplers.MPerClassSampler(labels, m, batch_size,
    length_before_new_iter)``. Use it with ``DataLoader(..., batch_size=batch_size,
    sampler=...)`` and no shuffling. That sampler draws from NumPy's global generator, so seed
    it with :func:`paperzoo.engine.seed.seed_everything` for reproducible batches; a class with
    fewer than ``m`` samples is sampled with replacement.

    Args:
        labels: labels (N,), a numpy array or a torch tensor.
        m: samples per class in a batch (>= 1).
        batch_size: a multiple of ``m``; ``batch_size // m`` classes must exist.
        length_before_new_iter: indices yielded per pass (default ``N``, at least one batch);
            rounded down to a multiple of ``batch_size``.
    """
    from pytorch_metric_learning.samplers import MPerClassSampler

    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = as_labels(labels, "labels")
    m = check_int(m, "m", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if batch_size % m:
        raise ValueError(f"batch_size must be a multiple of m; got batch_size={batch_size}, m={m}")
    n_classes = int(np.unique(arr).size)
    if batch_size // m > n_classes:
        raise ValueError(
            f"batch_size={batch_size} with m={m} needs {batch_size // m} classes, but labels has {n_classes}"
        )
    if length_before_new_iter is None:
        length = max(arr.shape[0], batch_size)
    else:
        length = check_int(length_before_new_iter, "length_before_new_iter", batch_size)
    return MPerClassSampler(arr, m, batch_size=batch_size, length_before_new_iter=length)
