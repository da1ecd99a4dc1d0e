"""Semi-homogeneous in-task batch sampling of KaLM-Embedding (Zhao et al., 2025, arXiv:2506.20923;
the reference is ``DistributedInTaskSampler`` in ``train/data.py`` of the official repository).

In-batch negatives from the same task are harder and share the query instruction, so batches
are built mostly from one task. Per epoch, with a generator seeded by ``seed + epoch``:

1. shuffle each task's indices and cut them into chunks of the global batch B
   (``batch_size * num_replicas``);
2. pool the incomplete tail chunks of all tasks in a random order and re-cut them into "mixed"
   batches (with ``drop_last`` an incomplete final batch is dropped, otherwise kept short);
3. with homogeneity ratio r, take the last ``m = int(B * (1 - r))`` indices of every batch,
   shuffle that pool and put the indices back, so a single-task batch keeps at least ``B - m``
   of its own task and receives ``m`` random indices (r = 1: fully homogeneous; r = 0: random);
4. shuffle the batch order (a short final batch stays last); replica k takes positions
   ``k, k + num_replicas, ...`` of each global batch.

Two departures from the reference, both deliberate: the pool shuffle in step 3 uses the seeded
generator (the reference draws it from the global RNG, so its batches were not reproducible
from the seed), and ``drop_last`` drops the short final batch also on one replica.

:class:`SemiHomogeneousBatchSampler` is a ``torch.utils.data.Sampler`` of index lists (a
``batch_sampler`` for ``DataLoader``); :meth:`SemiHomogeneousBatchSampler.for_trainer` returns the
callable that ``SentenceTransformerTrainingArguments(batch_sampler=...)`` accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = ["SemiHomogeneousBatchSampler"]


class SemiHomogeneousBatchSampler(Sampler[list[int]]):
    """Batches of indices drawn mostly from one task (see the module docstring).

    Args:
        task_ids: one task label per dataset row (any hashable values; a sequence or array).
        batch_size: per-replica batch size; the global batch is ``batch_size * num_replicas``.
        ratio: homogeneity ratio r in [0, 1].
        seed: base seed; epoch e uses ``seed + e`` (call :meth:`set_epoch`).
        drop_last: drop the incomplete final (mixed) batch.
        num_replicas, rank: data-parallel world size and this process's rank.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "batch_size": [Interval(int, 1, math.inf, closed="left")],
        "ratio": [Interval(float, 0, 1, closed="both")],
        "seed": [Interval(int, 0, math.inf, closed="left")],
        "drop_last": [Options((True, False))],
        "num_replicas": [Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(
        self,
        task_ids: Sequence[Any] | np.ndarray,
        batch_size: int,
        ratio: float = 1.0,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"batch_size": batch_size, "ratio": ratio, "seed": seed, "drop_last": drop_last,
             "num_replicas": num_replicas},
            owner=type(self).__name__,
        )  # fmt: skip
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"{type(self).__name__}: rank must be an int in [0, {num_replicas}), got {rank!r}")
        labels = list(task_ids)
        if not labels:
            raise ValueError("task_ids is empty: the dataset has 0 rows")
        _, codes = np.unique(np.asarray([str(t) for t in labels]), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        self._tasks = [torch.from_numpy(part.astype(np.int64)) for part in np.split(order, bounds)]
        self.task_codes = torch.from_numpy(codes.astype(np.int64))
        self.batch_size, self.ratio, self.seed = int(batch_size), float(ratio), int(seed)
        self.drop_last, self.num_replicas, self.rank = bool(drop_last), int(num_replicas), int(rank)
        self.global_batch = self.batch_size * self.num_replicas
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the generator is seeded with ``seed + epoch``)."""
        self.epoch = int(epoch)

    def global_batches(self) -> list[Tensor]:
        """This epoch's global batches (index tensors), in order, before the split over replicas."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        big = self.global_batch
        full: list[Tensor] = []
        tails: list[Tensor] = []
        for idx in self._tasks:
            chunks = list(idx[torch.randperm(len(idx), generator=g)].split(big))
            if len(chunks[-1]) < big:
                tails.append(chunks.pop())
            full += chunks
        mixed: list[Tensor] = []
        if tails:
            order = torch.randperm(len(tails), generator=g).tolist()
            mixed = list(torch.cat([tails[i] for i in order]).split(big))
            if self.drop_last and len(mixed[-1]) < big:
                mixed.pop()
        batches = [b.clone() for b in full + mixed]
        if not batches:
            return []
        m = int(big * (1.0 - self.ratio))
        if m > 0:  # redistribute the last m slots of every batch
            take = [min(m, len(b)) for b in batches]
            pool = torch.cat([b[len(b) - t :] for b, t in zip(batches, take)])
            pool = pool[torch.randperm(len(pool), generator=g)]
            for b, part in zip(batches, pool.split(take)):
                b[len(b) - len(part) :] = part
        short_last = len(batches[-1]) < big
        n_shuffled = len(batches) - 1 if short_last else len(batches)
        order = torch.randperm(n_shuffled, generator=g).tolist() + ([len(batches) - 1] if short_last else [])
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.global_batches():
            part = b[self.rank :: self.num_replicas]
            if len(part):
                yield part.tolist()

    def __len__(self) -> int:
        sizes = [len(t) for t in self._tasks]
        n_full = sum(s // self.global_batch for s in sizes)
        rest = sum(s % self.global_batch for s in sizes)
        n_mixed = rest // self.global_batch + (1 if rest % self.global_batch and not self.drop_last else 0)
        return n_full + n_mixed

    @classmethod
    def for_trainer(
        cls, task_ids: Sequence[Any] | np.ndarray, ratio: float = 1.0, num_replicas: int = 1, rank: int = 0
    ) -> Callable[..., SemiHomogeneousBatchSampler]:
        """A factory for ``SentenceTransformerTrainingArguments(batch_sampler=...)``.

        sentence-transformers calls it with ``(dataset, batch_size, drop_last, valid_label_columns,
        generator, seed)``; ``task_ids`` gives the task of each row of the training dataset (a task
        column inside the dataset would be tokenised as a text input, so it is passed here).
        """
        labels = list(task_ids)

        def build(
            dataset: Any,
            batch_size: int,
            drop_last: bool,
            valid_label_columns: Any = None,
            generator: Any = None,
            seed: int = 0,
        ) -> SemiHomogeneousBatchSampler:
            if len(dataset) != len(labels):
                raise ValueError(f"task_ids has {len(labels)} entries but the training dataset has {len(dataset)} rows")
            return cls(labels, batch_size, ratio, seed, drop_last, num_replicas, rank)

        return build
