"""Paper-37 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p37_susana_proto_triplet_icnn_losses as p37


def test_novel_classes_are_held_out_of_training(require_data: Any) -> None:
    require_data(p37)
    split = p37.load_split("conv", p37.SMOKE)
    assert set(np.unique(split.y_test).tolist()) == set(p37.TEST_CLASSES)
    assert set(np.unique(split.y_train).tolist()) == set(range(30)) - set(p37.TEST_CLASSES)
    assert len(p37.TEST_CLASSES) == 10 and split.x_train.shape[1:] == (1, 28, 28)


def test_episode_accuracy_of_a_perfect_and_a_constant_embedding() -> None:
    y = np.repeat(np.arange(6), 10)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(y)).double()
    acc = p37.episode_accuracy(onehot, y, way=5, shot=2, query=3, n=20)
    assert acc.shape == (20,) and np.all(acc == 1.0)
    const = p37.episode_accuracy(torch.zeros(60, 4, dtype=torch.float64), y, way=5, shot=2, query=3, n=20)
    assert np.all(const == 0.2)  # every distance ties: argmin picks class 0, one class in five is right


def test_episode_batches_are_class_major_with_episode_labels() -> None:
    y = np.repeat(np.arange(8), 6)
    x = torch.from_numpy(y.astype(np.float32))[:, None]
    batches = list(p37.EpisodeBatches(x, y, way=4, shot=2, query=3, n=3, seed=0))
    assert len(batches) == 3
    xs, ys, xq, yq = batches[0]
    assert ys.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and yq.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    # support and query of one episode label come from the same original class
    assert torch.equal(xs[::2, 0], xq[::3, 0])


def test_unit_is_deterministic(require_data: Any) -> None:
    require_data(p37)
    unit = p37.Unit("effnet", 1, p37.BOTH, 3, p37.SMOKE)
    assert p37.run_unit(unit) == p37.run_unit(unit)


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(p37)
    result = p37.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p37.METHODS)
    assert len(result.claims) == 12
