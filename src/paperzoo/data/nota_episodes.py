"""Few-shot open-set ("none-of-the-above", NOTA) episodes, the FewRel 2.0 NOTA protocol used by GPAM (Guo et al.,
"Few-shot Open Relation Extraction with Gaussian Prototype and Adaptive Margin", arXiv 2410.20320, 2024).

A thin wrapper on :class:`paperzoo.data.EpisodeSampler`: each episode draws ``n_way + n_nota_way`` distinct classes;
the first ``n_way`` are the episode's known classes (``k_shot`` supports and ``n_query`` queries each), the other
``n_nota_way`` only contribute ``n_query`` queries each, labelled :data:`NOTA` (-1). The NOTA rate of the queries
is ``n_nota_way / (n_way + n_nota_way)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from paperzoo.data._sampling import check_int
from paperzoo.data.splits import EpisodeSampler

__all__ = ["NOTA", "NOTAEpisode", "NOTAEpisodeSampler"]

NOTA = -1
"""Episode label of a none-of-the-above query."""


@dataclass(frozen=True)
class NOTAEpisode:
    """One N-way K-shot episode with NOTA queries.

    Attributes:
        support_idx: (n_way * k_shot,) indices, class by class (``classes[i]`` has episode label ``i``).
        query_idx: (n_way * n_query + n_nota_way * n_query,) indices: the known queries class by class, then the
            NOTA queries.
        query_targets: episode labels of the queries, ``0..n_way-1`` or -1 (NOTA).
        classes: (n_way,) the known classes.
        nota_classes: (n_nota_way,) the classes the NOTA queries come from.
    """

    support_idx: np.ndarray
    query_idx: np.ndarray
    query_targets: np.ndarray
    classes: np.ndarray
    nota_classes: np.ndarray

    @property
    def support_targets(self) -> np.ndarray:
        """Episode labels (0..n_way-1) of the support samples."""
        return np.repeat(np.arange(self.classes.shape[0]), self.support_idx.shape[0] // self.classes.shape[0])


class NOTAEpisodeSampler:
    """Iterable of ``n_episodes`` seeded open-set episodes (:class:`NOTAEpisode`); see the module docstring.

    Raises:
        ValueError: fewer than ``n_way + n_nota_way`` classes have ``k_shot + n_query`` samples.
    """

    def __init__(
        self,
        labels: np.ndarray,
        n_way: int,
        k_shot: int,
        n_query: int,
        n_nota_way: int,
        n_episodes: int,
        seed: int,
    ) -> None:
        self.n_way = check_int(n_way, "n_way", 1)
        self.n_nota_way = check_int(n_nota_way, "n_nota_way", 0)
        self.k_shot = check_int(k_shot, "k_shot", 1)
        self.n_query = check_int(n_query, "n_query", 1)
        self._inner = EpisodeSampler(labels, self.n_way + self.n_nota_way, self.k_shot, self.n_query, n_episodes, seed)

    @property
    def nota_rate(self) -> float:
        """Fraction of NOTA queries in every episode."""
        return self.n_nota_way / (self.n_way + self.n_nota_way)

    def __len__(self) -> int:
        return len(self._inner)

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still seeded) set of episodes on the next iteration."""
        self._inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[NOTAEpisode]:
        n, k, q = self.n_way, self.k_shot, self.n_query
        targets = np.r_[np.repeat(np.arange(n), q), np.full(self.n_nota_way * q, NOTA)]
        for ep in self._inner:
            support = ep.support_idx.reshape(n + self.n_nota_way, k)
            yield NOTAEpisode(
                support_idx=support[:n].reshape(-1),
                query_idx=ep.query_idx,
                query_targets=targets,
                classes=ep.classes[:n],
                nota_classes=ep.classes[n:],
            )
