"""Paper-14 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the noisy long-tailed Fashion-MNIST split, the class groups; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p14_rcal_noisy_long_tail as p14


def test_registered() -> None:
    assert available()[14] == "paperzoo.reproductions.p14_rcal_noisy_long_tail"
    assert p14.PAPER == 14
    assert set(p14.DATA) <= set(dataset_status())


def test_noisy_long_tail_split() -> None:
    cfg = p14.SMOKE
    data = p14.noisy_long_tail(cfg, seed=3)
    sizes = np.bincount(data.y_clean, minlength=10)
    want = np.floor(cfg.pool_per_class * cfg.imbalance ** (-np.arange(10) / 9) + 1e-9).astype(int)
    assert sizes.tolist() == want.tolist()  # exponential profile, ratio 10
    assert data.x.shape == (sizes.sum(), 784)
    for rate, noisy in data.y_noisy.items():
        assert noisy.shape == data.y_clean.shape and noisy.min() >= 0 and noisy.max() < 10
        assert abs(float((noisy != data.y_clean).mean()) - rate) < 0.12
    assert not np.array_equal(data.y_noisy[0.2], data.y_noisy[0.4])
    again = p14.noisy_long_tail(cfg, seed=3)
    assert np.array_equal(again.x, data.x) and np.array_equal(again.y_noisy[0.4], data.y_noisy[0.4])
    other = p14.noisy_long_tail(cfg, seed=4)
    assert not np.array_equal(other.x, data.x)
    assert len(data.y_test) == cfg.n_test


def test_class_groups() -> None:
    groups = p14.class_groups(np.array([600, 464, 359, 278, 215, 166, 129, 100, 77, 60]))
    assert groups["many"].tolist() == [0, 1, 2]
    assert groups["medium"].tolist() == [3, 4, 5, 6]
    assert groups["few"].tolist() == [7, 8, 9]


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p14.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.claims) == 12
    assert all(len(result.table.values(m, k)) == 3 for m in p14.METHODS for k in result.table.metrics)
