"""Splits and samplers: disjointness, coverage, classes, episode shapes, GCD masks, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from paperzoo import data
from paperzoo.engine.seed import seed_everything


def test_held_out_class_split() -> None:
    y = np.array([3, 1, 2, 0, 3, 1, 2, 0, 5])
    tr, te = data.held_out_class_split(y, 2)
    assert set(y[tr]) == {0, 1} and set(y[te]) == {2, 3, 5}
    assert np.array_equal(np.sort(np.r_[tr, te]), np.arange(len(y))) and not set(tr) & set(te)
    tr, te = data.held_out_class_split(y, [5, 1])
    assert set(y[tr]) == {1, 5} and set(y[te]) == {0, 2, 3}
    with pytest.raises(ValueError, match="do not occur"):
        data.held_out_class_split(y, [7])
    with pytest.raises(ValueError, match="train_classes"):
        data.held_out_class_split(y, 5)  # leaves no test class
    with pytest.raises(ValueError, match="repeated"):
        data.held_out_class_split(y, [1, 1])


def test_episodes() -> None:
    y = np.repeat(np.arange(6), 10)
    y[-5:] = 99  # class 5 and class 99 have 5 samples: too few for 3-shot + 4-query
    sampler = data.EpisodeSampler(y, n_way=3, k_shot=3, n_query=4, n_episodes=30, seed=0)
    episodes = list(sampler)
    assert len(episodes) == len(sampler) == 30
    assert sampler.eligible_classes.tolist() == [0, 1, 2, 3, 4]
    for ep in episodes:
        assert ep.support_idx.shape == (9,) and ep.query_idx.shape == (12,) and ep.classes.shape == (3,)
        assert len(set(ep.classes.tolist())) == 3 and not {5, 99} & set(ep.classes.tolist())
        assert np.array_equal(y[ep.support_idx], ep.classes[ep.support_targets])
        assert np.array_equal(y[ep.query_idx], ep.classes[ep.query_targets])
        assert len(set(np.r_[ep.support_idx, ep.query_idx].tolist())) == 21
    used = np.unique(np.concatenate([e.classes for e in episodes]))
    assert used.tolist() == [0, 1, 2, 3, 4]
    again = list(data.EpisodeSampler(y, 3, 3, 4, 30, seed=0))
    assert all(np.array_equal(a.query_idx, b.query_idx) for a, b in zip(episodes, again))
    assert all(np.array_equal(a.support_idx, b.support_idx) for a, b in zip(episodes, list(sampler)))
    sampler.set_epoch(1)
    assert not all(np.array_equal(a.support_idx, b.support_idx) for a, b in zip(episodes, sampler))
    with pytest.raises(ValueError, match="n_way=6"):
        data.EpisodeSampler(y, n_way=6, k_shot=3, n_query=4, n_episodes=1, seed=0)
    with pytest.raises(ValueError, match="k_shot"):
        data.EpisodeSampler(y, n_way=2, k_shot=0, n_query=4, n_episodes=1, seed=0)


def test_episode_exact_class_size() -> None:
    y = np.repeat(np.arange(4), 5)  # k_shot + n_query == class size: every sample used once
    for ep in data.EpisodeSampler(y, n_way=4, k_shot=2, n_query=3, n_episodes=5, seed=1):
        assert sorted(np.r_[ep.support_idx, ep.query_idx].tolist()) == list(range(20))


def test_gcd_split() -> None:
    y = np.repeat(np.arange(6), [20, 20, 21, 20, 20, 20])
    s = data.gcd_split(y, 4, labelled_fraction=0.5, seed=0)
    assert s.known_classes.tolist() == [0, 1, 2, 3] and s.novel_classes.tolist() == [4, 5]
    assert np.bincount(y[s.labelled_idx], minlength=6).tolist() == [10, 10, 10, 10, 0, 0]
    assert not set(s.labelled_idx) & set(s.unlabelled_idx)
    assert np.array_equal(np.sort(np.r_[s.labelled_idx, s.unlabelled_idx]), np.arange(len(y)))
    assert s.old_mask.dtype == np.bool_ and s.old_mask.shape == s.unlabelled_idx.shape
    assert np.array_equal(s.old_mask, y[s.unlabelled_idx] < 4)
    assert int(s.old_mask.sum()) == 41 and int((~s.old_mask).sum()) == 40
    assert np.array_equal(s.labelled_idx, data.gcd_split(y, 4, labelled_fraction=0.5, seed=0).labelled_idx)
    other = data.gcd_split(y, [1, 5], labelled_fraction=0.25, seed=2)
    assert set(y[other.labelled_idx]) == {1, 5} and len(other.labelled_idx) == 10
    assert np.array_equal(other.old_mask, np.isin(y[other.unlabelled_idx], [1, 5]))
    with pytest.raises(ValueError, match="known_classes"):
        data.gcd_split(y, list(range(6)), seed=0)
    with pytest.raises(ValueError, match="labelled_fraction"):
        data.gcd_split(y, 3, labelled_fraction=1.0, seed=0)


def test_m_per_class_sampler_batches() -> None:
    y = np.repeat(np.arange(8), 10)
    seed_everything(0)
    sampler = data.m_per_class_sampler(y, m=4, batch_size=16)
    assert len(sampler) == 80
    idx = np.array(list(iter(sampler)))
    assert len(idx) == len(sampler)
    for batch in idx.reshape(-1, 16):
        counts = np.bincount(y[batch], minlength=8)
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4, 4]
    seed_everything(0)
    assert np.array_equal(idx, np.array(list(iter(data.m_per_class_sampler(y, m=4, batch_size=16)))))
    # through a DataLoader, with torch labels
    ds = TensorDataset(torch.arange(80), torch.from_numpy(y))
    loader = DataLoader(ds, batch_size=16, sampler=data.m_per_class_sampler(torch.from_numpy(y), 2, 16, 64))
    batches = [b[1] for b in loader]
    assert len(batches) == 4 and all(torch.bincount(b, minlength=8).tolist().count(2) == 8 for b in batches)
    with pytest.raises(ValueError, match="multiple of m"):
        data.m_per_class_sampler(y, m=3, batch_size=16)
    with pytest.raises(ValueError, match="needs 10 classes"):
        data.m_per_class_sampler(y, m=2, batch_size=20)
    with pytest.raises(ValueError, match="length_before_new_iter"):
        data.m_per_class_sampler(y, m=2, batch_size=16, length_before_new_iter=8)
