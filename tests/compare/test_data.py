"""Built-in and user data: relabelling, flattening, splits and one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paperzoo.compare.data import BUILTIN_DATA, DataError, load_data, stratified_split, subsample


def test_builtin_tabular_sets() -> None:
    iris = load_data("iris")
    assert (iris.x.shape, iris.x.dtype, iris.num_classes, iris.has_test) == ((150, 4), np.float32, 3, False)
    assert {"fashion-mnist", "mnist", "animal-mnist", "union30", "digits", "wine", "breast-cancer"} <= set(BUILTIN_DATA)


def test_npz_is_flattened_and_relabelled(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    x, y = blobs(40, 0)
    xt, yt = blobs(12, 1, labels=(7, 20, 33))  # a label only in the test part
    data = load_data(str(make_npz("mine", x=x, y=y, x_test=xt, y_test=yt)))
    assert data.name == "mine" and data.x.shape == (40, 6) and data.x_test is not None and data.x_test.shape == (12, 6)
    assert data.num_classes == 5 and data.y.dtype == np.int64
    np.testing.assert_array_equal(np.unique(data.y), [0, 1, 2, 3])  # 3, 7, 11, 20
    np.testing.assert_array_equal(np.unique(data.y_test), [1, 3, 4])  # 7, 20, 33
    np.testing.assert_array_equal(data.labels, [3, 7, 11, 20, 33])
    np.testing.assert_array_equal(data.x[:, :3], x[:, 0].astype(np.float32))


def test_stratified_split_is_seeded(blobs: Callable[..., Any], make_npz: Callable[..., Path]) -> None:
    x, y = blobs(100, 0)
    data = load_data(str(make_npz(x=x, y=y)))
    train, test = stratified_split(data, seed=3)
    again, _ = stratified_split(data, seed=3)
    other, _ = stratified_split(data, seed=4)
    assert len(test) == 20 and np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    np.testing.assert_array_equal(np.bincount(data.y[test]), [5, 5, 5, 5])
    picked = subsample(train, 10, np.random.default_rng(0))
    assert len(picked) == 10 and np.all(np.diff(picked) > 0) and np.isin(picked, train).all()
    assert subsample(train, None, np.random.default_rng(0)) is train


def _bad_files(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[dict[str, Any], str]]:
    return {
        "missing y": ({"x": x}, "missing key 'y', expected (N,) integer labels; keys present: x"),
        "missing x": ({"y": y}, "missing key 'x', expected (N, ...) features"),
        "y 3-d": ({"x": x, "y": y[:, None, None]}, "key 'y' must have shape (40,) integer labels (or (40, C) multi-hot)"),
        "lengths differ": ({"x": x, "y": y[:30]}, "key 'y' must have shape (40,) integer labels (or (40, C) multi-hot), one per row of 'x', got shape (30,)"),
        "float labels": ({"x": x, "y": y.astype(float)}, "key 'y' must hold (40,) integer labels (or (40, C) multi-hot), one per row of 'x', got dtype float64"),
        "multi-hot with a 2": ({"x": x, "y": np.stack([y % 2, y % 2 + 2], 1)}, "key 'y' of shape (40, 2) is multi-hot and must hold only 0s and 1s"),
        "multi-hot y_test single": ({"x": x, "y": np.stack([y % 2, y % 2], 1), "x_test": x, "y_test": y}, "key 'y_test' must have shape (M, 2) multi-hot like 'y', got shape (40,)"),
        "x 1-d": ({"x": x[:, 0, 0], "y": y}, "key 'x' must have shape (N, ...) with at least one row, got shape (40,)"),
        "x with NaN": ({"x": np.where(x > 2, np.nan, x), "y": y}, "key 'x' of shape (N, ...) holds NaN"),
        "x_test alone": ({"x": x, "y": y, "x_test": x}, "missing key 'y_test', expected (M,) integer labels to go with 'x_test'"),
        "y_test alone": ({"x": x, "y": y, "y_test": y}, "missing key 'x_test', expected (M, 2, 3) to go with 'y_test'"),
        "x_test shape": ({"x": x, "y": y, "x_test": x.reshape(40, 6), "y_test": y}, "key 'x_test' must have shape (M, 2, 3) like 'x', got shape (40, 6)"),
        "y_test length": ({"x": x, "y": y, "x_test": x, "y_test": y[:5]}, "key 'y_test' must have shape (40,) integer labels (or (40, C) multi-hot), one per row of 'x_test'"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_bad_files(np.zeros((40, 2, 3)), np.zeros(40, int))))
def test_npz_errors_name_file_key_and_shape(
    case: str, make_npz: Callable[..., Path], blobs: Callable[..., Any]
) -> None:
    arrays, message = _bad_files(*blobs(40, 0))[case]
    path = make_npz(**arrays)
    with pytest.raises(DataError) as info:
        load_data(str(path))
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text


def test_unusable_files_and_names(tmp_path: Path, make_npz: Callable[..., Path]) -> None:
    with pytest.raises(DataError, match="unknown data 'nope': neither a built-in data set \\(fashion-mnist"):
        load_data("nope")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="broken.npz: cannot read it as a .npz"):
        load_data(str(broken))
    pickled = make_npz("pickled", x=np.zeros((4, 2)), y=np.array([object()] * 4))
    with pytest.raises(DataError, match="pickled.npz: cannot read it"):
        load_data(str(pickled))


def test_a_class_of_one_cannot_be_split(make_npz: Callable[..., Path]) -> None:
    data = load_data(str(make_npz("tiny", x=np.arange(10.0)[:, None], y=np.array([0] * 5 + [1] * 4 + [9]))))
    with pytest.raises(DataError, match="tiny.npz: key 'y': class 9 has 1 sample; .*or give x_test and y_test"):
        stratified_split(data, 0)


def test_long_tailed_fashion_mnist() -> None:
    from paperzoo.data import dataset_status

    if not dataset_status()["fashion-mnist"]:
        pytest.skip("Fashion-MNIST is not installed")
    data = load_data("fashion-mnist-lt")
    counts = np.bincount(data.y)
    assert counts.tolist() == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert np.bincount(data.y_test).tolist() == [1000] * 10  # a balanced test set
