"""Paper 49: random bags, aggregate responses, the Laplace label-DP mechanism, the whole-bag
batch sampler and the linear-regression bag data (paperzoo.data.bags)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from paperzoo.data.bags import (
    BagBatchSampler,
    aggregate_responses,
    compact_bags,
    dp_noise_scale,
    laplace_label_dp_aggregates,
    make_linear_bag_data,
    make_random_bags,
)


def test_random_bags_partition_and_seed() -> None:
    bags = make_random_bags(100, 5, seed=0)
    assert bags.dtype == torch.int64 and bags.shape == (100,)
    assert torch.equal(torch.bincount(bags), torch.full((20,), 5))
    assert torch.equal(bags, make_random_bags(100, 5, seed=0))
    assert not torch.equal(bags, make_random_bags(100, 5, seed=1))
    assert not torch.equal(bags, torch.arange(100) // 5)  # shuffled, not consecutive
    uneven = make_random_bags(23, 5, seed=np.random.default_rng(3))
    assert torch.bincount(uneven).tolist() == [5, 5, 5, 5, 3]


def test_random_bags_are_uniform() -> None:
    # P(two given samples share a bag) = (k - 1) / (n - 1)
    same = [int(b[0] == b[1]) for b in (make_random_bags(10, 2, seed=s) for s in range(3000))]
    assert np.mean(same) == pytest.approx(1 / 9, abs=0.02)


def test_aggregate_responses_is_the_bag_mean() -> None:
    y = torch.randn(30, dtype=torch.float64)
    bags = make_random_bags(30, 4, seed=1)
    want = torch.stack([y[bags == a].mean() for a in range(8)])
    assert torch.allclose(aggregate_responses(y, bags), want, atol=1e-14)
    with pytest.raises(ValueError, match=r"bag_index: bag\(s\) \[8\]"):
        aggregate_responses(y, bags, num_bags=9)
    with pytest.raises(ValueError, match=r"bag_index must lie in \[0, 5\)"):
        aggregate_responses(y, bags, num_bags=5)
    with pytest.raises(ValueError, match="y must be"):
        aggregate_responses(y[:, None], bags)
    with pytest.raises(ValueError, match="y contains NaN"):
        aggregate_responses(torch.full((30,), float("nan")), bags)


def test_dp_noise_has_the_laplace_scale() -> None:
    n, k, eps, C = 20_000, 4, 1.0, 2.0
    b = dp_noise_scale(n, k, eps, C)
    assert b == pytest.approx(2 * C * math.sqrt(math.log(n)) / (k * eps))
    assert dp_noise_scale(n, k, eps, C, paper_scale=True) == pytest.approx(b / 2)
    y = torch.zeros(n, dtype=torch.float64)
    bags = make_random_bags(n, k, seed=0)
    noisy, scale = laplace_label_dp_aggregates(y, bags, eps, C, seed=0)
    assert torch.allclose(scale, torch.full_like(scale, b))
    assert float(noisy.std()) == pytest.approx(math.sqrt(2) * b, rel=0.05)  # Laplace(b) has std sqrt(2) b
    assert float(noisy.abs().mean()) == pytest.approx(b, rel=0.05)  # and mean absolute deviation b
    again, _ = laplace_label_dp_aggregates(y, bags, eps, C, seed=0)
    assert torch.equal(noisy, again)
    _, half = laplace_label_dp_aggregates(y, bags, eps, C, paper_scale=True, seed=0)
    assert torch.allclose(half, scale / 2)


def test_dp_clips_before_averaging_and_scales_each_bag_by_its_size() -> None:
    n = 100
    y = torch.zeros(n, dtype=torch.float64)
    y[0] = 1e6
    bags = torch.arange(n) // 4
    bound = 1.0 * math.sqrt(math.log(n))
    noisy, _ = laplace_label_dp_aggregates(y, bags, epsilon=1e9, C=1.0, seed=0)  # negligible noise
    assert float(noisy[0]) == pytest.approx(bound / 4, rel=1e-6)
    uneven = torch.cat([torch.zeros(3, dtype=torch.long), torch.ones(2, dtype=torch.long)])
    _, scale = laplace_label_dp_aggregates(torch.zeros(5, dtype=torch.float64), uneven, 1.0, 1.0)
    assert float(scale[1] / scale[0]) == pytest.approx(1.5)


def test_dp_bad_inputs() -> None:
    bags = torch.arange(10) // 2
    with pytest.raises(ValueError, match="laplace_label_dp_aggregates: epsilon must be"):
        laplace_label_dp_aggregates(torch.zeros(10), bags, 0.0, 1.0)
    with pytest.raises(ValueError, match="y must be"):
        laplace_label_dp_aggregates(torch.zeros(10, 2), bags, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"bag_index must lie in \[0, 5\)|bag_index must have shape"):
        laplace_label_dp_aggregates(torch.zeros(10), bags[:-1], 1.0, 1.0)


def test_bag_batch_sampler_yields_whole_bags() -> None:
    bags = make_random_bags(50, 5, seed=2)
    sampler = BagBatchSampler(bags, bags_per_batch=3, seed=0)
    assert len(sampler) == 4
    epoch1 = list(sampler)
    seen = torch.tensor([i for batch in epoch1 for i in batch])
    assert torch.equal(seen.sort().values, torch.arange(50))
    for batch in epoch1:
        ids = bags[batch]
        for a in ids.unique():
            assert int((ids == a).sum()) == int((bags == a).sum())  # every bag complete in its batch
    epoch2 = list(sampler)
    assert epoch1 != epoch2  # reshuffled each epoch
    assert epoch1 == list(BagBatchSampler(bags, 3, seed=0))
    fixed = list(BagBatchSampler(bags, 3, shuffle=False))
    assert fixed == list(BagBatchSampler(bags, 3, shuffle=False))
    loader = DataLoader(TensorDataset(torch.arange(50), bags), batch_sampler=BagBatchSampler(bags, 2, seed=1))
    assert sum(len(idx) for idx, _ in loader) == 50
    sampler.set_epoch(0)
    assert list(sampler) == epoch1  # engine.fit's per-epoch hook replays an epoch exactly
    with pytest.raises(ValueError, match="BagBatchSampler: bags_per_batch must be"):
        BagBatchSampler(bags, 0)


def test_linear_bag_data() -> None:
    data = make_linear_bag_data(200, 10, 4, noise_std=0.5, theta_norm=2.0, seed=0)
    assert data.X.shape == (200, 10) and data.X.dtype == torch.float64 and data.ybar.shape == (50,)
    assert float(data.theta.norm()) == pytest.approx(2.0)
    assert torch.allclose(data.ybar, aggregate_responses(data.y, data.bag_index))
    resid = data.y - data.X @ data.theta
    assert float(resid.std()) == pytest.approx(0.5, rel=0.2)
    again = make_linear_bag_data(200, 10, 4, noise_std=0.5, theta_norm=2.0, seed=0)
    assert torch.equal(again.X, data.X) and torch.equal(again.bag_index, data.bag_index)
    with pytest.raises(ValueError, match="make_linear_bag_data: noise_std must be"):
        make_linear_bag_data(200, 10, 4, noise_std=-1.0)
    with pytest.raises(ValueError, match="make_random_bags: bag_size must be"):
        make_random_bags(10, 0)


def test_compact_bags_reindexes_a_batch() -> None:
    bag_id = torch.tensor([7, 7, 3, 9, 3])
    ybar_of_row = torch.tensor([0.5, 0.5, -1.0, 2.0, -1.0])
    index, ybar = compact_bags(bag_id, ybar_of_row)
    assert index.tolist() == [1, 1, 0, 2, 0] and ybar.tolist() == [-1.0, 0.5, 2.0]
    with pytest.raises(ValueError, match="ybar_of_instance must be"):
        compact_bags(bag_id, ybar_of_row[:3])
    with pytest.raises(TypeError, match="bag_id must be an integer"):
        compact_bags(bag_id.float(), ybar_of_row)
