"""Semi-homogeneous in-task batch sampler (paper 43): coverage, homogeneity at r = 1 and the
kept share at r < 1, determinism per (seed, epoch), replicas, and the sentence-transformers hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.embeddings.semi_homogeneous_sampler import SemiHomogeneousBatchSampler

TASKS = np.repeat(np.array(["nli", "qa", "sts", "clf"]), [64, 48, 32, 16])  # 160 rows, multiples of 16


def test_every_index_once_and_homogeneous_at_ratio_one() -> None:
    s = SemiHomogeneousBatchSampler(TASKS, batch_size=16, ratio=1.0, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 10
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(160))
    assert all(len(set(TASKS[b])) == 1 for b in batches)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_ratio_keeps_at_least_b_minus_m(ratio: float) -> None:
    s = SemiHomogeneousBatchSampler(TASKS, batch_size=16, ratio=ratio, seed=0)
    m = int(16 * (1 - ratio))
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(160))
    for b in batches:
        head = TASKS[b[: 16 - m]]
        assert len(set(head)) <= 1  # the first B - m slots are untouched
    if ratio <= 0.5:
        assert any(len(set(TASKS[b])) > 1 for b in batches)


def test_tails_are_mixed_and_drop_last() -> None:
    tasks = np.repeat(np.array(["a", "b", "c"]), [20, 13, 7])  # 40 rows, batch 8
    keep = SemiHomogeneousBatchSampler(tasks, batch_size=8, ratio=1.0, seed=1)
    batches = list(keep)
    assert sorted(i for b in batches for i in b) == list(range(40)) and len(batches) == len(keep)
    drop = SemiHomogeneousBatchSampler(tasks, batch_size=5, ratio=1.0, seed=1, drop_last=True)
    out = list(drop)
    assert all(len(b) == 5 for b in out) and len(out) == len(drop) == 8
    short = SemiHomogeneousBatchSampler(tasks, batch_size=6, ratio=1.0, seed=1)
    out = list(short)
    assert len(out[-1]) == 40 % 6 and sum(map(len, out)) == 40  # the short batch comes last


def test_deterministic_given_seed_and_epoch() -> None:
    a = SemiHomogeneousBatchSampler(TASKS, 16, ratio=0.5, seed=7)
    b = SemiHomogeneousBatchSampler(TASKS, 16, ratio=0.5, seed=7)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(a)
    torch.manual_seed(999)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_replicas_split_each_global_batch() -> None:
    whole = list(SemiHomogeneousBatchSampler(TASKS, 16, seed=2))
    parts = [list(SemiHomogeneousBatchSampler(TASKS, 8, seed=2, num_replicas=2, rank=r)) for r in (0, 1)]
    for g, r0, r1 in zip(whole, *parts):
        assert r0 == g[0::2] and r1 == g[1::2]


def test_trainer_factory_and_bad_input() -> None:
    build = SemiHomogeneousBatchSampler.for_trainer(list(TASKS), ratio=0.75)
    sampler = build(list(range(160)), batch_size=16, drop_last=False, valid_label_columns=None, generator=None, seed=4)
    assert isinstance(sampler, SemiHomogeneousBatchSampler) and sampler.seed == 4 and sampler.ratio == 0.75
    with pytest.raises(ValueError, match="task_ids"):
        build(list(range(10)), 16, False)
    with pytest.raises(ValueError, match="ratio"):
        SemiHomogeneousBatchSampler(TASKS, 16, ratio=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        SemiHomogeneousBatchSampler(TASKS, 0)
    with pytest.raises(ValueError, match="rank"):
        SemiHomogeneousBatchSampler(TASKS, 8, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="empty"):
        SemiHomogeneousBatchSampler([], 8)
