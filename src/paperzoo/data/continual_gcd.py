"""The continual generalized-category-discovery (C-GCD) session protocol of Happy (Ma et al., NeurIPS
2024; official ``data/cifar.py``): works on any labelled array.

Stage 0: ``prop_labelled`` of every old class's training samples are labelled (drawn per class); the
rest of the old-class samples form the pool from which later sessions draw unlabelled old samples.
The non-old classes are split into ``n_sessions`` equal groups (in label order, or shuffled with
``shuffle_seed``). Session t (all unlabelled) draws, independently of the other sessions (nothing is
stored): ``old_seen`` samples of every stage-0 class from its pool, ``novel_seen`` samples of every
class introduced in an earlier session, ``novel_unseen`` samples of every class new in session t.
The test set of session t is the test split restricted to the stage-0 classes and the novel classes
introduced up to t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from paperzoo._validation import Interval, validate_params

__all__ = ["CGCDSessions", "make_cgcd_sessions"]


@dataclass(frozen=True)
class CGCDSessions:
    """The split of one C-GCD run.

    Attributes:
        class_order: every class, old classes first then each session's new classes (C,); the
            model's class index of a label is its position here (:meth:`relabel`).
        n_old: K_0, the number of stage-0 classes.
        session_classes: the new classes of each session (n_sessions tuples of labels).
        stage0_idx: training indices of the labelled stage-0 samples.
        session_idx: per session, the training indices of its unlabelled samples.
        test_idx: per session, the test indices of the classes seen up to it (empty without test labels).
    """

    class_order: np.ndarray
    n_old: int
    session_classes: tuple[tuple[int, ...], ...]
    stage0_idx: np.ndarray
    session_idx: tuple[np.ndarray, ...]
    test_idx: tuple[np.ndarray, ...]

    @property
    def n_sessions(self) -> int:
        return len(self.session_classes)

    def n_seen(self, session: int) -> int:
        """K_seen of session ``session`` (1-based): the classes known before it."""
        return self.n_old + sum(len(c) for c in self.session_classes[: session - 1])

    def n_all(self, session: int) -> int:
        """K_all of session ``session`` (1-based): the classes known after it."""
        return self.n_seen(session) + len(self.session_classes[session - 1])

    def relabel(self, y: np.ndarray) -> np.ndarray:
        """Labels as positions in :attr:`class_order` (stage-0 classes 0..K_0-1, then session by session)."""
        rank = np.full(int(self.class_order.max()) + 1, -1, dtype=np.int64)
        rank[self.class_order] = np.arange(len(self.class_order))
        return rank[np.asarray(y, dtype=np.int64)]


_COUNT = [Interval(int, 0, math.inf, closed="left")]


def make_cgcd_sessions(
    labels: np.ndarray,
    old_classes: Sequence[int],
    n_sessions: int,
    *,
    prop_labelled: float = 0.8,
    old_seen: int = 25,
    novel_seen: int = 25,
    novel_unseen: int = 400,
    test_labels: np.ndarray | None = None,
    shuffle_seed: int | None = None,
    seed: int = 0,
) -> CGCDSessions:
    """Stage-0 labelled indices, per-session unlabelled indices and per-session test indices.

    Args:
        labels: training labels (N,), non-negative ints.
        old_classes: the stage-0 classes.
        n_sessions: T; the other classes must split into T equal groups.
        prop_labelled: share of each old class's samples labelled at stage 0 (0.8).
        old_seen, novel_seen, novel_unseen: samples per class drawn in a session for stage-0
            classes, earlier novel classes and the session's new classes (CIFAR-100: 25 / 25 / 400);
            a class with fewer available samples gives all of them.
        test_labels: test labels (M,) for the per-session test indices.
        shuffle_seed: shuffle the novel classes before splitting them into sessions (None: label order).
        seed: the draws.

    Raises:
        ValueError: bad labels, an old class absent from ``labels``, no novel class, or novel
            classes that do not split evenly into ``n_sessions``.
    """
    validate_params(
        {
            "n_sessions": [Interval(int, 1, math.inf, closed="left")],
            "prop_labelled": [Interval(float, 0.0, 1.0, closed="right")],
            "old_seen": _COUNT,
            "novel_seen": _COUNT,
            "novel_unseen": [Interval(int, 1, math.inf, closed="left")],
        },
        {
            "n_sessions": n_sessions,
            "prop_labelled": prop_labelled,
            "old_seen": old_seen,
            "novel_seen": novel_seen,
            "novel_unseen": novel_unseen,
        },
        owner="make_cgcd_sessions",
    )
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("labels must be a non-empty 1-d array of non-negative ints")
    classes = np.unique(y)
    old = np.unique(np.asarray(old_classes, dtype=np.int64))
    if old.size == 0 or not np.isin(old, classes).all():
        raise ValueError(f"old_classes must be non-empty classes present in labels, got {list(old_classes)}")
    novel = np.setdiff1d(classes, old)
    if novel.size == 0:
        raise ValueError("no novel class: every class in labels is in old_classes")
    if novel.size % n_sessions:
        raise ValueError(f"{novel.size} novel classes do not split evenly into n_sessions={n_sessions}")
    if shuffle_seed is not None:
        novel = np.random.default_rng(shuffle_seed).permutation(novel)
    groups = tuple(tuple(int(c) for c in g) for g in np.split(novel, n_sessions))
    rng = np.random.default_rng(seed)

    labelled, pool = [], {}
    for c in old:
        idx = rng.permutation(np.flatnonzero(y == c))
        n_lab = max(1, int(prop_labelled * idx.size))
        labelled.append(np.sort(idx[:n_lab]))
        pool[int(c)] = idx[n_lab:]

    def draw(idx: np.ndarray, n: int) -> np.ndarray:
        return idx if n >= idx.size else rng.choice(idx, n, replace=False)

    sessions, seen_novel = [], []
    for g in groups:
        parts = [draw(pool[int(c)], old_seen) for c in old]
        parts += [draw(np.flatnonzero(y == c), novel_seen) for c in seen_novel]
        parts += [draw(np.flatnonzero(y == c), novel_unseen) for c in g]
        sessions.append(np.sort(np.concatenate(parts)).astype(np.int64))
        seen_novel.extend(g)

    tests: list[np.ndarray] = []
    if test_labels is not None:
        yt = np.asarray(test_labels)
        if yt.ndim != 1:
            raise ValueError(f"test_labels must be 1-d, got shape {yt.shape}")
        known = list(old)
        for g in groups:
            known.extend(g)
            tests.append(np.flatnonzero(np.isin(yt, known)))
    return CGCDSessions(
        class_order=np.concatenate([old, novel]).astype(np.int64),
        n_old=int(old.size),
        session_classes=groups,
        stage0_idx=np.sort(np.concatenate(labelled)).astype(np.int64),
        session_idx=tuple(sessions),
        test_idx=tuple(tests),
    )
