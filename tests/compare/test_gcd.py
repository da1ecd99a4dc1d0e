"""``paperzoo compare --task gcd``: the task, its baselines, a user's .npz with old classes, and the
one-line errors for unusable data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.compare import compare
from paperzoo.compare.data import DataError, load_data
from paperzoo.compare.registry import get_task, methods_of
from paperzoo.compare.task import Setting
from paperzoo.compare.tasks.gcd import GCDData, old_classes_of


def _gcd_blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array([3, 7, 11, 20, 25, 40])
    y = labels[np.arange(n) % labels.size]
    centres = rng.normal(0.0, 4.0, size=(labels.size, 8))
    return (centres[np.arange(n) % labels.size] + rng.normal(size=(n, 8))).astype(np.float32), y


def test_task_and_baselines_are_discovered() -> None:
    task = get_task("gcd")
    assert task.metrics(load_data("digits")) == ["All", "Old", "New"]
    assert {"simgcd", "kmeans"} <= set(methods_of("gcd"))
    assert methods_of("gcd")["simgcd"].is_baseline


def test_digits_split_is_the_reference_split_with_old_classes_first() -> None:
    data = load_data("digits")
    split = get_task("gcd").split(data, 0, Setting(1, None))
    assert isinstance(split, GCDData) and split.x_train.shape == (1797, 1, 8, 8) and split.n_old == 5
    lab = split.y_train >= 0
    assert int(lab.sum()) == int(0.5 * (data.y < 5).sum())  # one draw over all old-class images
    assert int(split.y_train[lab].max()) < 5 and split.x_test.shape[0] == int((~lab).sum())
    assert torch.equal(split.old_mask, split.y_test < 5)
    again = get_task("gcd").split(data, 0, Setting(1, None))
    assert torch.equal(again.y_train, split.y_train)


def test_compare_on_a_users_npz_prints_all_old_new(make_npz: Callable[..., Path], tmp_path: Path) -> None:
    x, y = _gcd_blobs()
    path = make_npz("mine", features=x, labels=y, old_classes=np.array([7, 3, 20]))
    data = load_data(str(path))
    np.testing.assert_array_equal(old_classes_of(data), [0, 1, 3])  # label order 3, 7, 11, 20, ...
    result = compare("gcd", str(path), ["simgcd", "kmeans"], seeds=(0, 1), budget=3, jobs=1, progress=False)
    assert result.table.metrics == ["All", "Old", "New"]
    for method in ("simgcd", "kmeans"):
        for metric in ("All", "Old", "New"):
            assert 0.0 <= result.table.mean(method, metric) <= 1.0
    assert result.table.mean("kmeans", "All") > 0.9  # well separated blobs
    result.write(tmp_path)
    assert (tmp_path / "compare" / "gcd-mine" / "plot.png").is_file()


def test_bad_input_is_one_line_naming_the_problem(make_npz: Callable[..., Path]) -> None:
    x, y = _gcd_blobs()
    task = get_task("gcd")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"features": x, "labels": y}, "missing key 'old_classes'"),
        ({"labels": y, "old_classes": np.array([3])}, "missing key 'x'"),
        ({"features": x, "old_classes": np.array([3])}, "missing key 'y'"),
        ({"features": x, "labels": y, "old_classes": np.array([3, 99])}, "names label 99"),
        ({"features": x, "labels": y, "old_classes": np.unique(y)}, "at most 5 of the 6 classes"),
    ]
    for arrays, message in cases:
        with pytest.raises(DataError, match=message) as info:
            task.check(load_data(str(make_npz("bad", **arrays))))
        assert "\n" not in str(info.value)
    # an old class whose only sample is not drawn into the labelled half
    left_out = np.setdiff1d(np.arange(101), np.random.RandomState(0).choice(101, 50, replace=False))[0]
    yy = np.r_[np.zeros(101, int), np.full(50, 2)]
    yy[left_out] = 1
    xx = np.random.default_rng(0).normal(size=(151, 3))
    with pytest.raises(DataError, match="known class 1 has no labelled sample") as info:
        task.check(load_data(str(make_npz("lonely", x=xx, y=yy, old_classes=np.array([0, 1])))))
    assert "\n" not in str(info.value)
    from paperzoo.discovery.baselines import kmeans_predict

    with pytest.raises(ValueError, match="k=7 is larger than the number of samples \\(6\\)"):
        kmeans_predict(np.zeros((6, 2)), 7)
