"""``paperzoo compare --task pruning``: the task, its baselines, a user's .npz, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paperzoo.compare import compare
from paperzoo.compare.data import DataError, load_data
from paperzoo.compare.registry import get_task, methods_of
from paperzoo.compare.task import Setting, build_component
from paperzoo.papers import Method
from paperzoo.pruning import Pruner

METRICS = [
    "dense top-1",
    "top-1@0.5",
    "top-1@0.8",
    "top-1@0.9",
    "top-1@0.95",
    "MAC reduction@0.95",
    "speed-up@0.95",
]


def test_task_metrics_and_baselines() -> None:
    task = get_task("pruning")
    assert task.metrics(load_data("iris")) == METRICS
    methods = methods_of("pruning")
    assert {"global-mp", "uniform-mp", "random", "channel-mp"} <= set(methods)
    for name in ("global-mp", "uniform-mp", "random", "channel-mp"):
        assert methods[name].is_baseline
        assert isinstance(build_component(methods[name].method, {"seed": 3}), Pruner)
    assert build_component(methods["random"].method, {"seed": 3}).seed == 3
    assert "pruned to 0.5, 0.8, 0.9, 0.95" in task.protocol(Setting(2, None))


def test_compare_on_a_users_npz(make_npz: Callable[..., Path], blobs: Callable[..., Any], tmp_path: Path) -> None:
    x, y = blobs(280, 0)
    path = make_npz("mine", x=x[:200], y=y[:200], x_test=x[200:], y_test=y[200:])
    result = compare("pruning", str(path), ["global-mp", "random"], seeds=(0,), budget=3, jobs=1, progress=False)
    table = result.table
    assert table.metrics == METRICS
    assert table.mean("global-mp", "dense top-1") == table.mean("random", "dense top-1")  # one dense model per seed
    for method in ("global-mp", "random"):
        for m in METRICS[:5]:
            assert 0.0 <= table.mean(method, m) <= 1.0
        assert table.mean(method, "MAC reduction@0.95") == pytest.approx(20.0, rel=0.02)
        assert table.mean(method, "speed-up@0.95") > 0
    assert table.mean("global-mp", "dense top-1") > 0.9
    assert table.mean("global-mp", "top-1@0.5") > 0.8  # separated blobs survive half the weights
    result.write(tmp_path)
    assert (tmp_path / "compare" / "pruning-mine" / "plot.png").is_file()


def test_features_and_labels_keys_and_no_test_split(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    x, y = blobs(120, 2)
    path = make_npz("feat", features=x.reshape(120, -1), labels=y)
    result = compare("pruning", str(path), ["uniform-mp", "channel-mp"], seeds=(0,), budget=2, jobs=1, progress=False)
    assert 0.0 <= result.table.mean("uniform-mp", "top-1@0.9") <= 1.0
    # the structured method returns a smaller dense model: its MACs fall with the weights it removes
    assert result.table.mean("channel-mp", "MAC reduction@0.95") >= 19.0


def test_unusable_data_and_a_non_pruner_method(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    x, _ = blobs(40, 0)
    multi = make_npz("multi", x=x, y=np.eye(4, dtype=np.int64)[np.arange(40) % 4])
    with pytest.raises(DataError, match="multi-hot"):
        compare("pruning", str(multi), ["global-mp"], seeds=(0,), budget=1, jobs=1, progress=False)
    task = get_task("pruning")
    loss = Method("ce", "pruning", "torch.nn:CrossEntropyLoss", {}, "not a pruner")
    with pytest.raises(TypeError, match="not a Pruner"):
        task.run(loss, 0, load_data("iris"), Setting(1, None))
