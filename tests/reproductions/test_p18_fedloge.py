"""Paper-specific checks of the FedLoGe reproduction: its long-tailed federated data and the
(slow) full run. The shared checks come from test_suite.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.federated.fedloge import shot_split
from paperzoo.reproductions import p18_fedloge as p18

from .conftest import skip_unless_data


def test_data_is_long_tailed_dirichlet_split_with_matching_local_tests() -> None:
    skip_unless_data(p18)
    cfg = p18.SMOKE
    fl = p18.build_data(cfg, seed=0)
    counts = fl.counts
    assert counts[0] == cfg.n_max and np.all(np.diff(counts) <= 0)
    assert counts[-1] == int(np.floor(cfg.n_max / cfg.imbalance))
    data = fl.data
    assert data.num_clients == cfg.clients
    covered = np.sort(np.concatenate(data.partitions))
    assert np.array_equal(covered, np.arange(data.x.shape[0]))  # a partition: disjoint and complete
    assert np.bincount(data.y_test.numpy()).tolist() == [cfg.test_per_class] * 10  # balanced global test
    y, yt = data.y.numpy(), data.y_test.numpy()
    for part, local in zip(data.partitions, fl.local_test, strict=True):
        train_classes = set(np.unique(y[part]))
        assert set(np.unique(yt[local])) <= train_classes  # a client is tested on its own classes only
    # the same seed gives the same data, another seed another draw
    again = p18.build_data(cfg, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again.data.partitions, data.partitions, strict=True))
    other = p18.build_data(cfg, seed=1)
    assert not np.array_equal(other.data.y.numpy(), y) or not np.array_equal(
        np.concatenate(other.data.partitions), np.concatenate(data.partitions)
    )


def test_full_protocol_has_all_three_shot_groups() -> None:
    cfg = p18.FULL
    counts = np.floor(cfg.n_max * cfg.imbalance ** (-np.arange(10) / 9)).astype(int)
    head, middle, tail = shot_split(counts)
    assert head.size and middle.size and tail.size


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p18)
    result = p18.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p18.FEDAVG, p18.GENERIC) > 0.3  # far above the 0.1 of chance
    assert result.table.mean(p18.LOGE, p18.PERSONAL) > 0.5
